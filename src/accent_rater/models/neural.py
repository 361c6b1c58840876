"""Neural families (compact CNN, seed ResNet18): the Family interface around a torch module.
Training loops live in ``accent_rater.train``; this file only maps features to batches."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from . import Family
from .cnn import AccentCNN
from .resnet import SeedResNet18


def spec_augment(x: torch.Tensor, freq_param: int, time_param: int, n_masks: int, gen: torch.Generator) -> torch.Tensor:
    """Zero random frequency and time bands (in place on a copy) of (B, F, T) or (B, C, F, T)."""
    if n_masks <= 0:
        return x
    x = x.clone()
    n_f, n_t = x.shape[-2], x.shape[-1]
    fill = x.mean()
    for b in range(x.shape[0]):
        for _ in range(n_masks):
            w = int(torch.randint(0, freq_param + 1, (1,), generator=gen))
            f0 = int(torch.randint(0, max(1, n_f - w), (1,), generator=gen))
            x[b, ..., f0:f0 + w, :] = fill
            w = int(torch.randint(0, time_param + 1, (1,), generator=gen))
            t0 = int(torch.randint(0, max(1, n_t - w), (1,), generator=gen))
            x[b, ..., :, t0:t0 + w] = fill
    return x


class NeuralFamily(Family):
    """Segment classifier on log-mels; a recording's logit is the mean over its segments."""

    def build(self) -> torch.nn.Module:
        raise NotImplementedError

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.module = self.build()

    def train_batch(self, mels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Augment a training batch of (B, n_mels, frames) and return the module's logits."""
        return self.module(mels)

    def fit(self, train, y, val=None, y_val=None, weights=None) -> dict:
        from ..train import fit_neural

        return fit_neural(self, train, y, val, y_val, weights)

    @torch.inference_mode()
    def segment_logits(self, feats) -> np.ndarray:
        self.module.eval()
        return self.module(torch.as_tensor(feats.mels, dtype=torch.float32)).numpy()

    def tensors(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.module.state_dict().items()}

    def load_tensors(self, t: dict[str, np.ndarray]) -> None:
        self.module.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in t.items()})
        self.module.eval()


class CNNFamily(NeuralFamily):
    name = "cnn"

    def build(self) -> torch.nn.Module:
        p = self.params
        return AccentCNN(channels=p.get("channels", 128), embed=p.get("embed", 128), dropout=p.get("dropout", 0.3))

    def train_batch(self, mels, gen):
        crop = self.params.get("crop_frames", 300)
        if crop and mels.shape[-1] > crop:
            t0 = int(torch.randint(0, mels.shape[-1] - crop + 1, (1,), generator=gen))
            mels = mels[..., t0:t0 + crop]
        aug = self.params.get("specaugment", [8, 30, 2])
        return self.module(spec_augment(mels, *aug, gen=gen))


class SeedResNetFamily(NeuralFamily):
    name = "seed_resnet"

    def build(self) -> torch.nn.Module:
        return SeedResNet18(dropout=self.params.get("dropout", 0.7), weights=self.params.get("weights"))

    def train_batch(self, mels, gen):
        from .resnet import seed_input

        images = seed_input(mels)
        # the seed masks after the 224x224 resize
        aug = self.params.get("specaugment", [0, 0, 0])
        return self.module(spec_augment(images, *aug, gen=gen), images=True)
