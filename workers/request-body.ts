/**
 * Reading a JSON request body at the edge: size-capped before it is read, strict UTF-8, one
 * error for each way it can be wrong (`batch_too_large`, `invalid_utf8`, `bad_frame`), and zod
 * issues turned into `invalid_field` naming the field.
 */
import type { Context } from "hono";
import type { z } from "zod";
import { decodeUtf8Strict } from "../objects/bytes.ts";
import { DovetailError } from "../protocol/errors.ts";
import type { GatewayEnv } from "./gateway-env.ts";

/** The request's JSON body, refused above `maxBytes`. */
export async function jsonBody(c: Context<GatewayEnv>, maxBytes: number): Promise<unknown> {
  const declared = Number(c.req.header("Content-Length") ?? "0");
  if (declared > maxBytes) throw new DovetailError("batch_too_large", `request body is ${declared} bytes; the limit is ${maxBytes}`);
  const body = await c.req.arrayBuffer();
  if (body.byteLength > maxBytes) throw new DovetailError("batch_too_large", `request body is over ${maxBytes} bytes`);
  const text = decodeUtf8Strict(body);
  if (text === null) throw new DovetailError("invalid_utf8", "request body is not valid UTF-8");
  try {
    return JSON.parse(text);
  } catch {
    throw new DovetailError("bad_frame", "request body is not valid JSON");
  }
}

/** The `invalid_field` error for the first issue zod found. */
export function invalid(error: z.ZodError): DovetailError {
  const issue = error.issues[0];
  const path = issue?.path.join(".");
  return new DovetailError("invalid_field", path ? `${path}: ${issue?.message}` : (issue?.message ?? "invalid body"));
}
