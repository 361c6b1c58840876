"""The interface every model family implements (see ``accent_rater.models``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal, Sequence

import numpy as np


class Family(ABC):
    """Recording features -> one logit of P(native) per window; a recording's logit is their mean.

    What a family is, declared by its class: ``features``, the inputs it reads (``"mels"``:
    ``features.Features``; ``"whisper"``: ``backbones.whisper.WhisperFeatures``, the ``features``
    setting of a training config without its size); ``neural``, a torch module trained by mini-batches
    (``models.neural``: early stopping on a validation split, exported to ONNX); ``exportable``,
    whether a bundle can hold it."""

    name: ClassVar[str]
    features: ClassVar[Literal["mels", "whisper"]] = "mels"
    neural: ClassVar[bool] = False
    exportable: ClassVar[bool] = True

    def __init__(self, **params: Any) -> None:
        self.params = params

    @abstractmethod
    def fit(self, train: Sequence[Any], y: np.ndarray, val: Sequence[Any] | None = None, y_val: np.ndarray | None = None,
            weights: np.ndarray | None = None) -> dict:
        """Fit on recordings (y: 1 = native), optionally weighting each recording (``weights``, mean
        about 1); returns a small history dict."""

    @abstractmethod
    def segment_logits(self, feats: Any) -> np.ndarray:
        """One logit of P(native) per window of the recording."""

    def recording_logit(self, feats: Any) -> float:
        return float(np.mean(self.segment_logits(feats)))

    def tensors(self) -> dict[str, np.ndarray]:
        """The fitted parameters as named arrays (what a bundle stores)."""
        raise NotImplementedError(f"{self.name} cannot be exported")

    def load_tensors(self, tensors: dict[str, np.ndarray]) -> None:
        raise NotImplementedError(f"{self.name} cannot be loaded")
