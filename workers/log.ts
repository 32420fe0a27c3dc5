/**
 * The gateway's logger: one JSON line per call on the console (Workers Logs and `wrangler tail`
 * parse them; protocol/log-line.ts redacts credentials), at or above the deployment's `LOG_LEVEL`
 * (default `info`). Each request's lines carry its request id (workers/middleware/request-log.ts).
 *
 * @example
 * log(c.env, "error", "unexpected error", { rid: c.get("requestId"), error });
 */
import { LOG_LEVELS, logLevelOf, logLine, type LogLevel } from "../protocol/log-line.ts";

export function log(env: { LOG_LEVEL?: string } | undefined, level: LogLevel, msg: string, fields: Record<string, unknown> = {}): void {
  if (LOG_LEVELS[level] < LOG_LEVELS[logLevelOf(env?.LOG_LEVEL)]) return;
  const line = logLine(level, msg, fields);
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}
