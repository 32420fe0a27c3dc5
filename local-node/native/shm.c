/*
 * dovetail_shm: the few things JavaScript cannot do for the shared-memory ring.
 *
 *   map(path, createBytes)            -> ArrayBuffer over a MAP_SHARED mapping of `path`
 *   unmap(buffer)                     -> detach the ArrayBuffer, then munmap
 *   futexWait(buffer, byteOffset, expected, timeoutMs)      -> "ok" | "timed-out" | "not-equal"
 *   futexWaitAsync(buffer, byteOffset, expected, timeoutMs) -> Promise of the same, off-thread
 *   futexWake(buffer, byteOffset, count)                    -> number of waiters woken
 *
 * The record path (publish/poll) stays in JavaScript over the mapped memory: a Node-API call costs
 * tens of nanoseconds and creating a Buffer per message about 1 us, both too much for the
 * ~20 ns/record budget. Only setup and sleeping/waking cross into C.
 *
 * Node-API only (no V8 headers) so one build works on Node 20 and Node 24 alike.
 */
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <node_api.h>

#define CHECK(env, call)                                                  \
  do {                                                                    \
    napi_status status_ = (call);                                         \
    if (status_ != napi_ok) {                                             \
      napi_throw_error((env), "DOVETAIL_NATIVE", "Node-API call failed: " #call); \
      return NULL;                                                        \
    }                                                                     \
  } while (0)

/* ---------------------------------------------------------------- mappings */

/* Every live mapping, so unmap() and the GC finalizer agree on who calls munmap exactly once. */
typedef struct mapping {
  void* addr;
  size_t len;
  int unmapped;
  struct mapping* next;
} mapping;

static pthread_mutex_t mappings_lock = PTHREAD_MUTEX_INITIALIZER;
static mapping* mappings = NULL;

static void mapping_remove_locked(mapping* m) {
  mapping** p = &mappings;
  while (*p != NULL && *p != m) p = &(*p)->next;
  if (*p == m) *p = m->next;
}

/* Called when V8 frees the ArrayBuffer's backing store (GC, or after detach). */
static void finalize_mapping(napi_env env, void* data, void* hint) {
  (void)env;
  (void)data;
  mapping* m = (mapping*)hint;
  pthread_mutex_lock(&mappings_lock);
  if (!m->unmapped) {
    munmap(m->addr, m->len);
    m->unmapped = 1;
  }
  mapping_remove_locked(m);
  pthread_mutex_unlock(&mappings_lock);
  free(m);
}

static napi_value throw_errno(napi_env env, const char* what, const char* path, int err) {
  char msg[4200];
  snprintf(msg, sizeof msg, "%s %s: %s", what, path, strerror(err));
  const char* code = err == ENOENT ? "ENOENT" : err == EEXIST ? "EEXIST" : err == EACCES ? "EACCES" : "ESHM";
  napi_throw_error(env, code, msg);
  return NULL;
}

/* map(path: string, createBytes: number): ArrayBuffer
 * createBytes > 0: create the file exclusively (O_EXCL), size it, map it.
 * createBytes == 0: open an existing file and map its whole length. */
static napi_value map_segment(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[4096];
  size_t path_len = 0;
  CHECK(env, napi_get_value_string_utf8(env, argv[0], path, sizeof path, &path_len));
  double create_bytes = 0;
  CHECK(env, napi_get_value_double(env, argv[1], &create_bytes));

  int fd;
  size_t len;
  if (create_bytes > 0) {
    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return throw_errno(env, "create", path, errno);
    len = (size_t)create_bytes;
    if (ftruncate(fd, (off_t)len) != 0) {
      int err = errno;
      close(fd);
      unlink(path);
      return throw_errno(env, "size", path, err);
    }
  } else {
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return throw_errno(env, "open", path, errno);
    struct stat st;
    if (fstat(fd, &st) != 0) {
      int err = errno;
      close(fd);
      return throw_errno(env, "stat", path, err);
    }
    len = (size_t)st.st_size;
    if (len == 0) {
      close(fd);
      napi_throw_error(env, "EEMPTY", "segment is empty (still being created, or not a ring)");
      return NULL;
    }
  }
  void* addr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int map_err = errno;
  close(fd); /* the mapping keeps the file alive */
  if (addr == MAP_FAILED) return throw_errno(env, "mmap", path, map_err);

  mapping* m = calloc(1, sizeof *m);
  if (m == NULL) {
    munmap(addr, len);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  m->addr = addr;
  m->len = len;
  pthread_mutex_lock(&mappings_lock);
  m->next = mappings;
  mappings = m;
  pthread_mutex_unlock(&mappings_lock);

  napi_value ab;
  napi_status st = napi_create_external_arraybuffer(env, addr, len, finalize_mapping, m, &ab);
  if (st != napi_ok) {
    pthread_mutex_lock(&mappings_lock);
    mapping_remove_locked(m);
    pthread_mutex_unlock(&mappings_lock);
    munmap(addr, len);
    free(m);
    napi_throw_error(env, "DOVETAIL_NATIVE", "napi_create_external_arraybuffer failed");
    return NULL;
  }
  return ab;
}

/* unmap(buffer): detach first so no JS view can touch the memory, then munmap now rather than at GC. */
static napi_value unmap_segment(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void* data = NULL;
  size_t len = 0;
  CHECK(env, napi_get_arraybuffer_info(env, argv[0], &data, &len));
  if (data == NULL) return NULL; /* already detached */
  CHECK(env, napi_detach_arraybuffer(env, argv[0]));
  pthread_mutex_lock(&mappings_lock);
  for (mapping* m = mappings; m != NULL; m = m->next) {
    if (m->addr == data && !m->unmapped) {
      munmap(m->addr, m->len);
      m->unmapped = 1;
      break;
    }
  }
  pthread_mutex_unlock(&mappings_lock);
  return NULL;
}

/* ------------------------------------------------------------------- futex */

/* Shared (not FUTEX_PRIVATE) futex: the key is the page's inode+offset, so waiters in other
 * processes that map the same file are woken. Atomics.wait/notify cannot do this: V8 keeps its own
 * in-process waiter list. */
static long futex(uint32_t* addr, int op, uint32_t val, const struct timespec* timeout) {
  return syscall(SYS_futex, addr, op, val, timeout, NULL, 0);
}

typedef enum { WAIT_OK = 0, WAIT_TIMED_OUT = 1, WAIT_NOT_EQUAL = 2, WAIT_FAULT = 3 } wait_result;

static wait_result do_wait(uint32_t* addr, uint32_t expected, double timeout_ms) {
  struct timespec ts;
  struct timespec* tsp = NULL;
  if (timeout_ms >= 0) {
    ts.tv_sec = (time_t)(timeout_ms / 1000);
    ts.tv_nsec = (long)((timeout_ms - (double)ts.tv_sec * 1000) * 1e6);
    tsp = &ts;
  }
  /* SYNC POINT: the kernel compares *addr with `expected` under the futex hash-bucket lock
   * (sequentially consistent with the waker's increment + FUTEX_WAKE), so a wake that happens
   * after our caller read `expected` is never lost. */
  long rc = futex(addr, FUTEX_WAIT, expected, tsp);
  if (rc == 0) return WAIT_OK;
  if (errno == ETIMEDOUT) return WAIT_TIMED_OUT;
  if (errno == EAGAIN) return WAIT_NOT_EQUAL;
  if (errno == EINTR) return WAIT_OK; /* spurious: the caller re-checks its condition */
  return WAIT_FAULT;
}

static const char* wait_result_name(wait_result r) {
  switch (r) {
    case WAIT_OK: return "ok";
    case WAIT_TIMED_OUT: return "timed-out";
    case WAIT_NOT_EQUAL: return "not-equal";
    default: return "fault";
  }
}

static napi_value futex_addr(napi_env env, napi_value buffer, napi_value offset_value, uint32_t** out) {
  void* data = NULL;
  size_t len = 0;
  CHECK(env, napi_get_arraybuffer_info(env, buffer, &data, &len));
  uint32_t offset = 0;
  CHECK(env, napi_get_value_uint32(env, offset_value, &offset));
  if (data == NULL || (offset & 3) != 0 || (size_t)offset + 4 > len) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "futex word outside the mapping or misaligned");
    return NULL;
  }
  *out = (uint32_t*)((char*)data + offset);
  napi_value ok;
  napi_get_boolean(env, 1, &ok);
  return ok;
}

/* futexWait(buffer, byteOffset, expected, timeoutMs): blocks this thread. */
static napi_value futex_wait_sync(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t* addr;
  if (futex_addr(env, argv[0], argv[1], &addr) == NULL) return NULL;
  uint32_t expected;
  double timeout_ms;
  CHECK(env, napi_get_value_uint32(env, argv[2], &expected));
  CHECK(env, napi_get_value_double(env, argv[3], &timeout_ms));
  napi_value out;
  CHECK(env, napi_create_string_utf8(env, wait_result_name(do_wait(addr, expected, timeout_ms)), NAPI_AUTO_LENGTH, &out));
  return out;
}

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref buffer_ref; /* keeps the ArrayBuffer (and so the mapping) alive while we sleep */
  uint32_t* addr;
  uint32_t expected;
  double timeout_ms;
  wait_result result;
} async_wait;

static void async_wait_execute(napi_env env, void* data) {
  (void)env;
  async_wait* w = data;
  w->result = do_wait(w->addr, w->expected, w->timeout_ms);
}

static void async_wait_complete(napi_env env, napi_status status, void* data) {
  async_wait* w = data;
  napi_value out;
  if (status == napi_cancelled) w->result = WAIT_OK;
  napi_create_string_utf8(env, wait_result_name(w->result), NAPI_AUTO_LENGTH, &out);
  napi_resolve_deferred(env, w->deferred, out);
  napi_delete_reference(env, w->buffer_ref);
  napi_delete_async_work(env, w->work);
  free(w);
}

/* futexWaitAsync(...): the same wait on a libuv pool thread; resolves a Promise on the JS thread. */
static napi_value futex_wait_async(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t* addr;
  if (futex_addr(env, argv[0], argv[1], &addr) == NULL) return NULL;
  async_wait* w = calloc(1, sizeof *w);
  if (w == NULL) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  w->addr = addr;
  CHECK(env, napi_get_value_uint32(env, argv[2], &w->expected));
  CHECK(env, napi_get_value_double(env, argv[3], &w->timeout_ms));
  CHECK(env, napi_create_reference(env, argv[0], 1, &w->buffer_ref));
  napi_value promise, name;
  CHECK(env, napi_create_promise(env, &w->deferred, &promise));
  CHECK(env, napi_create_string_utf8(env, "dovetail:futexWait", NAPI_AUTO_LENGTH, &name));
  CHECK(env, napi_create_async_work(env, NULL, name, async_wait_execute, async_wait_complete, w, &w->work));
  CHECK(env, napi_queue_async_work(env, w->work));
  return promise;
}

/* futexWake(buffer, byteOffset, count): returns how many waiters (in any process) were woken. */
static napi_value futex_wake(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t* addr;
  if (futex_addr(env, argv[0], argv[1], &addr) == NULL) return NULL;
  uint32_t count;
  CHECK(env, napi_get_value_uint32(env, argv[2], &count));
  if (count > INT_MAX) count = INT_MAX;
  long rc = futex(addr, FUTEX_WAKE, count, NULL);
  napi_value out;
  CHECK(env, napi_create_int32(env, rc < 0 ? 0 : (int32_t)rc, &out));
  return out;
}

/* ----------------------------------------------------------------- module */

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"map", NULL, map_segment, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unmap", NULL, unmap_segment, NULL, NULL, NULL, napi_enumerable, NULL},
      {"futexWait", NULL, futex_wait_sync, NULL, NULL, NULL, napi_enumerable, NULL},
      {"futexWaitAsync", NULL, futex_wait_async, NULL, NULL, NULL, napi_enumerable, NULL},
      {"futexWake", NULL, futex_wake, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
