"""Fitting the decision layer: the stacking of members' logits (logistic regression) and the
balanced threshold (``choose_threshold``; ``nested_decisions`` chooses it per fold on the other
folds). What a rating applies of them (``Calibrator``, the prior shift) is ``accent_rater.calibration``."""

from __future__ import annotations

import numpy as np

from ..evaluation.metrics import speaker_table


def fit_stacker(M: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None):
    """The fusion: logistic regression on the members' logits (one column per member)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, max_iter=1000).fit(M, y, sample_weight=weights)


def cross_fit_stacker(M: np.ndarray, y: np.ndarray, fold: np.ndarray, weights: np.ndarray | None = None):
    """Out-of-fold fused logits, each fold's rows by a stacker fitted on the other folds, and those
    stackers by fold (``train`` fuses each fold's segments with its own)."""
    z, stackers = np.zeros(len(y)), {}
    for k in np.unique(fold):
        te = fold == k
        stackers[int(k)] = fit_stacker(M[~te], y[~te], None if weights is None else weights[~te])
        z[te] = stackers[int(k)].decision_function(M[te])
    return z, stackers


def choose_threshold(p: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Threshold maximising balanced accuracy on (validation) probabilities, each recording
    counted with its ``weights``; ties -> nearest 0.5."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thr = roc_curve(y, p, sample_weight=weights)
    score = (tpr + 1 - fpr) / 2
    best = np.flatnonzero(score >= score.max() - 1e-12)
    cand = np.clip(thr[best], 0.0, 1.0)
    return float(cand[np.argmin(np.abs(cand - 0.5))])


def nested_decisions(p: np.ndarray, y: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """0/1 decisions with each fold's threshold chosen (``choose_threshold``) on the *other* folds'
    predictions only, so no speaker's own prediction picks the threshold that decides it."""
    decision = np.zeros(len(y), dtype=np.int64)
    for f in np.unique(fold):
        te = fold == f
        decision[te] = p[te] >= choose_threshold(p[~te], y[~te])
    return decision


def nested_threshold_decisions(df, model: str) -> tuple[np.ndarray, np.ndarray]:
    """(labels, ``nested_decisions``) of one model of a predictions table. The report's main table
    uses one threshold chosen on all out-of-fold predictions, which makes its threshold-dependent
    numbers slightly optimistic; this is the honest counterpart."""
    sub = speaker_table(df)
    sub = sub[sub["model"] == model]
    y, p, fold = (sub[c].to_numpy() for c in ("label", "p_native", "fold"))
    return y.astype(np.int64), nested_decisions(p, y, fold)
