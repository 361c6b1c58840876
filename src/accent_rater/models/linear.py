"""Linear families: standardise -> logistic regression, on the mel-based ``features.Features``
(the ``fast`` model's ``encoder`` and ``fluency`` members); ``whisper_heads`` builds on ``LinearFamily``."""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .base import Family, check_choice

if TYPE_CHECKING:  # typing only: models never import the feature pipeline
    from ..features import Features


class LinearFamily(Family):
    """Standardise -> logistic regression, trained on segments (each speaker weighted equally) or on
    recordings. Inference is a dot product, so the fitted model is four arrays.

    ``C``: logistic regression's inverse L2 strength (standardised inputs); ``segment_level``: train
    on every segment (each recording weighted equally) rather than on recording means. A subclass's
    own parameters come through ``rest``."""

    def __init__(self, *, C: float = 0.05, segment_level: bool = True, **rest: Any) -> None:
        if not C > 0:
            raise ValueError(f"model family {self.name!r}: C must be > 0; got {C!r}")
        super().__init__(C=C, segment_level=bool(segment_level), **rest)
        self.mean = self.scale = self.coef = np.zeros(0, np.float32)  # fitted or loaded
        self.intercept = 0.0

    @abstractmethod
    def rows(self, feats: Any) -> np.ndarray:
        """(S, D) inputs, one row per segment."""

    def fit(self, train, y, val=None, y_val=None, weights=None) -> dict:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        per = [self.rows(f) for f in train]
        weights = np.ones(len(per)) if weights is None else np.asarray(weights, dtype=np.float64)
        if self.params["segment_level"]:
            w = np.concatenate([np.full(len(x), wt / len(x)) for x, wt in zip(per, weights)])
            yy = np.concatenate([np.full(len(x), t) for x, t in zip(per, y)])
            X = np.concatenate(per)
        else:
            X, yy, w = np.stack([x.mean(0) for x in per]), np.asarray(y), weights
        scaler = StandardScaler().fit(X)
        lr = LogisticRegression(C=self.params["C"], max_iter=3000).fit(scaler.transform(X), yy, sample_weight=w)
        self.mean, self.scale = scaler.mean_.astype(np.float32), scaler.scale_.astype(np.float32)
        self.coef, self.intercept = lr.coef_[0].astype(np.float32), float(lr.intercept_[0])
        return {}

    def segment_logits(self, feats: Any) -> np.ndarray:
        x = self.rows(feats)
        if not self.params["segment_level"]:
            x = x.mean(0, keepdims=True).repeat(len(feats.spans), 0)
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept

    def tensors(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "scale": self.scale, "coef": self.coef, "intercept": np.array([self.intercept], np.float32)}

    def load_tensors(self, t: dict[str, np.ndarray]) -> None:
        self.mean, self.scale, self.coef, self.intercept = t["mean"], t["scale"], t["coef"], float(t["intercept"][0])


class EncoderFamily(LinearFamily):
    """``inputs = "stats+embedding"`` (default): every LSTM layer's hidden-state statistics and the
    embedding (1,792-d); ``inputs = "embedding"``: resemblyzer's 256-d speaker embedding alone."""

    name = "encoder"
    INPUTS: ClassVar[tuple[str, ...]] = ("stats+embedding", "embedding")

    def __init__(self, *, C: float = 0.05, segment_level: bool = True, inputs: str = "stats+embedding") -> None:
        check_choice("model family 'encoder'", "inputs", inputs, self.INPUTS)
        super().__init__(C=C, segment_level=segment_level, inputs=inputs)

    def rows(self, feats: Features) -> np.ndarray:
        if self.params["inputs"] == "embedding":
            return feats.seg_embeddings
        return np.hstack([feats.seg_stats, feats.seg_embeddings])


class FluencyFamily(LinearFamily):
    """Recording-level statistics by construction: ``segment_level`` is always false (accepted, as
    bundles record it; true is refused)."""

    name = "fluency"

    def __init__(self, *, C: float = 1.0, segment_level: bool = False) -> None:
        if segment_level:
            raise ValueError("model family 'fluency' reads recording-level statistics: segment_level must be false")
        super().__init__(C=C, segment_level=False)

    def rows(self, feats: Features) -> np.ndarray:
        return np.log1p(np.abs(feats.prosody))[None, :].repeat(len(feats.spans), 0)
