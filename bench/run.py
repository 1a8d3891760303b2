#!/usr/bin/env python3
"""mcp-gateway benchmark harness: one command, loopback only, bounded in time.

Builds in release mode, starts the upstreams (the bundled calculator, stateless, once answering JSON
and once answering SSE), nginx, a bare Pingora proxy, the gateway with full policy (JWT, RBAC, a rate
limit that is never hit, audit to a PostgreSQL this script starts) and the gateway with audit off;
runs wrk against each in alternating order for several rounds; then h2load at a fixed rate (half of
nginx's peak) for latency without saturation; prints medians, ratios and resource figures.

    python3 bench/run.py            # full run (about 10 minutes plus the build)
    python3 bench/run.py --quick    # small tools/call at 256 connections only (about 1.5 minutes)
"""

import argparse, base64, hashlib, hmac, json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, threading, time
import urllib.error, urllib.parse, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The cargo profile measured: `dist` (what the container image ships; slow to build) by default,
# `BENCH_PROFILE=release` for the quicker local build. Every contender is built with the same one.
PROFILE = os.environ.get("BENCH_PROFILE", "dist")
BIN = os.path.join(ROOT, "target", PROFILE)


def build(*targets):
    """`cargo build` of the gateway and `targets` (examples) with the measured profile."""
    cmd = ["cargo", "build", "--profile", PROFILE, "--bin", "mcp-gateway"]
    for t in targets:
        cmd += ["--example", t]
    sh(cmd, cwd=ROOT)
SECRET = "bench-upstream-secret-0123456789"
BENCH_ORIGIN = "https://app.bench.example"  # allowed by the gateway: its answers carry CORS headers
JWT_SECRET = "bench-jwt-secret-bench-jwt-secret-0123456789"
SESSION_SECRET = "bench-session-secret-0123456789"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, **kw)


def ensure_tools():
    missing = [pkg for tool, pkg in [("wrk", "wrk"), ("nginx", "nginx"), ("h2load", "nghttp2-client")]
               if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}")]
    if not any(os.path.exists(p) for p in ["/usr/lib/postgresql"]):
        missing.append("postgresql")
    try:
        import cryptography  # noqa: F401  (RS256 tokens)
    except ImportError:
        missing.append("python3-cryptography")
    if missing:
        print(f"installing {' '.join(missing)}", flush=True)
        sh("apt-get update -qq")
        sh(["apt-get", "install", "-y", "-qq", *missing], env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(claims):
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(JWT_SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def claims(user, i):
    now = int(time.time())
    return {"sub": user, "roles": ["developer"], "iss": "bench", "aud": "mcp-gateway", "iat": now, "exp": now + 3600, "n": i}


def token(user, i=0):
    return hs256(claims(user, i))


def rs256_keys(tmp, count):
    """A fresh RSA key: its public half for the gateway, and `count` distinct RS256 tokens."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = os.path.join(tmp, "rs256.pub.pem")
    open(pem, "wb").write(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    head = b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    tokens = []
    for i in range(count):
        signing_input = f"{head}.{b64(json.dumps(claims('fresh-rs', i), separators=(',', ':')).encode())}"
        sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        tokens.append(f"{signing_input}.{b64(sig)}")
    return pem, tokens


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / CLK_TCK


def rss_mb(pids, field="VmRSS"):
    """Resident memory of `pids` in MB. `VmRSS` counts the executable's code pages mapped from the
    page cache too (shared and reclaimable; tens of MB for a large binary); `RssAnon` is only the
    process's own heap, stacks and buffers."""
    total = 0
    for pid in pids:
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def anon_mb(pids):
    return rss_mb(pids, "RssAnon")


def cpu_steal():
    """(steal, total) jiffies of the whole machine: on a VM, time the host gave to someone else."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return fields[7], sum(fields[:8])


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def descendants(pid):
    """Every process below `pid` (a stdio server runs under its adapter, under the gateway)."""
    found = children(pid)
    return found + [d for c in found for d in descendants(c)]


USERS_SCENARIO = "10,000 users under per-user limits, 256 conns"
# Scopes beyond a plain HTTP upstream, run by "gateway-scopes" (audit off) beside its plain scope.
REFERENCE = "tools/call small, 64 conns"
STDIO_SCENARIO = "tools/call to a shared stdio server (server-everything echo), 64 conns"
COMPOSED_SCENARIO = "tools/call on a composed scope (the calculator behind the composer), 64 conns"
SEARCH_SCENARIO = "call_tool on a discovery: search scope (the calculator), 64 conns"
MACHINE_SCENARIO = "tools/call with a held machine token (oauth_client_credentials), 64 conns"
EXCHANGED_SCENARIO = "tools/call with a cached exchanged token (token_exchange), 64 conns"
PER_USER_SCENARIO = "tools/call with the user's own cached login (per_user_oauth), 64 conns"
CONDITION_SCENARIO = "tools/call through a grant with a condition on args and claims, 64 conns"
GUARD_SCENARIOS = [
    ("tools/call with a 4 KB result, no guards, 64 conns", "plain4k"),
    ("tools/call with a 4 KB result scanned clean by guards, 64 conns", "guarded4k"),
    ("tools/call with a 64 KB result, no guards, 64 conns", "plain64k"),
    ("tools/call with a 64 KB result scanned clean by guards, 64 conns", "guarded64k"),
    ("tools/call with a 4 KB result redacted by guards (a card, an e-mail), 64 conns", "redacted4k"),
]
SCOPE_SCENARIOS = {REFERENCE, STDIO_SCENARIO, COMPOSED_SCENARIO, SEARCH_SCENARIO, MACHINE_SCENARIO, EXCHANGED_SCENARIO,
                   PER_USER_SCENARIO, CONDITION_SCENARIO} | {name for name, _ in GUARD_SCENARIOS}
EVERYTHING = os.path.join(ROOT, "tests/node/node_modules/.bin/mcp-server-everything")
HEADLINE = "tools/call small on a minimal upstream, 256 conns"
# Tracing off ("gateway-audit-off") and on at two sample ratios, exporting to the minimal upstream's
# OTLP endpoint.
TRACE_SCENARIO = "tools/call small on a minimal upstream, tracing off / 0.01 / 1.0, 64 conns"
TRACED = [("gateway-trace-0.01", 0.01), ("gateway-trace-1.0", 1.0)]


class Contender:
    """`urls` maps the upstream kind ("json" or "sse") to the URL that reaches it through this contender.
    "bridged" is the gateway's scope that bridges 2026-07-28 clients to the calculator in 2025-11-25;
    the others reach the calculator as for "json" (it speaks 2026-07-28 itself)."""

    def __init__(self, name, urls, proc, extra_pids=lambda: [], only=None):
        urls.setdefault("bridged", urls["json"])
        self.name, self.urls, self.proc, self.extra_pids, self.only = name, urls, proc, extra_pids, only

    def pids(self):
        return [self.proc.pid, *self.extra_pids()]


def start_postgres(tmp):
    bindir = sorted(d for d in (os.path.join("/usr/lib/postgresql", v, "bin") for v in os.listdir("/usr/lib/postgresql")) if os.path.exists(os.path.join(d, "initdb")))[-1]
    data = os.path.join(tmp, "pg")
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if os.geteuid() == 0:
        sh(["chown", "-R", "postgres:postgres", tmp])
    port = free_port()
    sh([*as_pg, f"{bindir}/initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync"], stdout=subprocess.DEVNULL)
    sh([*as_pg, f"{bindir}/pg_ctl", "-D", data, "-l", os.path.join(tmp, "pg.log"), "-w", "-o",
        f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={tmp} -c fsync=off -c synchronous_commit=off", "start"], stdout=subprocess.DEVNULL)
    stop = lambda: subprocess.run([*as_pg, f"{bindir}/pg_ctl", "-D", data, "-m", "fast", "stop"], stdout=subprocess.DEVNULL)
    return f"postgres://postgres@127.0.0.1:{port}/postgres", stop


def gateway_conf(tmp, name, upstream_port, sse_port, db_url, rs256_pem, limits=True, tls=None, min_port=None, scopes=None):
    """`tls`: (cert, key, port) of a TLS listener beside the plain one; `scopes`: (token endpoint
    port, token exchange port) for the stdio, composed, discovery and credential scopes."""
    d = os.path.join(tmp, name)
    os.makedirs(d)
    port = free_port()
    audit = f"audit:\n  database_url: {db_url}\n  spool_file: spool.jsonl\n" if db_url else "audit:\n  enabled: false\n"
    listen = f"listen: 127.0.0.1:{port}"
    if tls:
        listen = (f"listeners:\n  - address: 127.0.0.1:{port}\n  - address: 127.0.0.1:{tls[2]}\n"
                  f"    tls: {{ cert_file: {tls[0]}, key_file: {tls[1]} }}")
    open(f"{d}/gateway.yaml", "w").write(f"""{listen}
tools_file: tools.yaml
policy_file: policy.yaml
threads: 2
shutdown_grace: 1s
jwt:
  algorithms: [HS256, RS256]
  secret: {JWT_SECRET}
  public_key_file: {rs256_pem}
  issuer: bench
  audience: mcp-gateway
upstream_shared_secret: {SECRET}
session_secrets: [{SESSION_SECRET}]
allowed_origins: [{BENCH_ORIGIN}]
{audit}""" + (f"public_url: http://127.0.0.1:{port}\nauthorization_servers: [http://127.0.0.1:{scopes[1]}]\n" if scopes else ""))
    open(f"{d}/tools.yaml", "w").write(f"""scopes:
  calculator:
    upstreams:
      - url: http://127.0.0.1:{upstream_port}/mcp
    health_check: {{ kind: tcp, interval: 5s }}
    tools: [exact_calculate, statistics]
    validate_arguments_max_bytes: 1048576
  calcsse:
    upstreams:
      - url: http://127.0.0.1:{sse_port}/mcp
    health_check: {{ kind: tcp, interval: 5s }}
    tools: [exact_calculate, statistics]
  calcbridged:
    upstreams:
      - url: http://127.0.0.1:{upstream_port}/mcp
    health_check: {{ kind: tcp, interval: 5s }}
    tools: [exact_calculate, statistics]
    upstream_version: 2025-11-25
  minimal:
    upstreams:
      - url: http://127.0.0.1:{min_port}/mcp
    health_check: {{ kind: tcp, interval: 5s }}
    tools: [exact_calculate]
""" + (f"""  everything:
    upstreams:
      - command: ["{EVERYTHING}"]
    health_check: {{ kind: tcp, interval: 5s }}
    tools: [echo]
  composed:
    servers:
      - name: calc
        upstreams: [ {{ url: "http://127.0.0.1:{upstream_port}/mcp" }} ]
        prefix: none
        health_check: {{ kind: tcp, interval: 5s }}
        tools: [exact_calculate, statistics]
  searched:
    upstreams:
      - url: http://127.0.0.1:{upstream_port}/mcp
    health_check: {{ kind: tcp, interval: 5s }}
    discovery: search
    tools: [exact_calculate, statistics]
  machine:
    upstreams:
      - url: http://127.0.0.1:{upstream_port}/mcp
        auth: {{ oauth_client_credentials: {{ token_url: "http://127.0.0.1:{scopes[0]}/token", client_id: bench, client_secret: bench }} }}
    health_check: {{ kind: tcp, interval: 5s }}
    tools: [exact_calculate, statistics]
  exchanged:
    upstreams:
      - url: http://127.0.0.1:{upstream_port}/mcp
        auth: {{ token_exchange: {{ token_url: "http://127.0.0.1:{scopes[1]}/token", audience: "https://calculator.bench" }} }}
    health_check: {{ kind: tcp, interval: 5s }}
    tools: [exact_calculate, statistics]
  peruser:
    upstreams:
      - url: http://127.0.0.1:{upstream_port}/mcp
        auth: {{ per_user_oauth: {{ authorization_server: "http://127.0.0.1:{scopes[1]}" }} }}
    health_check: {{ kind: tcp, interval: 5s }}
    tools: [exact_calculate, statistics]
  conditioned:
    upstreams:
      - url: http://127.0.0.1:{upstream_port}/mcp
    health_check: {{ kind: tcp, interval: 5s }}
    tools: [exact_calculate, statistics]
""" + "".join(f"""  {name}:
    upstreams:
      - url: http://127.0.0.1:{min_port}{path}
    health_check: {{ kind: tcp, interval: 5s }}
    tools: [exact_calculate]
""" + ("    guards: { arguments: { secrets: block }, results: { secrets: redact, pii: redact } }\n" if guarded else "")
    for name, path, guarded in [("plain4k", "/big/4k", False), ("guarded4k", "/big/4k", True), ("plain64k", "/big/64k", False),
                                ("guarded64k", "/big/64k", True), ("redacted4k", "/leak/4k", True)]) if scopes else ""))
    open(f"{d}/policy.yaml", "w").write('roles:\n  developer: { allow: ["calculator/*", "calcsse/*", "calcbridged/*", "minimal/*"'
                                        + (', "everything/*", "composed/*", "searched/*", "machine/*", "exchanged/*", "peruser/*", "plain4k/*", "guarded4k/*", "plain64k/*", "guarded64k/*", "redacted4k/*"' if scopes else "")
                                        + (""", { tool: "conditioned/exact_calculate", when: 'args.operator == "add" && claims.sub == user' }""" if scopes else "")
                                        + '] }\n'
                                        + ("rate_limits:\n  - { name: never-hit, key: user, rate: 1000000/s }\n" if limits else ""))
    return f"{d}/gateway.yaml", port


WRK_LUA = r"""
local tokens = {}
local n = 0
local body = os.getenv("BENCH_BODY_FILE")
if body then
  local f = assert(io.open(body, "r")); wrk.body = f:read("*a"); f:close()
end
local tf = os.getenv("BENCH_TOKENS")
if tf then for line in io.lines(tf) do tokens[#tokens + 1] = line end end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["X-Gateway-Auth"] = os.getenv("BENCH_SECRET")
if #tokens == 0 then wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN") end
local origin = os.getenv("BENCH_ORIGIN")
if origin then wrk.headers["Origin"] = origin end
if os.getenv("BENCH_CLOSE") then wrk.headers["Connection"] = "close" end
local session = os.getenv("BENCH_SESSION")
if session then
  wrk.headers["Mcp-Session-Id"] = session
  wrk.headers["MCP-Protocol-Version"] = "2025-06-18"
end
if os.getenv("BENCH_MODERN") then
  wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
  wrk.headers["Mcp-Method"] = "tools/call"
  wrk.headers["Mcp-Name"] = "exact_calculate"
end
local sessions = {}
local sf = os.getenv("BENCH_SESSIONS")
if sf then
  for line in io.lines(sf) do sessions[#sessions + 1] = line end
  wrk.headers["MCP-Protocol-Version"] = "2025-06-18"
end
local m = 0
local thread_offset = 0
function setup(thread) thread_offset = thread_offset + 1; thread:set("offset", thread_offset) end
function init(args) n = (offset or 1) * 7919 end
function request()
  if #tokens > 0 then
    n = n + 1
    wrk.headers["Authorization"] = "Bearer " .. tokens[(n % #tokens) + 1]
  end
  if #sessions > 0 then
    m = m + 1
    wrk.headers["Mcp-Session-Id"] = sessions[((m + n) % #sessions) + 1]
  end
  return wrk.format()
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH {"requests":%d,"duration_us":%d,"errors":%d,"p50":%d,"p99":%d,"p999":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout + e.status,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
"""


def run_wrk(c, kind, conns, secs, env):
    pids = c.pids()
    cpu0, t0 = cpu_seconds(pids), time.time()
    peak, anon = [rss_mb(pids)], [anon_mb(pids)]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak.append(rss_mb(c.pids()))
            anon.append(anon_mb(c.pids()))
            time.sleep(0.2)

    th = threading.Thread(target=sample)
    th.start()
    out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{secs}s", "--timeout", "10s", "-s", env["BENCH_LUA"], c.urls[kind]],
                         capture_output=True, text=True, env={**os.environ, **env}).stdout
    stop.set()
    th.join()
    cpu = cpu_seconds(c.pids()) - cpu0
    line = next(l for l in out.splitlines() if l.startswith("BENCH "))
    r = json.loads(line[6:])
    rps = r["requests"] / (r["duration_us"] / 1e6)
    return {"rps": rps, "p50": r["p50"] / 1000, "p99": r["p99"] / 1000, "p999": r["p999"] / 1000,
            "cpu_us": cpu / max(r["requests"], 1) * 1e6, "rss_peak": max(peak), "anon_peak": max(anon), "errors": r["errors"], "requests": r["requests"]}


def token_endpoint():
    """A token endpoint answering every client credentials request with one long-lived token
    (the gateway holds it; the calculator ignores it). Returns its port."""
    import http.server

    class Token(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = b'{"access_token":"bench-machine-token","token_type":"Bearer","expires_in":3600}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Token)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def open_session(url, tok):
    """A client session on `url` (initialize, then initialized): its id."""
    def post(body, session=None):
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                   "Authorization": f"Bearer {tok}", "MCP-Protocol-Version": "2025-06-18"}
        if session:
            headers["Mcp-Session-Id"] = session
        req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()
            return r.headers.get("mcp-session-id")
    session = post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
    post({"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    return session


class _Stay(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kw):
        return None


def sign_in(url, tok, user="bench"):
    """Signs `user` in to a per_user_oauth scope as a person would: the refused call's link, the
    consent page, the issuer's login form (at the gateway's and the upstream's server, here one
    development issuer) and back; the login is then held by the gateway."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "exact_calculate", "arguments": {}}})
    req = urllib.request.Request(url, data=body.encode(), method="POST", headers={
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream", "Authorization": f"Bearer {tok}",
        "MCP-Protocol-Version": "2025-11-25"})
    with urllib.request.urlopen(req, timeout=30) as r:
        link = json.loads(r.read())["error"]["data"]["elicitations"][0]["url"]
    opener = urllib.request.build_opener(_Stay)
    cookie, at = None, link
    for _ in range(12):
        u = urllib.parse.urlsplit(at)
        if u.path == "/authorize":
            form = urllib.parse.parse_qsl(u.query) + [("user_id", user), ("roles", "developer")]
            req = urllib.request.Request(f"{u.scheme}://{u.netloc}/authorize", data=urllib.parse.urlencode(form).encode(), method="POST")
        else:
            req = urllib.request.Request(at, headers={"Cookie": cookie} if cookie else {})
        try:
            with opener.open(req, timeout=30) as r:
                assert r.status == 200, r.status
                return
        except urllib.error.HTTPError as e:
            if e.code not in (302, 303):
                raise
            if e.headers.get("Set-Cookie"):
                cookie = e.headers["Set-Cookie"].split(";")[0]
            at = urllib.parse.urljoin(at, e.headers["Location"])
    raise RuntimeError("the sign-in did not finish")


def stdio_direct(cmd, secs, conc):
    """The stdio server driven directly over its stdin/stdout by one client keeping `conc` echo
    calls in flight: what the server itself can do, without the gateway."""
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    send = lambda m: (p.stdin.write((json.dumps(m) + "\n").encode()), p.stdin.flush())
    read = lambda: json.loads(p.stdout.readline())
    try:
        send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
        while read().get("id") != 0:
            pass
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        call = lambda i: {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "hi"}}}
        sent, n, lat = {}, 0, []
        cpu0, t0 = cpu_seconds([p.pid]), time.perf_counter()
        for _ in range(conc):
            n += 1
            sent[n] = time.perf_counter()
            send(call(n))
        while time.perf_counter() - t0 < secs:
            msg = read()
            if msg.get("id") in sent:
                now = time.perf_counter()
                lat.append((now - sent.pop(msg["id"])) * 1000)
                n += 1
                sent[n] = now
                send(call(n))
        elapsed, cpu, rss = time.perf_counter() - t0, cpu_seconds([p.pid]) - cpu0, rss_mb([p.pid])
    finally:
        p.kill()
        p.wait()
    lat.sort()
    pct = lambda q: lat[min(int(q * len(lat)), len(lat) - 1)]
    return {"rps": len(lat) / elapsed, "p50": pct(0.5), "p99": pct(0.99), "p999": pct(0.999),
            "cpu_us": cpu / max(len(lat), 1) * 1e6, "rss_peak": rss, "errors": 0, "requests": len(lat)}


def run_fixed_rate(c, rate, conns, secs, body_file, tok, tmp):
    """h2load at a fixed request rate (open loop per connection): latency when nobody is saturated."""
    log = os.path.join(tmp, f"h2load-{c.name}.log")
    if os.path.exists(log):
        os.remove(log)  # h2load appends
    pids = c.pids()
    cpu0 = cpu_seconds(pids)
    subprocess.run(["h2load", "--h1", "-c", str(conns), "-t", "1", "--rps", f"{rate / conns:.3f}", "-D", str(secs),
                    "--warm-up-time", "1", "-d", body_file, "-H", "Content-Type: application/json",
                    "-H", "Accept: application/json, text/event-stream", "-H", f"X-Gateway-Auth: {SECRET}",
                    "-H", f"Authorization: Bearer {tok}", "--log-file", log, c.urls["json"]],
                   capture_output=True, text=True, timeout=secs + 30)
    cpu = cpu_seconds(c.pids()) - cpu0
    rows = [line.split("\t") for line in open(log).read().splitlines() if line.strip()]
    lat = sorted(int(r[2]) / 1000 for r in rows)
    errors = sum(1 for r in rows if not r[1].startswith("2"))
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
    return {"rps": len(rows) / secs, "p50": pct(0.5), "p99": pct(0.99), "p999": pct(0.999),
            "cpu_us": cpu / max(len(rows), 1) * 1e6, "errors": errors, "requests": len(rows)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="one scenario (small tools/call, 256 connections)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=0, help="length of each measurement")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--tls", action="store_true", help="only the TLS scenarios (gateway and nginx)")
    ap.add_argument("--only", action="append", default=[], metavar="TEXT",
                    help="only the scenarios whose name holds TEXT (repeatable); prints their tables")
    args = ap.parse_args()
    secs = args.seconds or 3
    started = time.time()
    ensure_tools()
    build_started = time.time()
    if not args.no_build:
        build("bare-pingora", "minimal-upstream")
    build_seconds = time.time() - build_started
    gw_bin = os.path.join(BIN, "mcp-gateway")
    bare_bin = os.path.join(BIN, "examples/bare-pingora")
    min_bin = os.path.join(BIN, "examples/minimal-upstream")
    tmp = tempfile.mkdtemp(prefix="mcp-bench-")
    os.chmod(tmp, 0o755)
    procs, cleanups = [], []
    try:
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        up_port, sse_port = free_port(), free_port()
        procs.append(subprocess.Popen([gw_bin, "tool", "calculator", "--listen", f"127.0.0.1:{up_port}"],
                                      env={**os.environ, "TOOL_GATEWAY_SHARED_SECRET": SECRET, "RUST_LOG": "warn"}, **quiet))
        sse_up = subprocess.Popen([gw_bin, "tool", "calculator", "--sse", "--listen", f"127.0.0.1:{sse_port}"],
                                  env={**os.environ, "TOOL_GATEWAY_SHARED_SECRET": SECRET, "RUST_LOG": "warn"}, **quiet)
        procs.append(sse_up)
        # The headline's upstream: a fixed answer, so the proxies' own cost shows.
        min_port = free_port()
        min_up = subprocess.Popen([min_bin, f"127.0.0.1:{min_port}", "2"], **quiet)
        procs.append(min_up)
        wait_port(up_port)
        wait_port(sse_port)
        wait_port(min_port)
        t0 = time.time()
        rs_pem, rs_tokens = rs256_keys(tmp, 0 if args.quick or args.tls else 30000)
        if rs_tokens:
            print(f"signed {len(rs_tokens)} RS256 tokens in {time.time() - t0:.0f} s", flush=True)
        pgtmp = os.path.join(tmp, "pgdir")
        os.makedirs(pgtmp)
        db_url, pg_stop = start_postgres(pgtmp)
        cleanups.append(pg_stop)
        contenders = [Contender("direct", {"json": f"http://127.0.0.1:{up_port}/mcp", "sse": f"http://127.0.0.1:{sse_port}/mcp",
                                           "min": f"http://127.0.0.1:{min_port}/mcp"},
                                procs[0], lambda: [sse_up.pid, min_up.pid])]

        # One certificate for both TLS contenders (ECDSA P-256, as most edge deployments use).
        cert, key = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        sh(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert],
           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ng_port, ng_tls_port, gw_tls_port = free_port(), free_port(), free_port()
        ng_dir = os.path.join(tmp, "nginx")
        os.makedirs(ng_dir)
        # One location per upstream: keep-alive to it, the upstream secret, no buffering.
        locations = "\n".join(f"""    location {path} {{
      proxy_pass http://{up}/mcp;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Gateway-Auth {SECRET};
      proxy_buffering off;
    }}""" for path, up in [("/min/", "upmin"), ("/calcsse/", "upsse"), ("/", "up")])
        open(f"{ng_dir}/nginx.conf", "w").write(f"""worker_processes 2;
pid {ng_dir}/nginx.pid;
error_log {ng_dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  upstream up {{ server 127.0.0.1:{up_port}; keepalive 256; }}
  upstream upsse {{ server 127.0.0.1:{sse_port}; keepalive 256; }}
  upstream upmin {{ server 127.0.0.1:{min_port}; keepalive 256; }}
  server {{
    listen 127.0.0.1:{ng_port};
    listen 127.0.0.1:{ng_tls_port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_conf_command Ciphersuites TLS_AES_256_GCM_SHA384;
    client_max_body_size 2m;
{locations}
  }}
}}
""")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        ng = subprocess.Popen([nginx, "-c", f"{ng_dir}/nginx.conf", "-g", "daemon off;"], **quiet)
        procs.append(ng)
        wait_port(ng_port)
        contenders.append(Contender("nginx", {"json": f"http://127.0.0.1:{ng_port}/", "sse": f"http://127.0.0.1:{ng_port}/calcsse/",
                                              "min": f"http://127.0.0.1:{ng_port}/min/",
                                              "tls": f"https://127.0.0.1:{ng_tls_port}/"},
                                    ng, lambda: children(ng.pid)))

        bp_port = free_port()
        bp = subprocess.Popen([bare_bin, f"127.0.0.1:{bp_port}", f"127.0.0.1:{up_port}", f"127.0.0.1:{sse_port}", SECRET, "2"],
                              env={**os.environ, "BARE_MIN_UPSTREAM": f"127.0.0.1:{min_port}"}, **quiet)
        procs.append(bp)
        wait_port(bp_port)
        contenders.append(Contender("pingora", {"json": f"http://127.0.0.1:{bp_port}/calculator/mcp",
                                                "min": f"http://127.0.0.1:{bp_port}/min/mcp",
                                                "sse": f"http://127.0.0.1:{bp_port}/calcsse/mcp"}, bp))

        # "gateway-no-limits" (audit off, no rate limit) runs only where it answers a question:
        # what per-user limits over 10,000 users cost, against "gateway-audit-off".
        # "gateway-audit-file" (audit rows to a JSON-lines file, no database) runs the headline only.
        for name, db, limits, only in [("gateway", db_url, True, None), ("gateway-audit-off", None, True, None),
                                       ("gateway-audit-file", None, True, {HEADLINE}),
                                       ("gateway-no-limits", None, False, {USERS_SCENARIO})]:
            if only and args.quick and HEADLINE not in only:
                continue
            tls = (cert, key, gw_tls_port) if name == "gateway" else None
            conf, port = gateway_conf(tmp, name, up_port, sse_port, db, rs_pem, limits, tls, min_port)
            if name == "gateway-audit-file":
                text = open(conf).read().replace("audit:\n  enabled: false\n",
                                                 f"audit:\n  file: {os.path.dirname(conf)}/audit.jsonl\n")
                open(conf, "w").write(text)
            p = subprocess.Popen([gw_bin, "run", "-c", conf], env={**os.environ, "RUST_LOG": "warn"}, **quiet)
            procs.append(p)
            wait_port(port)
            urls = {"json": f"http://127.0.0.1:{port}/calculator/mcp", "bridged": f"http://127.0.0.1:{port}/calcbridged/mcp",
                    "min": f"http://127.0.0.1:{port}/minimal/mcp",
                    "sse": f"http://127.0.0.1:{port}/calcsse/mcp"}
            if tls:
                urls["tls"] = f"https://127.0.0.1:{gw_tls_port}/calculator/mcp"
            contenders.append(Contender(name, urls, p, only=only))
        if not args.quick and not args.tls:
            for name, ratio in TRACED:
                conf, port = gateway_conf(tmp, name, up_port, sse_port, None, rs_pem, True, None, min_port)
                open(conf, "a").write(f"tracing:\n  otlp_endpoint: http://127.0.0.1:{min_port}\n  sample_ratio: {ratio}\n")
                p = subprocess.Popen([gw_bin, "run", "-c", conf], env={**os.environ, "RUST_LOG": "warn"}, **quiet)
                procs.append(p)
                wait_port(port)
                contenders.append(Contender(name, {"json": f"http://127.0.0.1:{port}/calculator/mcp",
                                                   "min": f"http://127.0.0.1:{port}/minimal/mcp"}, p, only={TRACE_SCENARIO}))
        # The stdio, composed and discovery scopes, with the plain scope beside them for reference;
        # its processes (the stdio adapter and server) count in its CPU and memory.
        scoped = not args.quick and not args.tls and os.path.exists(EVERYTHING)
        if scoped:
            # The token endpoints: a machine token's (Python), and the token exchange's: the
            # development authorization server on the same configuration (it verifies the bench
            # token as the gateway does).
            idp_port = free_port()
            conf, port = gateway_conf(tmp, "gateway-scopes", up_port, sse_port, None, rs_pem, True, None, min_port,
                                      scopes=(token_endpoint(), idp_port))
            idp = subprocess.Popen([gw_bin, "issuer", "--listen", f"127.0.0.1:{idp_port}", "-c", conf],
                                   env={**os.environ, "RUST_LOG": "warn"}, **quiet)
            procs.append(idp)
            wait_port(idp_port)
            p = subprocess.Popen([gw_bin, "run", "-c", conf], env={**os.environ, "RUST_LOG": "warn"}, **quiet)
            procs.append(p)
            wait_port(port)
            base_url = f"http://127.0.0.1:{port}"
            urls = {"json": f"{base_url}/calculator/mcp", "stdio": f"{base_url}/everything/mcp",
                    "composed": f"{base_url}/composed/mcp", "search": f"{base_url}/searched/mcp",
                    "machine": f"{base_url}/machine/mcp", "exchanged": f"{base_url}/exchanged/mcp",
                    "peruser": f"{base_url}/peruser/mcp", "conditioned": f"{base_url}/conditioned/mcp"}
            urls.update({kind: f"{base_url}/{kind}/mcp" for _, kind in GUARD_SCENARIOS})
            contenders.append(Contender("gateway-scopes", urls, p, lambda p=p: descendants(p.pid), only=SCOPE_SCENARIOS))
        elif not args.quick and not args.tls:
            print(f"skipping the stdio, composed and discovery scopes: {EVERYTHING} is missing (npm ci in tests/node)")
        time.sleep(1)

        lua = os.path.join(tmp, "bench.lua")
        open(lua, "w").write(WRK_LUA)
        small = os.path.join(tmp, "small.json")
        open(small, "w").write(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "exact_calculate",
                               "arguments": {"operator": "add", "operands": ["1.25", "2.5"], "precision": 28}}}, separators=(",", ":")))
        modern = os.path.join(tmp, "modern.json")
        open(modern, "w").write(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "exact_calculate",
                               "arguments": {"operator": "add", "operands": ["1.25", "2.5"], "precision": 28},
                               "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                         "io.modelcontextprotocol/clientCapabilities": {}}}}, separators=(",", ":")))

        def big(size):
            path = os.path.join(tmp, f"big{size}.json")
            head = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"statistics","arguments":{"operation":"count","values":['
            n = (size - len(head) - 4) // 4
            open(path, "w").write(head + ",".join(['"1"'] * n) + "]}}}")
            return path

        listing = os.path.join(tmp, "list.json")
        open(listing, "w").write('{"jsonrpc":"2.0","id":1,"method":"tools/list"}')
        users = os.path.join(tmp, "users.txt")
        open(users, "w").write("\n".join(token(f"user{i}") for i in range(10000)))
        fresh = os.path.join(tmp, "fresh.txt")
        open(fresh, "w").write("\n".join(token("fresh", i) for i in range(60000)))
        fresh_rs = os.path.join(tmp, "fresh-rs.txt")
        open(fresh_rs, "w").write("\n".join(rs_tokens))

        base = {"BENCH_LUA": lua, "BENCH_SECRET": SECRET, "BENCH_TOKEN": token("bench")}
        echo = os.path.join(tmp, "echo.json")
        open(echo, "w").write('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}')
        call_tool = os.path.join(tmp, "call_tool.json")
        open(call_tool, "w").write(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "call_tool",
                                   "arguments": {"name": "exact_calculate", "arguments": {"operator": "add", "operands": ["1.25", "2.5"], "precision": 28}}}},
                                   separators=(",", ":")))
        scope_scenarios = []
        if scoped:
            s = next(c for c in contenders if c.name == "gateway-scopes")
            scope_scenarios = [
                (STDIO_SCENARIO, "stdio", 64, {"BENCH_BODY_FILE": echo, "BENCH_SESSION": open_session(s.urls["stdio"], base["BENCH_TOKEN"])}),
                (COMPOSED_SCENARIO, "composed", 64, {"BENCH_BODY_FILE": small, "BENCH_SESSION": open_session(s.urls["composed"], base["BENCH_TOKEN"])}),
                (SEARCH_SCENARIO, "search", 64, {"BENCH_BODY_FILE": call_tool}),
                (MACHINE_SCENARIO, "machine", 64, {"BENCH_BODY_FILE": small}),
                (EXCHANGED_SCENARIO, "exchanged", 64, {"BENCH_BODY_FILE": small}),
                (PER_USER_SCENARIO, "peruser", 64, {"BENCH_BODY_FILE": small}),
                (CONDITION_SCENARIO, "conditioned", 64, {"BENCH_BODY_FILE": small}),
                *[(name, kind, 64, {"BENCH_BODY_FILE": small}) for name, kind in GUARD_SCENARIOS],
            ]
            sign_in(s.urls["peruser"], base["BENCH_TOKEN"])
        # TLS 1.3 with the same certificate and cipher (TLS_AES_256_GCM_SHA384) on both sides;
        # wrk resumes no session, so the second scenario pays a full handshake per request.
        tls_scenarios = [
            ("tools/call small over TLS, keep-alive, 64 conns", "tls", 64, {"BENCH_BODY_FILE": small}),
            ("tools/call small over TLS, a new connection per request, 16 conns", "tls", 16,
             {"BENCH_BODY_FILE": small, "BENCH_CLOSE": "1"}),
        ]
        scenarios = [(HEADLINE, "min", 256, {"BENCH_BODY_FILE": small}),
                     ("tools/call small, 256 conns", "json", 256, {"BENCH_BODY_FILE": small})]
        if args.tls:
            scenarios = tls_scenarios
        elif not args.quick:
            scenarios = [
                scenarios[0],
                ("tools/call small on a minimal upstream, 32 conns", "min", 32, {"BENCH_BODY_FILE": small}),
                ("tools/call small, 32 conns", "json", 32, {"BENCH_BODY_FILE": small}),
                scenarios[1],
                ("tools/call 60 KiB, 32 conns", "json", 32, {"BENCH_BODY_FILE": big(60 * 1024)}),
                ("tools/call 500 KiB, 32 conns", "json", 32, {"BENCH_BODY_FILE": big(500 * 1024)}),
                ("tools/call small, 64 conns", "json", 64, {"BENCH_BODY_FILE": small}),
                (TRACE_SCENARIO, "min", 64, {"BENCH_BODY_FILE": small}),
                ("tools/list filtered, 64 conns", "json", 64, {"BENCH_BODY_FILE": listing}),
                ("tools/call in 2026-07-28 (envelope and routing headers checked), 64 conns", "json", 64, {"BENCH_BODY_FILE": modern, "BENCH_MODERN": "1"}),
                ("tools/call in 2026-07-28 bridged to a 2025-11-25 upstream, 64 conns", "bridged", 64, {"BENCH_BODY_FILE": modern, "BENCH_MODERN": "1"}),
                ("tools/call from an allowed browser Origin (CORS), 64 conns", "json", 64, {"BENCH_BODY_FILE": small, "BENCH_ORIGIN": BENCH_ORIGIN}),
                ("tools/call answered as SSE, 64 conns", "sse", 64, {"BENCH_BODY_FILE": small}),
                *tls_scenarios,
                ("fresh HS256 token per request, 64 conns", "json", 64, {"BENCH_BODY_FILE": small, "BENCH_TOKENS": fresh}),
                ("fresh RS256 token per request, 64 conns", "json", 64, {"BENCH_BODY_FILE": small, "BENCH_TOKENS": fresh_rs}),
                (USERS_SCENARIO, "json", 256, {"BENCH_BODY_FILE": small, "BENCH_TOKENS": users}),
                *scope_scenarios,
            ]
        if args.only:
            scenarios = [s for s in scenarios if any(t in s[0] for t in args.only)]
        idle = {c.name: rss_mb(c.pids()) for c in contenders}
        idle_anon = {c.name: anon_mb(c.pids()) for c in contenders}
        results = {}
        steal0 = cpu_steal()
        # The headline scenario gets at least 5 rounds in a full run: its medians are what a script reads.
        headline_rounds = args.rounds if args.quick or args.tls else max(args.rounds, 5)
        for rnd in range(headline_rounds):
            order = contenders[rnd % len(contenders):] + contenders[:rnd % len(contenders)]
            for sname, kind, conns, env in scenarios:
                if rnd >= args.rounds and sname != HEADLINE:
                    continue
                for c in order:
                    if (c.only and sname not in c.only) or kind not in c.urls:
                        continue
                    r = run_wrk(c, kind, conns, secs, {**base, **env})
                    results.setdefault((sname, c.name), []).append(r)
                    print(f"round {rnd + 1} {sname:<48} {c.name:<18} {r['rps']:>9.0f} req/s  p99 {r['p99']:.2f} ms  errors {r['errors']}", flush=True)

        if any(s[0] == STDIO_SCENARIO for s in scenarios):
            for rnd in range(args.rounds):
                r = stdio_direct([EVERYTHING], secs, 64)
                results.setdefault((STDIO_SCENARIO, "stdio-direct"), []).append(r)
                print(f"round {rnd + 1} {STDIO_SCENARIO:<48} {'stdio-direct':<18} {r['rps']:>9.0f} req/s  p99 {r['p99']:.2f} ms", flush=True)
        med = lambda xs: statistics.median(xs)
        if (TRACE_SCENARIO, "gateway-audit-off") in results:
            off = results[(TRACE_SCENARIO, "gateway-audit-off")]
            for name, _ in TRACED:
                on = results.get((TRACE_SCENARIO, name), [])
                if on:
                    print(f"ratio {name}/tracing off: {med([a['rps'] / b['rps'] for a, b in zip(on, off)]):.3f} req/s, "
                          f"CPU per request {med([a['cpu_us'] for a in on]):.1f} vs {med([b['cpu_us'] for b in off]):.1f} µs")
        med = lambda xs: statistics.median(xs)
        if args.tls or args.only:
            print_tables(args, secs, headline_rounds, scenarios, contenders, results, idle, med)
            return
        # Latency without saturation: every contender at half of nginx's peak rate (small tools/call).
        key = "tools/call small, 256 conns"
        half = med([r["rps"] for r in results[(key, "nginx")]]) / 2
        # gateway-audit-off shows how much of the gateway's latency is PostgreSQL's share of the CPUs.
        fixed_names = ["direct", "nginx", "pingora", "gateway", "gateway-audit-off"]
        fixed = {}
        for rnd in range(1 if args.quick else args.rounds):
            k = rnd % len(fixed_names)
            for name in fixed_names[k:] + fixed_names[:k]:
                c = next(c for c in contenders if c.name == name)
                r = run_fixed_rate(c, half, 32, secs + 1, small, base["BENCH_TOKEN"], tmp)
                fixed.setdefault(name, []).append(r)
                print(f"fixed rate {half:.0f}/s {name:<18} p99 {r['p99']:.2f} ms  errors {r['errors']}", flush=True)

        rows_written = None
        try:
            out = subprocess.run(["psql", db_url, "-Atc", "SELECT count(*), extract(epoch from max(time) - min(time)) FROM audit_log"],
                                 capture_output=True, text=True, timeout=10).stdout.strip()
            rows_written = out
        except Exception as e:
            rows_written = f"unavailable ({e})"

        print_tables(args, secs, headline_rounds, scenarios, contenders, results, idle, med)
        steal1 = cpu_steal()
        print(f"\nCPU steal during the run: {100 * (steal1[0] - steal0[0]) / max(steal1[1] - steal0[1], 1):.1f}% of machine time")
        print(f"\nfixed rate: half of nginx's peak ({half:.0f} req/s), small tools/call, 32 conns, h2load")
        print("| contender | req/s | p50 ms | p99 ms | p99.9 ms | CPU µs/req | errors | p99 vs nginx ms |")
        print("|---|---|---|---|---|---|---|---|")
        nginx_p99 = med([r["p99"] for r in fixed["nginx"]])
        for name in fixed_names:
            rs = fixed[name]
            p99 = med([r["p99"] for r in rs])
            print(f"| {name} | {med([r['rps'] for r in rs]):.0f} | {med([r['p50'] for r in rs]):.2f} | {p99:.2f} | "
                  f"{med([r['p999'] for r in rs]):.2f} | {med([r['cpu_us'] for r in rs]):.1f} | {sum(r['errors'] for r in rs)} | {p99 - nginx_p99:+.2f} |")
        pingora_p99 = med([r["p99"] for r in fixed["pingora"]])
        for name in ["gateway", "gateway-audit-off"]:
            print(f"fixed rate p99 {name} - pingora: {med([r['p99'] for r in fixed[name]]) - pingora_p99:+.2f} ms")
        total_requests = sum(r["requests"] for rs in (results[(s, "gateway")] for s, _, _, _ in scenarios) for r in rs)
        total_requests += sum(r["requests"] for r in fixed["gateway"])
        print(f"\naudit (gateway, full policy): {total_requests} requests served; audit_log rows, span s: {rows_written}")
        print(f"wall time: {time.time() - started:.0f} s, of which {build_seconds:.0f} s building")
        # The headline: the minimal upstream (the proxies' own cost); then the real tool.
        for scenario, label in [(HEADLINE, ""), (key, " (calculator)")]:
            cpu = lambda name: med([r["cpu_us"] for r in results[(scenario, name)]])
            print(f"cpu per request{label}: gateway {cpu('gateway'):.1f} µs, pingora {cpu('pingora'):.1f} µs, nginx {cpu('nginx'):.1f} µs")
            g = results[(scenario, "gateway")]
            for other in ["nginx", "pingora", "direct"]:
                print(f"ratio gateway/{other}{label}: {med([a['rps'] / b['rps'] for a, b in zip(g, results[(scenario, other)])]):.3f}")
        # The targets, round by round (each round runs every contender once).
        g, n, p = (results[(HEADLINE, name)] for name in ["gateway", "nginx", "pingora"])
        print(f"headline rounds with gateway >= 0.6x nginx: {sum(a['rps'] >= 0.6 * b['rps'] for a, b in zip(g, n))}/{len(g)}")
        print(f"headline rounds with gateway CPU per request <= 1.15x pingora: "
              f"{sum(a['cpu_us'] <= 1.15 * b['cpu_us'] for a, b in zip(g, p))}/{len(g)}; "
              f"per round: {', '.join('%.2f' % (a['cpu_us'] / b['cpu_us']) for a, b in zip(g, p))}")
        if (HEADLINE, "gateway-audit-file") in results:
            f = results[(HEADLINE, "gateway-audit-file")]
            print(f"ratio gateway-audit-file/nginx: {med([a['rps'] / b['rps'] for a, b in zip(f, n)]):.3f}; "
                  f"/pingora: {med([a['rps'] / b['rps'] for a, b in zip(f, p)]):.3f}")
            print(f"headline rounds with gateway-audit-file CPU per request <= 1.2x pingora: "
                  f"{sum(a['cpu_us'] <= 1.2 * b['cpu_us'] for a, b in zip(f, p))}/{len(f)}; "
                  f"per round: {', '.join('%.2f' % (a['cpu_us'] / b['cpu_us']) for a, b in zip(f, p))}")
            print(f"gateway-audit-file RSS: idle {idle['gateway-audit-file']:.1f} MB, peak under the headline "
                  f"{max(r['rss_peak'] for r in f):.1f} MB; gateway (PostgreSQL) peak under the headline "
                  f"{max(r['rss_peak'] for r in g):.1f} MB")
            anon = lambda rs: max(r.get("anon_peak", 0) for r in rs)
            print(f"anonymous memory (RssAnon, without the executable's mapped code): gateway-audit-file idle "
                  f"{idle_anon.get('gateway-audit-file', 0):.1f} MB, peak {anon(f):.1f} MB; gateway (PostgreSQL) peak "
                  f"{anon(g):.1f} MB; bare Pingora peak {anon(p):.1f} MB")
        pairs = [("fresh RS256 token per request, 64 conns", "fresh HS256 token per request, 64 conns", "ratio fresh RS256/HS256"),
                 ("tools/list filtered, 64 conns", "tools/call small, 64 conns", "ratio tools/list/tools/call")]
        for a_name, b_name, label in pairs:
            if (a_name, "gateway") in results and (b_name, "gateway") in results:
                a, b = results[(a_name, "gateway")], results[(b_name, "gateway")]
                print(f"{label} (gateway): {med([x['rps'] / y['rps'] for x, y in zip(a, b)]):.3f} req/s, "
                      f"CPU per request {med([x['cpu_us'] for x in a]):.1f} vs {med([y['cpu_us'] for y in b]):.1f} µs")
        print(f"gateway peak RSS under load: {max(r['rss_peak'] for (s, name), rs in results.items() if name == 'gateway' for r in rs):.1f} MB")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        for f in cleanups:
            f()
        shutil.rmtree(tmp, ignore_errors=True)


def print_tables(args, secs, headline_rounds, scenarios, contenders, results, idle, med):
    """One table per scenario: medians over the rounds, ratios to direct and nginx where they ran."""
    print()
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}; {time.strftime('%Y-%m-%d')}; command: python3 bench/run.py{' --quick' if args.quick else ''}{' --tls' if args.tls else ''}; "
          f"{args.rounds} rounds x {secs} s ({headline_rounds} for the headline), medians")
    for sname, _, _, _ in scenarios:
        print(f"\n{sname}")
        print(f"| contender | req/s | p50 ms | p99 ms | p99.9 ms | CPU µs/req | RSS idle MB | RSS peak MB | errors | vs direct | vs nginx |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for name in [c.name for c in contenders] + ["stdio-direct"]:
            if (sname, name) not in results:
                continue
            rs = results[(sname, name)]
            rps = med([r["rps"] for r in rs])
            ratio = lambda other: (f'{med([a["rps"] / b["rps"] for a, b in zip(rs, results[(sname, other)])]):.2f}'
                                   if (sname, other) in results else "–")
            print(f"| {name} | {rps:.0f} | {med([r['p50'] for r in rs]):.2f} | {med([r['p99'] for r in rs]):.2f} | {med([r['p999'] for r in rs]):.2f} | "
                  f"{med([r['cpu_us'] for r in rs]):.1f} | {idle.get(name, 0):.1f} | {max(r['rss_peak'] for r in rs):.1f} | {sum(r['errors'] for r in rs)} | "
                  f"{ratio('direct')} | {ratio('nginx')} |")


def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    main()
