"""Where accent-rater keeps what it computes: the one owner of these paths. Training, evaluation
and the scripts ask here instead of joining folder names. Relative paths are relative to the
working directory (the repository's root when training):

    cache/weights/                           converted Whisper encoders, Whisper base ($ACCENT_RATER_WEIGHTS)
    cache/features/<corpus>/                 mel-based features, one .npz per recording
    cache/whisper/<tag>[-w<s>]/<corpus>/     Whisper window statistics (tag: size-precision; -w3: 3 s windows)
    cache/pronunciation/                     pronunciation measures, one per reading
    cache/words/<version>/                   what Whisper heard in the word-feedback validation
    runs/<config name>/                      a training run: folds, out-of-fold predictions, report/
    reports/<config path under configs/>/    a run's report, committed (reports/default, reports/experiments/<name>)
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE = Path("cache")
WEIGHTS = Path(os.environ.get("ACCENT_RATER_WEIGHTS", CACHE / "weights"))
RUNS = Path("runs")
REPORTS = Path("reports")
CONFIGS = Path("configs")
PRONUNCIATION = CACHE / "pronunciation"


def mel_features(corpus: str, cache: str | Path = CACHE) -> Path:
    """The mel-based features of a corpus (the ``fast`` model's members)."""
    return Path(cache) / "features" / corpus


def whisper_features(tag: str, corpus: str, window_s: float | None = None, cache: str | Path = CACHE) -> Path:
    """The Whisper window statistics of a corpus: ``tag`` is ``backbones.whisper.feature_tag(size)``
    (the size and the encoder's precision), ``window_s`` the window length when it is not the
    default 7 s (``-w3``: 3 s windows)."""
    return Path(cache) / "whisper" / f"{tag}{'' if window_s is None else f'-w{window_s:g}'}" / corpus


def words_cache(version: str, cache: str | Path = CACHE) -> Path:
    """The word-feedback validation's transcripts; a new ``version`` for each change of the transcriber."""
    return Path(cache) / "words" / version


def run_dir(name: str) -> Path:
    """A training run of the config named ``name``."""
    return RUNS / name


def report_dir(config: str | Path) -> Path:
    """The committed report of a config: its path under ``configs/`` without ``.toml``, under
    ``reports/`` (``configs/default.toml`` -> ``reports/default``, ``configs/experiments/x.toml``
    -> ``reports/experiments/x``); a config elsewhere reports under its name."""
    path = Path(config)
    try:
        rel = path.resolve().relative_to(CONFIGS.resolve())
    except ValueError:
        rel = Path(path.name)
    return REPORTS / rel.with_suffix("")
