/**
 * Structured logs (workers/middleware/request-log.ts, protocol/log-line.ts): every request and
 * socket upgrade gets one JSON line with a request id that the answer carries in `X-Request-Id`,
 * a level by outcome, and never a credential, whichever way it was sent.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { redactSecrets } from "../../protocol/log-line.ts";
import { anonymousFetch, freshTopic, issueKey, openSocket } from "./helpers.ts";

let lines: string[] = [];
const spies: { mockRestore(): void }[] = [];

beforeEach(() => {
  lines = [];
  for (const method of ["log", "info", "warn", "error"] as const) {
    spies.push(vi.spyOn(console, method).mockImplementation((...args: unknown[]) => void lines.push(args.map(String).join(" "))));
  }
});
afterEach(() => {
  for (const s of spies.splice(0)) s.mockRestore();
});

function parsed(): Record<string, unknown>[] {
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe("logs", () => {
  it("writes one JSON line per request with the request id the answer carries", async () => {
    const { key, id } = await issueKey("default", ["publish:>", "subscribe:>"]);
    const topic = freshTopic("logs");
    const res = await anonymousFetch(`/v1/topics/${topic}/messages`, {
      method: "POST",
      headers: { Authorization: `Bearer ${key}`, traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" },
      body: JSON.stringify({ data: 1 }),
    });
    expect(res.status).toBe(201);
    const rid = res.headers.get("X-Request-Id");
    expect(rid).toMatch(/^[0-9a-f-]{36}$/);
    const line = parsed().find((l) => l.rid === rid);
    expect(line).toMatchObject({
      level: "info",
      msg: "request",
      method: "POST",
      path: `/v1/topics/${topic}/messages`,
      status: 201,
      tenant: "default",
      cred: `key:${id}`,
      trace: "4bf92f3577b34da6a3ce929d0e0e4736",
    });
    expect(typeof line?.ms).toBe("number");
    expect(typeof line?.time).toBe("string");
  });

  it("logs refusals as warnings with their code, and socket upgrades as sockets", async () => {
    const refused = await anonymousFetch("/v1/topics/x", { headers: { Authorization: "Bearer dvt_0123456789abcdef_notarealsecretatall" } });
    expect(refused.status).toBe(401);
    expect(parsed().find((l) => l.rid === refused.headers.get("X-Request-Id"))).toMatchObject({ level: "warn", status: 401, code: "unauthorized" });
    const ws = await openSocket(freshTopic("logs-ws"));
    await ws.frame("welcome");
    expect(parsed().some((l) => l.msg === "socket" && l.upgrade === true && l.status === 101 && typeof l.rid === "string")).toBe(true);
    ws.ws.close();
  });

  it("never logs a credential, sent in a header, in ?token= or in a refused request", async () => {
    const { key } = await issueKey("default", ["publish:>", "subscribe:>"]);
    const jwtLike = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXRoYXQtZmFpbHM";
    const topic = freshTopic("logs-secret");
    await anonymousFetch(`/v1/topics/${topic}/messages`, { method: "POST", headers: { Authorization: `Bearer ${key}` }, body: JSON.stringify({ data: 1 }) });
    const ws = await openSocket(topic, `/v1/topics/${topic}/ws?token=${encodeURIComponent(key)}`, { token: null });
    await ws.frame("welcome");
    ws.ws.close();
    await anonymousFetch(`/v1/topics/${topic}`, { headers: { Authorization: `Bearer ${jwtLike}` } });
    await anonymousFetch(`/v1/topics/${topic}/ws?token=${jwtLike}`, { headers: { Upgrade: "websocket" } });
    await anonymousFetch(`/v1/topics/${topic}`, { headers: { Authorization: `Bearer ${key}x` } });
    expect(lines.length).toBeGreaterThanOrEqual(5);
    const all = lines.join("\n");
    const secret = key.slice("dvt_".length + 16 + 1); // base64url: it may hold "_" itself
    expect(all).not.toContain(secret);
    expect(all).not.toContain(jwtLike);
    expect(all).not.toContain("c2lnbmF0dXJlLXRoYXQtZmFpbHM");
  });

  it("redacts anything that looks like a key or a token, wherever it appears", () => {
    const text = redactSecrets('{"error":"bad dvt_0123456789abcdef_c2VjcmV0 and eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig"}');
    expect(text).toBe('{"error":"bad [redacted] and [redacted]"}');
  });
});
