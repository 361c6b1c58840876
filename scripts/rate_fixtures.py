"""Rate the test fixtures and bundled samples with both bundles at full precision (p_native, every
segment, the first-language guess) as JSON, so two commits can be compared number for number:

    .venv/bin/python scripts/rate_fixtures.py OLD.json            # at one commit
    .venv/bin/python scripts/rate_fixtures.py NEW.json --against OLD.json   # at another: max |Δ|
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from accent_rater import Rater

REPO = Path(__file__).resolve().parents[1]


def rate_all() -> dict[str, list]:
    files = sorted([*REPO.glob("tests/fixtures/*.flac"), *REPO.glob("src/accent_rater/assets/samples/*.opus")])
    out: dict[str, list] = {}
    for model in ("default", "fast"):
        rater = Rater(model=model)
        for f in files:
            res = rater.rate(f)
            out[f"{model}:{f.relative_to(REPO)}"] = [res.p_native, [list(s) for s in res.segments], [list(x) for x in res.l1]]
    return out


def max_diff(a, b) -> float:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b))
    if isinstance(a, str) or isinstance(b, str):
        return 0.0 if a == b else float("inf")
    if len(a) != len(b):
        return float("inf")
    return max((max_diff(x, y) for x, y in zip(a, b)), default=0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--against", type=Path, help="an earlier output: print the largest difference")
    args = ap.parse_args()
    now = rate_all()
    args.out.write_text(json.dumps(now, indent=0))
    if args.against:
        ref = json.loads(args.against.read_text())
        missing = sorted(set(ref) ^ set(now))
        worst = max(max_diff(ref[k], now[k]) for k in set(ref) & set(now))
        print(f"{len(now)} ratings compared; max |delta| = {worst:.3g}; only in one: {missing or 'none'}")


if __name__ == "__main__":
    main()
