/**
 * The agent registry through the SDK against the real bus process (docs/agents.md): `bus.agents`
 * register, update, list, watch and leave; a duplicate id taken over by a newer connection; and
 * presence rebuilt after the bus is killed with SIGKILL and restarted: agents whose SDK reconnects
 * are present again, an agent whose connection did not come back is not, and every registration
 * is still stored.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type AgentEvent, type AgentInfo, type Bus } from "../../sdk/src/index.ts";
import { startBus, type BusProcess } from "../support/bus-process.ts";

let bus: BusProcess;
const clients: Bus[] = [];

function client(): Bus {
  const b = connect(bus.url, { token: bus.token!, reconnect: { initialDelayMs: 50, maxDelayMs: 500 }, timeoutMs: 20_000 });
  clients.push(b);
  return b;
}

function freshAgent(prefix: string): string {
  return `${prefix}.${Date.now().toString(36)}.${Math.random().toString(36).slice(2, 8)}`;
}

/** `probe()` again until `done` holds; throws with the last value after `ms`. */
async function eventually<T>(probe: () => Promise<T>, done: (value: T) => boolean, what: string, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe().catch((error: unknown) => error as T);
    if (done(value)) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${String(JSON.stringify(value)).slice(0, 1000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A presence socket opened by hand, with no SDK behind it: once it is gone, nothing registers it again. */
async function rawPresence(agent: string): Promise<WebSocket> {
  const ws = new WebSocket(`${bus.url.replace(/^http/, "ws")}/v1/agents/ws?token=${encodeURIComponent(bus.token!)}`);
  const registered = new Promise<void>((resolve, reject) => {
    ws.addEventListener("message", (e) => {
      const frame = JSON.parse(String(e.data)) as { type: string };
      if (frame.type === "welcome") ws.send(JSON.stringify({ type: "register", id: 1, agent, capabilities: ["stale"] }));
      else if (frame.type === "registered") resolve();
      else if (frame.type === "error") reject(new Error(String(e.data)));
    });
    ws.addEventListener("error", () => reject(new Error("presence socket failed")));
  });
  await registered;
  return ws;
}

beforeAll(async () => {
  bus = await startBus({ auth: true });
}, 120_000);

afterAll(async () => {
  await Promise.all(clients.map((b) => b.close({ force: true }).catch(() => undefined)));
  await bus?.stop();
});

describe("agent registry through the SDK", () => {
  it("registers, updates, lists, watches and leaves", async () => {
    const b = client();
    const id = freshAgent("sdk");
    const watch = b.agents.watch();
    const events: AgentEvent[] = [];
    const watching = (async () => {
      for await (const e of watch) {
        if (e.agent.id !== id) continue;
        events.push(e);
        if (e.kind === "left") return;
      }
    })();
    // The watch subscribes from "latest": give it a moment to be established before the first event.
    await new Promise((r) => setTimeout(r, 1000));
    const me = await b.agents.register({ id, name: "Summarizer", capabilities: ["summarize"], meta: { region: "eu" } });
    expect(me.agent).toMatchObject({ id, name: "Summarizer", present: true, via: "socket" });
    expect((await b.agents.list({ capability: "summarize", meta: { region: "eu" } })).agents.map((a) => a.id)).toContain(id);
    expect(await me.update({ meta: { region: "us" } })).toMatchObject({ meta: { region: "us" }, capabilities: ["summarize"] });
    expect((await b.agents.get(id)).meta).toEqual({ region: "us" });
    await me.leave();
    expect(await me.ended).toBeNull();
    await expect(b.agents.get(id)).rejects.toMatchObject({ code: "not_found" });
    await expect(b.agents.list({ capability: `never-declared-${id}` })).rejects.toMatchObject({ code: "unknown_capability" });
    await expect(b.agents.register({ id, meta: { big: "x".repeat(5000) } })).rejects.toMatchObject({ code: "meta_too_large" });
    await watching;
    expect(events.map((e) => e.kind)).toEqual(["registered", "updated", "left"]);
  });

  it("gives a duplicate id to the newer connection; the older presence ends with agent_replaced and does not come back", async () => {
    const id = freshAgent("dup");
    const older = await client().agents.register({ id, capabilities: ["a"] });
    const newer = await client().agents.register({ id, capabilities: ["b"] });
    expect(newer.agent).toMatchObject({ present: true, capabilities: ["b"] });
    expect(await older.ended).toMatchObject({ code: "agent_replaced" });
    await new Promise((r) => setTimeout(r, 1500)); // an older presence that reconnected would take it back
    expect(await client().agents.get(id)).toMatchObject({ present: true, capabilities: ["b"] });
    await newer.leave();
  });

  it("rebuilds presence after a restart from the connections that come back, not from stored records", async () => {
    const live = freshAgent("live");
    const stale = freshAgent("stale");
    const b = client();
    const presence = await b.agents.register({ id: live, capabilities: ["restart-test"], meta: { role: "live" } });
    const raw = await rawPresence(stale);
    const before = await b.agents.list({ capability: "restart-test" });
    expect(before.agents.map((a) => a.id)).toEqual([live]); // the stale one declared another capability
    expect((await b.agents.get(stale)).present).toBe(true);

    await bus.kill(); // SIGKILL: no socket closes cleanly, nothing is told
    raw.close();
    // An update made while the bus is down goes with the registration after the reconnect.
    const updating = presence.update({ meta: { role: "live", round: 2 } });
    await bus.start();
    expect(await updating).toMatchObject({ id: live, present: true, meta: { role: "live", round: 2 } });

    // The SDK reconnects and registers again: present. The hand-made socket is gone for good: absent.
    const back = await eventually(
      () => b.agents.get(live),
      (a: AgentInfo) => a?.present === true,
      "the live agent to be present again",
    );
    expect(back).toMatchObject({ id: live, present: true, meta: { role: "live", round: 2 } });
    const gone = await eventually(
      () => b.agents.get(stale),
      (a: AgentInfo) => a?.present === false,
      "the stale agent to be absent",
    );
    expect(gone).toMatchObject({ id: stale, present: false, capabilities: ["stale"] }); // its registration survived
    expect((await b.agents.list({ capability: "stale" })).agents.map((a) => a.id)).not.toContain(stale);
    expect((await b.agents.list({ capability: "stale", present: false })).agents.map((a) => a.id)).toContain(stale);

    // The events say what happened: the stale agent crashed; the live one crashed and came back.
    const events: AgentEvent[] = [];
    for await (const e of b.agents.watch({ from: "earliest" })) {
      if (e.agent.id === live || e.agent.id === stale) events.push(e);
      if (events.filter((x) => x.agent.id === live).length === 3 && events.some((x) => x.agent.id === stale && x.kind === "crashed")) break;
    }
    expect(events.filter((e) => e.agent.id === live).map((e) => e.kind)).toEqual(["registered", "crashed", "registered"]);
    expect(events.filter((e) => e.agent.id === stale).map((e) => e.kind)).toEqual(["registered", "crashed"]);
    await presence.leave();
  });
});
