"""Accent Rater: how native does an English accent sound? Offline, CPU-first.

Pipeline: ``audio`` (decode, band limit, VAD, segments, log-mel) -> ``features`` -> ``models`` ->
``train`` / ``evaluate`` -> serving (``rater``, ``cli``, ``api``, ``ui``).
"""

__version__ = "0.1.0"

from .errors import AudioError  # noqa: E402
from .rater import AccentResult, Rater  # noqa: E402

__all__ = ["AccentResult", "AudioError", "Rater", "__version__"]
