"""Speed of word feedback: a 30 s reading rated warm with and without ``words`` in one process, and
the word feedback alone (Whisper base transcription + alignment), on the threads ``Rater`` uses
(up to 2). The budget (issue 13): word feedback <= 3 s for a 30 s reading on 2 cores, and the plain
rating no slower than before (it runs the same code when words are not asked for).

    .venv/bin/python scripts/bench_words.py [--runs 5] [--corpus ../shared/data/saa/audio]

Prints a Markdown table with the load average, since other work on the machine slows every figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accent_rater import Rater, audio  # noqa: E402
from accent_rater.words import PASSAGE, feedback  # noqa: E402

from bench_rate import REPO, make_clip  # noqa: E402


def timed(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "data" / "saa" / "audio")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(args.corpus, 30, Path(tmp) / "clip30.wav")
        rater = Rater()
        t0 = time.perf_counter()
        rater.transcriber  # noqa: B018 - loads and verifies Whisper base once
        load = time.perf_counter() - t0
        speech = audio.prepare(clip)
        rater.rate(clip, words=True)  # warm-up
        loads = [os.getloadavg()[0]]
        plain = timed(lambda: rater.rate(clip), args.runs)
        words = timed(lambda: rater.rate(clip, words=True), args.runs)
        alone = timed(lambda: feedback(rater.transcriber(speech), PASSAGE), args.runs)
        loads.append(os.getloadavg()[0])
    rows = [("rate (no words)", plain), ("rate --words", words), ("word feedback alone (transcribe + align)", alone)]
    print(f"30 s clip ({len(speech.audio) / audio.SAMPLE_RATE:.1f} s of speech after VAD), {rater.threads} threads, "
          f"{args.runs} warm runs; Whisper base load + verify {load:.1f} s; load average {min(loads):.1f}-{max(loads):.1f} "
          f"on {os.cpu_count()} CPUs\n")
    print_table(rows)


def print_table(rows: list[tuple[str, list[float]]], reference: float | None = None) -> None:
    """A Markdown table of timings: median, min, max per row (and the median's ratio to ``reference``)."""
    ratio = reference is not None
    print("| what | median (s) | min (s) | max (s) |" + (" x seed recipe |" if ratio else "") + "\n|---|---|---|---|" + ("---|" if ratio else ""))
    for name, xs in rows:
        print(f"| {name} | {np.median(xs):.2f} | {min(xs):.2f} | {max(xs):.2f} |" + (f" {np.median(xs) / reference:.2f} |" if ratio else ""))


if __name__ == "__main__":
    main()
