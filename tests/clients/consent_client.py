"""The official Python SDK's `Client` over Streamable HTTP with a bearer token, on a scope whose
upstream needs the user's own login: opens the session and calls TOOL with ARGUMENTS_JSON. Prints
one JSON object: the call's result, or the JSON-RPC error the client got (code, message, data) and
at which step.

usage: consent_client.py URL TOKEN TOOL ARGUMENTS_JSON [MODE]   (MODE: auto, legacy)
"""

import asyncio
import json
import sys

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError, UrlElicitationRequiredError


def first_mcp_error(e: BaseException) -> MCPError | None:
    if isinstance(e, MCPError):
        return e
    for inner in getattr(e, "exceptions", ()):
        found = first_mcp_error(inner)
        if found is not None:
            return found
    return None


async def main(url: str, token: str, tool: str, arguments: str, mode: str = "legacy") -> None:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    seen = {"step": "connect"}
    try:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            seen["step"] = "call"
            result = await client.call_tool(tool, json.loads(arguments))
            seen["call"] = result.model_dump(mode="json", by_alias=True)
    except BaseException as raised:  # the SDK's task groups may wrap it
        e = first_mcp_error(raised)
        if e is None:
            raise
        seen["error"] = {"code": e.code, "message": e.message, "data": e.data}
        if e.code == -32042:
            # The SDK's own reading of a URL elicitation.
            urls = UrlElicitationRequiredError.from_error(e.error).elicitations
            seen["elicitations"] = [{"url": u.url, "id": u.elicitation_id} for u in urls]
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
