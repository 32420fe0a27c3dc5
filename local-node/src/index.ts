/**
 * @dovetail/local-node: a shared-memory ring for agents on one host and a TCP relay for hosts on
 * one network. Node only (Linux: /dev/shm and futex).
 *
 * @example
 * import { Ring } from "@dovetail/local-node";
 * const w = Ring.create("agents");
 * const r = Ring.open("agents");
 * w.publish(new TextEncoder().encode("hi"));
 * r.poll();
 */
export { Ring, RingReader, RingWriter, FULL, ringPath, shmDir } from "./ring.ts";
export type { RingRecord, RingGap, CreateOptions, OpenOptions, RingStat, ConsumerStat } from "./ring.ts";
export { RingError, RingErrorCode, RelayError, RelayErrorCode, BridgeError, BridgeErrorCode } from "./errors.ts";
export { crc32c, crc32cUpdate } from "./crc32c.ts";
export { RelayServer, RelayClient } from "./relay.ts";
export type { RelayServerOptions, RelayClientOptions, RelayEvent } from "./relay.ts";
export { RESUME_FROM_NOW } from "./protocol.ts";
export {
  bridge,
  decodeEdgeRecord,
  oldestBoundary,
  bridgeCheckpointPath,
  bridgeLockPath,
  unlinkBridgeFiles,
  EDGE_BYTES_TYPE,
  EDGE_JSON_TYPE,
  EDGE_OFFSET_BYTES,
  RING_HEADER,
  RING_OFFSET_HEADER,
  RING_LOST_HEADER,
} from "./bridge.ts";
export type { Bridge, BridgeOptions, BridgeDirection, BridgeEvent, BridgeResume, BridgeStats, EdgeRecord } from "./bridge.ts";
