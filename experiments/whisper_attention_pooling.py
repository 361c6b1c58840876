"""Experiment: learned attention pooling over cached Whisper frame states against the default's
mean + std pooling, on the same speaker-disjoint folds.

    .venv/bin/python experiments/whisper_attention_pooling.py [--run runs/whisper_layers] [--epochs 12]

Reads the clean tiny.en cache (``cache/whisper/tiny.en/saa``, built with frames by
``caches.build_whisper_cache(..., keep_frames=True)``): per 7 s window, the states of the middle
and last layer every 40 ms. The model: per frame a score v^T tanh(W x); softmax over the window's
frames; attention-weighted mean and std of the frames -> linear -> logit; trained on windows with
Adam and binary cross-entropy; a recording's logit is the mean of its windows'. Prints ROC-AUC and
balanced accuracy (threshold chosen on the other folds) for both poolings.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from torch import nn

from accent_rater.backbones import whisper
from accent_rater.models.whisper_heads import WhisperFamily
from accent_rater.training import data
from accent_rater.training.stacking import choose_threshold


class AttentionPool(nn.Module):
    def __init__(self, d: int, hidden: int = 128) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.score = nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        self.out = nn.Sequential(nn.Dropout(0.3), nn.Linear(2 * d, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # x (B, T, D), mask (B, T)
        x = self.norm(x)
        a = self.score(x).squeeze(-1).masked_fill(~mask, -1e4).softmax(-1)[..., None]
        mu = (a * x).sum(1)
        sd = ((a * (x - mu[:, None]) ** 2).sum(1) + 1e-5).sqrt()
        return self.out(torch.cat([mu, sd], -1)).squeeze(-1)


def nested_bacc(y: np.ndarray, logit: np.ndarray, fold: np.ndarray) -> float:
    from accent_rater.calibration import Calibrator

    dec = np.zeros(len(y), bool)
    for k in np.unique(fold):
        te = fold == k
        cal = Calibrator.fit(logit[~te], y[~te])
        dec[te] = cal.apply(logit[te]) >= choose_threshold(cal.apply(logit[~te]), y[~te])
    return float(balanced_accuracy_score(y, dec))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, default=Path("runs/whisper_layers"))
    ap.add_argument("--cache", type=Path, default=Path("cache/whisper/tiny.en/saa"))
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--layer", choices=["middle", "last", "both"], default="both")
    args = ap.parse_args()
    torch.set_num_threads(2)
    folds = json.loads((args.run / "folds.json").read_text())
    recs = [r for r in data.load_corpus("../shared/data/saa").recordings if r.speaker_id in folds]
    feats = [whisper.WhisperFeatures.load(args.cache / f"{r.speaker_id}.npz", with_frames=True) for r in recs]
    y = np.array([r.label == "native" for r in recs], dtype=int)
    fold = np.array([folds[r.speaker_id] for r in recs])
    sel = {"middle": [0], "last": [1], "both": [0, 1]}[args.layer]
    # windows: (N, T, D') frames, mask, owner
    X, M, owner = [], [], []
    for i, f in enumerate(feats):
        for s in range(len(f.spans)):
            fr = f.frames[s][:, sel].reshape(f.frames.shape[1], -1)
            X.append(fr)
            M.append(np.arange(fr.shape[0]) < f.n_frames[s])
            owner.append(i)
    T = max(x.shape[0] for x in X)
    Xt = torch.zeros(len(X), T, X[0].shape[1])
    Mt = torch.zeros(len(X), T, dtype=torch.bool)
    for j, (x, m) in enumerate(zip(X, M)):
        Xt[j, : len(x)] = torch.from_numpy(x.astype(np.float32))
        Mt[j, : len(m)] = torch.from_numpy(m)
    owner = np.array(owner)
    att, lin = np.zeros(len(recs)), np.zeros(len(recs))
    for k in range(5):
        tr_rec = np.flatnonzero(fold != k)
        tr = np.flatnonzero(np.isin(owner, tr_rec))
        torch.manual_seed(k)
        model = AttentionPool(Xt.shape[-1])
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
        yt = torch.from_numpy(y[owner].astype(np.float32))
        for epoch in range(args.epochs):
            model.train()
            for b in np.array_split(np.random.default_rng(epoch + 10 * k).permutation(tr), max(1, len(tr) // 64)):
                loss = nn.functional.binary_cross_entropy_with_logits(model(Xt[b], Mt[b]), yt[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
        model.eval()
        with torch.inference_mode():
            te = np.flatnonzero(np.isin(owner, np.flatnonzero(fold == k)))
            out = model(Xt[te], Mt[te]).numpy()
        for i in np.flatnonzero(fold == k):
            att[i] = out[owner[te] == i].mean()
        fam = WhisperFamily(C=0.03)
        fam.fit([feats[i] for i in tr_rec], y[tr_rec])
        for i in np.flatnonzero(fold == k):
            lin[i] = fam.recording_logit(feats[i])
        print(f"fold {k}: attention AUC {roc_auc_score(y[fold == k], att[fold == k]):.3f}, "
              f"mean+std LR AUC {roc_auc_score(y[fold == k], lin[fold == k]):.3f}", flush=True)
    print(f"attention pooling ({args.layer} layer(s), {args.epochs} epochs): ROC-AUC {roc_auc_score(y, att):.4f}, "
          f"balanced accuracy (nested threshold) {nested_bacc(y, att, fold):.4f}")
    print(f"mean+std of every layer + LR (C 0.03): ROC-AUC {roc_auc_score(y, lin):.4f}, "
          f"balanced accuracy (nested threshold) {nested_bacc(y, lin, fold):.4f}")


if __name__ == "__main__":
    main()
