"""A stdio MCP server on the official Python SDK, for the tests of stdio upstreams: a slow tool
that notes when a call starts, ends or is cancelled (so a test can tell that a cancellation reached
the process), a tool that asks its client a question (elicitation) before it answers, and a memory
of the process's own (`remember`, `recall`), so a test can tell processes apart.

usage: stdio_tools.py LOG_FILE
"""

import sys

import anyio
from pydantic import BaseModel

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("stdio-tools")
LOG = sys.argv[1]


def note(line: str) -> None:
    with open(LOG, "a", encoding="utf-8") as f:
        f.write(line + "\n")


@server.tool()
async def slow(ms: int, tag: str = "") -> str:
    """Waits `ms` milliseconds, then answers `done TAG`."""
    note(f"start {tag}")
    try:
        await anyio.sleep(ms / 1000)
    except anyio.get_cancelled_exc_class():
        note(f"cancelled {tag}")
        raise
    note(f"end {tag}")
    return f"done {tag}"


class Answer(BaseModel):
    answer: str


@server.tool()
async def ask(question: str, ctx: Context) -> str:
    """Asks the client `question` and answers with what it said."""
    result = await ctx.elicit(message=question, schema=Answer)
    if result.action == "accept" and result.data is not None:
        return f"you said {result.data.answer}"
    return f"no answer ({result.action})"


REMEMBERED: list[str] = []


@server.tool()
def remember(value: str) -> str:
    """Keeps `value` in this process's memory."""
    REMEMBERED.append(value)
    return "kept"


@server.tool()
def recall() -> str:
    """What this process was asked to remember, comma-separated."""
    return ",".join(REMEMBERED)


if __name__ == "__main__":
    server.run("stdio")
