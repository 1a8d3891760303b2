"""A tool server on the official Python SDK (Streamable HTTP at /mcp) whose one tool, `touch`,
announces changes to `subscriptions/listen` streams: the tool list, the prompt list, and an
update of each of two resources, `doc://public/a` and `doc://secret/b`.

usage: listen_server.py PORT
"""

import sys

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("listen-tools")


@server.resource("doc://public/a")
def public_a() -> str:
    """A resource everyone may read."""
    return "public"


@server.resource("doc://secret/b")
def secret_b() -> str:
    """A resource only some may read."""
    return "secret"


@server.prompt()
def greet() -> str:
    """A prompt."""
    return "hello"


@server.tool()
async def touch(ctx: Context) -> str:
    """Announces a change of every kind."""
    await ctx.notify_tools_changed()
    await ctx.notify_prompts_changed()
    await ctx.notify_resource_updated("doc://secret/b")
    await ctx.notify_resource_updated("doc://public/a")
    return "touched"


if __name__ == "__main__":
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
