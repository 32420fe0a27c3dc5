import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBus, type BusProcess } from "../support/bus-process.ts";

describe("local bus process", () => {
  let bus: BusProcess;
  beforeAll(async () => {
    bus = await startBus();
  });
  afterAll(async () => {
    await bus?.stop();
  });

  it("keeps what it acknowledged across a kill -9 and restart", async () => {
    const topic = `restart.${Date.now()}`;
    const res = await fetch(`${bus.url}/v1/topics/${topic}/messages`, {
      method: "POST",
      body: JSON.stringify({ messages: [{ data: 1 }, { data: 2 }] }),
    });
    expect(await res.json()).toEqual({ offset: 0, count: 2 });
    await bus.restart();
    const read = await fetch(`${bus.url}/v1/topics/${topic}/messages?from=0`);
    const body = (await read.json()) as { messages: { offset: number; data: number }[] };
    expect(body.messages.map((m) => [m.offset, m.data])).toEqual([
      [0, 1],
      [1, 2],
    ]);
  });

  it("runs open with DOVETAIL_AUTH=off in the environment, as the docs say", async () => {
    const open = await startBus({ auth: true, env: { DOVETAIL_AUTH: "off" } }); // no DOVETAIL_VARS for auth
    try {
      expect(await (await fetch(`${open.url}/healthz`)).json()).toMatchObject({ auth: "off" });
      const res = await fetch(`${open.url}/v1/topics/open.${Date.now()}/messages`, { method: "POST", body: JSON.stringify({ data: 1 }) });
      expect(res.status).toBe(201);
    } finally {
      await open.stop();
    }
  });
});
