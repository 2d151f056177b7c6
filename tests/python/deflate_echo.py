"""Python `websockets` peers for upgate's permessage-deflate test.

`deflate_echo.py server`: an echo origin that negotiates permessage-deflate;
prints its port, serves until stdin closes. The text message `extensions?` is
answered with the extensions this side negotiated.

`deflate_echo.py client URL`: connects with compression, checks both sides
negotiated permessage-deflate, round-trips compressible text and binary, prints
`ok`. Exits non-zero on any failure. Needs `pip install websockets` (>= 13).
"""

import asyncio
import sys

import websockets  # noqa: F401  (fail loudly when missing)
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve


def names(ws):
    return ",".join(e.name for e in ws.protocol.extensions)


async def handler(ws):
    async for msg in ws:
        if msg == "extensions?":
            await ws.send(names(ws))
        else:
            await ws.send(msg)


async def server():
    async with serve(handler, "127.0.0.1", 0, compression="deflate") as srv:
        port = srv.sockets[0].getsockname()[1]
        print(port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def client(url):
    async with connect(url, compression="deflate", open_timeout=5, close_timeout=2) as ws:
        offered = ws.request.headers.get("Sec-WebSocket-Extensions", "")
        answered = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert "permessage-deflate" in offered, offered
        assert answered.startswith("permessage-deflate"), answered
        assert names(ws) == "permessage-deflate", names(ws)
        await ws.send("extensions?")
        origin = await asyncio.wait_for(ws.recv(), 5)
        assert origin == "permessage-deflate", origin
        text = "upgate compresses nothing itself; " * 4000
        await ws.send(text)
        assert await asyncio.wait_for(ws.recv(), 5) == text
        data = bytes(range(256)) * 512
        await ws.send(data)
        assert await asyncio.wait_for(ws.recv(), 5) == data
        print("answered:", answered)
    print("ok")


def main():
    if sys.argv[1:2] == ["server"]:
        asyncio.run(server())
    elif sys.argv[1:2] == ["client"] and len(sys.argv) == 3:
        asyncio.run(asyncio.wait_for(client(sys.argv[2]), 15))
    else:
        sys.exit("usage: deflate_echo.py server | client URL")


if __name__ == "__main__":
    main()
