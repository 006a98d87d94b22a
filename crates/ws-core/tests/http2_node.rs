//! Interop with an independent HTTP/2 implementation, Node's `http2`
//! module: Node as the client opening ten WebSocket streams on one
//! connection to ws-core's server, and Node as the server (with
//! `enableConnectProtocol`) for ws-core's client. Node speaks the frames
//! through a few lines of JavaScript, so that nothing but HTTP/2 comes
//! from a library. Skipped, with the reason printed, when `node` is absent.

// Test helpers may panic: that is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use ws_core::deflate::DeflateConfig;
use ws_core::handshake::ClientRequest;
use ws_core::http2::{Client, Settings, serve};
use ws_core::{CloseCode, Config, Event, Message};

const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// WebSocket framing for the scripts: a client frame (masked) and a
/// parser that fails on frames masked the wrong way.
const FRAMES_JS: &str = r#"
const http2 = require('node:http2');
const crypto = require('node:crypto');
function frame(opcode, payload, masked) {
  const len = payload.length;
  const bit = masked ? 0x80 : 0;
  let header;
  if (len < 126) { header = Buffer.from([0x80 | opcode, bit | len]); }
  else if (len < 65536) { header = Buffer.alloc(4); header[0] = 0x80 | opcode; header[1] = bit | 126; header.writeUInt16BE(len, 2); }
  else { header = Buffer.alloc(10); header[0] = 0x80 | opcode; header[1] = bit | 127; header.writeBigUInt64BE(BigInt(len), 2); }
  if (!masked) return Buffer.concat([header, payload]);
  const mask = crypto.randomBytes(4);
  const body = Buffer.alloc(len);
  for (let i = 0; i < len; i++) body[i] = payload[i] ^ mask[i & 3];
  return Buffer.concat([header, mask, body]);
}
function parser(expectMasked, onFrame, onError) {
  let buf = Buffer.alloc(0);
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < 2) return;
      const b0 = buf[0], b1 = buf[1];
      const masked = (b1 & 0x80) !== 0;
      if (masked !== expectMasked) return onError(new Error('frame masked: ' + masked));
      let len = b1 & 0x7f, off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
      const maskOff = off; if (masked) off += 4;
      if (buf.length < off + len) return;
      let payload = Buffer.from(buf.subarray(off, off + len));
      if (masked) for (let i = 0; i < len; i++) payload[i] ^= buf[maskOff + (i & 3)];
      buf = buf.subarray(off + len);
      onFrame(b0 & 0x0f, payload);
    }
  };
}
"#;

/// Ten WebSocket streams on one connection: each sends a text and a
/// ~100 KB binary, checks the echoes, closes with 1000 and expects the
/// close echo and the end of the stream.
const CLIENT_JS: &str = r#"
const port = process.argv[process.argv.length - 1];
const client = http2.connect(`http://127.0.0.1:${port}`);
client.on('error', (e) => { console.error('session error', e); process.exit(2); });
let started = false;
client.on('remoteSettings', (settings) => {
  if (started) return;
  started = true;
  if (!settings.enableConnectProtocol) { console.error('no enableConnectProtocol'); process.exit(3); }
  Promise.all([...Array(10).keys()].map(one)).then(() => {
    console.log('10 streams echoed');
    client.close();
  }, (e) => { console.error(e); process.exit(1); });
});
function one(i) {
  return new Promise((resolve, reject) => {
    const req = client.request({
      ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'http',
      ':path': `/node/${i}`, ':authority': `127.0.0.1:${port}`,
      'sec-websocket-version': '13',
    });
    const expected = [[1, Buffer.from(`node stream ${i}`)], [2, crypto.randomBytes(100000 + i)]];
    let step = 0;
    req.on('response', (headers) => {
      if (headers[':status'] !== 200) return reject(new Error('status ' + headers[':status']));
      for (const [op, payload] of expected) req.write(frame(op, payload, true));
    });
    req.on('data', parser(false, (op, payload) => {
      if (step < 2) {
        const [eop, ep] = expected[step];
        if (op !== eop || !payload.equals(ep)) return reject(new Error(`stream ${i}: wrong echo`));
        step++;
        if (step === 2) req.write(frame(8, Buffer.from([0x03, 0xe8]), true));
      } else if (op === 8) {
        if (payload.readUInt16BE(0) !== 1000) return reject(new Error('close code'));
        step++;
        req.end();
      }
    }, reject));
    req.on('end', () => step === 3 ? resolve() : reject(new Error(`stream ${i} ended at step ${step}`)));
    req.on('error', reject);
  });
}
"#;

/// An h2c server with `enableConnectProtocol` whose WebSocket streams echo
/// (unmasked frames back), answer a close with the same code and end the
/// stream; it counts the streams and prints `listening PORT`.
const SERVER_JS: &str = r#"
const server = http2.createServer({ settings: { enableConnectProtocol: true } });
server.on('stream', (stream, headers) => {
  if (headers[':method'] !== 'CONNECT' || headers[':protocol'] !== 'websocket'
      || headers['sec-websocket-version'] !== '13') {
    stream.respond({ ':status': 400 }); stream.end('bad request\n'); return;
  }
  const reply = { ':status': 200 };
  if (headers['sec-websocket-protocol']) reply['sec-websocket-protocol'] = headers['sec-websocket-protocol'].split(',')[0].trim();
  stream.respond(reply);
  stream.on('data', parser(true, (op, payload) => {
    if (op === 8) { stream.end(frame(8, payload, false)); return; }
    stream.write(frame(op, payload, false));
  }, (e) => { console.error(e); stream.close(http2.constants.NGHTTP2_PROTOCOL_ERROR); }));
  stream.on('error', () => {});
});
server.listen(0, '127.0.0.1', () => console.log('listening ' + server.address().port));
"#;

/// `node` with `script` and `args`, or `None` (and why) when there is no
/// `node` to run.
fn node(script: &str, args: &[&str]) -> Option<Child> {
    match Command::new("node").arg("--version").output() {
        Ok(output) if output.status.success() => {}
        Ok(_) | Err(_) => {
            eprintln!("skipped: `node` is not available (Node 18+ with http2 is needed)");
            return None;
        }
    }
    let child = Command::new("node")
        .arg("-e")
        .arg(format!("{FRAMES_JS}\n{script}"))
        .arg("--")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    Some(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_opens_ten_websocket_streams_on_one_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let Some(child) = node(CLIENT_JS, &[&port]) else {
        return;
    };
    let (accepted, served) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut streams = 0u32;
        let result = serve(tcp, Config::default(), Settings::default(), |request| {
            streams += 1;
            let mut socket = request.accept().unwrap();
            tokio::spawn(async move {
                while let Ok(Some(event)) = socket.recv().await {
                    if let Some(message) = event.into_message() {
                        socket.send(message).await.unwrap();
                    }
                }
            });
        })
        .await;
        let _ = accepted.send((result.map_err(|e| e.to_string()), streams));
    });
    let output = tokio::time::timeout(
        TIMEOUT,
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await
    .expect("node finishes")
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "node: {stdout}\n{stderr}");
    assert_eq!(stdout.trim(), "10 streams echoed", "{stderr}");
    let (result, streams) = tokio::time::timeout(TIMEOUT, served)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result, Ok(()));
    assert_eq!(streams, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_core_client_echoes_through_a_node_server() {
    let Some(mut child) = node(SERVER_JS, &[]) else {
        return;
    };
    let stdout = child.stdout.take().unwrap();
    let port = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line.trim().strip_prefix("listening ").unwrap().to_owned()
    })
    .await
    .unwrap();
    let tcp = TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    let (client, connection) =
        tokio::time::timeout(TIMEOUT, Client::handshake(tcp, Settings::default()))
            .await
            .unwrap()
            .unwrap();
    tokio::spawn(connection);
    assert!(client.extended_connect_enabled());

    let mut tasks = Vec::new();
    for index in 0..3u8 {
        let client = client.clone();
        let port = port.clone();
        tasks.push(tokio::spawn(async move {
            let request = ClientRequest::from_parts(false, "127.0.0.1", port.parse().unwrap(), "/")
                .unwrap()
                .protocol("chat");
            // Node's server declines the deflate offer: it names no extension.
            let config = Config::default().deflate(Some(DeflateConfig::default()));
            let (mut socket, negotiated) = client.connect(&request, config).await.unwrap();
            assert_eq!(negotiated.protocol.as_deref(), Some("chat"));
            assert_eq!(negotiated.extensions, None);
            let text = format!("through node {index}");
            socket.send_text(&text).await.unwrap();
            let big = Bytes::from(vec![index; 1024 * 1024]);
            socket.send(Message::Binary(big.clone())).await.unwrap();
            let mut events = Vec::new();
            while events.len() < 2 {
                events.push(socket.recv().await.unwrap().unwrap());
            }
            assert_eq!(events[0], Event::Text(text.into()));
            assert_eq!(events[1], Event::Binary(big));
            socket.close(CloseCode::NORMAL, "").await.unwrap();
            let mut last = None;
            while let Some(event) = socket.recv().await.unwrap() {
                last = Some(event);
            }
            assert!(
                matches!(last, Some(Event::Close(Some(frame))) if frame.code == CloseCode::NORMAL)
            );
            assert!(socket.get_ref().closing_handshake_done());
        }));
    }
    for task in tasks {
        tokio::time::timeout(TIMEOUT, task).await.unwrap().unwrap();
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
