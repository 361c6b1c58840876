"""``accent-rater compare``: every stacking combination of the members of saved training runs,
scored from their out-of-fold logits (nothing is retrained)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .metrics import bootstrap_ci, load_table
from .report import ci_text, md_table


def member_logits(run: str | Path) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, list[str]]:
    """(member -> out-of-fold logits, labels, fold ids, speaker ids) of a training run directory,
    from its ``folds.json``, ``predictions.csv`` and saved folds ``folds/{member}_fold{k}.npz``;
    rows in ``folds.json`` order."""
    run = Path(run)
    for name in ("folds.json", "predictions.csv"):
        if not (run / name).is_file():
            raise FileNotFoundError(f"{run / name} not found: is {run} a training run directory?")
    folds = json.loads((run / "folds.json").read_text())
    ids = list(folds)
    fold = np.array([folds[i] for i in ids])
    label = load_table(run / "predictions.csv").drop_duplicates("speaker_id").set_index("speaker_id")["label"]
    y = label.loc[ids].to_numpy()
    names = sorted({p.name.split("_fold")[0] for p in (run / "folds").glob("*_fold0.npz")})
    if not names:
        raise FileNotFoundError(f"no saved member folds (*_fold0.npz) in {run / 'folds'}")
    logits = {}
    for n in names:
        v = np.zeros(len(ids))
        for k in np.unique(fold):
            v[fold == k] = np.load(run / "folds" / f"{n}_fold{k}.npz", allow_pickle=False)["logits"]
        logits[n] = v
    return logits, y, fold, ids


def compare_members(runs: Sequence[str | Path], *, extra: Mapping[str, np.ndarray] | None = None,
                    n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """Every stacking combination of the members of one or more runs on the same speakers and folds
    (a further run's members are named ``RUN:member``; ``extra``: more out-of-fold logits, in the
    first run's ``folds.json`` order), scored from saved out-of-fold logits without retraining:
    stacked as ``train`` stacks (``cross_fit_stacker``), the threshold chosen on the
    other folds (``nested_decisions``). One row per combination: ``members``, ``roc_auc`` (point,
    lo, hi; 95 % speaker bootstrap) and ``balanced_accuracy``."""
    from itertools import combinations

    from sklearn.metrics import balanced_accuracy_score

    from ..calibration import sigmoid
    from ..training.stacking import cross_fit_stacker, nested_decisions

    first = Path(runs[0])
    logits, y, fold, ids = member_logits(first)
    for run in map(Path, runs[1:]):
        more, y2, fold2, ids2 = member_logits(run)
        if ids2 != ids or not np.array_equal(fold2, fold) or not np.array_equal(y2, y):
            raise ValueError(f"{run} has other speakers or folds than {first}")
        logits.update({f"{run.name}:{m}": v for m, v in more.items()})
    logits.update(extra or {})
    rows = []
    for r in range(1, len(logits) + 1):
        for combo in combinations(logits, r):
            M = np.stack([logits[m] for m in combo], 1)
            p = sigmoid(cross_fit_stacker(M, y, fold)[0] if r > 1 else M[:, 0])
            rows.append({"members": list(combo), "roc_auc": bootstrap_ci(y, p, n_boot=n_boot, seed=seed)["roc_auc"],
                         "balanced_accuracy": float(balanced_accuracy_score(y, nested_decisions(p, y, fold)))})
    return rows


def members_table(rows: Sequence[Mapping]) -> str:
    """``compare_members`` rows as a Markdown table."""
    return md_table(["members", "ROC-AUC [95% CI]", "balanced accuracy"],
                     [(" + ".join(r["members"]), ci_text(r["roc_auc"]), f"{r['balanced_accuracy']:.3f}") for r in rows])
