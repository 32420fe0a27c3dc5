/**
 * /v1/admin: key management for the caller's tenant (docs/security.md, "Admin API"). Guarded
 * by permissions(): only a credential with the scope `admin:>` gets here. The CLI's
 * `dovetail keys create|list|revoke` calls these routes.
 *
 *   POST   /v1/admin/keys        {name, scopes, rate?, expiresAt? | expiresInMs?} → 201 {key, ...record}
 *   GET    /v1/admin/keys        → {keys: [record...]}
 *   DELETE /v1/admin/keys/{id}   → {...record, closedSockets}
 */
import { Hono, type Context } from "hono";
import { z } from "zod";
import { DovetailError } from "../../protocol/errors.ts";
import { KEYS_OBJECT_NAME } from "../../objects/keys.ts";
import { rateOverridesSchema } from "../../protocol/credential.ts";
import { MAX_SCOPES, parseScopes } from "../../protocol/scopes.ts";
import type { GatewayEnv } from "../gateway-env.ts";
import { permit } from "../middleware/permissions.ts";
import { topicStub } from "../topic-stub.ts";
import { registryObjectName } from "../../protocol/agents.ts";

/** Largest admin request body. */
export const MAX_ADMIN_BODY_BYTES = 64 * 1024;
/** Topics whose sockets are closed in parallel on revocation. */
const CLOSE_PARALLELISM = 32;

const createKeySchema = z
  .object({
    name: z.string().min(1).max(100),
    scopes: z.array(z.string().max(300)).min(1).max(MAX_SCOPES),
    rate: rateOverridesSchema.optional(),
    expiresAt: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).nullable().optional(),
    expiresInMs: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
  })
  .strict()
  .refine((b) => b.expiresAt == null || b.expiresInMs === undefined, { message: "give expiresAt or expiresInMs, not both" });

function keys(c: Context<GatewayEnv>) {
  return c.env.KEYS.get(c.env.KEYS.idFromName(KEYS_OBJECT_NAME));
}

async function body(c: Context<GatewayEnv>): Promise<unknown> {
  const text = await c.req.text();
  if (text.length > MAX_ADMIN_BODY_BYTES) throw new DovetailError("batch_too_large", `request body is over ${MAX_ADMIN_BODY_BYTES} bytes`);
  try {
    return JSON.parse(text);
  } catch {
    throw new DovetailError("bad_frame", "request body is not valid JSON");
  }
}

export function adminRoutes(): Hono<GatewayEnv> {
  const admin = new Hono<GatewayEnv>();
  // Every admin route needs the admin scope over every topic (admin:>), checked before anything.
  admin.use("*", permit("admin", null));

  admin.post("/keys", async (c) => {
    const parsed = createKeySchema.safeParse(await body(c));
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new DovetailError("invalid_field", `${issue?.path.join(".") || "body"}: ${issue?.message ?? "invalid"}`);
    }
    const input = parsed.data;
    const scopes = parseScopes(input.scopes);
    if (typeof scopes === "string") throw new DovetailError("invalid_field", `scopes: ${scopes}`);
    const expiresAt = input.expiresInMs !== undefined ? Date.now() + input.expiresInMs : (input.expiresAt ?? null);
    const { key, record } = await keys(c).create({
      name: input.name,
      tenant: c.get("tenant"),
      scopes: input.scopes,
      ...(input.rate ? { rate: input.rate } : {}),
      expiresAt,
    });
    return c.json({ key, ...record }, 201);
  });

  admin.get("/keys", async (c) => c.json({ keys: await keys(c).list(c.get("tenant")) }));

  admin.delete("/keys/:id", async (c) => {
    const id = c.req.param("id");
    if (!/^[0-9a-f]{16}$/.test(id)) throw new DovetailError("invalid_field", "id: expected the 16 hex characters of a key id");
    const tenant = c.get("tenant");
    const revoked = await keys(c).revoke(tenant, id);
    if (!revoked) throw new DovetailError("not_found", `no key ${id} in this tenant`);
    // Close the key's live sockets: Keys knows the topics that registered them, and no others.
    let closedSockets = 0;
    const topics = [...revoked.topics];
    await Promise.all(
      Array.from({ length: Math.min(CLOSE_PARALLELISM, topics.length) }, async () => {
        for (let topic = topics.pop(); topic !== undefined; topic = topics.pop()) {
          // Await first: `total += await x` reads the total before the await and loses the other workers' counts.
          const closed = await topicStub(c.env, tenant, topic).closeCredential(`key:${id}`);
          closedSockets += closed;
        }
      }),
    );
    // And its agents' presence sockets (the tenant's registry, objects/registry.ts).
    closedSockets += await c.env.REGISTRY.get(c.env.REGISTRY.idFromName(registryObjectName(tenant))).closeCredential(`key:${id}`);
    return c.json({ ...revoked.record, closedSockets });
  });

  const notAllowed = (c: Context<GatewayEnv>) => {
    throw new DovetailError("method_not_allowed", `${c.req.method} is not allowed on ${new URL(c.req.url).pathname}`);
  };
  admin.all("/keys", notAllowed);
  admin.all("/keys/:id", notAllowed);
  return admin;
}
