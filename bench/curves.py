#!/usr/bin/env python3
"""Cost curves: how the gateway's own cost grows as the work grows. Each curve varies one thing
and holds the rest (audit off, 2 threads, loopback, wrk for a few seconds per point) and prints a
table with the fitted slope. Cost is the gateway process's CPU per request and its peak RSS;
what the upstream spends is not counted.

    python3 bench/curves.py                      # every curve (about 10 minutes plus the build)
    python3 bench/curves.py --no-build --only body --only users

Curves: body (1 KiB -> 1 MiB of tools/call arguments, validation on and off), tools (tools/list
with 10 -> 1,000 tools in the scope), grants (tools/call with 10 -> 1,000 grants in the role),
users (1 -> 100,000 distinct users), sessions (1 -> 100,000 open sessions), streams (1 -> 10,000
SSE streams held), audit (audit rows per second into PostgreSQL, rising until the spool starts).
"""

import argparse, asyncio, http.client, json, os, resource, shutil, subprocess, sys, tempfile, threading, time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# Slopes are measured on the quicker release build (`BENCH_PROFILE=dist` for the shipped one).
os.environ.setdefault("BENCH_PROFILE", "release")
import run as harness  # noqa: E402

SECS = 4

SMALL_CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
    "name": "exact_calculate", "arguments": {"operator": "add", "operands": ["1.25", "2.5"], "precision": 28}}}
MINIMAL_POLICY = 'roles:\n  developer: { allow: ["minimal/*"] }\n'


def minimal_scope(port, tools=("exact_calculate",)):
    """The scope `minimal` on the minimal upstream, listing `tools`."""
    return f"  minimal:\n    upstreams: [ {{ url: \"http://127.0.0.1:{port}/mcp\" }} ]\n    tools: [{', '.join(tools)}]\n"


def slope(xs, ys):
    """Least-squares slope of ys over xs."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


class Upstream:
    """A small MCP upstream in this process: `n_tools` tools in `tools/list`, a session id on
    `initialize`, a fixed `tools/call` result. Its own speed bounds req/s, not the gateway's CPU
    per request, which is what the curves read."""

    def __init__(self, n_tools):
        tools = [{"name": f"t{i}", "description": f"Tool number {i} of the bench.",
                  "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}}} for i in range(n_tools)]
        listing = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}}).encode()
        answer = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "ok"}],
                                                                      "isError": False}}).encode()
        opened = [0]

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Head and body in one write, without Nagle: otherwise every answer waits for the
            # client's delayed ACK (40 ms) and the upstream, not the gateway, sets the pace.
            wbufsize = 1 << 16
            disable_nagle_algorithm = True

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                method = json.loads(body).get("method", "")
                headers = {}
                if method == "initialize":
                    opened[0] += 1
                    out = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {
                        "protocolVersion": "2025-06-18", "capabilities": {"tools": {"listChanged": False}},
                        "serverInfo": {"name": "bench", "version": "1"}}}).encode()
                    headers["Mcp-Session-Id"] = f"upstream-session-{opened[0]:08d}"
                elif method.startswith("notifications/"):
                    self.send_response(202)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                elif method == "tools/list":
                    out = listing
                else:
                    out = answer
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(out)

        ThreadingHTTPServer.daemon_threads = True
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


class Bench:
    def __init__(self, args):
        self.root = harness.ROOT
        self.gw_bin = os.path.join(harness.BIN, "mcp-gateway")
        self.tmp = tempfile.mkdtemp(prefix="mcp-curves-")
        os.chmod(self.tmp, 0o755)
        self.procs = []
        self.n = 0
        self.lua = os.path.join(self.tmp, "bench.lua")
        open(self.lua, "w").write(harness.WRK_LUA)
        self.secs = args.seconds

    def gateway(self, scopes, policy, extra="", audit="audit: { enabled: false }"):
        """A gateway (audit off, 2 threads, a per-user rate limit never hit) on `scopes`."""
        self.n += 1
        d = os.path.join(self.tmp, f"gw{self.n}")
        os.makedirs(d)
        port = harness.free_port()
        open(f"{d}/gateway.yaml", "w").write(f"""listen: 127.0.0.1:{port}
tools_file: tools.yaml
policy_file: policy.yaml
threads: 2
shutdown_grace: 1s
jwt: {{ algorithms: [HS256], secret: {harness.JWT_SECRET}, issuer: bench, audience: mcp-gateway }}
upstream_shared_secret: {harness.SECRET}
session_secrets: [{harness.SESSION_SECRET}]
{audit}
{extra}""")
        open(f"{d}/tools.yaml", "w").write("scopes:\n" + scopes)
        open(f"{d}/policy.yaml", "w").write(policy + "rate_limits:\n  - { name: never-hit, key: user, rate: 1000000/s }\n")
        p = subprocess.Popen([self.gw_bin, "run", "-c", f"{d}/gateway.yaml"], env={**os.environ, "RUST_LOG": "warn"},
                             stdout=subprocess.DEVNULL, stderr=open(f"{d}/log", "w"))
        self.procs.append(p)
        harness.wait_port(port)
        time.sleep(1.5)  # the registry's first listing
        return p, f"http://127.0.0.1:{port}"

    def stop(self, p):
        p.terminate()
        p.wait(timeout=20)

    def body(self, doc):
        path = os.path.join(self.tmp, f"body{len(os.listdir(self.tmp))}.json")
        open(path, "w").write(json.dumps(doc, separators=(",", ":")))
        return path

    def wrk(self, proc, url, conns, env):
        c = harness.Contender("gateway", {"json": url}, proc)
        r = harness.run_wrk(c, "json", conns, self.secs, {"BENCH_LUA": self.lua, "BENCH_SECRET": harness.SECRET,
                                                          "BENCH_TOKEN": harness.token("bench"), **env})
        if r["errors"]:
            print(f"  ({r['errors']} errors at {url})", flush=True)
        return r

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


def table(title, command, head, rows, note):
    print(f"\n#### {title}\n\n`{command}`\n\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"\n{note}", flush=True)


def curve_body(b, calc_port):
    """tools/call `statistics` with 1 KiB -> 1 MiB of arguments, validation on (bound raised to
    2 MiB) and off."""
    scope = lambda name, on: f"""  {name}:
    upstreams: [ {{ url: "http://127.0.0.1:{calc_port}/mcp" }} ]
    tools: [statistics]
    validate_arguments: {str(on).lower()}
    validate_arguments_max_bytes: 2097152
"""
    p, base = b.gateway(scope("on", True) + scope("off", False), 'roles:\n  developer: { allow: ["on/*", "off/*"] }\n',
                        "limits: { max_body_bytes: 4194304 }\n")
    sizes = [1, 4, 16, 64, 256, 1024]
    rows, fit = [], {"on": [], "off": []}
    for kb in sizes:
        n = max(1, (kb * 1024 - 110) // 4)
        doc = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "statistics", "arguments": {"operation": "count", "values": ["1"] * n}}}
        path = b.body(doc)
        cells = [f"{kb} KiB"]
        for mode in ["on", "off"]:
            r = b.wrk(p, f"{base}/{mode}/mcp", 16 if kb < 256 else 8, {"BENCH_BODY_FILE": path})
            fit[mode].append(r["cpu_us"])
            cells += [f"{r['rps']:.0f}", f"{r['cpu_us']:.0f}", f"{r['rss_peak']:.1f}"]
        rows.append(cells)
    b.stop(p)
    s_on, s_off = slope(sizes, fit["on"]), slope(sizes, fit["off"])
    table("Request body size (tools/call arguments)", "python3 bench/curves.py --only body",
          ["arguments", "validated: req/s", "CPU µs/req", "RSS MB", "not validated: req/s", "CPU µs/req", "RSS MB"], rows,
          f"Slope: {s_on:.1f} µs per KiB validated, {s_off:.1f} µs per KiB not validated "
          f"(validation alone {s_on - s_off:.1f} µs per KiB). 8 connections from 256 KiB on, 16 below.")


def curve_tools(b):
    rows, xs, ys = [], [], []
    for n in [10, 100, 1000]:
        up = Upstream(n)
        names = ", ".join(f"t{i}" for i in range(n))
        p, base = b.gateway(f"  many:\n    upstreams: [ {{ url: \"http://127.0.0.1:{up.port}/mcp\" }} ]\n    tools: [{names}]\n",
                            'roles:\n  developer: { allow: ["many/*"] }\n')
        listing = b.body({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        r = b.wrk(p, f"{base}/many/mcp", 16, {"BENCH_BODY_FILE": listing})
        b.stop(p)
        up.close()
        xs.append(n)
        ys.append(r["cpu_us"])
        rows.append([str(n), f"{r['rps']:.0f}", f"{r['cpu_us']:.0f}", f"{r['rss_peak']:.1f}"])
    table("tools/list with 10 -> 1,000 tools in the scope", "python3 bench/curves.py --only tools",
          ["tools", "req/s", "CPU µs/req", "RSS MB"], rows,
          f"Slope: {slope(xs, ys):.2f} µs per tool listed (the answer grows by ~110 bytes a tool; the filtered list is "
          "cached per role and upstream answer, so the slope is the answer's bytes passing through).")


def curve_grants(b, min_port):
    rows, xs, ys = [], [], []
    call = b.body(SMALL_CALL)
    for n in [10, 100, 1000]:
        # A grant must name a tool of its scope: the scope lists the others too (the upstream
        # does not offer them, so they are never shown).
        others = [f"other{i}" for i in range(n - 1)]
        grants = ", ".join([f'"minimal/{t}"' for t in others] + ['"minimal/exact_calculate"'])
        p, base = b.gateway(minimal_scope(min_port, others + ["exact_calculate"]),
                            f"roles:\n  developer: {{ allow: [{grants}] }}\n")
        r = b.wrk(p, f"{base}/minimal/mcp", 64, {"BENCH_BODY_FILE": call})
        b.stop(p)
        xs.append(n)
        ys.append(r["cpu_us"])
        rows.append([str(n), f"{r['rps']:.0f}", f"{r['cpu_us']:.1f}", f"{r['rss_peak']:.1f}"])
    table("tools/call with 10 -> 1,000 grants in the caller's role", "python3 bench/curves.py --only grants",
          ["grants", "req/s", "CPU µs/req", "RSS MB"], rows,
          f"Slope: {slope(xs, ys) * 1000:.1f} µs per 1,000 grants (the call's grant is the last one listed).")


def curve_users(b, min_port):
    rows, xs, ys = [], [], []
    call = b.body(SMALL_CALL)
    for n in [1, 100, 10_000, 100_000]:
        tokens = os.path.join(b.tmp, f"users{n}.txt")
        open(tokens, "w").write("\n".join(harness.token(f"user{i}") for i in range(n)))
        p, base = b.gateway(minimal_scope(min_port), MINIMAL_POLICY)
        idle = harness.rss_mb([p.pid])
        r = b.wrk(p, f"{base}/minimal/mcp", 64, {"BENCH_BODY_FILE": call, "BENCH_TOKENS": tokens})
        after = harness.rss_mb([p.pid])
        b.stop(p)
        xs.append(n)
        ys.append(after)
        rows.append([f"{n:,}", f"{r['requests']:,}", f"{r['rps']:.0f}", f"{r['cpu_us']:.1f}", f"{idle:.1f}", f"{r['rss_peak']:.1f}"])
    table("1 -> 100,000 distinct users (tokens, rate-limit state)", "python3 bench/curves.py --only users",
          ["users", "requests", "req/s", "CPU µs/req", "RSS idle MB", "RSS peak MB"], rows,
          f"Slope of RSS: {slope(xs, ys) * 1000:.2f} MB per 1,000 users. Every user's token is new to the gateway "
          "once; the verified-token cache holds 20,000 tokens or 8 MiB, so beyond it tokens are verified again.")


def open_sessions(url, n):
    """Opens `n` sessions (initialize + initialized), 8 connections at once; their ids."""
    tok = harness.token("bench")
    ids, lock = [], threading.Lock()
    host, port = url.split("//")[1].split("/")[0].split(":")
    path = "/" + url.split("//")[1].split("/", 1)[1]

    def worker(count):
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        base = {"Authorization": f"Bearer {tok}", "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}
        for _ in range(count):
            conn.request("POST", path, json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}), base)
            r = conn.getresponse()
            r.read()
            sid = r.getheader("mcp-session-id")
            conn.request("POST", path, '{"jsonrpc":"2.0","method":"notifications/initialized"}', {**base, "Mcp-Session-Id": sid})
            conn.getresponse().read()
            with lock:
                ids.append(sid)

    threads = [threading.Thread(target=worker, args=(n // 8 + (1 if i < n % 8 else 0),)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ids


def curve_sessions(b, max_sessions):
    rows, xs, ys = [], [], []
    for n in [s for s in [1, 1000, 10_000, 100_000] if s <= max_sessions]:
        up = Upstream(1)
        p, base = b.gateway(f"  sess:\n    upstreams: [ {{ url: \"http://127.0.0.1:{up.port}/mcp\" }} ]\n    tools: [t0]\n",
                            'roles:\n  developer: { allow: ["sess/*"] }\n')
        before = harness.rss_mb([p.pid])
        t0 = time.time()
        ids = open_sessions(f"{base}/sess/mcp", n)
        opened = time.time() - t0
        after_open = harness.rss_mb([p.pid])
        sessions = os.path.join(b.tmp, f"sessions{n}.txt")
        open(sessions, "w").write("\n".join(ids))
        call = b.body({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "t0", "arguments": {"x": "y"}}})
        r = b.wrk(p, f"{base}/sess/mcp", 16, {"BENCH_BODY_FILE": call, "BENCH_SESSIONS": sessions})
        b.stop(p)
        up.close()
        xs.append(n)
        ys.append(after_open)
        rows.append([f"{n:,}", f"{n / opened:.0f}", f"{before:.1f}", f"{after_open:.1f}", f"{r['rps']:.0f}", f"{r['cpu_us']:.1f}"])
    table("1 -> 100,000 open sessions", "python3 bench/curves.py --only sessions",
          ["sessions", "opened per s", "RSS before MB", "RSS after opening MB", "calls over them: req/s", "CPU µs/req"], rows,
          f"Slope of RSS: {slope(xs, ys) * 1000:.3f} MB per 1,000 sessions. A session is sealed into its id "
          "(the gateway keeps no table of sessions); req/s is bounded by the Python upstream.")


async def hold_streams(port, n, tokens):
    """Opens `n` legacy SSE streams (`GET /minimal/sse`), each read up to its `endpoint` event, and
    keeps them open; returns the writers (closing them closes the streams)."""
    sem = asyncio.Semaphore(200)
    writers = []

    async def one(i):
        async with sem:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(f"GET /minimal/sse HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                    f"Authorization: Bearer {tokens[i]}\r\n\r\n".encode())
            await w.drain()
            seen = b""
            while b"event: endpoint" not in seen:
                chunk = await asyncio.wait_for(r.read(4096), 10)
                if not chunk:
                    raise RuntimeError(f"stream {i} closed: {seen[:200]!r}")
                seen += chunk
            writers.append(w)

    await asyncio.gather(*(one(i) for i in range(n)))
    return writers


def curve_streams(b, min_port):
    """1 -> 10,000 legacy SSE streams held by the gateway (its per-instance maximum), 16 per user
    (the per-user maximum is 32)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 30000)), hard))
    rows, xs, ys = [], [], []
    for n in [1, 100, 1000, 10_000]:
        tokens = [harness.token(f"streamer{i // 16}") for i in range(n)]
        p, base = b.gateway(minimal_scope(min_port), MINIMAL_POLICY,
                            "connections: { max: 20000, max_per_address: 20000 }\n")
        port = int(base.rsplit(":", 1)[1])
        before = harness.rss_mb([p.pid])
        cpu0 = harness.cpu_seconds([p.pid])
        t0 = time.time()

        async def run():
            writers = await hold_streams(port, n, tokens)
            opened = time.time() - t0
            await asyncio.sleep(2)
            held = harness.rss_mb([p.pid])
            for w in writers:
                w.close()
            return opened, held

        opened, held = asyncio.run(run())
        cpu = harness.cpu_seconds([p.pid]) - cpu0
        b.stop(p)
        xs.append(n)
        ys.append(held)
        rows.append([f"{n:,}", f"{opened:.1f}", f"{cpu / n * 1e6:.0f}", f"{before:.1f}", f"{held:.1f}"])
    per = slope(xs, ys) * 1024 * 1024 / 1000
    table("1 -> 10,000 SSE streams held (legacy HTTP+SSE, `GET /minimal/sse`)", "python3 bench/curves.py --only streams",
          ["streams", "opened in s", "CPU µs per stream opened", "RSS before MB", "RSS holding them MB"], rows,
          f"Slope: {per:.1f} KB of RSS per stream held.")


def metric(url, name):
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def curve_audit(b, min_port):
    """Audit rows per second into PostgreSQL (on the same two cores) at rising request rates, until
    rows are spooled instead of written or the gateway cannot keep the rate."""
    pgtmp = os.path.join(b.tmp, "pg")
    os.makedirs(pgtmp)
    db_url, stop_pg = harness.start_postgres(pgtmp)
    mport = harness.free_port()
    try:
        p, base = b.gateway(minimal_scope(min_port), MINIMAL_POLICY, f"metrics_listen: 127.0.0.1:{mport}\n",
                            audit=f"audit: {{ database_url: \"{db_url}\", spool_file: {b.tmp}/spool.jsonl }}")
        call = b.body(SMALL_CALL)
        murl = f"http://127.0.0.1:{mport}/metrics"
        rows = []
        for rate in [500, 1000, 2000, 4000, 8000]:
            w0, s0 = metric(murl, 'mcp_audit_rows_total{result="written"}'), metric(murl, 'mcp_audit_rows_total{result="spooled"}')
            t0 = time.time()
            c = harness.Contender("gateway", {"json": f"{base}/minimal/mcp"}, p)
            r = harness.run_fixed_rate(c, rate, 64, b.secs, call, harness.token("bench"), b.tmp)
            time.sleep(1)
            written = metric(murl, 'mcp_audit_rows_total{result="written"}') - w0
            spooled = metric(murl, 'mcp_audit_rows_total{result="spooled"}') - s0
            depth = metric(murl, "mcp_audit_queue_depth")
            rows.append([f"{rate:,}", f"{r['rps']:.0f}", f"{written / (time.time() - t0):.0f}", f"{spooled:.0f}",
                         f"{depth:.0f}", f"{r['p99']:.1f}", f"{r['errors']}"])
            if spooled or r["rps"] < 0.9 * rate:
                break
        b.stop(p)
    finally:
        stop_pg()
    table("Audit rows per second into PostgreSQL, rising until the spool starts", "python3 bench/curves.py --only audit",
          ["asked req/s", "served req/s", "rows written per s", "rows spooled", "queue after", "p99 ms", "errors"], rows,
          "The last row is where the gateway stopped keeping the rate or started to spool.")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--only", action="append", default=[], help="body, tools, grants, users, sessions, streams, audit (repeatable)")
    ap.add_argument("--seconds", type=int, default=SECS)
    ap.add_argument("--max-sessions", type=int, default=100_000)
    args = ap.parse_args()
    harness.ensure_tools()
    if not args.no_build:
        harness.build("minimal-upstream")
    b = Bench(args)
    want = lambda c: not args.only or c in args.only
    try:
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        calc_port, min_port = harness.free_port(), harness.free_port()
        b.procs.append(subprocess.Popen([b.gw_bin, "tool", "calculator", "--listen", f"127.0.0.1:{calc_port}"],
                                        env={**os.environ, "TOOL_GATEWAY_SHARED_SECRET": harness.SECRET, "RUST_LOG": "warn"}, **quiet))
        b.procs.append(subprocess.Popen([os.path.join(harness.BIN, "examples/minimal-upstream"),
                                         f"127.0.0.1:{min_port}", "1"], **quiet))
        harness.wait_port(calc_port)
        harness.wait_port(min_port)
        if want("body"):
            curve_body(b, calc_port)
        if want("tools"):
            curve_tools(b)
        if want("grants"):
            curve_grants(b, min_port)
        if want("users"):
            curve_users(b, min_port)
        if want("sessions"):
            curve_sessions(b, args.max_sessions)
        if want("streams"):
            curve_streams(b, min_port)
        if want("audit"):
            curve_audit(b, min_port)
    finally:
        b.close()


if __name__ == "__main__":
    main()
