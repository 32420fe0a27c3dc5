// Minimal SQLite-backed DO on the same workerd/Miniflare: RSS and fds per live object.
import { Miniflare, convertV4MiniflareOptions } from "miniflare";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import os from "node:os"; import path from "node:path";
const mode = process.argv[2] ?? "sql"; const N = Number(process.argv[3] ?? 1000);
const dir = mkdtempSync(path.join(os.tmpdir(), "minido-"));
const script = `
export class O {
  constructor(ctx) { this.ctx = ctx; }
  async fetch() {
    if (${JSON.stringify(mode)} === "sql") { this.ctx.storage.sql.exec("create table if not exists t(x)"); this.ctx.storage.sql.exec("insert into t values (1)"); }
    if (${JSON.stringify(mode)} === "kv") { await this.ctx.storage.put("x", 1); }
    return new Response("ok");
  }
}
export default { async fetch(req, env) { const u = new URL(req.url); if (u.pathname === "/h") return new Response("ok"); return env.O.get(env.O.idFromName(u.pathname)).fetch(req); } };`;
const mf = new Miniflare({ ...convertV4MiniflareOptions({ modules: true, script, durableObjects: { O: { className: "O", useSQLite: true } }, port: 0, host: "127.0.0.1", compatibilityDate: "2026-01-01" }), inspectorPort: 9339, resourcePersistencePath: dir });
const url = await mf.ready;
let pid = 0;
for (const e of readdirSync("/proc")) { if (!/^\d+$/.test(e)) continue; try { if (readFileSync(`/proc/${e}/stat`, "utf8").includes("(workerd)") && Number(readFileSync(`/proc/${e}/stat`, "utf8").split(") ")[1].split(" ")[1]) === process.pid) pid = Number(e); } catch {} }
const s = (label) => { const st = readFileSync(`/proc/${pid}/status`, "utf8"); const kb = (k) => Math.round(Number(new RegExp(k + ":\\s+(\\d+)").exec(st)[1]) / 1024); console.log(JSON.stringify({ mode, label, rss: kb("VmRSS"), anon: kb("RssAnon"), fds: readdirSync(`/proc/${pid}/fd`).length })); };
await (await fetch(new URL("/h", url))).text();
s("start");
async function cdp(method, params = {}) {
  const list = JSON.parse((await import("node:child_process")).execFileSync("curl", ["-s", "-m", "5", "http://127.0.0.1:9339/json"], { encoding: "utf8" }));
  const ws = new WebSocket(list.find((l) => l.id === "core:user:").webSocketDebuggerUrl); ws.addEventListener("error", (e) => console.log("ws error", e.message));
  await new Promise((r) => ws.addEventListener("open", r));
  const out = await new Promise((res) => { ws.addEventListener("message", (e) => { const m = JSON.parse(e.data); if (m.id === 1) res(m.result ?? m.error); }); ws.send(JSON.stringify({ id: 1, method, params })); setTimeout(() => res("timeout"), 20000); });
  ws.close(); return out;
}
const heap = async (label) => { const u = await cdp("Runtime.getHeapUsage"); console.log(label, "v8 used MB", (u.usedSize / 2 ** 20).toFixed(1), "total MB", (u.totalSize / 2 ** 20).toFixed(1)); };
const W = Number(process.argv[4] ?? 1); let base = 0;
for (let w = 1; w <= W; w++) {
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => { while (next < N) { const r = await fetch(new URL(`/o${base + next++}`, url)); await r.text(); } }));
  base += N;
  s(`wave ${w}: ${base} objects`);
  for (const idle of (process.env.IDLES ?? "12").split(",").map(Number)) {
  await new Promise((r) => setTimeout(r, idle * 1000)); s(`wave ${w} idle +${idle} s`); await heap(`wave ${w} before gc`); await cdp("HeapProfiler.collectGarbage"); await heap(`wave ${w} after gc`); s(`wave ${w} after gc`); }
}
await mf.dispose(); rmSync(dir, { recursive: true, force: true });
