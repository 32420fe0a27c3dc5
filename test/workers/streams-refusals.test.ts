/**
 * Refusals of the Durable Streams operations leave through the gateway's one error handler
 * (workers/middleware/errors.ts): the topic throws a DovetailError, its details cross RPC, and the
 * gateway writes the status, the protocol's headers (workers/streams-reply.ts) and the usual
 * error body with those details. The headers belong to the stream routes only.
 */
import { describe, expect, it } from "vitest";
import { encodeOffset } from "../../objects/stream-format.ts";
import { freshTopic, gatewayFetch } from "./helpers.ts";

const stream = (topic: string, init?: RequestInit) => gatewayFetch(`/v1/stream/${topic}`, init);
const json = { "Content-Type": "application/json" };
const producer = (epoch: number, seq: number) => ({ ...json, "Producer-Id": "p", "Producer-Epoch": String(epoch), "Producer-Seq": String(seq) });
const errorOf = async (res: Response) => ((await res.json()) as { error: Record<string, unknown> }).error;

describe("stream refusals", () => {
  it("an append to a closed stream is 409 with Stream-Closed and the final offset, in the headers and the body", async () => {
    const topic = freshTopic("dsr");
    await stream(topic, { method: "PUT", headers: { ...json, "Stream-Closed": "true" }, body: "[1,2]" });
    const res = await stream(topic, { method: "POST", headers: json, body: "3" });
    expect(res.status).toBe(409);
    expect(res.headers.get("stream-closed")).toBe("true");
    expect(res.headers.get("stream-next-offset")).toBe(encodeOffset(2));
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await errorOf(res)).toMatchObject({ code: "stream_closed", head: 2 });
    // The same refusal on the topic's own HTTP route carries no stream headers.
    const http = await gatewayFetch(`/v1/topics/${topic}/messages`, { method: "POST", body: JSON.stringify({ data: 3 }) });
    expect(http.status).toBe(409);
    expect(http.headers.get("stream-closed")).toBeNull();
    expect(await errorOf(http)).toMatchObject({ code: "stream_closed" });
  });

  it("a fenced producer is 403 with the current Producer-Epoch; a skipped seq is 409 with the expected and received seq", async () => {
    const topic = freshTopic("dsr");
    await stream(topic, { method: "PUT", headers: json });
    expect((await stream(topic, { method: "POST", headers: producer(1, 0), body: "0" })).status).toBe(200);
    const stale = await stream(topic, { method: "POST", headers: producer(0, 0), body: '"x"' });
    expect(stale.status).toBe(403);
    expect(stale.headers.get("producer-epoch")).toBe("1");
    expect(await errorOf(stale)).toMatchObject({ code: "stale_epoch", epoch: 1 });
    const gap = await stream(topic, { method: "POST", headers: producer(1, 5), body: '"x"' });
    expect(gap.status).toBe(409);
    expect(gap.headers.get("producer-expected-seq")).toBe("1");
    expect(gap.headers.get("producer-received-seq")).toBe("5");
    expect(await errorOf(gap)).toMatchObject({ code: "sequence_gap", expected: 1, received: 5 });
  });

  it("refusals of HEAD, DELETE and a fork's source have their code's status and the usual body", async () => {
    const topic = freshTopic("dsr");
    await stream(topic, { method: "PUT", headers: json, body: "[1]" });
    expect((await stream(topic, { method: "DELETE" })).status).toBe(204);
    expect((await stream(topic, { method: "HEAD" })).status).toBe(404);
    const again = await stream(topic, { method: "DELETE" });
    expect(again.status).toBe(404);
    expect(await errorOf(again)).toMatchObject({ code: "not_found" });
    const fork = await stream(`${topic}.fork`, { method: "PUT", headers: { ...json, "Stream-Forked-From": topic } });
    expect(fork.status).toBe(404);
    expect(await errorOf(fork)).toMatchObject({ code: "not_found" });
    expect((await stream(`${topic}.fork`, { method: "HEAD" })).status).toBe(404);
  });
});
