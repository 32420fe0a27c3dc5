/**
 * Agent mail through the SDK (`bus.mail`) and the CLI (`dovetail mail …`) against the real bus
 * process (docs/mail.md): send, inbox, read, mark read, acknowledge, thread, search, the live
 * watch resuming from an offset, `invalid_query` as the CLI's exit 1; then the bus is killed with
 * SIGKILL and restarted, and the mail, its read state, the index and the inbox topic are all
 * still there.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, DovetailError, type Bus, type MailDelivery } from "../../sdk/src/index.ts";
import { startBus, type BusProcess } from "../support/bus-process.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const CLI = path.join(ROOT, "sdk/bin/dovetail.ts");

let bus: BusProcess;
let sdk: Bus;
const tag = Date.now().toString(36);
const planner = `planner-${tag}`;
const coder = `coder-${tag}`;
const reviewer = `reviewer-${tag}`;

function cli(args: string[], input = ""): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, DOVETAIL_URL: bus.url, DOVETAIL_TOKEN: bus.token! } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

async function register(id: string): Promise<void> {
  const r = await fetch(`${bus.url}/v1/agents`, {
    method: "POST",
    headers: { Authorization: `Bearer ${bus.token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ id, ttlMs: 600_000 }),
  });
  expect(r.status).toBe(200);
}

beforeAll(async () => {
  bus = await startBus({ auth: true });
  sdk = connect(bus.url, { token: bus.token!, reconnect: { initialDelayMs: 50, maxDelayMs: 500 }, timeoutMs: 20_000 });
  for (const id of [planner, coder, reviewer]) await register(id);
}, 120_000);

afterAll(async () => {
  await sdk?.close({ force: true }).catch(() => undefined);
  await bus?.stop();
});

describe("agent mail through the SDK and the CLI", () => {
  let threadId = "";
  let firstId = 0;

  it("sends, lists, reads, marks read, acknowledges, threads and searches with bus.mail", async () => {
    const sent = await sdk.mail.send({
      from: planner,
      to: [coder],
      cc: [reviewer],
      subject: "Build the parser",
      bodyMd: "Please build the **parser** today.",
      ackRequired: true,
    });
    expect(sent).toMatchObject({ recipients: 2, threadId: String(sent.id) });
    firstId = sent.id;
    threadId = sent.threadId;
    const reply = await sdk.mail.send({ from: coder, to: [planner], subject: "Re: Build the parser", bodyMd: "Parser builds; tests pass.", threadId });
    const inbox = await sdk.mail.inbox(coder, { unread: true, bodies: true });
    expect(inbox.messages.map((m) => [m.id, m.bodyMd])).toEqual([[sent.id, "Please build the **parser** today."]]);
    expect((await sdk.mail.read(coder, sent.id)).recipient).toMatchObject({ kind: "to", readAt: null });
    expect((await sdk.mail.markRead(reviewer, sent.id)).readAt).toBeGreaterThan(0);
    expect((await sdk.mail.ack(coder, sent.id)).ackedAt).toBeGreaterThan(0);
    const thread = await sdk.mail.thread(threadId);
    expect(thread.messages.map((m) => m.id)).toEqual([sent.id, reply.id]);
    expect(thread.messages[0]!.recipients!.map((r) => [r.agent, r.readAt !== null, r.ackedAt !== null])).toEqual([
      [coder, true, true],
      [reviewer, true, false],
    ]);
    const found = await sdk.mail.search({ q: "parser", from: coder });
    expect(found.hits.map((h) => h.message.id)).toEqual([reply.id]);
    expect(found.hits[0]!.snippets.body).toContain("**Parser**");
    expect((await sdk.mail.search("parser")).hits).toHaveLength(2);
    const refused = await sdk.mail.search("parser AND").catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DovetailError);
    expect((refused as DovetailError).code).toBe("invalid_query");
    const unknown = await sdk.mail.send({ from: planner, to: [`ghost-${tag}`], subject: "x" }).catch((e: unknown) => e);
    expect((unknown as DovetailError).code).toBe("unknown_recipient");
  });

  it("watches an agent's new mail live and resumes from an offset", async () => {
    const watch = await sdk.mail.watch(reviewer, { from: 0 });
    const seen: { offset: number; data: MailDelivery }[] = [];
    for await (const m of watch) {
      seen.push(m);
      if (seen.length === 1) await sdk.mail.send({ from: planner, to: [reviewer], subject: "Review please", bodyMd: "PR 7" });
      if (seen.length === 2) break;
    }
    expect(seen.map((m) => m.data.message.subject)).toEqual(["Build the parser", "Review please"]);
    expect(seen[1]!.data.message.recipient).toMatchObject({ agent: reviewer, kind: "to" });
    const resumed = await sdk.mail.watch(reviewer, { from: seen[0]!.offset + 1 });
    for await (const m of resumed) {
      expect(m.data.message.subject).toBe("Review please");
      break;
    }
  });

  it("dovetail mail send, inbox, search and thread print text and --json", async () => {
    const send = await cli(
      ["mail", "send", planner, "-", "--to", `${coder},${reviewer}`, "--subject", "Deploy window", "--thread", threadId, "--json"],
      "Deploy at **noon**.",
    );
    expect(send.stderr).toBe("");
    const sent = JSON.parse(send.stdout) as { id: number; recipients: number };
    expect(sent.recipients).toBe(2);
    const inbox = await cli(["mail", "inbox", coder, "--unread"]);
    expect(inbox.stdout).toContain("Deploy window");
    const inboxJson = JSON.parse((await cli(["mail", "inbox", coder, "--json"])).stdout) as { messages: { id: number }[] };
    expect(inboxJson.messages[0]!.id).toBe(sent.id);
    const one = await cli(["mail", "inbox", coder, String(sent.id)]);
    expect(one.stdout).toContain("Deploy at **noon**.");
    expect(JSON.parse((await cli(["mail", "inbox", coder, String(sent.id), "--ack", "--json"])).stdout)).toMatchObject({ id: sent.id });
    const search = JSON.parse((await cli(["mail", "search", "noon", "--json"])).stdout) as { hits: { message: { id: number } }[] };
    expect(search.hits.map((h) => h.message.id)).toEqual([sent.id]);
    expect((await cli(["mail", "search", "noon"])).stdout).toContain("**noon**");
    const thread = JSON.parse((await cli(["mail", "thread", threadId, "--json"])).stdout) as { messages: { id: number }[] };
    expect(thread.messages.map((m) => m.id)).toContain(sent.id);
    expect((await cli(["mail", "thread", threadId])).stdout).toMatch(/acked/);
    const bad = await cli(["mail", "search", '"unclosed']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("invalid_query");
    expect((await cli(["mail", "send", planner, "--to", coder])).code).toBe(2);
  });

  it("keeps mail, read state, the index and the inbox topic across a hard restart of the bus", async () => {
    const before = await sdk.mail.inbox(coder);
    await bus.restart();
    const after = await sdk.mail.inbox(coder);
    expect(after).toEqual(before);
    expect(after.messages.find((m) => m.id === firstId)!.recipient!.ackedAt).toBeGreaterThan(0);
    expect((await sdk.mail.search("parser")).hits).toHaveLength(2);
    const again = await sdk.mail.send({ from: planner, to: [reviewer], subject: "After the restart" });
    const watch = await sdk.mail.watch(reviewer, { from: 0 });
    const subjects: string[] = [];
    for await (const m of watch) {
      subjects.push(m.data.message.subject);
      if (m.data.message.id === again.id) break;
    }
    expect(subjects).toEqual(["Build the parser", "Review please", "Deploy window", "After the restart"]);
  });
});
