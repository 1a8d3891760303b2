"""A tool server that speaks only the legacy HTTP+SSE transport (2024-11-05), on the official
Python SDK: `GET /sse` opens the stream, its `endpoint` event names `/messages/?session_id=…`.
Two tools, like the calculator's: exact_calculate (adds) and statistics (counts).

usage: legacy_sse_server.py PORT
"""

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("legacy-calculator")


@server.tool()
def exact_calculate(operator: str, operands: list[str]) -> dict:
    """Adds the operands (the only operator this test server knows)."""
    return {"result": str(sum(int(o) for o in operands))}


@server.tool()
def statistics(operation: str, values: list[str]) -> dict:
    """Counts the values."""
    return {"result": str(len(values))}


if __name__ == "__main__":
    server.run("sse", host="127.0.0.1", port=int(sys.argv[1]))
