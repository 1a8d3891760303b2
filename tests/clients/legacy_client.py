"""The official Python SDK's legacy HTTP+SSE client (`sse_client`, protocol 2024-11-05) on a
gateway's `/S/sse`: initialize, list the tools, call a granted one and a refused one. Prints one
JSON object with what the client saw, including the endpoint the gateway named.

usage: legacy_client.py URL TOKEN
"""

import asyncio
import json
import sys

from probe import exercise

from mcp import ClientSession
from mcp.client.sse import sse_client


async def main(url: str, token: str) -> None:
    seen = {}
    async with sse_client(
        url,
        headers={"Authorization": f"Bearer {token}"},
        on_session_created=lambda sid: seen.setdefault("session", sid),
    ) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            seen["protocol"] = init.protocol_version if hasattr(init, "protocol_version") else init.protocolVersion
            await exercise(session, seen)
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:3]))
