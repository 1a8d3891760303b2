"""A tool server on the official Python SDK (Streamable HTTP at /mcp, sessions of the 2025
revisions) whose tools ask their client back in the middle of a call: `ask` asks one question
(elicitation), `ask_twice` asks two in a row, `draft` asks the client's model (sampling), `where`
asks for the client's roots.

usage: asking_server.py PORT
"""

import sys

from pydantic import BaseModel

from mcp import types
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("asking-tools")


class Answer(BaseModel):
    answer: str


async def asked(ctx: Context, question: str) -> str:
    result = await ctx.elicit(message=question, schema=Answer)
    if result.action == "accept" and result.data is not None:
        return result.data.answer
    return f"({result.action})"


@server.tool()
async def ask(question: str, ctx: Context) -> str:
    """Asks the client `question` and answers with what it said."""
    return f"you said {await asked(ctx, question)}"


@server.tool()
async def ask_twice(ctx: Context) -> str:
    """Asks two questions, one after the other."""
    first = await asked(ctx, "first?")
    second = await asked(ctx, "second?")
    return f"{first} then {second}"


@server.tool()
async def draft(topic: str, ctx: Context) -> str:
    """Asks the client's model to write about `topic`."""
    result = await ctx.session.create_message(
        messages=[types.SamplingMessage(role="user", content=types.TextContent(type="text", text=topic))],
        max_tokens=50,
        related_request_id=ctx.request_id,
    )
    content = result.content
    return f"model wrote: {getattr(content, 'text', content)}"


@server.tool()
async def whoami(ctx: Context) -> str:
    """Asks the client to confirm, then says who the gateway said is calling (`X-User-ID`,
    `X-Tenant-ID` of the request that carried the answer's stream)."""
    await asked(ctx, "go on?")
    headers = ctx.request_context.request.headers
    return f"{headers.get('x-user-id')}/{headers.get('x-tenant-id')}"


if __name__ == "__main__":
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
