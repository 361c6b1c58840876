"""Screens behind the issue-19 recipe (reports/RESULTS.md, "Issue 19"): quick probes on a 3/2 split
of every corpus' speakers, decisions at logit 0 of a class-balanced fit (the committed evaluation,
``scripts/cross_corpus.py``, calibrates and thresholds as the bundle does).

    python experiments/cross_corpus.py positions     # why leave-text-out was at chance: window logits by position
    python experiments/cross_corpus.py recipes       # archive / in-corpus / leave-corpus-out by recipe

Needs the caches `accent-rater train --config configs/default.toml` builds.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from itertools import product

import numpy as np
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from accent_rater.audio import MIN_SPEECH_SECONDS
from accent_rater.training.multicorpus import Corpora, Recipe, fit_head, folds_of
from accent_rater.training.train import Config, corpora_data

BASE = Recipe(corpora=("saa",), C=0.003, scale_floor=0.5, corpus_nuisance=1)
RECIPES = {
    "archive only, C 0.003, no floor, no projection": replace(BASE, scale_floor=0.0, corpus_nuisance=0),
    "archive only, C 0.003, no projection": replace(BASE, corpus_nuisance=0),
    "archive only, C 0.003 (the default)": BASE,
    "archive only, C 0.03": replace(BASE, C=0.03),
    "archive only, C 0.003, clean only": replace(BASE, augmented=False, short=False),
    "archive only, C 0.003, no 3 s windows": replace(BASE, short=False),
    "archive only, C 0.003, + channel PCA 8 + view shifts": replace(BASE, nuisance=8, view_nuisance=True),
    "all corpora train the head, C 0.003": replace(BASE, corpora=("saa", "librispeech", "speechocean762")),
    "all corpora, weight 0.25 each, C 0.003": replace(BASE, corpora=("saa", "librispeech", "speechocean762"),
                                                       extra={"librispeech": 0.25, "speechocean762": 0.25}),
    "all corpora, no projection, C 0.003": replace(BASE, corpora=("saa", "librispeech", "speechocean762"), corpus_nuisance=0),
}


def positions(d: Corpora) -> None:
    """Heads trained on the first half of each archive reading: their window logits on held-out
    speakers by where the window sits in the reading, with and without the scale floor."""
    arch = np.flatnonzero(d.corpus == "saa")
    fold = folds_of(d)[arch]
    tr, te = arch[fold < 3], arch[fold >= 3]
    probe = replace(BASE, C=0.01, augmented=False, short=False)
    for (label, base), floor in product((("clean 7 s windows only, C 0.01 (the issue's probe)", probe),
                                         ("the default's training views, C 0.003", BASE)), (0.0, 0.5)):
        head = fit_head(d, tr, replace(base, halves=(0,), scale_floor=floor, corpus_nuisance=0))
        idx = d.select(te, ["clean"])
        z, y, pos = head.logits(d.rows[idx]), d.label[d.row_rec[idx]], d.row_pos[idx]
        print(f"{label}, scale floor {floor}:")
        for lo in np.arange(0, 1, 0.2):
            m = (pos >= lo) & (pos < lo + 0.2)
            print(f"  windows at {lo:.1f}-{lo + 0.2:.1f} of the reading: n={m.sum():4d} ROC-AUC {roc_auc_score(y[m], z[m]):.3f}, "
                  f"median logit natives {np.median(z[m & (y == 1)]):+.1f}, non-natives {np.median(z[m & (y == 0)]):+.1f}")


def recipes(d: Corpora) -> None:
    fold = folds_of(d)
    tr, te = np.flatnonzero(fold < 3), np.flatnonzero(fold >= 3)
    y, cor = d.label, d.corpus
    ratable = np.array([f.speech_seconds >= MIN_SPEECH_SECONDS for f in d.feats])
    print("| recipe | archive ROC-AUC | archive bacc | in-corpus LibriSpeech native | in-corpus speechocean762 non-native "
          "| LCO LibriSpeech native | LCO speechocean762 non-native |\n|---|---|---|---|---|---|---|")
    for name, r in RECIPES.items():
        z = fit_head(d, tr, r).recording_logits(d, te)
        a, li, so = cor[te] == "saa", (cor[te] == "librispeech") & ratable[te], (cor[te] == "speechocean762") & ratable[te]
        lco = []
        for held in ("librispeech", "speechocean762"):
            rr = replace(r, corpora=tuple(c for c in r.corpora if c != held))
            test = np.flatnonzero((cor == held) & ratable)
            zz = fit_head(d, np.flatnonzero(cor != held), rr).recording_logits(d, test)
            lco.append(np.mean((zz >= 0) == y[test]))
        print(f"| {name} | {roc_auc_score(y[te][a], z[a]):.3f} | {balanced_accuracy_score(y[te][a], z[a] >= 0):.3f} | "
              f"{np.mean(z[li] >= 0):.3f} | {np.mean(z[so] < 0):.3f} | {lco[0]:.3f} | {lco[1]:.3f} |", flush=True)


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "recipes"
    {"positions": positions, "recipes": recipes}[what](corpora_data(Config.load("configs/default.toml"))[0])
