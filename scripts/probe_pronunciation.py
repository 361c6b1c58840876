"""Probe: pocketsphinx pronunciation features vs the encoder features, speaker-disjoint CV.

    nice -n 10 .venv/bin/python scripts/probe_pronunciation.py [N [RUN_DIR]]   (default 300; resumable)

Caches each speaker's vector in cache/pron/{speaker_id}.npy (+ .json with seconds/cpu), then
reports 5-fold StratifiedGroupKFold ROC-AUC / balanced accuracy (95 % bootstrap intervals over speakers) for (a) pron, (b) encoder
stats+embedding, (c) both, (d) stacking of (a),(b) out-of-fold logits; plus CPU s per 30 s of audio
and the alignment failure rate. With RUN_DIR (a training run over the same corpus, e.g. runs/default),
the pronunciation features are also cross-validated on that run's folds and stacked on its saved
out-of-fold member logits, as ``compare_members.py`` does: what they would add to that model.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from accent_rater import audio  # noqa: E402
from accent_rater.features import Features  # noqa: E402
from accent_rater.models.pronunciation import PRON_NAMES, pron_features  # noqa: E402

SAA = Path("/work/shared/data/saa")
CACHE = ROOT / "cache" / "pron"
FEAT = ROOT / "cache" / "features" / "saa"


def select(rows: list[dict], n: int) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = [r for r in rows if (FEAT / f"{r['speaker_id']}.npz").exists()]
    nat = [r for r in rows if r["label"] == "native"]
    non = [r for r in rows if r["label"] != "native"]
    frac = len(nat) / len(rows)
    k_nat = min(len(nat), round(n * frac))
    k_non = min(len(non), n - k_nat)
    pick = [nat[i] for i in rng.permutation(len(nat))[:k_nat]] + [non[i] for i in rng.permutation(len(non))[:k_non]]
    return [pick[i] for i in rng.permutation(len(pick))]


def speaker_folds(y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    from sklearn.model_selection import StratifiedGroupKFold

    fold = np.zeros(len(y), dtype=int)
    for k, (_, te) in enumerate(StratifiedGroupKFold(5, shuffle=True, random_state=0).split(y, y, groups)):
        fold[te] = k
    return fold


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
    from accent_rater.calibration import sigmoid
    from accent_rater.evaluate import bootstrap_ci

    b = bootstrap_ci(y, sigmoid(s), 0.5)
    fmt = {k: f"{b[k][0]:.3f} [{b[k][1]:.3f}, {b[k][2]:.3f}]" for k in ("roc_auc", "balanced_accuracy")}
    print(f"{name:28s} AUC {fmt['roc_auc']}  bal.acc {fmt['balanced_accuracy']}")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    text = (SAA / "PASSAGE.txt").read_text()
    rows = list(csv.DictReader(open(SAA / "speakers.csv")))
    pick = select(rows, n)
    CACHE.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    for r in tqdm(pick, desc="pron", mininterval=10):
        sid = r["speaker_id"]
        out = CACHE / f"{sid}.npy"
        if out.exists():
            continue
        try:
            sp = audio.prepare(SAA / r["path"])
        except Exception as exc:  # noqa: BLE001 - refused audio: skip the speaker
            print(f"skip {sid}: {exc}", flush=True)
            continue
        t = time.process_time()
        v = pron_features(sp.audio, text)
        cpu = time.process_time() - t
        np.save(out, v)
        (CACHE / f"{sid}.json").write_text(json.dumps({"cpu_s": cpu, "seconds": len(sp.audio) / audio.SAMPLE_RATE}))

    done = [r for r in pick if (CACHE / f"{r['speaker_id']}.npy").exists()]
    P = np.array([np.load(CACHE / f"{r['speaker_id']}.npy") for r in done])
    E = []
    for r in done:
        f = Features.load(FEAT / f"{r['speaker_id']}.npz", with_mels=False)
        E.append(np.hstack([f.stats, f.embedding]))
    E = np.array(E)
    y = np.array([r["label"] == "native" for r in done], int)
    groups = np.array([r["speaker_id"] for r in done])
    meta = [json.loads((CACHE / f"{r['speaker_id']}.json").read_text()) for r in done if (CACHE / f"{r['speaker_id']}.json").exists()]
    cpu = sum(m["cpu_s"] for m in meta)
    sec = sum(m["seconds"] for m in meta)
    ok = P[:, PRON_NAMES.index("align_ok")]
    print(f"speakers {len(done)} (native {y.sum()}), pron dim {P.shape[1]}")
    print(f"CPU {cpu * 30 / max(sec, 1e-9):.2f} s per 30 s of (prepared) audio; alignment failures {np.mean(ok < 0.5):.1%}")
    fold = speaker_folds(y, groups)
    a = cv_scores(P, y, fold)
    b = cv_scores(E, y, fold)
    c = cv_scores(np.hstack([P, E]), y, fold)
    d = cv_scores(np.c_[a, b], y, fold)
    report("(a) pronunciation", y, a)
    report("(b) encoder stats+emb", y, b)
    report("(c) concatenated", y, c)
    report("(d) stacked oof logits", y, d)
    if len(sys.argv) > 2:
        on_run(Path(sys.argv[2]), {r["speaker_id"]: v for r, v in zip(done, P)})


def on_run(run: Path, pron: dict[str, np.ndarray]) -> None:
    """Pronunciation logits on the run's own folds, stacked with every combination of its members."""
    import itertools

    from compare_members import cross_fitted, load_logits

    logits, y, fold, ids = load_logits(run)
    if set(ids) - set(pron):
        raise SystemExit(f"{len(set(ids) - set(pron))} of the run's speakers have no pronunciation features: run with N = all")
    logits["pron"] = cv_scores(np.array([pron[i] for i in ids]), y, fold)
    print(f"\non the folds of {run}:")
    members = [n for n in logits if n != "pron"]
    for r in range(0, len(members) + 1):
        for combo in itertools.combinations(members, r):
            for names in ([*combo], [*combo, "pron"]) if combo else (["pron"],):
                z, _ = cross_fitted(np.stack([logits[n] for n in names], 1), y, fold)
                report(" + ".join(names), y, z)


if __name__ == "__main__":
    main()
