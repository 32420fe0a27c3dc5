#!/usr/bin/env node
// `npm run dev`: the bus on this machine. workerd via wrangler, local SQLite persistence, no
// Cloudflare account. PORT (default 8787) and DOVETAIL_STATE (default .dovetail/state) override.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";
import process from "node:process";

const port = process.env.PORT ?? "8787";
const state = path.resolve(process.env.DOVETAIL_STATE ?? ".dovetail/state");
const require = createRequire(import.meta.url);
const wrangler = path.join(path.dirname(require.resolve("wrangler/package.json")), "bin", "wrangler.js");

const args = [wrangler, "dev", "--ip", "127.0.0.1", "--port", port, "--persist-to", state, "--show-interactive-dev-session=false"];
const extraVars = process.env.DOVETAIL_VARS; // e.g. "FLUSH_DELAY_MS:1 MAX_BATCH_MESSAGES:2000"
if (extraVars) for (const pair of extraVars.split(/\s+/).filter(Boolean)) args.push("--var", pair);

const child = spawn(process.execPath, args, {
  stdio: ["ignore", "pipe", "inherit"],
  env: { ...process.env, WRANGLER_SEND_METRICS: "false", WRANGLER_HIDE_BANNER: "true" },
});
let announced = false;
child.stdout.setEncoding("utf8");
child.stdout.on("data", (chunk) => {
  process.stdout.write(chunk);
  if (!announced && /Ready on/i.test(chunk)) {
    announced = true;
    const base = `http://127.0.0.1:${port}`;
    process.stdout.write(
      `\nDovetail is running (local workerd, state in ${state}).\n` +
        `  HTTP      ${base}/v1/topics/{topic}/messages\n` +
        `  WebSocket ws://127.0.0.1:${port}/v1/topics/{topic}/ws\n` +
        `  Health    ${base}/healthz\n\n`,
    );
  }
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
