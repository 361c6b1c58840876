"""Probe: pocketsphinx pronunciation features (``pronunciation.py`` beside this file) vs the encoder
features, speaker-disjoint CV.

    pip install -c constraints.txt -e ".[pron]"
    nice -n 10 .venv/bin/python experiments/probe_pronunciation.py [N [RUN_DIR]]   (default 300; resumable)

N speakers (each label's share kept; ``splits.split_speakers``) of those with cached encoder features
(``cache/features/saa``, built by ``accent-rater train --config configs/fast.toml``). Caches each
speaker's vector in cache/pron/{speaker_id}.npy (+ .json with seconds/cpu), then reports 5-fold
``splits.speaker_folds`` ROC-AUC / balanced accuracy at logit 0 (95 % bootstrap intervals over
speakers) for (a) pron, (b) encoder stats+embedding, (c) both, (d) stacking of (a),(b) out-of-fold
logits; plus CPU s per 30 s of audio and the alignment failure rate. With RUN_DIR (a training run
over the same corpus, e.g. runs/fast), the pronunciation features are also cross-validated on that
run's folds and stacked with its saved out-of-fold member logits as ``accent-rater compare`` does:
what they would add to that model.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from accent_rater import audio
from accent_rater.calibration import sigmoid
from accent_rater.evaluation.compare import compare_members, member_logits, members_table
from accent_rater.evaluation.metrics import bootstrap_ci
from accent_rater.features import Features
from accent_rater.training import data, splits

from pronunciation import PRON_NAMES, pron_features

ROOT = Path(__file__).resolve().parents[1]
SAA = ROOT.parent / "shared" / "data" / "saa"
CACHE = ROOT / "cache" / "pron"
FEAT = ROOT / "cache" / "features" / "saa"


def cv_scores(X: np.ndarray, y: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Out-of-fold logits of standardise -> logistic regression, one model per fold id."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    oof = np.zeros(len(y))
    for k in np.unique(fold):
        te = fold == k
        m = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
        m.fit(X[~te], y[~te])
        oof[te] = m.decision_function(X[te])
    return oof


def report(name: str, y: np.ndarray, s: np.ndarray) -> None:
    """ROC-AUC and balanced accuracy (logit > 0) of out-of-fold logits, 95 % bootstrap over speakers."""
    b = bootstrap_ci(y, sigmoid(s), 0.5)
    fmt = {k: f"{b[k][0]:.3f} [{b[k][1]:.3f}, {b[k][2]:.3f}]" for k in ("roc_auc", "balanced_accuracy")}
    print(f"{name:28s} AUC {fmt['roc_auc']}  bal.acc {fmt['balanced_accuracy']}")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    text = (SAA / "PASSAGE.txt").read_text()
    recs = [r for r in data.load_saa(SAA).recordings if (FEAT / f"{r.speaker_id}.npz").exists()]
    if n < len(recs):
        recs = splits.select(recs, splits.split_speakers(recs, val=0.0, test=n / len(recs), seed=0)["test"])
    CACHE.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    for r in tqdm(recs, desc="pron", mininterval=10):
        out = CACHE / f"{r.speaker_id}.npy"
        if out.exists():
            continue
        try:
            sp = audio.prepare(r.path)
        except Exception as exc:  # noqa: BLE001 - refused audio: skip the speaker
            print(f"skip {r.speaker_id}: {exc}", flush=True)
            continue
        t = time.process_time()
        v = pron_features(sp.audio, text)
        cpu = time.process_time() - t
        np.save(out, v)
        (CACHE / f"{r.speaker_id}.json").write_text(json.dumps({"cpu_s": cpu, "seconds": len(sp.audio) / audio.SAMPLE_RATE}))

    done = [r for r in recs if (CACHE / f"{r.speaker_id}.npy").exists()]
    P = np.array([np.load(CACHE / f"{r.speaker_id}.npy") for r in done])
    E = []
    for r in done:
        f = Features.load(FEAT / f"{r.speaker_id}.npz", with_mels=False)
        E.append(np.hstack([f.stats, f.embedding]))
    E = np.array(E)
    y = np.array([r.label == data.NATIVE for r in done], int)
    meta = [json.loads(p.read_text()) for r in done if (p := CACHE / f"{r.speaker_id}.json").exists()]
    cpu = sum(m["cpu_s"] for m in meta)
    sec = sum(m["seconds"] for m in meta)
    ok = P[:, PRON_NAMES.index("align_ok")]
    print(f"speakers {len(done)} (native {y.sum()}), pron dim {P.shape[1]}")
    print(f"CPU {cpu * 30 / max(sec, 1e-9):.2f} s per 30 s of (prepared) audio; alignment failures {np.mean(ok < 0.5):.1%}")
    fold = np.array(splits.speaker_folds(done, k=5, seed=0))
    a = cv_scores(P, y, fold)
    b = cv_scores(E, y, fold)
    c = cv_scores(np.hstack([P, E]), y, fold)
    d = cv_scores(np.c_[a, b], y, fold)
    report("(a) pronunciation", y, a)
    report("(b) encoder stats+emb", y, b)
    report("(c) concatenated", y, c)
    report("(d) stacked oof logits", y, d)
    if len(sys.argv) > 2:
        on_run(Path(sys.argv[2]), {r.speaker_id: v for r, v in zip(done, P)})


def on_run(run: Path, pron: dict[str, np.ndarray]) -> None:
    """Pronunciation logits on the run's own folds, stacked with every combination of its members."""
    _, y, fold, ids = member_logits(run)
    if set(ids) - set(pron):
        raise SystemExit(f"{len(set(ids) - set(pron))} of the run's speakers have no pronunciation features: run with N = all")
    pron_logits = cv_scores(np.array([pron[i] for i in ids]), y, fold)
    print(f"\non the folds of {run}:")
    print(members_table(compare_members([run], extra={"pron": pron_logits})))


if __name__ == "__main__":
    main()
