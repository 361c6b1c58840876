"""The seed's model, in plain PyTorch: ResNet18 on the log-mel repeated to 3 channels, bilinearly
resized to 224x224 and normalised with ImageNet statistics (applied to raw dB values, as the seed
did). Trained from scratch here (ImageNet weights cannot be downloaded); a local torchvision-format
state dict can be passed to start from pretrained weights, in which case conv1..layer2 are frozen
as in the seed."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

IMAGE_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


def seed_input(mels: torch.Tensor) -> torch.Tensor:
    """(B, n_mels, frames) dB -> (B, 3, 224, 224): the seed's image transform."""
    x = F.interpolate(mels[:, None], size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
    x = x.repeat(1, 3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


class SeedResNet18(nn.Module):
    """torchvision-compatible ResNet18 layout; ``fc`` = Dropout + Linear(512, 2) as in the seed.
    ``forward`` takes log-mels and returns the logit of P(native) (= l_native - l_other)."""

    def __init__(self, dropout: float = 0.7, weights: str | Path | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        chans = [64, 128, 256, 512]
        cin, stages = 64, []
        for i, c in enumerate(chans):
            stages.append(nn.Sequential(BasicBlock(cin, c, 1 if i == 0 else 2), BasicBlock(c, c)))
            cin = c
        self.layer1, self.layer2, self.layer3, self.layer4 = stages  # registered in this order, as torchvision's
        self.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(512, 2))
        if weights is not None:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
            self.load_state_dict(state, strict=False)
            for mod in (self.conv1, self.bn1, self.layer1, self.layer2):
                for p in mod.parameters():
                    p.requires_grad = False

    def features(self, images: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(images))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, mels: torch.Tensor, images: bool = False) -> torch.Tensor:
        logits = self.fc(self.features(mels if images else seed_input(mels)))
        return logits[:, 1] - logits[:, 0]
