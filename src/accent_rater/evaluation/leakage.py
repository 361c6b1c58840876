"""The leakage demonstration (``accent-rater leakage``): one family scored on the seed's random
*segment* split (the same speakers in train and test) and on a speaker-disjoint split of the same
size, to show where the seed's 89.6% came from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..features import Features
from ..training import caches, data, splits
from ..training.train import Config, fit_member


def _subset(f: Features, idx: np.ndarray) -> Features:
    import dataclasses

    mels = f.mels[idx] if len(f.mels) else f.mels
    return dataclasses.replace(f, mels=mels, spans=f.spans[idx], seg_embeddings=f.seg_embeddings[idx], seg_stats=f.seg_stats[idx])


def leakage_demo(cfg: Config, spec: dict[str, Any], test_size: float = 0.2) -> dict[str, dict[str, float]]:
    """Score one family twice on the same segments: with the seed's random *segment* split (the
    same speakers in train and test) and with a speaker-disjoint split of the same size."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    recs = data.load_corpus(cfg.corpus).recordings
    if cfg.max_speakers:
        recs = splits.speaker_subset(recs, cfg.max_speakers, cfg.seed)
    cache_dir = cfg.feature_dir(Path(cfg.corpus).name)
    errors = caches.build_cache([(r.speaker_id, r.path) for r in recs], cache_dir, engine=cfg.engine)
    recs = [r for r in recs if r.speaker_id not in errors]
    fmap = caches.load_cache([r.speaker_id for r in recs], cache_dir)
    feats = [fmap[r.speaker_id] for r in recs]
    y = np.array([r.label == "native" for r in recs], dtype=int)
    # every segment is one row: (recording index, segment index)
    rows = np.array([(i, j) for i, f in enumerate(feats) for j in range(len(f.spans))])
    row_y = y[rows[:, 0]]

    def score(train_rows: np.ndarray, test_rows: np.ndarray) -> dict[str, float]:
        tr_recs = sorted(set(train_rows[:, 0].tolist()))
        tr_feats = [_subset(feats[i], train_rows[train_rows[:, 0] == i, 1]) for i in tr_recs]
        fam, _ = fit_member(spec, [recs[i] for i in tr_recs], tr_feats, y[tr_recs], cfg.seed)
        logits = np.zeros(len(test_rows))
        for i in sorted(set(test_rows[:, 0].tolist())):
            mask = test_rows[:, 0] == i
            logits[mask] = fam.segment_logits(_subset(feats[i], test_rows[mask, 1]))
        yt = y[test_rows[:, 0]]
        return {
            "segments_test": int(len(test_rows)),
            "speakers_in_both": len(set(tr_recs) & set(test_rows[:, 0].tolist())),
            "accuracy": float(accuracy_score(yt, logits > 0)),
            "balanced_accuracy": float(balanced_accuracy_score(yt, logits > 0)),
            "roc_auc": float(roc_auc_score(yt, logits)),
        }

    # the seed: train_test_split on segment rows, stratified by label, random_state=42
    tr, te = train_test_split(np.arange(len(rows)), test_size=test_size, stratify=row_y, random_state=42)
    random_split = score(rows[tr], rows[te])
    fold = np.array(splits.speaker_folds(recs, k=int(round(1 / test_size)), seed=cfg.seed))
    te_rec = fold[rows[:, 0]] == 0
    speaker_split = score(rows[~te_rec], rows[te_rec])
    return {"random segment split (seed)": random_split, "speaker-disjoint split": speaker_split}
