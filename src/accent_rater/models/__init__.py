"""Model families behind one interface: recording features -> per-segment logits -> P(native).

Every family turns a ``features.Features`` into one logit per 7 s segment; a recording's logit is
the mean of its segment logits. Families differ in what they read:

- ``encoder``: hidden-state statistics + embedding of the pretrained speaker encoder -> logistic
  regression (the resemblyzer "speaker-embedding" family, read at every LSTM layer; ``inputs =
  "embedding"`` reads the 256-d embedding alone);
- ``fluency``: text-independent rate / pause / rhythm statistics -> logistic regression;
- ``handcrafted``: the seed's 72 spectral statistics -> RandomForest (baseline, not exportable);
- ``cnn``: compact 1-D CNN on band-limited log-mels (``models.cnn``);
- ``seed_resnet``: the seed's ResNet18 on 224x224 resized mels (``models.resnet``);
- ``whisper``: the frozen Whisper encoder's layer statistics -> logistic regression
  (``models.whisper_heads``; reads ``whisper.WhisperFeatures`` instead of ``Features``).

Fitted parameters are plain arrays (saved as safetensors, never pickle).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

import numpy as np

if TYPE_CHECKING:  # features imports models.encoder; avoid the import cycle at run time
    from ..features import Features


class Family(ABC):
    name: ClassVar[str]
    exportable: ClassVar[bool] = True

    def __init__(self, **params: Any) -> None:
        self.params = params

    @abstractmethod
    def fit(self, train: Sequence[Features], y: np.ndarray, val: Sequence[Features] | None = None, y_val: np.ndarray | None = None,
            weights: np.ndarray | None = None) -> dict:
        """Fit on recordings (y: 1 = native), optionally weighting each recording (``weights``, mean
        about 1); returns a small history dict."""

    @abstractmethod
    def segment_logits(self, feats: Features) -> np.ndarray:
        """One logit of P(native) per segment of the recording."""

    def recording_logit(self, feats: Features) -> float:
        return float(np.mean(self.segment_logits(feats)))

    def tensors(self) -> dict[str, np.ndarray]:
        raise NotImplementedError(f"{self.name} cannot be exported")

    def load_tensors(self, tensors: dict[str, np.ndarray]) -> None:
        raise NotImplementedError(f"{self.name} cannot be loaded")


class LinearFamily(Family):
    """Standardise -> logistic regression, trained on segments (each speaker weighted equally) or on
    recordings. Inference is a dot product, so the fitted model is four arrays."""

    def __init__(self, C: float = 0.05, segment_level: bool = True, **params: Any) -> None:
        super().__init__(C=C, segment_level=segment_level, **params)
        self.mean = self.scale = self.coef = None
        self.intercept = 0.0

    @abstractmethod
    def rows(self, feats: Features) -> np.ndarray:
        """(S, D) inputs, one row per segment."""

    def fit(self, train, y, val=None, y_val=None, weights=None) -> dict:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        X = [self.rows(f) for f in train]
        weights = np.ones(len(X)) if weights is None else np.asarray(weights, dtype=np.float64)
        if self.params["segment_level"]:
            w = np.concatenate([np.full(len(x), wt / len(x)) for x, wt in zip(X, weights)])
            yy = np.concatenate([np.full(len(x), t) for x, t in zip(X, y)])
            X = np.concatenate(X)
        else:
            X, yy, w = np.stack([x.mean(0) for x in X]), np.asarray(y), weights
        scaler = StandardScaler().fit(X)
        lr = LogisticRegression(C=self.params["C"], max_iter=3000).fit(scaler.transform(X), yy, sample_weight=w)
        self.mean, self.scale = scaler.mean_.astype(np.float32), scaler.scale_.astype(np.float32)
        self.coef, self.intercept = lr.coef_[0].astype(np.float32), float(lr.intercept_[0])
        return {}

    def segment_logits(self, feats: Features) -> np.ndarray:
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

    def __init__(self, C: float = 0.05, segment_level: bool = True, inputs: str = "stats+embedding", **params: Any) -> None:
        if inputs not in self.INPUTS:
            raise ValueError(f"encoder inputs must be one of {self.INPUTS}, got {inputs!r}")
        super().__init__(C=C, segment_level=segment_level, inputs=inputs, **params)

    def rows(self, feats: Features) -> np.ndarray:
        if self.params["inputs"] == "embedding":
            return feats.seg_embeddings
        return np.hstack([feats.seg_stats, feats.seg_embeddings])


class FluencyFamily(LinearFamily):
    name = "fluency"

    def __init__(self, C: float = 1.0, **params: Any) -> None:
        params.pop("segment_level", None)  # recording-level statistics by construction
        super().__init__(C=C, segment_level=False, **params)

    def rows(self, feats: Features) -> np.ndarray:
        return np.log1p(np.abs(feats.prosody))[None, :].repeat(len(feats.spans), 0)


_HANDCRAFTED_MEMO: dict[int, tuple[np.ndarray, np.ndarray]] = {}


class HandcraftedFamily(Family):
    """The seed's baseline: 72 handcrafted statistics per segment -> RandomForest."""

    name = "handcrafted"
    exportable = False

    def __init__(self, n_estimators: int = 300, max_segments: int = 3000, seed: int = 0, **params: Any) -> None:
        super().__init__(n_estimators=n_estimators, max_segments=max_segments, seed=seed, **params)

    def _X(self, feats: Features) -> np.ndarray:
        from .handcrafted import segment_features

        # the same cached recording is scored in every fold: compute once (the memo holds the array
        # itself, so its id cannot be reused by another array while the entry exists)
        hit = _HANDCRAFTED_MEMO.get(id(feats.mels))
        if hit is None or hit[0] is not feats.mels:
            hit = _HANDCRAFTED_MEMO[id(feats.mels)] = (feats.mels, np.stack([segment_features(m) for m in feats.mels]))
        return hit[1]

    def fit(self, train, y, val=None, y_val=None, weights=None) -> dict:
        from sklearn.ensemble import RandomForestClassifier

        X = [self._X(f) for f in train]
        yy = np.concatenate([np.full(len(x), t) for x, t in zip(X, y)])
        w = np.concatenate([np.full(len(x), 1.0 if weights is None else weights[i]) for i, x in enumerate(X)])
        X = np.concatenate(X)
        rng = np.random.default_rng(self.params["seed"])
        # the seed trained on a class-balanced sample of 3,000 segments
        idx = np.concatenate([rng.permutation(np.flatnonzero(yy == c))[: self.params["max_segments"] // 2] for c in (0, 1)])
        self.rf = RandomForestClassifier(self.params["n_estimators"], n_jobs=1, random_state=self.params["seed"]).fit(X[idx], yy[idx], sample_weight=w[idx])
        return {}

    def segment_logits(self, feats: Features) -> np.ndarray:
        p = np.clip(self.rf.predict_proba(self._X(feats))[:, 1], 1e-3, 1 - 1e-3)
        return np.log(p / (1 - p))


def get_family(name: str, **params: Any) -> Family:
    """Instantiate a family by name (neural families are imported lazily: they need torch training code)."""
    if name in FAMILIES:
        return FAMILIES[name](**params)
    if name == "cnn":
        from .neural import CNNFamily

        return CNNFamily(**params)
    if name == "whisper":
        from .whisper_heads import WhisperFamily

        return WhisperFamily(**params)
    if name == "seed_resnet":
        from .neural import SeedResNetFamily

        return SeedResNetFamily(**params)
    raise KeyError(f"unknown model family {name!r}; choose from {sorted(FAMILY_NAMES)}")


FAMILIES: dict[str, type[Family]] = {f.name: f for f in (EncoderFamily, FluencyFamily, HandcraftedFamily)}
FAMILY_NAMES = (*FAMILIES, "cnn", "seed_resnet", "whisper")
