"""Limits and access of a REST API server: what ``accent-rater serve`` sets and ``api.create_app``
enforces (kept apart from ``api`` so the CLI shows the defaults without importing FastAPI)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .. import audio

API_KEY_ENV = "ACCENT_RATER_API_KEY"


@dataclass(frozen=True)
class Settings:
    max_bytes: int = audio.MAX_FILE_BYTES  # per file
    max_seconds: float = audio.MAX_DURATION_SECONDS  # per recording
    max_batch: int = 16  # files per batch request
    max_concurrent: int = os.cpu_count() or 2  # ratings running at once (worker threads)
    max_queue: int = 32  # requests admitted beyond those; one more gets 503 with Retry-After
    timeout: float = 120.0  # seconds from queueing to a finished rating, else 504; also the graceful-shutdown wait
    api_key: str | None = None  # when set, every route but /healthz needs it (X-API-Key or Authorization: Bearer)
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to call the API; none: no CORS headers
