// Builds the published form of @dovetail/sdk into dist/ (decision 025). `npm install` runs it
// (prepare), `npm pack` too, by hand `npm run build -w @dovetail/sdk`. In this repository the
// sources stay what runs: the exports map's `@dovetail/source` condition sends TypeScript, vitest
// and the tests' processes to src/; dist/ serves plain `node` and the `dovetail` bin link.
import { defineConfig } from "tsdown";

export default defineConfig([
  {
    // The library: `@dovetail/sdk`, `@dovetail/sdk/admin` and `@dovetail/sdk/webhooks`. Shared code (DovetailError, the
    // HTTP call) lands in one chunk both entries import, so `instanceof` holds across them.
    // protocol/ (outside this package) is bundled in; zod, the one dependency, stays external and
    // is reached only from the admin entry.
    entry: { index: "src/index.ts", admin: "src/admin.ts", webhooks: "src/webhooks.ts" },
    platform: "neutral",
    target: "es2022",
    format: "esm",
    fixedExtension: false,
    // The declaration build is slow by nature; rolldown's note saying so is noise in `npm install`.
    checks: { bundlerTimings: false },
    dts: true,
    outDir: "dist",
    clean: true,
    // Chunks named without a content hash: an app's bundler keeps our chunk names in its own
    // (`import("./trace-<ours>-<its>.js")` in the core bundle), and a hash is random text that
    // gzip cannot shrink, about 9 bytes per chunk the core loads. The package version is what
    // caches our files; their names need no hash (docs/decisions/033-observability.md).
    outputOptions: { chunkFileNames: "[name].js" },
  },
  {
    // The `dovetail` command line, for plain Node >= 22 (no type stripping). Its own bundle of the
    // SDK: it runs, nobody imports it. It finds its version in the nearest package.json.
    entry: { dovetail: "bin/dovetail.ts" },
    platform: "node",
    target: "node22",
    format: "esm",
    fixedExtension: false,
    dts: false,
    outDir: "dist",
    clean: false,
  },
]);
