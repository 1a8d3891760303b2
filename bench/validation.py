#!/usr/bin/env python3
"""Argument validation benchmark: what checking `tools/call` arguments against the tool's
`inputSchema` costs, in one run, loopback only, bounded in time.

Starts the release gateway twice on the same bundled calculator (stateless JSON), identical but for
`validate_arguments` (true / false), audit off, and runs wrk against each in alternating order for
`--rounds` rounds of `--seconds`: a small `exact_calculate` call (the bench's usual body) and a
60 KiB `statistics` call (16,000 array items, each checked against `{"type": "string"}`). Prints
medians of req/s, p50, p99 and the gateway's CPU per request, and the on/off ratios.

    cargo build --profile dist --bin mcp-gateway && python3 bench/validation.py
"""

import argparse, json, os, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as b  # noqa: E402  (the main harness: configuration, wrk script, measurement)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    args = ap.parse_args()
    b.ensure_tools()
    gw_bin = os.path.join(b.BIN, "mcp-gateway")
    tmp = tempfile.mkdtemp(prefix="mcp-bench-validation-")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = []
    try:
        up_port = b.free_port()
        procs.append(subprocess.Popen([gw_bin, "tool", "calculator", "--listen", f"127.0.0.1:{up_port}"],
                                      env={**os.environ, "TOOL_GATEWAY_SHARED_SECRET": b.SECRET, "RUST_LOG": "warn"}, **quiet))
        b.wait_port(up_port)
        pem, _ = b.rs256_keys(tmp, 0)
        contenders = []
        for name, validate in [("validation on", "true"), ("validation off", "false")]:
            conf, port = b.gateway_conf(tmp, name.replace(" ", "-"), up_port, up_port, None, pem, True, None, up_port)
            tools = os.path.join(os.path.dirname(conf), "tools.yaml")
            text = open(tools).read().replace("    tools: [exact_calculate, statistics]\n",
                                              f"    tools: [exact_calculate, statistics]\n    validate_arguments: {validate}\n")
            open(tools, "w").write(text)
            p = subprocess.Popen([gw_bin, "run", "-c", conf], env={**os.environ, "RUST_LOG": "warn"}, **quiet)
            procs.append(p)
            b.wait_port(port)
            contenders.append(b.Contender(name, {"json": f"http://127.0.0.1:{port}/calculator/mcp"}, p))
        time.sleep(2)  # the registry's first read of the calculator's tools (and schemas)

        lua = os.path.join(tmp, "bench.lua")
        open(lua, "w").write(b.WRK_LUA)
        small = os.path.join(tmp, "small.json")
        open(small, "w").write(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "exact_calculate",
                               "arguments": {"operator": "add", "operands": ["1.25", "2.5"], "precision": 28}}}, separators=(",", ":")))
        big = os.path.join(tmp, "big.json")
        head = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"statistics","arguments":{"operation":"count","values":['
        open(big, "w").write(head + ",".join(['"1"'] * ((60 * 1024 - len(head) - 4) // 4)) + "]}}}")
        base = {"BENCH_LUA": lua, "BENCH_SECRET": b.SECRET, "BENCH_TOKEN": b.token("bench")}
        scenarios = [("tools/call small, 64 conns", 64, small), ("tools/call 60 KiB (16k items), 32 conns", 32, big)]
        results = {}
        for rnd in range(args.rounds):
            order = contenders if rnd % 2 == 0 else contenders[::-1]
            for sname, conns, body in scenarios:
                for c in order:
                    r = b.run_wrk(c, "json", conns, args.seconds, {**base, "BENCH_BODY_FILE": body})
                    results.setdefault((sname, c.name), []).append(r)
                    print(f"round {rnd + 1} {sname:<40} {c.name:<15} {r['rps']:>8.0f} req/s  p99 {r['p99']:.2f} ms  "
                          f"cpu {r['cpu_us']:.0f} us/req  errors {r['errors']}", flush=True)
        med = statistics.median
        print()
        for sname, _, _ in scenarios:
            print(f"## {sname} (median of {args.rounds} rounds of {args.seconds} s)")
            print("| gateway | req/s | p50 ms | p99 ms | gateway CPU us/req | errors |")
            print("|---|---|---|---|---|---|")
            for c in contenders:
                rs = results[(sname, c.name)]
                print(f"| {c.name} | {med([r['rps'] for r in rs]):.0f} | {med([r['p50'] for r in rs]):.2f} | "
                      f"{med([r['p99'] for r in rs]):.2f} | {med([r['cpu_us'] for r in rs]):.0f} | {sum(r['errors'] for r in rs)} |")
            on, off = results[(sname, "validation on")], results[(sname, "validation off")]
            print(f"ratio on/off req/s: {med([a['rps'] / o['rps'] for a, o in zip(on, off)]):.3f}; "
                  f"CPU on - off: {med([a['cpu_us'] - o['cpu_us'] for a, o in zip(on, off)]):.1f} us/req\n")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
