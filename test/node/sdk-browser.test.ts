/**
 * The SDK runs unchanged in a real browser: the SDK bundled with esbuild for the browser,
 * served from a local page, driven in headless Debian Chromium by playwright-core, talking to a
 * real bus over the browser's own WebSocket.
 */
import { existsSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM, launchChromium } from "../support/chromium.ts";
import { startBus, type BusProcess } from "../support/bus-process.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

const PAGE = `<!doctype html><meta charset="utf-8"><title>dovetail sdk</title>
<script type="module">
import { connect, DovetailError } from "/sdk.js";
const params = new URLSearchParams(location.search);
const bus = connect(params.get("bus"));
const topic = params.get("topic");
try {
  const first = await bus.publish(topic, { from: "browser" }, { key: "b", headers: { ua: "chromium" } });
  const pub = bus.publisher(topic, { lingerMs: 1 });
  const offsets = await Promise.all(Array.from({ length: 100 }, (_, n) => pub.send({ n })));
  await bus.publish(topic, new Uint8Array([1, 2, 255]));
  const seen = [];
  for await (const m of bus.subscribe(topic, { from: "earliest" })) {
    seen.push({ offset: m.offset, data: m.data instanceof Uint8Array ? [...m.data] : m.data, key: m.key, headers: m.headers });
    if (seen.length === 102) break;
  }
  let tooLarge = null;
  try { await bus.publish(topic, "x".repeat(1100000)); } catch (e) { tooLarge = e instanceof DovetailError ? e.code : String(e); }
  await bus.close();
  window.__result = { ok: true, first, offsets, seen, tooLarge };
} catch (e) {
  window.__result = { ok: false, error: String(e && e.stack || e) };
}
</script>`;

describe("sdk in headless Chromium", () => {
  let bus: BusProcess;
  let server: http.Server;
  let pageUrl: string;
  let browser: Browser;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `${CHROMIUM} not found: install Debian chromium (scripts/install-system-deps.sh, or apt-get install -y chromium) to run the browser test`,
      );
    }
    bus = await startBus({ vars: { DOVETAIL_AUTH: "off" } });
    const bundle = await esbuild.build({
      entryPoints: [path.join(ROOT, "sdk/src/index.ts")],
      bundle: true,
      format: "esm",
      platform: "browser",
      target: "es2022",
      write: false,
    });
    const sdkJs = bundle.outputFiles[0]!.text;
    expect(sdkJs).not.toMatch(/from\s*["']node:/);
    server = http.createServer((req, res) => {
      if (req.url?.startsWith("/sdk.js")) {
        res.writeHead(200, { "Content-Type": "text/javascript" }).end(sdkJs);
      } else {
        res.writeHead(200, { "Content-Type": "text/html" }).end(PAGE);
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    pageUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await bus?.stop();
  });

  it("publishes, batches and subscribes from a page over the browser's WebSocket", async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    const topic = `browser.${Date.now().toString(36)}`;
    await page.goto(`${pageUrl}?bus=${encodeURIComponent(bus.url)}&topic=${topic}`);
    await page.waitForFunction(() => (window as unknown as { __result?: unknown }).__result !== undefined, null, { timeout: 60_000 });
    const result = (await page.evaluate(() => (window as unknown as { __result: unknown }).__result)) as {
      ok: boolean;
      error?: string;
      first: { offset: number };
      offsets: number[];
      seen: { offset: number; data: unknown; key?: string; headers: Record<string, string> }[];
      tooLarge: string | null;
    };
    expect(errors).toEqual([]);
    expect(result.error).toBeUndefined();
    expect(result.first).toEqual({ offset: 0 });
    expect(result.offsets).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(result.seen.map((m) => m.offset)).toEqual(Array.from({ length: 102 }, (_, i) => i));
    expect(result.seen[0]).toMatchObject({ data: { from: "browser" }, key: "b", headers: { ua: "chromium" } });
    expect(result.seen[50]!.data).toEqual({ n: 49 });
    expect(result.seen[101]!.data).toEqual([1, 2, 255]);
    expect(result.tooLarge).toBe("message_too_large");
    await page.close();
  });
});
