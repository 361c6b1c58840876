"""Accent Rater: how native does an English accent sound? Offline, CPU-first.

Rating, at this level: ``audio`` (decode, band limit, VAD, windows) -> ``backbones`` (frozen pretrained
encoders; ``features`` for the mel-based members) -> ``models`` (the heads) -> ``rater`` (a ``bundle``,
calibration, a site ``profile``; ``words`` and ``pronunciation`` for learners) -> ``AccentResult``.
Beneath it, never imported by rating: ``serve`` (REST API, web app, batch), ``training`` and
``evaluation``; the ``cli`` reaches into them.

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
