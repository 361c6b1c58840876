"""The interface every model family implements (see ``accent_rater.models``)."""

from __future__ import annotations

import difflib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Literal

import numpy as np


def unknown_parameters(owner: str, given: Iterable[str], valid: Sequence[str], what: str = "parameter") -> str | None:
    """The message for ``given`` names that are not in ``valid`` (None when all are known):
    "model family 'whisper' has no parameter 'Cc' (did you mean 'C'?); valid: C, layers, ..."."""
    unknown = [k for k in given if k not in valid]
    if not unknown:
        return None
    close = [m for k in unknown for m in difflib.get_close_matches(k, valid, n=1)]
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
    return (f"{owner} has no {what}{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}{hint}; "
            f"valid: {', '.join(valid)}")


def check_choice(owner: str, param: str, value: Any, allowed: Sequence[Any]) -> None:
    """Refuse a string setting outside its allowed values (a ValueError naming them)."""
    if value not in allowed:
        raise ValueError(f"{owner}: {param} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


class Family(ABC):
    """Recording features -> one logit of P(native) per window; a recording's logit is their mean.

    What a family is, declared by its class: ``features``, the inputs it reads (``"mels"``:
    ``features.Features``; ``"whisper"``: ``backbones.whisper.WhisperFeatures``, the ``features``
    setting of a training config without its size); ``neural``, a torch module trained by mini-batches
    (``models.neural``: early stopping on a validation split, exported to ONNX); ``exportable``,
    whether a bundle can hold it.

    Parameters: every family class declares its own as keyword-only arguments of ``__init__`` with
    their defaults, and passes what it does not use itself on to its base class's ``__init__``
    (``**rest``), which declares its own; this base records them all, defaults filled in, as
    ``params`` (what a bundle stores). ``parameters()`` lists them; a name outside it is a
    ``TypeError`` that lists the valid ones, and a string choice outside its allowed values a
    ``ValueError`` that lists those, so a misspelt config key never falls back to a default."""

    name: ClassVar[str]
    features: ClassVar[Literal["mels", "whisper"]] = "mels"
    neural: ClassVar[bool] = False
    exportable: ClassVar[bool] = True

    def __init__(self, **params: Any) -> None:
        message = unknown_parameters(f"model family {self.name!r}", params, self.parameters())
        if message:
            raise TypeError(message)
        self.params = params

    @classmethod
    def parameters(cls) -> list[str]:
        """The parameter names a family accepts: the keyword arguments of every ``__init__`` from
        this class up to (not including) ``Family``, the most derived first."""
        names: list[str] = []
        for klass in cls.__mro__:
            if klass is Family:
                break
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            for p in inspect.signature(init).parameters.values():
                if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self" and p.name not in names:
                    names.append(p.name)
        return names

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
