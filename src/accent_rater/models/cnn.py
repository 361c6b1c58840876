"""Compact CNN for CPU: a dilated 1-D convolution stack over log-mel frames (TDNN / x-vector
style) with mean+std statistics pooling. ~0.3 M parameters at 128 channels (the bundled default), ~0.2 M at 96."""

from __future__ import annotations

import torch
from torch import nn

from .. import audio


class AccentCNN(nn.Module):
    def __init__(self, n_mels: int = audio.N_MELS, channels: int = 128, embed: int = 128, dropout: float = 0.3) -> None:
        super().__init__()
        # per-segment, per-band normalisation: level and microphone colouring do not reach the model
        self.norm = nn.InstanceNorm1d(n_mels, affine=False)

        def block(cin: int, cout: int, k: int, dil: int = 1, stride: int = 1) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv1d(cin, cout, k, stride=stride, dilation=dil, padding=dil * (k - 1) // 2),
                nn.BatchNorm1d(cout),
                nn.ReLU(inplace=True),
            )

        self.frames = nn.Sequential(
            block(n_mels, channels, 5, stride=2),
            block(channels, channels, 3, dil=2),
            block(channels, channels, 3, dil=3),
            block(channels, channels, 1),
            block(channels, 3 * channels, 1),
        )
        self.head = nn.Sequential(
            nn.Linear(6 * channels, embed),
            nn.BatchNorm1d(embed),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(embed, 1),
        )

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, frames) log-mel dB -> (B,) logit of P(native)."""
        h = self.frames(self.norm(mels))
        stats = torch.cat([h.mean(dim=2), h.std(dim=2)], dim=1)
        return self.head(stats).squeeze(1)
