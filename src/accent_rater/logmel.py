"""Log-mel features of the shared front-end (``audio``'s constants): what the CNN, the seed's
ResNet, the handcrafted family and the speaker encoder read. The Whisper default reads Whisper's own
log-mel (``backbones.whisper.log_mel``) instead.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from .audio import DB_FLOOR, F_MAX, F_MIN, HOP_LENGTH, N_FFT, N_MELS, SAMPLE_RATE, Speech, make_segments

if TYPE_CHECKING:  # torch is imported where log-mels are computed
    import torch


def _hz_to_mel_htk(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def _mel_to_hz_htk(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def _hz_to_mel_slaney(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, lin)


def _mel_to_hz_slaney(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    lin = m * (200.0 / 3)
    log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
    return np.where(m >= 15.0, log, lin)


@lru_cache(maxsize=8)
def mel_filterbank_np(
    n_mels: int = N_MELS,
    f_min: float = F_MIN,
    f_max: float = F_MAX,
    n_fft: int = N_FFT,
    sample_rate: int = SAMPLE_RATE,
    slaney: bool = False,
) -> np.ndarray:
    """Triangular mel filters (n_freqs, n_mels). HTK scale without norm (torchaudio's default, as the
    seed used), or Slaney scale with area norm (librosa's default, used by the speaker encoder)."""
    to_mel, to_hz = (_hz_to_mel_slaney, _mel_to_hz_slaney) if slaney else (_hz_to_mel_htk, _mel_to_hz_htk)
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    pts = to_hz(np.linspace(to_mel(np.array(f_min)), to_mel(np.array(f_max)), n_mels + 2))
    down = (freqs[:, None] - pts[None, :-2]) / (pts[1:-1] - pts[:-2])[None, :]
    up = (pts[None, 2:] - freqs[:, None]) / (pts[2:] - pts[1:-1])[None, :]
    fb = np.maximum(0.0, np.minimum(down, up))
    if slaney:
        fb *= (2.0 / (pts[2:] - pts[:-2]))[None, :]
    return fb.astype(np.float32)


@lru_cache(maxsize=8)
def mel_filterbank(*args, **kwargs) -> torch.Tensor:
    """``mel_filterbank_np`` as a torch tensor (same arguments)."""
    import torch

    return torch.from_numpy(mel_filterbank_np(*args, **kwargs))


def mel_centres() -> np.ndarray:
    """Centre frequency (Hz) of each of the N_MELS log-mel bands."""
    m = np.linspace(_hz_to_mel_htk(np.array(F_MIN)), _hz_to_mel_htk(np.array(F_MAX)), N_MELS + 2)
    return _mel_to_hz_htk(m)[1:-1]


@lru_cache(maxsize=4)
def _window(n_fft: int) -> torch.Tensor:
    import torch

    return torch.hann_window(n_fft)


def mel_power(batch: torch.Tensor, fb: torch.Tensor, n_fft: int = N_FFT, hop: int = HOP_LENGTH) -> torch.Tensor:
    """(B, T) waveforms -> (B, n_mels, frames) mel power (center=True, zero padding)."""
    import torch

    spec = torch.stft(batch, n_fft, hop, window=_window(n_fft), center=True, pad_mode="constant", return_complex=True)
    power = spec.real.square() + spec.imag.square()
    return torch.matmul(power.transpose(1, 2), fb).transpose(1, 2)


def log_mel(batch: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Band-limited 16 kHz waveforms (B, T) or (T,) -> log-mel in dB, (B, N_MELS, frames)."""
    import torch

    x = torch.as_tensor(batch, dtype=torch.float32)
    if x.dim() == 1:
        x = x[None]
    mel = mel_power(x, mel_filterbank())
    return 10.0 * torch.log10(torch.clamp(mel, min=DB_FLOOR))


def segment_features(speech: Speech) -> tuple[torch.Tensor, list[tuple[float, float]]]:
    """Speech -> (B, N_MELS, SEGMENT_FRAMES) log-mels and each window's span in original seconds."""
    windows, spans = make_segments(speech.audio)
    times = [speech.span_seconds(s, e) for s, e in spans]
    return log_mel(windows), times
