#!/usr/bin/env python3
"""The Python `websockets` client against a `wss://` server, for
`cargo xtask interop`: one line per check, `ok NAME` or `FAIL NAME: why`.

    websockets_tls_client.py wss://HOST:PORT/ CA_PEM [PROXY_URL]

CA_PEM is the only CA trusted. With PROXY_URL (http://[user:pass@]host:port)
every connection goes through that proxy, else none is used whatever the
environment says.
"""

import asyncio
import random
import ssl
import sys

from websockets.asyncio.client import connect

# The sibling script, found because Python puts a script's own folder first
# on the import path.
from websockets_peer import run_checks

MAX_SIZE = 4 << 20


def expect(condition, reason):
    if not condition:
        raise AssertionError(reason)


async def text_echo(url, context, proxy):
    message = "Hello over TLS — héllo 日本語 🔒"
    async with connect(url, ssl=context, proxy=proxy, max_size=MAX_SIZE) as ws:
        await ws.send(message)
        echoed = await ws.recv()
        version = ws.transport.get_extra_info("ssl_object").version()
    expect(echoed == message, f"got {echoed!r}")
    expect(version in ("TLSv1.2", "TLSv1.3"), f"negotiated {version}")


async def binary_echo(url, context, proxy):
    payload = random.Random(6455).randbytes(1 << 20)
    async with connect(url, ssl=context, proxy=proxy, max_size=MAX_SIZE) as ws:
        await ws.send(payload)
        echoed = await ws.recv()
    expect(echoed == payload, f"got {len(echoed)} bytes back, sent {len(payload)}")


async def clean_close(url, context, proxy):
    async with connect(url, ssl=context, proxy=proxy) as ws:
        await ws.close(1000, "done")
        code = ws.close_code
    expect(code == 1000, f"the server answered close 1000 with {code}")


async def untrusted_refused(url, _context, proxy):
    # Only the system's CAs: the test CA is not among them.
    try:
        async with connect(url, ssl=ssl.create_default_context(), proxy=proxy):
            pass
    except ssl.SSLCertVerificationError:
        return
    raise AssertionError("the connection succeeded without the test CA")


CHECKS = [
    ("text echo over wss (TLS 1.2 or 1.3)", text_echo),
    ("1 MiB binary echo over wss", binary_echo),
    ("close 1000 answered over wss", clean_close),
    ("certificate refused without the test CA", untrusted_refused),
]


async def run(url, cafile, proxy):
    context = ssl.create_default_context(cafile=cafile)
    # Through a proxy, websockets 17.4 logs a spurious traceback when the
    # TLS handshake fails; the refusal is checked on the direct route only.
    checks = CHECKS if proxy is None else CHECKS[:-1]
    return await run_checks(checks, url, context, proxy)


def main(argv):
    if len(argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    proxy = argv[3] if len(argv) == 4 else None
    return asyncio.run(run(argv[1], argv[2], proxy))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
