/**
 * W3C trace context through the SDK and the real bus process (docs/observability.md, "Tracing"):
 * one trace id followed from a publisher (its active OpenTelemetry span) through a consumer
 * group's worker to a request and its responder's reply; a publish with no active span starts a
 * trace of its own; a traceparent the application sets is kept; a durable request keeps it too.
 * OpenTelemetry here is `@opentelemetry/api` with the AsyncLocalStorage context manager, as a
 * Node application would set it up; the SDK finds the package at run time.
 */
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { context, ROOT_CONTEXT, trace } from "@opentelemetry/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBus, type BusProcess } from "../support/bus-process.ts";
import { freshTopic, sdkClients } from "../support/sdk-clients.ts";

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;
let bus: BusProcess;
const clients = sdkClients(() => bus);

function randomHex(bytes: number): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString("hex");
}

/** Run `fn` as if inside an OpenTelemetry span of trace `traceId`. */
function inSpan<R>(traceId: string, spanId: string, fn: () => R): R {
  return context.with(trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId, traceFlags: 1 }), fn);
}

async function readHeaders(topic: string): Promise<Record<string, string>[]> {
  const res = await fetch(`${bus.url}/v1/topics/${topic}/messages?from=0`, { headers: { Authorization: `Bearer ${bus.token}` } });
  return ((await res.json()) as { messages: { headers?: Record<string, string> }[] }).messages.map((m) => m.headers ?? {});
}

describe("trace context", () => {
  beforeAll(async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    bus = await startBus({ auth: true });
  }, 120_000);
  afterAll(async () => {
    await clients.closeAll();
    await bus?.stop();
    context.disable();
  });

  it("follows one trace id from a publisher through a consumer group to a request and its reply", async () => {
    const work = freshTopic("trace.work");
    const service = freshTopic("trace.svc");
    const [publisher, worker, responder] = [clients.client(), clients.client(), clients.client()];
    await responder.serve(service, (_data, ctx) => ({ traceparent: ctx.traceparent, active: trace.getSpanContext(context.active())?.traceId }));
    const seen: { job: string | undefined; reply: { traceparent?: string; active?: string } }[] = [];
    const consumer = worker.consume(work, "workers", { create: { start: "earliest" } }, async (job) => {
      const reply = (await worker.request(service, job.data)) as { traceparent?: string; active?: string };
      seen.push({ job: job.headers.traceparent, reply });
    });

    const traceId = randomHex(16);
    const spanId = randomHex(8);
    await inSpan(traceId, spanId, () => publisher.publish(work, { task: 1 }));
    const deadline = Date.now() + 20_000;
    while (seen.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    consumer.close();

    expect(seen).toHaveLength(1);
    // The stored message and the job carry the publisher's span as the parent.
    expect((await readHeaders(work))[0]?.traceparent).toBe(`00-${traceId}-${spanId}-01`);
    expect(seen[0]!.job).toBe(`00-${traceId}-${spanId}-01`);
    // The worker's request continued the job's trace; the responder ran in it and replied from it.
    expect(seen[0]!.reply.traceparent).toMatch(TRACEPARENT);
    expect(TRACEPARENT.exec(seen[0]!.reply.traceparent!)![1]).toBe(traceId);
    expect(seen[0]!.reply.active).toBe(traceId);
  });

  it("starts a new trace per publish with no active span, and keeps one the application set", async () => {
    const topic = freshTopic("trace.fresh");
    const bus = clients.client();
    await bus.publish(topic, 1);
    await bus.publish(topic, 2);
    const own = `00-${randomHex(16)}-${randomHex(8)}-01`;
    await bus.publish(topic, 3, { headers: { traceparent: own, kind: "x" } });
    const pub = bus.publisher(topic);
    await pub.send(4);
    const headers = await readHeaders(topic);
    expect(headers[0]!.traceparent).toMatch(TRACEPARENT);
    expect(headers[1]!.traceparent).toMatch(TRACEPARENT);
    expect(headers[0]!.traceparent!.slice(3, 35)).not.toBe(headers[1]!.traceparent!.slice(3, 35));
    expect(headers[2]).toEqual({ traceparent: own, kind: "x" });
    expect(headers[3]!.traceparent).toMatch(TRACEPARENT);
  });

  it("keeps a request's traceparent in a durable request, for the responder that takes it", async () => {
    const service = freshTopic("trace.durable");
    const [requester, responder] = [clients.client(), clients.client()];
    await responder.serve(service, (_data, ctx) => ctx.traceparent ?? null, { durable: true, create: { start: "earliest" } });
    const own = `00-${randomHex(16)}-${randomHex(8)}-01`;
    expect(await requester.request(service, { q: 1 }, { durable: true, traceparent: own })).toBe(own);
    expect((await readHeaders(service))[0]?.traceparent).toBe(own);
  });
});
