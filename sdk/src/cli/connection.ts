/**
 * Where the bus is and who we are: `--url` / `DOVETAIL_URL` and `--token` / `DOVETAIL_TOKEN`
 * (an empty variable counts as unset), and opening the bus or the admin client with them.
 */
import { connectAdmin, type AdminClient } from "../admin.ts";
import { busBases } from "../http.ts";
import { connect, type Bus } from "../index.ts";
import { type CommonValues, DEFAULT_URL } from "./command.ts";
import { describe, UsageError } from "./errors.ts";

export interface Connection {
  url: string;
  token?: string;
  /** The bus's HTTP base (`http(s)://host[/path]`), for routes the SDK has no method for. */
  httpBase: string;
}

/** The URL alone, without checking it (for error messages). */
export function busUrl(values: CommonValues): string {
  return values.url || process.env.DOVETAIL_URL || DEFAULT_URL;
}

/**
 * The bus URL and token from the options, then the environment; a malformed URL is a usage error.
 *
 * @example
 * connection({ url: "http://127.0.0.1:8787" }) // { url, token: process.env.DOVETAIL_TOKEN, httpBase }
 */
export function connection(values: CommonValues): Connection {
  const url = busUrl(values);
  const token = values.token || process.env.DOVETAIL_TOKEN || undefined;
  try {
    return { url, httpBase: busBases(url).httpBase, ...(token ? { token } : {}) };
  } catch (error) {
    throw new UsageError(describe(error, url));
  }
}

/**
 * Open the bus. `maxAttempts` bounds reconnects: 1 for a single request, more for streams.
 *
 * @example
 * const { bus } = openBus(values, 5);
 */
export function openBus(values: CommonValues, maxAttempts: number): { bus: Bus } & Connection {
  const c = connection(values);
  const bus = connect(c.url, { ...(c.token ? { token: c.token } : {}), reconnect: { maxAttempts, initialDelayMs: 100, maxDelayMs: 2000 } });
  return { bus, ...c };
}

/**
 * The admin client (keys); plain HTTP, nothing to close.
 *
 * @example
 * const { admin } = openAdmin(values);
 */
export function openAdmin(values: CommonValues): { admin: AdminClient } & Connection {
  const c = connection(values);
  return { admin: connectAdmin(c.url, c.token ? { token: c.token } : {}), ...c };
}

/**
 * Run `work` with an open bus and close it (forcefully: nothing is left to flush) afterwards.
 *
 * @example
 * return withBus(values, 1, async (bus) => { await bus.info(topic); return EXIT.ok; });
 */
export async function withBus(values: CommonValues, maxAttempts: number, work: (bus: Bus, c: Connection) => Promise<number>): Promise<number> {
  const { bus, ...c } = openBus(values, maxAttempts);
  try {
    return await work(bus, c);
  } finally {
    await bus.close({ force: true });
  }
}
