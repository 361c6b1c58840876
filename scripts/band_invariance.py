"""Band invariance of the bundled model: the same speakers rated from their 8 kHz-band archive copy
and from a full-band (16 kHz) copy of the original recording.

    .venv/bin/python scripts/band_invariance.py [--data ../shared/data]

Target (issue 3): the two copies get the same label for >= 95 % of speakers. Note: these 102
speakers' 8 kHz copies are in the bundled model's training data; the check measures agreement
between the two copies, not accuracy.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch

from accent_rater import Rater

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rater = Rater()
    rows = list(csv.DictReader(open(args.data / "saa-fullband" / "speakers.csv")))
    narrow, full, labels = [], [], []
    for r in rows:
        narrow.append(rater.rate(args.data / "saa" / r["path"]).p_native)
        full.append(rater.rate(args.data / "saa-fullband" / r["path"]).p_native)
        labels.append(r["label"] == "native")
    narrow, full, labels = np.array(narrow), np.array(full), np.array(labels)
    t = rater.threshold
    agree = np.mean((narrow >= t) == (full >= t))
    print(f"model {rater.name}, threshold {t:.3f}, {len(rows)} speakers\n")
    print("| measure | value |\n|---|---|")
    print(f"| same label, 8 kHz copy vs full-band copy | {100 * agree:.1f}% ({int(round(agree * len(rows)))}/{len(rows)}) |")
    print(f"| mean abs. difference in p_native | {np.mean(np.abs(narrow - full)):.3f} |")
    print(f"| correlation of p_native | {np.corrcoef(narrow, full)[0, 1]:.3f} |")
    print(f"| accuracy on 8 kHz copies (in training data) | {np.mean((narrow >= t) == labels):.3f} |")
    print(f"| accuracy on full-band copies | {np.mean((full >= t) == labels):.3f} |")


if __name__ == "__main__":
    main()
