/**
 * Turns a results object into what people read: markdown tables (one per scenario, systems side
 * by side, Dovetail's ratio to the best peer) and SVG charts written by hand (no browser, no
 * chart library): throughput bars and latency percentile curves.
 *
 * @example
 * writeFileSync("bench/results/latest.md", renderMarkdown(results));
 * for (const chart of renderCharts(results)) writeFileSync(`bench/results/${chart.file}`, chart.svg);
 */
import type { Latencies, ManyTopicsResult, Probe } from "./many-topics.ts";
import type { Metrics } from "./runner.ts";
import type { Row } from "./scenarios.ts";

export interface SystemResult {
  ok: boolean;
  validRuns: number;
  runs: { ok: boolean; problems: string[]; metrics: Metrics }[];
  median: Metrics;
  min: Metrics;
  max: Metrics;
  /** Latency percentile curve of the valid runs merged: [percentile, ms]. */
  curve?: [number, number][];
}

export interface CaseResult {
  id: string;
  label: string;
  spec: unknown;
  results: Record<string, SystemResult>;
}

export interface ScenarioResult {
  id: string;
  title: string;
  description: string;
  systems: string[];
  rows: Row[];
  chart: "bars" | "latency";
  chartMetric?: string;
  cases: CaseResult[];
  /** Goals checked against this scenario's figures (issue 12's for the work queue), shown under its table. */
  targets?: Target[];
}

/** A goal and whether the run met it (null: not measured). */
export interface Target {
  label: string;
  target: number;
  unit: string;
  higherIsBetter: boolean;
  value: number | null;
  met: boolean | null;
  note?: string;
}

export interface BenchResults {
  schema: 1;
  startedAt: string;
  finishedAt: string;
  quick: boolean;
  runsPerCase: number;
  machine: Record<string, unknown>;
  systems: Record<string, { status: "ok" | "skipped"; reason?: string; version?: string }>;
  scenarios: ScenarioResult[];
  edgeTargets: Target[];
  coldStart: Record<string, unknown>;
  external: Record<string, { status: "ok" | "not present" | "failed"; reason?: string; file: string; figures?: unknown }>;
  /** Many topics on one local bus (bench/lib/many-topics.ts); absent when not selected. */
  manyTopics?: ManyTopicsResult | { error: string };
}

/** 1234567 → "1.23 M", 0.000123 → "0.000123"; three significant digits. */
export function fmt(value: number | undefined, unit = ""): string {
  if (value === undefined || !Number.isFinite(value)) return "–";
  if (value === 0) return unit === "ms" || unit === "µs" || unit === "MB" ? `0 ${unit}` : "0";
  const abs = Math.abs(value);
  let text: string;
  if (abs >= 1e6) text = `${(value / 1e6).toPrecision(3)} M`;
  else if (abs >= 1e4) text = `${(value / 1e3).toPrecision(3)} k`;
  else if (abs >= 100) text = value.toFixed(0);
  else text = value.toPrecision(3);
  return unit === "ms" || unit === "µs" || unit === "MB" ? `${text} ${unit}` : text;
}

function cell(r: SystemResult | undefined, metric: string, unit: string, runs: number): string {
  if (!r) return "skipped";
  if (!r.ok) return "**failed**";
  const m = r.median[metric];
  if (m === undefined) return "–";
  if (runs > 1 && r.validRuns > 1) return `${fmt(m, unit)} <sub>(${fmt(r.min[metric])}–${fmt(r.max[metric])})</sub>`;
  return fmt(m, unit);
}

/**
 * Dovetail's median divided by the best peer's (best = highest or lowest, as the row says).
 * `system` picks which Dovetail row: `dovetail` (raw protocol) or `dovetail-sdk`.
 */
export function ratioToBest(c: CaseResult, row: Row, system = "dovetail"): { ratio: number; peer: string } | null {
  const ours = c.results[system];
  if (!ours?.ok || ours.median[row.metric] === undefined) return null;
  let best: { value: number; peer: string } | null = null;
  for (const [system, r] of Object.entries(c.results)) {
    // Variants of Dovetail (the SDK, durability levels, another socket mode, raw frames) are not peers.
    if (system.startsWith("dovetail") || !r.ok) continue;
    const v = r.median[row.metric];
    if (v === undefined) continue;
    if (!best || (row.higherIsBetter ? v > best.value : v < best.value)) best = { value: v, peer: system };
  }
  if (!best || best.value === 0) return null;
  return { ratio: ours.median[row.metric]! / best.value, peer: best.peer };
}

/** The Dovetail rows that get a "÷ best peer" column, and its heading. */
const RATIO_SYSTEMS = [
  { system: "dovetail", label: "Dovetail" },
  { system: "dovetail-sdk", label: "Dovetail SDK" },
];

/** What each system is, for the report's systems table. */
export const SYSTEM_LABELS: Record<string, string> = {
  dovetail: "Dovetail on local workerd (npm run dev: Miniflare), SQLite, raw WebSocket protocol v1; durable (`sync`, the default level: acked after commit)",
  "dovetail-sdk":
    "Dovetail via @dovetail/sdk: `bus.publisher(topic)` with default options, one `send` per message (the SDK batches), `for await … bus.subscribe(topic)`; same bus, `sync`",
  "dovetail-async": "Dovetail, raw protocol, topics set to durability `async` (delivered before the commit, acked after it)",
  "dovetail-memory": "Dovetail, raw protocol, topics set to durability `memory` (not stored, delivered at once, acked on receipt)",
  "redis-pubsub": "Redis PUBLISH/SUBSCRIBE, in memory, not durable",
  "redis-streams": "Redis Streams XADD / XREAD BLOCK, no persistence",
  "redis-streams-aof": "Redis Streams with appendonly yes, appendfsync everysec (durable within ~1 s)",
  nats: "core NATS publish/subscribe, not durable",
  "nats-jetstream":
    "NATS JetStream (same nats-server, -js, file store; default sync every 2 min): pub/sub = a stream per topic, `js.publish` awaiting each PubAck, ordered consumers from the start; work-queue = work-queue stream, durable pull consumer, explicit acks (m.ack() is not confirmed to the client)",
};

export function renderMarkdown(res: BenchResults): string {
  const out: string[] = [];
  const m = res.machine;
  out.push(`# Dovetail benchmarks`);
  out.push("");
  out.push(
    `Generated by \`npm run bench${res.quick ? " -- --quick" : ""}\` on ${res.finishedAt}. Do not edit by hand: every figure comes from the JSON file next to this one.`,
  );
  out.push("");
  out.push(
    `Machine: ${m.cpus} × ${m.cpuModel}, ${fmt(Number(m.memoryBytes) / 2 ** 30)} GiB, ${m.os}; Node ${m.node}, workerd ${m.workerd}, Redis ${m.redis}, NATS ${m.nats}, Durable Streams server ${m.durableStreamsServer}. Load average at start: ${m.loadAverage}.`,
  );
  out.push("");
  out.push(
    `Each cell: median of ${res.runsPerCase} run${res.runsPerCase > 1 ? "s" : ""}${res.runsPerCase > 1 ? " <sub>(min–max)</sub>" : ""}, warm-up excluded, same message count for every system. A run whose subscribers did not receive every message exactly once and in order is **failed** and never reported as a figure. Ratio = Dovetail ÷ best peer, for the raw-protocol row and the SDK row (for latency and memory, lower is better, so below 1× is ahead); the other Dovetail rows are never peers.`,
  );
  if (res.quick) out.push("", "> **Quick run** (CI smoke): small counts, one run per case; indicative only.");
  out.push("");
  out.push("## Systems");
  out.push("");
  out.push("| system | what | status |");
  out.push("|---|---|---|");
  for (const [name, s] of Object.entries(res.systems)) {
    out.push(`| ${name} | ${SYSTEM_LABELS[name] ?? ""} | ${s.status === "ok" ? `ok${s.version ? ` (${s.version})` : ""}` : `skipped: ${s.reason}`} |`);
  }
  out.push("");

  if (res.edgeTargets.length) {
    out.push("## Edge core targets (issue 2)");
    out.push("");
    out.push(...targetTable(res.edgeTargets));
    out.push("");
  }

  for (const s of res.scenarios) {
    out.push(`## ${s.title}`);
    out.push("");
    out.push(s.description);
    out.push("");
    const systems = s.systems;
    // One ratio column per Dovetail row that has one (raw protocol, SDK), when a peer ran beside it.
    const hasPeer = systems.some((sys) => !sys.startsWith("dovetail"));
    const ratioOf = hasPeer ? RATIO_SYSTEMS.filter((r) => systems.includes(r.system)) : [];
    out.push(`| case | metric | ${systems.join(" | ")} |${ratioOf.map((r) => ` ${r.label} ÷ best peer |`).join("")}`);
    out.push(`|---|---|${systems.map(() => "---:").join("|")}|${ratioOf.map(() => "---:|").join("")}`);
    for (const c of s.cases) {
      for (const row of s.rows) {
        const cells = systems.map((sys) => cell(c.results[sys], row.metric, row.unit, res.runsPerCase));
        if (cells.every((x) => x === "–")) continue;
        const ratios = ratioOf.map(({ system }) => {
          const r = ratioToBest(c, row, system);
          return r && row.ratio !== false ? ` ${r.ratio >= 100 ? r.ratio.toFixed(0) : r.ratio.toPrecision(3)}× ${r.peer} |` : " – |";
        });
        const unit = row.unit && !["ms", "µs", "MB"].includes(row.unit) && !row.label.includes(row.unit) ? ` (${row.unit})` : "";
        out.push(`| ${c.label} | ${row.label}${unit} | ${cells.join(" | ")} |${ratios.join("")}`);
      }
    }
    out.push("");
    const failures = s.cases.flatMap((c) =>
      Object.entries(c.results).flatMap(([sys, r]) =>
        r.runs.filter((run) => !run.ok).map((run) => `- ${c.label}, ${sys}: ${run.problems.slice(0, 3).join("; ")}`),
      ),
    );
    if (failures.length) {
      out.push("Failed runs:");
      out.push("");
      out.push(...failures);
      out.push("");
    }
    if (s.targets?.length) {
      out.push(...targetTable(s.targets));
      out.push("");
    }
    out.push(`![${s.title}](${s.id}.svg)`);
    out.push("");
  }

  out.push("## 6. local-node and other harnesses");
  out.push("");
  for (const [name, ext] of Object.entries(res.external)) {
    out.push(`### ${name} (\`${ext.file}\`)`);
    out.push("");
    if (ext.status !== "ok") {
      out.push(`${ext.status}${ext.reason ? `: ${ext.reason}` : ""}`);
      out.push("");
      continue;
    }
    out.push("| figure | value |");
    out.push("|---|---:|");
    for (const [k, v] of flatten(ext.figures)) out.push(`| ${k} | ${typeof v === "number" ? fmt(v) : String(v)} |`);
    out.push("");
  }

  out.push("## 7. Cold start");
  out.push("");
  out.push("| system | figure | value |");
  out.push("|---|---|---:|");
  for (const [k, v] of flatten(res.coldStart)) {
    const [sys, ...rest] = k.split(".");
    out.push(`| ${sys} | ${rest.join(".")} | ${typeof v === "number" ? fmt(v, k.endsWith("Ms") ? "ms" : "") : String(v)} |`);
  }
  out.push("");
  if (res.manyTopics) out.push(...renderManyTopics(res.manyTopics));
  return out.join("\n");
}

/** Goals, measured values and whether they were met. */
export function targetTable(targets: Target[]): string[] {
  const out = ["| target | goal | measured | met |", "|---|---|---|---|"];
  for (const t of targets) {
    const withUnit = (v: number) => (t.unit === "ms" ? fmt(v, "ms") : t.unit === "×" ? `${v.toPrecision(3)}×` : `${fmt(v)} ${t.unit}`);
    const measured = t.value === null ? (t.note ? `failed: ${t.note.slice(0, 160)}` : "–") : `${withUnit(t.value)}${t.note ? ` (${t.note})` : ""}`;
    out.push(`| ${t.label} | ${t.higherIsBetter ? "≥" : "≤"} ${withUnit(t.target)} | ${measured} | ${t.met === null ? "–" : t.met ? "yes" : "**no**"} |`);
  }
  return out;
}

/** Section 8: one table row per wave, right after it and after its idle gap; the checks. */
export function renderManyTopics(mt: ManyTopicsResult | { error: string }): string[] {
  const out: string[] = ["## 8. Many topics on one local bus", ""];
  if ("error" in mt) return [...out, `**failed**: ${mt.error}`, ""];
  const c = mt.config;
  const s = mt.summary;
  out.push(
    `${c.topics.toLocaleString("en-US")} topics in ${c.waves} waves on a bus of its own, one HTTP publish each (${c.concurrency} in flight), at least ${c.idleMs / 1000} s idle after each wave. ` +
      "Memory and descriptors are workerd's (/proc); *topics open* = distinct topic databases with open files. *Old topic* = a publish to a topic of an earlier wave, whose object had left memory. " +
      `Healthy = every request succeeded; \`/healthz\` p90 during each wave, and each \`/healthz\` after it, ≤ ${fmt(c.healthBoundMs, "ms")}, none during a wave over ${c.stallBoundMs / 1000} s; each wave's topic files closed within ${c.releaseTimeoutMs / 1000} s; memory reused (kept per topic created after wave 1 < ${c.residualBound} × one open topic's).`,
    "",
  );
  out.push(
    `**${mt.ok ? "healthy" : "failed"}**${mt.problems.length ? `: ${mt.problems.join("; ")}` : ""}. workerd open-file limit: ${mt.fdLimit ?? "unknown"}; baseline ${fmt(mt.baseline.rssMB, "MB")}, ${mt.baseline.fds} fds.`,
  );
  out.push("");
  const lat = (l: Latencies) => (l.n === 0 ? "–" : l.failed ? `${l.failed}/${l.n} failed` : `${fmt(l.p50Ms, "ms")} (max ${fmt(l.maxMs, "ms")})`);
  const health = (p: Probe) => (p.healthMs === null ? "failed" : fmt(p.healthMs, "ms"));
  const count = (n: number) => n.toLocaleString("en-US");
  out.push("While each wave ran (peaks of samples every second), right after it, and the time until its topics' files were closed (from its last request):");
  out.push("");
  out.push(
    "| wave | topics so far | created/s | failed | `/healthz` during the wave p50 / p90 / max | peak RSS | peak open fds | peak topics open | `/healthz` after | publish, fresh topic | publish, old topic | files closed after |",
  );
  out.push("|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---|---:|");
  for (const w of mt.waves) {
    const a = w.afterWave;
    const peak = w.peakDuringWave;
    out.push(
      `| ${w.wave} | ${count(w.topicsSoFar)} | ${w.topicsPerSec} | ${w.failed} | ${fmt(w.healthDuringWave.p50Ms, "ms")} / ${fmt(w.healthDuringWave.p90Ms, "ms")} / ${fmt(w.healthDuringWave.maxMs, "ms")} | ${fmt(peak.rssMB, "MB")} | ${count(peak.fds)} | ${count(peak.openTopics)} | ${health(a)} | ${lat(a.freshPublishMs)} | ${lat(a.oldPublishMs)} | ${w.releasedAfterMs === null ? "**never**" : `${(w.releasedAfterMs / 1000).toFixed(1)} s`} |`,
    );
  }
  out.push("");
  out.push("After the idle gap:");
  out.push("");
  out.push("| wave | RSS | anonymous | open fds | topics open | `/healthz` | publish, fresh topic | publish, old topic |");
  out.push("|---:|---:|---:|---:|---:|---:|---|---|");
  for (const w of mt.waves) {
    const i = w.afterIdle;
    out.push(
      `| ${w.wave} | ${fmt(i.rssMB, "MB")} | ${fmt(i.anonMB, "MB")} | ${count(i.fds)} | ${count(i.openTopics)} | ${health(i)} | ${lat(i.freshPublishMs)} | ${lat(i.oldPublishMs)} |`,
    );
  }
  out.push("");
  out.push("| summary | value |");
  out.push("|---|---:|");
  const value = (k: string, v: number) =>
    k.endsWith("Ms") ? fmt(v, "ms") : k.endsWith("MB") ? fmt(v, "MB") : k.endsWith("S") ? `${v.toFixed(1)} s` : Number.isInteger(v) ? count(v) : fmt(v);
  for (const [k, v] of Object.entries(s)) out.push(`| ${k} | ${v === null ? "–" : value(k, v)} |`);
  out.push("");
  return out;
}

/** Flatten an object to `a.b.c → leaf` pairs (numbers, strings and booleans only). */
export function flatten(value: unknown, prefix = ""): [string, number | string | boolean][] {
  if (value === null || value === undefined) return [];
  if (typeof value === "number" || typeof value === "string" || typeof value === "boolean") return [[prefix || "value", value]];
  if (Array.isArray(value)) return value.length <= 8 ? value.flatMap((v, i) => flatten(v, `${prefix}[${i}]`)) : [[prefix, `${value.length} items`]];
  if (typeof value === "object") return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) => flatten(v, prefix ? `${prefix}.${k}` : k));
  return [];
}

// ---------------------------------------------------------------------------------------------
// SVG

const COLORS: Record<string, string> = {
  dovetail: "#e8590c",
  "redis-pubsub": "#c92a2a",
  "redis-streams": "#862e9c",
  "redis-streams-aof": "#5f3dc4",
  nats: "#1971c2",
  "nats-jetstream": "#0b7285",
  "dovetail-sdk": "#5c940d",
  "dovetail-async": "#fab005",
  "dovetail-memory": "#ffd43b",
  "dovetail-plain": "#f08c00",
  "dovetail-raw": "#ffa94d",
  "dovetail-subscribe": "#e8590c",
  "dovetail-group": "#c2255c",
  "dovetail-raw-subscribe": "#ffa94d",
  "dovetail-raw-group": "#f783ac",
};
const FALLBACK = ["#2b8a3e", "#495057", "#0b7285", "#a61e4d"];

function color(system: string, i: number): string {
  return COLORS[system] ?? FALLBACK[i % FALLBACK.length]!;
}

function esc(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/** Grouped bars: one group per case, one bar per system, of the scenario's chart metric. */
export function barChart(s: ScenarioResult): string {
  const row = s.rows.find((r) => r.metric === s.chartMetric) ?? s.rows[0]!;
  const W = 760;
  const top = 56;
  const left = 80;
  const right = 20;
  const plotH = 260;
  const bottom = 70;
  const H = top + plotH + bottom + legendExtraPx(s.systems, left, W - right);
  const groups = s.cases;
  const values = groups.flatMap((c) => s.systems.map((sys) => (c.results[sys]?.ok ? c.results[sys]!.median[row.metric] : undefined) ?? 0));
  const max = niceMax(Math.max(...values, 0));
  const groupW = (W - left - right) / Math.max(1, groups.length);
  const barW = Math.min(48, (groupW * 0.8) / Math.max(1, s.systems.length));
  const y = (v: number) => top + plotH - (v / max) * plotH;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">`,
  );
  parts.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  parts.push(`<text x="${left}" y="22" font-size="15" font-weight="600">${esc(s.title)}</text>`);
  parts.push(
    `<text x="${left}" y="40" fill="#555">${esc(`${row.label}${row.label.includes(row.unit) ? "" : ` (${row.unit})`}, median${s.cases.some((c) => Object.values(c.results).some((r) => r.validRuns > 1)) ? " with min–max" : ""}; ${row.higherIsBetter ? "higher" : "lower"} is better`)}</text>`,
  );
  for (let i = 0; i <= 4; i++) {
    const v = (max / 4) * i;
    parts.push(`<line x1="${left}" x2="${W - right}" y1="${y(v)}" y2="${y(v)}" stroke="#e9ecef"/>`);
    parts.push(`<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end" fill="#555">${esc(fmt(v))}</text>`);
  }
  groups.forEach((c, gi) => {
    const gx = left + gi * groupW + (groupW - barW * s.systems.length) / 2;
    s.systems.forEach((sys, si) => {
      const r = c.results[sys];
      const x = gx + si * barW;
      if (!r) return;
      if (!r.ok) {
        parts.push(`<text x="${x + barW / 2}" y="${y(0) - 4}" text-anchor="middle" fill="#c92a2a" font-size="10">✗</text>`);
        return;
      }
      const v = r.median[row.metric] ?? 0;
      parts.push(
        `<rect x="${x + 2}" y="${y(v)}" width="${barW - 4}" height="${y(0) - y(v)}" fill="${color(sys, si)}"><title>${esc(`${sys}: ${fmt(v)} ${row.unit}`)}</title></rect>`,
      );
      const lo = r.min[row.metric];
      const hi = r.max[row.metric];
      if (lo !== undefined && hi !== undefined && r.validRuns > 1) {
        const cx = x + barW / 2;
        parts.push(`<line x1="${cx}" x2="${cx}" y1="${y(hi)}" y2="${y(lo)}" stroke="#212529"/>`);
      }
      parts.push(`<text x="${x + barW / 2}" y="${y(v) - 4}" text-anchor="middle" font-size="10" fill="#212529">${esc(fmt(v))}</text>`);
    });
    parts.push(`<text x="${left + gi * groupW + groupW / 2}" y="${top + plotH + 18}" text-anchor="middle">${esc(c.label)}</text>`);
  });
  parts.push(`<line x1="${left}" x2="${W - right}" y1="${y(0)}" y2="${y(0)}" stroke="#212529"/>`);
  legend(parts, s.systems, left, top + plotH + 42, W - right);
  parts.push("</svg>");
  return parts.join("\n");
}

/** Height of one legend line. */
const LEGEND_LINE_PX = 18;

/** Where each system's legend entry goes: left to right, on a new line when the next would pass `maxX`. */
function legendLayout(systems: string[], x0: number, maxX: number): { x: number; line: number }[] {
  let x = x0;
  let line = 0;
  return systems.map((sys) => {
    const w = 24 + sys.length * 7;
    if (x > x0 && x + w > maxX) {
      x = x0;
      line++;
    }
    const at = { x, line };
    x += w;
    return at;
  });
}

/** Extra height the legend needs beyond its first line. */
function legendExtraPx(systems: string[], x0: number, maxX: number): number {
  return (legendLayout(systems, x0, maxX).at(-1)?.line ?? 0) * LEGEND_LINE_PX;
}

function legend(parts: string[], systems: string[], x0: number, y0: number, maxX: number): void {
  const layout = legendLayout(systems, x0, maxX);
  systems.forEach((sys, i) => {
    const { x, line } = layout[i]!;
    const y = y0 + line * LEGEND_LINE_PX;
    parts.push(`<rect x="${x}" y="${y - 10}" width="12" height="12" fill="${color(sys, i)}"/>`);
    parts.push(`<text x="${x + 16}" y="${y}">${esc(sys)}</text>`);
  });
}

/**
 * Latency percentile curves (the usual HDR plot): x = percentile on a log scale of
 * 1 / (1 − p), y = latency in ms on a log scale; one panel per case, one line per system.
 */
export function latencyChart(s: ScenarioResult): string {
  const panelW = 370;
  const panelH = 260;
  const top = 80;
  const left = 60;
  const gap = 50;
  const W = left + s.cases.length * (panelW + gap);
  const H = top + panelH + 80 + legendExtraPx(s.systems, left, W - gap);
  const xs = [0, 0.5, 0.9, 0.99, 0.999, 0.9999];
  const xOf = (p: number) => Math.log10(1 / (1 - Math.min(p, 0.9999)));
  const xMax = xOf(0.9999);
  const all = s.cases.flatMap((c) => Object.values(c.results).flatMap((r) => (r.ok && r.curve ? r.curve.map(([, ms]) => ms) : [])));
  const yMin = 10 ** Math.floor(Math.log10(Math.max(0.01, Math.min(...all, 1))));
  const yMax = 10 ** Math.ceil(Math.log10(Math.max(...all, 1)));
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">`,
  );
  parts.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  parts.push(`<text x="${left}" y="22" font-size="15" font-weight="600">${esc(s.title)}</text>`);
  parts.push(`<text x="${left}" y="40" fill="#555">publish-to-delivery latency by percentile (ms, log scale), from intended send time; lower is better</text>`);
  s.cases.forEach((c, ci) => {
    const px = left + ci * (panelW + gap);
    const X = (p: number) => px + (xOf(p) / xMax) * panelW;
    const Y = (ms: number) => top + panelH - ((Math.log10(Math.max(ms, yMin)) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * panelH;
    parts.push(`<rect x="${px}" y="${top}" width="${panelW}" height="${panelH}" fill="none" stroke="#adb5bd"/>`);
    parts.push(`<text x="${px + panelW / 2}" y="${top - 6}" text-anchor="middle" font-weight="600">${esc(c.label)}</text>`);
    for (let e = Math.log10(yMin); e <= Math.log10(yMax); e++) {
      const ms = 10 ** e;
      parts.push(`<line x1="${px}" x2="${px + panelW}" y1="${Y(ms)}" y2="${Y(ms)}" stroke="#e9ecef"/>`);
      parts.push(`<text x="${px - 4}" y="${Y(ms) + 4}" text-anchor="end" fill="#555" font-size="10">${esc(String(ms))}</text>`);
    }
    for (const p of xs) {
      parts.push(`<line x1="${X(p)}" x2="${X(p)}" y1="${top}" y2="${top + panelH}" stroke="#e9ecef"/>`);
      parts.push(
        `<text x="${X(p)}" y="${top + panelH + 14}" text-anchor="middle" fill="#555" font-size="10">${esc(p === 0 ? "0" : `${+(p * 100).toFixed(2)}%`)}</text>`,
      );
    }
    s.systems.forEach((sys, si) => {
      const r = c.results[sys];
      if (!r?.ok || !r.curve?.length) return;
      const pts = r.curve.filter(([p]) => p <= 0.9999).map(([p, ms]) => `${X(p).toFixed(1)},${Y(ms).toFixed(1)}`);
      parts.push(`<polyline points="${pts.join(" ")}" fill="none" stroke="${color(sys, si)}" stroke-width="2"><title>${esc(sys)}</title></polyline>`);
    });
  });
  legend(parts, s.systems, left, top + panelH + 50, W - gap);
  parts.push("</svg>");
  return parts.join("\n");
}

export function renderCharts(res: BenchResults): { file: string; svg: string }[] {
  return res.scenarios.map((s) => ({ file: `${s.id}.svg`, svg: s.chart === "latency" ? latencyChart(s) : barChart(s) }));
}
