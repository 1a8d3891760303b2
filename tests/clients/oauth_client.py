"""The official Python SDK's OAuth client provider logging in to a gateway endpoint through the
gateway's development issuer: discovery (401 -> protected-resource metadata -> authorization-server
metadata), dynamic client registration, the authorization-code flow with PKCE through the issuer's
real login page (fetched and its form posted, as a browser would), the token exchange, then the MCP
session itself. Prints one JSON object with what the client saw.

usage: oauth_client.py URL USER ROLES
"""

import asyncio
import json
import re
import sys
from urllib.parse import parse_qs, urlparse

import httpx2 as httpx

from probe import exercise

from mcp import Client
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

REDIRECT = "http://127.0.0.1:9/callback"


class Memory(TokenStorage):
    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, client_info):
        self.client = client_info


async def main(url: str, user: str, roles: str) -> None:
    seen = {"logins": 0}
    result = {}

    async def redirect_handler(authorize_url: str) -> None:
        """What the browser does: open the login page, submit its form, follow nothing."""
        seen["logins"] += 1
        seen["authorize_query"] = {k: v[0] for k, v in parse_qs(urlparse(authorize_url).query).items()}
        async with httpx.AsyncClient() as browser:
            page = await browser.get(authorize_url)
            assert page.status_code == 200, page.text
            seen["page_title"] = re.search(r"<h1>(.*?)</h1>", page.text).group(1)
            form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
            form = {k: v.replace("&amp;", "&").replace("&quot;", '"') for k, v in form.items()}
            form.update({"user_id": user, "roles": roles, "workspace": "acme"})
            action = urlparse(authorize_url)._replace(query="").geturl()
            done = await browser.post(action, data=form)
            assert done.status_code == 303, done.text
            back = parse_qs(urlparse(done.headers["location"]).query)
            result["code"] = back["code"][0]
            result["state"] = back.get("state", [None])[0]

    async def callback_handler() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=result["code"], state=result["state"])

    storage = Memory()
    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="oauth test client",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    http = httpx.AsyncClient(auth=provider, follow_redirects=False, timeout=30)
    async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
        await exercise(client, seen)
    seen["registered"] = storage.client is not None
    seen["access_token"] = storage.tokens.access_token if storage.tokens else None
    seen["scope"] = storage.tokens.scope if storage.tokens else None
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
