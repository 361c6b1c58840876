"""Heads on the frozen Whisper encoder's pooled states (``accent_rater.backbones.whisper.WhisperFeatures``).

- ``whisper`` (accent): every chosen layer's time mean and std in a window -> standardise ->
  logistic regression, trained on windows (each recording weighted equally), so it learns from
  7 s spans of a few words rather than from whole readings of one paragraph;
- ``whisper_attn``: attention pooling over the cached frame states of one layer (learned in
  PyTorch), for comparison;
- ``L1Head``: multinomial logistic regression over the same inputs, predicting the first language
  (English or one of the corpus's L1s), temperature-calibrated on out-of-fold predictions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from .base import check_choice
from .linear import LinearFamily

PARTS = ("mean+std", "mean")  # which of every layer's window statistics a head reads


def layer_rows(feats, layers: Sequence[int] | None, parts: str = "mean+std") -> np.ndarray:
    """(S, len(layers) * 2 * D) rows: the chosen layers' (mean, std) per window (``parts = "mean"``:
    the means alone)."""
    check_choice("layer_rows", "parts", parts, PARTS)
    x = feats.stats if layers is None else feats.stats[:, list(layers)]
    if parts == "mean":
        x = x[:, :, :1]
    return x.reshape(len(x), -1)


class WhisperFamily(LinearFamily):
    """The accent head: the window rows of ``layers`` (None = every state) and ``parts``
    (``PARTS``) -> standardise -> logistic regression (``C``) on every window; ``segment_level`` is
    always true (accepted, as bundles record it; false is refused).

    A config with ``corpora`` trains this head with ``training.multicorpus.fit_head``, whose
    ``Recipe`` fields beyond ``C`` are the rest of the parameters here (``RECIPE``, their defaults
    the ``Recipe``'s; ``corpora`` None = every corpus of the config): the head records them (the
    bundle shows how it was trained) and reads every column whatever they were, so ``columns`` must
    be "all" here (other column sets are ``Recipe`` experiments). ``fit`` itself, on one corpus,
    applies none of them: ``train.check_members`` refuses them in a config without ``corpora``."""

    name = "whisper"
    features = "whisper"
    RECIPE: ClassVar[tuple[str, ...]] = ("corpora", "augmented", "short", "nuisance", "corpus_nuisance", "view_nuisance",
                                         "scale_floor", "columns", "halves", "extra")

    def __init__(self, *, C: float = 0.01, layers: Sequence[int] | None = None, parts: str = "mean+std", segment_level: bool = True,
                 corpora: Sequence[str] | None = None, augmented: bool = True, short: bool = True, nuisance: int = 0,
                 corpus_nuisance: int = 0, view_nuisance: bool = False, scale_floor: float = 0.0, columns: str = "all",
                 halves: Sequence[int] = (0, 1), extra: dict[str, float] | None = None) -> None:
        check_choice("model family 'whisper'", "parts", parts, PARTS)
        if not segment_level:
            raise ValueError("model family 'whisper' trains on windows: segment_level must be true")
        if columns != "all":
            raise ValueError(f"model family 'whisper' reads every column: columns must be 'all' (got {columns!r}; other column "
                             "sets are multicorpus.Recipe experiments, scripts/cross_corpus.py)")
        super().__init__(C=C, segment_level=True, layers=None if layers is None else list(layers), parts=parts,
                         corpora=None if corpora is None else list(corpora), augmented=augmented, short=short, nuisance=nuisance,
                         corpus_nuisance=corpus_nuisance, view_nuisance=view_nuisance, scale_floor=scale_floor, columns=columns,
                         halves=list(halves), extra={} if extra is None else dict(extra))

    def recipe_settings(self) -> dict[str, Any]:
        """The multi-corpus settings (``RECIPE``) that differ from their defaults: what only a
        config with ``corpora`` (``multicorpus.fit_head``) can apply."""
        default = type(self)().params
        return {k: self.params[k] for k in self.RECIPE if self.params[k] != default[k]}

    def rows(self, feats) -> np.ndarray:
        return layer_rows(feats, self.params["layers"], self.params["parts"])


class L1Head:
    """First-language guess: P(language | speech) over ``classes``, from the window rows of the
    chosen layers averaged over the recording. ``method = "lda"`` (default): standardise -> PCA
    (``n_components``) -> linear discriminant analysis, folded into one linear map; ``"logistic"``:
    multinomial logistic regression (``C``). Either way a recording's class logits are linear in its
    mean row, then temperature-scaled."""

    METHODS: ClassVar[tuple[str, ...]] = ("lda", "logistic")

    def __init__(self, *, method: str = "lda", C: float = 0.1, layers: Sequence[int] | None = None, parts: str = "mean+std",
                 n_components: int = 128) -> None:
        check_choice("L1 head", "method", method, self.METHODS)
        check_choice("L1 head", "parts", parts, PARTS)
        self.params: dict[str, Any] = {"method": method, "C": C, "layers": None if layers is None else list(layers), "parts": parts,
                       "n_components": n_components}
        self.classes: list[str] = []
        self.mean = self.scale = self.coef = self.intercept = np.zeros(0, np.float32)  # fitted or loaded
        self.temperature = 1.0

    def rows(self, feats) -> np.ndarray:
        return layer_rows(feats, self.params["layers"], self.params["parts"])

    def fit(self, train: Sequence[Any], languages: Sequence[str]) -> L1Head:
        from sklearn.preprocessing import StandardScaler

        X = np.stack([self.rows(f).mean(axis=0) for f in train])
        yy = np.asarray(languages)
        scaler = StandardScaler().fit(X)
        Z = scaler.transform(X)
        if self.params["method"] == "lda":
            from sklearn.decomposition import PCA
            from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

            pca = PCA(min(self.params["n_components"], len(Z) - 1, Z.shape[1]), random_state=0).fit(Z)
            lda = LinearDiscriminantAnalysis().fit(pca.transform(Z), yy)
            W = pca.components_.T @ lda.coef_.T  # (D, C): standardised row -> class logits
            coef, intercept, classes = W.T, lda.intercept_ - pca.mean_ @ W, lda.classes_
            if coef.shape[0] == 1:  # two classes: sklearn gives one discriminant
                coef, intercept = np.vstack([-coef, coef]) / 2, np.array([-intercept[0], intercept[0]]) / 2
        else:
            from sklearn.linear_model import LogisticRegression

            lr = LogisticRegression(C=self.params["C"], max_iter=3000).fit(Z, yy)
            coef, intercept, classes = lr.coef_, lr.intercept_, lr.classes_
        self.classes = [str(c) for c in classes]
        self.mean, self.scale = scaler.mean_.astype(np.float32), scaler.scale_.astype(np.float32)
        self.coef, self.intercept = np.asarray(coef, np.float32), np.asarray(intercept, np.float32)
        return self

    def logits(self, feats) -> np.ndarray:
        """Recording-level class logits (linear in the recording's mean row)."""
        x = (self.rows(feats).mean(axis=0) - self.mean) / self.scale
        return x @ self.coef.T + self.intercept

    def proba(self, feats) -> np.ndarray:
        z = self.logits(feats) / self.temperature
        e = np.exp(z - z.max())
        return e / e.sum()

    def fit_temperature(self, logits: np.ndarray, labels: Sequence[str]) -> float:
        """Temperature minimising the log loss of out-of-fold ``logits`` (N, C)."""
        from scipy.optimize import minimize_scalar

        idx = np.array([self.classes.index(lang) for lang in labels])

        def nll(log_t: float) -> float:
            z = logits / np.exp(log_t)
            z = z - z.max(axis=1, keepdims=True)
            return float(-(z[np.arange(len(z)), idx] - np.log(np.exp(z).sum(axis=1))).mean())

        self.temperature = float(np.exp(minimize_scalar(nll, bounds=(-3, 3), method="bounded").x))
        return self.temperature

    def tensors(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "scale": self.scale, "coef": self.coef, "intercept": self.intercept,
                "temperature": np.array([self.temperature], np.float32)}

    def load_tensors(self, t: dict[str, np.ndarray], classes: Sequence[str]) -> L1Head:
        self.mean, self.scale, self.coef, self.intercept = t["mean"], t["scale"], t["coef"], t["intercept"]
        self.temperature = float(t["temperature"][0])
        self.classes = list(classes)
        return self


class Novelty:
    """How unlike the training recordings an input is: the mean over its windows of the squared
    Mahalanobis distance (per dimension) of the head's standardised inputs in the top ``k``
    principal directions of the training windows. ``threshold`` is the ``quantile`` of that score
    over the training recordings (clean and augmented), so about 1% of recordings like them exceed it."""

    def __init__(self, k: int = 24, quantile: float = 0.99) -> None:
        self.k, self.quantile = k, quantile
        self.mean = self.scale = self.components = self.variances = np.zeros(0, np.float32)  # fitted or loaded
        self.threshold = float("inf")

    def fit(self, rows: Sequence[np.ndarray]) -> Novelty:
        X = np.concatenate(rows)
        self.mean, self.scale = X.mean(0).astype(np.float32), (X.std(0) + 1e-6).astype(np.float32)
        from sklearn.utils.extmath import randomized_svd

        Z = (X - self.mean) / self.scale
        _, s, vt = randomized_svd(Z - Z.mean(0), self.k, random_state=0)
        self.components = vt.astype(np.float32)
        self.variances = (s**2 / max(len(Z) - 1, 1)).astype(np.float32)
        self.threshold = float(np.quantile([self.score(r) for r in rows], self.quantile))
        return self

    def score(self, rows: np.ndarray) -> float:
        z = ((rows - self.mean) / self.scale) @ self.components.T
        return float(np.mean(np.sum(z**2 / self.variances, axis=1) / self.k))

    def tensors(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "scale": self.scale, "components": self.components, "variances": self.variances,
                "threshold": np.array([self.threshold], np.float32)}

    def load_tensors(self, t: dict[str, np.ndarray]) -> Novelty:
        self.mean, self.scale, self.components, self.variances = t["mean"], t["scale"], t["components"], t["variances"]
        self.k, self.threshold = len(self.variances), float(t["threshold"][0])
        return self
