#!/usr/bin/env node
// Prints one closing line for `npm test` over every vitest run's JSON report:
// "tests: N passed, M failed, K skipped". Exits non-zero if a report is missing or has failures.
import { existsSync, readFileSync } from "node:fs";

const reports = [".vitest-results/workers.json", ".vitest-results/node.json"];
let passed = 0;
let failed = 0;
let skipped = 0;
for (const file of reports) {
  if (!existsSync(file)) {
    console.error(`test-summary: ${file} is missing (did that test run start?)`);
    process.exit(1);
  }
  const report = JSON.parse(readFileSync(file, "utf8"));
  passed += report.numPassedTests;
  failed += report.numFailedTests;
  skipped += report.numPendingTests + report.numTodoTests;
}
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
