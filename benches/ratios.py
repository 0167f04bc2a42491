#!/usr/bin/env python3
"""Print the figures of the last `cargo bench --bench verify` run and check the tracked ratios.

Usage: cargo bench --bench verify [--features remote-jwks] && python3 benches/ratios.py [--check]

The targets are checked on the interleaved ratios (target/criterion/paired.json): each is the
median over rounds of a ratio measured within one round, robust to the machine's speed
drifting between benchmarks. Criterion's separate medians are printed alongside for reference.
With --check, exits non-zero when a target is missed (for a quiet machine; never in a timed
unit test).
"""

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"
ALGS = ["hs256", "rs256", "es256", "eddsa"]
TARGETS = [
    ("verify/hs256 / floor/hs256", "<=", 1.25),
    ("jsonwebtoken/decode/hs256 / verify/hs256", ">=", 2.2),
    ("verify/rs256 / signature_only/rs256", "<=", 1.10),
    ("verify/es256 / signature_only/es256", "<=", 1.10),
    ("verify/eddsa / signature_only/eddsa", "<=", 1.10),
]
REPORTED = [f"jsonwebtoken/decode/{alg} / verify/{alg}" for alg in ALGS[1:]]
# The verification cache: a hit against a full verification (the speed-up), and an ES256 hit
# against a full HS256 verification (a cached asymmetric token costs about what HMAC does).
REPORTED += [f"verify/{alg} / cached/{alg}" for alg in ALGS] + ["cached/es256 / verify/hs256"]
DELTAS = [("layer/hs256 - verify/hs256", 150.0)]
# Present when the bench ran with --features remote-jwks: a warm RemoteJwks against a static
# KeySet holding the same key.
REMOTE_TARGETS = [(f"remote/{alg} / verify/{alg}", "<=", 1.05) for alg in ALGS[1:]]
REMOTE_REPORTED_DELTAS = [f"remote/{alg} - verify/{alg}" for alg in ALGS[1:]]


def criterion_median(bench_id: str):
    path = ROOT / bench_id.replace("/", "_") / "new" / "estimates.json"
    try:
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"]
    except FileNotFoundError:
        return None


def fmt(ns) -> str:
    if ns is None:
        return "-"
    return f"{ns / 1000:.2f} us" if ns >= 1000 else f"{ns:.0f} ns"


def main() -> int:
    try:
        with open(ROOT / "paired.json") as f:
            paired = json.load(f)
    except FileNotFoundError:
        print("no target/criterion/paired.json: run `cargo bench --bench verify` first")
        return 2

    print(f"median time per token (interleaved, {paired['rounds']} rounds | criterion)")
    for bench_id, ns in paired["median_ns"].items():
        print(f"  {bench_id:28} {fmt(ns):>10} | {fmt(criterion_median(bench_id)):>10}")

    print("ratios: median of per-round ratios (target)")
    failed = False
    remote = [t for t in REMOTE_TARGETS if t[0] in paired["ratios"]]
    for name, op, target in TARGETS + remote:
        ratio = paired["ratios"][name]
        ok = ratio <= target if op == "<=" else ratio >= target
        failed |= not ok
        print(f"  {name:44} {ratio:5.2f}x  ({op} {target})  {'ok' if ok else 'MISSED'}")
    for name in REPORTED:
        print(f"  {name:44} {paired['ratios'][name]:5.2f}x  (reported)")
    print("differences: median of per-round differences (target)")
    for name, limit in DELTAS:
        delta = paired["deltas_ns"][name]
        ok = delta <= limit
        failed |= not ok
        print(f"  {name:44} {delta:5.0f} ns  (<= {limit:.0f} ns)  {'ok' if ok else 'MISSED'}")
    for name in REMOTE_REPORTED_DELTAS:
        if name in paired["deltas_ns"]:
            print(f"  {name:44} {paired['deltas_ns'][name]:5.0f} ns  (reported)")
    return 1 if failed and "--check" in sys.argv else 0


if __name__ == "__main__":
    sys.exit(main())
