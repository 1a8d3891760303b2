"""The official Python SDK's `Client` over Streamable HTTP through TLS: the gateway's certificate
verified against a given CA, over HTTP/2 or HTTP/1.1. Lists the tools, calls a granted one and a
refused one, and records the HTTP version of every answer.

usage: tls_client.py URL TOKEN CA_FILE h2|http1
"""

import asyncio
import json
import ssl
import sys

import httpx2
from probe import exercise

from mcp import Client
from mcp.client.streamable_http import streamable_http_client


async def main(url: str, token: str, ca_file: str, version: str) -> None:
    seen = {"http_versions": []}

    async def record(response):
        seen["http_versions"].append(response.http_version)

    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"},
        verify=ssl.create_default_context(cafile=ca_file),
        http2=version == "h2",
        http1=version != "h2",
        timeout=httpx2.Timeout(30.0, read=300.0),
        event_hooks={"response": [record]},
    )
    async with Client(streamable_http_client(url, http_client=http)) as client:
        await exercise(client, seen)
    seen["http_versions"] = sorted(set(seen["http_versions"]))
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
