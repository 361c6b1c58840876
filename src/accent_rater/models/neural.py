"""Neural families (compact CNN, seed ResNet18): a torch module segment classifier on log-mels,
its mini-batch training loop, and the Family interface around it."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from .base import Family, check_choice
from .cnn import AccentCNN
from .resnet import SeedResNet18

if TYPE_CHECKING:  # typing only: models never import the feature pipeline
    from ..features import Features


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
    """Segment classifier on log-mels; a recording's logit is the mean over its segments.

    Training parameters, shared by the neural families (their own, the module's and its
    augmentation's, come through ``module``): ``seed``; ``epochs`` and ``batch_size``; ``lr`` and
    ``weight_decay`` of ``optimizer`` (``OPTIMIZERS``); ``scheduler`` (``SCHEDULERS``: OneCycle per
    step, cosine per epoch, or halving the rate on a validation plateau); ``label_smoothing`` and
    ``mixup`` (Beta alpha; 0 = off); early stopping after ``patience`` epochs without a better
    validation score (None = ``epochs``) on a speaker-disjoint ``val_fraction`` of the training
    speakers (``train.fit_member``); ``max_steps`` (> 0: stop after that many batches, for
    integration tests); ``checkpoint`` (a file to resume an interrupted fit from)."""

    neural = True
    OPTIMIZERS: ClassVar[tuple[str, ...]] = ("adamw", "adam")
    SCHEDULERS: ClassVar[tuple[str, ...]] = ("onecycle", "cosine", "plateau")

    def build(self) -> torch.nn.Module:
        raise NotImplementedError

    def __init__(self, *, seed: int = 0, epochs: int = 10, batch_size: int = 32, lr: float = 1e-3, weight_decay: float = 1e-3,
                 optimizer: str = "adamw", scheduler: str = "onecycle", label_smoothing: float = 0.0, mixup: float = 0.0,
                 patience: int | None = None, max_steps: int = 0, checkpoint: str | None = None, val_fraction: float = 0.15,
                 **module: Any) -> None:
        owner = f"model family {self.name!r}"
        check_choice(owner, "optimizer", optimizer, self.OPTIMIZERS)
        check_choice(owner, "scheduler", scheduler, self.SCHEDULERS)
        super().__init__(seed=seed, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, optimizer=optimizer,
                         scheduler=scheduler, label_smoothing=label_smoothing, mixup=mixup, patience=patience,
                         max_steps=max_steps, checkpoint=None if checkpoint is None else str(checkpoint),
                         val_fraction=val_fraction, **module)
        self.module = self.build()

    def train_batch(self, mels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Augment a training batch of (B, n_mels, frames) and return the module's logits."""
        return self.module(mels)

    def fit(self, train: Sequence[Features], y: np.ndarray, val: Sequence[Features] | None = None, y_val: np.ndarray | None = None,
            weights: np.ndarray | None = None) -> dict:
        """Mini-batch training of a segment classifier with the seed's tricks (mixup, label smoothing,
        SpecAugment inside the family, AdamW/Adam, OneCycle/cosine/plateau), early stopping on the
        speaker-level ROC-AUC of a speaker-disjoint validation set, best weights restored."""
        from sklearn.metrics import roc_auc_score
        from tqdm import tqdm

        p = self.params
        seed = int(p["seed"])
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        rng = np.random.default_rng(seed)
        X = torch.from_numpy(np.concatenate([f.mels for f in train]).astype(np.float32))
        Y = torch.from_numpy(np.concatenate([np.full(len(f.mels), t, np.float32) for f, t in zip(train, y)]))
        weights = np.ones(len(train)) if weights is None else np.asarray(weights)
        W = torch.from_numpy(np.concatenate([np.full(len(f.mels), w, np.float32) for f, w in zip(train, weights)]))
        epochs, bs = int(p["epochs"]), int(p["batch_size"])
        steps = int(np.ceil(len(X) / bs))
        params = [q for q in self.module.parameters() if q.requires_grad]
        lr, wd = float(p["lr"]), float(p["weight_decay"])
        opt = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[p["optimizer"]](params, lr=lr, weight_decay=wd)
        sched_name = p["scheduler"]
        sched: Any
        if sched_name == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps)
        elif sched_name == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=1e-6)
        else:  # "plateau"
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=3)
        smooth, alpha = float(p["label_smoothing"]), float(p["mixup"])
        patience = epochs if p["patience"] is None else int(p["patience"])
        max_steps = int(p["max_steps"])  # integration tests: stop after this many steps
        best = (-1.0, 0, copy.deepcopy(self.module.state_dict()))
        history: list[dict] = []
        step_count = 0
        start = 0
        ckpt = Path(p["checkpoint"]) if p["checkpoint"] else None
        if ckpt is not None and ckpt.exists():  # resume an interrupted fit at the next epoch
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
            self.module.load_state_dict(state["module"])
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
            best, history, start = (state["best_score"], state["best_epoch"], state["best_state"]), state["history"], state["epoch"]
            rng.bit_generator.state = state["rng"]
            gen.set_state(state["gen"])
            print(f"{self.name}: resumed after epoch {start}", flush=True)
        for epoch in range(start, epochs):
            self.module.train()
            order = torch.from_numpy(rng.permutation(len(X)))
            losses = []
            for i in tqdm(range(steps), desc=f"{self.name} epoch {epoch + 1}/{epochs}", leave=False, mininterval=5):
                idx = order[i * bs:(i + 1) * bs]
                if len(idx) < 2:  # batch norm cannot train on a single example
                    continue
                xb, yb, wb = X[idx], Y[idx] * (1 - smooth) + smooth / 2, W[idx]
                if alpha > 0:
                    lam = float(rng.beta(alpha, alpha))
                    perm = torch.randperm(len(xb), generator=gen)
                    xb, yb, wb = (lam * t + (1 - lam) * t[perm] for t in (xb, yb, wb))
                loss = torch.nn.functional.binary_cross_entropy_with_logits(self.train_batch(xb, gen), yb, weight=wb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                if sched_name == "onecycle":
                    sched.step()
                losses.append(loss.item())
                step_count += 1
                if max_steps and step_count >= max_steps:
                    break
            entry = {"epoch": epoch + 1, "loss": float(np.mean(losses))}
            if val is not None and y_val is not None and len(set(y_val.tolist())) == 2:
                logits = np.array([self.recording_logit(f) for f in val])
                entry["val_auc"] = float(roc_auc_score(y_val, logits))
            score = entry.get("val_auc", -entry["loss"])
            if sched_name == "cosine":
                sched.step()
            elif sched_name == "plateau":
                sched.step(score)
            history.append(entry)
            print(f"{self.name} " + " ".join(f"{k}={v:.4g}" for k, v in entry.items()), flush=True)
            if score > best[0]:
                best = (score, epoch + 1, copy.deepcopy(self.module.state_dict()))
            if ckpt is not None:
                torch.save({"module": self.module.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                            "best_score": best[0], "best_epoch": best[1], "best_state": best[2], "history": history,
                            "epoch": epoch + 1, "rng": rng.bit_generator.state, "gen": gen.get_state()}, ckpt)
            if epoch + 1 - best[1] >= patience:
                break
            if max_steps and step_count >= max_steps:
                break
        self.module.load_state_dict(best[2])
        self.module.eval()
        return {"history": history, "best_epoch": best[1], "best_score": best[0]}

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
    """The compact 1-D CNN (``cnn.AccentCNN``: ``channels``, ``embed``, ``dropout``), trained on
    random crops of ``crop_frames`` frames (0 = whole segments) with SpecAugment ``specaugment`` =
    (max frequency band, max time band, masks of each); the training parameters are
    ``NeuralFamily``'s."""

    name = "cnn"

    def __init__(self, *, channels: int = 128, embed: int = 128, dropout: float = 0.3, crop_frames: int = 300,
                 specaugment: Sequence[int] = (8, 30, 2), **training: Any) -> None:
        super().__init__(channels=channels, embed=embed, dropout=dropout, crop_frames=crop_frames,
                         specaugment=_specaugment(self.name, specaugment), **training)

    def build(self) -> torch.nn.Module:
        p = self.params
        return AccentCNN(channels=p["channels"], embed=p["embed"], dropout=p["dropout"])

    def train_batch(self, mels, gen):
        crop = self.params["crop_frames"]
        if crop and mels.shape[-1] > crop:
            t0 = int(torch.randint(0, mels.shape[-1] - crop + 1, (1,), generator=gen))
            mels = mels[..., t0:t0 + crop]
        return self.module(spec_augment(mels, *self.params["specaugment"], gen=gen))


class SeedResNetFamily(NeuralFamily):
    """The seed's ResNet18 (``resnet.SeedResNet18``: ``dropout`` before its last layer; ``weights``,
    an optional torchvision-format state dict to start from), SpecAugment ``specaugment`` applied
    after the 224x224 resize as the seed did; the training parameters are ``NeuralFamily``'s."""

    name = "seed_resnet"

    def __init__(self, *, dropout: float = 0.7, weights: str | None = None, specaugment: Sequence[int] = (0, 0, 0),
                 **training: Any) -> None:
        super().__init__(dropout=dropout, weights=None if weights is None else str(weights),
                         specaugment=_specaugment(self.name, specaugment), **training)

    def build(self) -> torch.nn.Module:
        return SeedResNet18(dropout=self.params["dropout"], weights=self.params["weights"])

    def train_batch(self, mels, gen):
        from .resnet import seed_input

        images = seed_input(mels)
        # the seed masks after the 224x224 resize
        return self.module(spec_augment(images, *self.params["specaugment"], gen=gen), images=True)


def _specaugment(family: str, value: Sequence[int]) -> list[int]:
    """``specaugment`` = [max frequency band, max time band, masks of each], as a list (what a bundle records)."""
    value = list(value)
    if len(value) != 3:
        raise ValueError(f"model family {family!r}: specaugment must be [max frequency band, max time band, masks]; got {value!r}")
    return value
