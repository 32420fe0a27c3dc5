/**
 * `GET /metrics` (docs/observability.md) through the real gateway, topic objects and
 * Directories: counts made in the topics reach the tenant's view within a report interval;
 * consumer-group lag, nacks and dead letters show; the gateway's refusals are counted by reason;
 * a tenant sees only its own topics; the operator's token sees every tenant.
 */
import { describe, expect, it } from "vitest";
import { anonymousFetch, freshTopic, gatewayFetch, issueKey, openSocket, until } from "./helpers.ts";

const enc = encodeURIComponent;
/** Set for tests in vitest.workers.config.ts; a deployment sets its own secret. */
const OPERATOR_TOKEN = "workers-tests-metrics-token";

async function metrics(token?: string): Promise<string> {
  const res = token === undefined ? await gatewayFetch("/metrics") : await anonymousFetch("/metrics", { headers: { Authorization: `Bearer ${token}` } });
  expect(res.status, await res.clone().text()).toBe(200);
  expect(res.headers.get("Content-Type")).toContain("text/plain; version=0.0.4");
  return res.text();
}

/** The value of the series `name{labels}` (labels in the order the bus writes them), or undefined. */
function value(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  return undefined;
}

async function publish(topic: string, messages: unknown[], token?: string): Promise<void> {
  const init = { method: "POST", body: JSON.stringify({ messages }) };
  const res = token
    ? await anonymousFetch(`/v1/topics/${enc(topic)}/messages`, { ...init, headers: { Authorization: `Bearer ${token}` } })
    : await gatewayFetch(`/v1/topics/${enc(topic)}/messages`, init);
  expect(res.status, await res.clone().text()).toBe(201);
}

describe("GET /metrics", () => {
  it("counts published and delivered messages per topic, with latency histograms", async () => {
    const topic = freshTopic("metrics");
    const ws = await openSocket(topic);
    ws.autoCredit = true;
    await ws.subscribe("latest");
    await publish(topic, [{ data: 1 }, { data: 2 }, { data: 3 }]);
    await ws.waitDelivered(3);
    const text = await until(async () => {
      const t = await metrics();
      const counted = value(t, `amb_messages_delivered_total{topic="${topic}"}`) === 3 && value(t, `amb_messages_published_total{topic="${topic}"}`) === 3;
      return counted && (value(t, 'amb_publish_duration_seconds_bucket{le="+Inf"}') ?? 0) >= 1 && t;
    }, "the topic's counts in /metrics");
    expect(value(text, `amb_messages_published_total{topic="${topic}"}`)).toBe(3);
    expect(value(text, `amb_commits_total{topic="${topic}"}`)).toBeGreaterThanOrEqual(1);
    expect(value(text, `amb_subscribers{topic="${topic}"}`)).toBe(1);
    expect(value(text, `amb_connections{topic="${topic}"}`)).toBe(1);
    expect(value(text, `amb_stored_messages{topic="${topic}"}`)).toBe(3);
    expect(value(text, 'amb_publish_duration_seconds_bucket{le="+Inf"}')).toBeGreaterThanOrEqual(1);
    expect(value(text, 'amb_delivery_duration_seconds_bucket{le="+Inf"}')).toBeGreaterThanOrEqual(3);
    expect(value(text, 'amb_commit_duration_seconds_bucket{le="+Inf"}')).toBeGreaterThanOrEqual(1);
    expect(text).toContain("# TYPE amb_publish_duration_seconds histogram");
    ws.ws.close();
  });

  it("shows a consumer group's lag, and counts nacks and dead letters by reason", async () => {
    const topic = freshTopic("metrics-group");
    const put = await gatewayFetch(`/v1/topics/${enc(topic)}/groups/workers`, { method: "PUT", body: JSON.stringify({ start: "earliest", maxDeliver: 1 }) });
    expect(put.status, await put.clone().text()).toBe(201);
    await publish(topic, [{ data: "a" }, { data: "b" }, { data: "c" }]);
    const lagged = await until(async () => {
      const t = await metrics();
      return value(t, `amb_queue_depth{topic="${topic}",group="workers"}`) === 3 && t;
    }, "the group's lag in /metrics");
    expect(value(lagged, `amb_group_pending{topic="${topic}",group="workers"}`)).toBe(0);
    const fetched = await gatewayFetch(`/v1/topics/${enc(topic)}/groups/workers/fetch`, { method: "POST", body: JSON.stringify({ member: "m1", max: 1 }) });
    const { jobs } = (await fetched.json()) as { jobs: { offset: number; delivery: number }[] };
    expect(jobs).toHaveLength(1);
    const nack = await gatewayFetch(`/v1/topics/${enc(topic)}/groups/workers/settle`, {
      method: "POST",
      body: JSON.stringify({ member: "m1", op: "nack", jobs: [{ offset: jobs[0]!.offset, delivery: jobs[0]!.delivery }] }),
    });
    expect(nack.status, await nack.clone().text()).toBe(200);
    const text = await until(async () => {
      const t = await metrics();
      return value(t, `amb_dlq_messages_total{topic="${topic}"}`) === 1 && t;
    }, "the dead letter in /metrics");
    expect(value(text, `amb_delivery_failures_total{topic="${topic}",reason="nack"}`)).toBe(1);
    expect(value(text, `amb_queue_depth{topic="${topic}",group="workers"}`)).toBe(2);
    expect(value(text, `amb_messages_published_total{topic="${topic}.dlq"}`)).toBe(1);
  });

  it("counts a subscriber running out of credit as backpressure", async () => {
    const topic = freshTopic("metrics-credit");
    const ws = await openSocket(topic);
    await ws.subscribe("latest", 2);
    await publish(topic, [{ data: 1 }, { data: 2 }, { data: 3 }]);
    await ws.waitDelivered(2);
    await until(async () => value(await metrics(), `amb_backpressure_activated_total{topic="${topic}"}`) === 1, "backpressure counted");
    ws.ws.close();
  });

  it("is refused without admin:>, and shows a tenant only its own topics", async () => {
    const publisher = await issueKey("default", ["publish:>"]);
    const res = await anonymousFetch("/metrics", { headers: { Authorization: `Bearer ${publisher.key}` } });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("forbidden");
    expect((await anonymousFetch("/metrics")).status).toBe(401);

    const tenant = `m${Date.now().toString(36)}`;
    const other = await issueKey(tenant, ["publish:>", "admin:>"]);
    const topic = freshTopic("metrics-other");
    await publish(topic, [{ data: 1 }], other.key);
    const theirs = await until(async () => {
      const t = await metrics(other.key);
      return t.includes(`topic="${topic}"`) && t;
    }, "the other tenant's topic in its view");
    expect(value(theirs, "amb_topics")).toBe(1);
    expect(await metrics()).not.toContain(`topic="${topic}"`);
    // The operator sees both tenants, each series labelled.
    const all = await until(async () => {
      const t = await metrics(OPERATOR_TOKEN);
      return t.includes(`amb_messages_published_total{tenant="${tenant}",topic="${topic}"} 1`) && t;
    }, "the other tenant in the operator's view");
    expect(all).toMatch(/amb_topics\{tenant="default"\} \d+/);
  });

  it("counts refused credentials by reason, and rate-limit refusals by reason", async () => {
    const bad = await anonymousFetch("/v1/topics/x", { headers: { Authorization: "Bearer not-a-credential" } });
    expect(bad.status).toBe(401);
    const missing = await anonymousFetch("/v1/topics/x");
    expect(missing.status).toBe(401);
    await until(async () => {
      const t = await metrics(OPERATOR_TOKEN);
      return (value(t, 'amb_auth_failures_total{reason="unrecognised"}') ?? 0) >= 1 && (value(t, 'amb_auth_failures_total{reason="missing"}') ?? 0) >= 1;
    }, "auth failures in the operator's view");

    const tenant = `r${Date.now().toString(36)}`;
    const slow = await issueKey(tenant, ["admin:>", "subscribe:>"], { rate: { requestsPerSecond: 0.001, burst: 2 } });
    let limited = 0;
    for (let i = 0; i < 4; i++) if ((await anonymousFetch("/v1/topics/x", { headers: { Authorization: `Bearer ${slow.key}` } })).status === 429) limited++;
    expect(limited).toBeGreaterThan(0);
    const admin = await issueKey(tenant, ["admin:>"]);
    await until(
      async () => value(await metrics(admin.key), 'amb_rate_limited_total{reason="api_key_requests"}') === limited,
      "rate-limit refusals in the tenant's view",
    );
  });
});
