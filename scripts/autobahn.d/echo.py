#!/usr/bin/env python3
"""WebSocket echo server for scripts/autobahn: the server under test behind upgate.

    echo.py PORT        # 0 picks a free port; prints "listening PORT" once bound

Python `websockets` (>= 13, the asyncio implementation) on 127.0.0.1 with its defaults,
permessage-deflate included, except: messages up to 64 MiB (the 9.* cases send 16 MiB), no
practical limit on the fragments of one message (9.3.1 and 9.4.1 send 65536), and no pings
of its own (so that only upgate's keepalive pings tell the two runs apart). Echoes every
message, text as text and binary as binary. Exits on SIGTERM/SIGINT.
"""
import asyncio
import os
import signal
import sys

# websockets (>= 15) fails a message of more than 4096 fragments with 1009; 9.3.1 and
# 9.4.1 send 4 MiB in 64-byte fragments (65536 of them). Read at import time.
os.environ.setdefault("WEBSOCKETS_MAX_FRAGMENTS", str(2**20))

from websockets.asyncio.server import serve


async def echo(ws):
    try:
        async for message in ws:
            await ws.send(message)
    except Exception:
        # a protocol error the client provoked on purpose; websockets has already
        # failed the connection with the right close code
        pass


async def main(port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(
        echo,
        "127.0.0.1",
        port,
        max_size=64 * 2**20,
        max_queue=None,
        ping_interval=None,
        close_timeout=10,
    ) as server:
        bound = server.sockets[0].getsockname()[1]
        print(f"listening {bound}", flush=True)
        await stop


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: echo.py PORT")
    asyncio.run(main(int(sys.argv[1])))
