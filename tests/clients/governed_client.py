"""The official Python SDK's `Client` over Streamable HTTP with a bearer token: lists the tools
(name → description) and makes one call, as the client saw them. Prints one JSON object.

usage: governed_client.py URL TOKEN TOOL ARGUMENTS_JSON
"""

import asyncio
import json
import sys

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


async def main(url: str, token: str, tool: str, arguments: str) -> None:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    seen = {}
    async with Client(streamable_http_client(url, http_client=http)) as client:
        tools = await client.list_tools()
        seen["tools"] = {t.name: t.description for t in tools.tools}
        try:
            result = await client.call_tool(tool, json.loads(arguments))
            seen["call"] = result.model_dump(mode="json", by_alias=True)
        except Exception as e:  # the SDK raises on a JSON-RPC error
            seen["error"] = str(e)
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
