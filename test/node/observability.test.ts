/**
 * Observability of the real bus process (docs/observability.md): `GET /metrics` is valid
 * Prometheus text by Prometheus's own checker (`promtool check metrics`, Debian package
 * `prometheus`), in the tenant's and the operator's views, after real traffic; `/readyz` says
 * ready with the local disk's figures, and not ready when the disk is below the reserve.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBus, type BusProcess } from "../support/bus-process.ts";
import { docBlocks } from "../support/doc-blocks.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

const OPERATOR_TOKEN = "node-tests-metrics-token";
const hasPromtool = spawnSync("promtool", ["--version"]).status === 0;
/** Said in the names of the tests that need promtool when it is missing. */
const WITHOUT_PROMTOOL = hasPromtool ? "" : " (skipped: promtool is missing; install Debian's prometheus package, scripts/install-system-deps.sh prometheus)";

async function until<T>(fn: () => Promise<T | false | undefined>, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** promtool's verdict on an exposition text: its exit status and what it printed. */
function promtool(text: string): { status: number | null; output: string } {
  const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe("metrics and readiness of the bus process", () => {
  let bus: BusProcess;
  beforeAll(async () => {
    bus = await startBus({ auth: true, vars: { DOVETAIL_METRICS_TOKEN: OPERATOR_TOKEN } });
  }, 120_000);
  afterAll(async () => {
    await bus?.stop();
  });

  const auth = () => ({ Authorization: `Bearer ${bus.token}` });

  it("/readyz is ready, with the state volume's free space and reserve", async () => {
    const res = await fetch(`${bus.url}/readyz`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { ready: boolean; disk: { ok: boolean; free: number; reserve: number } };
    expect(body.ready).toBe(true);
    expect(body.disk.ok).toBe(true);
    expect(body.disk.free).toBeGreaterThan(body.disk.reserve);
  });

  it.skipIf(!hasPromtool)(`serves /metrics that promtool check metrics accepts, per tenant and for the operator${WITHOUT_PROMTOOL}`, async () => {
    const topic = `obs.${Date.now()}`;
    const put = await fetch(`${bus.url}/v1/topics/${topic}/groups/g1`, { method: "PUT", headers: auth(), body: JSON.stringify({ start: "earliest" }) });
    expect(put.status).toBe(201);
    const pub = await fetch(`${bus.url}/v1/topics/${topic}/messages`, {
      method: "POST",
      headers: auth(),
      body: JSON.stringify({ messages: [{ data: 1 }, { data: 2 }] }),
    });
    expect(pub.status).toBe(201);
    await fetch(`${bus.url}/v1/topics/x`, { headers: { Authorization: "Bearer nonsense" } }); // an auth failure to count
    const tenant = await until(async () => {
      const text = await (await fetch(`${bus.url}/metrics`, { headers: auth() })).text();
      return text.includes(`amb_queue_depth{topic="${topic}",group="g1"} 2`) && text;
    }, "the topic in /metrics");
    const operator = await until(async () => {
      const text = await (await fetch(`${bus.url}/metrics`, { headers: { Authorization: `Bearer ${OPERATOR_TOKEN}` } })).text();
      return text.includes(`tenant="default",topic="${topic}"`) && text.includes('amb_auth_failures_total{reason="unrecognised"}') && text;
    }, "the operator's view");
    for (const text of [tenant, operator]) {
      const verdict = promtool(text);
      expect(verdict.output).toBe("");
      expect(verdict.status).toBe(0);
    }
    // The checker can fail: an unclosed label value, and a counter named without `_total`.
    expect(promtool(tenant.replace(`{topic="${topic}"}`, `{topic="${topic}}`)).status).not.toBe(0);
    expect(promtool(tenant.replaceAll("amb_commits_total", "amb_commits")).status).not.toBe(0);
  });

  it.skipIf(!hasPromtool)(`documents alert rules that promtool check rules accepts${WITHOUT_PROMTOOL}`, () => {
    const doc = readFileSync(path.join(ROOT, "docs/observability.md"), "utf8");
    const rules = docBlocks(doc).find((b) => b.lang === "yaml" && b.code.startsWith("groups:"));
    expect(rules?.code).toContain("AMBHighQueueDepth");
    const dir = mkdtempSync(path.join(os.tmpdir(), "dovetail-rules-"));
    try {
      const file = path.join(dir, "rules.yml");
      writeFileSync(file, rules!.code);
      const r = spawnSync("promtool", ["check", "rules", file], { encoding: "utf8" });
      expect(`${r.stdout}${r.stderr}`).toContain("SUCCESS: 3 rules found");
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("/readyz is not ready while the state volume is below the reserve", async () => {
    const full = await startBus({ env: { DOVETAIL_STORAGE_RESERVE_MB: String(1024 * 1024 * 1024) }, waitFor: "/healthz" });
    try {
      const res = await fetch(`${full.url}/readyz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ ready: false, storage: { ok: true }, disk: { ok: false } });
      expect((await fetch(`${full.url}/healthz`)).status).toBe(200);
    } finally {
      await full.stop();
    }
  }, 120_000);
});
