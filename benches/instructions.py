#!/usr/bin/env python3
"""Instructions per request of each scenario of benches/allocations.rs, counted by callgrind.

Each scenario runs twice under `valgrind --tool=callgrind` (ITERS=1000 and ITERS=3000 requests
after the same set-up), and the difference is divided by 2000, so start-up and set-up cancel
out. Needs valgrind. Usage: python3 benches/instructions.py
"""
import json
import os
import subprocess
import tempfile

SCENARIOS = [
    "none", "bearer/hs256", "cached/hs256", "scope/hs256", "extractor/hs256",
    "around/bearer", "around/cached", "around/scope", "around/extractor",
]


def bench_binary():
    built = subprocess.run(
        ["cargo", "bench", "--bench", "allocations", "--no-run", "--message-format=json"],
        capture_output=True, text=True, check=True,
    ).stdout
    paths = []
    for line in built.splitlines():
        if not line.startswith("{"):
            continue
        message = json.loads(line)
        if message.get("executable") and message.get("target", {}).get("name") == "allocations":
            paths.append(message["executable"])
    return paths[-1]


def instructions(binary, scenario, iterations):
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "callgrind.out")
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary],
            env={**os.environ, "ONLY": scenario, "ITERS": str(iterations)},
            check=True, capture_output=True,
        )
        with open(out) as profile:
            for line in profile:
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1])
    raise SystemExit(f"no totals in callgrind's output for {scenario}")


def main():
    binary = bench_binary()
    rows = []
    for scenario in SCENARIOS:
        low = instructions(binary, scenario, 1000)
        high = instructions(binary, scenario, 3000)
        rows.append((scenario, (high - low) / 2000))
    base = rows[0][1]
    print("instructions per request (callgrind, axum Router in process, HS256)")
    print(f"{'scenario':<18} {'instructions':>14} {'+instructions':>14}")
    for scenario, per in rows:
        print(f"{scenario:<18} {per:>14.0f} {per - base:>14.0f}")


if __name__ == "__main__":
    main()
