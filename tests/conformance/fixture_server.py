"""A server with the tools, resources and prompts the official conformance runner's server
scenarios call (as each scenario describes them), on the official Python SDK (Streamable HTTP at
/mcp; it speaks the 2025 revisions in sessions and 2026-07-28 statelessly). compare.py runs the
runner against it directly and through the gateway.

usage: fixture_server.py PORT
"""

import base64
import json
import sys

import anyio
from pydantic import BaseModel

from mcp import types
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import UserMessage

# A 1x1 PNG and a tiny WAV header: content the scenarios only check for presence and type.
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d49444154789c63f8cfc0f01f0005000201a5d5b1b60000000049454e44ae426082"
    )
).decode()
WAV = base64.b64encode(b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00"
                       b"\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00").decode()

server = MCPServer("conformance-fixture")


@server.tool()
def test_simple_text() -> str:
    """Simple text."""
    return "This is a simple text response for testing."


@server.tool()
def test_image_content() -> list[types.ImageContent]:
    """An image."""
    return [types.ImageContent(type="image", data=PNG, mimeType="image/png")]


@server.tool()
def test_audio_content() -> list[types.AudioContent]:
    """Audio."""
    return [types.AudioContent(type="audio", data=WAV, mimeType="audio/wav")]


def embedded(uri: str, mime: str, text: str) -> types.EmbeddedResource:
    return types.EmbeddedResource(
        type="resource", resource=types.TextResourceContents(uri=uri, mimeType=mime, text=text)
    )


@server.tool()
def test_embedded_resource() -> list[types.EmbeddedResource]:
    """An embedded resource."""
    return [embedded("test://embedded-resource", "text/plain", "This is an embedded resource content.")]


@server.tool()
def test_multiple_content_types() -> list:
    """Text, an image and a resource."""
    return [
        types.TextContent(type="text", text="Multiple content types test:"),
        types.ImageContent(type="image", data=PNG, mimeType="image/png"),
        embedded("test://mixed-content-resource", "application/json", json.dumps({"test": "data", "value": 123})),
    ]


@server.tool()
def test_error_handling() -> str:
    """Always fails."""
    raise RuntimeError("This tool intentionally returns an error for testing")


@server.tool()
async def test_tool_with_progress(ctx: Context) -> str:
    """Reports progress 0, 50, 100 of 100."""
    for step in (0, 50, 100):
        await ctx.report_progress(step, 100)
        await anyio.sleep(0.05)
    return "Progress test completed"


@server.tool()
def greet(name: str = "world") -> str:
    """Greets."""
    return f"Hello, {name}!"


@server.tool()
async def slow_compute(seconds: float = 0) -> str:
    """Sleeps, then answers."""
    await anyio.sleep(seconds)
    return f"computed after {seconds}s"


@server.tool()
async def test_reconnection() -> str:
    """Answers after a moment."""
    await anyio.sleep(0.1)
    return "Reconnection test completed"


@server.tool()
async def test_logging_tool(ctx: Context) -> str:
    """Logs three messages while it runs."""
    for message in ("Tool execution started", "Tool processing data", "Tool execution completed"):
        await ctx.info(message)
    return "Logging test completed"


class Name(BaseModel):
    name: str


@server.tool()
async def test_streaming_elicitation(ctx: Context) -> str:
    """Asks the client a question."""
    result = await ctx.elicit(message="What is your name?", schema=Name)
    return f"hello {result.data.name}" if result.action == "accept" and result.data else f"({result.action})"


@server.tool()
async def test_input_required_result_elicitation(ctx: Context) -> str:
    """Asks the client a question."""
    result = await ctx.elicit(message="What is your name?", schema=Name)
    return f"hello {result.data.name}" if result.action == "accept" and result.data else f"({result.action})"


@server.resource("test://static-text", mime_type="text/plain")
def static_text() -> str:
    """Static text."""
    return "This is the content of the static text resource."


@server.resource("test://static-binary", mime_type="image/png")
def static_binary() -> bytes:
    """A PNG."""
    return base64.b64decode(PNG)


@server.resource("test://template/{id}/data", mime_type="application/json")
def template_data(id: str) -> str:
    """Data for an id."""
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


@server.prompt()
def test_simple_prompt() -> str:
    """A simple prompt."""
    return "This is a simple prompt for testing."


@server.prompt()
def test_prompt_with_arguments(arg1: str, arg2: str) -> str:
    """A prompt with arguments."""
    return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"


@server.prompt()
def test_prompt_with_embedded_resource(resourceUri: str) -> list:
    """A prompt embedding a resource."""
    return [
        UserMessage(content=embedded(resourceUri, "text/plain", "Embedded resource content for testing.")),
        UserMessage(content="Please process the embedded resource above."),
    ]


@server.prompt()
def test_prompt_with_image() -> list:
    """A prompt with an image."""
    return [
        UserMessage(content=types.ImageContent(type="image", data=PNG, mimeType="image/png")),
        UserMessage(content="Please analyze the image above."),
    ]


@server.completion()
async def complete(ref, argument, context):
    """Suggestions for any argument."""
    values = [v for v in ("paris", "park", "party") if v.startswith(argument.value)]
    return types.Completion(values=values, total=len(values), hasMore=False)


if __name__ == "__main__":
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
