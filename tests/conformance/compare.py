"""The official MCP conformance runner against a bundled tool server, direct and through the
gateway, side by side: every scenario that passes direct must pass through the gateway.

The runner sends no credentials, so each side gets a small forwarding proxy that adds the one
header it needs (the tool's X-Gateway-Auth direct; a bearer token toward the gateway) and passes
everything else through unchanged, streaming.

usage: python3 tests/conformance/compare.py [--bin target/release/mcp-gateway] [--spec-version 2026-07-28]
(installs the runner and Node 22 from tests/conformance/package-lock.json on first use)
"""

import argparse
import asyncio
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time

import httpx2 as httpx
import uvicorn
from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SECRET = "conformance-upstream-secret-0123456789"
JWT_SECRET = "conformance-jwt-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def forwarder(target: str, header: tuple[str, str]) -> Starlette:
    client = httpx.AsyncClient(timeout=None)

    async def forward(request):
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in ("host", "content-length")]
        headers.append(header)
        upstream = client.build_request(request.method, target + request.url.path, params=request.url.query,
                                        headers=headers, content=await request.body())
        resp = await client.send(upstream, stream=True)
        out_headers = {k: v for k, v in resp.headers.items()
                       if k.lower() not in ("content-length", "transfer-encoding", "connection")}
        return StreamingResponse(resp.aiter_raw(), status_code=resp.status_code, headers=out_headers,
                                 background=None)

    return Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST", "DELETE"])])


def wait(url: str) -> None:
    for _ in range(100):
        try:
            httpx.get(url, timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"{url} never answered")


def runner(url: str, spec_version: str, out: pathlib.Path) -> dict:
    node = HERE / "node_modules/.bin/node"
    cli = HERE / "node_modules/@modelcontextprotocol/conformance/dist/index.js"
    proc = subprocess.run([str(node), str(cli), "server", "--url", url, "--spec-version", spec_version,
                           "--verbose", "-o", str(out)], capture_output=True, text=True, timeout=900)
    results = {}
    for f in sorted(out.rglob("checks.json")):
        checks = json.loads(f.read_text())
        name = f.parent.name.split("-20")[0]
        results[name] = all(c.get("status") in ("SUCCESS", "INFO", "SKIPPED") for c in checks)
    if not results:
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
    return results


def token() -> str:
    import jwt  # PyJWT comes with the Python MCP SDK
    now = int(time.time())
    return jwt.encode({"sub": "conformance", "roles": ["developer"], "iss": "conformance", "aud": "mcp-gateway",
                       "iat": now, "exp": now + 3600}, JWT_SECRET, algorithm="HS256")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(ROOT / "target/release/mcp-gateway"))
    ap.add_argument("--spec-version", default="2026-07-28")
    args = ap.parse_args()
    if not (HERE / "node_modules/.bin/node").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE, check=True)
    tool_port, gw_port, a_port, b_port = free_port(), free_port(), free_port(), free_port()
    env = dict(os.environ, TOOL_GATEWAY_SHARED_SECRET=SECRET, RUST_LOG="warn")
    procs = [subprocess.Popen([args.bin, "tool", "calculator", "--listen", f"127.0.0.1:{tool_port}"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    with tempfile.TemporaryDirectory() as d:
        d = pathlib.Path(d)
        (d / "gateway.yaml").write_text(f"""listen: 127.0.0.1:{gw_port}
tools_file: tools.yaml
policy_file: policy.yaml
jwt: {{ algorithms: [HS256], secret: {JWT_SECRET}, issuer: conformance, audience: mcp-gateway }}
upstream_shared_secret: {SECRET}
session_secrets: [conformance-session-secret-0123456789]
audit: {{ file: audit.jsonl, spool_file: spool.jsonl }}
""")
        (d / "tools.yaml").write_text(f"""scopes:
  calculator:
    upstreams: [{{ url: http://127.0.0.1:{tool_port}/mcp }}]
    tools: [exact_calculate, evaluate_expression, statistics, convert_units]
""")
        (d / "policy.yaml").write_text('roles:\n  developer:\n    allow: ["calculator/*"]\n')
        procs.append(subprocess.Popen([args.bin, "run", "-c", str(d / "gateway.yaml")], env=env,
                                      stdout=subprocess.DEVNULL, stderr=open(d / "gateway.log", "w")))
        wait(f"http://127.0.0.1:{tool_port}/health")
        wait(f"http://127.0.0.1:{gw_port}/healthz")
        servers = [
            uvicorn.Server(uvicorn.Config(forwarder(f"http://127.0.0.1:{tool_port}", ("X-Gateway-Auth", SECRET)),
                                          host="127.0.0.1", port=a_port, log_level="error")),
            uvicorn.Server(uvicorn.Config(forwarder(f"http://127.0.0.1:{gw_port}/calculator",
                                                    ("Authorization", f"Bearer {token()}")),
                                          host="127.0.0.1", port=b_port, log_level="error")),
        ]
        tasks = [asyncio.create_task(s.serve()) for s in servers]
        await asyncio.sleep(1)
        try:
            direct = await asyncio.to_thread(runner, f"http://127.0.0.1:{a_port}/mcp", args.spec_version, d / "direct")
            gateway = await asyncio.to_thread(runner, f"http://127.0.0.1:{b_port}/mcp", args.spec_version, d / "gateway")
        finally:
            for s in servers:
                s.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)
            for p in procs:
                p.terminate()
    names = sorted(set(direct) | set(gateway))
    print(f"{'scenario':50} direct  gateway")
    for n in names:
        print(f"{n:50} {'pass' if direct.get(n) else 'FAIL':7} {'pass' if gateway.get(n) else 'FAIL'}")
    lost = [n for n in names if direct.get(n) and not gateway.get(n)]
    print(f"\n{sum(direct.values())}/{len(direct)} direct, {sum(gateway.values())}/{len(gateway)} through the gateway"
          f" ({args.spec_version}); passing direct but not through the gateway: {lost or 'none'}")
    sys.exit(1 if lost else 0)


if __name__ == "__main__":
    asyncio.run(main())
