"""A stdio MCP server on the official Python SDK, for the tests of stdio upstreams: a slow tool
that notes when a call starts, ends or is cancelled (so a test can tell that a cancellation reached
the process), a tool that asks its client a question (elicitation) before it answers, and a memory
of the process's own (`remember`, `recall`), so a test can tell processes apart, and probes of
what the process may do (`freeze` stops it answering anything, `hog` allocates memory, `write_to`,
`read_from` and `connect` try the filesystem and the network).

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


@server.tool()
async def freeze(ms: int) -> str:
    """Blocks the whole process (no message is read or answered) for `ms` milliseconds: a
    blocking sleep on the event loop."""
    import time

    note("frozen")
    time.sleep(ms / 1000)
    return "thawed"


@server.tool()
def hog(mb: int) -> str:
    """Allocates `mb` MiB and says whether it could."""
    try:
        block = bytearray(mb * 1024 * 1024)
        return f"allocated {len(block) // (1024 * 1024)} MiB"
    except MemoryError:
        return "MemoryError"


@server.tool()
def write_to(path: str) -> str:
    """Writes a file at `path`: `written` or the error."""
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write("x")
        return "written"
    except OSError as e:
        return f"error: {e.strerror}"


@server.tool()
def read_from(path: str) -> str:
    """Reads the file at `path`: its first 40 characters or the error."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()[:40]
    except OSError as e:
        return f"error: {e.strerror}"


@server.tool()
def open_files_limit() -> str:
    """The process's limit of open files (soft)."""
    import resource

    return str(resource.getrlimit(resource.RLIMIT_NOFILE)[0])


@server.tool()
def connect(port: int) -> str:
    """Opens a TCP connection to 127.0.0.1:`port`: `connected` or the error."""
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return "connected"
    except OSError as e:
        return f"error: {e.strerror or e}"


if __name__ == "__main__":
    server.run("stdio")
