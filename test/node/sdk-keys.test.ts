/**
 * `dovetail keys create|list|revoke` (and the SDK's `connectAdmin`) against a real bus with
 * auth on, run as real processes: keys are issued with scopes in the caller's tenant, listed
 * without secrets, work within their scopes only, and stop working the moment they are revoked.
 */
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectAdmin } from "../../sdk/src/admin.ts";
import { connect, DovetailError } from "../../sdk/src/index.ts";
import { startBus, type BusProcess } from "../support/bus-process.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const CLI = path.join(ROOT, "sdk/bin/dovetail.ts");
/** Nothing listens on port 9: a command that reaches for the bus there exits 3, not 2. */
const UNREACHABLE = "http://127.0.0.1:9";

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run the CLI with this Node (>= 24, type stripping). */
function cli(args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: ROOT,
      env: { ...process.env, DOVETAIL_URL: "", DOVETAIL_TOKEN: "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

let counter = 0;
/** A fresh topic prefix per test, so scopes like `publish:<prefix>.*` match only this test's topics. */
const freshPrefix = () => `keys-${Date.now().toString(36)}-${++counter}`;

/** The fields the admin API documents for a key record (docs/security.md, "Admin API"). */
const RECORD_FIELDS = ["createdAt", "expiresAt", "id", "name", "rate", "revokedAt", "scopes", "tenant"];

describe("dovetail keys", () => {
  let server: BusProcess;
  let admin: Record<string, string>;

  /** An HS256 token for `tenant`, signed with the bus's development secret, as an operator would mint it. */
  function mintToken(tenant: string, scope: string): string {
    const secret = readFileSync(path.join(server.state, "dev-secret"), "utf8").trim();
    const b64 = (obj: object) => Buffer.from(JSON.stringify(obj)).toString("base64url");
    const now = Math.floor(Date.now() / 1000);
    const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ iss: "dovetail", aud: "dovetail", sub: `test-${tenant}`, tenant, scope, iat: now, exp: now + 3600 })}`;
    return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
  }

  async function createKey(name: string, scopes: string[], env = admin): Promise<{ key: string; id: string } & Record<string, unknown>> {
    const r = await cli(["keys", "create", name, ...scopes.flatMap((s) => ["--scope", s]), "--json"], env);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    return JSON.parse(r.stdout);
  }

  beforeAll(async () => {
    server = await startBus({ auth: true });
    admin = { DOVETAIL_URL: server.url, DOVETAIL_TOKEN: server.token! };
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("create issues a key with its scopes, expiry and rate in the caller's tenant, and prints it once", async () => {
    const prefix = freshPrefix();
    const before = Date.now();
    const r = await cli(
      [
        "keys",
        "create",
        "agent-1",
        "--scope",
        `publish:${prefix}.*`,
        "--scope",
        `subscribe:${prefix}.>`,
        "--expires-in",
        "1d",
        "--rate",
        "requestsPerSecond=50",
        "--json",
      ],
      admin,
    );
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
    const created = JSON.parse(r.stdout);
    expect(Object.keys(created).sort()).toEqual(["key", ...RECORD_FIELDS].sort());
    expect(created.key).toMatch(/^dvt_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(created.key.slice(4, 20)).toBe(created.id);
    expect(created).toMatchObject({ name: "agent-1", tenant: "default", scopes: [`publish:${prefix}.*`, `subscribe:${prefix}.>`], revokedAt: null });
    expect(created.rate).toMatchObject({ requestsPerSecond: 50, burst: 200 }); // the override, and a default
    expect(created.createdAt).toBeGreaterThanOrEqual(before);
    expect(created.expiresAt - created.createdAt).toBeGreaterThanOrEqual(86_400_000 - 1000);
    expect(created.expiresAt - created.createdAt).toBeLessThanOrEqual(86_400_000 + 1000);
  });

  it("list shows each key's record as the API returns it, never the secret or its hash", async () => {
    const prefix = freshPrefix();
    const created = await createKey(`lister-${prefix}`, [`subscribe:${prefix}.>`, "publish"]);
    // dvt_<16 hex id>_<secret>: the secret is base64url, so it may hold "_" itself (even first).
    const secret = created.key.slice("dvt_".length + 16 + 1);

    const json = await cli(["keys", "list", "--json"], admin);
    expect(json.code).toBe(0);
    const keys = JSON.parse(json.stdout) as Record<string, unknown>[];
    const { key: _key, ...record } = created;
    expect(keys).toContainEqual(record);
    for (const k of keys) expect(Object.keys(k).sort()).toEqual(RECORD_FIELDS);
    expect(json.stdout).not.toContain(secret);
    expect(json.stdout).not.toMatch(/hash/i);

    const table = await cli(["keys", "list"], admin);
    expect(table.code).toBe(0);
    const [header, ...rows] = table.stdout.trimEnd().split("\n");
    expect(header).toMatch(/^ID\s+NAME\s+SCOPES\s+CREATED\s+EXPIRES\s+REVOKED$/);
    const row = rows.find((l) => l.startsWith(created.id));
    expect(row).toMatch(new RegExp(`^${created.id}\\s+lister-${prefix}\\s+subscribe:${prefix}\\.> publish:>\\s+\\d{4}-\\d\\d-\\d\\dT[\\d:]+Z\\s+-\\s+-$`));
    expect(table.stdout).not.toContain(secret);
  });

  it("a new key publishes within its scopes, exits 4 outside them, and fails with unauthorized at once when revoked", async () => {
    const prefix = freshPrefix();
    const created = await createKey("publisher", [`publish:${prefix}.*`, `subscribe:${prefix}.*`]);
    const asKey = { DOVETAIL_URL: server.url, DOVETAIL_TOKEN: created.key };

    const ok = await cli(["pub", `${prefix}.jobs`, '{"n":1}', "--json"], asKey);
    expect(ok).toMatchObject({ code: 0, stdout: '{"offset":0}\n' });
    const outside = await cli(["pub", `other-${prefix}.jobs`, "1"], asKey);
    expect(outside.code).toBe(4);
    expect(outside.stderr).toMatch(/permission denied/);
    const tooDeep = await cli(["pub", `${prefix}.jobs.done`, "1"], asKey); // `*` is one segment
    expect(tooDeep.code).toBe(4);
    const notAdmin = await cli(["keys", "list"], asKey);
    expect(notAdmin.code).toBe(4);

    // A live subscription opened with the key, to see revocation close it.
    const bus = connect(server.url, { token: created.key });
    const sub = bus.subscribe(`${prefix}.jobs`, { from: 0 });
    expect((await sub.next()).value).toMatchObject({ offset: 0, data: { n: 1 } });

    const revoke = await cli(["keys", "revoke", created.id, "--json"], admin);
    expect({ code: revoke.code, stderr: revoke.stderr }).toEqual({ code: 0, stderr: "" });
    const revoked = JSON.parse(revoke.stdout);
    expect(revoked).toMatchObject({ id: created.id, name: "publisher", tenant: "default" });
    expect(revoked.revokedAt).toBeGreaterThanOrEqual(created.createdAt as number);
    // The subscription socket opened with this key was closed by the revoke.
    expect(revoked.closedSockets).toBeGreaterThanOrEqual(1);
    expect(revoked).not.toHaveProperty("key");

    // At once: the very next request with the key is refused, and the open socket was closed.
    const after = await cli(["pub", `${prefix}.jobs`, "2"], asKey);
    expect(after.code).toBe(4);
    expect(after.stderr).toMatch(/authentication failed/);
    const info = await cli(["info", `${prefix}.jobs`], asKey);
    expect(info.code).toBe(4);
    await expect(sub.next()).rejects.toMatchObject({ code: "unauthorized" });
    await bus.close({ force: true });

    const list = JSON.parse((await cli(["keys", "list", "--json"], admin)).stdout) as { id: string; revokedAt: number | null }[];
    expect(list.find((k) => k.id === created.id)?.revokedAt).toBe(revoked.revokedAt);
    const again = await cli(["keys", "revoke", created.id, "--json"], admin); // revoking twice is allowed
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout).revokedAt).toBe(revoked.revokedAt);
  });

  it("keys commands exit 4 with permission denied for a credential without admin:>, and for a bad token", async () => {
    const prefix = freshPrefix();
    const plain = await createKey("no-admin", [`publish:${prefix}.>`, `subscribe:${prefix}.>`]);
    const narrowAdmin = await createKey("narrow-admin", [`admin:${prefix}.>`]); // admin on some topics is not admin:>
    for (const token of [plain.key, narrowAdmin.key]) {
      const env = { DOVETAIL_URL: server.url, DOVETAIL_TOKEN: token };
      for (const args of [
        ["keys", "list"],
        ["keys", "create", "x", "--scope", "publish"],
        ["keys", "revoke", plain.id],
      ]) {
        const r = await cli(args, env);
        expect({ args, code: r.code }).toEqual({ args, code: 4 });
        expect(r.stderr).toMatch(/^dovetail: permission denied: .*admin:>/);
      }
    }
    const bad = await cli(["keys", "list"], { DOVETAIL_URL: server.url, DOVETAIL_TOKEN: "dvt_0000000000000000_nope" });
    expect(bad.code).toBe(4);
    expect(bad.stderr).toMatch(/authentication failed/);
  });

  it("keys live in the tenant of the credential that created them; other tenants neither see nor revoke them", async () => {
    const teamA = { DOVETAIL_URL: server.url, DOVETAIL_TOKEN: mintToken("team-a", "admin:>") };
    const prefix = freshPrefix();
    const created = await createKey("team-a-agent", [`publish:${prefix}.>`], teamA);
    expect(created.tenant).toBe("team-a");
    const teamAList = JSON.parse((await cli(["keys", "list", "--json"], teamA)).stdout) as { id: string; tenant: string }[];
    expect(teamAList.map((k) => k.id)).toEqual([created.id]);
    const defaultList = JSON.parse((await cli(["keys", "list", "--json"], admin)).stdout) as { id: string }[];
    expect(defaultList.map((k) => k.id)).not.toContain(created.id);
    const foreign = await cli(["keys", "revoke", created.id], admin);
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toMatch(new RegExp(`no key ${created.id} in this tenant \\[not_found\\]`));
    const pub = await cli(["pub", `${prefix}.x`, "1"], { DOVETAIL_URL: server.url, DOVETAIL_TOKEN: created.key });
    expect(pub.code).toBe(0);
  });

  it("the SDK's connectAdmin creates, lists and revokes keys and throws typed errors", async () => {
    const a = connectAdmin(server.url, { token: server.token! });
    const prefix = freshPrefix();
    const created = await a.keys.create({ name: "sdk", scopes: [`publish:${prefix}.*`], rate: { burst: 5 }, expiresAt: null });
    expect(created).toMatchObject({ name: "sdk", tenant: "default", expiresAt: null, rate: { burst: 5 } });
    expect((await a.keys.list()).find((k) => k.id === created.id)).not.toHaveProperty("key");
    expect((await a.keys.revoke(created.id)).revokedAt).not.toBeNull();
    await expect(a.keys.revoke("ffffffffffffffff")).rejects.toMatchObject({ code: "not_found" });
    await expect(a.keys.create({ name: "bad", scopes: ["publish:a.>.b"] })).rejects.toMatchObject({ code: "invalid_field" });
    const error = await connectAdmin(server.url, { token: created.key })
      .keys.list()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DovetailError);
    expect(error).toMatchObject({ code: "unauthorized" });
  });

  it("prints --help for keys and each keys command", async () => {
    for (const args of [
      ["keys", "--help"],
      ["help", "keys"],
      ["keys", "create", "--help"],
      ["keys", "list", "-h"],
      ["keys", "revoke", "--help"],
      ["help", "keys", "revoke"],
    ]) {
      const r = await cli(args, { DOVETAIL_URL: UNREACHABLE });
      const name = args.filter((a) => a !== "help" && !a.startsWith("-")).join(" ");
      expect({ args, code: r.code }).toEqual({ args, code: 0 });
      expect(r.stdout).toMatch(new RegExp(`^Usage: dovetail ${name} `));
    }
    expect((await cli(["keys", "create", "--help"], {})).stdout).toMatch(/--scope S.*\n(.*\n)*.*--expires-in D(.*\n)*.*--rate name=value/);
    const main = await cli(["--help"], {});
    expect(main.stdout).toMatch(/keys create <name>/);
    expect(main.stdout).toMatch(/keys revoke <id>/);
  });

  it("exits 2 with a clear message on bad input, before reaching the bus", async () => {
    const env = { DOVETAIL_URL: UNREACHABLE, DOVETAIL_TOKEN: "unused" };
    const cases: [string[], RegExp][] = [
      [["keys"], /keys: missing command\n\nUsage: dovetail keys /],
      [["keys", "frob"], /keys: unknown command "frob"/],
      [["keys", "create"], /keys create: missing <name>\n\nUsage: dovetail keys create /],
      [["keys", "create", "agent"], /keys create: give at least one --scope/],
      [
        ["keys", "create", "agent", "--scope", "publsh:agents.*"],
        /--scope "publsh:agents\.\*": expected action:pattern with action publish, subscribe, consume, admin/,
      ],
      [["keys", "create", "agent", "--scope", "publish:"], /--scope "publish:": missing the topic pattern/],
      [["keys", "create", "agent", "--scope", "publish:a subscribe:b"], /a scope has no spaces/],
      [["keys", "create", "agent", "publish:a"], /one <name> only/],
      [["keys", "create", "agent", "--scope", "publish", "--expires-in", "3 weeks"], /--expires-in: expected a duration such as 90s/],
      [["keys", "create", "agent", "--scope", "publish", "--expires-in", "1d", "--expires-at", "2030-01-01"], /--expires-in or --expires-at, not both/],
      [["keys", "create", "agent", "--scope", "publish", "--expires-at", "soon"], /--expires-at: expected an ISO date/],
      [["keys", "create", "agent", "--scope", "publish", "--rate", "speed=5"], /--rate: expected name=value with name one of requestsPerSecond/],
      [["keys", "create", "agent", "--scope", "publish", "--rate", "burst=-1"], /--rate burst: expected a positive number/],
      [["keys", "create", "agent", "--scope"], /--scope/],
      [["keys", "list", "--all"], /Unknown option '--all'/],
      [["keys", "list", "extra"], /keys list: takes no arguments/],
      [["keys", "revoke"], /keys revoke: missing <id>/],
      [["keys", "revoke", "dvt_0123"], /keys revoke: expected a key id \(16 hex characters/],
      [["keys", "list", "--url", "ftp://x"], /url: expected http\(s\) or ws\(s\)/],
    ];
    for (const [args, message] of cases) {
      const r = await cli(args, env);
      expect({ args, code: r.code, stdout: r.stdout }).toEqual({ args, code: 2, stdout: "" });
      expect(r.stderr).toMatch(/^dovetail: /);
      expect(r.stderr).toMatch(message);
    }
    // The same commands, well formed, do reach for the bus: exit 3 proves the 2s above were offline.
    const unreachable = await cli(["keys", "list"], env);
    expect(unreachable.code).toBe(3);
    expect(unreachable.stderr).toMatch(/cannot connect to http:\/\/127\.0\.0\.1:9/);
  });

  it("a scope the bus finds invalid is refused with its reason (exit 1, invalid_field)", async () => {
    const r = await cli(["keys", "create", "agent", "--scope", "publish:agents.>.logs"], admin);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/scopes: scope "publish:agents\.>\.logs": `>` may only be the last segment of a pattern \[invalid_field\]/);
    const missing = await cli(["keys", "revoke", "0123456789abcdef"], admin);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no key 0123456789abcdef in this tenant \[not_found\]/);
  });
});
