"""The 1.x Python SDK's task API (protocol 2025-11-25, `session.experimental`) through the gateway:
a slow tool called as a task, polled to completion, its result fetched; the task listed; a second
task cancelled while it runs. Prints what it saw as JSON.

usage: task_client.py URL TOKEN   (run with tests/.venv-mcp1/bin/python)
"""

import asyncio
import json
import sys

import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from mcp.types import CallToolResult


async def main(url: str, token: str) -> None:
    seen: dict = {}
    headers = {"Authorization": f"Bearer {token}"}
    async with streamablehttp_client(url, headers=headers, timeout=30) as (read, write, _):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            seen["tasks_capability"] = (
                init.capabilities.tasks.model_dump(by_alias=True, exclude_none=True)
                if init.capabilities.tasks
                else None
            )
            created = await session.experimental.call_tool_as_task(
                "slow", {"ms": 800, "tag": "sdk1"}, ttl=60000
            )
            task_id = created.task.taskId
            seen["created_status"] = created.task.status
            statuses = []
            async for status in session.experimental.poll_task(task_id):
                statuses.append(status.status)
            seen["statuses"] = statuses
            result = await session.experimental.get_task_result(task_id, CallToolResult)
            seen["result_text"] = result.content[0].text
            listed = await session.experimental.list_tasks()
            seen["listed"] = [t.taskId for t in listed.tasks]
            seen["task_id"] = task_id

            second = await session.experimental.call_tool_as_task(
                "slow", {"ms": 5000, "tag": "sdk-cancel"}, ttl=60000
            )
            await asyncio.sleep(0.8)
            cancelled = await session.experimental.cancel_task(second.task.taskId)
            seen["cancelled_status"] = cancelled.status
            after = await session.experimental.get_task(second.task.taskId)
            seen["after_cancel"] = after.status
    print(json.dumps(seen))


asyncio.run(main(sys.argv[1], sys.argv[2]))
