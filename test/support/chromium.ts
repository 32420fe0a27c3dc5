/**
 * Headless Chromium for the browser tests, from Debian's package (scripts/install-system-deps.sh
 * installs it; `npm test`'s pretest does so when it can). A test that needs it fails with one
 * sentence when it is missing, never skips silently.
 */
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";

/** Launch headless Chromium, quiet (no sync, updates or background traffic). */
export function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: install Debian chromium (scripts/install-system-deps.sh, or apt-get install -y chromium) to run the browser tests`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
