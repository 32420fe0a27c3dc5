/** `dovetail keys list`: the API keys of your tenant, never their secrets. */
import type { KeyRecord } from "../../admin.ts";
import { defineCommand } from "../command.ts";
import { openAdmin } from "../connection.ts";
import { EXIT } from "../errors.ts";
import { isoTime, table } from "../output.ts";

function keyTable(keys: KeyRecord[]): string {
  return table([
    ["ID", "NAME", "SCOPES", "CREATED", "EXPIRES", "REVOKED"],
    ...keys.map((k) => [k.id, k.name, k.scopes.join(" "), isoTime(k.createdAt), isoTime(k.expiresAt), isoTime(k.revokedAt)]),
  ]);
}

export const keysList = defineCommand({
  name: "keys list",
  args: [],
  summary: "list your tenant's API keys",
  description: `Lists the API keys of your tenant, oldest first, revoked ones included: id, name, scopes,
creation, expiry and revocation times. Never shows a key's secret.`,
  json: "the records as the admin API returns them, as one JSON array",
  options: {},
  async run({ values, out }) {
    const { admin } = openAdmin(values);
    out.print(await admin.keys.list(), keyTable);
    return EXIT.ok;
  },
});
