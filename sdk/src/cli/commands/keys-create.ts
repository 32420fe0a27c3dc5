/** `dovetail keys create <name>`: issue an API key in the tenant of your token. */
import { type CreateKeyOptions, type CreatedKey, KEY_RATE_FIELDS, type KeyRateField } from "../../admin.ts";
import { durationOption, timeOption } from "../args.ts";
import { defineCommand } from "../command.ts";
import { openAdmin } from "../connection.ts";
import { EXIT, UsageError } from "../errors.ts";
import { fields, isoTime } from "../output.ts";
import { SCOPE_ACTIONS } from "../../../../protocol/scopes.ts";

function scopeOption(text: string): string {
  const colon = text.indexOf(":");
  const action = colon < 0 ? text : text.slice(0, colon);
  const example = "e.g. publish:agents.*, subscribe:agents.>, admin";
  // The bus checks patterns; this catches a mistyped action offline.
  if (!(SCOPE_ACTIONS as readonly string[]).includes(action)) {
    throw new UsageError(`--scope ${JSON.stringify(text)}: expected action:pattern with action ${SCOPE_ACTIONS.join(", ")} (${example})`);
  }
  if (colon >= 0 && colon === text.length - 1) throw new UsageError(`--scope ${JSON.stringify(text)}: missing the topic pattern after ":" (${example})`);
  if (/\s/.test(text)) throw new UsageError(`--scope ${JSON.stringify(text)}: a scope has no spaces; give one --scope per scope`);
  return text;
}

function rateOption(pairs: string[]): Partial<Record<KeyRateField, number>> {
  const rate: Partial<Record<KeyRateField, number>> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    const name = pair.slice(0, eq);
    const text = pair.slice(eq + 1);
    if (eq <= 0 || !(KEY_RATE_FIELDS as readonly string[]).includes(name)) {
      throw new UsageError(`--rate: expected name=value with name one of ${KEY_RATE_FIELDS.join(", ")}, got ${JSON.stringify(pair)}`);
    }
    const value = /^\d+(\.\d+)?$/.test(text) ? Number(text) : Number.NaN;
    if (!Number.isFinite(value) || value <= 0) throw new UsageError(`--rate ${name}: expected a positive number, got ${JSON.stringify(text)}`);
    rate[name as KeyRateField] = value;
  }
  return rate;
}

/** A key record (and, once, its secret) as `name  value` pairs, for `fields()`. */
export function keyFields(k: Omit<CreatedKey, "key"> & { key?: string }): [string, string][] {
  return [
    ...(k.key ? ([["key", k.key]] as [string, string][]) : []),
    ["id", k.id],
    ["name", k.name],
    ["tenant", k.tenant],
    ["scopes", k.scopes.join(" ")],
    ["created", isoTime(k.createdAt)],
    ["expires", k.expiresAt === null ? "never" : isoTime(k.expiresAt)],
    ["revoked", isoTime(k.revokedAt)],
    ["rate", KEY_RATE_FIELDS.map((f) => `${f}=${k.rate[f]}`).join(" ")],
  ];
}

export const keysCreate = defineCommand({
  name: "keys create",
  args: ["<name>"],
  summary: "issue an API key in your tenant (needs admin:>)",
  description: `Issues an API key in the tenant of your token and prints it with its record. The key
(dvt_...) is shown only this once (the bus stores its hash): store it now.`,
  json: `{"key":"dvt_...","id","name","tenant","scopes","rate","createdAt","expiresAt","revokedAt"}`,
  options: {
    scope: {
      type: "string",
      multiple: true,
      value: "S",
      help: "action:pattern, repeatable, at least one. Actions: publish, subscribe,\nadmin; a bare action means action:> (e.g. publish:agents.*, subscribe:agents.>)",
    },
    "expires-in": { type: "string", value: "D", help: "expire after a duration: 90s, 15m, 12h, 30d, 500ms" },
    "expires-at": { type: "string", value: "T", help: "expire at an ISO date or milliseconds since the epoch (default: never)" },
    rate: {
      type: "string",
      multiple: true,
      value: "name=value",
      help: `override a rate limit (repeatable), e.g. --rate requestsPerSecond=50;\nnames: ${KEY_RATE_FIELDS.join(", ")}`,
    },
  },
  async run({ values, positionals, out }) {
    const name = positionals[0]!;
    const scopes = (values.scope ?? []).map(scopeOption);
    if (scopes.length === 0) throw new UsageError("keys create: give at least one --scope (e.g. --scope publish:agents.*)");
    if (values["expires-in"] !== undefined && values["expires-at"] !== undefined)
      throw new UsageError("keys create: give --expires-in or --expires-at, not both");
    const input: CreateKeyOptions = { name, scopes };
    if (values["expires-in"] !== undefined) input.expiresInMs = durationOption(values["expires-in"], "--expires-in");
    if (values["expires-at"] !== undefined) input.expiresAt = timeOption(values["expires-at"], "--expires-at");
    if (values.rate) input.rate = rateOption(values.rate);
    const { admin } = openAdmin(values);
    const created = await admin.keys.create(input);
    out.print(created, (k) => fields(keyFields(k)));
    if (process.stderr.isTTY) process.stderr.write(`dovetail: store the key now; it is not shown again (revoke: dovetail keys revoke ${created.id})\n`);
    return EXIT.ok;
  },
});
