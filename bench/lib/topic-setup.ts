/**
 * What a system needs on the server before a run's first publish, made by the harness (runner.ts)
 * and removed after:
 *
 * - `dovetail-async`, `dovetail-memory`: `PATCH /v1/topics/{topic}` `{"durability": level}` on each
 *   fresh topic (auth is off in the bench). A bus that refuses it (400 `invalid_field` before it
 *   knew durability levels) or answers without the level fails the run: measuring the default
 *   level under another level's name would be a silent lie.
 * - `nats-jetstream`: one stream per topic, file storage (nats-server `-js -sd <temp folder>`),
 *   the topic as its only subject, otherwise JetStream's defaults (limits retention; the file
 *   store syncs to disk every 2 minutes by default, not per message). Deleted after the run so the
 *   server does not carry earlier cases' data into later ones.
 *
 * @example
 * const cleanup = await prepareTopics("nats-jetstream", "nats://127.0.0.1:4222", ["bench.a.0"]);
 * ... run ...
 * await cleanup();
 */
import { jetstreamManager, StorageType } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import type { Durability } from "../../protocol/durability.ts";
import { DURABILITY_OF, jetStreamName, natsServer, type ClientName } from "./systems.ts";

/** Undo what {@link prepareTopics} made (never throws). */
export type Cleanup = () => Promise<void>;

const nothing: Cleanup = async () => {};

export async function prepareTopics(system: ClientName, url: string, topics: string[]): Promise<Cleanup> {
  const level = DURABILITY_OF[system as keyof typeof DURABILITY_OF];
  if (level) {
    for (const topic of topics) await setDurability(url, topic, level);
    return nothing;
  }
  if (system === "nats-jetstream") return createStreams(url, topics);
  return nothing;
}

/** PATCH the topic's durability level and check the answer names it. */
export async function setDurability(url: string, topic: string, level: Durability): Promise<void> {
  const where = `PATCH /v1/topics/${topic} {"durability":"${level}"}`;
  const res = await fetch(`${url}/v1/topics/${encodeURIComponent(topic)}`, {
    method: "PATCH",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ durability: level }),
  });
  const text = await res.text();
  if (!res.ok) {
    const hint = res.status === 400 && text.includes("invalid_field") ? " (this bus does not know durability levels: merge main once they land)" : "";
    throw new Error(`dovetail-${level}: ${where} answered ${res.status} ${text.slice(0, 300)}${hint}`);
  }
  let body: { durability?: unknown };
  try {
    body = JSON.parse(text) as { durability?: unknown };
  } catch {
    throw new Error(`dovetail-${level}: ${where} answered ${res.status} with a body that is not JSON: ${text.slice(0, 200)}`);
  }
  if (body.durability !== level)
    throw new Error(`dovetail-${level}: ${where} answered ${res.status} but the topic's durability is ${JSON.stringify(body.durability)}`);
}

async function createStreams(url: string, topics: string[]): Promise<Cleanup> {
  const nc = await connect({ servers: natsServer(url) });
  const jsm = await jetstreamManager(nc);
  const made: string[] = [];
  const cleanup: Cleanup = async () => {
    for (const name of made) await jsm.streams.delete(name).catch(() => false);
    await nc.close().catch(() => {});
  };
  try {
    for (const topic of topics) {
      const name = jetStreamName(topic);
      await jsm.streams.add({ name, subjects: [topic], storage: StorageType.File });
      made.push(name);
    }
  } catch (e) {
    await cleanup();
    throw new Error(`nats-jetstream: creating the streams: ${e instanceof Error ? e.message : String(e)}`);
  }
  return cleanup;
}
