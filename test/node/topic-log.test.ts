/**
 * TopicLog on its own, over Node's built-in SQLite (the same engine as a Durable Object's
 * storage), without a Durable Object: offsets, reads, time lookup, retention, producer records.
 */
import { DatabaseSync } from "node:sqlite";
import { describe, expect, it } from "vitest";
import { DovetailError } from "../../protocol/errors.ts";
import { prepareMessage, TopicLog, type SqlHandle } from "../../objects/log.ts";
import { knownError } from "../../objects/rpc-result.ts";

function sqliteHandle(db: DatabaseSync): { sql: SqlHandle; transaction: <T>(fn: () => T) => T } {
  const sql = {
    exec(query: string, ...bindings: unknown[]) {
      const statement = db.prepare(query);
      const isRead = /^\s*SELECT/i.test(query);
      let rows: Record<string, unknown>[] = [];
      if (isRead) rows = statement.all(...(bindings as never[])) as Record<string, unknown>[];
      else statement.run(...(bindings as never[]));
      return {
        toArray: () => rows,
        one: () => {
          if (rows.length !== 1) throw new Error(`expected one row, got ${rows.length}`);
          return rows[0];
        },
      };
    },
  } as unknown as SqlHandle;
  const transaction = <T>(fn: () => T): T => {
    db.exec("BEGIN");
    try {
      const result = fn();
      db.exec("COMMIT");
      return result;
    } catch (error) {
      db.exec("ROLLBACK");
      throw error;
    }
  };
  return { sql, transaction };
}

const NO_RETENTION = { maxAgeMs: 0, maxMessages: 0, maxBytes: 0 };

function openLog(db = new DatabaseSync(":memory:")) {
  const { sql, transaction } = sqliteHandle(db);
  return { db, log: new TopicLog(sql, transaction, { topic: "unit", retention: NO_RETENTION }) };
}

const msg = (n: number) => prepareMessage({ data: { n } }, 1024);

describe("TopicLog", () => {
  it("assigns consecutive offsets across groups and commits, and survives reopening", () => {
    const { db, log } = openLog();
    const r1 = log.appendGroups([{ messages: [msg(0), msg(1)] }, { messages: [msg(2)] }], 1000);
    expect(r1.map((r) => [r.offset, r.count])).toEqual([
      [0, 2],
      [2, 1],
    ]);
    const r2 = log.appendGroups([{ messages: [msg(3)] }], 1001);
    expect(r2[0]?.offset).toBe(3);
    const reopened = openLog(db).log;
    expect(reopened.info()).toMatchObject({ head: 4, earliest: 0, messages: 4 });
    expect(reopened.read(0, 10).map((r) => r.body)).toEqual(['"data":{"n":0}', '"data":{"n":1}', '"data":{"n":2}', '"data":{"n":3}']);
  });

  it("keeps times monotonic even if the clock steps back", () => {
    const { log } = openLog();
    log.appendGroups([{ messages: [msg(0)] }], 5000);
    log.appendGroups([{ messages: [msg(1)] }], 4000);
    expect(log.read(0, 2).map((r) => r.time)).toEqual([5000, 5000]);
  });

  it("stops a read at maxBytes but always returns at least one message", () => {
    const { log } = openLog();
    log.appendGroups([{ messages: [msg(10), msg(11), msg(12)] }], 1);
    // each payload {"n":1x} is 8 bytes
    expect(log.read(0, 10, 16)).toHaveLength(2);
    expect(log.read(0, 10, 1)).toHaveLength(1);
  });

  it("finds the first offset at or after a time by binary search", () => {
    const { log } = openLog();
    for (let t = 0; t < 100; t++) log.appendGroups([{ messages: [msg(t), msg(t)] }], 1000 + t * 10);
    expect(log.firstAtOrAfter(0)).toBe(0);
    expect(log.firstAtOrAfter(1000 + 37 * 10)).toBe(74);
    expect(log.firstAtOrAfter(1000 + 37 * 10 - 5)).toBe(74);
    expect(log.firstAtOrAfter(99999)).toBe(200);
  });

  it("trims by count, bytes and age and never moves head", () => {
    const { log } = openLog();
    for (let i = 0; i < 10; i++) log.appendGroups([{ messages: [msg(i)] }], 1000 + i * 100);
    log.setRetention({ maxAgeMs: 0, maxMessages: 8, maxBytes: 0 });
    expect(log.enforceRetention(5000)).toBe(2);
    log.setRetention({ maxAgeMs: 0, maxMessages: 0, maxBytes: 7 * 5 });
    // 7-byte payloads {"n":i}: keep the newest five
    expect(log.enforceRetention(5000)).toBe(5);
    log.setRetention({ maxAgeMs: 250, maxMessages: 0, maxBytes: 0 });
    expect(log.enforceRetention(1000 + 9 * 100)).toBe(7);
    expect(log.info()).toMatchObject({ head: 10, earliest: 7, messages: 3, bytes: 21 });
    expect(() => log.read(3, 1)).toThrowError(DovetailError);
    const [appended] = log.appendGroups([{ messages: [msg(10)] }], 9999);
    expect(appended?.offset).toBe(10);
  });

  it("a full database refuses a batch as storage_full without moving head, and takes messages again after a trim", () => {
    const { db, log } = openLog();
    log.appendGroups([{ messages: [msg(0)] }], 1000);
    // SQLite's own size limit, the way a Durable Object's is enforced: SQLITE_FULL from the insert.
    const pages = (db.prepare("PRAGMA page_count").get() as { page_count: number }).page_count;
    db.exec(`PRAGMA max_page_count = ${pages + 40}`);
    const big = (n: number) => prepareMessage({ data: { n, pad: "x".repeat(20_000) } }, 1 << 20);
    let n = 1;
    let failure: unknown = null;
    while (failure === null && n < 100) {
      try {
        log.appendGroups([{ messages: [big(n)] }], 1000 + n);
        n++;
      } catch (error) {
        failure = error;
      }
    }
    expect(String(failure)).toMatch(/database or disk is full/);
    expect(knownError(failure)).toMatchObject({ code: "storage_full", status: 507 });
    // The refused batch took no offset: head, bytes and the next append are those of the stored log.
    const full = log.info();
    expect(full).toMatchObject({ head: n, earliest: 0, messages: n });
    expect(openLog(db).log.info()).toMatchObject({ head: n, bytes: full.bytes });
    expect(() => log.appendGroups([{ messages: [big(n)] }], 9000)).toThrowError(/database or disk is full/);
    expect(log.info()).toEqual(full);

    // A trim, in steps as the topic makes them, frees pages the next messages reuse.
    expect(log.retentionCut(9000, { maxAgeMs: 0, maxMessages: 2, maxBytes: 0 })).toBe(n - 2);
    expect(log.trimTo(3)).toBe(3);
    expect(log.trimTo(n - 2)).toBe(n - 2);
    const [next] = log.appendGroups([{ messages: [big(n)] }], 9000);
    expect(next?.offset).toBe(n);
    expect(log.read(n - 2, 10).map((r) => r.offset)).toEqual([n - 2, n - 1, n]);
  });

  it("records producer batches within a window", () => {
    const { log } = openLog();
    for (let seq = 0; seq < 70; seq++) log.appendGroups([{ messages: [msg(seq)], producer: { id: "p", seq } }], 1);
    expect(log.lastProducerSeq("p")).toBe(69);
    expect(log.producerBatch("p", 69)).toEqual({ offset: 69, count: 1 });
    expect(log.producerBatch("p", 3)).toBeNull(); // outside the 64-entry window
    expect(log.lastProducerSeq("other")).toBeNull();
  });

  it("refuses a message over the size limit", () => {
    expect(() => prepareMessage({ data: "x".repeat(100) }, 50)).toThrowError(/limit is 50/);
    expect(prepareMessage({ bytes: "AAEC" }, 3)).toEqual({ body: '"bytes":"AAEC"', size: 3 });
    expect(prepareMessage({ data: "ü" }, 10).size).toBe(4); // quotes + 2-byte character
  });
});
