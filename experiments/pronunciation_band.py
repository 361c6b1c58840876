"""Probe: do the pronunciation scores depend on the recording's band? The archive's 102 speakers with
a full-band copy (``saa-fullband/``), scored by the bundled heads on both copies.

    .venv/bin/python experiments/pronunciation_band.py      (measures what is not cached: ~10 min on 2 cores)

Prints, per band, the ROC-AUC of ``total`` separating natives from non-natives, the median totals,
and the correlation of the two copies' scores.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from accent_rater.pronunciation import PronunciationHead
from accent_rater.training.pronunciation import DATA, Reading, load_table, measure_all

BUNDLE = Path("src/accent_rater/assets/model")


def main() -> None:
    with open(DATA / "saa-fullband" / "speakers.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    copies = {band: [Reading(corpus, r["speaker_id"], r["speaker_id"], DATA / corpus / r["path"], None,
                             r["label"] == "native") for r in rows] for band, corpus in (("8 kHz", "saa"), ("full", "saa-fullband"))}
    errors = measure_all(copies["8 kHz"] + copies["full"])
    head = PronunciationHead.load(BUNDLE, json.loads((BUNDLE / "model.json").read_text())["pronunciation"])
    coef, intercept = head.utterance["total"]
    totals = {}
    for band, items in copies.items():
        t = load_table([r for r in items if f"{r.corpus}/{r.key}" not in errors])
        total = np.clip(t.X @ coef + intercept, 0, 10) * 10
        native = np.array([r.native for r in t.items])
        totals[band] = dict(zip([r.key for r in t.items], total))
        print(f"{band}: {len(t.items)} speakers, ROC-AUC natives vs non-natives by total {roc_auc_score(native, total):.3f}; "
              f"median total natives {np.median(total[native]):.0f}, non-natives {np.median(total[~native]):.0f}")
    both = sorted(set(totals["8 kHz"]) & set(totals["full"]))
    a, b = (np.array([totals[k][s] for s in both]) for k in ("8 kHz", "full"))
    print(f"same speakers, 8 kHz vs full band: r {np.corrcoef(a, b)[0, 1]:.3f}, mean difference {np.mean(b - a):+.1f}")


if __name__ == "__main__":
    main()
