"""The official Python SDK's stdio client launching `mcp-gateway bridge`: initialize, list the
tools, call a granted one and a refused one. Prints one JSON object with what the client saw.

usage: stdio_bridge.py BIN ENDPOINT TOKEN_COMMAND
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import get_default_environment, stdio_client


async def main(binary: str, endpoint: str, token_command: str) -> None:
    env = get_default_environment()
    env.update({k: v for k, v in os.environ.items() if k.startswith("TEST_")})
    params = StdioServerParameters(
        command=binary,
        args=["--log-format", "text", "bridge", "--endpoint", endpoint,
              "--token-command", token_command],
        env=env,
    )
    seen = {}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            seen["server"] = init.serverInfo.name if hasattr(init, "serverInfo") else init.server_info.name
            tools = await session.list_tools()
            seen["tools"] = sorted(t.name for t in tools.tools)
            ok = await session.call_tool(
                "exact_calculate", {"operator": "add", "operands": ["1", "2"]})
            seen["call"] = ok.model_dump(mode="json", by_alias=True)
            try:
                refused = await session.call_tool(
                    "statistics", {"operation": "count", "values": []})
                seen["refused"] = refused.model_dump(mode="json", by_alias=True)
            except Exception as e:  # the SDK raises on a JSON-RPC error
                seen["refused_error"] = str(e)
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
