// Chromium against ws-server over HTTP/2, for `cargo xtask interop`: loads
// the page over https:// (ALPN h2), then opens a WebSocket to wss:// on the
// same origin from the page, which Chromium carries over the page's HTTP/2
// connection as an RFC 8441 extended CONNECT stream when the server allows it
// (SETTINGS_ENABLE_CONNECT_PROTOCOL). Prints `ok NAME` / `FAIL NAME: why`
// lines and exits non-zero on any failure.
//
//   node browser_h2_check.mjs PAGE_URL NODE_PREFIX CHROMIUM_PATH
//
// The server-side proof (its log line carries `http=2`) is checked by the
// caller; this script checks what the page can see: the navigation's
// nextHopProtocol, the echoes, the extensions, and the server's own counter
// of WebSockets by HTTP version at /metrics, fetched over the same origin.

import { STEP_TIMEOUT_MS, inChromium } from './checks.mjs';

const TOTAL_TIMEOUT_MS = 60_000;

const [pageUrl, nodePrefix, chromiumPath] = process.argv.slice(2);
if (!pageUrl || !nodePrefix || !chromiumPath) {
  console.error('usage: node browser_h2_check.mjs PAGE_URL NODE_PREFIX CHROMIUM_PATH');
  process.exit(2);
}

let check;
await inChromium({ nodePrefix, chromiumPath, totalMs: TOTAL_TIMEOUT_MS }, async (context, checker) => {
  check = checker;
  await runChecks(context);
});

async function runChecks(context) {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  const scriptErrors = [];
  page.on('pageerror', (error) => scriptErrors.push(error.message));

  const loaded = await check('page loads over https:// with HTTP/2 (nextHopProtocol h2)', async () => {
    const response = await page.goto(pageUrl);
    if (!response || response.status() !== 200) {
      throw new Error(`GET ${pageUrl} answered ${response ? response.status() : 'nothing'}`);
    }
    const protocol = await page.evaluate(
      () => performance.getEntriesByType('navigation')[0]?.nextHopProtocol,
    );
    if (protocol !== 'h2') {
      throw new Error(`nextHopProtocol is ${JSON.stringify(protocol)}`);
    }
  });
  if (!loaded) {
    return;
  }
  // The page opens its own socket on load; this one is opened by the
  // check, so that it can send binary and read the bytes back.
  const opened = await check('wss:// to the same origin opens', () =>
    page.evaluate(
      (timeout) =>
        new Promise((resolve, reject) => {
          const url = new URL('/', location.href);
          url.protocol = 'wss:';
          const ws = new WebSocket(url);
          ws.binaryType = 'arraybuffer';
          window.h2ws = ws;
          window.h2received = [];
          ws.onmessage = (event) => window.h2received.push(event.data);
          const timer = setTimeout(() => reject(new Error('not open in time')), timeout);
          ws.onopen = () => {
            clearTimeout(timer);
            resolve();
          };
          ws.onclose = (event) => {
            clearTimeout(timer);
            reject(new Error(`closed ${event.code} before opening`));
          };
        }),
      STEP_TIMEOUT_MS,
    ),
  );
  if (!opened) {
    return;
  }
  await check('permessage-deflate negotiated (ws.extensions)', async () => {
    const extensions = await page.evaluate(() => window.h2ws.extensions);
    if (!/^permessage-deflate\b/.test(extensions)) {
      throw new Error(`ws.extensions reads ${JSON.stringify(extensions)}`);
    }
  });
  await check('text echoed', async () => {
    const text = 'héllo over HTTP/2 — 日本語 🎉🦀';
    await definePageHelper(page);
    const echoed = await page.evaluate(
      ([message, timeout]) => window.exchangeOne(message, timeout),
      [text, STEP_TIMEOUT_MS],
    );
    if (echoed !== text) {
      throw new Error(`echo reads ${JSON.stringify(echoed)}`);
    }
  });
  await check('1 MiB binary echoed byte for byte', async () => {
    const result = await page.evaluate(
      async (timeout) => {
        const data = new Uint8Array(1 << 20);
        let x = 0x12345678;
        for (let i = 0; i < data.length; i += 1) {
          x ^= x << 13;
          x ^= x >>> 17;
          x ^= x << 5;
          data[i] = x & 0xff;
        }
        const echo = await window.exchangeOne(data.buffer, timeout);
        if (!(echo instanceof ArrayBuffer)) {
          return `got a ${typeof echo}, not an ArrayBuffer`;
        }
        const back = new Uint8Array(echo);
        if (back.length !== data.length) {
          return `got ${back.length} bytes`;
        }
        for (let i = 0; i < data.length; i += 1) {
          if (back[i] !== data[i]) {
            return `byte ${i} differs`;
          }
        }
        return 'same';
      },
      STEP_TIMEOUT_MS,
    );
    if (result !== 'same') {
      throw new Error(result);
    }
  });
  await check('socket closes with 1000', () =>
    page.evaluate(
      (timeout) =>
        new Promise((resolve, reject) => {
          const ws = window.h2ws;
          const timer = setTimeout(() => reject(new Error('no close event in time')), timeout);
          ws.onclose = (event) => {
            clearTimeout(timer);
            if (event.code === 1000 && event.wasClean) {
              resolve();
            } else {
              reject(new Error(`closed ${event.code}, clean ${event.wasClean}`));
            }
          };
          ws.close(1000, 'done');
        }),
      STEP_TIMEOUT_MS,
    ),
  );
  await check(
    'ws-server counts the WebSockets as HTTP/2 (/metrics, fetched from the page)',
    async () => {
      const metrics = await page.evaluate(async () => (await fetch('/metrics')).text());
      const line = metrics
        .split('\n')
        .find((l) => l.startsWith('ws_server_connections_by_http_total{http="2"}'));
      const count = line ? Number(line.split(/\s+/)[1]) : NaN;
      // The page's own socket and the check's.
      if (!(count >= 2)) {
        throw new Error(`the http="2" total reads ${JSON.stringify(line)}`);
      }
      const http1 = metrics
        .split('\n')
        .find((l) => l.startsWith('ws_server_connections_by_http_total{http="1.1"}'));
      const count1 = http1 ? Number(http1.split(/\s+/)[1]) : NaN;
      if (count1 !== 0) {
        throw new Error(`a WebSocket went over HTTP/1.1: ${JSON.stringify(http1)}`);
      }
    },
  );
  await check('page raised no script error', async () => {
    if (scriptErrors.length) {
      throw new Error(scriptErrors.join(' | '));
    }
  });
}

/// Defines `window.exchangeOne(message, timeout)` in the page: sends one
/// message on the check's socket and resolves with the next one received.
async function definePageHelper(page) {
  await page.evaluate(() => {
    window.exchangeOne = (message, timeout) =>
      new Promise((resolve, reject) => {
        const ws = window.h2ws;
        const skip = window.h2received.length;
        const timer = setTimeout(() => reject(new Error('no echo in time')), timeout);
        const poll = () => {
          if (window.h2received.length > skip) {
            clearTimeout(timer);
            resolve(window.h2received[skip]);
          } else {
            setTimeout(poll, 10);
          }
        };
        ws.send(message);
        poll();
      });
  });
}
