"""On-disk feature caches for training and evaluation: one ``.npz`` per recording, written in
parallel (``serve.engine``: local processes or Ray) by the same ``features.extract`` and
``backbones.whisper.embed`` that a rating runs, so training and serving cannot drift apart.
Interrupted builds resume: a recording already cached is skipped."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from .. import audio
from ..errors import AudioError
from ..features import Features, extract
from ..serve.engine import Engine, run_map
from ..threads import one_blas_thread


def cache_path(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / f"{key}.npz"


def _extract_one(key: str, path: str, cache_dir: str) -> tuple[str, str | None]:
    torch.set_num_threads(1)
    try:
        extract(audio.prepare(path)).save(cache_path(Path(cache_dir), key))
        return key, None
    except AudioError as exc:
        return key, f"{exc.code}: {exc}"


def build_cache(items: Sequence[tuple[str, str]], cache_dir: Path, engine: Engine | None = None) -> dict[str, str]:
    """Extract features for (key, path) items into ``cache_dir`` (one .npz each), in parallel on
    ``engine`` (see ``_run_pool``), with a progress bar; items already cached are skipped, so an interrupted run resumes.
    Returns {key: error message} for recordings that could not be used."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    todo = [(k, p, str(cache_dir.resolve())) for k, p in items if not cache_path(cache_dir, k).exists()]
    return _run_pool(_extract_one, todo, engine, "features")


def _run_pool(fn, todo: Sequence[tuple], engine: Engine | None, desc: str) -> dict[str, str]:
    """``fn(*args) -> (key, error or None)`` for every args tuple on ``engine`` (default: a local
    process per core; Ray with ``Engine(ray=...)``, where ``cache_dir`` must be storage every node
    shares), with a progress bar; returns {key: error}."""
    from tqdm import tqdm

    errors: dict[str, str] = {}
    with tqdm(total=len(todo), desc=desc, unit="rec", mininterval=10, disable=not todo) as bar:
        for k, err in run_map(engine or Engine(), fn, todo):
            if err:
                errors[k] = err
            bar.update()
    return errors


def load_cache(keys: Iterable[str], cache_dir: Path, with_mels: bool = True) -> dict[str, Features]:
    return {k: Features.load(cache_path(Path(cache_dir), k), with_mels) for k in keys if cache_path(Path(cache_dir), k).exists()}


_WHISPER: dict[str, object] = {}  # one ONNX session per worker process and encoder file


def _whisper_one(key: str, path: str, cache_dir: str, encoder_path: str, augment_kind: str | None, seed: int,
                 keep_frames: bool, window_s: float = audio.CHUNK_SECONDS,
                 min_speech_s: float = audio.MIN_SPEECH_SECONDS) -> tuple[str, str | None]:
    from ..backbones import whisper

    torch.set_num_threads(1)
    if encoder_path not in _WHISPER:
        _WHISPER.clear()
        _WHISPER[encoder_path] = whisper.OnnxWhisper(encoder_path, threads=1)
    try:
        wav = audio.load_audio(path)
        if augment_kind:
            wav = audio.band_limit(degrade(wav, augment_kind, np.random.default_rng(seed)), audio.SAMPLE_RATE)
        with one_blas_thread():
            feats = whisper.embed(audio.prepare_waveform(wav, min_speech_seconds=min_speech_s), _WHISPER[encoder_path],
                                  keep_frames=keep_frames, window_s=window_s)
        feats.save(cache_path(Path(cache_dir), key))
        return key, None
    except AudioError as exc:
        return key, f"{exc.code}: {exc}"


def degrade(wav: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A channel kind of ``augment.KINDS``, or an evaluation degradation: ``snr<dB>`` (pink noise at
    that SNR) or ``level<dB>`` (gain, then 16-bit quantisation like a real quiet recording); kinds
    joined by ``+`` are applied in turn (``reverb+noise+telephone``: a phone call from a room)."""
    from . import augment

    if "+" in kind:
        for part in kind.split("+"):
            wav = degrade(wav, part, rng)
        return wav
    if kind.startswith("snr"):
        return augment.add_noise(wav, float(kind[3:]), rng, color="pink")
    if kind.startswith("level"):
        return augment.change_level(wav, float(kind[5:]))
    return augment.augment(wav, kind, rng)


def build_whisper_cache(items: Sequence[tuple[str, str, str | None, int]], cache_dir: Path, encoder_path: Path,
                        engine: Engine | None = None, keep_frames: bool = False, window_s: float = audio.CHUNK_SECONDS,
                        min_speech_s: float = audio.MIN_SPEECH_SECONDS) -> dict[str, str]:
    """Whisper features for (key, path, augmentation kind or None, seed) items, one .npz per key in
    ``cache_dir``, resumable like ``build_cache``; ``min_speech_s`` lets training read utterances
    shorter than a rating needs. Returns {key: error message}."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    todo = [(k, p, str(cache_dir.resolve()), str(Path(encoder_path).resolve()), kind, seed, keep_frames, window_s, min_speech_s)
            for k, p, kind, seed in items if not cache_path(cache_dir, k).exists()]
    return _run_pool(_whisper_one, todo, engine, f"whisper features ({Path(encoder_path).stem})")
