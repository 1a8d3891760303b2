"""The official Python SDK's `Client` over Streamable HTTP in a given mode ("2026-07-28", "auto" or
"legacy") with a bearer token: lists the tools, calls a granted one and a refused one. Prints one
JSON object with what the client saw.

usage: modern_client.py URL TOKEN MODE
"""

import asyncio
import json
import sys

from probe import exercise

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


async def main(url: str, token: str, mode: str) -> None:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    seen = {}
    async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
        seen["protocol"] = client.protocol_version
        await exercise(client, seen)
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
