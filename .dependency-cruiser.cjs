// The layering rule (docs/architecture.md, "Layers"), checked by `npm run lint:layers` in `npm test`:
// protocol/ imports nothing of ours and no runtime; objects/ never imports the gateway; the SDK
// never imports the server. The SDK itself runs in Node, browsers and Workers, so sdk/src/ imports
// no Node built-in; the one exception is sdk/src/cli/, the `dovetail` command line, which runs on
// Node only (>= 22) and may import `node:` modules. Nothing else in sdk/src/ imports the CLI.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "protocol-is-self-contained",
      comment: "protocol/ is the runtime-free wire contract: it imports only protocol/ and npm libraries",
      severity: "error",
      from: { path: "^protocol/" },
      to: { path: "^(objects|workers|sdk|local-node|bench|test|scripts)/" },
    },
    {
      name: "protocol-is-runtime-free",
      comment: "no cloudflare: and no node: imports in protocol/",
      severity: "error",
      from: { path: "^protocol/" },
      to: { path: "^(cloudflare|node):|^(fs|path|crypto|net|os|child_process|worker_threads)$" },
    },
    {
      name: "objects-never-import-the-gateway",
      severity: "error",
      from: { path: "^objects/" },
      to: { path: "^workers/" },
    },
    {
      name: "sdk-never-imports-the-server",
      severity: "error",
      from: { path: "^sdk/" },
      to: { path: "^(objects|workers)/" },
    },
    {
      name: "sdk-is-runtime-free-except-the-cli",
      comment: "no Node built-ins (node:fs, node:util, ...) in sdk/src/, except in sdk/src/cli/ (the dovetail command line, Node only)",
      severity: "error",
      from: { path: "^sdk/src/", pathNot: "^sdk/src/cli/" },
      to: { dependencyTypes: ["core"] },
    },
    {
      name: "sdk-never-imports-the-cli",
      comment: "the client (what browsers and Workers bundle) never pulls in the command line",
      severity: "error",
      from: { path: "^sdk/src/", pathNot: "^sdk/src/cli/" },
      to: { path: "^sdk/src/cli/" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "node_modules" },
    tsPreCompilationDeps: true,
    combinedDependencies: false,
  },
};
