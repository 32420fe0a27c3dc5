/**
 * Hostile input (issue 5): 100,000+ generated malformed frames and requests against a live
 * topic while a subscriber reads. No crash, no hang (every frame gets exactly one answer),
 * every answer to a malformed input is a documented error, and afterwards the log holds exactly
 * the valid messages, in the order they were acknowledged per socket.
 *
 * Deterministic: the generator is seeded (FUZZ_SEED overrides; the seed is in the test name).
 */
import { describe, expect, it } from "vitest";
import { ERROR_CODES } from "../../protocol/errors.ts";
import { seededRandom } from "../support/seeded-random.ts";
import { freshTopic, gatewayFetch, issueKey, openSocket, type TestSocket } from "./helpers.ts";

const SEED = Number((globalThis as { process?: { env?: Record<string, string> } }).process?.env?.FUZZ_SEED ?? 20261117);
const SOCKETS = 8;
const FRAMES_PER_SOCKET = 12_000;
const REQUESTS = 6_000;
const BATCH = 500;
const REQUEST_PARALLELISM = 16;

const UNICODE = ["\u0000", "\ud800", "\udfff", "\ufeff", "\u202e", "é", "😀", "\u2028", "\\", '"', "\uffff"];

function randomText(r: () => number, max: number): string {
  const n = Math.floor(r() * max);
  let s = "";
  for (let i = 0; i < n; i++) s += r() < 0.3 ? UNICODE[Math.floor(r() * UNICODE.length)] : String.fromCharCode(32 + Math.floor(r() * 95));
  return s;
}

// Not one of these is a valid id or credit (note: -0 would be: JSON writes it as 0).
const HUGE = [1e308, -1, 2 ** 53, 1.5, Number.MAX_SAFE_INTEGER + 2, 1e21, -1e-300];
const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

type Fuzzed = { frame: string | ArrayBuffer; valid?: string };

/** JSON text of `depth` nested arrays. */
const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth);

/**
 * One fuzzed frame: mostly malformed, about 2% valid publishes carrying a unique tag. `id` is
 * unique per socket, so every answer can be matched to its frame.
 */
function fuzzFrame(r: () => number, tag: () => string, id: number): Fuzzed {
  const c = Math.floor(r() * 20);
  if (r() < 0.02) {
    const t = tag();
    return { frame: JSON.stringify({ type: "publish", id, messages: [{ data: { fuzz: t, s: randomText(r, 8) } }] }), valid: t };
  }
  switch (c) {
    case 0: {
      const bytes = new Uint8Array(Math.floor(r() * 64));
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(r() * 256);
      return { frame: bytes.buffer };
    }
    case 1:
      return { frame: randomText(r, 80) || "x" };
    case 2: {
      const full = JSON.stringify({ type: "publish", id, messages: [{ data: { a: randomText(r, 20) } }] });
      return { frame: full.slice(0, Math.max(1, Math.floor(r() * (full.length - 1)))) }; // truncated JSON
    }
    case 3:
      return { frame: JSON.stringify({ type: "publish", id: randomText(r, 5), messages: [{ data: 1 }] }) };
    case 4:
      return { frame: JSON.stringify({ type: "publish", id, messages: "not an array" }) };
    case 5:
      return { frame: JSON.stringify({ type: "publish", id, messages: [] }) };
    case 6:
      return { frame: JSON.stringify({ type: "publish", id: pick(r, HUGE), messages: [{ data: 1 }] }) };
    case 7:
      return { frame: JSON.stringify({ type: "publish", id, messages: [{ data: 1, bytes: "AAAA" }] }) };
    case 8:
      return { frame: JSON.stringify({ type: "publish", id, messages: [{ bytes: "not base64!" }] }) };
    case 9:
      return { frame: JSON.stringify({ type: "publish", id, messages: [{ data: 1, headers: { "": randomText(r, 5) } }] }) };
    case 10:
      return { frame: JSON.stringify({ type: "publish", id, messages: [{ data: 1, key: "k".repeat(300) }] }) };
    case 11:
      return { frame: JSON.stringify({ type: "publish", id, messages: Array.from({ length: 1001 }, () => ({ data: 0 })) }) }; // batch_too_large
    case 12:
      return { frame: JSON.stringify({ type: randomText(r, 10), id }) };
    case 13:
      return { frame: JSON.stringify({ type: "credit", messages: pick(r, HUGE) }) };
    case 14:
      return { frame: JSON.stringify({ type: "subscribe", id, from: pick(r, [-1, "soon", { time: -5 }, 1e300, null]) }) };
    case 15: // deeper than MAX_DATA_DEPTH: too_deep, never a stack overflow or a lost frame
      return { frame: `{"type":"publish","id":${id},"messages":[{"data":1},{"data":${nested(129 + Math.floor(r() * 20_000))}}]}` };
    case 16: // a raw U+FFFD: what the runtime makes of invalid UTF-8
      return { frame: `{"type":"publish","id":${id},"messages":[{"data":"${randomText(r, 5).replace(/[^a-z]/gi, "")}\uFFFD"}]}` };
    case 17: // consumer groups: a consume that can never succeed (bad name or settings)
      return {
        frame: JSON.stringify(
          pick(r, [
            { type: "consume", id, group: "bad name!" },
            { type: "consume", id, group: "g", create: { ackWaitMs: 5 } },
            { type: "consume", id, group: "g", create: { deadLetterTopic: "../x" } },
            { type: "consume", id, group: "", maxAckPending: pick(r, HUGE) },
          ]),
        ),
      };
    case 18: // settle on a socket that does not consume, or with bad jobs
      return {
        frame: JSON.stringify(
          pick(r, [
            { type: "settle", id, op: "ack", jobs: [{ offset: 0, delivery: 1 }] },
            { type: "settle", id, op: "maybe", jobs: [{ offset: 0, delivery: 1 }] },
            { type: "settle", id, op: "ack", jobs: [{ offset: -1, delivery: 0 }] },
            { type: "settle", id, op: "nack", jobs: [], delayMs: pick(r, HUGE) },
          ]),
        ),
      };
    default:
      return {
        frame: JSON.stringify(
          pick(r, [null, [], 42, "str", true, { type: null }, { type: "publish", id, producer: { id: "", seq: -1 }, messages: [{ data: 1 }] }]),
        ),
      };
  }
}

const DOCUMENTED = new Set(Object.keys(ERROR_CODES));

/**
 * The invariant of issue 18: a frame that carries an id gets exactly one answer with that id.
 * Frames were numbered 1..sent; an answer may lack an id only if its frame had none we could read.
 */
function expectOneAnswerPerId(all: ReturnType<typeof answers>, sent: number, withId: ReadonlySet<number>): void {
  const count = new Map<number, number>();
  for (const a of all) {
    const id = (a as { id?: number }).id;
    if (id !== undefined) count.set(id, (count.get(id) ?? 0) + 1);
  }
  const twice = [...count].filter(([, n]) => n > 1).map(([id]) => id);
  expect(twice, "ids answered more than once").toEqual([]);
  expect(
    [...count.keys()].filter((id) => id < 1 || id > sent),
    "answers to ids never sent",
  ).toEqual([]);
  expect(
    [...withId].filter((id) => !count.has(id)),
    "frames with an id that got no answer with it",
  ).toEqual([]);
}

/** The id a server can read from a frame: a JSON object's safe-integer `id`. */
function readableId(frame: string | ArrayBuffer): number | undefined {
  if (typeof frame !== "string") return undefined;
  try {
    const v = JSON.parse(frame) as { id?: unknown } | null;
    const id = typeof v === "object" && v !== null && !Array.isArray(v) ? v.id : undefined;
    return typeof id === "number" && Number.isSafeInteger(id) && id >= 0 ? id : undefined;
  } catch {
    return undefined;
  }
}

/** Answers (ack/error frames) received so far, excluding subscription traffic. */
const answers = (s: TestSocket) => s.frames.filter((f) => f.type === "ack" || f.type === "error");

describe("fuzz", () => {
  it(`survives ${SOCKETS * FRAMES_PER_SOCKET + REQUESTS} malformed frames and requests; the log holds exactly the valid messages (seed ${SEED})`, {
    timeout: 600_000,
  }, async () => {
    const topic = freshTopic("fuzz");
    const subscriber = await openSocket(topic);
    subscriber.autoCredit = true;
    expect(await subscriber.subscribe("earliest", 1000)).toMatchObject({ type: "subscribed" });

    let tags = 0;
    const validTags: string[] = [];
    const tag = () => `v${tags++}`;

    async function fuzzSocket(index: number): Promise<void> {
      const r = seededRandom(SEED + index);
      // Plain sockets take frames much faster than hibernatable ones (docs/decisions/006-socket-modes.md).
      const s = await openSocket(topic, `/v1/topics/${topic}/ws${index % 4 === 0 ? "" : "?hibernate=0"}`);
      await s.frame("welcome");
      let sent = 0;
      let validHere = 0;
      const withId = new Set<number>();
      while (sent < FRAMES_PER_SOCKET) {
        const n = Math.min(BATCH, FRAMES_PER_SOCKET - sent);
        for (let i = 0; i < n; i++) {
          const f = fuzzFrame(r, tag, sent + i + 1);
          const id = readableId(f.frame);
          if (id !== undefined) withId.add(id);
          if (f.valid) {
            validTags.push(f.valid);
            validHere++;
          }
          s.sendRaw(f.frame);
        }
        sent += n;
        await s.until(() => answers(s).length >= sent || s.closed !== null, `answers to ${sent} frames on socket ${index}`, 120_000);
        expect(s.closed, `socket ${index} was closed`).toBeNull();
      }
      const all = answers(s);
      expect(all).toHaveLength(FRAMES_PER_SOCKET); // exactly one answer per frame
      expectOneAnswerPerId(all, FRAMES_PER_SOCKET, withId);
      for (const a of all) {
        if (a.type === "error") expect(DOCUMENTED.has(a.code), `undocumented code ${a.code}`).toBe(true);
      }
      expect(all.filter((a) => a.type === "ack")).toHaveLength(validHere);
      s.close();
    }

    async function fuzzRequests(): Promise<void> {
      const r = seededRandom(SEED ^ 0x5eed);
      const longName = "a".repeat(201);
      let done = 0;
      const one = async (): Promise<void> => {
        const c = Math.floor(r() * 10);
        let res: Response;
        switch (c) {
          case 0:
            res = await gatewayFetch(`/v1/topics/${topic}/messages`, { method: "POST", body: `${randomText(r, 50)}{` });
            break;
          case 1:
            res = await gatewayFetch(`/v1/topics/${topic}/messages`, { method: "POST", body: JSON.stringify({ messages: [{ data: 1, bytes: "AA==" }] }) });
            break;
          case 2:
            res = await gatewayFetch(`/v1/topics/${topic}/messages?from=${encodeURIComponent(pick(r, ["-1", "1e309", "abc", "99999999999999999", "%00"]))}`);
            break;
          case 3:
            res = await gatewayFetch(`/v1/topics/${topic}/messages?limit=${pick(r, ["0", "1001", "-5", "x"])}`);
            break;
          case 4:
            // Raw escapes too: a lone surrogate (%ED%A0%80) and a bad escape (%E0%A4%A) are not valid UTF-8.
            res = await gatewayFetch(`/v1/topics/${pick(r, [longName, "a..b", "a%20b", "%C3%A9", "%ED%A0%80", "%E0%A4%A", "a%2F%2Fb", "%00"])}/messages`);
            break;
          case 5:
            res = await gatewayFetch(`/v1/topics/${topic}`, {
              method: "PATCH",
              body: JSON.stringify({ retention: { maxMessages: pick(r, [-1, 1.5, "x", 1e308]) } }),
            });
            break;
          case 6:
            res = await gatewayFetch(`/v1/topics/${topic}/messages`, { method: "POST", body: JSON.stringify({ messages: [] }) });
            break;
          case 7:
            res = await gatewayFetch(`/v1/topics/${topic}/messages`, { method: "PUT", body: "{}" });
            break;
          case 8:
            res = await gatewayFetch(`/v1/topics/${topic}/messages`, { method: "POST", body: JSON.stringify({ data: 1, key: 7 }) });
            break;
          default:
            res = await gatewayFetch(`/v1/topics/${topic}/nope/${randomText(r, 4).replace(/[^a-z]/g, "")}`);
        }
        expect(res.status, `request case ${c}`).toBeGreaterThanOrEqual(400);
        expect(res.status, `request case ${c}`).toBeLessThan(500);
        const body = (await res.json()) as { error?: { code?: string } };
        expect(DOCUMENTED.has(body.error?.code ?? ""), `request case ${c}: ${JSON.stringify(body)}`).toBe(true);
      };
      await Promise.all(
        Array.from({ length: REQUEST_PARALLELISM }, async () => {
          while (done < REQUESTS) {
            done++;
            await one();
          }
        }),
      );
      // A few oversized payloads (message over the 1 MiB limit).
      const big = await gatewayFetch(`/v1/topics/${topic}/messages`, { method: "POST", body: JSON.stringify({ data: "x".repeat(1024 * 1024 + 10) }) });
      expect(big.status).toBe(413);
    }

    await Promise.all([...Array.from({ length: SOCKETS }, (_, i) => fuzzSocket(i)), fuzzRequests()]);

    // The log holds exactly the valid messages: each tag once, nothing else.
    const stored: string[] = [];
    for (let from = 0; ; ) {
      const res = (await (await gatewayFetch(`/v1/topics/${topic}/messages?from=${from}&limit=1000`)).json()) as {
        messages: { data: { fuzz: string } }[];
        next: number;
        head: number;
      };
      stored.push(...res.messages.map((m) => m.data.fuzz));
      from = res.next;
      if (from >= res.head) break;
    }
    expect(validTags.length).toBeGreaterThan(1000);
    expect(stored.length).toBe(validTags.length);
    expect([...stored].sort()).toEqual([...validTags].sort());
    // The subscriber read the same messages, in log order, while the fuzzing went on.
    const delivered = await subscriber.waitDelivered(validTags.length, 120_000);
    expect(delivered.map((m) => (m.data as { fuzz: string }).fuzz)).toEqual(stored);
    subscriber.close();
  });

  it(`answers every frame with an id exactly once also when the connection's rate limit refuses it (seed ${SEED})`, async () => {
    const topic = freshTopic("fuzz-rl");
    const { key } = await issueKey("default", ["publish:>", "subscribe:>"], { rate: { framesPerSecond: 5, frameBurst: 40 } });
    for (const path of [`/v1/topics/${topic}/ws`, `/v1/topics/${topic}/ws?hibernate=0`]) {
      const r = seededRandom(SEED + 99);
      const s = await openSocket(topic, path, { token: key });
      await s.frame("welcome");
      const withId = new Set<number>();
      const sent = 150; // within the refusal budget, so the socket stays open
      for (let i = 1; i <= sent; i++) {
        const f = fuzzFrame(r, () => `rl${i}`, i);
        const id = readableId(f.frame);
        if (id !== undefined) withId.add(id);
        s.sendRaw(f.frame);
      }
      await s.until(() => answers(s).length >= sent || s.closed !== null, `answers to ${sent} frames on ${path}`);
      expect(s.closed).toBeNull();
      const all = answers(s);
      expect(all).toHaveLength(sent);
      expect(all.some((a) => a.type === "error" && a.code === "rate_limited")).toBe(true);
      expectOneAnswerPerId(all, sent, withId);
      s.close();
    }
  });
});
