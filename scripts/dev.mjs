#!/usr/bin/env node
// `npm run dev`: the bus on this machine. workerd via wrangler, local SQLite persistence, no
// Cloudflare account. PORT (default 8787) and DOVETAIL_STATE (default .dovetail/state) override.
// Auth is ON, as deployed: a local-only HS256 secret is created in the state folder on first
// start and a development token (tenant `default`, every scope, 30 days) is printed on each
// start and written to <state>/dev-token (docs/decisions/013-auth-dev-mode.md).
// DOVETAIL_VARS="DOVETAIL_AUTH:off" runs the bus open instead (tests, demos), and says so.
import { spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import process from "node:process";

const port = process.env.PORT ?? "8787";
const state = path.resolve(process.env.DOVETAIL_STATE ?? ".dovetail/state");
const require = createRequire(import.meta.url);
const wrangler = path.join(path.dirname(require.resolve("wrangler/package.json")), "bin", "wrangler.js");

/** HS256 JWT, minted with node:crypto (the bus verifies it with jose). */
function mintDevToken(secret) {
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ iss: "dovetail", aud: "dovetail", sub: "dev", tenant: "default", scope: "publish:> subscribe:> admin:>", iat: now, exp: now + 30 * 24 * 3600 })}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}
mkdirSync(state, { recursive: true });
const secretFile = path.join(state, "dev-secret");
if (!existsSync(secretFile)) writeFileSync(secretFile, randomBytes(32).toString("hex"), { mode: 0o600 });
const devSecret = readFileSync(secretFile, "utf8").trim();
const devToken = mintDevToken(devSecret);
writeFileSync(path.join(state, "dev-token"), devToken, { mode: 0o600 });
const authOff = /(^|\s)DOVETAIL_AUTH:off(\s|$)/.test(process.env.DOVETAIL_VARS ?? "");

const args = [wrangler, "dev", "--ip", "127.0.0.1", "--port", port, "--persist-to", state, "--show-interactive-dev-session=false"];
const extraVars = process.env.DOVETAIL_VARS; // e.g. "FLUSH_DELAY_MS:1 MAX_BATCH_MESSAGES:2000"
args.push("--var", `DOVETAIL_JWT_SECRET:${devSecret}`);
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
        `  Health    ${base}/healthz\n\n` +
        (authOff
          ? `  !!! AUTH IS OFF (DOVETAIL_AUTH=off): every request is accepted without a credential. Local use only. !!!\n\n`
          : `  Auth is ON. Development token (tenant "default", all scopes, valid 30 days; also in ${path.join(state, "dev-token")}):\n\n` +
            `    export DOVETAIL_TOKEN=${devToken}\n\n` +
            `  curl -H "Authorization: Bearer $DOVETAIL_TOKEN" ${base}/v1/topics/demo\n` +
            `  WebSocket: ws://127.0.0.1:${port}/v1/topics/demo/ws?token=$DOVETAIL_TOKEN\n\n`),
    );
  }
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
