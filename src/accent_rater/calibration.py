"""From logits to decisions: Platt scaling of model logits, an explicit deployment prior (replacing
the seed's hard-coded 0.23 threshold and 50:50 "prior shift"), the stacking of members' logits, and
the balanced threshold (``choose_threshold``; ``nested_threshold_decisions`` chooses it per fold on
the other folds).

Probabilities from the bundled model are calibrated for the class balance of its training data
(``train_prior``, about 50 % native). If you deploy where a different share of speakers is native,
pass ``prior=`` and the odds are shifted by Bayes' rule:
    odds' = odds * [prior / (1 - prior)] / [train_prior / (1 - train_prior)].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .metrics import speaker_table


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class Calibrator:
    """p = sigmoid(a * logit + b), fitted by logistic regression on out-of-fold logits (Platt)."""

    a: float
    b: float
    train_prior: float

    @classmethod
    def fit(cls, logits: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> "Calibrator":
        """Platt scaling; ``weights`` (e.g. every corpus and label weighing the same) set the
        training prior too."""
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=1e4, max_iter=1000).fit(np.asarray(logits)[:, None], y, sample_weight=weights)
        return cls(float(lr.coef_[0, 0]), float(lr.intercept_[0]), float(np.average(y, weights=weights)))

    def apply(self, logits: np.ndarray | float, prior: float | None = None) -> np.ndarray:
        z = self.a * np.asarray(logits, dtype=np.float64) + self.b
        if prior is not None:
            z = z + shift(prior, self.train_prior)
        return sigmoid(z)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def shift(prior: float, train_prior: float) -> float:
    """Log-odds offset that moves probabilities from ``train_prior`` to a deployment ``prior``."""
    if not 0.0 < prior < 1.0:
        raise ValueError(f"prior must be strictly between 0 and 1, got {prior}")
    return float(logit(prior) - logit(train_prior))


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
