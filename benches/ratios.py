#!/usr/bin/env python3
"""Print the medians of the last `cargo bench --bench verify` run and the tracked ratios.

Usage: cargo bench --bench verify && python3 benches/ratios.py [--check]

With --check, exits non-zero when a target ratio is missed (the machine is noisy: use it on
a quiet machine, never in a timed unit test).
"""

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"


def median_ns(bench_id: str) -> float:
    directory = ROOT / bench_id.replace("/", "_") / "new"
    with open(directory / "estimates.json") as f:
        return json.load(f)["median"]["point_estimate"]


def fmt(ns: float) -> str:
    return f"{ns / 1000:.2f} us" if ns >= 1000 else f"{ns:.0f} ns"


def main() -> int:
    ids = ["floor/hs256"]
    for group in ["jsonwebtoken/decode", "verify"]:
        ids += [f"{group}/{alg}" for alg in ["hs256", "rs256", "es256", "eddsa"]]
    ids += [f"signature_only/{alg}" for alg in ["rs256", "es256", "eddsa"]]
    medians = {}
    for bench_id in ids:
        try:
            medians[bench_id] = median_ns(bench_id)
        except FileNotFoundError:
            print(f"missing results for {bench_id}: run `cargo bench --bench verify` first")
            return 2

    print("median per token")
    for bench_id in ids:
        print(f"  {bench_id:28} {fmt(medians[bench_id]):>10}")

    checks = [
        ("verify/hs256 / floor/hs256", medians["verify/hs256"] / medians["floor/hs256"], "<=", 1.25),
        (
            "jsonwebtoken/decode/hs256 / verify/hs256",
            medians["jsonwebtoken/decode/hs256"] / medians["verify/hs256"],
            ">=",
            2.2,
        ),
    ]
    for alg in ["rs256", "es256", "eddsa"]:
        checks.append(
            (
                f"verify/{alg} / signature_only/{alg}",
                medians[f"verify/{alg}"] / medians[f"signature_only/{alg}"],
                "<=",
                1.10,
            )
        )
    info = [
        (f"jsonwebtoken/decode/{alg} / verify/{alg}", medians[f"jsonwebtoken/decode/{alg}"] / medians[f"verify/{alg}"])
        for alg in ["rs256", "es256", "eddsa"]
    ]

    print("ratios (target)")
    failed = False
    for name, ratio, op, target in checks:
        ok = ratio <= target if op == "<=" else ratio >= target
        failed |= not ok
        print(f"  {name:44} {ratio:5.2f}x  ({op} {target})  {'ok' if ok else 'MISSED'}")
    for name, ratio in info:
        print(f"  {name:44} {ratio:5.2f}x  (reported)")
    return 1 if failed and "--check" in sys.argv else 0


if __name__ == "__main__":
    sys.exit(main())
