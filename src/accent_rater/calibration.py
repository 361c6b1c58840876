"""From logits to probabilities: Platt scaling of model logits and an explicit deployment prior
(replacing the seed's hard-coded 0.23 threshold and 50:50 "prior shift"). The stacking of members'
logits and the choice of the threshold are fitted in ``training.stacking``.

Probabilities from the bundled model are calibrated for the class balance of its training data
(``train_prior``, about 50 % native). If you deploy where a different share of speakers is native,
pass ``prior=`` and the odds are shifted by Bayes' rule:
    odds' = odds * [prior / (1 - prior)] / [train_prior / (1 - train_prior)].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


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
    def fit(cls, logits: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> Calibrator:
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
