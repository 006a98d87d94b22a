// WebSockets over HTTP/2 (RFC 8441) with Node's own `http2` module, an
// implementation independent of ws-core, for `cargo xtask interop`. The
// WebSocket frames are built, masked and parsed here by hand.
//
//   node h2_peer.mjs client URL [CA_FILE]
//       One HTTP/2 connection to URL (http:// prior knowledge, or https://
//       with ALPN h2, trusting CA_FILE): waits for the server's
//       SETTINGS_ENABLE_CONNECT_PROTOCOL, opens 10 extended-CONNECT
//       WebSocket streams on it, echoes a masked text frame on each and
//       closes each with 1000. Prints `ok NAME` / `FAIL NAME: why` lines and
//       exits non-zero on any failure.
//
//   node h2_peer.mjs serve
//       A plaintext HTTP/2 server (prior knowledge) on a free loopback port
//       with enableConnectProtocol, answering an extended CONNECT for
//       `websocket` with 200 and echoing WebSocket frames (client frames must
//       be masked; server frames are not). Prints `listening on
//       ws://127.0.0.1:PORT` once ready, logs each stream on stderr, and ends
//       when its stdin closes or on SIGTERM.

import http2 from 'node:http2';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { reporter } from './checks.mjs';

const STREAMS = 10;
const TOTAL_TIMEOUT_MS = 30_000;
const STEP_TIMEOUT_MS = 10_000;
/// Frames larger than this are refused (the stream is reset).
const MAX_PAYLOAD = 16 * 1024 * 1024;

const OP_CONT = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

/// One frame: FIN set, `opcode`, `payload`, masked with a fresh key when
/// `masked`.
function encodeFrame(opcode, payload, masked, fin = true) {
  const length = payload.length;
  const extended = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const header = Buffer.alloc(2 + extended + (masked ? 4 : 0));
  header[0] = (fin ? 0x80 : 0) | opcode;
  if (extended === 0) {
    header[1] = length;
  } else if (extended === 2) {
    header[1] = 126;
    header.writeUInt16BE(length, 2);
  } else {
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(length), 2);
  }
  if (!masked) {
    return Buffer.concat([header, payload]);
  }
  header[1] |= 0x80;
  const key = randomBytes(4);
  key.copy(header, 2 + extended);
  const body = Buffer.alloc(length);
  for (let i = 0; i < length; i += 1) {
    body[i] = payload[i] ^ key[i & 3];
  }
  return Buffer.concat([header, body]);
}

/// Parses frames out of a stream's DATA, whole frames only; `onFrame` gets
/// `{ fin, rsv, opcode, masked, payload }` (unmasked). Throws on a frame
/// over MAX_PAYLOAD.
class FrameReader {
  constructor(onFrame) {
    this.buffer = Buffer.alloc(0);
    this.onFrame = onFrame;
  }

  push(chunk) {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const frame = this.next();
      if (!frame) {
        return;
      }
      this.onFrame(frame);
    }
  }

  next() {
    const b = this.buffer;
    if (b.length < 2) {
      return null;
    }
    const fin = (b[0] & 0x80) !== 0;
    const rsv = (b[0] >> 4) & 0x7;
    const opcode = b[0] & 0x0f;
    const masked = (b[1] & 0x80) !== 0;
    let length = b[1] & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (b.length < 4) {
        return null;
      }
      length = b.readUInt16BE(2);
      offset = 4;
    } else if (length === 127) {
      if (b.length < 10) {
        return null;
      }
      const long = b.readBigUInt64BE(2);
      if (long > BigInt(MAX_PAYLOAD)) {
        throw new Error(`a frame of ${long} bytes is over the ${MAX_PAYLOAD}-byte limit`);
      }
      length = Number(long);
      offset = 10;
    }
    if (length > MAX_PAYLOAD) {
      throw new Error(`a frame of ${length} bytes is over the ${MAX_PAYLOAD}-byte limit`);
    }
    const keyLength = masked ? 4 : 0;
    if (b.length < offset + keyLength + length) {
      return null;
    }
    const key = b.subarray(offset, offset + keyLength);
    const payload = Buffer.from(b.subarray(offset + keyLength, offset + keyLength + length));
    if (masked) {
      for (let i = 0; i < length; i += 1) {
        payload[i] ^= key[i & 3];
      }
    }
    this.buffer = b.subarray(offset + keyLength + length);
    return { fin, rsv, opcode, masked, payload };
  }
}

const closePayload = (code, reason = '') => {
  const payload = Buffer.alloc(2 + Buffer.byteLength(reason));
  payload.writeUInt16BE(code, 0);
  payload.write(reason, 2);
  return payload;
};

const [mode, ...rest] = process.argv.slice(2);
if (mode === 'client' && rest.length >= 1) {
  await client(rest[0], rest[1]);
} else if (mode === 'serve') {
  serve();
} else {
  console.error('usage: node h2_peer.mjs client URL [CA_FILE] | node h2_peer.mjs serve');
  process.exit(2);
}

// ---------------------------------------------------------------- client

async function client(url, caFile) {
  const { report, check, failures } = reporter();
  const watchdog = setTimeout(() => {
    report('node http2 client finishes in time', `still running after ${TOTAL_TIMEOUT_MS / 1000} s`);
    process.exit(1);
  }, TOTAL_TIMEOUT_MS);

  const target = new URL(url);
  const options = {};
  if (target.protocol === 'https:') {
    options.ca = readFileSync(caFile);
    options.ALPNProtocols = ['h2'];
  }
  const session = http2.connect(target.origin, options);
  session.on('error', () => {});
  try {
    const settings = await check(
      "the server's SETTINGS carry ENABLE_CONNECT_PROTOCOL = 1",
      () =>
        within('the server SETTINGS', (resolve, reject) => {
          const seen = (remote) => {
            if (remote.enableConnectProtocol) {
              resolve(remote);
            } else {
              reject(new Error(`SETTINGS without enableConnectProtocol: ${JSON.stringify(remote)}`));
            }
          };
          if (session.remoteSettings && session.remoteSettings.enableConnectProtocol) {
            resolve(session.remoteSettings);
          } else {
            session.once('remoteSettings', seen);
          }
          session.once('error', reject);
        }),
    );
    if (!settings) {
      return;
    }
    if (target.protocol === 'https:') {
      await check('TLS ALPN chose h2', async () => {
        if (session.alpnProtocol !== 'h2') {
          throw new Error(`ALPN protocol ${JSON.stringify(session.alpnProtocol)}`);
        }
      });
    }
    const sockets = [];
    await check(`${STREAMS} extended CONNECT streams answered 200 on one connection`, async () => {
      const opened = await Promise.allSettled(
        Array.from({ length: STREAMS }, () => openWebSocket(session, target)),
      );
      const refused = opened.filter((o) => o.status === 'rejected');
      for (const o of opened) {
        if (o.status === 'fulfilled') {
          sockets.push(o.value);
        }
      }
      if (refused.length) {
        throw new Error(`${refused.length} of ${STREAMS} refused: ${refused[0].reason.message}`);
      }
      const ids = new Set(sockets.map((s) => s.stream.id));
      if (ids.size !== STREAMS) {
        throw new Error(`stream ids ${[...ids].join(',')}`);
      }
    });
    if (sockets.length === 0) {
      return;
    }
    await check(`a masked text frame echoed on each of ${sockets.length} streams`, async () => {
      await Promise.all(
        sockets.map(async (socket, i) => {
          const text = `stream ${i}: héllo over h2 🦀`;
          socket.stream.write(encodeFrame(OP_TEXT, Buffer.from(text), true));
          const frame = await socket.nextFrame();
          if (frame.masked) {
            throw new Error(`stream ${socket.stream.id}: the server's frame is masked`);
          }
          if (frame.opcode !== OP_TEXT || !frame.fin || frame.payload.toString() !== text) {
            throw new Error(
              `stream ${socket.stream.id}: got opcode ${frame.opcode} ${JSON.stringify(frame.payload.toString())}`,
            );
          }
        }),
      );
    });
    await check(
      `close 1000 answered with 1000 and the stream ended, on each of ${sockets.length} streams`,
      async () => {
        await Promise.all(
          sockets.map(async (socket) => {
            socket.stream.write(encodeFrame(OP_CLOSE, closePayload(1000, 'bye'), true));
            const frame = await socket.nextFrame();
            if (frame.opcode !== OP_CLOSE || frame.payload.length < 2) {
              throw new Error(`stream ${socket.stream.id}: got opcode ${frame.opcode}, not a close`);
            }
            const code = frame.payload.readUInt16BE(0);
            if (code !== 1000) {
              throw new Error(`stream ${socket.stream.id}: close code ${code}`);
            }
            socket.stream.end();
            await socket.ended;
          }),
        );
      },
    );
    await check(
      'the same connection still serves GET /healthz, counting the HTTP/2 WebSockets',
      () =>
        within('GET /healthz', (resolve, reject) => {
          const request = session.request({ ':method': 'GET', ':path': '/healthz' });
          request.on('response', (headers) => {
            const total = Number(headers['x-websockets-total-http2']);
            if (headers[':status'] !== 200 || !(total >= STREAMS)) {
              reject(
                new Error(
                  `status ${headers[':status']}, X-WebSockets-Total-Http2 ${headers['x-websockets-total-http2']}`,
                ),
              );
            } else {
              resolve();
            }
          });
          request.on('error', reject);
          request.resume();
          request.end();
        }),
    );
  } finally {
    clearTimeout(watchdog);
    session.close();
    // Also on an early return, when a check that the rest needs failed.
    process.exit(failures() ? 1 : 0);
  }
}

/// Opens one WebSocket stream; resolves with `{ stream, nextFrame, ended }`
/// once the server answered 200.
function openWebSocket(session, target) {
  return within('an extended CONNECT answer', (resolve, reject) => {
    const stream = session.request(
      {
        ':method': 'CONNECT',
        ':protocol': 'websocket',
        ':scheme': target.protocol === 'https:' ? 'https' : 'http',
        ':authority': target.host,
        ':path': target.pathname,
        'sec-websocket-version': '13',
      },
      { endStream: false },
    );
    const frames = [];
    const waiting = [];
    let failure;
    const fail = (error) => {
      failure = failure ?? error;
      for (const w of waiting.splice(0)) {
        w.reject(failure);
      }
    };
    const reader = new FrameReader((frame) => {
      const w = waiting.shift();
      if (w) {
        w.resolve(frame);
      } else {
        frames.push(frame);
      }
    });
    stream.on('data', (chunk) => {
      try {
        reader.push(chunk);
      } catch (error) {
        fail(error);
        stream.close(http2.constants.NGHTTP2_CANCEL);
      }
    });
    const ended = new Promise((done, broke) => {
      stream.on('end', done);
      stream.on('error', broke);
    });
    ended.catch(() => {});
    stream.on('error', (error) => {
      fail(error);
      reject(error);
    });
    stream.on('close', () => fail(new Error(`stream ${stream.id} closed (code ${stream.rstCode})`)));
    const nextFrame = () => {
      const frame = frames.shift();
      if (frame) {
        return Promise.resolve(frame);
      }
      if (failure) {
        return Promise.reject(failure);
      }
      return within(`a frame on stream ${stream.id}`, (ok, ko) => waiting.push({ resolve: ok, reject: ko }));
    };
    stream.on('response', (headers) => {
      if (headers[':status'] === 200) {
        resolve({ stream, nextFrame, ended });
      } else {
        reject(new Error(`the server answered ${headers[':status']}`));
      }
    });
  });
}

/// A promise given `STEP_TIMEOUT_MS` to settle.
function within(what, body) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no ${what} within ${STEP_TIMEOUT_MS / 1000} s`)),
      STEP_TIMEOUT_MS,
    );
    body(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

// ---------------------------------------------------------------- server

function serve() {
  const server = http2.createServer({ settings: { enableConnectProtocol: true } });
  server.on('sessionError', () => {});
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    const method = headers[':method'];
    const protocol = headers[':protocol'];
    if (method !== 'CONNECT' || protocol !== 'websocket') {
      stream.respond({ ':status': method === 'GET' ? 404 : 405 });
      stream.end(`not a WebSocket stream: ${method} ${headers[':path']}\n`);
      return;
    }
    if (headers['sec-websocket-version'] !== '13') {
      stream.respond({ ':status': 400, 'sec-websocket-version': '13' });
      stream.end();
      return;
    }
    console.error(`stream ${stream.id}: WebSocket opened at ${headers[':path']}`);
    stream.respond({ ':status': 200 });
    let closing = false;
    const reader = new FrameReader((frame) => {
      if (closing) {
        return;
      }
      if (!frame.masked || frame.rsv !== 0) {
        closing = true;
        stream.end(encodeFrame(OP_CLOSE, closePayload(1002, 'protocol error'), false));
        return;
      }
      switch (frame.opcode) {
        case OP_TEXT:
        case OP_BINARY:
        case OP_CONT:
          stream.write(encodeFrame(frame.opcode, frame.payload, false, frame.fin));
          break;
        case OP_PING:
          stream.write(encodeFrame(OP_PONG, frame.payload, false));
          break;
        case OP_PONG:
          break;
        case OP_CLOSE: {
          closing = true;
          const code = frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 'none';
          console.error(`stream ${stream.id}: close ${code}; echoed, stream ended`);
          stream.end(encodeFrame(OP_CLOSE, frame.payload.subarray(0, 2), false));
          break;
        }
        default:
          closing = true;
          stream.end(encodeFrame(OP_CLOSE, closePayload(1002, 'unknown opcode'), false));
      }
    });
    stream.on('data', (chunk) => {
      try {
        reader.push(chunk);
      } catch {
        stream.close(http2.constants.NGHTTP2_CANCEL);
      }
    });
  });
  server.listen(0, '127.0.0.1', () => {
    console.log(`listening on ws://127.0.0.1:${server.address().port}`);
  });
  const stop = () => {
    server.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.stdin.on('end', stop);
  process.stdin.resume();
}
