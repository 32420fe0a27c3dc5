#!/usr/bin/env node
// `npm run dev`: the bus on this machine. workerd with local SQLite persistence, no Cloudflare
// account. PORT (default 8787) and DOVETAIL_STATE (default .dovetail/state) override.
//
// By default the Worker is bundled by wrangler (from wrangler.toml) and served by Miniflare
// straight from workerd, without `wrangler dev`'s proxy worker in front: that proxy added about
// 8 ms to every HTTP request here (GET /healthz p50 9.0 ms through it, 1.1 ms direct;
// docs/decisions/009-local-serving.md). DOVETAIL_DEV=wrangler runs `wrangler dev` instead
// (rebuilds on file changes). Topics written in one mode are not visible in the other (they name
// their Durable Object namespaces differently); use one mode per state folder.
//
// Auth is ON, as deployed: a local-only HS256 secret is created in the state folder on first
// start and a development token (tenant `default`, every scope, 30 days) is printed on each
// start and written to <state>/dev-token (docs/decisions/013-auth-dev-mode.md).
// DOVETAIL_VARS="DOVETAIL_AUTH:off" runs the bus open instead (tests, demos), and says so.
import { execFileSync, spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, statfsSync, writeFileSync } from "node:fs";
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
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ iss: "dovetail", aud: "dovetail", sub: "dev", tenant: "default", scope: "publish:> subscribe:> consume:> admin:>", iat: now, exp: now + 30 * 24 * 3600 })}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}
mkdirSync(state, { recursive: true });
const secretFile = path.join(state, "dev-secret");
if (!existsSync(secretFile)) writeFileSync(secretFile, randomBytes(32).toString("hex"), { mode: 0o600 });
const devSecret = readFileSync(secretFile, "utf8").trim();
const devToken = mintDevToken(devSecret);
writeFileSync(path.join(state, "dev-token"), devToken, { mode: 0o600 });
// DOVETAIL_AUTH=off in the environment does the same as DOVETAIL_VARS="DOVETAIL_AUTH:off".
const authOff = process.env.DOVETAIL_AUTH === "off" || /(^|\s)DOVETAIL_AUTH:off(\s|$)/.test(process.env.DOVETAIL_VARS ?? "");

const extraVars = Object.fromEntries(
  (process.env.DOVETAIL_VARS ?? "") // e.g. "FLUSH_DELAY_MS:1 MAX_BATCH_MESSAGES:2000"
    .split(/\s+/)
    .filter(Boolean)
    .map((pair) => [pair.slice(0, pair.indexOf(":")), pair.slice(pair.indexOf(":") + 1)]),
);
const vars = { DOVETAIL_JWT_SECRET: devSecret, ...extraVars, ...(authOff ? { DOVETAIL_AUTH: "off" } : {}) };

// Full disk (docs/architecture.md): the bus refuses new messages with `storage_full` while less
// than this is free on the state volume, keeping room for retention's deletes, settings, alarms
// and the runtime's own files. The topics ask through the DOVETAIL_STORAGE binding
// (objects/storage-guard.ts); DOVETAIL_STORAGE_RESERVE_MB changes the reserve (default 8).
const reserveMb = Number(process.env.DOVETAIL_STORAGE_RESERVE_MB ?? "8");
const storageReserve = Math.round((Number.isFinite(reserveMb) && reserveMb >= 0 ? reserveMb : 8) * 1024 * 1024);
function storageReport() {
  const fs = statfsSync(state);
  return Response.json({ free: fs.bavail * fs.bsize, reserve: storageReserve });
}

function announce() {
  const base = `http://127.0.0.1:${port}`;
  process.stdout.write(
    `\nDovetail is running (local workerd, state in ${state}).\n` +
      `  HTTP      ${base}/v1/topics/{topic}/messages\n` +
      `  WebSocket ws://127.0.0.1:${port}/v1/topics/{topic}/ws\n` +
      `  Health    ${base}/healthz   (ready: ${base}/readyz)\n` +
      `  Console   ${base}/console/   Metrics ${base}/metrics\n\n` +
      (authOff
        ? `  !!! AUTH IS OFF (DOVETAIL_AUTH=off): every request is accepted without a credential. Local use only. !!!\n\n`
        : `  Auth is ON. Development token (tenant "default", all scopes, valid 30 days; also in ${path.join(state, "dev-token")}):\n\n` +
          `    export DOVETAIL_TOKEN=${devToken}\n\n` +
          `  From another shell: export DOVETAIL_TOKEN=$(cat ${path.join(state, "dev-token")})\n\n` +
          `  curl -H "Authorization: Bearer $DOVETAIL_TOKEN" ${base}/v1/topics/demo\n` +
          `  WebSocket: ws://127.0.0.1:${port}/v1/topics/demo/ws?token=$DOVETAIL_TOKEN\n\n`),
  );
}

if (process.env.DOVETAIL_DEV === "wrangler") await runWranglerDev();
else await runDirect();

/** Bundle with wrangler, serve with Miniflare (workerd) in this process. */
async function runDirect() {
  const { unstable_getMiniflareWorkerOptions } = await import("wrangler");
  const { Miniflare, convertV4MiniflareOptions } = await import("miniflare");
  const outdir = path.join(state, "bundle");
  try {
    execFileSync(process.execPath, [wrangler, "deploy", "--dry-run", "--outdir", outdir], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, WRANGLER_SEND_METRICS: "false", WRANGLER_HIDE_BANNER: "true" },
    });
  } catch (error) {
    process.stderr.write(`dovetail dev: bundling failed\n${error.stdout ?? ""}${error.stderr ?? ""}\n`);
    process.exit(1);
  }
  const { workerOptions } = unstable_getMiniflareWorkerOptions("wrangler.toml");
  // The bundle replaces wrangler's source rules; unset options are left to Miniflare's defaults.
  const options = Object.fromEntries(
    Object.entries(workerOptions).filter(([key, value]) => key !== "modulesRules" && key !== "rootPath" && value !== undefined),
  );
  // Many topics (docs/local-limits.md): every open topic holds 3 files and ~0.33 MB in this one
  // workerd. workerd closes a topic 10 s after its last request, so leave eviction on: no
  // `unsafePreventEviction` here. Measured by bench `many-topics`: 20,000 topics created in waves,
  // with the files back to the baseline 10–13 s after each wave. workerd inherits this process's
  // open-file limit, and Node already raised the soft limit to the hard one. About limit ÷ 3 topics
  // can be open at once; past that, opening a topic fails with SQLITE_CANTOPEN (HTTP 500) until idle
  // ones close.
  const mf = new Miniflare({
    ...convertV4MiniflareOptions({
      ...options,
      bindings: { ...workerOptions.bindings, ...vars },
      serviceBindings: { ...workerOptions.serviceBindings, DOVETAIL_STORAGE: storageReport },
      modules: true,
      scriptPath: path.join(outdir, "index.js"),
      modulesRoot: outdir,
      host: "127.0.0.1",
      port: Number(port),
      cf: false,
    }),
    // Same folder as `wrangler dev --persist-to` (`<state>/v3`).
    resourcePersistencePath: path.join(state, "v3"),
  });
  await mf.ready;
  announce();
  const stop = async () => {
    await mf.dispose();
    process.exit(0);
  };
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, stop);
}

/**
 * `wrangler dev`: rebuilds on change, at the cost of a proxy worker in front of every request.
 * It cannot bind a Node function, so this mode runs without the storage guard (a full disk then
 * resets topics; docs/architecture.md, "Full disk").
 */
async function runWranglerDev() {
  const args = [wrangler, "dev", "--ip", "127.0.0.1", "--port", port, "--persist-to", state, "--show-interactive-dev-session=false"];
  for (const [name, value] of Object.entries(vars)) args.push("--var", `${name}:${value}`);
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
      announce();
    }
  });
  for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
  child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}
