"""Drives ws-core's examples with an independent peer: Python `websockets`.

usage: examples.py echo URL | broadcast URL CLIENTS | client PROGRAM
       | refusal URL | page URL

Exits 0 when the check passed; otherwise prints one line saying what went
wrong on stderr and exits 1.
"""

import asyncio
import os
import sys
import urllib.error
import urllib.request

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

TIMEOUT = 20


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


def deflate_negotiated(ws):
    return any(e.name == "permessage-deflate" for e in ws.protocol.extensions)


async def echo(url):
    """Text (compressible, so deflate is used), 1 MiB binary, a ping, a close."""
    async with connect(url, max_size=2 << 20, open_timeout=TIMEOUT) as ws:
        if not deflate_negotiated(ws):
            fail("permessage-deflate was offered and not negotiated")
        text = '{"event": "update", "values": [1, 2, 3], "ok": true}' * 100
        await ws.send(text)
        if await asyncio.wait_for(ws.recv(), TIMEOUT) != text:
            fail("the compressible text message came back different")
        data = os.urandom(1 << 20)
        await ws.send(data)
        if await asyncio.wait_for(ws.recv(), TIMEOUT) != data:
            fail("the 1 MiB binary message came back different")
        pong = await ws.ping(b"are you there?")
        await asyncio.wait_for(pong, TIMEOUT)
    if ws.close_code != 1000:
        fail(f"closing handshake ended with {ws.close_code}, not 1000")


async def broadcast(url, count):
    """`count` clients each send one message; each receives all of them."""
    clients = [await connect(url, open_timeout=TIMEOUT) for _ in range(count)]
    # A pong proves the server is reading that client, so it has joined the
    # room before anyone speaks.
    for ws in clients:
        await asyncio.wait_for(await ws.ping(), TIMEOUT)
    for index, ws in enumerate(clients):
        await ws.send(f"hello from {index}")
    expected = {f"hello from {index}" for index in range(count)}

    async def collect(ws):
        received = set()
        while len(received) < count:
            received.add(await ws.recv())
        return received

    results = await asyncio.wait_for(
        asyncio.gather(*(collect(ws) for ws in clients)), TIMEOUT
    )
    for index, received in enumerate(results):
        if received != expected:
            missing = len(expected - received)
            fail(f"client {index} missed {missing} of {count} messages")
    await asyncio.gather(*(ws.close() for ws in clients))


async def client(program):
    """Runs the client example against a Python echo server."""
    closes = []

    async def handler(ws):
        async for message in ws:
            await ws.send(message)
        closes.append(ws.close_code)

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            program,
            f"ws://127.0.0.1:{port}/",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT)
        # The server's handler ends once it has answered the close.
        for _ in range(100):
            if closes:
                break
            await asyncio.sleep(0.05)
    if process.returncode != 0:
        fail(f"exit status {process.returncode}: {stderr.decode(errors='replace').strip()}")
    if stdout.decode() != "one\ntwo\nthree\n":
        fail(f"printed {stdout.decode()!r}, expected the three replies")
    if closes != [1000]:
        fail(f"the server saw close codes {closes}, expected [1000]")


def http_get(url):
    """GET `url` as plain HTTP; returns (status, headers, body)."""
    url = url.replace("ws://", "http://", 1)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def refusal(url):
    """A plain GET to the WebSocket endpoint: 426 naming websocket."""
    status, headers, body = http_get(url)
    if status != 426:
        fail(f"a plain GET of {url} answered {status}, not 426")
    if (headers.get("Upgrade") or "").lower() != "websocket":
        fail(f"the 426 carries Upgrade: {headers.get('Upgrade')!r}, not websocket")
    if not body.startswith(b"handshake: "):
        fail(f"the 426 body does not say why: {body[:80]!r}")


def page(url):
    """The page at `url` is served as HTML beside the WebSocket."""
    status, headers, body = http_get(url)
    if status != 200 or "text/html" not in (headers.get("Content-Type") or ""):
        fail(f"GET {url} answered {status} {headers.get('Content-Type')!r}, not an HTML page")
    if b"new WebSocket" not in body:
        fail("the page does not open a WebSocket")


def main():
    mode, *args = sys.argv[1:]
    if mode == "echo":
        asyncio.run(echo(args[0]))
    elif mode == "broadcast":
        asyncio.run(broadcast(args[0], int(args[1])))
    elif mode == "client":
        asyncio.run(client(args[0]))
    elif mode == "refusal":
        refusal(args[0])
    elif mode == "page":
        page(args[0])
    else:
        fail(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
