"""Speed of the bundled models against the seed's own recipe, side by side in one process on this
machine (hosts differ: read the ratios, not the milliseconds):

    .venv/bin/python scripts/bench_backbone.py [--runs 10]

- seed recipe: the same front-end (decode, band limit, VAD), then 7 s windows with a 3.5 s hop ->
  log-mel -> 3x224x224 image per window -> ResNet18 (PyTorch, 2 threads), as the seed scored;
- ``default`` (Whisper tiny.en backbone) and ``fast`` (the previous fusion): ``Rater.rate``, warm,
  onnxruntime with 2 threads;
- cold start: ``accent-rater rate --json`` on a 5 s clip in a fresh process, for both models.
Prints a Markdown table with each time's ratio to the seed recipe.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from accent_rater import Rater, audio, logmel
from accent_rater.models.resnet import SeedResNet18

from bench_rate import make_clip  # scripts/ is on sys.path when this script runs

REPO = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "accent-rater")


def timed(fn, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(2)
    resnet = SeedResNet18().eval()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = REPO.parent / "shared" / "data" / "saa" / "audio"
        c30, c5 = make_clip(corpus, 30, Path(tmp) / "c30.wav"), make_clip(corpus, 5, Path(tmp) / "c5.wav")

        @torch.inference_mode()
        def seed() -> None:
            windows, _ = audio.make_segments(audio.prepare(c30).audio)
            resnet(logmel.log_mel(windows))

        @torch.inference_mode()
        def seed_model_only() -> None:
            resnet(mels)

        mels = logmel.log_mel(audio.make_segments(audio.prepare(c30).audio)[0])
        ref = timed(seed, args.runs)
        rows.append(("seed recipe: front-end + ResNet18 per 7 s window (3.5 s hop)", ref))
        rows.append((f"  of which ResNet18 on {len(mels)} windows", timed(seed_model_only, args.runs)))
        for name in ("default", "fast"):
            rater = Rater(name, threads=2)
            rows.append((f"`{name}` ({rater.name}): Rater.rate, warm", timed(lambda rater=rater: rater.rate(c30), args.runs)))
        for name in ("default", "fast"):
            t = time.perf_counter()
            out = subprocess.run([CLI, "rate", "--json", "--model", name, str(c5)], capture_output=True, text=True)
            assert out.returncode == 0, out.stderr
            rows.append((f"`{name}`: CLI cold start to first result (5 s clip)", time.perf_counter() - t))
    load = os.getloadavg()[0]
    print(f"30 s clip unless stated; {os.cpu_count()} cores, load average {load:.1f} at the end; median of {args.runs} runs\n")
    print("| what | time | × seed recipe |\n|---|---|---|")
    for what, t in rows:
        ratio = f"{t / ref:.2f}" if "cold" not in what else "–"
        print(f"| {what} | {t * 1000:.0f} ms | {ratio} |")


if __name__ == "__main__":
    main()
