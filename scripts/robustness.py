"""Robustness and validity of a Whisper-feature run, on held-out speakers only:

    .venv/bin/python scripts/robustness.py --config configs/default.toml [--run runs/default]

1. channel kinds: each speaker's augmented copies (``augmented.csv``, scored by the fold model that
   never saw the speaker) against the same speakers' clean recordings;
2. degraded copies: pink noise at 15 dB SNR and the level lowered by 30 dB (built here, cached);
3. band invariance: the full-band copies of ``saa-fullband`` against their 8 kHz-band originals;
4. leave-text-out: heads trained on one half of the passage (by time), tested on the other half of
   held-out speakers, against the same half;
5. validity: among non-natives, Spearman correlation of p_native with age_onset;
6. channel, not accent? ROC-AUC inside each simulated channel (natives and non-natives recorded
   "the same way"), and how well the same features tell the channels apart;
7. novelty flags: the share of held-out recordings the out-of-distribution check flags, per kind.

Every interval is a 95% bootstrap over speakers. Writes ``reports/<name>/robustness.md`` and
``robustness.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from accent_rater.backbones import whisper
from accent_rater.calibration import Calibrator
from accent_rater.models import get_family
from accent_rater.models.whisper_heads import Novelty, layer_rows
from accent_rater.training import caches, data
from accent_rater.training.stacking import choose_threshold
from accent_rater.training.train import Config, augment_kind, family_params, member_name

N_BOOT = 1000
DEGRADATIONS = ("snr15", "level-30")


def boot(fn, n: int, seed: int = 0) -> tuple[float, float, float]:
    """fn(indices) -> float: point estimate on all n speakers and the 95% percentile interval."""
    rng = np.random.default_rng(seed)
    vals = [fn(rng.integers(0, n, n)) for _ in range(N_BOOT)]
    vals = [v for v in vals if v == v]
    return float(fn(np.arange(n))), float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


def bacc(y: np.ndarray, p: np.ndarray, t: float) -> float:
    """Balanced accuracy of deciding native when p >= t (numpy: it runs inside the bootstrap)."""
    if not 0 < y.sum() < len(y):
        return float("nan")
    pred = p >= t
    return float((pred[y == 1].mean() + (~pred[y == 0]).mean()) / 2)


def fmt(t: tuple[float, float, float], d: int = 3) -> str:
    return f"{t[0]:+.{d}f} [{t[1]:+.{d}f}, {t[2]:+.{d}f}]" if t[0] < 0 or t[1] < 0 else f"{t[0]:.{d}f} [{t[1]:.{d}f}, {t[2]:.{d}f}]"


def table(header: list[str], rows: list[list[object]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(map(str, r)) + " |" for r in rows)])


def fold_calibrators(run: Path, logit: np.ndarray, y: np.ndarray, fold: np.ndarray, k: int) -> list[Calibrator]:
    """Each fold's calibration as the run fitted it: on the other folds' out-of-fold logits, of every
    corpus with each (corpus, label) cell weighing the same when the run had several
    (``corpora_predictions.csv``), else of the archive's."""
    path = run / "corpora_predictions.csv"
    if not path.exists():
        return [Calibrator.fit(logit[fold != f], y[fold != f]) for f in range(k)]
    from accent_rater.training.multicorpus import cell_weights_of, fold_calibration

    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    col = {c: np.array([r[c] for r in rows]) for c in ("corpus", "label", "speaker_id", "fold", "logit")}
    lg, lab, fo = col["logit"].astype(float), col["label"].astype(int), col["fold"].astype(int)
    cal = fold_calibration(lg, lab, cell_weights_of(col["corpus"], lab, col["speaker_id"]), fo)
    return [cal[f][0] for f in range(k)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", type=Path, default=Path("configs/default.toml"))
    ap.add_argument("--run", type=Path, default=None)
    args = ap.parse_args()
    cfg = Config.load(args.config)
    run = args.run or Path(cfg.out_dir)
    size = cfg.features.removeprefix("whisper-")
    summary = json.loads((run / "summary.json").read_text())
    primary = summary["primary"]
    spec = next(s for s in cfg.models if member_name(s) == primary)
    folds = json.loads((run / "folds.json").read_text())
    recs = [r for r in data.load_corpus(cfg.corpus).recordings if r.speaker_id in folds]
    sid = [r.speaker_id for r in recs]
    y = np.array([r.label == "native" for r in recs], dtype=int)
    fold = np.array([folds[s] for s in sid])
    cache = cfg.feature_dir  # corpus -> the folder of its cached Whisper features
    corpus = Path(cfg.corpus).name
    enc = whisper.onnx_path(size)

    # fold models (linear heads saved by train.run) and cross-fitted calibration of clean OOF logits
    from safetensors.numpy import load_file

    models = []
    for k in range(cfg.folds):
        fam = get_family(spec["family"], **family_params(spec))
        fam.load_tensors(load_file(str(run / "folds" / f"{primary}_fold{k}.safetensors")))
        models.append(fam)
    clean = {s: whisper.WhisperFeatures.load(caches.cache_path(cache(corpus), s)) for s in sid}
    logit = np.array([models[f].recording_logit(clean[s]) for s, f in zip(sid, fold)])
    cals = fold_calibrators(run, logit, y, fold, cfg.folds)
    p_clean = np.array([float(cals[f].apply(lg)) for lg, f in zip(logit, fold)])
    t = float(summary["threshold"])
    report: dict[str, object] = {"run": str(run), "model": primary, "threshold": t}
    md = [f"# Robustness and validity: `{cfg.name}` (model `{primary}`, threshold {t:.3f})", "",
          "Held-out speakers only (each scored by the fold model that never saw them); 95% bootstrap intervals over speakers. "
          "Balanced accuracy at the bundled threshold; Δ = degraded − clean on the same speakers.", ""]

    def compare(name: str, idx: np.ndarray, p_new: np.ndarray) -> list[object]:
        yy, pc = y[idx], p_clean[idx]
        d = boot(lambda b: bacc(yy[b], p_new[b], t) - bacc(yy[b], pc[b], t), len(idx))
        auc = boot(lambda b: roc_auc_score(yy[b], p_new[b]) if 0 < yy[b].sum() < len(b) else float("nan"), len(idx))
        shift_n = float(np.mean(p_new[yy == 1] - pc[yy == 1])) if (yy == 1).any() else float("nan")
        shift_nn = float(np.mean(p_new[yy == 0] - pc[yy == 0])) if (yy == 0).any() else float("nan")
        report.setdefault("conditions", {})[name] = {"n": int(len(idx)), "bacc_clean": bacc(yy, pc, t), "bacc": bacc(yy, p_new, t),
                                                     "delta_bacc": d, "roc_auc": auc, "mean_shift_native": shift_n, "mean_shift_non_native": shift_nn}
        return [name, len(idx), f"{bacc(yy, pc, t):.3f}", f"{bacc(yy, p_new, t):.3f}", fmt(d), fmt(auc), f"{shift_n:+.3f} / {shift_nn:+.3f}"]

    header = ["condition", "speakers", "bacc clean", "bacc degraded", "Δ bacc [95% CI]", "ROC-AUC degraded", "mean Δp natives / non-natives"]
    # 1. channel kinds from the training run's held-out augmented copies
    rows = []
    if (run / "augmented.csv").exists():
        with open(run / "augmented.csv") as fh:
            aug = [r for r in csv.DictReader(fh) if r["model"] == primary]
        pos = {s: i for i, s in enumerate(sid)}
        for kind in sorted({r["kind"] for r in aug}):
            sub = [r for r in aug if r["kind"] == kind]
            rows.append(compare(kind, np.array([pos[r["speaker_id"]] for r in sub]), np.array([float(r["p_native"]) for r in sub])))
    # 2. degraded copies, built here
    items = [(f"{s}__{kind}", r.path, kind, 100) for kind in DEGRADATIONS for s, r in zip(sid, recs)]
    errors = caches.build_whisper_cache(items, cache(corpus), enc)
    for kind in DEGRADATIONS:
        keep = np.array([f"{s}__{kind}" not in errors for s in sid])
        idx = np.flatnonzero(keep)
        feats = [whisper.WhisperFeatures.load(caches.cache_path(cache(corpus), f"{sid[i]}__{kind}")) for i in idx]
        p = np.array([float(cals[fold[i]].apply(models[fold[i]].recording_logit(f))) for i, f in zip(idx, feats)])
        rows.append(compare(kind + (f" ({len(sid) - len(idx)} refused)" if len(idx) < len(sid) else ""), idx, p))
    md += ["## Channels and degradations", "", table(header, rows), "",
           "`snr15`: pink noise at 15 dB SNR; `level-30`: the level lowered by 30 dB and quantised to 16 bits. "
           "The other rows are the training augmentations (`accent_rater.training.augment`) applied to held-out speakers.", ""]

    # 3. band invariance
    fb_corpus = Path(cfg.corpus).parent / "saa-fullband"
    if fb_corpus.is_dir():
        fb = [r for r in data.load_corpus(fb_corpus).recordings if r.speaker_id in folds]
        caches.build_whisper_cache([(r.speaker_id, r.path, None, 0) for r in fb], cache("saa-fullband"), enc)
        pos = {s: i for i, s in enumerate(sid)}
        idx = np.array([pos[r.speaker_id] for r in fb])
        p_fb = np.array([float(cals[fold[i]].apply(models[fold[i]].recording_logit(
            whisper.WhisperFeatures.load(caches.cache_path(cache("saa-fullband"), sid[i]))))) for i in idx])
        dp = np.abs(p_fb - p_clean[idx])
        agree = float(np.mean((p_fb >= t) == (p_clean[idx] >= t)))
        report["band_invariance"] = {"n": int(len(idx)), "mean_abs_dp": float(dp.mean()), "max_abs_dp": float(dp.max()),
                                     "label_agreement": agree, "pearson": float(np.corrcoef(p_fb, p_clean[idx])[0, 1])}
        md += ["## Band invariance", "",
               f"{len(idx)} speakers' full-band copies (16 kHz Opus) against their 8 kHz-band originals: mean |Δp_native| "
               f"{dp.mean():.3f} (max {dp.max():.3f}), same label for {100 * agree:.1f}%, correlation "
               f"{report['band_invariance']['pearson']:.3f}. (The copies are separate encodings, sometimes of a different take.)", ""]

    if "recipe" in summary:  # multi-corpus recipe: its own leave-text-out (scripts/cross_corpus.py)
        md += ["## Leave-text-out", "", "Measured for this recipe by `scripts/cross_corpus.py`: "
               "[reports/cross_corpus/](../cross_corpus/README.md).", ""]
    else:
        # 4. leave-text-out: halves of the passage by time (a multi-corpus recipe: scripts/cross_corpus.py)
        def half_rows(f, part: int) -> np.ndarray:
            centre = f.spans.mean(1)
            mid = (f.spans[0, 0] + f.spans[-1, 1]) / 2
            keep = (centre < mid) if part == 0 else (centre >= mid)
            return np.flatnonzero(keep)

        import dataclasses

        def sub(f, idx):
            return dataclasses.replace(f, spans=f.spans[idx], stats=f.stats[idx], frames=None, n_frames=None)

        usable = np.array([len(half_rows(clean[s], 0)) > 0 and len(half_rows(clean[s], 1)) > 0 for s in sid])
        res = {}
        for train_part in (0, 1):
            for test_part in (0, 1):
                lg = np.full(len(sid), np.nan)
                for k in range(cfg.folds):
                    tr = np.flatnonzero((fold != k) & usable)
                    fam = get_family(spec["family"], **family_params(spec))
                    fam.fit([sub(clean[sid[i]], half_rows(clean[sid[i]], train_part)) for i in tr], y[tr])
                    for i in np.flatnonzero((fold == k) & usable):
                        lg[i] = fam.recording_logit(sub(clean[sid[i]], half_rows(clean[sid[i]], test_part)))
                ok = np.flatnonzero(usable)
                dec = np.zeros(len(sid), bool)
                for k in range(cfg.folds):  # cross-fitted calibration, threshold chosen on the other folds
                    te, oth = ok[fold[ok] == k], ok[fold[ok] != k]
                    cal = Calibrator.fit(lg[oth], y[oth])
                    dec[te] = cal.apply(lg[te]) >= choose_threshold(cal.apply(lg[oth]), y[oth])
                res[(train_part, test_part)] = (lg, dec)
        ok = np.flatnonzero(usable)
        rows = []
        for test_part in (0, 1):
            same, other = res[(test_part, test_part)], res[(1 - test_part, test_part)]
            d = boot(lambda b, same=same, other=other: bacc(y[ok][b], other[1][ok][b].astype(float), 0.5) - bacc(y[ok][b], same[1][ok][b].astype(float), 0.5), len(ok))
            rows.append([f"{'first' if test_part == 0 else 'second'} half", len(ok),
                         f"{balanced_accuracy_score(y[ok], same[1][ok]):.3f} / {roc_auc_score(y[ok], same[0][ok]):.3f}",
                         f"{balanced_accuracy_score(y[ok], other[1][ok]):.3f} / {roc_auc_score(y[ok], other[0][ok]):.3f}", fmt(d)])
            report.setdefault("leave_text_out", {})[f"test_half_{test_part}"] = {"delta_bacc": d}
        md += ["## Leave-text-out", "",
               "Each recording is cut at the middle of its speech; heads are trained on one half of the passage for the "
               "training speakers and tested on a half of the held-out speakers (thresholds chosen on the other folds).", "",
               table(["tested on", "speakers", "trained on the same half: bacc / ROC-AUC", "trained on the other half: bacc / ROC-AUC",
                      "Δ bacc (other − same)"], rows), ""]

    # 5. validity: age of onset among non-natives
    onset = {}
    with open(Path(cfg.corpus) / "speakers.csv") as fh:
        for r in csv.DictReader(fh):
            try:
                onset[r["speaker_id"]] = float(r["age_onset"])
            except (KeyError, ValueError):
                pass
    from scipy.stats import spearmanr

    nn = np.array([i for i, s in enumerate(sid) if y[i] == 0 and s in onset])
    ao = np.array([onset[sid[i]] for i in nn])
    rho = boot(lambda b: spearmanr(p_clean[nn][b], ao[b]).statistic, len(nn))
    report["age_onset_spearman"] = {"n": int(len(nn)), "rho": rho}
    md += ["## Validity: age English was learned", "",
           f"Among {len(nn)} non-native speakers, Spearman correlation of out-of-fold p_native with age_onset: "
           f"{fmt(rho)} (negative = a later start sounds less native, as expected).", ""]

    # 6. channel or accent? within-kind ROC-AUC is in the table above; can the features tell channels apart?
    if (run / "augmented.csv").exists() and cfg.augment_copies:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import cross_val_predict
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        X, lab, grp = [], [], []
        for i, s in enumerate(sid):
            X.append(layer_rows(clean[s], None).mean(0))
            lab.append("clean")
            grp.append(fold[i])
            for c in range(cfg.augment_copies):
                path = caches.cache_path(cache(corpus), f"{s}__aug{c}")
                if path.exists():
                    X.append(layer_rows(whisper.WhisperFeatures.load(path), None).mean(0))
                    lab.append(augment_kind(s, c))
                    grp.append(fold[i])
        from sklearn.model_selection import GroupKFold

        pred = cross_val_predict(make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=2000)), np.array(X), np.array(lab),
                                 groups=np.array(grp), cv=GroupKFold(cfg.folds))
        acc = float(np.mean(pred == np.array(lab)))
        report["channel_classifier_accuracy"] = {"accuracy": acc, "classes": sorted(set(lab)), "chance": 1 / len(set(lab))}
        md += ["## Channel or accent?", "",
               f"The same features tell the {len(set(lab))} simulated channels (clean included) apart with accuracy {acc:.3f} "
               f"(chance {1 / len(set(lab)):.3f}, speaker-disjoint folds): the channel is audible in them. What matters is that the "
               "accent head ignores it: the ROC-AUC column above is computed with natives and non-natives in the same channel, "
               "and the Δ columns show how far each channel moves the same speakers.", ""]

    # 7. novelty flags on held-out recordings
    rows_nov = []
    with_aug = {}
    for k in range(cfg.folds):
        tr = np.flatnonzero(fold != k)
        train_rows = [layer_rows(clean[sid[i]], None) for i in tr]
        for i in tr:
            for c in range(cfg.augment_copies):
                path = caches.cache_path(cache(corpus), f"{sid[i]}__aug{c}")
                if path.exists():
                    train_rows.append(layer_rows(whisper.WhisperFeatures.load(path), None))
        nov = Novelty().fit(train_rows)
        for i in np.flatnonzero(fold == k):
            with_aug.setdefault("clean", []).append(nov.score(layer_rows(clean[sid[i]], None)) > nov.threshold)
            for kind in DEGRADATIONS:
                path = caches.cache_path(cache(corpus), f"{sid[i]}__{kind}")
                if path.exists():
                    with_aug.setdefault(kind, []).append(nov.score(layer_rows(whisper.WhisperFeatures.load(path), None)) > nov.threshold)
            path = caches.cache_path(cache("saa-fullband"), sid[i])
            if path.exists():
                with_aug.setdefault("full band", []).append(nov.score(layer_rows(whisper.WhisperFeatures.load(path), None)) > nov.threshold)
    if (run / "novelty.csv").exists():
        with open(run / "novelty.csv") as fh:
            for r in csv.DictReader(fh):
                if r["kind"] != "clean":
                    with_aug.setdefault(r["kind"], []).append(float(r["score"]) > float(r["threshold"]))
    for kind, flags in with_aug.items():
        rows_nov.append([kind, len(flags), f"{100 * np.mean(flags):.1f}%"])
    report["novelty_flag_rate"] = {k: float(np.mean(v)) for k, v in with_aug.items()}
    md += ["## Out-of-distribution warnings", "",
           "Share of held-out recordings for which the rating carries the warning \"unlike those the model was trained on\" "
           "(the check is fitted on the training folds' clean and augmented recordings, threshold at their 99th percentile).", "",
           table(["recordings", "n", "flagged"], rows_nov), ""]

    out = Path("reports") / cfg.name
    out.mkdir(parents=True, exist_ok=True)
    (out / "robustness.md").write_text("\n".join(md))
    (out / "robustness.json").write_text(json.dumps(report, indent=1, default=float))
    print("\n".join(md))


if __name__ == "__main__":
    main()
