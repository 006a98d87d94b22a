// Drives ws-server's built-in page in a real headless Chromium through
// playwright-core, for `cargo xtask interop`. Prints one line per check,
// `ok NAME` or `FAIL NAME: why`, and exits non-zero on any failure.
//
//   node browser_check.mjs PAGE_URL NODE_PREFIX CHROMIUM_PATH
//
// NODE_PREFIX is the npm prefix playwright-core was installed into; the browser
// is the system's Chromium (never one downloaded by playwright).
//
// The page's DOM contract: text input #message, button #send, log #log where
// each received message is appended as an element of class `received` holding
// exactly its text, #status reading `open` or `closed CODE REASON`.

import { STEP_TIMEOUT_MS, inChromium } from './checks.mjs';

const TOTAL_TIMEOUT_MS = 60_000;

const [pageUrl, nodePrefix, chromiumPath] = process.argv.slice(2);
if (!pageUrl || !nodePrefix || !chromiumPath) {
  console.error('usage: node browser_check.mjs PAGE_URL NODE_PREFIX CHROMIUM_PATH');
  process.exit(2);
}

let check;
await inChromium({ nodePrefix, chromiumPath, totalMs: TOTAL_TIMEOUT_MS }, async (context, checker) => {
  check = checker;
  await runPageChecks(context);
});

async function runPageChecks(context) {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  const scriptErrors = [];
  page.on('pageerror', (error) => scriptErrors.push(error.message));

  const opened = await check('page loads and its socket opens', async () => {
    const response = await page.goto(pageUrl);
    if (!response || response.status() !== 200) {
      throw new Error(`GET ${pageUrl} answered ${response ? response.status() : 'nothing'}`);
    }
    await waitForStatus(page, (status) => status === 'open', 'open');
  });
  if (!opened) {
    return;
  }
  await check('permessage-deflate negotiated with the page', async () => {
    const extensions = ((await page.locator('#extensions').textContent()) ?? '').trim();
    if (!/^permessage-deflate\b/.test(extensions)) {
      throw new Error(`#extensions reads ${JSON.stringify(extensions)}`);
    }
  });
  for (const [name, message] of [
    ['ASCII message echoed through the page', 'Hello from Chromium'],
    ['multi-byte message echoed through the page', 'héllo wörld — 日本語 🎉🦀'],
    ['long compressible message echoed through the page', 'compress me '.repeat(2000).trim()],
  ]) {
    await check(name, () => exchange(page, message));
  }
  if ((await page.locator('#close').count()) > 0) {
    await check('page closes its socket with 1000', async () => {
      await page.locator('#close').click();
      await waitForStatus(page, (status) => /^closed 1000\b/.test(status), 'closed 1000 ...');
    });
  } else {
    console.error('browser_check: the page has no #close button; closing is not checked');
  }
  await check('page raised no script error', async () => {
    if (scriptErrors.length) {
      throw new Error(scriptErrors.join(' | '));
    }
  });
}

async function exchange(page, message) {
  const before = await page.locator('#log .received').count();
  await page.locator('#message').fill(message);
  await page.locator('#send').click();
  try {
    await page.waitForFunction(
      ([text, skip]) =>
        [...document.querySelectorAll('#log .received')]
          .slice(skip)
          .some((element) => element.textContent === text),
      [message, before],
      { timeout: STEP_TIMEOUT_MS },
    );
  } catch {
    const seen = await page.locator('#log .received').allTextContents();
    throw new Error(
      `no #log .received element reading ${JSON.stringify(message)} within ` +
        `${STEP_TIMEOUT_MS / 1000} s; received so far: ${JSON.stringify(seen.slice(before))}`,
    );
  }
}

async function waitForStatus(page, accept, wanted) {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  let status = '';
  while (Date.now() < deadline) {
    status = ((await page.locator('#status').textContent().catch(() => null)) ?? '').trim();
    if (accept(status)) {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`#status reads ${JSON.stringify(status)}, expected ${wanted}`);
}
