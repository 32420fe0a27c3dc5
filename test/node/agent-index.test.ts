/**
 * `AgentIndex` (objects/agent-index.ts) without a Durable Object: the registry's in-memory lookups
 * by capability, metadata and presence, a page at a time in id order, and how a record's
 * capabilities move when it is replaced or removed.
 */
import { describe, expect, it } from "vitest";
import { AgentIndex } from "../../objects/agent-index.ts";
import type { AgentInfo } from "../../protocol/agents.ts";

function agent(id: string, capabilities: string[], extra: Partial<AgentInfo> = {}): AgentInfo {
  return { id, name: id, capabilities, meta: {}, present: true, via: "socket", registeredAt: 0, updatedAt: 0, seenAt: 0, ...extra };
}

describe("AgentIndex", () => {
  it("pages the agents of a capability in id order, whatever order they came in, with a cursor", () => {
    const index = new AgentIndex();
    for (const n of [5, 1, 9, 3, 7, 2, 8, 4, 6, 0]) index.put(agent(`a${n}`, n % 2 === 0 ? ["even", "all"] : ["odd", "all"]));
    expect(index.query({ capability: "even", present: true, limit: 10 })).toEqual({
      agents: ["a0", "a2", "a4", "a6", "a8"].map((id) => index.get(id)),
      cursor: null,
    });
    const first = index.query({ capability: "all", present: true, limit: 4 });
    expect(first.agents.map((a) => a.id)).toEqual(["a0", "a1", "a2", "a3"]);
    expect(first.cursor).toBe("a3");
    const second = index.query({ capability: "all", present: true, limit: 4, cursor: first.cursor! });
    expect(second.agents.map((a) => a.id)).toEqual(["a4", "a5", "a6", "a7"]);
    const last = index.query({ capability: "all", present: true, limit: 4, cursor: second.cursor! });
    expect(last).toMatchObject({ cursor: null });
    expect(last.agents.map((a) => a.id)).toEqual(["a8", "a9"]);
    // Exactly `limit` left: the page ends the list (no cursor to an empty page).
    expect(index.query({ capability: "odd", present: true, limit: 5 }).cursor).toBeNull();
    // A cursor between ids (an agent that left meanwhile) starts after it.
    expect(index.query({ present: true, limit: 2, cursor: "a45" }).agents.map((a) => a.id)).toEqual(["a5", "a6"]);
  });

  it("filters by presence and by top-level metadata scalars compared as text", () => {
    const index = new AgentIndex();
    index.put(agent("eu-1", ["x"], { meta: { region: "eu", port: 80, gpu: true } }));
    index.put(agent("eu-2", ["x"], { meta: { region: "eu", port: "80" }, present: false }));
    index.put(agent("us-1", ["x"], { meta: { region: "us", nested: { region: "eu" }, list: ["eu"] } }));
    const ids = (q: Parameters<AgentIndex["query"]>[0]) => index.query(q).agents.map((a) => a.id);
    expect(ids({ capability: "x", present: true, limit: 10 })).toEqual(["eu-1", "us-1"]);
    expect(ids({ capability: "x", present: false, limit: 10 })).toEqual(["eu-2"]);
    expect(ids({ capability: "x", present: "any", meta: { region: "eu" }, limit: 10 })).toEqual(["eu-1", "eu-2"]);
    expect(ids({ present: "any", meta: { port: "80" }, limit: 10 })).toEqual(["eu-1", "eu-2"]);
    expect(ids({ present: "any", meta: { gpu: "true" }, limit: 10 })).toEqual(["eu-1"]);
    expect(ids({ present: "any", meta: { nested: "[object Object]" }, limit: 10 })).toEqual([]);
    expect(ids({ present: "any", meta: { list: "eu" }, limit: 10 })).toEqual([]);
    expect(ids({ present: "any", meta: { region: "eu", port: "81" }, limit: 10 })).toEqual([]);
  });

  it("moves a replaced record's capabilities, forgets a capability nobody declares, and finds the absent agent seen longest ago", () => {
    const index = new AgentIndex();
    index.put(agent("a", ["old", "kept"]));
    index.put(agent("b", ["kept"], { present: false, seenAt: 20 }));
    index.put(agent("c", ["kept"], { present: false, seenAt: 10 }));
    index.put(agent("a", ["new", "kept"]));
    expect(index.size).toBe(3);
    expect(index.knows("old")).toBe(false);
    expect(index.query({ capability: "new", present: true, limit: 10 }).agents.map((a) => a.id)).toEqual(["a"]);
    expect(index.query({ capability: "kept", present: "any", limit: 10 }).agents.map((a) => a.id)).toEqual(["a", "b", "c"]);
    expect(index.oldestAbsent()?.id).toBe("c");
    index.remove("c");
    expect(index.oldestAbsent()?.id).toBe("b");
    expect(index.query({ capability: "kept", present: "any", limit: 10 }).agents.map((a) => a.id)).toEqual(["a", "b"]);
    index.remove("a");
    expect(index.knows("new")).toBe(false);
    expect(index.someCapabilities(10)).toEqual(["kept"]);
    index.remove("missing"); // nothing to do
    expect(index.size).toBe(1);
  });
});
