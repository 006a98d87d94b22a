// Node's `ws` library as a client of ws-server with permessage-deflate:
//   node ws_peer.mjs URL NPM_PREFIX
// ws-server compresses each message on its own (libdeflate, ending with a
// block whose BFINAL bit is set, RFC 7692 §7.2.3.3): this checks that `ws`
// inflates what ws-server sends, and that ws-server inflates what `ws` sends.

import { createRequire } from 'node:module';
import path from 'node:path';

import { reporter, STEP_TIMEOUT_MS } from './checks.mjs';

const [url, nodePrefix] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(nodePrefix), 'package.json'));
const WebSocket = require('ws');

const TOTAL_MS = 60_000;
const { report, check, failures } = reporter();
const watchdog = setTimeout(() => {
  report('node ws checks finish in time', `still running after ${TOTAL_MS / 1000} s`);
  process.exit(1);
}, TOTAL_MS);

/// JSON-like text of about `size` bytes, which deflate shrinks several-fold.
function json(size) {
  const records = [];
  let length = 2;
  for (let id = 0; length < size; id += 1) {
    const record = JSON.stringify({ id, user: `user-${id % 97}`, tags: ['alpha', 'beta'], score: (id * 7) % 100 });
    records.push(record);
    length += record.length + 1;
  }
  return `[${records.join(',')}]`;
}

/// Resolves with the next message, or rejects after STEP_TIMEOUT_MS.
function nextMessage(ws) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no message in time')), STEP_TIMEOUT_MS);
    ws.once('message', (data, isBinary) => {
      clearTimeout(timer);
      resolve({ data, isBinary });
    });
  });
}

const opened = await check('node ws client connects with permessage-deflate offered', () =>
  new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { perMessageDeflate: true });
    let response;
    socket.once('upgrade', (res) => {
      response = res;
    });
    socket.once('open', () => resolve({ socket, response }));
    socket.once('error', reject);
  }));

if (opened) {
  const { socket: ws, response } = opened;
  // The TCP socket under the WebSocket, for the bytes that came in.
  const tcp = response.socket;
  await check('permessage-deflate negotiated, without server context takeover', () => {
    const extensions = response.headers['sec-websocket-extensions'] ?? '';
    if (!extensions.includes('permessage-deflate') || !extensions.includes('server_no_context_takeover')) {
      throw new Error(`Sec-WebSocket-Extensions: ${extensions}`);
    }
  });
  for (const [label, size] of [['200 B', 200], ['16 KiB', 16 * 1024], ['1 MiB', 1024 * 1024]]) {
    const text = json(size);
    await check(`compressible ${label} text echoed intact`, async () => {
      const before = tcp.bytesRead;
      const reply = nextMessage(ws);
      ws.send(text);
      const { data, isBinary } = await reply;
      if (isBinary || data.toString() !== text) {
        throw new Error(`echo differs (${data.length} bytes, binary ${isBinary})`);
      }
      const wire = tcp.bytesRead - before;
      if (size >= 16 * 1024 && wire * 2 > text.length) {
        throw new Error(`${wire} bytes on the wire for ${text.length}: not compressed`);
      }
    });
  }
  await check('five messages in a row echoed in order', async () => {
    const texts = [1, 2, 3, 4, 5].map((n) => json(300 * n));
    const replies = [];
    const done = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${replies.length} of 5 echoes in time`)), STEP_TIMEOUT_MS);
      ws.on('message', (data) => {
        replies.push(data.toString());
        if (replies.length === texts.length) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    texts.forEach((text) => ws.send(text));
    await done;
    ws.removeAllListeners('message');
    if (replies.some((reply, i) => reply !== texts[i])) {
      throw new Error('an echo differs or came out of order');
    }
  });
  await check('close 1000 answered with 1000', () =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no close in time')), STEP_TIMEOUT_MS);
      ws.once('close', (code) => {
        clearTimeout(timer);
        code === 1000 ? resolve() : reject(new Error(`closed with ${code}`));
      });
      ws.close(1000);
    }));
}

clearTimeout(watchdog);
process.exit(failures() ? 1 : 0);
