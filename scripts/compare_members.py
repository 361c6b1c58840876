"""Score every stacking combination of the members of one or more training runs from their saved
out-of-fold logits: how the fast model's members were chosen, and whether the Whisper head gains from
them (runs on the same corpus and folds, e.g. ``runs/default runs/fast_linear_members``).

    .venv/bin/python scripts/compare_members.py RUN [RUN ...]

Each combination is stacked exactly as ``accent-rater train`` does (logistic regression, cross-fitted
by fold), and its threshold is chosen on the other folds, so every number is out-of-fold. Speaker
level, 95 % speaker-bootstrap interval on ROC-AUC. Nothing is retrained.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from accent_rater.calibration import sigmoid
from accent_rater.evaluate import bootstrap_ci, choose_threshold
from accent_rater.train import _fit_stacker


def load_logits(run: Path) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, list[str]]:
    """(member -> out-of-fold logits, labels, fold ids, speaker ids), rows in the run's folds.json order."""
    folds = json.loads((run / "folds.json").read_text())
    ids = list(folds)
    fold = np.array([folds[i] for i in ids])
    label = {r["speaker_id"]: int(r["label"]) for r in csv.DictReader(open(run / "predictions.csv"))}
    y = np.array([label[i] for i in ids])
    names = sorted({p.name.split("_fold")[0] for p in (run / "folds").glob("*_fold0.npz")})
    logits = {}
    for n in names:
        v = np.zeros(len(ids))
        for k in np.unique(fold):
            v[fold == k] = np.load(run / "folds" / f"{n}_fold{k}.npz", allow_pickle=False)["logits"]
        logits[n] = v
    return logits, y, fold, ids


def cross_fitted(M: np.ndarray, y: np.ndarray, fold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold stacked logits, and decisions at a threshold chosen on the other folds."""
    z, decision = np.zeros(len(y)), np.zeros(len(y), dtype=int)
    for k in np.unique(fold):
        te = fold == k
        z[te] = _fit_stacker(M[~te], y[~te]).decision_function(M[te]) if M.shape[1] > 1 else M[te, 0]
    for k in np.unique(fold):
        te = fold == k
        t = choose_threshold(sigmoid(z[~te]), y[~te])
        decision[te] = sigmoid(z[te]) >= t
    return z, decision


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", type=Path, nargs="+")
    args = ap.parse_args()
    logits, y, fold, ids = load_logits(args.runs[0])
    for run in args.runs[1:]:  # members of further runs, on the same speakers and folds
        more, y2, fold2, ids2 = load_logits(run)
        if ids2 != ids or not np.array_equal(fold2, fold) or not np.array_equal(y2, y):
            raise SystemExit(f"{run} has other speakers or folds than {args.runs[0]}")
        logits.update({f"{run.name}:{m}": v for m, v in more.items()})
    print(f"{', '.join(map(str, args.runs))}: {len(y)} speakers, {len(np.unique(fold))} folds\n")
    print("| members | ROC-AUC [95% CI] | balanced accuracy |\n|---|---|---|")
    for r in range(1, len(logits) + 1):
        for combo in itertools.combinations(logits, r):
            z, decision = cross_fitted(np.stack([logits[m] for m in combo], 1), y, fold)
            auc = bootstrap_ci(y, sigmoid(z), n_boot=1000)["roc_auc"]
            assert abs(auc[0] - roc_auc_score(y, z)) < 1e-9
            print(f"| {' + '.join(combo)} | {auc[0]:.3f} [{auc[1]:.3f}, {auc[2]:.3f}] | {balanced_accuracy_score(y, decision):.3f} |")


if __name__ == "__main__":
    main()
