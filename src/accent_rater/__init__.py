"""Accent Rater: how native does an English accent sound? Offline, CPU-first.

Pipeline: ``audio`` (decode, band limit, VAD, segments, log-mel) -> ``features`` -> ``models`` ->
``train`` / ``evaluate`` -> serving (``rater``, ``cli``, ``api``, ``ui``).
"""

from .errors import AudioError

__version__ = "0.1.0"
__all__ = ["AudioError", "__version__"]
