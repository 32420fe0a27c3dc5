/**
 * Keys: the Durable Object that holds the bus's API keys, one instance per deployment (named
 * {@link KEYS_OBJECT_NAME}). It stores only SHA-256 hashes of keys, with name, tenant, scopes,
 * creation time, optional expiry and revocation time, and it keeps each key's request bucket,
 * so one RPC per request both verifies a key and counts it (docs/decisions/010-auth-credentials.md).
 *
 * Revocation takes effect at once: every request asks this object, and nothing caches a key.
 * Topic objects register each live WebSocket opened with a key here and unregister it when it
 * closes, so revoking a key reaches exactly the topics where it has live sockets, however many
 * topics it touched before (issue 18: a list of touched topics missed sockets, and fanning out to
 * thousands of topics created their storage and stalled the bus).
 */
import { DurableObject } from "cloudflare:workers";
import { generateApiKey, sameHash, hashApiKey } from "../protocol/api-key.ts";
import { rateWith, type RateConfig, type RateOverrides } from "../protocol/credential.ts";
import { formatScope, parseScopes, type Scope } from "../protocol/scopes.ts";
import { fullBucket, takeTokens, type Bucket } from "./frame-limiter.ts";

export const KEYS_OBJECT_NAME = "keys";
const SCHEMA_VERSION = 2;

/** A key as the admin API shows it: never the secret, never the hash. */
export interface KeyRecord {
  id: string;
  name: string;
  tenant: string;
  scopes: string[];
  rate: RateConfig;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
}

export interface CreateKeyInput {
  name: string;
  tenant: string;
  scopes: string[];
  rate?: RateOverrides;
  expiresAt?: number | null;
}

export type Admission =
  | { ok: true; record: KeyRecord; scopes: Scope[] }
  | { ok: false; code: "unauthorized"; message: string }
  | { ok: false; code: "rate_limited"; retryAfterMs: number; record: KeyRecord; scopes: Scope[] };

interface Row extends Record<string, SqlStorageValue> {
  id: string;
  hash: string;
  name: string;
  tenant: string;
  scopes: string;
  rate: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
}

function toRecord(row: Row): KeyRecord {
  return {
    id: row.id,
    name: row.name,
    tenant: row.tenant,
    scopes: JSON.parse(row.scopes) as string[],
    rate: JSON.parse(row.rate) as RateConfig,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
  };
}

/** Keys reads no bindings; a concrete Env type here would make Cloudflare.Env circular. */
type KeysEnv = Record<string, unknown>;

export class Keys extends DurableObject<KeysEnv> {
  readonly #sql: SqlStorage;
  /** Request buckets by key id. In memory only: after an eviction every key starts with a full bucket. */
  readonly #buckets = new Map<string, Bucket>();

  constructor(ctx: DurableObjectState, env: KeysEnv) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS dk_meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`);
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS dk_keys (
      id TEXT PRIMARY KEY, hash TEXT NOT NULL, name TEXT NOT NULL, tenant TEXT NOT NULL,
      scopes TEXT NOT NULL, rate TEXT NOT NULL, created_at INTEGER NOT NULL,
      expires_at INTEGER, revoked_at INTEGER)`);
    this.#sql.exec(`CREATE INDEX IF NOT EXISTS dk_keys_tenant ON dk_keys (tenant, created_at)`);
    // Live sockets by key: one row per open WebSocket, written by the topic that holds it.
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS dk_live (key_id TEXT NOT NULL, socket TEXT NOT NULL, topic TEXT NOT NULL, PRIMARY KEY (key_id, socket))`);
    const version = this.#sql.exec<{ v: number }>(`SELECT v FROM dk_meta WHERE k = 'schema'`).toArray()[0]?.v;
    if (version === undefined) this.#sql.exec(`INSERT INTO dk_meta (k, v) VALUES ('schema', ?)`, SCHEMA_VERSION);
    else if (version === 1) {
      // v1 kept the last 10,000 topics a key touched (dk_sockets); nothing in it is needed now.
      this.#sql.exec(`DROP TABLE IF EXISTS dk_sockets`);
      this.#sql.exec(`UPDATE dk_meta SET v = ? WHERE k = 'schema'`, SCHEMA_VERSION);
    } else if (version !== SCHEMA_VERSION) throw new Error(`keys: schema version ${version} is not ${SCHEMA_VERSION}`);
  }

  #row(id: string): Row | undefined {
    return this.#sql.exec<Row>(`SELECT * FROM dk_keys WHERE id = ?`, id).toArray()[0];
  }

  /** Issue a key. The returned `key` is the only time the secret exists outside the caller. */
  async create(input: CreateKeyInput): Promise<{ key: string; record: KeyRecord }> {
    const scopes = parseScopes(input.scopes);
    if (typeof scopes === "string") throw new Error(scopes); // the admin route validated them already
    const { id, key } = generateApiKey();
    const record: KeyRecord = {
      id,
      name: input.name,
      tenant: input.tenant,
      scopes: scopes.map(formatScope),
      rate: rateWith(input.rate),
      createdAt: Date.now(),
      expiresAt: input.expiresAt ?? null,
      revokedAt: null,
    };
    this.#sql.exec(
      `INSERT INTO dk_keys (id, hash, name, tenant, scopes, rate, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)`,
      id,
      await hashApiKey(key),
      record.name,
      record.tenant,
      JSON.stringify(record.scopes),
      JSON.stringify(record.rate),
      record.createdAt,
      record.expiresAt,
    );
    return { key, record };
  }

  /** Every key of a tenant, newest last, revoked ones included (with `revokedAt`). */
  async list(tenant: string): Promise<KeyRecord[]> {
    return this.#sql.exec<Row>(`SELECT * FROM dk_keys WHERE tenant = ? ORDER BY created_at, id`, tenant).toArray().map(toRecord);
  }

  /**
   * Revoke a key of `tenant`. Returns the record and the topics where it has live sockets (the
   * gateway closes those), or `null` when the tenant has no such key. A socket whose topic
   * registers it after this answer is refused by {@link socketOpened}, so none slips through.
   */
  async revoke(tenant: string, id: string): Promise<{ record: KeyRecord; topics: string[] } | null> {
    const row = this.#row(id);
    if (!row || row.tenant !== tenant) return null;
    if (row.revoked_at === null) {
      row.revoked_at = Date.now();
      this.#sql.exec(`UPDATE dk_keys SET revoked_at = ? WHERE id = ?`, row.revoked_at, id);
    }
    const topics = this.#sql
      .exec<{ topic: string }>(`SELECT DISTINCT topic FROM dk_live WHERE key_id = ?`, id)
      .toArray()
      .map((r) => r.topic);
    this.#sql.exec(`DELETE FROM dk_live WHERE key_id = ?`, id);
    this.#buckets.delete(id);
    return { record: toRecord(row), topics };
  }

  /**
   * A topic accepted WebSocket `socket` opened with key `id`. Returns false when the key may no
   * longer be used (revoked or expired since the upgrade was admitted): the topic closes the socket.
   */
  async socketOpened(id: string, socket: string, topic: string): Promise<boolean> {
    const row = this.#row(id);
    if (!row || row.revoked_at !== null || (row.expires_at !== null && Date.now() >= row.expires_at)) return false;
    this.#sql.exec(`INSERT OR REPLACE INTO dk_live (key_id, socket, topic) VALUES (?, ?, ?)`, id, socket, topic);
    return true;
  }

  /** A socket registered with {@link socketOpened} closed. Unknown sockets are ignored. */
  async socketClosed(id: string, socket: string): Promise<void> {
    this.#sql.exec(`DELETE FROM dk_live WHERE key_id = ? AND socket = ?`, id, socket);
  }

  /** Verify a presented key (by its hash) and take one token from its request bucket. */
  async admit(id: string, hash: string): Promise<Admission> {
    const row = this.#row(id);
    // Same answer for "no such key" and "wrong secret": ids are not secret, but nothing is learnt.
    if (!row || !sameHash(row.hash, hash)) return { ok: false, code: "unauthorized", message: "unknown API key" };
    const now = Date.now();
    if (row.revoked_at !== null) return { ok: false, code: "unauthorized", message: "API key revoked" };
    if (row.expires_at !== null && now >= row.expires_at) return { ok: false, code: "unauthorized", message: "API key expired" };
    const record = toRecord(row);
    const scopes = parseScopes(record.scopes) as Scope[];
    let bucket = this.#buckets.get(id);
    if (!bucket) this.#buckets.set(id, (bucket = fullBucket(record.rate.burst, now)));
    const wait = takeTokens(bucket, record.rate.requestsPerSecond, record.rate.burst, 1, now);
    if (wait > 0) return { ok: false, code: "rate_limited", retryAfterMs: wait, record, scopes };
    return { ok: true, record, scopes };
  }
}
