"""Neural families (compact CNN, seed ResNet18): a torch module segment classifier on log-mels,
its mini-batch training loop, and the Family interface around it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from .base import Family
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
    """Segment classifier on log-mels; a recording's logit is the mean over its segments."""

    neural = True

    def build(self) -> torch.nn.Module:
        raise NotImplementedError

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
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
        seed = int(p.get("seed", 0))
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        rng = np.random.default_rng(seed)
        X = torch.from_numpy(np.concatenate([f.mels for f in train]).astype(np.float32))
        Y = torch.from_numpy(np.concatenate([np.full(len(f.mels), t, np.float32) for f, t in zip(train, y)]))
        weights = np.ones(len(train)) if weights is None else np.asarray(weights)
        W = torch.from_numpy(np.concatenate([np.full(len(f.mels), w, np.float32) for f, w in zip(train, weights)]))
        epochs, bs = int(p.get("epochs", 10)), int(p.get("batch_size", 32))
        steps = int(np.ceil(len(X) / bs))
        params = [q for q in self.module.parameters() if q.requires_grad]
        lr, wd = float(p.get("lr", 1e-3)), float(p.get("weight_decay", 1e-3))
        opt = (torch.optim.Adam if p.get("optimizer", "adamw") == "adam" else torch.optim.AdamW)(params, lr=lr, weight_decay=wd)
        sched_name = p.get("scheduler", "onecycle")
        if sched_name == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps)
        elif sched_name == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=1e-6)
        else:
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=3)
        smooth, alpha = float(p.get("label_smoothing", 0.0)), float(p.get("mixup", 0.0))
        patience = int(p.get("patience", epochs))
        max_steps = int(p.get("max_steps", 0))  # integration tests: stop after this many steps
        best = (-1.0, 0, copy.deepcopy(self.module.state_dict()))
        history: list[dict] = []
        step_count = 0
        start = 0
        ckpt = Path(p["checkpoint"]) if p.get("checkpoint") else None
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
            if val is not None and len(set(y_val.tolist())) == 2:
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
