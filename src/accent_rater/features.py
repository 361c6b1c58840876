"""Features every model family reads, computed once per recording from ``audio.Speech``.

The same ``extract`` runs at training time (through the on-disk caches of ``training.caches``) and
at serving time, so training and serving cannot drift apart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import audio, logmel
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
    def load(cls, path: Path, with_mels: bool = True) -> Features:
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


def extract(speech: audio.Speech, encoder_model: speaker.VoiceEncoder | speaker.OnnxEncoder | None = None) -> Features:
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
