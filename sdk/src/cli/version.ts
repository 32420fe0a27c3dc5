/**
 * The SDK package's version, for `dovetail --version`: the nearest `package.json` named
 * `@dovetail/sdk` above this file, so it is found from the sources and from a built bin alike.
 */
import { readFileSync } from "node:fs";

export const PACKAGE_NAME = "@dovetail/sdk";

/**
 * @example
 * version() // "0.1.0"
 */
export function version(from: string = import.meta.url): string {
  for (let dir = new URL("./", from); ; dir = new URL("../", dir)) {
    try {
      const pkg = JSON.parse(readFileSync(new URL("package.json", dir), "utf8")) as { name?: string; version?: string };
      if (pkg.name === PACKAGE_NAME && pkg.version) return pkg.version;
    } catch {
      // no package.json here, or not readable: look further up
    }
    if (dir.pathname === "/") return "unknown";
  }
}
