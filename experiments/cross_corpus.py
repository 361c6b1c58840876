"""Cross-corpus probes for issue 19 (natives rated native on any text and microphone).

Screens accent-head recipes on the cached Whisper tiny.en window statistics of the three corpora
(``cache/whisper/tiny.en/{saa,librispeech,speechocean762}``, clean + augmented copies, and the 3 s
windows in ``cache/whisper/tiny.en-w3``) by leave-corpus-out evaluation:

- ``lco-libri``: trained without LibriSpeech -> share of its natives rated native;
- ``lco-so``: trained without speechocean762 -> share of its speakers rated non-native;
- ``archive``: 5-fold speaker-disjoint CV over all corpora together, scored on the archive.

Decisions here are at logit 0 of a class-balanced fit (the screening rule); the committed
evaluation (``scripts/cross_corpus.py``) calibrates and thresholds as the bundle does.

    python experiments/cross_corpus.py screen            # every recipe below -> reports/cross_corpus/screen.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from accent_rater.multicorpus import Corpora, Recipe, fit_head, load_corpora  # noqa: E402
from accent_rater import splits  # noqa: E402

RECIPES = {
    "archive_only_C0.03_aug": Recipe(corpora=("saa",), C=0.03, augmented=True, short=False, nuisance=0),
    "archive_only_C0.01_clean": Recipe(corpora=("saa",), C=0.01, augmented=False, short=False, nuisance=0),
    "all_C0.01_clean": Recipe(C=0.01, augmented=False, short=False, nuisance=0),
    "all_C0.01_aug": Recipe(C=0.01, augmented=True, short=False, nuisance=0),
    "all_C0.01_aug_short": Recipe(C=0.01, augmented=True, short=True, nuisance=0),
    "all_C0.01_aug_short_nap8": Recipe(C=0.01, augmented=True, short=True, nuisance=8),
    "all_C0.01_aug_short_nap32": Recipe(C=0.01, augmented=True, short=True, nuisance=32),
}


def evaluate(data: Corpora, recipe: Recipe, folds: int = 5) -> dict:
    out: dict = {}
    corp = data.corpus
    y = data.label
    for held, name in (("librispeech", "lco_libri"), ("speechocean762", "lco_so")):
        train = np.isin(corp, [c for c in recipe.corpora if c != held])
        head = fit_head(data, np.flatnonzero(train), recipe)
        z = head.recording_logits(data, np.flatnonzero(corp == held))
        target = 1 if held == "librispeech" else 0
        out[name] = {"correct": float(np.mean((z >= 0) == target)), "median_logit": float(np.median(z)),
                     "n": int(len(z))}
        arch = np.flatnonzero(corp == "saa")
        za = head.recording_logits(data, arch)
        out[name]["archive_native_median_logit"] = float(np.median(za[y[arch] == 1]))
    fold = np.array(splits.speaker_folds(data.records, k=folds, seed=0))
    z = np.full(len(y), np.nan)
    for k in range(folds):
        tr = np.flatnonzero((fold != k) & np.isin(corp, recipe.corpora))
        head = fit_head(data, tr, recipe)
        te = np.flatnonzero(fold == k)
        z[te] = head.recording_logits(data, te)
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    a = corp == "saa"
    out["archive_cv"] = {"bacc_at_0": float(balanced_accuracy_score(y[a], z[a] >= 0)), "roc_auc": float(roc_auc_score(y[a], z[a]))}
    for c in ("librispeech", "speechocean762"):
        m = corp == c
        out[f"in_corpus_{c}"] = float(np.mean((z[m] >= 0) == y[m]))
    return out


def main(argv: list[str]) -> None:
    which = argv[1:] or list(RECIPES)
    data = load_corpora()
    out_path = Path("reports/cross_corpus/screen.json")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    for name in which:
        t = time.time()
        results[name] = {"recipe": RECIPES[name].__dict__, **evaluate(data, RECIPES[name])}
        results[name]["seconds"] = time.time() - t
        print(name, json.dumps(results[name], default=str), flush=True)
        out_path.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main(sys.argv[1:] if len(sys.argv) > 1 and sys.argv[1] == "screen" else sys.argv)
