"""Speed of pronunciation scores, side by side in one process with the seed's recipe and today's word
feedback (hosts differ: read the ratios):

    .venv/bin/python scripts/bench_pronunciation.py [--runs 5]

- seed recipe: front-end + ResNet18 per 7 s window (3.5 s hop) on a 30 s clip (``bench_backbone``);
- ``Rater.rate`` on the same clip: plain, with word feedback (``words``), with pronunciation scores;
- a single word (a 2 s speechocean762 recording of "TREES") with pronunciation scores.
The budget (issue 20): a 30 s reading with scores no slower than word feedback; a word under 1 s.
Prints a Markdown table with the load average, since other work on the machine slows every figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_words import print_table, timed  # noqa: E402

from accent_rater import Rater, audio, logmel  # noqa: E402
from accent_rater.models.resnet import SeedResNet18  # noqa: E402

from bench_rate import REPO, make_clip  # noqa: E402

WORD = REPO.parent / "shared" / "data" / "speechocean762" / "audio" / "000010173.opus"  # "TREES"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(2)
    resnet = SeedResNet18().eval()
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(REPO.parent / "shared" / "data" / "saa" / "audio", 30, Path(tmp) / "clip30.wav")

        @torch.inference_mode()
        def seed() -> None:
            windows, _ = audio.make_segments(audio.prepare(clip).audio)
            resnet(logmel.log_mel(windows))

        rater = Rater()
        rater.rate(clip, pronunciation=True)  # warm-up: loads Whisper base and the heads
        rater.rate(WORD, pronunciation=True, text="TREES")
        loads = [os.getloadavg()[0]]
        rows = [("seed recipe: front-end + ResNet18 per 7 s window (3.5 s hop)", timed(seed, args.runs))]
        rows.append(("rate (no words)", timed(lambda: rater.rate(clip), args.runs)))
        rows.append(("rate --words", timed(lambda: rater.rate(clip, words=True), args.runs)))
        rows.append(("rate --pronunciation", timed(lambda: rater.rate(clip, pronunciation=True), args.runs)))
        rows.append(("one word (2 s recording) --pronunciation",
                     timed(lambda: rater.rate(WORD, pronunciation=True, text="TREES"), args.runs)))
        loads.append(os.getloadavg()[0])
    ref = float(np.median(rows[0][1]))
    print(f"30 s clip, {rater.threads} threads, {args.runs} warm runs; load average {min(loads):.1f}-{max(loads):.1f} "
          f"on {os.cpu_count()} CPUs\n")
    print_table(rows, ref)


if __name__ == "__main__":
    main()
