"""A tool server that knows nothing about tasks, with a slow tool and a quick one, on the official Python SDK
(Streamable HTTP at /mcp). Every call is written to a log file when it starts and when it ends,
so a test can tell how many times a call really ran.

usage: slow_server.py PORT LOG_FILE
"""

import sys
import time

import anyio
from mcp.server.mcpserver import MCPServer

server = MCPServer("slow-tools")
LOG = sys.argv[2]


def note(line: str) -> None:
    with open(LOG, "a", encoding="utf-8") as f:
        f.write(line + "\n")


@server.tool()
async def slow(ms: int, tag: str = "", size: int = 0) -> str:
    """Waits `ms` milliseconds, then answers `done TAG`, or `size` bytes of text when size > 0."""
    note(f"start {tag} {time.time():.3f}")
    await anyio.sleep(ms / 1000)
    note(f"end {tag} {time.time():.3f}")
    if size > 0:
        return ("0123456789abcdef" * (size // 16 + 1))[:size]
    return f"done {tag}"


@server.tool()
def quick(tag: str = "") -> str:
    """Answers at once."""
    note(f"start {tag} {time.time():.3f}")
    return f"quick {tag}"


if __name__ == "__main__":
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
