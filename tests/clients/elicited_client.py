"""The official Python SDK's `Client` over Streamable HTTP with a bearer token, answering
elicitation requests with `ANSWER`: calls `ask` (or TOOL) with `QUESTION` and prints what it saw (the
question it was asked, the tool's answer) as one JSON object.

usage: elicited_client.py URL TOKEN QUESTION ANSWER [TOOL [MODE]]   (MODE: auto, legacy, 2026-07-28)
"""

import asyncio
import json
import sys

from mcp import Client, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


async def main(
    url: str, token: str, question: str, answer: str, tool: str = "ask", mode: str = "auto"
) -> None:
    seen = {"asked": []}

    async def elicit(context, params):
        seen["asked"].append(params.message)
        return types.ElicitResult(action="accept", content={"answer": answer})

    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with Client(
        streamable_http_client(url, http_client=http), elicitation_callback=elicit, mode=mode
    ) as client:
        result = await client.call_tool(tool, {"question": question})
        seen["call"] = result.model_dump(mode="json", by_alias=True)
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:7]))
