/**
 * The zod schemas of the agent registry, as the server checks what clients send: the presence
 * socket's frames (`parseRegistryClientFrame`, the one place they are decoded) and the HTTP
 * bodies of workers/routes/agents.ts. Kept apart from agents.ts, which clients import, so that
 * clients never load zod (decision 025).
 */
import { z } from "zod";
import {
  AGENT_ID,
  CAPABILITY,
  MAX_AGENT_NAME_LENGTH,
  MAX_CAPABILITIES,
  MAX_HEARTBEAT_TTL_MS,
  MAX_META_BYTES,
  MAX_REGISTRY_FRAME_BYTES,
  MIN_HEARTBEAT_TTL_MS,
  type RegistryClientFrame,
} from "./agents.ts";
import { DovetailError } from "./errors.ts";
import { MAX_DATA_DEPTH, nestsDeeperThan, parseFailure, type ParseResult } from "./frames.ts";
import { issueText, readClientFrame } from "./frame-schemas.ts";

const correlationIdSchema = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
export const agentIdSchema = z.string().regex(AGENT_ID, "an agent id is 1–128 characters of A-Z a-z 0-9 _ . : -");
const capabilitySchema = z.string().regex(CAPABILITY, "a capability is 1–64 characters of A-Z a-z 0-9 _ . : / -");

/** The fields an agent may set: on register, and (any subset) on update. */
const agentFields = {
  name: z.string().min(1).max(MAX_AGENT_NAME_LENGTH).optional(),
  capabilities: z
    .array(capabilitySchema)
    .max(MAX_CAPABILITIES)
    .refine((c) => new Set(c).size === c.length, { message: "capabilities must not repeat" })
    .optional(),
  // Any JSON object; its size and depth are checked by checkMeta (zod's record would walk it by recursion).
  meta: z.record(z.string(), z.unknown()).optional(),
};

/** `POST /v1/agents`: register (or update) an agent held by HTTP heartbeats. */
export const registerBodySchema = z.object({
  id: agentIdSchema,
  ...agentFields,
  /** Present until this long after the last heartbeat (default 30 s). */
  ttlMs: z.number().int().min(MIN_HEARTBEAT_TTL_MS).max(MAX_HEARTBEAT_TTL_MS).optional(),
});
export type RegisterBody = z.infer<typeof registerBodySchema>;

/** `POST /v1/agents/{id}/heartbeat`: an empty body, or a new TTL. */
export const heartbeatBodySchema = z.object({ ttlMs: z.number().int().min(MIN_HEARTBEAT_TTL_MS).max(MAX_HEARTBEAT_TTL_MS).optional() });

const registryFrameSchemas = {
  register: z.object({ type: z.literal("register"), id: correlationIdSchema, agent: agentIdSchema, ...agentFields }),
  update: z.object({ type: z.literal("update"), id: correlationIdSchema, ...agentFields }),
  leave: z.object({ type: z.literal("leave"), id: correlationIdSchema }),
} as const;

/**
 * The metadata's JSON text, or the refusal: `meta_too_large` over {@link MAX_META_BYTES},
 * `too_deep` past the protocol's nesting limit.
 */
export function checkMeta(meta: Record<string, unknown> | undefined): string {
  if (meta === undefined) return "{}";
  if (nestsDeeperThan(meta, MAX_DATA_DEPTH)) throw new DovetailError("too_deep", `meta nests more than ${MAX_DATA_DEPTH} levels of arrays and objects`);
  const json = JSON.stringify(meta);
  if (json.length > MAX_META_BYTES) throw new DovetailError("meta_too_large", `meta is ${json.length} bytes as JSON; the limit is ${MAX_META_BYTES}`);
  return json;
}

/**
 * Parse one frame of a presence socket: the typed frame, or a typed error with the frame's `id`
 * when one could be read. Metadata size is checked with {@link checkMeta} by the registry.
 */
export function parseRegistryClientFrame(raw: string | ArrayBuffer): ParseResult<RegistryClientFrame> {
  if (typeof raw !== "string") return parseFailure("bad_frame", "binary frames are not part of protocol v1; send JSON text");
  if (raw.length > MAX_REGISTRY_FRAME_BYTES) return parseFailure("meta_too_large", `a registry frame is at most ${MAX_REGISTRY_FRAME_BYTES} bytes`);
  const read = readClientFrame(raw);
  if (!read.ok) return read;
  const obj = read.frame;
  const type = obj.type;
  if (!Object.hasOwn(registryFrameSchemas, type))
    return parseFailure("unknown_type", `unknown registry frame type ${JSON.stringify(type).slice(0, 64)}`, obj.id);
  const parsed = registryFrameSchemas[type as keyof typeof registryFrameSchemas].safeParse(obj);
  if (!parsed.success) return parseFailure("invalid_field", issueText(parsed.error), obj.id);
  return { ok: true, frame: parsed.data as RegistryClientFrame };
}
