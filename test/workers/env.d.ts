// Types `env` and `exports` of `cloudflare:workers` inside tests as this Worker's own.
declare namespace Cloudflare {
  interface Env extends import("../../workers/env.ts").Env {}
  interface GlobalProps {
    mainModule: typeof import("../../workers/index.ts");
  }
}
