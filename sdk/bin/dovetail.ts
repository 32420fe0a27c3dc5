#!/usr/bin/env node
/**
 * `dovetail`: the command line for a Dovetail bus, built on the SDK. Runs directly with
 * Node >= 24 (type stripping): `node sdk/bin/dovetail.ts --help`.
 *
 * Exit codes (stable, for scripts):
 *   0  success
 *   1  the bus refused or failed the request (the message says why, with its error code)
 *   2  usage error (unknown command or option, bad value)
 *   3  cannot connect to the bus (after retries)
 *   4  authentication or permission refused (unauthorized, forbidden)
 *   130 interrupted (Ctrl-C)
 */
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { connectAdmin, KEY_RATE_FIELDS, type AdminClient, type CreateKeyOptions, type KeyRecord } from "../src/admin.ts";
import { connect, DovetailError, type Bus, type Message, type TopicEntry } from "../src/index.ts";

export const EXIT = { ok: 0, failed: 1, usage: 2, connect: 3, auth: 4, interrupted: 130 } as const;

const DEFAULT_URL = "http://127.0.0.1:8787";

const MAIN_HELP = `dovetail: command line for the Dovetail agent message bus

Usage: dovetail <command> [options]

Commands:
  pub <topic> [json|-]     publish one message, or one per stdin line
  sub <topic>              print messages as they arrive
  info <topic>             print a topic's head, earliest offset, size and subscribers
  topics ls                list your tenant's topics (--prefix, --pattern)
  topics rm <topic>        delete a topic and its messages (needs admin on it)
  bench <topic>            measure publish rate and end-to-end latency
  keys create <name>       issue an API key in your tenant (needs admin:>)
  keys list                list your tenant's API keys
  keys revoke <id>         revoke an API key at once

Global options:
  --version      print the version
  --url URL      bus URL (env DOVETAIL_URL, default ${DEFAULT_URL})
  --token TOKEN  API key or JWT (env DOVETAIL_TOKEN)
  -h, --help     help for any command

Exit codes: 0 ok, 1 refused/failed, 2 usage, 3 cannot connect, 4 auth refused, 130 interrupted.`;

const HELP: Record<string, string> = {
  pub: `Usage: dovetail pub <topic> [json|-] [--key K] [--header name=value ...]

Publishes one message and prints {"offset":N}. The argument is parsed as JSON; text that is not
valid JSON is sent as a string. With "-" or no argument and piped input, each stdin line is one
message (same rule), sent in batches with confirms; prints {"count":N,"firstOffset":A,"lastOffset":B}.

Options:
  --key K              message key
  --header name=value  message header (repeatable)
  --url, --token       see dovetail --help`,
  sub: `Usage: dovetail sub <topic> [--from F] [--limit N] [--json]

Prints each message's data, one per line (strings as is, other values as JSON). Runs until
Ctrl-C, or until --limit messages were printed.

Options:
  --from F     offset, earliest, latest (default), or an ISO date / milliseconds since the epoch
  --limit N    exit 0 after N messages
  --json       print whole messages as JSON lines: {"offset","time","key","headers","data"}
  --url, --token`,
  info: `Usage: dovetail info <topic>

Prints the topic's facts as JSON: head (next offset), earliest, messages, bytes, subscribers,
retention.

Options:
  --url, --token`,
  bench: `Usage: dovetail bench <topic> [--rate R] [--size B] [--subs N] [--duration S]

Publishes B-byte messages at R msg/s (0 = as fast as confirms allow) for S seconds while N
subscribers read them. Prints a progress line every second (rate, publish-confirm and
end-to-end latency percentiles) on stderr, and a JSON summary on stdout.

Options:
  --rate R       messages per second (default 1000; 0 = unpaced)
  --size B       payload bytes per message (default 100)
  --subs N       subscribers (default 1)
  --duration S   seconds (default 10)
  --url, --token`,
  keys: `Usage: dovetail keys <create|list|revoke> [options]

Manages the API keys of your tenant through the admin API. Needs a token with the scope admin:>
(other tokens get "permission denied", exit 4). Keys are created in the tenant of that token.

Commands:
  keys create <name> --scope S [--scope S ...]   issue a key; prints it once, as JSON
  keys list [--json]                             list keys (never their secrets)
  keys revoke <id>                               revoke a key; it stops working at once

Run dovetail keys <command> --help for its options.`,
  "keys create": `Usage: dovetail keys create <name> --scope S [--scope S ...] [--expires-in D | --expires-at T] [--rate name=value ...]

Issues an API key in the tenant of your token and prints it as JSON: {"key":"dvt_...","id",
"name","tenant","scopes","rate","createdAt","expiresAt","revokedAt"}. The "key" is shown only
this once (the bus stores its hash): store it now.

Options:
  --scope S            action:pattern, repeatable, at least one. Actions: publish, subscribe,
                       admin; a bare action means action:> (e.g. publish:agents.*, subscribe:agents.>)
  --expires-in D       expire after a duration: 90s, 15m, 12h, 30d, 500ms
  --expires-at T       expire at an ISO date or milliseconds since the epoch (default: never)
  --rate name=value    override a rate limit (repeatable), e.g. --rate requestsPerSecond=50;
                       names: ${KEY_RATE_FIELDS.join(", ")}
  --url, --token       see dovetail --help`,
  "keys list": `Usage: dovetail keys list [--json]

Lists the API keys of your tenant, oldest first, revoked ones included: id, name, scopes,
creation, expiry and revocation times. Never shows a key's secret.

Options:
  --json         print the records as the admin API returns them, as a JSON array
  --url, --token`,
  "keys revoke": `Usage: dovetail keys revoke <id>

Revokes the key with this id (the 16 hex characters after "dvt_"; see dovetail keys list) and
prints its record as JSON, with "revokedAt" and "closedSockets". It stops working at once: new
requests get "unauthorized" and its open sockets are closed.

Options:
  --url, --token`,
  topics: `Usage: dovetail topics <ls|rm> [options]

  ls          list the topics of your tenant that your credential may see
  rm <topic>  delete a topic: its subscribers are closed, its messages removed

Run dovetail topics <command> --help for its options.`,
  "topics ls": `Usage: dovetail topics ls [--prefix P] [--pattern P] [--limit N] [--json]

Prints a table (name, head, messages, bytes, subscribers, last active), every page of it.
Stats are as the topics last reported them: at most a few seconds old while a topic is active.

Options:
  --prefix P    names starting with P
  --pattern P   names matching P (* one segment, > the rest), e.g. agents.*.inbox
  --limit N     stop after N topics
  --json        print the entries as a JSON array
  --url, --token`,
  "topics rm": `Usage: dovetail topics rm <topic>

Deletes the topic (needs admin on it) and prints {"topic","deleted":true,"closedSockets":N}.
Its sockets are closed with code 4004 after a "topic_deleted" error; a later publish creates a
fresh topic from offset 0.

Options:
  --url, --token`,
};

class UsageError extends Error {}

function fail(message: string, code: number): never {
  process.stderr.write(`dovetail: ${message}\n`);
  process.exit(code);
}

/** Exit code and message for an error, so scripts can tell connection, auth and refusal apart. */
export function exitCodeFor(error: unknown): number {
  if (error instanceof UsageError) return EXIT.usage;
  if (error instanceof DovetailError) {
    if (error.code === "unauthorized" || error.code === "forbidden") return EXIT.auth;
    if (error.code === "closed" || error.code === "timeout") return EXIT.connect;
    return EXIT.failed;
  }
  return EXIT.failed;
}

function describe(error: unknown, url: string): string {
  if (error instanceof DovetailError) {
    if (error.code === "unauthorized") return `authentication failed at ${url}: ${error.message} (set --token or DOVETAIL_TOKEN)`;
    if (error.code === "forbidden") return `permission denied: ${error.message}`;
    if (error.code === "closed" || error.code === "timeout") return `cannot connect to ${url}: ${error.message}`;
    return `${error.message} [${error.code}]`;
  }
  return error instanceof Error ? error.message : String(error);
}

const COMMON = {
  url: { type: "string" },
  token: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies ParseArgsConfig["options"];

function parse<O extends NonNullable<ParseArgsConfig["options"]>>(args: string[], options: O) {
  try {
    return parseArgs({ args, options: { ...COMMON, ...options }, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function intOption(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`--${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
  return n;
}

function parseFrom(value: string | undefined): number | "earliest" | "latest" | Date {
  if (value === undefined || value === "latest") return "latest";
  if (value === "earliest") return "earliest";
  if (/^\d+$/.test(value)) {
    const n = Number(value);
    // Thirteen digits and more read as a time in milliseconds; offsets that large do not happen.
    return value.length >= 12 ? new Date(n) : n;
  }
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new UsageError(`--from: expected an offset, earliest, latest or a date, got ${JSON.stringify(value)}`);
  return new Date(t);
}

function parsePayload(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function openBus(values: { url?: string | undefined; token?: string | undefined }, maxAttempts: number): { bus: Bus; url: string } {
  const url = values.url ?? process.env.DOVETAIL_URL ?? DEFAULT_URL;
  const token = values.token ?? process.env.DOVETAIL_TOKEN;
  try {
    return { url, bus: connect(url, { ...(token ? { token } : {}), reconnect: { maxAttempts, initialDelayMs: 100, maxDelayMs: 2000 } }) };
  } catch (error) {
    throw new UsageError(describe(error, url));
  }
}

function topicArg(positionals: string[], command: string): string {
  const topic = positionals[0];
  if (!topic) throw new UsageError(`${command}: missing <topic>\n\n${HELP[command]}`);
  return topic;
}

// ---------------------------------------------------------------------------------------------

async function pub(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { key: { type: "string" }, header: { type: "string", multiple: true } });
  if (values.help) return help("pub");
  const topic = topicArg(positionals, "pub");
  const headers: Record<string, string> = {};
  for (const h of values.header ?? []) {
    const eq = h.indexOf("=");
    if (eq <= 0) throw new UsageError(`--header: expected name=value, got ${JSON.stringify(h)}`);
    headers[h.slice(0, eq)] = h.slice(eq + 1);
  }
  const options = { ...(values.key !== undefined ? { key: values.key } : {}), ...(values.header ? { headers } : {}) };
  const { bus, url } = openBus(values, 5);
  try {
    const arg = positionals[1];
    if (arg !== undefined && arg !== "-") {
      const { offset } = await bus.publish(topic, parsePayload(arg), options);
      process.stdout.write(`${JSON.stringify({ offset })}\n`);
      return EXIT.ok;
    }
    if (arg === undefined && process.stdin.isTTY) throw new UsageError(`pub: give a message, or "-" / piped input for one message per line\n\n${HELP.pub}`);
    const publisher = bus.publisher(topic);
    const sends: Promise<number>[] = [];
    let firstError: unknown = null;
    const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
    for await (const line of lines) {
      if (line === "") continue;
      await publisher.ready();
      const send = publisher.send(parsePayload(line), options);
      send.catch((e: unknown) => (firstError ??= e));
      sends.push(send);
    }
    await publisher.flush();
    if (firstError) throw firstError;
    const offsets = await Promise.all(sends);
    process.stdout.write(`${JSON.stringify({ count: offsets.length, firstOffset: offsets[0] ?? null, lastOffset: offsets.at(-1) ?? null })}\n`);
    return EXIT.ok;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    process.stderr.write(`dovetail: ${describe(error, url)}\n`);
    return exitCodeFor(error);
  } finally {
    await bus.close({ force: true });
  }
}

async function sub(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { from: { type: "string" }, limit: { type: "string" }, json: { type: "boolean" } });
  if (values.help) return help("sub");
  const topic = topicArg(positionals, "sub");
  const from = parseFrom(values.from);
  const limit = values.limit === undefined ? Infinity : intOption(values.limit, "limit", 0);
  const { bus, url } = openBus(values, 10);
  const subscription = bus.subscribe(topic, { from });
  process.once("SIGINT", () => {
    subscription.close();
    void bus.close({ force: true }).then(() => process.exit(EXIT.interrupted));
  });
  let printed = 0;
  try {
    for await (const m of subscription) {
      process.stdout.write(`${values.json ? messageLine(m) : dataLine(m.data)}\n`);
      if (++printed >= limit) break;
    }
    return EXIT.ok;
  } catch (error) {
    process.stderr.write(`dovetail: ${describe(error, url)}\n`);
    return exitCodeFor(error);
  } finally {
    await bus.close({ force: true });
  }
}

function dataLine(data: unknown): string {
  if (typeof data === "string") return data;
  if (data instanceof Uint8Array) return Buffer.from(data).toString("base64");
  return JSON.stringify(data);
}

function messageLine(m: Message): string {
  const data = m.data instanceof Uint8Array ? { bytes: Buffer.from(m.data).toString("base64") } : { data: m.data };
  return JSON.stringify({ offset: m.offset, time: m.time, ...(m.key !== undefined ? { key: m.key } : {}), headers: m.headers, ...data });
}

async function info(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {});
  if (values.help) return help("info");
  const topic = topicArg(positionals, "info");
  return withBus(values, async (bus) => JSON.stringify(await bus.info(topic), null, 2));
}

/**
 * Run one request against the bus and print its answer: opens the bus (one connection attempt),
 * prints what `request` returns, turns a failure into its message and exit code, closes the bus.
 */
async function withBus(values: { url?: string | undefined; token?: string | undefined }, request: (bus: Bus) => Promise<string>): Promise<number> {
  const { bus, url } = openBus(values, 1);
  try {
    process.stdout.write(`${await request(bus)}\n`);
    return EXIT.ok;
  } catch (error) {
    process.stderr.write(`dovetail: ${describe(error, url)}\n`);
    return exitCodeFor(error);
  } finally {
    await bus.close({ force: true });
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function stats(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  return { p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)), max: round(sorted.at(-1) ?? NaN) };
}

const round = (n: number) => Math.round(n * 100) / 100;

async function bench(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { rate: { type: "string" }, size: { type: "string" }, subs: { type: "string" }, duration: { type: "string" } });
  if (values.help) return help("bench");
  const topic = topicArg(positionals, "bench");
  const rate = intOption(values.rate, "rate", 1000);
  const size = intOption(values.size, "size", 100);
  const subs = intOption(values.subs, "subs", 1);
  const durationMs = intOption(values.duration, "duration", 10) * 1000;
  const { bus, url } = openBus(values, 5);
  try {
    const { head } = await bus.info(topic);
    const pad = "x".repeat(Math.max(0, size - 30));
    const e2eAll: number[] = [];
    const confirmAll: number[] = [];
    let e2eWindow: number[] = [];
    let confirmWindow: number[] = [];
    let received = 0;
    const readers = Array.from({ length: subs }, () => bus.subscribe<{ t: number }>(topic, { from: head }));
    const reading = readers.map(async (r) => {
      for await (const m of r) {
        const latency = performance.now() - m.data.t;
        e2eAll.push(latency);
        e2eWindow.push(latency);
        received++;
      }
    });
    const publisher = bus.publisher(topic, { lingerMs: rate === 0 ? 1 : 0 });
    const start = performance.now();
    let sent = 0;
    let confirmed = 0;
    let lastTick = start;
    let lastConfirmed = 0;
    const progress = setInterval(() => {
      const now = performance.now();
      const c = stats(confirmWindow);
      const e = stats(e2eWindow);
      const line = `${Math.round(((confirmed - lastConfirmed) * 1000) / (now - lastTick))} msg/s confirmed  confirm p50 ${c.p50} p99 ${c.p99} ms  end-to-end p50 ${e.p50} p99 ${e.p99} ms  (${confirmed} sent, ${received} received)`;
      process.stderr.write(process.stderr.isTTY ? `\r${line}\x1b[K` : `${line}\n`);
      lastTick = now;
      lastConfirmed = confirmed;
      confirmWindow = [];
      e2eWindow = [];
    }, 1000);
    while (performance.now() - start < durationMs) {
      const due = rate === 0 ? sent + 1000 : Math.floor(((performance.now() - start) * rate) / 1000);
      while (sent < due) {
        if (rate === 0) await publisher.ready();
        const t = performance.now();
        publisher.send({ t, pad }).then(
          () => {
            const latency = performance.now() - t;
            confirmAll.push(latency);
            confirmWindow.push(latency);
            confirmed++;
          },
          () => {},
        );
        sent++;
      }
      await new Promise((r) => setTimeout(r, rate === 0 ? 0 : 1));
    }
    await publisher.flush();
    const elapsedMs = performance.now() - start;
    const deadline = performance.now() + 10_000;
    while (received < sent * subs && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    clearInterval(progress);
    for (const r of readers) r.close();
    await Promise.allSettled(reading);
    if (process.stderr.isTTY) process.stderr.write("\n");
    const summary = {
      topic,
      rate,
      size,
      subs,
      sent,
      confirmed,
      received,
      confirmedPerSecond: Math.round((confirmed * 1000) / elapsedMs),
      confirmMs: stats(confirmAll),
      endToEndMs: stats(e2eAll),
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return received >= sent * subs ? EXIT.ok : EXIT.failed;
  } catch (error) {
    process.stderr.write(`dovetail: ${describe(error, url)}\n`);
    return exitCodeFor(error);
  } finally {
    await bus.close({ force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// keys: the admin API (docs/security.md, "Admin API")

/** Scope actions (protocol/scopes.ts); the bus checks patterns, this catches typos offline. */
const SCOPE_ACTIONS = ["publish", "subscribe", "admin"];
const KEY_ID = /^[0-9a-f]{16}$/;
const DURATION_UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

function openAdmin(values: { url?: string | undefined; token?: string | undefined }): { admin: AdminClient; url: string } {
  const url = values.url ?? process.env.DOVETAIL_URL ?? DEFAULT_URL;
  const token = values.token ?? process.env.DOVETAIL_TOKEN;
  try {
    return { url, admin: connectAdmin(url, token ? { token } : {}) };
  } catch (error) {
    throw new UsageError(describe(error, url));
  }
}

function scopeOption(text: string): string {
  const colon = text.indexOf(":");
  const action = colon < 0 ? text : text.slice(0, colon);
  const example = "e.g. publish:agents.*, subscribe:agents.>, admin";
  if (!SCOPE_ACTIONS.includes(action)) {
    throw new UsageError(`--scope ${JSON.stringify(text)}: expected action:pattern with action ${SCOPE_ACTIONS.join(", ")} (${example})`);
  }
  if (colon >= 0 && colon === text.length - 1) throw new UsageError(`--scope ${JSON.stringify(text)}: missing the topic pattern after ":" (${example})`);
  if (/\s/.test(text)) throw new UsageError(`--scope ${JSON.stringify(text)}: a scope has no spaces; give one --scope per scope`);
  return text;
}

function durationOption(value: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(value);
  const ms = m ? Number(m[1]) * DURATION_UNIT_MS[m[2]!]! : NaN;
  if (!Number.isSafeInteger(ms) || ms <= 0)
    throw new UsageError(`--expires-in: expected a duration such as 90s, 15m, 12h or 30d, got ${JSON.stringify(value)}`);
  return ms;
}

function timeOption(value: string): number {
  const t = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isSafeInteger(t)) throw new UsageError(`--expires-at: expected an ISO date or milliseconds since the epoch, got ${JSON.stringify(value)}`);
  return t;
}

function rateOption(pairs: string[]): Partial<Record<(typeof KEY_RATE_FIELDS)[number], number>> {
  const rate: Partial<Record<(typeof KEY_RATE_FIELDS)[number], number>> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    const name = pair.slice(0, eq);
    const value = Number(pair.slice(eq + 1));
    if (eq <= 0 || !(KEY_RATE_FIELDS as readonly string[]).includes(name)) {
      throw new UsageError(`--rate: expected name=value with name one of ${KEY_RATE_FIELDS.join(", ")}, got ${JSON.stringify(pair)}`);
    }
    if (!Number.isFinite(value) || value <= 0) throw new UsageError(`--rate ${name}: expected a positive number, got ${JSON.stringify(pair.slice(eq + 1))}`);
    rate[name as (typeof KEY_RATE_FIELDS)[number]] = value;
  }
  return rate;
}

async function keysCreate(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    scope: { type: "string", multiple: true },
    "expires-in": { type: "string" },
    "expires-at": { type: "string" },
    rate: { type: "string", multiple: true },
  });
  if (values.help) return help("keys create");
  const name = positionals[0];
  if (!name) throw new UsageError(`keys create: missing <name>\n\n${HELP["keys create"]}`);
  if (positionals.length > 1) throw new UsageError(`keys create: one <name> only, got ${positionals.length} arguments (give each scope with --scope)`);
  const scopes = (values.scope ?? []).map(scopeOption);
  if (scopes.length === 0) throw new UsageError(`keys create: give at least one --scope (e.g. --scope publish:agents.*)\n\n${HELP["keys create"]}`);
  if (values["expires-in"] !== undefined && values["expires-at"] !== undefined)
    throw new UsageError("keys create: give --expires-in or --expires-at, not both");
  const input: CreateKeyOptions = { name, scopes };
  if (values["expires-in"] !== undefined) input.expiresInMs = durationOption(values["expires-in"]);
  if (values["expires-at"] !== undefined) input.expiresAt = timeOption(values["expires-at"]);
  if (values.rate) input.rate = rateOption(values.rate);
  const { admin, url } = openAdmin(values);
  try {
    const created = await admin.keys.create(input);
    process.stdout.write(`${JSON.stringify(created, null, 2)}\n`);
    if (process.stderr.isTTY) process.stderr.write(`dovetail: store the key now; it is not shown again (revoke: dovetail keys revoke ${created.id})\n`);
    return EXIT.ok;
  } catch (error) {
    process.stderr.write(`dovetail: ${describe(error, url)}\n`);
    return exitCodeFor(error);
  }
}

const isoTime = (ms: number | null) => (ms === null ? "-" : new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z"));

/** Rows as a text table: columns padded to their widest cell, the last one left as it is. */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join("  ")).join("\n");
}

function keyTable(keys: KeyRecord[]): string {
  return table([
    ["ID", "NAME", "SCOPES", "CREATED", "EXPIRES", "REVOKED"],
    ...keys.map((k) => [k.id, k.name, k.scopes.join(" "), isoTime(k.createdAt), isoTime(k.expiresAt), isoTime(k.revokedAt)]),
  ]);
}

async function keysList(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { json: { type: "boolean" } });
  if (values.help) return help("keys list");
  if (positionals.length > 0) throw new UsageError(`keys list: takes no arguments, got ${JSON.stringify(positionals[0])}\n\n${HELP["keys list"]}`);
  const { admin, url } = openAdmin(values);
  try {
    const keys = await admin.keys.list();
    process.stdout.write(`${values.json ? JSON.stringify(keys, null, 2) : keyTable(keys)}\n`);
    return EXIT.ok;
  } catch (error) {
    process.stderr.write(`dovetail: ${describe(error, url)}\n`);
    return exitCodeFor(error);
  }
}

async function keysRevoke(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {});
  if (values.help) return help("keys revoke");
  const id = positionals[0];
  if (!id) throw new UsageError(`keys revoke: missing <id>\n\n${HELP["keys revoke"]}`);
  if (!KEY_ID.test(id)) throw new UsageError(`keys revoke: expected a key id (16 hex characters, see dovetail keys list), got ${JSON.stringify(id)}`);
  const { admin, url } = openAdmin(values);
  try {
    process.stdout.write(`${JSON.stringify(await admin.keys.revoke(id), null, 2)}\n`);
    return EXIT.ok;
  } catch (error) {
    process.stderr.write(`dovetail: ${describe(error, url)}\n`);
    return exitCodeFor(error);
  }
}

function topicTable(topics: TopicEntry[]): string {
  return table([
    ["NAME", "HEAD", "MESSAGES", "BYTES", "SUBSCRIBERS", "LAST ACTIVE"],
    ...topics.map((t) => [t.name, String(t.head), String(t.messages), String(t.bytes), String(t.subscribers), isoTime(t.lastActive || null)]),
  ]);
}

async function topicsList(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    prefix: { type: "string" },
    pattern: { type: "string" },
    limit: { type: "string" },
    json: { type: "boolean" },
  });
  if (values.help) return help("topics ls");
  if (positionals.length > 0) throw new UsageError(`topics ls: takes no arguments, got ${JSON.stringify(positionals[0])}\n\n${HELP["topics ls"]}`);
  const max = values.limit === undefined ? Infinity : Number(values.limit);
  if (!(max >= 1) || !Number.isInteger(max === Infinity ? 1 : max))
    throw new UsageError(`topics ls: --limit expects a positive integer, got ${JSON.stringify(values.limit)}`);
  return withBus(values, async (bus) => {
    const all: TopicEntry[] = [];
    let cursor: string | undefined;
    do {
      const page = await bus.topics({
        ...(values.prefix ? { prefix: values.prefix } : {}),
        ...(values.pattern ? { pattern: values.pattern } : {}),
        ...(cursor ? { cursor } : {}),
        limit: Math.min(1000, max - all.length),
      });
      all.push(...page.topics);
      cursor = page.cursor ?? undefined;
    } while (cursor !== undefined && all.length < max);
    return values.json ? JSON.stringify(all, null, 2) : topicTable(all);
  });
}

async function topicsRemove(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {});
  if (values.help) return help("topics rm");
  const topic = topicArg(positionals, "topics rm");
  return withBus(values, async (bus) => JSON.stringify(await bus.deleteTopic(topic)));
}

const TOPICS_COMMANDS: Record<string, (args: string[]) => Promise<number>> = { ls: topicsList, rm: topicsRemove };

async function topics(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === "-h" || sub === "--help" || sub === "help") return help("topics");
  const run = sub === undefined ? undefined : TOPICS_COMMANDS[sub];
  if (!run) throw new UsageError(`topics: ${sub === undefined ? "missing command" : `unknown command ${JSON.stringify(sub)}`}\n\n${HELP.topics}`);
  return run(rest);
}

const KEYS_COMMANDS: Record<string, (args: string[]) => Promise<number>> = { create: keysCreate, list: keysList, revoke: keysRevoke };

async function keys(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === "-h" || sub === "--help" || sub === "help") return help("keys");
  const run = sub === undefined ? undefined : KEYS_COMMANDS[sub];
  if (!run) throw new UsageError(`keys: ${sub === undefined ? "missing command" : `unknown command ${JSON.stringify(sub)}`}\n\n${HELP.keys}`);
  return run(rest);
}

function help(command?: string): number {
  process.stdout.write(`${command ? HELP[command] : MAIN_HELP}\n`);
  return EXIT.ok;
}

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = { pub, sub, info, bench, keys, topics };

/** The SDK package's version (sdk/package.json). */
export function version(): string {
  return (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === "--version" || command === "-v" || command === "version") {
    process.stdout.write(`${version()}\n`);
    return EXIT.ok;
  }
  if (!command || command === "-h" || command === "--help" || command === "help") {
    const topic = [rest.slice(0, 2).join(" "), rest[0]].find((t) => t && HELP[t]);
    return help(topic);
  }
  const run = COMMANDS[command];
  if (!run) {
    fail(`unknown command ${JSON.stringify(command)}\n\n${MAIN_HELP}`, EXIT.usage);
  }
  try {
    return await run(rest);
  } catch (error) {
    if (error instanceof UsageError) fail(error.message, EXIT.usage);
    fail(describe(error, ""), exitCodeFor(error));
  }
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
