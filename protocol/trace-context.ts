/**
 * W3C Trace Context (level 1) as the bus carries it (docs/observability.md, "Tracing"): a
 * message's `traceparent` header, and the `traceparent` field of a request. The bus stores and
 * hands them on as they are; it checks only the form, so that a request's field can be copied
 * into a frame unescaped.
 *
 * @example
 * TRACEPARENT.test("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"); // true
 */

/** The header (and field) name. */
export const TRACEPARENT_HEADER = "traceparent";

/** `version-traceid-parentid-flags`, lowercase hex: version 00's form. */
export const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** The trace id of a `traceparent`, or null when it is not one. */
export function traceIdOf(traceparent: string | undefined): string | null {
  return traceparent !== undefined && TRACEPARENT.test(traceparent) ? traceparent.slice(3, 35) : null;
}
