{
  "targets": [
    {
      "target_name": "dovetail_shm",
      "sources": ["native/shm.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-std=c11", "-O2", "-Wall", "-Wextra", "-D_GNU_SOURCE"]
    }
  ]
}
