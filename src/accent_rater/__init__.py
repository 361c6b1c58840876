"""Accent Rater: how native does an English accent sound? Offline, CPU-first.

Pipeline: ``audio`` (decode, band limit, VAD, segments, log-mel) -> ``features`` (running the frozen
pretrained ``backbones``) -> ``models`` -> ``train`` / ``report`` -> serving (``rater``, ``cli``,
``api``, ``ui``).

    from accent_rater import Rater
    Rater().rate("speech.wav").score
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# Offline means offline: onnxruntime otherwise records usage telemetry (files in $TMPDIR and ~/.cache).
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

from .errors import AccentRaterError, AudioError  # noqa: E402

__version__ = "0.1.0"
__all__ = ["AccentRaterError", "AccentResult", "AudioError", "Rater", "__version__"]

if TYPE_CHECKING:
    from .rater import AccentResult, Rater


def __getattr__(name: str) -> Any:
    # Lazy: `import accent_rater.training.data` (or .metrics, .report) must not pull in torch and onnxruntime.
    if name in ("Rater", "AccentResult"):
        from . import rater

        return getattr(rater, name)
    raise AttributeError(f"module 'accent_rater' has no attribute {name!r}")
