/**
 * The official Durable Streams server conformance suite (@durable-streams/server-conformance-tests)
 * against the real bus: `scripts/dev.mjs` (wrangler dev, workerd, local SQLite) started by
 * startBus(), the way the README starts it. The suite builds its URLs as `${baseUrl}/v1/stream/…`,
 * which is where the gateway serves the protocol, so baseUrl is the bus origin.
 *
 * The long-poll timeout is shortened so the suite's timeout cases finish sooner; the protocol
 * leaves it to the server.
 */
import { afterAll, beforeAll, describe } from "vitest";
import { runConformanceTests } from "@durable-streams/server-conformance-tests";
import { startBus, type BusProcess } from "../support/bus-process.ts";

// `subscriptions: true` runs the suite's reserved subscription API tests (`__ds`, decision 027); the
// bus runs under scripts/dev.mjs, so the suite's webhook receivers on 127.0.0.1 are allowed.
const config = { baseUrl: "", longPollTimeoutMs: 3_000, subscriptions: true };
let bus: BusProcess | undefined;

beforeAll(async () => {
  bus = await startBus({ vars: { DOVETAIL_AUTH: "off", STREAM_LONG_POLL_MS: "3000" } });
  config.baseUrl = bus.url;
});

afterAll(async () => {
  await bus?.stop();
});

describe("Durable Streams conformance suite against the bus", () => {
  runConformanceTests(config);
});
