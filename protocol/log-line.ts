/**
 * One structured log line (docs/observability.md, "Logs"): a JSON object with `level`, `msg`,
 * `time` and fields, written by the gateway and the objects alike. Runtime-free; each side passes
 * the line to its console.
 *
 * Secrets never reach a line: strings that look like an API key (`dvt_…`) or a JWT (`eyJ….….…`)
 * are replaced by `[redacted]` wherever they appear, as a last guard behind the rule that code
 * never logs a credential, a query string or a header.
 *
 * @example
 * console.log(logLine("warn", "request", { rid, status: 401 }));
 */

export type LogLevel = "debug" | "info" | "warn" | "error";

export const LOG_LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** API keys (protocol/api-key.ts) and compact JWTs. */
const SECRET = /dvt_[0-9a-f]{16}_[A-Za-z0-9_-]+|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g;

/** `text` with anything that looks like a credential redacted. */
export function redactSecrets(text: string): string {
  return text.replace(SECRET, "[redacted]");
}

/** The JSON text of a log line. */
export function logLine(level: LogLevel, msg: string, fields: Record<string, unknown> = {}): string {
  const text = JSON.stringify({ level, msg, time: new Date().toISOString(), ...fields }, (_key, value: unknown) => {
    if (value instanceof Error) return { name: value.name, message: value.message };
    return value;
  });
  return redactSecrets(text);
}

/** The level a deployment asks for (`LOG_LEVEL`), `info` when unset or unknown. */
export function logLevelOf(value: string | undefined): LogLevel {
  return value !== undefined && value in LOG_LEVELS ? (value as LogLevel) : "info";
}
