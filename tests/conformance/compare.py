"""The official MCP conformance runner against a server that speaks every revision (by default
`fixture_server.py`, on the official Python SDK, with the tools, resources and prompts the
runner's scenarios call; or the bundled calculator), direct and through the gateway, side by side: every check that passes direct must
pass through the gateway, on a scope that forwards each revision as it is and on the two bridged
scopes (`upstream_version: 2025-11-25`, which turns 2026-07-28 clients into a 2025 session, and
`upstream_version: 2026-07-28`, which turns 2025 clients into stateless requests).

The runner sends no credentials, so each side gets a small forwarding proxy that adds the one
header it needs (the tool's X-Gateway-Auth direct; a bearer token toward the gateway) and passes
everything else through unchanged, streaming.

usage: tests/.venv/bin/python tests/conformance/compare.py [--bin target/release/mcp-gateway]
           [--server fixture|calculator] [--requirements 2026-07-28 --requirements 2025-11-25]
           [--scope plain --scope bridge25 --scope bridge26]
(installs the runner and Node 22 from tests/conformance/package-lock.json on first use)
Exit status 1 when any check passes direct and fails through the gateway.
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
        # Host passes as the runner sent it (the gateway compares a loopback Origin with it).
        headers = [(k, v) for k, v in request.headers.items() if k.lower() != "content-length"]
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
    for _ in range(300):
        try:
            httpx.get(url, timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"{url} never answered")


def runner(url: str, revision: str, out: pathlib.Path) -> dict[str, dict[str, str]]:
    """Every scenario the revision requires: scenario -> check id -> status."""
    node = HERE / "node_modules/.bin/node"
    cli = HERE / "node_modules/@modelcontextprotocol/conformance/dist/index.js"
    proc = subprocess.run([str(node), str(cli), "server", "--url", url, "--requirements", revision, "--verbose",
                           "-o", str(out)], capture_output=True, text=True, timeout=1800)
    results: dict[str, dict[str, str]] = {}
    for f in sorted(out.rglob("checks.json")):
        checks = json.loads(f.read_text())
        name = f.parent.name.split("-20")[0]
        seen: dict[str, int] = {}
        results[name] = {}
        for c in checks:
            # A check id may repeat within a scenario: the n-th of an id is `id#n`.
            n = seen[c.get("id", "?")] = seen.get(c.get("id", "?"), 0) + 1
            results[name][f"{c.get('id', '?')}#{n}"] = c.get("status", "?")
    if not results:
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
    return results


# SUCCESS, INFO and SKIPPED pass; a WARNING (a SHOULD) is worse than those, a FAILURE worst.
RANK = {"SUCCESS": 0, "INFO": 0, "SKIPPED": 0, "WARNING": 1}


def passes(checks: dict[str, str]) -> bool:
    return bool(checks) and all(RANK.get(s, 2) == 0 for s in checks.values())


def worse(direct: dict[str, str], through: dict[str, str]) -> list[str]:
    """Checks that fare worse through the gateway than direct (a check missing counts as failed)."""
    return [c for c, s in direct.items() if RANK.get(through.get(c, "FAILURE"), 2) > RANK.get(s, 2)]


def token() -> str:
    import jwt  # PyJWT comes with the Python MCP SDK
    now = int(time.time())
    return jwt.encode({"sub": "conformance", "roles": ["developer"], "iss": "conformance", "aud": "mcp-gateway",
                       "iat": now, "exp": now + 3600}, JWT_SECRET, algorithm="HS256")


# Checks known to fare worse through the gateway, each with its reason (README, "Conformance"):
# printed, and not failing the run. Anything else worse through the gateway fails it.
KNOWN = {
    ("2025-11-25", "bridge26", scenario): "a 2025 session bridged to a stateless upstream gets no session id"
    for scenario in ("server-server-session-lifecycle", "server-server-sse-multiple-streams",
                     "server-server-sse-polling")
}

# The gateway's scopes: the calculator as it is, and bridged each way.
SCOPES = {"plain": "", "bridge25": "upstream_version: 2025-11-25", "bridge26": "upstream_version: 2026-07-28"}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(ROOT / "target/release/mcp-gateway"))
    ap.add_argument("--requirements", action="append", choices=["2025-11-25", "2026-07-28"])
    ap.add_argument("--scope", action="append", choices=list(SCOPES))
    ap.add_argument("--server", choices=["fixture", "calculator"], default="fixture")
    args = ap.parse_args()
    revisions = args.requirements or ["2026-07-28", "2025-11-25"]
    scopes = args.scope or list(SCOPES)
    if not (HERE / "node_modules/.bin/node").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE, check=True)
    tool_port, gw_port, direct_port = free_port(), free_port(), free_port()
    ports = {s: free_port() for s in scopes}
    env = dict(os.environ, TOOL_GATEWAY_SHARED_SECRET=SECRET, RUST_LOG="warn")
    if args.server == "calculator":
        command = [args.bin, "tool", "calculator", "--listen", f"127.0.0.1:{tool_port}"]
        tools = "[exact_calculate, evaluate_expression, statistics, convert_units]"
    else:
        command = [sys.executable, str(HERE / "fixture_server.py"), str(tool_port)]
        tools = ("[test_simple_text, test_image_content, test_audio_content, test_embedded_resource,"
                 " test_multiple_content_types, test_error_handling, test_tool_with_progress, greet, slow_compute,"
                 " test_reconnection, test_logging_tool, test_streaming_elicitation,"
                 " test_input_required_result_elicitation]")
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    runs: dict[tuple[str, str], dict] = {}
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
        scope_yaml = "".join(f"""  {name}:
    upstreams: [{{ url: http://127.0.0.1:{tool_port}/mcp }}]
    tools: {tools}
    {setting}
""" for name, setting in SCOPES.items())
        (d / "tools.yaml").write_text("scopes:\n" + scope_yaml)
        grants = ", ".join(f'"{s}/*"' for s in SCOPES)
        (d / "policy.yaml").write_text(f"roles:\n  developer:\n    allow: [{grants}]\n")
        procs.append(subprocess.Popen([args.bin, "run", "-c", str(d / "gateway.yaml")], env=env,
                                      stdout=subprocess.DEVNULL, stderr=open(d / "gateway.log", "w")))
        wait(f"http://127.0.0.1:{tool_port}/")
        wait(f"http://127.0.0.1:{gw_port}/healthz")
        servers = [uvicorn.Server(uvicorn.Config(
            forwarder(f"http://127.0.0.1:{tool_port}", ("X-Gateway-Auth", SECRET)),
            host="127.0.0.1", port=direct_port, log_level="error"))]
        for s in scopes:
            servers.append(uvicorn.Server(uvicorn.Config(
                forwarder(f"http://127.0.0.1:{gw_port}/{s}", ("Authorization", f"Bearer {token()}")),
                host="127.0.0.1", port=ports[s], log_level="error")))
        tasks = [asyncio.create_task(s.serve()) for s in servers]
        await asyncio.sleep(1)
        try:
            for rev in revisions:
                runs[(rev, "direct")] = await asyncio.to_thread(
                    runner, f"http://127.0.0.1:{direct_port}/mcp", rev, d / f"direct-{rev}")
                for s in scopes:
                    runs[(rev, s)] = await asyncio.to_thread(
                        runner, f"http://127.0.0.1:{ports[s]}/mcp", rev, d / f"{s}-{rev}")
        finally:
            for s in servers:
                s.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)
            for p in procs:
                p.terminate()
            if os.environ.get("CONFORMANCE_KEEP"):
                import shutil
                shutil.copytree(d, os.environ["CONFORMANCE_KEEP"], dirs_exist_ok=True)
    lost_any = False
    for rev in revisions:
        direct = runs[(rev, "direct")]
        names = sorted(set(direct).union(*(runs[(rev, s)] for s in scopes)))
        print(f"\n== required by {rev} ==\n{'scenario':48} {'direct':8}" + "".join(f"{s:10}" for s in scopes))
        for n in names:
            row = f"{n:48} {'pass' if passes(direct.get(n, {})) else 'FAIL':8}"
            print(row + "".join(f"{'pass' if passes(runs[(rev, s)].get(n, {})) else 'FAIL':10}" for s in scopes))
        for s in scopes:
            through = runs[(rev, s)]
            lost = {n: worse(direct[n], through.get(n, {})) for n in direct}
            lost = {n: c for n, c in lost.items() if c}
            known = {n: KNOWN[(rev, s, n)] for n in lost if (rev, s, n) in KNOWN}
            lost = {n: c for n, c in lost.items() if n not in known}
            ok = sum(passes(v) for v in through.values())
            print(f"{rev} {s}: {sum(passes(v) for v in direct.values())}/{len(direct)} direct, {ok}/{len(through)}"
                  f" through; worse through the gateway: {lost or 'none'}"
                  + (f"; known: {known}" if known else ""))
            lost_any |= bool(lost)
    sys.exit(1 if lost_any else 0)


if __name__ == "__main__":
    asyncio.run(main())
