/**
 * The pure parts of Durable Streams subscriptions, without a runtime (decision 027): the glob
 * over stream paths, the webhook URL rule (SSRF), configuration checks and the hash's
 * normalization, the retry schedule, and SubscriptionStore over node:sqlite.
 */
import { DatabaseSync } from "node:sqlite";
import { describe, expect, it } from "vitest";
import type { SqlHandle } from "../../objects/log.ts";
import { RETRY_MAX_MS, retryDelayMs } from "../../objects/subscription-backoff.ts";
import { SubscriptionStore, type SubscriptionState } from "../../objects/subscription-store.ts";
import { configText, globMatches, globProblem, parseSubscriptionConfig, parseWakeRequest, webhookUrlProblem } from "../../protocol/ds-subscriptions.ts";

function sqliteHandle(db: DatabaseSync): SqlHandle {
  return {
    exec(query: string, ...bindings: unknown[]) {
      const statement = db.prepare(query);
      let rows: Record<string, unknown>[] = [];
      if (/^\s*SELECT/i.test(query)) rows = statement.all(...(bindings as never[])) as Record<string, unknown>[];
      else statement.run(...(bindings as never[]));
      return { toArray: () => rows, one: () => rows[0] };
    },
  } as unknown as SqlHandle;
}

describe("globMatches", () => {
  it("matches * as one segment and ** as zero or more", () => {
    const cases: [string, string, boolean][] = [
      ["events/*", "events/abc", true],
      ["events/*", "events/a/b", false],
      ["events/*", "events", false],
      ["events/**", "events", true],
      ["events/**", "events/a/b/c", true],
      ["**/done", "a/b/done", true],
      ["**/done", "done", true],
      ["**/done", "a/done/x", false],
      ["a/*/c", "a/b/c", true],
      ["a/*/c", "a/c", false],
      ["**", "anything/at/all", true],
      ["a.b/*", "a.b/x", true],
      ["a.b/*", "a-b/x", false],
      ["events/*", "eventsX/abc", false],
    ];
    for (const [pattern, path, expected] of cases) expect(globMatches(pattern, path), `${pattern} ~ ${path}`).toBe(expected);
  });

  it("refuses patterns that are not segments of path characters, * or **", () => {
    expect(globProblem("events/*")).toBeNull();
    expect(globProblem("**")).toBeNull();
    for (const bad of ["", "a//b", "a/[x]", "a/b*", "a/***", "/a", "a/", "a/../b"]) expect(globProblem(bad), bad).not.toBeNull();
  });
});

describe("webhookUrlProblem", () => {
  it("takes https to public hosts, and http to localhost only in local development", () => {
    expect(webhookUrlProblem("https://hooks.example/in", false)).toBeNull();
    expect(webhookUrlProblem("https://203.0.113.9:8443/h", false)).toBeNull();
    expect(webhookUrlProblem("http://localhost:9000/h", true)).toBeNull();
    expect(webhookUrlProblem("http://127.0.0.1:9000/h", true)).toBeNull();
    expect(webhookUrlProblem("http://127.0.0.7/h", true)).toBeNull();
    expect(webhookUrlProblem("http://localhost:9000/h", false)).not.toBeNull();
    expect(webhookUrlProblem("http://127.0.0.1/h", false)).not.toBeNull();
    expect(webhookUrlProblem("http://hooks.example/in", true)).not.toBeNull();
  });

  it("refuses private, loopback, link-local, metadata and local names, in development too", () => {
    for (const url of [
      "http://10.0.0.1/hook",
      "https://10.1.2.3/",
      "https://172.16.0.1/",
      "https://172.31.255.255/",
      "https://192.168.0.10/",
      "https://169.254.169.254/latest",
      "https://127.0.0.1/",
      "https://127.1.2.3/",
      "https://0.0.0.0/",
      "https://100.64.0.1/",
      "https://[::1]/",
      "https://[fd00::1]/",
      "https://[fe80::1]/",
      "https://[::ffff:10.0.0.1]/",
      "https://printer.local/",
      "https://metadata.google.internal/",
      "https://user:pw@hooks.example/",
      "http://127.0.1.1/h",
      "not a url",
    ]) {
      expect(webhookUrlProblem(url, true), url).not.toBeNull();
      expect(webhookUrlProblem(url, false), url).not.toBeNull();
    }
    expect(webhookUrlProblem("https://172.32.0.1/", false)).toBeNull();
  });
});

describe("parseSubscriptionConfig", () => {
  it("normalizes: defaults, sorted unique streams; the hash text ignores field order and stream order", () => {
    const a = parseSubscriptionConfig({ type: "webhook", streams: ["b/x", "a/y", "b/x"], webhook: { url: "https://h.example" } });
    const b = parseSubscriptionConfig({ webhook: { url: "https://h.example" }, streams: ["a/y", "b/x"], type: "webhook" });
    if ("error" in a || "error" in b) throw new Error("refused");
    expect(a.config).toEqual({
      type: "webhook",
      pattern: null,
      streams: ["a/y", "b/x"],
      webhookUrl: "https://h.example",
      wakeStream: null,
      leaseTtlMs: 30_000,
      description: null,
    });
    expect(configText(a.config)).toBe(configText(b.config));
    const c = parseSubscriptionConfig({ type: "webhook", streams: ["a/y", "b/x"], webhook: { url: "https://h.example" }, lease_ttl_ms: 30_001 });
    if ("error" in c) throw new Error("refused");
    expect(configText(c.config)).not.toBe(configText(a.config));
  });

  it("names the field of the first problem", () => {
    const refused = (body: unknown) => {
      const r = parseSubscriptionConfig(body);
      return "error" in r ? r.error : null;
    };
    expect(refused({ type: "webhook", pattern: "a/*", webhook: { url: "https://h" }, lease_ttl_ms: 999 })).toMatch(/^lease_ttl_ms/);
    expect(refused({ type: "pull-wake", pattern: "a/*", wake_stream: "w/p", webhook: { url: "https://h" } })).toMatch(/^webhook/);
    expect(refused({ type: "webhook", webhook: { url: "https://h" } })).toMatch(/pattern, streams/);
    expect(refused({ type: "pull-wake", pattern: "w/*", wake_stream: "w/p" })).toMatch(/^wake_stream/);
    expect(refused({ type: "webhook", streams: ["ok", "bad name"], webhook: { url: "https://h" } })).toMatch(/^streams\.1/);
  });

  it("checks callback and ack bodies", () => {
    expect(parseWakeRequest({ wake_id: "w_1", generation: 3 })).toEqual({ request: { wake_id: "w_1", generation: 3, acks: [], done: false } });
    expect("error" in parseWakeRequest({ wake_id: "w_1", generation: 0 })).toBe(true);
    expect("error" in parseWakeRequest({ wake_id: "w_1", generation: 1, acks: [{ stream: "a" }] })).toBe(true);
    expect("error" in parseWakeRequest({ wake_id: "w_1", generation: 1, extra: true })).toBe(true);
  });
});

describe("retryDelayMs", () => {
  it("doubles from 1 s to the 60 s cap, within ±20 %", () => {
    for (const [failures, base] of [
      [1, 1000],
      [2, 2000],
      [3, 4000],
      [6, 32_000],
      [7, 60_000],
      [30, 60_000],
    ] as const) {
      expect(retryDelayMs(failures, 0)).toBe(base * 0.8);
      expect(retryDelayMs(failures, 0.5)).toBe(base);
      expect(retryDelayMs(failures, 0.999999)).toBeLessThanOrEqual(Math.round(base * 1.2));
    }
    expect(retryDelayMs(50, 0.999999)).toBeLessThanOrEqual(RETRY_MAX_MS * 1.2);
  });
});

describe("SubscriptionStore over node:sqlite", () => {
  it("keeps the state and links across a reopen, and checks the schema version", () => {
    const db = new DatabaseSync(":memory:");
    const store = new SubscriptionStore(sqliteHandle(db));
    expect(store.state()).toBeNull();
    const state: SubscriptionState = {
      config: { type: "pull-wake", pattern: "a/*", streams: [], webhookUrl: null, wakeStream: "w/p", leaseTtlMs: 1000, description: null },
      hash: "h",
      createdAt: 1,
      deleted: false,
      base: "https://bus.example/v1/stream",
      secret: "s",
      generation: 4,
      wake: { id: "w_1", holder: "w1", leaseUntil: 5, snapshot: { "a/x": 3 } },
      retry: null,
      status: "active",
    };
    store.saveState(state);
    store.saveLink({ path: "a/x", glob: true, explicit: false, acked: 1, tail: 3 });
    store.saveLink({ path: "a/b", glob: false, explicit: true, acked: 0, tail: 0 });
    store.saveLink({ path: "a/x", glob: true, explicit: true, acked: 2, tail: 3 });
    const again = new SubscriptionStore(sqliteHandle(db));
    expect(again.state()).toEqual(state);
    expect([...again.links().values()]).toEqual([
      { path: "a/b", glob: false, explicit: true, acked: 0, tail: 0 },
      { path: "a/x", glob: true, explicit: true, acked: 2, tail: 3 },
    ]);
    again.deleteLink("a/b");
    expect([...again.links().keys()]).toEqual(["a/x"]);
    db.exec("UPDATE ds_sub_meta SET v = 99 WHERE k = 'schema'");
    expect(() => new SubscriptionStore(sqliteHandle(db))).toThrow(/schema version 99/);
  });
});
