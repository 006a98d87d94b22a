#!/usr/bin/env python3
"""An independent WebSocket peer for `cargo xtask interop`, built on the Python
`websockets` library (asyncio API).

    websockets_peer.py client ws://HOST:PORT/   checks a server, one line per
                                                check: `ok NAME` / `FAIL NAME: why`
    websockets_peer.py serve                    an echo server on a free loopback
                                                port; prints `listening on ws://...`

In `serve` mode, a connection to `/close/CODE` is closed at once by the server
with that code (reason "bye"), so the client's exit code for a peer's error
close can be checked. The server ends on SIGTERM, when its stdin reaches EOF
(its parent died), or after ten minutes at most.
"""

import asyncio
import random
import sys
import threading

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

CHECK_TIMEOUT = 30
BIG = 16 << 20  # the largest message ws-server accepts by default
MAX_SIZE = BIG + (1 << 20)
SERVE_LIFETIME = 600


async def text_echo(url):
    message = "Hello from Python websockets — héllo 日本語 🎉"
    async with connect(url, max_size=MAX_SIZE) as ws:
        await ws.send(message)
        echoed = await ws.recv()
    expect(isinstance(echoed, str), f"expected a text message, got {type(echoed).__name__}")
    expect(echoed == message, f"got {echoed!r}")


async def big_binary_echo(url, compression=None):
    # Random bytes do not compress: with permessage-deflate the frame on the
    # wire is larger than the message, which the server's limits must allow.
    payload = random.Random(6455).randbytes(BIG)
    async with connect(url, max_size=MAX_SIZE, compression=compression) as ws:
        await ws.send(payload)
        echoed = await ws.recv()
    expect(isinstance(echoed, bytes), f"expected a binary message, got {type(echoed).__name__}")
    expect(len(echoed) == len(payload), f"got {len(echoed)} bytes, sent {len(payload)}")
    expect(echoed == payload, "same length, different bytes")


async def deflate_text_echo(url):
    message = '{"event":"tick","values":[1,2,3],"note":"héllo"}' * 2000
    async with connect(url, max_size=MAX_SIZE, compression="deflate") as ws:
        names = [extension.name for extension in ws.protocol.extensions]
        expect(names == ["permessage-deflate"], f"negotiated extensions: {names}")
        for _ in range(3):
            await ws.send(message)
            echoed = await ws.recv()
            expect(echoed == message, f"got {len(echoed)} characters back, sent {len(message)}")


async def fragmented_echo(url):
    fragments = ["frag-one ", "frag-two — ü ", "frag-three 🦀"]

    async def each():
        for fragment in fragments:
            yield fragment

    async with connect(url, max_size=MAX_SIZE) as ws:
        await ws.send(each())
        echoed = await ws.recv()
    expect(echoed == "".join(fragments), f"got {echoed!r}")


async def ping_pong(url):
    async with connect(url, max_size=MAX_SIZE, ping_interval=None) as ws:
        pong = await ws.ping(b"xtask-ping")
        latency = await asyncio.wait_for(pong, 10)
        expect(latency >= 0, f"latency {latency}")
        # The connection still carries messages after the control frames.
        await ws.send("after ping")
        echoed = await ws.recv()
    expect(echoed == "after ping", f"got {echoed!r}")


async def close_code(url):
    async with connect(url, max_size=MAX_SIZE) as ws:
        await ws.close(4000, "bye")
        code, reason = ws.close_code, ws.close_reason
    expect(code == 4000, f"the server answered close 4000 with {code} {reason!r}")


CLIENT_CHECKS = [
    ("text echo", text_echo),
    ("16 MiB binary echo", big_binary_echo),
    (
        "16 MiB binary echo with permessage-deflate offered",
        lambda url: big_binary_echo(url, compression="deflate"),
    ),
    ("permessage-deflate negotiated, compressible text echoed", deflate_text_echo),
    ("fragmented message echo", fragmented_echo),
    ("ping answered with pong", ping_pong),
    ("close code 4000 echoed", close_code),
]


def expect(condition, reason):
    if not condition:
        raise AssertionError(reason)


async def run_checks(checks, *args):
    """Runs each (name, check) with `args`, printing an `ok`/`FAIL` line per
    check for xtask to relay; returns 1 if any failed."""
    failed = 0
    for name, check in checks:
        try:
            await asyncio.wait_for(check(*args), CHECK_TIMEOUT)
            print(f"ok {name}", flush=True)
        except asyncio.TimeoutError:
            failed += 1
            print(f"FAIL {name}: no answer within {CHECK_TIMEOUT} s", flush=True)
        except Exception as error:  # every failure is reported, none ends the run
            failed += 1
            reason = " ".join(f"{type(error).__name__}: {error}".split())
            print(f"FAIL {name}: {reason}", flush=True)
    return 1 if failed else 0


async def run_client(url):
    return await run_checks(CLIENT_CHECKS, url)


async def echo(ws):
    path = ws.request.path
    if path.startswith("/close/"):
        await ws.close(int(path.removeprefix("/close/")), "bye")
        return
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass  # a close with an error code is the peer's choice, not ours to log


async def run_server():
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def watch_stdin():
        sys.stdin.read()
        loop.call_soon_threadsafe(lambda: stop.done() or stop.set_result(None))

    threading.Thread(target=watch_stdin, daemon=True).start()
    async with serve(echo, "127.0.0.1", 0, max_size=MAX_SIZE) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening on ws://127.0.0.1:{port}", flush=True)
        try:
            await asyncio.wait_for(stop, SERVE_LIFETIME)
        except asyncio.TimeoutError:
            pass
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == "client":
        return asyncio.run(run_client(argv[2]))
    if len(argv) == 2 and argv[1] == "serve":
        return asyncio.run(run_server())
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
