/**
 * Standard Schema v1 (https://standardschema.dev, the `@standard-schema/spec` package), written
 * from its specification rather than imported: the SDK validates with whatever schema library
 * the application uses (zod 4, Valibot, ArkType, Effect Schema all carry `~standard`) and loads
 * none of them itself.
 *
 * The contract: a schema has a `~standard` property with `version: 1`, a `vendor` name and a
 * `validate(value)` that never throws for bad input; it returns (or resolves to) either
 * `{ value }` (the output, after any transforms) or `{ issues }` (a non-empty list of
 * `{ message, path? }`). `types` exists only for type inference.
 */
import { DovetailError, type SchemaIssue } from "../../protocol/errors.ts";

export type { SchemaIssue };

/** What `validate` returns when the value fits: the schema's output. */
export interface SchemaSuccess<Output> {
  readonly value: Output;
  readonly issues?: undefined;
}

/** What `validate` returns when the value does not fit. */
export interface SchemaFailure {
  readonly issues: readonly SchemaIssue[];
}

export type SchemaResult<Output> = SchemaSuccess<Output> | SchemaFailure;

/** The `~standard` property of a Standard Schema v1 object. */
export interface StandardSchemaProps<Input = unknown, Output = Input> {
  readonly version: 1;
  readonly vendor: string;
  readonly validate: (
    value: unknown,
    options?: { readonly libraryOptions?: Record<string, unknown> } | undefined,
  ) => SchemaResult<Output> | Promise<SchemaResult<Output>>;
  /** Present only in types, for inference. */
  readonly types?: { readonly input: Input; readonly output: Output } | undefined;
}

/**
 * Any schema that implements Standard Schema v1, for example a zod 4 schema.
 *
 * @example
 * import { z } from "zod";
 * const Order = z.object({ id: z.string(), qty: z.number().int() });
 * const schema: StandardSchema<unknown, { id: string; qty: number }> = Order;
 */
export interface StandardSchema<Input = unknown, Output = Input> {
  readonly "~standard": StandardSchemaProps<Input, Output>;
}

/** The type a schema produces (`z.output<typeof S>` for zod). */
export type InferOutput<S extends StandardSchema> = NonNullable<S["~standard"]["types"]>["output"];

/**
 * Validate `value` with `schema`; resolves with the schema's output, or rejects with a
 * `schema_mismatch` DovetailError carrying `offset` and the schema's `issues`.
 *
 * @example
 * const order = await conform(Order, msg.data, msg.offset, "orders");
 */
export async function conform<Output>(schema: StandardSchema<unknown, Output>, value: unknown, offset: number, topic: string): Promise<Output> {
  const result = await schema["~standard"].validate(value);
  if (result.issues === undefined) return result.value;
  throw schemaMismatch(result.issues, offset, topic);
}

/** Readable path of an issue: `items.3.qty`. */
function pathText(issue: SchemaIssue): string {
  return (issue.path ?? []).map((p) => String(typeof p === "object" && p !== null ? p.key : p)).join(".");
}

export function schemaMismatch(issues: readonly SchemaIssue[], offset: number, topic: string): DovetailError {
  const first = issues[0];
  const where = first ? pathText(first) : "";
  const summary = first ? `${where ? `${where}: ` : ""}${first.message}` : "no issue given";
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : "";
  return new DovetailError("schema_mismatch", `message ${offset} of ${topic} does not fit the schema: ${summary}${more}`, { offset, issues });
}
