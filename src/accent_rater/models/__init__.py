"""Model families behind one interface (``base.Family``): recording features -> per-window logits
-> P(native). A recording's logit is the mean of its window logits. The families, by module:

- ``linear``: ``encoder`` (hidden-state statistics + embedding of the pretrained speaker encoder ->
  logistic regression; ``inputs = "embedding"`` reads the 256-d embedding alone) and ``fluency``
  (text-independent rate / pause / rhythm statistics -> logistic regression);
- ``handcrafted``: the seed's 72 spectral statistics -> RandomForest (baseline, not exportable);
- ``neural``: ``cnn`` (compact 1-D CNN on band-limited log-mels, ``cnn``) and ``seed_resnet`` (the
  seed's ResNet18 on 224x224 resized mels, ``resnet``), with their training loop;
- ``whisper_heads``: ``whisper`` (the frozen Whisper encoder's layer statistics -> logistic
  regression), the first-language head and the novelty check.

Fitted parameters are plain arrays (saved as safetensors, never pickle). The frozen pretrained
extractors themselves are in ``accent_rater.backbones``.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import Family, unknown_parameters

# family name -> "module:class" in this package; a module (and torch, for the neural ones) is
# imported only when one of its families is asked for
FAMILIES: dict[str, str] = {
    "encoder": "linear:EncoderFamily",
    "fluency": "linear:FluencyFamily",
    "handcrafted": "handcrafted:HandcraftedFamily",
    "cnn": "neural:CNNFamily",
    "seed_resnet": "neural:SeedResNetFamily",
    "whisper": "whisper_heads:WhisperFamily",
}

__all__ = ["FAMILIES", "Family", "family_class", "get_family"]


def family_class(name: str) -> type[Family]:
    """The class of a family, by name (what it is: ``Family.features``, ``neural``, ``exportable``)."""
    if name not in FAMILIES:
        raise KeyError(f"unknown model family {name!r}; choose from {sorted(FAMILIES)}")
    module, cls = FAMILIES[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def get_family(name: str, **params: Any) -> Family:
    """Instantiate a family by name. A parameter it does not declare is a ``TypeError`` naming it and
    the valid ones ("model family 'whisper' has no parameter 'Cc' (did you mean 'C'?); valid: C,
    layers, ..."), raised before anything is built; a string choice outside its allowed values
    (``scheduler``, ``parts``, ...) is a ``ValueError`` naming them."""
    cls = family_class(name)
    message = unknown_parameters(f"model family {name!r}", params, cls.parameters())
    if message:
        raise TypeError(message)
    return cls(**params)
