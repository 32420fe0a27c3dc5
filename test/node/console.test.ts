/**
 * The web console (`/console/`, public/console/, docs/observability.md) in Debian's headless
 * Chromium through playwright-core, against the real bus process with auth on: a wrong token is
 * refused and the right one signs in; a topic appears once a message is published to it; the live
 * tail shows new messages, holds them while paused and shows them on resume, and has a JSON view;
 * a consumer group's lag falls as a worker acks; an agent that registered is listed; the publish
 * form stores a message. `UPDATE_SCREENSHOTS=1` writes the screenshots kept in docs/.
 */
import path from "node:path";
import os from "node:os";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBus, type BusProcess } from "../support/bus-process.ts";
import { launchChromium } from "../support/chromium.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const SHOTS = process.env.UPDATE_SCREENSHOTS === "1" ? path.join(ROOT, "docs") : os.tmpdir();
/** The Directory hears a topic's figures within 5 s; the page reads them every 2 s. */
const FIGURES_MS = 30_000;

let bus: BusProcess;
let browser: Browser;
let page: Page;

async function http(method: string, p: string, body?: unknown): Promise<Response> {
  return fetch(`${bus.url}${p}`, {
    method,
    headers: { Authorization: `Bearer ${bus.token}`, "Content-Type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

async function publish(topic: string, data: unknown): Promise<void> {
  const res = await http("POST", `/v1/topics/${topic}/messages`, { data });
  expect(res.status).toBe(201);
}

describe("web console", () => {
  beforeAll(async () => {
    bus = await startBus({ auth: true });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1200, height: 1400 } });
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await bus?.stop();
  });

  it("refuses a wrong token and signs in with a right one", async () => {
    const started = Date.now();
    await page.goto(`${bus.url}/console/`);
    console.log(`console loaded in ${Date.now() - started} ms`);
    await page.fill("#token", "dvt_0123456789abcdef_wrong");
    await page.click("#sign-in button[type=submit]");
    await page.waitForSelector("#sign-in-error:has-text('unauthorized')");
    expect(await page.isVisible("#app")).toBe(false);
    await page.fill("#token", bus.token!);
    await page.click("#sign-in button[type=submit]");
    await page.waitForSelector("#app", { state: "visible" });
    // The status line is written once the first figures arrive, a moment after the app shows.
    await page.waitForFunction(() => /topics/.test(document.querySelector("#status")?.textContent ?? ""), undefined, { timeout: 15_000 });
    expect(await page.textContent("#status")).toMatch(/topics/);
  });

  it("shows a topic once a message is published to it, and tails it live with pause and a JSON view", async () => {
    const topic = `console.${Date.now().toString(36)}`;
    await publish(topic, { n: "first" });
    await page.waitForSelector(`#topics tr[data-topic="${topic}"]`, { timeout: FIGURES_MS });
    await page.click(`#topics tr[data-topic="${topic}"] button:has-text("Tail")`);
    // The tail subscribes from the latest offset once its socket is welcomed.
    await page.waitForFunction(() => document.querySelector("#tail-pause")?.hasAttribute("disabled") === false);
    await new Promise((r) => setTimeout(r, 500));
    await publish(topic, { n: "tail-1" });
    await page.waitForSelector("#tail li.message:has-text('tail-1')");
    await page.click("#tail-pause");
    await publish(topic, { n: "tail-2" });
    await new Promise((r) => setTimeout(r, 1000));
    expect(await page.locator("#tail li.message:has-text('tail-2')").count()).toBe(0);
    await page.click("#tail-pause");
    await page.waitForSelector("#tail li.message:has-text('tail-2')");
    await page.check("#tail-json");
    const pre = await page.textContent("#tail li.message pre");
    expect(JSON.parse(pre!)).toMatchObject({ offset: 2, data: { n: "tail-2" } });
    await page.screenshot({ path: path.join(SHOTS, "console-tail.png") });
  });

  it("shows a consumer group's lag falling as a worker acks, and the agents present", async () => {
    const topic = `console.group.${Date.now().toString(36)}`;
    for (let i = 0; i < 5; i++) await publish(topic, { job: i });
    expect((await http("PUT", `/v1/topics/${topic}/groups/workers`, { start: "earliest" })).status).toBe(201);
    expect((await http("POST", "/v1/agents", { id: `console-agent-${Date.now().toString(36)}`, name: "resizer", capabilities: ["images"] })).status).toBe(200);
    const lag = page.locator(`#groups tr[data-topic="${topic}"][data-group="workers"] td.lag`);
    await expect.poll(async () => (await lag.count()) > 0 && (await lag.textContent()), { timeout: FIGURES_MS }).toBe("5");
    await page.screenshot({ path: path.join(SHOTS, "console.png"), fullPage: true });
    const fetched = await http("POST", `/v1/topics/${topic}/groups/workers/fetch`, { member: "w1", max: 3 });
    const { jobs } = (await fetched.json()) as { jobs: { offset: number; delivery: number }[] };
    expect(jobs).toHaveLength(3);
    const acked = await http("POST", `/v1/topics/${topic}/groups/workers/settle`, {
      member: "w1",
      op: "ack",
      jobs: jobs.map((j) => ({ offset: j.offset, delivery: j.delivery })),
    });
    expect(acked.status).toBe(200);
    await expect.poll(async () => lag.textContent(), { timeout: FIGURES_MS }).toBe("2");
    await page.waitForSelector("#agents td:has-text('resizer')");
  });

  it("publishes a test message from the form", async () => {
    const topic = `console.form.${Date.now().toString(36)}`;
    await page.fill("#publish-topic", topic);
    await page.fill("#publish-data", '{"from":"form"}');
    await page.click("#publish-form button[type=submit]");
    await page.waitForSelector("#publish-result:has-text('stored at offset 0')");
    const read = await http("GET", `/v1/topics/${topic}/messages?from=0`);
    expect(((await read.json()) as { messages: { data: unknown }[] }).messages.map((m) => m.data)).toEqual([{ from: "form" }]);
  });
});
