/**
 * W3C trace context in the SDK (docs/observability.md, "Tracing"), a chunk of its own loaded when
 * the bus is created (message.ts holds the one hook the core calls), so the browser bundle of
 * connect/publish/subscribe carries none of it.
 *
 * - What the SDK publishes gets a `traceparent` header (unless the application set one): the
 *   active OpenTelemetry span's when `@opentelemetry/api` can be imported and a span is active,
 *   else a new trace. The package is looked for at run time, never required: no dependency.
 * - Requests carry one the same way; consumers and responders run their handlers in the context
 *   of the job's or request's `traceparent` (OpenTelemetry present), and hand it to the handler
 *   (`job.traceparent`, `context.traceparent`) to continue by hand otherwise.
 *
 * @example
 * await loadTracing();
 * tracedHeaders({ kind: "x" }, MAX_HEADERS); // { kind: "x", traceparent: "00-…-…-01" }
 */
import { TRACEPARENT, TRACEPARENT_HEADER } from "../../protocol/trace-context.ts";

interface SpanContext {
  traceId: string;
  spanId: string;
  traceFlags: number;
  isRemote?: boolean;
}

/** The parts of `@opentelemetry/api` used here (its types are not a dependency either). */
interface OpenTelemetryApi {
  context: { active(): unknown; with<R>(context: unknown, fn: () => R): R };
  trace: { getSpanContext(context: unknown): SpanContext | undefined; setSpanContext(context: unknown, spanContext: SpanContext): unknown };
}

/** Its package name, in a variable: bundlers leave the import to run time, so an app without it still builds. */
const OPENTELEMETRY_API = "@opentelemetry/api";
const TRACE_ID = /^(?!0{32})[0-9a-f]{32}$/;
const SPAN_ID = /^(?!0{16})[0-9a-f]{16}$/;

/** undefined: not looked for yet; null: not importable. */
let otel: OpenTelemetryApi | null | undefined;

/** Look for `@opentelemetry/api` once. */
export async function loadTracing(): Promise<void> {
  if (otel !== undefined) return;
  try {
    const api = (await import(/* @vite-ignore */ /* webpackIgnore: true */ OPENTELEMETRY_API)) as Partial<OpenTelemetryApi>;
    otel = typeof api.context?.active === "function" && typeof api.trace?.getSpanContext === "function" ? (api as OpenTelemetryApi) : null;
  } catch {
    otel = null;
  }
}

function randomHex(bytes: number): string {
  let s = "";
  for (const b of crypto.getRandomValues(new Uint8Array(bytes))) s += (b | 256).toString(16).slice(1);
  return s;
}

function flagsHex(flags: number): string {
  return ((flags & 0xff) | 256).toString(16).slice(1);
}

/** The active OpenTelemetry span as a traceparent, or null. */
function activeTraceparent(): string | null {
  const sc = otel?.trace.getSpanContext(otel.context.active());
  if (!sc || !TRACE_ID.test(sc.traceId) || !SPAN_ID.test(sc.spanId)) return null;
  return `00-${sc.traceId}-${sc.spanId}-${flagsHex(sc.traceFlags)}`;
}

/** A traceparent for what is sent now: the active OpenTelemetry span's, or a new sampled trace. */
export function currentTraceparent(): string {
  return activeTraceparent() ?? `00-${randomHex(16)}-${randomHex(8)}-01`;
}

/** The next hop of `parent`'s trace: its trace id and flags, a new parent id (a new trace when `parent` is none). */
export function childTraceparent(parent: string | undefined): string {
  if (parent === undefined || !TRACEPARENT.test(parent)) return currentTraceparent();
  return `00-${parent.slice(3, 35)}-${randomHex(8)}-${parent.slice(53, 55)}`;
}

/** Run `fn` with `traceparent` as the active (remote) span context when OpenTelemetry is present; else just run it. */
export function withTraceparent<R>(traceparent: string | undefined, fn: () => R): R {
  if (!otel || traceparent === undefined || !TRACEPARENT.test(traceparent)) return fn();
  const sc: SpanContext = {
    traceId: traceparent.slice(3, 35),
    spanId: traceparent.slice(36, 52),
    traceFlags: Number.parseInt(traceparent.slice(53, 55), 16),
    isRemote: true,
  };
  return otel.context.with(otel.trace.setSpanContext(otel.context.active(), sc), fn);
}

/** Look for OpenTelemetry, then hand {@link tracedHeaders} to the core (message.ts; one export, fewer bytes in the core). */
export async function tracer(install: (fn: typeof tracedHeaders) => void): Promise<void> {
  await loadTracing();
  install(tracedHeaders);
}

/**
 * A message's headers with a traceparent: as given when they hold one (or already `maxHeaders`,
 * the protocol's MAX_HEADERS, passed by the caller), else with the current one.
 */
export function tracedHeaders(headers: Record<string, string> | undefined, maxHeaders: number): Record<string, string> | undefined {
  if (headers?.[TRACEPARENT_HEADER] !== undefined || (headers && Object.keys(headers).length >= maxHeaders)) return headers;
  return { ...headers, [TRACEPARENT_HEADER]: currentTraceparent() };
}
