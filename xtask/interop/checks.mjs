// What the interop scripts share: `ok NAME` / `FAIL NAME: why` lines, a run
// bounded in time, and a headless Chromium driven through playwright-core.

import { createRequire } from 'node:module';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const STEP_TIMEOUT_MS = 15_000;

// Without the background-networking flags Chromium reaches for the internet,
// which a closed machine refuses; --user-data-dir is passed by playwright from
// the directory given to launchPersistentContext.
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/// Prints one line per check and counts the failures.
export function reporter() {
  let failed = 0;
  const report = (name, error) => {
    if (error === undefined) {
      console.log(`ok ${name}`);
    } else {
      failed += 1;
      const reason = String(error && error.message ? error.message : error)
        .split('\n')
        .map((line) => line.trim())
        .filter(Boolean)
        .slice(0, 3)
        .join(' | ');
      console.log(`FAIL ${name}: ${reason}`);
    }
  };
  // Runs one check: its value (or true) when it passes, undefined when not.
  const check = async (name, body) => {
    try {
      const value = await body();
      report(name);
      return value ?? true;
    } catch (error) {
      report(name, error);
      return undefined;
    }
  };
  return { report, check, failures: () => failed };
}

/// Starts the system's Chromium (never one downloaded by playwright) with
/// playwright-core from the npm prefix `nodePrefix`, runs
/// `runChecks(context, check)`, and exits: 1 if any check failed or the whole
/// run took longer than `totalMs`, 0 otherwise.
export async function inChromium({ nodePrefix, chromiumPath, totalMs }, runChecks) {
  const { report, check, failures } = reporter();
  let userDataDir;
  // Playwright's own exit handler closes the browser when this fires.
  const watchdog = setTimeout(() => {
    report('browser checks finish in time', `still running after ${totalMs / 1000} s`);
    try {
      if (userDataDir) {
        rmSync(userDataDir, { recursive: true, force: true });
      }
    } catch {
      // The browser may still be writing there; a stray temp dir is harmless.
    }
    process.exit(1);
  }, totalMs);
  const require = createRequire(path.join(path.resolve(nodePrefix), 'package.json'));
  const { chromium } = require('playwright-core');
  let context;
  userDataDir = await mkdtemp(path.join(tmpdir(), 'xtask-chromium-'));
  try {
    const launched = await check('chromium starts headless', async () => {
      context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: chromiumPath,
        headless: true,
        args: FLAGS,
        timeout: STEP_TIMEOUT_MS,
      });
    });
    if (launched) {
      await runChecks(context, check);
    }
  } finally {
    if (context) {
      await context.close().catch(() => {});
    }
    await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
    clearTimeout(watchdog);
  }
  process.exit(failures() ? 1 : 0);
}
