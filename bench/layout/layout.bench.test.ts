/**
 * Storage layout measurement (docs/decisions/003-storage-layout.md): row per message vs row per
 * batch, inside workerd on a real Durable Object's SQLite. Not a test of correctness; run with
 * `npx vitest run --config bench/layout/vitest.config.ts` and read the JSON line it prints.
 */
import { env } from "cloudflare:workers";
import { runInDurableObject } from "cloudflare:test";
import { it } from "vitest";
import { prepareMessage } from "../../objects/log.ts";

const MESSAGES = 100_000;
const payload = { text: "x".repeat(84) };

interface Layout {
  name: string;
  setup(sql: SqlStorage): void;
  append(sql: SqlStorage, first: number, time: number, bodies: string[]): void;
  read(sql: SqlStorage, from: number, limit: number): string[];
}

const rowPerMessage: Layout = {
  name: "row per message",
  setup(sql) {
    sql.exec("CREATE TABLE m (off INTEGER PRIMARY KEY, time INTEGER, size INTEGER, body TEXT)");
  },
  append(sql, first, time, bodies) {
    for (let i = 0; i < bodies.length; i += 25) {
      const n = Math.min(25, bodies.length - i);
      const values: unknown[] = [];
      for (let j = 0; j < n; j++) values.push(first + i + j, time, bodies[i + j]!.length, bodies[i + j]);
      sql.exec(`INSERT INTO m VALUES ${new Array(n).fill("(?,?,?,?)").join(",")}`, ...values);
    }
  },
  read(sql, from, limit) {
    return sql
      .exec<{ off: number; time: number; body: string }>("SELECT off, time, body FROM m WHERE off >= ? ORDER BY off LIMIT ?", from, limit)
      .toArray()
      .map((r) => `{"offset":${r.off},"time":${r.time},${r.body}}`);
  },
};

const rowPerMessageJsonEach: Layout = {
  ...rowPerMessage,
  name: "row per message, json_each insert",
  append(sql, first, time, bodies) {
    const pairs = bodies.map((b) => `[${b.length},${JSON.stringify(b)}]`).join(",");
    sql.exec("INSERT INTO m SELECT ?1 + CAST(key AS INTEGER), ?2, value ->> '$[0]', value ->> '$[1]' FROM json_each(?3)", first, time, `[${pairs}]`);
  },
};

const rowPerBatch: Layout = {
  name: "row per batch",
  setup(sql) {
    sql.exec("CREATE TABLE b (first INTEGER PRIMARY KEY, count INTEGER, time INTEGER, bodies TEXT)");
  },
  append(sql, first, time, bodies) {
    // JSON text never holds a raw newline, so it separates bodies safely.
    sql.exec("INSERT INTO b VALUES (?,?,?,?)", first, bodies.length, time, bodies.join("\n"));
  },
  read(sql, from, limit) {
    const rows = sql.exec<{ first: number; count: number; time: number; bodies: string }>(
      "SELECT first, count, time, bodies FROM b WHERE first > (SELECT IFNULL(MAX(first), -1) FROM b WHERE first <= ?) - 1 ORDER BY first LIMIT ?",
      from,
      Math.ceil(limit / 1) + 1,
    );
    const out: string[] = [];
    for (const r of rows) {
      const bodies = r.bodies.split("\n");
      for (let i = 0; i < bodies.length && out.length < limit; i++) {
        const offset = r.first + i;
        if (offset >= from) out.push(`{"offset":${offset},"time":${r.time},${bodies[i]}}`);
      }
      if (out.length >= limit) break;
    }
    return out;
  },
};

async function measure(layout: Layout, batchSize: number) {
  const stub = env.TOPIC.get(env.TOPIC.idFromName(`layout-${layout.name}-${batchSize}-${Math.random()}`));
  return runInDurableObject(stub, (_instance, state) => {
    const sql = state.storage.sql;
    layout.setup(sql);
    const bodies = Array.from({ length: batchSize }, () => prepareMessage({ data: payload }, 1 << 20).body);
    let t = performance.now();
    for (let first = 0; first < MESSAGES; first += batchSize) {
      state.storage.transactionSync(() => layout.append(sql, first, Date.now(), bodies));
    }
    const ingestMs = performance.now() - t;
    t = performance.now();
    let read = 0;
    for (let from = 0; from < MESSAGES; from += 1000) read += layout.read(sql, from, 1000).length;
    const scanMs = performance.now() - t;
    if (read !== MESSAGES) throw new Error(`${layout.name} read ${read}`);
    t = performance.now();
    for (let i = 0; i < 1000; i++) {
      const from = Math.floor(Math.random() * (MESSAGES - 10));
      const page = layout.read(sql, from, 10);
      if (!page[0]?.startsWith(`{"offset":${from},`)) throw new Error(`${layout.name} random read at ${from} wrong`);
    }
    const randomMs = performance.now() - t;
    return {
      layout: layout.name,
      commitMessages: batchSize,
      ingestMsgPerSec: Math.round(MESSAGES / (ingestMs / 1000)),
      scanMsgPerSec: Math.round(MESSAGES / (scanMs / 1000)),
      randomReadsPerSec: Math.round(1000 / (randomMs / 1000)),
    };
  });
}

it("measures storage layouts", async () => {
  const results = [];
  for (const batch of [10, 100, 1000]) for (const layout of [rowPerMessage, rowPerMessageJsonEach, rowPerBatch]) results.push(await measure(layout, batch));
  console.log(JSON.stringify({ messages: MESSAGES, payloadBytes: 100, results }));
});
