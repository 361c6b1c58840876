"""Pretrained speaker encoder (resemblyzer's GE2E LSTM, weights from its PyPI wheel), re-implemented
on the shared front-end so it needs neither librosa nor a download.

Input: band-limited 16 kHz speech from ``accent_rater.audio``. Output: 256-d L2-normalised
embeddings, one per 1.6 s partial, averaged per segment or per utterance.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import audio

MEL_CHANNELS = 40
PARTIAL_FRAMES = 160  # 1.6 s
PARTIAL_HOP_FRAMES = 80  # 50 % overlap
EMBED_DIM = 256


class VoiceEncoder(nn.Module):
    """3-layer LSTM (40 -> 256) + linear + ReLU, L2-normalised: resemblyzer's architecture."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(MEL_CHANNELS, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, EMBED_DIM)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """(B, frames, 40) mel power -> (B, 256) unit-norm embeddings."""
        _, (hidden, _) = self.lstm(mels)
        raw = torch.relu(self.linear(hidden[-1]))
        return raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-8)


def weights_path() -> Path:
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the speaker-embedding model needs resemblyzer's weights: "
            "pip install webrtcvad-wheels && pip install --no-deps resemblyzer"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "pretrained.pt"


@lru_cache(maxsize=1)
def load_encoder() -> VoiceEncoder:
    model = VoiceEncoder()
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)["model_state"]
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith("similarity")})
    return model.eval()


def encoder_mels(wav: np.ndarray) -> torch.Tensor:
    """Speaker-encoder input: (frames, 40) Slaney mel power of 16 kHz audio."""
    fb = audio.mel_filterbank(MEL_CHANNELS, 0.0, audio.SAMPLE_RATE / 2, slaney=True)
    return audio.mel_power(torch.as_tensor(wav, dtype=torch.float32)[None], fb)[0].T


def partial_slices(n_frames: int) -> list[slice]:
    starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + 1), PARTIAL_HOP_FRAMES))
    if n_frames > PARTIAL_FRAMES and n_frames - (starts[-1] + PARTIAL_FRAMES) > PARTIAL_HOP_FRAMES // 2:
        starts.append(n_frames - PARTIAL_FRAMES)
    return [slice(s, s + PARTIAL_FRAMES) for s in starts]


@torch.inference_mode()
def embed_partials(wav: np.ndarray, model: VoiceEncoder | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of 1.6 s partials (P, 256) and their centre frames (P,)."""
    model = model or load_encoder()
    mel = encoder_mels(wav)
    if mel.shape[0] < PARTIAL_FRAMES:
        mel = torch.nn.functional.pad(mel, (0, 0, 0, PARTIAL_FRAMES - mel.shape[0]))
    slices = partial_slices(mel.shape[0])
    batch = torch.stack([mel[s] for s in slices])
    centres = np.array([(s.start + s.stop) // 2 for s in slices])
    return model(batch).numpy(), centres


def pool(embeddings: np.ndarray) -> np.ndarray:
    mean = embeddings.mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-8)
