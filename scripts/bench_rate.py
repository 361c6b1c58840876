"""Benchmark rating with the bundled model: warm in-process latency (5 s / 30 s / 120 s clips),
CLI cold start to first result, batch CLI throughput over a corpus, and peak memory.

    .venv/bin/python scripts/bench_rate.py [--corpus ../shared/data/saa/audio] [--runs 20] [--batch-limit 0] [--jobs 2]

Prints a Markdown table (paste it into the README / issue note). Wall-clock figures need an idle
machine; the CPU time of the CLI runs (user + sys) and the load average are printed too, so a run on a
busy machine still says how much work rating takes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from accent_rater import Rater, audio

REPO = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "accent-rater")


def make_clip(corpus: Path, seconds: float, out: Path) -> Path:
    """Concatenate real recordings (band-limited 16 kHz) to exactly ``seconds``."""
    parts, total = [], 0
    for path in sorted(corpus.glob("*.opus")):
        wav = audio.load_audio(path)
        parts.append(wav)
        total += len(wav)
        if total >= seconds * audio.SAMPLE_RATE:
            break
    wav = np.concatenate(parts)[: int(seconds * audio.SAMPLE_RATE)]
    sf.write(out, wav, audio.SAMPLE_RATE, subtype="PCM_16")
    return out


def _children_cpu() -> float:
    """User + sys seconds of the finished child processes so far."""
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def percentiles(xs: list[float]) -> tuple[float, float]:
    return float(np.percentile(xs, 50)) * 1000, float(np.percentile(xs, 95)) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "data" / "saa" / "audio")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--batch-limit", type=int, default=0, help="rate at most this many corpus files (0 = all)")
    ap.add_argument("--jobs", type=int, default=2, help="files the batch CLI rates in parallel")
    args = ap.parse_args()
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rater = Rater()
        clips = {s: make_clip(args.corpus, s, Path(tmp) / f"clip{s}.wav") for s in (5, 30, 120)}
        for s, clip in clips.items():
            rater.rate(clip)  # warm-up
            times = []
            for _ in range(args.runs if s < 120 else max(5, args.runs // 4)):
                t = time.perf_counter()
                rater.rate(clip)
                times.append(time.perf_counter() - t)
            p50, p95 = percentiles(times)
            rows.append((f"rate {s} s clip, warm, in-process (onnxruntime threads {rater.threads})", f"p50 {p50:.0f} ms, p95 {p95:.0f} ms"))

        t, cpu = time.perf_counter(), _children_cpu()
        out = subprocess.run([CLI, "rate", "--json", str(clips[5])], capture_output=True, text=True)
        cold, cpu = time.perf_counter() - t, _children_cpu() - cpu
        assert out.returncode == 0, out.stderr
        rows.append(("CLI cold start to first result (5 s clip)", f"{cold:.2f} s (CPU {cpu:.2f} s)"))

        files = sorted(args.corpus.glob("*.opus"))
        if args.batch_limit:
            files = files[: args.batch_limit]
        listing = Path(tmp) / "batch"
        listing.mkdir()
        for f in files:
            os.symlink(f, listing / f.name)
        t, cpu = time.perf_counter(), _children_cpu()
        out = subprocess.run([CLI, "rate", "--json", "--jobs", str(args.jobs), str(listing)], capture_output=True, text=True)
        wall, cpu = time.perf_counter() - t, _children_cpu() - cpu
        results = [json.loads(line) for line in out.stdout.splitlines()]
        ok = [r for r in results if "error" not in r]
        audio_s = sum(r["duration_seconds"] for r in ok)
        rows.append((f"batch CLI over {len(files)} files (--jobs {args.jobs})",
                     f"{len(files) / wall:.1f} files/s, {audio_s / wall:.0f}x real time, {len(results) - len(ok)} errors"))
        rows.append(("batch CLI, audio seconds per CPU second (user + sys)", f"{audio_s / cpu:.0f}x ({cpu:.0f} s CPU for {audio_s:.0f} s of audio)"))
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        rows.append(("peak RSS of the CLI (batch run)", f"{peak:.0f} MiB"))
    print(f"Machine: {os.cpu_count()} cores, load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; model {rater.name}\n")
    print("| measure | result |\n|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
