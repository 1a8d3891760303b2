"""What every client test checks, whatever the transport: the tool list, a granted call and a
refused one, as the client saw them."""


async def exercise(client, seen: dict) -> None:
    """`client` is a `ClientSession` or a `Client`: both list and call tools."""
    tools = await client.list_tools()
    seen["tools"] = sorted(t.name for t in tools.tools)
    ok = await client.call_tool("exact_calculate", {"operator": "add", "operands": ["1", "2"]})
    seen["call"] = ok.model_dump(mode="json", by_alias=True)
    try:
        refused = await client.call_tool("statistics", {"operation": "count", "values": []})
        seen["refused"] = refused.model_dump(mode="json", by_alias=True)
    except Exception as e:  # the SDK raises on a JSON-RPC error
        seen["refused_error"] = str(e)
