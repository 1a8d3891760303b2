#!/usr/bin/env python3
"""Jobs benchmark: what a background call costs against a plain one, in one run, loopback only.

Starts the release gateway on a copy of the shipped configuration without its rate limit (bundled
calculator, jobs in memory, audit to a file) and,
for the same small `exact_calculate` call, measures completed calls per second and latency for:

  plain      tools/call (2025-11-25 session), one request
  rest       POST /mcp/invoke with Prefer: respond-async, then GET /mcp/jobs/{id} until completed
  task       tools/call with params.task, then tasks/result (which waits for the end)

Each mode runs `--workers` client threads for `--seconds` (bounded), each on its own keep-alive
connection; the client is Python, so the absolute figures include its cost: read the ratios.

    cargo build --profile dist --bin mcp-gateway && python3 bench/jobs.py
"""

import argparse, http.client, json, os, shutil, statistics, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as harness  # noqa: E402  (the measured build profile, `BENCH_PROFILE`)

ROOT = harness.ROOT
BIN = os.environ.get("MCP_GATEWAY_BIN", os.path.join(harness.BIN, "mcp-gateway"))
ARGS = {"operator": "add", "operands": ["1", "2"]}


def wait_port(port, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit("the gateway did not become ready")


class Conn:
    def __init__(self, token):
        self.c = http.client.HTTPConnection("127.0.0.1", 8000, timeout=30)
        self.h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                  "Accept": "application/json, text/event-stream"}
        self.session = None

    def send(self, method, path, body=None, extra=None):
        h = dict(self.h)
        if self.session:
            h["Mcp-Session-Id"] = self.session
            h["MCP-Protocol-Version"] = "2025-11-25"
        h.update(extra or {})
        self.c.request(method, path, body=None if body is None else json.dumps(body), headers=h)
        r = self.c.getresponse()
        data = r.read()
        if r.getheader("mcp-session-id"):
            self.session = r.getheader("mcp-session-id")
        text = data.decode()
        if text.startswith("event:") or text.startswith("data:"):
            text = [l[5:] for l in text.splitlines() if l.startswith("data:")][-1]
        return r.status, json.loads(text) if text.strip() else None

    def initialize(self):
        self.send("POST", "/calculator/mcp", {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
        self.send("POST", "/calculator/mcp", {"jsonrpc": "2.0", "method": "notifications/initialized"})


def plain(c, i):
    s, v = c.send("POST", "/calculator/mcp", {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                                              "params": {"name": "exact_calculate", "arguments": ARGS}})
    assert s == 200 and "result" in v, v


def rest(c, i):
    s, v = c.send("POST", "/mcp/invoke", {"tool_name": "exact_calculate", "arguments": ARGS},
                  {"Prefer": "respond-async"})
    assert s == 202, v
    while True:
        s, v = c.send("GET", f"/mcp/jobs/{v['id']}")
        if v["status"] == "completed":
            return
        assert v["status"] in ("queued", "working"), v
        time.sleep(0.002)


def task(c, i):
    s, v = c.send("POST", "/calculator/mcp", {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {
        "name": "exact_calculate", "arguments": ARGS, "task": {"ttl": 60000}}})
    tid = v["result"]["task"]["taskId"]
    s, v = c.send("POST", "/calculator/mcp", {"jsonrpc": "2.0", "id": i, "method": "tasks/result",
                                              "params": {"taskId": tid}})
    assert "result" in v, v


def run(mode, fn, token, workers, seconds):
    lat, stop = [], time.time() + seconds
    lock = threading.Lock()

    def worker():
        c = Conn(token)
        c.initialize()
        i, mine = 0, []
        while time.time() < stop:
            i += 1
            t = time.perf_counter()
            fn(c, i)
            mine.append(time.perf_counter() - t)
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat.sort()
    return {"mode": mode, "calls": len(lat), "per_s": len(lat) / seconds,
            "p50_ms": 1000 * statistics.median(lat), "p99_ms": 1000 * lat[int(len(lat) * 0.99) - 1]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--workers", type=int, default=4)
    args = ap.parse_args()
    # The shipped files, minus the per-user rate limit (the bench would hit it, not measure).
    tmp = tempfile.mkdtemp(prefix="mcp-jobs-bench-")
    shutil.copytree(os.path.join(ROOT, "conf"), os.path.join(tmp, "conf"))
    os.makedirs(os.path.join(tmp, "policies"))
    policy = open(os.path.join(ROOT, "policies/policy.yaml")).read().split("\nrate_limits:")[0]
    open(os.path.join(tmp, "policies/policy.yaml"), "w").write(policy + "\n")
    conf = os.path.join(tmp, "conf/gateway.yaml")
    token = subprocess.check_output([BIN, "token", "-c", conf, "--user", "bench", "--roles", "developer"],
                                    cwd=ROOT, text=True).strip()
    env = dict(os.environ, RUST_LOG="warn")
    gw = subprocess.Popen([BIN, "run", "-c", conf], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    try:
        wait_port(8000)
        rows = [run(m, f, token, args.workers, args.seconds) for m, f in
                (("plain", plain), ("rest", rest), ("task", task))]
    finally:
        gw.terminate()
        gw.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    base = rows[0]["per_s"]
    print("| mode | calls | calls/s | ratio to plain | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['calls']} | {r['per_s']:.0f} | {r['per_s'] / base:.2f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |")


if __name__ == "__main__":
    main()
