/**
 * Agent mail speed (docs/mail.md), against the issue 15 targets, over plain HTTP keep-alive
 * (Node's fetch, the harness's own load: one process, open-loop pacing for sends, closed-loop
 * workers for reads and searches) and the bus's WebSockets for live delivery.
 *
 *   node bench/mail-bench.ts [--quick]                  # starts its own bus (scripts/dev.mjs, auth off)
 *   node bench/mail-bench.ts --url http://127.0.0.1:8787 [--quick]
 *   node bench/mail-bench.ts --messages 20000 --send-seconds 5   # smaller seed, shorter paced phase
 *
 * Phases, in one run:
 * 1. seed: MESSAGES messages (100,000; 10,000 with --quick) from SENDERS agents to RECIPIENTS
 *    agents, as fast as SEED_CONCURRENCY sends in flight allow (the send throughput).
 * 2. send: paced at SEND_RATE msg/s (open loop: latency from each send's intended time) for
 *    SEND_SECONDS; p50/p99 against < 10 ms / < 100 ms at > 1,000 msg/s.
 * 3. inbox: READ_WORKERS closed-loop readers of inbox pages (50 newest) over every recipient;
 *    p50/p99 against < 5 ms / < 50 ms, reads/s against > 5,000.
 * 4. search: SEARCH_WORKERS closed-loop searches (one word of the vocabulary, 20 hits) over the
 *    whole tenant; p50/p99 against < 20 ms / < 100 ms, searches/s against > 500.
 * 5. agents: CONNECTED agents subscribe to their inbox topics over WebSockets, one mail each is
 *    sent, every copy must arrive (> 100 connected agents).
 * 6. rate limit: one agent asked for its inbox 10 × its burst at once, then at 10 × its rate for
 *    3 s: how many answers are 200 and 429, and whether each 429 carries Retry-After.
 *
 * Every answer is checked (status 201/200 where expected; a failure is counted and reported). The
 * per-agent limit (100/s, burst 200) stays on: the load is spread over enough agents that no agent
 * goes over it except in phase 6. The last stdout line is one JSON object with every figure.
 */
import * as hdr from "hdr-histogram-js";

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(name);
const option = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const quick = flag("--quick");
const MESSAGES = Number(option("--messages") ?? (quick ? 10_000 : 100_000));
const SENDERS = 50;
const RECIPIENTS = 200;
const SEED_CONCURRENCY = 32;
const SEND_RATE = Number(option("--send-rate") ?? 1_200);
const SEND_SECONDS = Number(option("--send-seconds") ?? (quick ? 5 : 15));
/** Most paced sends in flight: past it a send waits for one to finish (its latency still counts from its intended time). */
const MAX_IN_FLIGHT = 256;
const READ_WORKERS = 32;
const READ_SECONDS = quick ? 5 : 15;
const SEARCH_WORKERS = 16;
const SEARCH_SECONDS = quick ? 5 : 15;
const CONNECTED = 150;
const RATE_BURST = 200;
const RATE_PER_SECOND = 100;

/** A vocabulary with a Zipf-like spread: word k appears about 1/k as often as word 1. */
const WORDS = Array.from({ length: 2_000 }, (_, k) => `w${k.toString(36)}${"xyzq"[k % 4]}`);
const TOPICAL = ["deploy", "parser", "review", "failure", "release", "budget", "latency", "migration", "incident", "schema"];

let seed = 42;
function random(): number {
  seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
  return seed / 2_147_483_648;
}
const zipfWord = () => WORDS[Math.min(WORDS.length - 1, Math.floor(Math.exp(random() * Math.log(WORDS.length))) - 1)]!;

function body(): string {
  const words: string[] = [];
  for (let k = 0; k < 30; k++) words.push(random() < 0.1 ? TOPICAL[Math.floor(random() * TOPICAL.length)]! : zipfWord());
  return words.join(" ");
}

const histogram = () => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });
const ms = (h: hdr.Histogram, p: number) => Math.round(h.getValueAtPercentile(p) / 10) / 100; // recorded in µs
const round = (n: number, d = 1) => Math.round(n * 10 ** d) / 10 ** d;

async function main(): Promise<void> {
  let base = option("--url");
  let stop: (() => Promise<void>) | null = null;
  if (!base) {
    const { startBus } = await import("../test/support/bus-process.ts");
    const bus = await startBus({ vars: { DOVETAIL_AUTH: "off" } });
    base = bus.url;
    stop = () => bus.stop();
  }
  const url = base.replace(/\/+$/, "");
  const json = { "Content-Type": "application/json" };
  const failures: string[] = [];
  const fail = (what: string) => {
    if (failures.length < 20) failures.push(what);
  };
  try {
    const tag = Date.now().toString(36);
    const sender = (k: number) => `s${k}-${tag}`;
    const recipient = (k: number) => `r${k}-${tag}`;
    const agents = [...Array.from({ length: SENDERS }, (_, k) => sender(k)), ...Array.from({ length: RECIPIENTS }, (_, k) => recipient(k)), `limited-${tag}`];
    for (let k = 0; k < agents.length; k += 25) {
      await Promise.all(
        agents.slice(k, k + 25).map(async (id) => {
          const r = await fetch(`${url}/v1/agents`, { method: "POST", headers: json, body: JSON.stringify({ id, ttlMs: 600_000 }) });
          if (r.status !== 200) throw new Error(`registering ${id}: ${r.status} ${await r.text()}`);
        }),
      );
    }

    let sent = 0;
    async function send(n: number): Promise<boolean> {
      const mail = {
        from: sender(n % SENDERS),
        to: [recipient(Math.floor(random() * RECIPIENTS))],
        subject: `${TOPICAL[n % TOPICAL.length]} ${zipfWord()} #${n}`,
        bodyMd: body(),
      };
      const r = await fetch(`${url}/v1/mail/messages`, { method: "POST", headers: json, body: JSON.stringify(mail) }).catch((e: unknown) => e as Error);
      if (r instanceof Error) {
        fail(`send: ${r.message}`);
        return false;
      }
      const text = await r.text();
      if (r.status !== 201) {
        fail(`send: ${r.status} ${text.slice(0, 200)}`);
        return false;
      }
      sent++;
      return true;
    }

    // 1. Seed: as fast as SEED_CONCURRENCY in flight go.
    const seedStart = performance.now();
    const seedH = histogram();
    let next = 0;
    await Promise.all(
      Array.from({ length: SEED_CONCURRENCY }, async () => {
        while (next < MESSAGES) {
          const t = performance.now();
          await send(next++);
          seedH.recordValue(Math.max(1, Math.round((performance.now() - t) * 1000)));
        }
      }),
    );
    const seedSeconds = (performance.now() - seedStart) / 1000;
    const seedRate = sent / seedSeconds;
    console.error(`seed: ${sent} messages in ${round(seedSeconds)} s (${Math.round(seedRate)} msg/s)`);

    // 2. Paced sends: latency from the intended send time (no coordinated omission).
    const sendH = histogram();
    const total = SEND_RATE * SEND_SECONDS;
    const paceStart = performance.now();
    const inFlight = new Set<Promise<void>>();
    let sendOk = 0;
    for (let i = 0; i < total; i++) {
      const intended = paceStart + (i * 1000) / SEND_RATE;
      const wait = intended - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      while (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight);
      const p: Promise<void> = send(MESSAGES + i).then((ok) => {
        if (ok) sendOk++;
        sendH.recordValue(Math.max(1, Math.round((performance.now() - intended) * 1000)));
        inFlight.delete(p);
      });
      inFlight.add(p);
    }
    await Promise.all(inFlight);
    const sendSeconds = (performance.now() - paceStart) / 1000;
    console.error(`send: ${sendOk} at ${Math.round(sendOk / sendSeconds)} msg/s, p50 ${ms(sendH, 50)} ms, p99 ${ms(sendH, 99)} ms`);

    // 3 and 4: closed-loop workers for a fixed time.
    async function closedLoop(workers: number, seconds: number, one: () => Promise<boolean>): Promise<{ h: hdr.Histogram; ok: number; perSecond: number }> {
      const h = histogram();
      let ok = 0;
      const end = performance.now() + seconds * 1000;
      const started = performance.now();
      await Promise.all(
        Array.from({ length: workers }, async () => {
          while (performance.now() < end) {
            const t = performance.now();
            if (await one()) ok++;
            h.recordValue(Math.max(1, Math.round((performance.now() - t) * 1000)));
          }
        }),
      );
      return { h, ok, perSecond: ok / ((performance.now() - started) / 1000) };
    }
    let reader = 0;
    const inbox = await closedLoop(READ_WORKERS, READ_SECONDS, async () => {
      const r = await fetch(`${url}/v1/mail/inbox/${recipient(reader++ % RECIPIENTS)}?limit=50`).catch((e: unknown) => e as Error);
      if (r instanceof Error) {
        fail(`inbox: ${r.message}`);
        return false;
      }
      const page = (await r.json()) as { messages?: unknown[] };
      if (r.status !== 200 || !Array.isArray(page.messages)) {
        fail(`inbox: ${r.status} ${JSON.stringify(page).slice(0, 200)}`);
        return false;
      }
      return true;
    });
    console.error(`inbox: ${Math.round(inbox.perSecond)} reads/s, p50 ${ms(inbox.h, 50)} ms, p99 ${ms(inbox.h, 99)} ms`);
    let hits = 0;
    let searches = 0;
    const search = await closedLoop(SEARCH_WORKERS, SEARCH_SECONDS, async () => {
      const q = random() < 0.5 ? TOPICAL[Math.floor(random() * TOPICAL.length)]! : zipfWord();
      const r = await fetch(`${url}/v1/mail/search?q=${encodeURIComponent(q)}&limit=20`).catch((e: unknown) => e as Error);
      if (r instanceof Error) {
        fail(`search: ${r.message}`);
        return false;
      }
      const page = (await r.json()) as { hits?: unknown[] };
      if (r.status !== 200 || !Array.isArray(page.hits)) {
        fail(`search: ${r.status} ${JSON.stringify(page).slice(0, 200)}`);
        return false;
      }
      searches++;
      hits += page.hits.length;
      return true;
    });
    console.error(
      `search: ${Math.round(search.perSecond)} searches/s, p50 ${ms(search.h, 50)} ms, p99 ${ms(search.h, 99)} ms, ${round(hits / Math.max(1, searches))} hits each`,
    );

    // 5. Connected agents: each subscribes to its inbox topic and must get its copy.
    const wsBase = url.replace(/^http/, "ws");
    const targets = Array.from({ length: CONNECTED }, (_, k) => recipient(k % RECIPIENTS));
    const unique = [...new Set(targets)];
    const marker = `live-${tag}`;
    const sockets: WebSocket[] = [];
    const received = new Set<string>();
    let connected = 0;
    await Promise.all(
      unique.map(
        (agent) =>
          new Promise<void>((resolve, reject) => {
            const ws = new WebSocket(`${wsBase}/v1/topics/${encodeURIComponent(`_mail.${agent}`)}/ws`);
            sockets.push(ws);
            ws.addEventListener("message", (e) => {
              const frame = JSON.parse(String(e.data)) as { type: string; messages?: { data: { message: { subject: string } } }[] };
              if (frame.type === "welcome") ws.send(JSON.stringify({ type: "subscribe", id: 1, from: "latest", credit: 1000 }));
              else if (frame.type === "subscribed") {
                connected++;
                resolve();
              } else if (frame.type === "messages") {
                for (const m of frame.messages ?? []) if (m.data.message.subject === marker) received.add(agent);
              }
            });
            ws.addEventListener("error", () => reject(new Error(`socket of ${agent} failed`)));
          }),
      ),
    );
    const liveStart = performance.now();
    await Promise.all(
      unique.map(async (agent, k) => {
        const r = await fetch(`${url}/v1/mail/messages`, {
          method: "POST",
          headers: json,
          body: JSON.stringify({ from: sender(k % SENDERS), to: [agent], subject: marker }),
        });
        if (r.status !== 201) fail(`live send: ${r.status} ${await r.text()}`);
        else await r.arrayBuffer();
      }),
    );
    const liveDeadline = performance.now() + 30_000;
    while (received.size < unique.length && performance.now() < liveDeadline) await new Promise((r) => setTimeout(r, 20));
    const liveMs = performance.now() - liveStart;
    for (const ws of sockets) ws.close();
    console.error(`agents: ${connected} connected, ${received.size} got their copy in ${Math.round(liveMs)} ms`);

    // 6. The limiter under 10 × its burst at once, then 10 × its rate for 3 s.
    const limited = `limited-${tag}`;
    const count = { ok: 0, limited: 0, other: 0, retryAfter: 0 };
    const ask = async () => {
      const r = await fetch(`${url}/v1/mail/inbox/${limited}?limit=1`).catch((e: unknown) => e as Error);
      if (r instanceof Error) {
        count.other++;
        return;
      }
      await r.arrayBuffer();
      if (r.status === 200) count.ok++;
      else if (r.status === 429) {
        count.limited++;
        if (Number(r.headers.get("Retry-After")) >= 1) count.retryAfter++;
      } else count.other++;
    };
    await new Promise((r) => setTimeout(r, 2_500)); // a full bucket
    await Promise.all(Array.from({ length: RATE_BURST * 10 }, ask));
    const burst = { ...count };
    Object.assign(count, { ok: 0, limited: 0, other: 0, retryAfter: 0 });
    await new Promise((r) => setTimeout(r, 2_500));
    const sustainedStart = performance.now();
    const asks: Promise<void>[] = [];
    for (let i = 0; i < RATE_PER_SECOND * 10 * 3; i++) {
      const wait = sustainedStart + i / ((RATE_PER_SECOND * 10) / 1000) - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      asks.push(ask());
    }
    await Promise.all(asks);
    const sustainedSeconds = (performance.now() - sustainedStart) / 1000;
    const sustained = { ...count, seconds: round(sustainedSeconds, 2), admittedPerSecond: round(count.ok / sustainedSeconds) };
    console.error(
      `rate limit: burst of ${RATE_BURST * 10}: ${burst.ok} ok, ${burst.limited} 429; 10x rate for 3 s: ${sustained.ok} ok, ${sustained.limited} 429`,
    );

    const result = {
      quick,
      messagesStored: MESSAGES + sendOk,
      seed: {
        messages: sent - sendOk,
        seconds: round(seedSeconds),
        msgPerSec: Math.round(seedRate),
        concurrency: SEED_CONCURRENCY,
        p50Ms: ms(seedH, 50),
        p99Ms: ms(seedH, 99),
      },
      send: {
        targetRate: SEND_RATE,
        achievedMsgPerSec: Math.round(sendOk / sendSeconds),
        p50Ms: ms(sendH, 50),
        p99Ms: ms(sendH, 99),
        goals: { p50Ms: 10, p99Ms: 100, msgPerSec: 1000 },
      },
      inbox: {
        readsPerSec: Math.round(inbox.perSecond),
        p50Ms: ms(inbox.h, 50),
        p99Ms: ms(inbox.h, 99),
        workers: READ_WORKERS,
        goals: { p50Ms: 5, p99Ms: 50, readsPerSec: 5000 },
      },
      search: {
        searchesPerSec: Math.round(search.perSecond),
        p50Ms: ms(search.h, 50),
        p99Ms: ms(search.h, 99),
        hitsPerSearch: round(hits / Math.max(1, searches)),
        workers: SEARCH_WORKERS,
        goals: { p50Ms: 20, p99Ms: 100, searchesPerSec: 500 },
      },
      agents: { connected, delivered: received.size, wanted: unique.length, ms: Math.round(liveMs), goal: 100 },
      rateLimit: { limitPerSecond: RATE_PER_SECOND, burst: RATE_BURST, burst10x: burst, rate10xFor3s: sustained },
      failures,
    };
    console.log(JSON.stringify(result));
  } finally {
    await stop?.();
  }
}

await main();
