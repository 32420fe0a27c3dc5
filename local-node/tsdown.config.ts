// Builds the published form of @dovetail/local-node into dist/ (decision 025), like the SDK's:
// run by `npm install` (prepare) and `npm pack`, by hand `npm run build -w @dovetail/local-node`.
// The native addon is not built here: the package ships binding.gyp and native/, and its
// `install` script compiles them where it is installed. dist/ sits beside src/, so native.ts's
// `../build/Release/...` path finds the addon from either.
import { defineConfig } from "tsdown";

export default defineConfig([
  {
    // One entry per subpath export; @dovetail/sdk stays an external dependency.
    entry: { index: "src/index.ts", ring: "src/ring.ts", relay: "src/relay.ts", bridge: "src/bridge.ts", protocol: "src/protocol.ts" },
    platform: "node",
    target: "node22",
    format: "esm",
    fixedExtension: false,
    // The declaration build is slow by nature; rolldown's note saying so is noise in `npm install`.
    checks: { bundlerTimings: false },
    dts: true,
    outDir: "dist",
    clean: true,
  },
  {
    // The `dovetail-local` command line, for plain Node (no type stripping).
    entry: { "dovetail-local": "bin/dovetail-local.ts" },
    platform: "node",
    target: "node22",
    format: "esm",
    fixedExtension: false,
    dts: false,
    outDir: "dist",
    clean: false,
  },
]);
