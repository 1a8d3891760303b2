"""The official Python SDK's `Client` over Streamable HTTP in a given mode, calling tools whose
server asks back (tests/servers/asking_server.py): it answers elicitations with `ANSWER-n` (n counts
the questions) and, when `sampling` is among CAPABILITIES, samplings with `a poem`. Prints one JSON
object: what it was asked, and per call the result or the error.

usage: asking_client.py URL TOKEN MODE CAPABILITIES CALL...
  CAPABILITIES: comma-separated, of elicitation, sampling ("-" for none)
  CALL: TOOL or TOOL:JSON-ARGUMENTS
"""

import asyncio
import json
import sys

from mcp import Client, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


async def main(url: str, token: str, mode: str, capabilities: str, *calls: str) -> None:
    seen = {"asked": [], "calls": []}
    wanted = set(capabilities.split(","))

    async def elicit(context, params):
        seen["asked"].append(params.message)
        return types.ElicitResult(action="accept", content={"answer": f"ANSWER-{len(seen['asked'])}"})

    async def sample(context, params):
        seen["asked"].append("sampling")
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="a poem"), model="test-model"
        )

    options = {}
    if "elicitation" in wanted:
        options["elicitation_callback"] = elicit
    if "sampling" in wanted:
        options["sampling_callback"] = sample
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with Client(streamable_http_client(url, http_client=http), mode=mode, **options) as client:
        seen["protocol"] = client.protocol_version
        for call in calls:
            tool, _, args = call.partition(":")
            try:
                result = await client.call_tool(tool, json.loads(args) if args else {})
                seen["calls"].append({"tool": tool, "result": result.model_dump(mode="json", by_alias=True)})
            except Exception as e:  # the SDK raises on a JSON-RPC error
                code = getattr(getattr(e, "error", None), "code", None)
                seen["calls"].append({"tool": tool, "error": str(e), "code": code})
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5], *sys.argv[5:]))
