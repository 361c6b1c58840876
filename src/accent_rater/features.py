"""Features every model family reads, computed once per recording from ``audio.Speech``.

The same ``extract`` runs at training time (through the on-disk cache) and at serving time, so
training and serving cannot drift apart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from .threads import one_blas_thread
from . import audio, logmel
from .engine import Engine, run_map
from .errors import AudioError
from .backbones import speaker

PROSODY_NAMES = (
    "nuclei_per_s",  # syllable-like intensity peaks per second of speech (text-independent rate)
    "pauses_per_s",  # pauses (>= 150 ms between VAD regions) per second of speech
    "pause_mean_s",
    "pause_ratio",  # pause time / (speech + pause time) inside the spoken span
    "run_mean_s",  # mean length of uninterrupted speech
    "run_std_s",
    "energy_std_db",  # loudness variability over voiced frames
    "nuclei_interval_cv",  # rhythm regularity: coefficient of variation of peak intervals
)
MIN_PAUSE_S = 0.15


@dataclass(frozen=True)
class Features:
    """Everything the models need for one recording."""

    mels: np.ndarray  # (S, N_MELS, SEGMENT_FRAMES) log-mel dB per 7 s segment
    spans: np.ndarray  # (S, 2) segment start/end in seconds of the original recording
    seg_embeddings: np.ndarray  # (S, 256) speaker-encoder embedding per segment
    embedding: np.ndarray  # (256,) utterance embedding
    seg_stats: np.ndarray  # (S, 1536) encoder hidden-state statistics per segment
    stats: np.ndarray  # (1536,) encoder hidden-state statistics of the utterance
    prosody: np.ndarray  # (len(PROSODY_NAMES),)
    speech_seconds: float
    duration_seconds: float

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            mels=self.mels.astype(np.float16),
            spans=self.spans,
            seg_embeddings=self.seg_embeddings,
            embedding=self.embedding,
            seg_stats=self.seg_stats.astype(np.float16),
            stats=self.stats,
            prosody=self.prosody,
            speech_seconds=self.speech_seconds,
            duration_seconds=self.duration_seconds,
        )
        os.replace(tmp, path)  # atomic: an interrupted run never leaves a half-written file

    @classmethod
    def load(cls, path: Path, with_mels: bool = True) -> "Features":
        with np.load(path) as z:
            return cls(
                mels=z["mels"] if with_mels else np.zeros((0,), np.float16),
                spans=z["spans"],
                seg_embeddings=z["seg_embeddings"],
                embedding=z["embedding"],
                seg_stats=z["seg_stats"].astype(np.float32),
                stats=z["stats"],
                prosody=z["prosody"],
                speech_seconds=float(z["speech_seconds"]),
                duration_seconds=float(z["duration_seconds"]),
            )


def prosody(speech: audio.Speech) -> np.ndarray:
    """Text-independent fluency and rhythm statistics from VAD regions and the intensity contour."""
    from scipy.signal import find_peaks

    sr = audio.SAMPLE_RATE
    regions = np.array(speech.regions, dtype=np.float64) / sr
    gaps = regions[1:, 0] - regions[:-1, 1] if len(regions) > 1 else np.zeros(0)
    pauses = gaps[gaps >= MIN_PAUSE_S]
    runs = regions[:, 1] - regions[:, 0]
    spoken = max(speech.speech_seconds, 1e-3)
    # intensity contour (300-2500 Hz) of the trimmed speech, 10 ms frames
    mel = logmel.log_mel(speech.audio)[0]
    fb_freqs = logmel.mel_centres()
    band = (fb_freqs >= 300) & (fb_freqs <= 2500)
    env = 10 * np.log10(np.maximum(10 ** (mel[band].numpy() / 10).mean(axis=0), 1e-10))
    env = np.convolve(env, np.ones(5) / 5, mode="same")
    voiced = env > env.max() - 30
    peaks, _ = find_peaks(env, prominence=3.0, distance=10, height=env.max() - 25)
    intervals = np.diff(peaks) / 100.0
    intervals = intervals[intervals < 0.5]
    return np.array(
        [
            len(peaks) / (len(speech.audio) / sr),
            len(pauses) / spoken,
            pauses.mean() if len(pauses) else 0.0,
            pauses.sum() / (pauses.sum() + spoken),
            runs.mean(),
            runs.std(),
            env[voiced].std() if voiced.any() else 0.0,
            intervals.std() / intervals.mean() if len(intervals) > 2 else 0.0,
        ],
        dtype=np.float32,
    )


def extract(speech: audio.Speech, encoder_model: "speaker.VoiceEncoder | speaker.OnnxEncoder | None" = None) -> Features:
    """Log-mel segments, speaker-encoder statistics (per segment and per utterance) and prosody.
    Training runs the encoder in PyTorch; serving passes the bundle's ONNX copy (parity-tested)."""
    windows, spans_samples = audio.make_segments(speech.audio)
    mels = logmel.log_mel(windows).numpy()
    spans = np.array(
        [speech.span_seconds(s, e) for s, e in spans_samples],
        dtype=np.float32,
    )
    enc = speaker.encode(speech.audio, encoder_model)
    seg_emb, seg_stats = [], []
    for s, e in spans_samples:
        inside = (enc.centres >= s) & (enc.centres < e)
        if not inside.any():
            inside[:] = True
        seg_emb.append(speaker.pool(enc.embeddings[inside]))
        seg_stats.append(speaker.pool_stats(enc.means[inside], enc.squares[inside]))
    return Features(
        mels=mels,
        spans=spans,
        seg_embeddings=np.stack(seg_emb).astype(np.float32),
        embedding=speaker.pool(enc.embeddings).astype(np.float32),
        seg_stats=np.stack(seg_stats),
        stats=speaker.pool_stats(enc.means, enc.squares),
        prosody=prosody(speech),
        speech_seconds=speech.speech_seconds,
        duration_seconds=speech.duration_seconds,
    )


# --- on-disk cache -------------------------------------------------------------------------------
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


# --- Whisper features (pretrained backbone), optionally of augmented copies ---------------------------
_WHISPER: dict[str, "object"] = {}  # one ONNX session per worker process and encoder file


def _whisper_one(key: str, path: str, cache_dir: str, encoder_path: str, augment_kind: str | None, seed: int,
                 keep_frames: bool, window_s: float = audio.CHUNK_SECONDS,
                 min_speech_s: float = audio.MIN_SPEECH_SECONDS) -> tuple[str, str | None]:
    from .backbones import whisper

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
