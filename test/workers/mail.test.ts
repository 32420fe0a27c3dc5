/**
 * Agent mail (docs/mail.md) inside workerd, through the real gateway: send and inboxes, read and
 * ack state, threads, FTS5 search with its filters and `invalid_query`, bcc privacy, permissions
 * with two tenants and two agents, bad input that stores nothing, the per-agent rate limit, live
 * copies on the inbox topic with resume, and mail surviving the object's eviction.
 */
import { evictDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import {
  inboxTopic,
  mailObjectName,
  MAX_MAIL_BODY_BYTES,
  type InboxPage,
  type MailDelivery,
  type MailMessage,
  type SearchPage,
  type ThreadPage,
} from "../../protocol/mail.ts";
import { bindings, gatewayFetch, issueKey, openSocket } from "./helpers.ts";

let counter = 0;
/** A tenant no other test uses (its own Registry and Mail objects). */
function freshTenant(): string {
  counter += 1;
  return `mail-${Date.now().toString(36)}-${counter}-${Math.random().toString(36).slice(2, 6)}`;
}

const ALL = ["publish:>", "subscribe:>"];

/** A tenant with registered agents and an all-scopes key. */
async function tenantWith(agents: string[]): Promise<{ tenant: string; key: string }> {
  const tenant = freshTenant();
  const { key } = await issueKey(tenant, ALL);
  for (const id of agents) {
    const r = await call(key, "POST", "/v1/agents", { id, ttlMs: 600_000 });
    expect(r.status).toBe(200);
  }
  return { tenant, key };
}

async function call(key: string, method: string, path: string, body?: unknown): Promise<Response> {
  const init: RequestInit = { method, headers: { Authorization: `Bearer ${key}` } };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)["Content-Type"] = "application/json";
  }
  return gatewayFetch(path, init);
}

async function json<T>(key: string, method: string, path: string, body?: unknown, status = 200): Promise<T> {
  const r = await call(key, method, path, body);
  const text = await r.text();
  expect(r.status, text).toBe(status);
  return JSON.parse(text) as T;
}

async function refused(key: string, method: string, path: string, body: unknown, status: number, code: string): Promise<string> {
  const r = await call(key, method, path, body);
  const b = (await r.json()) as { error: { code: string; message: string } };
  expect([r.status, b.error.code], b.error.message).toEqual([status, code]);
  return b.error.message;
}

function mailObject(tenant: string) {
  return bindings.MAIL.get(bindings.MAIL.idFromName(mailObjectName(tenant)));
}

describe("agent mail", () => {
  it("delivers to every recipient's inbox, newest first, with read and ack state", async () => {
    const { key } = await tenantWith(["alice", "bob", "carol"]);
    const first = await json<{ id: number; threadId: string; recipients: number }>(
      key,
      "POST",
      "/v1/mail/messages",
      {
        from: "alice",
        to: ["bob"],
        cc: ["carol", "bob"],
        subject: "plan",
        bodyMd: "# Plan\nship it",
        ackRequired: true,
        importance: "high",
        data: { step: 1 },
      },
      201,
    );
    expect(first).toMatchObject({ threadId: String(first.id), recipients: 2 });
    const second = await json<{ id: number; threadId: string }>(
      key,
      "POST",
      "/v1/mail/messages",
      { from: "carol", to: ["bob"], subject: "re: plan", bodyMd: "agreed", threadId: first.threadId },
      201,
    );
    expect(second.threadId).toBe(first.threadId);

    const inbox = await json<InboxPage>(key, "GET", "/v1/mail/inbox/bob");
    expect(inbox.messages.map((m) => m.id)).toEqual([second.id, first.id]);
    expect(inbox.messages[1]).toMatchObject({ from: "alice", to: ["bob"], cc: ["carol"], importance: "high", ackRequired: true, data: { step: 1 } });
    expect(inbox.messages[1]!.bodyMd).toBeUndefined();
    expect(inbox.messages[1]!.recipient).toEqual({ agent: "bob", kind: "to", readAt: null, ackedAt: null });
    expect((await json<InboxPage>(key, "GET", "/v1/mail/inbox/bob?bodies=true")).messages[1]!.bodyMd).toBe("# Plan\nship it");
    expect((await json<InboxPage>(key, "GET", "/v1/mail/inbox/carol")).messages.map((m) => m.recipient?.kind)).toEqual(["cc"]);

    const one = await json<MailMessage>(key, "GET", `/v1/mail/inbox/bob/${first.id}`);
    expect(one).toMatchObject({ subject: "plan", bodyMd: "# Plan\nship it", recipient: { readAt: null } });

    const read = await json<{ readAt: number; ackedAt: number | null }>(key, "POST", `/v1/mail/inbox/bob/${second.id}/read`);
    expect(read.readAt).toBeGreaterThan(0);
    expect(read.ackedAt).toBeNull();
    expect((await json<InboxPage>(key, "GET", "/v1/mail/inbox/bob?unread=true")).messages.map((m) => m.id)).toEqual([first.id]);
    const acked = await json<{ readAt: number; ackedAt: number }>(key, "POST", `/v1/mail/inbox/bob/${first.id}/ack`);
    expect(acked.ackedAt).toBeGreaterThan(0);
    expect(acked.readAt).toBe(acked.ackedAt);
    // Marking again keeps the first time.
    expect(await json(key, "POST", `/v1/mail/inbox/bob/${first.id}/ack`)).toMatchObject({ ackedAt: acked.ackedAt });
    expect((await json<InboxPage>(key, "GET", "/v1/mail/inbox/bob?unread=true")).messages).toEqual([]);

    const thread = await json<ThreadPage>(key, "GET", `/v1/mail/threads/${first.threadId}`);
    expect(thread.messages.map((m) => m.id)).toEqual([first.id, second.id]);
    expect(thread.messages[0]!.recipients).toEqual([
      { agent: "bob", kind: "to", readAt: acked.readAt, ackedAt: acked.ackedAt },
      { agent: "carol", kind: "cc", readAt: null, ackedAt: null },
    ]);
    // Not a recipient: the sender reads its sent message under its own name, others get not_found.
    expect(await json<MailMessage>(key, "GET", `/v1/mail/inbox/alice/${first.id}`)).toMatchObject({ id: first.id });
    await refused(key, "POST", `/v1/mail/inbox/alice/${first.id}/read`, undefined, 404, "not_found");
  });

  it("pages an inbox and filters it by thread and time", async () => {
    const { key } = await tenantWith(["a", "b"]);
    const ids: number[] = [];
    for (let n = 0; n < 5; n++) ids.push((await json<{ id: number }>(key, "POST", "/v1/mail/messages", { from: "a", to: ["b"], subject: `n${n}` }, 201)).id);
    const page1 = await json<InboxPage>(key, "GET", "/v1/mail/inbox/b?limit=2");
    expect(page1.messages.map((m) => m.id)).toEqual([ids[4], ids[3]]);
    const page2 = await json<InboxPage>(key, "GET", `/v1/mail/inbox/b?limit=2&before=${page1.next}`);
    expect(page2.messages.map((m) => m.id)).toEqual([ids[2], ids[1]]);
    expect((await json<InboxPage>(key, "GET", `/v1/mail/inbox/b?limit=2&before=${page2.next}`)).next).toBeUndefined();
    expect((await json<InboxPage>(key, "GET", `/v1/mail/inbox/b?thread=${ids[2]}`)).messages.map((m) => m.id)).toEqual([ids[2]]);
    const later = Date.now() + 60_000;
    expect((await json<InboxPage>(key, "GET", `/v1/mail/inbox/b?since=${later}`)).messages).toEqual([]);
    expect((await json<InboxPage>(key, "GET", "/v1/mail/inbox/b?since=0")).messages).toHaveLength(5);
  });

  it("refuses bad input with a clear error and stores nothing", async () => {
    const { tenant, key } = await tenantWith(["a", "b"]);
    const ok = { from: "a", to: ["b"], subject: "s" };
    await json(key, "POST", "/v1/mail/messages", ok, 201);
    const cases: [unknown, number, string][] = [
      [{ ...ok, to: [] }, 400, "invalid_field"],
      [{ ...ok, to: ["nobody"] }, 400, "unknown_recipient"],
      [{ ...ok, cc: ["b", "ghost"] }, 400, "unknown_recipient"],
      [{ ...ok, from: "ghost" }, 400, "unknown_recipient"],
      [{ ...ok, bodyMd: "x".repeat(MAX_MAIL_BODY_BYTES + 1) }, 413, "message_too_large"],
      [{ ...ok, data: { big: "x".repeat(20_000) } }, 413, "message_too_large"],
      [{ ...ok, subject: "" }, 400, "invalid_field"],
      [{ ...ok, importance: "whenever" }, 400, "invalid_field"],
      [{ ...ok, threadId: "bad thread" }, 400, "invalid_field"],
      [{ ...ok, to: ["not an id"] }, 400, "invalid_field"],
      [{ ...ok, extra: 1 }, 400, "invalid_field"],
      [{ ...ok, to: "b" }, 400, "invalid_field"],
      [[1, 2], 400, "invalid_field"],
      ["{not json", 400, "bad_frame"],
    ];
    for (const [body, status, code] of cases) await refused(key, "POST", "/v1/mail/messages", body, status, code);
    expect(await refused(key, "POST", "/v1/mail/messages", { ...ok, to: ["nobody", "b"] }, 400, "unknown_recipient")).toContain("nobody");
    await refused(key, "GET", "/v1/mail/inbox/b?limit=0", undefined, 400, "invalid_field");
    await refused(key, "GET", "/v1/mail/inbox/b?limit=x", undefined, 400, "invalid_field");
    await refused(key, "GET", "/v1/mail/inbox/b?colour=red", undefined, 400, "invalid_field");
    await refused(key, "GET", "/v1/mail/inbox/b/abc", undefined, 400, "invalid_field");
    await refused(key, "GET", "/v1/mail/inbox/b/999999", undefined, 404, "not_found");
    await refused(key, "GET", "/v1/mail/inbox/no%20pe", undefined, 400, "invalid_field");
    await refused(key, "GET", "/v1/mail/threads/nothing-here", undefined, 404, "not_found");
    await refused(key, "DELETE", "/v1/mail/inbox/b", undefined, 405, "method_not_allowed");
    expect(await mailObject(tenant).count()).toBe(1);
    expect((await json<InboxPage>(key, "GET", "/v1/mail/inbox/b")).messages).toHaveLength(1);
  });

  it("keeps bcc from everyone but the sender's readers and the bcc recipient", async () => {
    const { tenant, key } = await tenantWith(["alice", "bob", "carol"]);
    const sent = await json<{ id: number; threadId: string }>(
      key,
      "POST",
      "/v1/mail/messages",
      { from: "alice", to: ["bob"], bcc: ["carol"], subject: "secret", bodyMd: "hush" },
      201,
    );
    const bobKey = (await issueKey(tenant, ["subscribe:_mail.bob"])).key;
    const carolKey = (await issueKey(tenant, ["subscribe:_mail.carol"])).key;
    const aliceKey = (await issueKey(tenant, ["subscribe:_mail.alice"])).key;

    const asBob = await json<MailMessage>(bobKey, "GET", `/v1/mail/inbox/bob/${sent.id}`);
    expect(asBob.bcc).toBeUndefined();
    expect(JSON.stringify(asBob)).not.toContain("carol");
    const bobThread = await json<ThreadPage>(bobKey, "GET", `/v1/mail/threads/${sent.threadId}`);
    expect(JSON.stringify(bobThread)).not.toContain("carol");
    const bobSearch = await json<SearchPage>(bobKey, "GET", "/v1/mail/search?q=secret");
    expect(bobSearch.hits).toHaveLength(1);
    expect(JSON.stringify(bobSearch)).not.toContain("carol");
    expect((await json<SearchPage>(bobKey, "GET", "/v1/mail/search?q=secret&to=carol")).hits).toEqual([]);

    const asCarol = await json<MailMessage>(carolKey, "GET", `/v1/mail/inbox/carol/${sent.id}`);
    expect(asCarol.recipient).toMatchObject({ agent: "carol", kind: "bcc" });
    expect(asCarol.bcc).toBeUndefined();
    expect((await json<ThreadPage>(carolKey, "GET", `/v1/mail/threads/${sent.threadId}`)).messages[0]!.recipients!.map((r) => r.agent)).toEqual([
      "bob",
      "carol",
    ]);

    expect((await json<MailMessage>(aliceKey, "GET", `/v1/mail/inbox/alice/${sent.id}`)).bcc).toEqual(["carol"]);
    expect((await json<SearchPage>(aliceKey, "GET", "/v1/mail/search?q=secret&to=carol")).hits).toHaveLength(1);
  });

  it("lets an agent's credential read only its own mail, and a tenant only its own", async () => {
    const one = await tenantWith(["alice", "bob", "carol"]);
    const two = await tenantWith(["alice", "bob"]);
    await json(one.key, "POST", "/v1/mail/messages", { from: "carol", to: ["bob"], subject: "for bob only", bodyMd: "quarterly numbers" }, 201);
    await json(one.key, "POST", "/v1/mail/messages", { from: "carol", to: ["alice"], subject: "for alice", bodyMd: "quarterly numbers too" }, 201);
    const alice = (await issueKey(one.tenant, ["publish:_mail.alice", "subscribe:_mail.alice"])).key;

    await refused(alice, "GET", "/v1/mail/inbox/bob", undefined, 403, "forbidden");
    await refused(alice, "GET", "/v1/mail/inbox/bob/1", undefined, 403, "forbidden");
    await refused(alice, "POST", "/v1/mail/inbox/bob/1/read", undefined, 403, "forbidden");
    await refused(alice, "POST", "/v1/mail/messages", { from: "bob", to: ["carol"], subject: "forged" }, 403, "forbidden");
    const hits = await json<SearchPage>(alice, "GET", "/v1/mail/search?q=quarterly");
    expect(hits.hits.map((h) => h.message.subject)).toEqual(["for alice"]);
    const bobThread = (await json<InboxPage>(one.key, "GET", "/v1/mail/inbox/bob")).messages[0]!.threadId;
    await refused(alice, "GET", `/v1/mail/threads/${bobThread}`, undefined, 404, "not_found");
    // Alice may send as herself and read what she sent.
    const mine = await json<{ id: number }>(alice, "POST", "/v1/mail/messages", { from: "alice", to: ["bob"], subject: "hi bob" }, 201);
    expect((await json<MailMessage>(alice, "GET", `/v1/mail/inbox/alice/${mine.id}`)).subject).toBe("hi bob");
    // A credential without any inbox scope searches nothing.
    const stranger = (await issueKey(one.tenant, ["subscribe:jobs.>"])).key;
    expect((await json<SearchPage>(stranger, "GET", "/v1/mail/search?q=quarterly")).hits).toEqual([]);

    // The other tenant has agents of the same names and none of this mail.
    expect((await json<InboxPage>(two.key, "GET", "/v1/mail/inbox/bob")).messages).toEqual([]);
    expect((await json<SearchPage>(two.key, "GET", "/v1/mail/search?q=quarterly")).hits).toEqual([]);
    await refused(two.key, "POST", "/v1/mail/messages", { from: "alice", to: ["carol"], subject: "x" }, 400, "unknown_recipient");
  });

  it("searches with FTS5: ranking, highlighted snippets, filters", async () => {
    const { key } = await tenantWith(["a", "b", "c"]);
    const send = async (from: string, to: string, subject: string, bodyMd: string, threadId?: string) =>
      await json<{ id: number; threadId: string; createdAt: number }>(
        key,
        "POST",
        "/v1/mail/messages",
        { from, to: [to], subject, bodyMd, ...(threadId ? { threadId } : {}) },
        201,
      );
    const deploy = await send("a", "b", "deploy failed", "the deploy of service x failed at step 3");
    const mention = await send("b", "c", "weekly notes", "nothing about releases; one deploy mentioned", deploy.threadId);
    const other = await send("c", "a", "lunch", "pizza on friday");

    const hits = await json<SearchPage>(key, "GET", "/v1/mail/search?q=deploy");
    expect(hits.hits.map((h) => h.message.id)).toEqual([deploy.id, mention.id]);
    expect(hits.hits[0]!.rank).toBeLessThan(hits.hits[1]!.rank);
    expect(hits.hits[0]!.snippets.subject).toBe("**deploy** failed");
    expect(hits.hits[0]!.snippets.body).toContain("**deploy**");
    // Porter stemming: "failing" finds "failed"; a prefix query; a phrase; a column filter.
    expect((await json<SearchPage>(key, "GET", "/v1/mail/search?q=failing")).hits.map((h) => h.message.id)).toEqual([deploy.id]);
    expect((await json<SearchPage>(key, "GET", "/v1/mail/search?q=piz*")).hits.map((h) => h.message.id)).toEqual([other.id]);
    expect((await json<SearchPage>(key, "GET", `/v1/mail/search?q=${encodeURIComponent('"step 3"')}`)).hits).toHaveLength(1);
    expect((await json<SearchPage>(key, "GET", "/v1/mail/search?q=subject:deploy")).hits.map((h) => h.message.id)).toEqual([deploy.id]);
    expect((await json<SearchPage>(key, "GET", "/v1/mail/search?q=deploy&from=b")).hits.map((h) => h.message.id)).toEqual([mention.id]);
    expect((await json<SearchPage>(key, "GET", "/v1/mail/search?q=deploy&to=b")).hits.map((h) => h.message.id)).toEqual([deploy.id]);
    expect((await json<SearchPage>(key, "GET", `/v1/mail/search?q=deploy&thread=${deploy.threadId}`)).hits).toHaveLength(2);
    expect((await json<SearchPage>(key, "GET", `/v1/mail/search?q=deploy&since=${mention.createdAt + 1}`)).hits).toEqual([]);
    expect((await json<SearchPage>(key, "GET", `/v1/mail/search?q=deploy&until=${mention.createdAt + 1}`)).hits).toHaveLength(2);
    const page = await json<SearchPage>(key, "GET", "/v1/mail/search?q=deploy&limit=1");
    expect(page.next).toBe(1);
    expect((await json<SearchPage>(key, "GET", "/v1/mail/search?q=deploy&limit=1&offset=1")).hits.map((h) => h.message.id)).toEqual([mention.id]);

    for (const bad of ['"', "AND", "deploy AND", "(deploy", "nosuchcolumn:deploy", "NEAR(", "*", "deploy OR OR x", "^", "a:b:c", '"unterminated', "-", ")"]) {
      const r = await call(key, "GET", `/v1/mail/search?q=${encodeURIComponent(bad)}`);
      const b = (await r.json()) as { error?: { code: string } };
      // Never a 500: either FTS5 accepts it, or it is invalid_query.
      if (r.status !== 200) expect([r.status, b.error?.code], bad).toEqual([400, "invalid_query"]);
    }
    await refused(key, "GET", `/v1/mail/search?q=${encodeURIComponent("deploy AND")}`, undefined, 400, "invalid_query");
    await refused(key, "GET", "/v1/mail/search", undefined, 400, "invalid_field");
    await refused(key, "GET", "/v1/mail/search?q=%20", undefined, 400, "invalid_field");
  });

  it("limits each agent to its rate, with Retry-After", async () => {
    // vitest.workers.config.ts sets MAIL_RATE_PER_SECOND=5 (burst 200, as deployed), so the refill
    // during the test cannot hide the limit.
    const { key } = await tenantWith(["busy", "calm"]);
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let wave = 0; wave < 6; wave++) {
      const answers = await Promise.all(Array.from({ length: 50 }, () => call(key, "GET", "/v1/mail/inbox/busy?limit=1")));
      for (const r of answers) {
        statuses.push(r.status);
        if (r.status === 429) {
          retryAfter = r.headers.get("Retry-After");
          expect(((await r.json()) as { error: { code: string } }).error.code).toBe("rate_limited");
        } else await r.arrayBuffer();
      }
    }
    // The burst (200) passes, then refusals.
    expect(statuses.slice(0, 200).every((s) => s === 200)).toBe(true);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    // Another agent of the same credential has its own bucket.
    expect((await call(key, "GET", "/v1/mail/inbox/calm")).status).toBe(200);
  });

  it("publishes a live copy of each delivered message to the recipient's inbox topic, resumable by offset", async () => {
    const { key } = await tenantWith(["pub.one", "sub:two"]);
    const topic = inboxTopic("sub:two");
    expect(topic).toBe("_mail.sub~ctwo");
    await json(key, "POST", "/v1/mail/messages", { from: "pub.one", to: ["sub:two"], subject: "first", bodyMd: "1" }, 201);
    const socket = await openSocket(topic, undefined, { token: key });
    await socket.subscribe(0, 100);
    const [copy] = await socket.waitDelivered(1);
    const delivery = copy!.data as MailDelivery;
    expect(delivery).toMatchObject({
      kind: "mail",
      agent: "sub:two",
      message: { subject: "first", bodyMd: "1", from: "pub.one", recipient: { kind: "to", readAt: null } },
    });
    await json(key, "POST", "/v1/mail/messages", { from: "pub.one", to: ["sub:two"], subject: "second" }, 201);
    const both = await socket.waitDelivered(2);
    expect((both[1]!.data as MailDelivery).message.subject).toBe("second");
    socket.close();
    // Resume after the last offset seen.
    await json(key, "POST", "/v1/mail/messages", { from: "pub.one", to: ["sub:two"], subject: "third" }, 201);
    const again = await openSocket(topic, undefined, { token: key });
    await again.subscribe(both[1]!.offset + 1, 100);
    const [third] = await again.waitDelivered(1);
    expect((third!.data as MailDelivery).message.subject).toBe("third");
    again.close();
  });

  it("keeps mail across an eviction of the mail object", async () => {
    const { tenant, key } = await tenantWith(["x", "y"]);
    const sent = await json<{ id: number }>(key, "POST", "/v1/mail/messages", { from: "x", to: ["y"], subject: "durable words", ackRequired: true }, 201);
    await json(key, "POST", `/v1/mail/inbox/y/${sent.id}/ack`);
    await evictDurableObject(mailObject(tenant));
    const inbox = await json<InboxPage>(key, "GET", "/v1/mail/inbox/y");
    expect(inbox.messages[0]).toMatchObject({ id: sent.id, subject: "durable words" });
    expect(inbox.messages[0]!.recipient!.ackedAt).toBeGreaterThan(0);
    expect((await json<SearchPage>(key, "GET", "/v1/mail/search?q=durable")).hits).toHaveLength(1);
  });
});
