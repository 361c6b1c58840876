"""Pretrained speaker encoder (resemblyzer's GE2E LSTM, weights from its PyPI wheel), re-implemented
on the shared front-end so it needs neither librosa nor a download.

Input: band-limited 16 kHz speech from ``accent_rater.audio``. Output, per 1.6 s partial: the
256-d L2-normalised speaker embedding, and the mean and mean-square of each LSTM layer's hidden
states. Pooled over a segment or an utterance, the layer statistics (mean + std, 1536-d) carry
more accent information than the speaker embedding itself (0.92 vs 0.88 ROC-AUC in a linear probe).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import audio, logmel
from ..threads import onnx_session

MEL_CHANNELS = 40
PARTIAL_FRAMES = 160  # 1.6 s
PARTIAL_HOP_FRAMES = 80  # 50 % overlap
EMBED_DIM = 256
HIDDEN = 256
LAYERS = 3
WARMUP_FRAMES = 20  # hidden states of a partial's first 200 ms are left out of the statistics
STATS_DIM = 2 * LAYERS * HIDDEN


class VoiceEncoder(nn.Module):
    """3-layer LSTM (40 -> 256) + linear + ReLU, L2-normalised: resemblyzer's architecture."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(MEL_CHANNELS, 256, 3, batch_first=True)
        self.linear = nn.Linear(256, EMBED_DIM)

    def forward(self, mels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, frames, 40) mel power -> unit-norm embeddings (B, 256) and, per layer, the mean and
        mean square of hidden states over frames (B, 3 * 256 each)."""
        x = mels
        means, squares = [], []
        state = torch.empty(0)
        for layer in self.layers():
            x, (state, _) = layer(x)
            h = x[:, WARMUP_FRAMES:]
            means.append(h.mean(dim=1))
            squares.append(h.square().mean(dim=1))
        raw = torch.relu(self.linear(state[-1]))
        emb = raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-8)
        return emb, torch.cat(means, dim=1), torch.cat(squares, dim=1)

    def layers(self) -> list[nn.LSTM]:
        """The stacked LSTM as single-layer LSTMs sharing its weights (to read every layer)."""
        if not hasattr(self, "_layers"):
            out = []
            for i in range(LAYERS):
                layer = nn.LSTM(MEL_CHANNELS if i == 0 else HIDDEN, HIDDEN, 1, batch_first=True)
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    setattr(layer, f"{name}_l0", getattr(self.lstm, f"{name}_l{i}"))
                out.append(layer)
            self._layers = out
        return self._layers


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
    fb = logmel.mel_filterbank(MEL_CHANNELS, 0.0, audio.SAMPLE_RATE / 2, slaney=True)
    return logmel.mel_power(torch.as_tensor(wav, dtype=torch.float32)[None], fb)[0].T


def partial_slices(n_frames: int) -> list[slice]:
    starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + 1), PARTIAL_HOP_FRAMES))
    if n_frames > PARTIAL_FRAMES and n_frames - (starts[-1] + PARTIAL_FRAMES) > PARTIAL_HOP_FRAMES // 2:
        starts.append(n_frames - PARTIAL_FRAMES)
    return [slice(s, s + PARTIAL_FRAMES) for s in starts]


@dataclass(frozen=True)
class Partials:
    embeddings: np.ndarray  # (P, 256)
    means: np.ndarray  # (P, 768) hidden-state means per layer
    squares: np.ndarray  # (P, 768) hidden-state mean squares per layer
    centres: np.ndarray  # (P,) centre of each partial, in samples of the input audio


class OnnxEncoder:
    """The same encoder exported to ONNX (``accent_rater.training.export.export_encoder``), for serving with
    onnxruntime; parity with the PyTorch module is tested."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        self.session = onnx_session(path, threads)

    def __call__(self, mels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        emb, means, squares = self.session.run(None, {"mels": np.ascontiguousarray(mels, dtype=np.float32)})
        return emb, means, squares


def encode(wav: np.ndarray, model: VoiceEncoder | OnnxEncoder | None = None) -> Partials:
    """Run the encoder (PyTorch or ONNX) over 1.6 s partials of 16 kHz speech."""
    model = model or load_encoder()
    mel = encoder_mels(wav)
    if mel.shape[0] < PARTIAL_FRAMES:
        mel = torch.nn.functional.pad(mel, (0, 0, 0, PARTIAL_FRAMES - mel.shape[0]))
    slices = partial_slices(mel.shape[0])
    batch = torch.stack([mel[s] for s in slices])
    if isinstance(model, VoiceEncoder):
        with torch.inference_mode():
            emb, means, squares = (t.numpy() for t in model(batch))
    else:
        emb, means, squares = model(batch.numpy())
    centres = np.array([(s.start + s.stop) // 2 for s in slices]) * audio.HOP_LENGTH
    return Partials(emb, means, squares, centres)


def pool(embeddings: np.ndarray) -> np.ndarray:
    """Average partial embeddings and re-normalise."""
    mean = embeddings.mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-8)


def pool_stats(means: np.ndarray, squares: np.ndarray) -> np.ndarray:
    """Per-layer hidden-state mean and std over a set of partials -> (1536,)."""
    mu = means.mean(axis=0)
    sd = np.sqrt(np.maximum(squares.mean(axis=0) - mu**2, 0.0))
    return np.concatenate([mu, sd]).astype(np.float32)
