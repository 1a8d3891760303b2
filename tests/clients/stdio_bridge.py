"""The official Python SDK's stdio client launching `mcp-gateway bridge`: list the tools, call a
granted one and a refused one. Prints one JSON object with what the client saw.

usage: stdio_bridge.py BIN ENDPOINT BRIDGE_ARG... (e.g. --token-command CMD, or --issuer-url URL --roles r)
With BRIDGE_CLIENT_MODE set ("2026-07-28", "auto" or "legacy"), the SDK's `Client` in that mode
drives the bridge; otherwise its `ClientSession` (the initialize handshake).
"""

import asyncio
import json
import os
import sys

from probe import exercise

from mcp import Client, ClientSession, StdioServerParameters
from mcp.client.stdio import get_default_environment, stdio_client


async def main(binary: str, endpoint: str, *bridge_args: str) -> None:
    env = get_default_environment()
    env.update({k: v for k, v in os.environ.items() if k.startswith("TEST_")})
    params = StdioServerParameters(
        command=binary,
        args=["--log-format", "text", "bridge", "--endpoint", endpoint, *bridge_args],
        env=env,
    )
    seen = {}
    mode = os.environ.get("BRIDGE_CLIENT_MODE")
    if mode:
        async with Client(stdio_client(params), mode=mode) as client:
            seen["protocol"] = client.protocol_version
            await exercise(client, seen)
    else:
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                seen["server"] = init.serverInfo.name if hasattr(init, "serverInfo") else init.server_info.name
                await exercise(session, seen)
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
