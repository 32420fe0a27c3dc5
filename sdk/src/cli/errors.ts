/**
 * The CLI's exit codes and the one place that turns an error into an exit code and a message.
 *
 * Exit codes (stable, for scripts):
 *   0   success
 *   1   the bus refused or failed the request (the message says why, with its error code)
 *   2   usage error (unknown command or option, bad value, missing argument)
 *   3   cannot connect to the bus (after retries)
 *   4   authentication or permission refused (unauthorized, forbidden)
 *   130 interrupted (Ctrl-C)
 */
import { DovetailError } from "../index.ts";

export const EXIT = { ok: 0, failed: 1, usage: 2, connect: 3, auth: 4, interrupted: 130 } as const;

/**
 * Bad input, found before anything reached the bus: exit 2. The message is one line unless it
 * deliberately carries the command's usage after a blank line (a missing argument).
 *
 * @example
 * throw new UsageError(`--limit: expected a positive integer, got "many"`);
 */
export class UsageError extends Error {
  override name = "UsageError";
}

/**
 * Exit code for an error, so scripts can tell usage, connection, auth and refusal apart.
 *
 * @example
 * exitCodeFor(new DovetailError("forbidden", "no")) // 4
 */
export function exitCodeFor(error: unknown): number {
  if (error instanceof UsageError) return EXIT.usage;
  if (error instanceof DovetailError) {
    if (error.code === "unauthorized" || error.code === "forbidden") return EXIT.auth;
    if (error.code === "closed" || error.code === "timeout") return EXIT.connect;
  }
  return EXIT.failed;
}

/**
 * The message printed after `dovetail: ` for an error; `url` names the bus in connection and
 * authentication failures.
 *
 * @example
 * describe(new DovetailError("not_found", "no topic t"), url) // "no topic t [not_found]"
 */
export function describe(error: unknown, url: string): string {
  if (error instanceof DovetailError) {
    if (error.code === "unauthorized") return `authentication failed at ${url}: ${error.message} (set --token or DOVETAIL_TOKEN)`;
    if (error.code === "forbidden") return `permission denied: ${error.message}`;
    if (error.code === "closed" || error.code === "timeout") return `cannot connect to ${url}: ${error.message}`;
    return `${error.message} [${error.code}]`;
  }
  if (error instanceof UsageError) return error.message;
  // Anything else is a bug or a runtime failure: its message on one line, no stack trace.
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0] ?? text;
}
