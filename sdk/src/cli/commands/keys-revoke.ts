/** `dovetail keys revoke <id>`: revoke an API key at once. */
import { defineCommand } from "../command.ts";
import { openAdmin } from "../connection.ts";
import { EXIT, UsageError } from "../errors.ts";
import { fields } from "../output.ts";
import { keyFields } from "./keys-create.ts";

/** A key id: the 16 hex characters after `dvt_` (docs/security.md, "API keys"). */
const KEY_ID = /^[0-9a-f]{16}$/;

export const keysRevoke = defineCommand({
  name: "keys revoke",
  args: ["<id>"],
  summary: "revoke an API key at once",
  description: `Revokes the key with this id (the 16 hex characters after "dvt_"; see dovetail keys list) and
prints its record with the revocation time and how many open sockets were closed. It stops
working at once: new requests get "unauthorized" and its open sockets are closed.`,
  json: `the record, with "revokedAt" and "closedSockets"`,
  options: {},
  async run({ values, positionals, out }) {
    const id = positionals[0]!;
    if (!KEY_ID.test(id)) throw new UsageError(`keys revoke: expected a key id (16 hex characters, see dovetail keys list), got ${JSON.stringify(id)}`);
    const { admin } = openAdmin(values);
    out.print(await admin.keys.revoke(id), (r) => fields([...keyFields(r), ["closed sockets", String(r.closedSockets)]]));
    return EXIT.ok;
  },
});
