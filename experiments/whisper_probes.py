"""Probes behind the choices recorded in reports/RESULTS.md (wave 2), on the cached clean tiny.en
features and the default run's folds (`accent-rater train --config configs/default.toml` first):

    .venv/bin/python experiments/whisper_probes.py c-sweep          # accent head: C vs raw out-of-fold ROC-AUC
    .venv/bin/python experiments/whisper_probes.py l1-heads         # first-language head variants: top-1 / top-3
    .venv/bin/python experiments/whisper_probes.py window-position  # leave-text-out diagnosis
    .venv/bin/python experiments/whisper_probes.py cache-vs-serving # training cache vs the numpy serving path
    .venv/bin/python experiments/whisper_probes.py encoder-speed    # tiny.en vs base encoder on a 30 s clip

Speaker-disjoint folds throughout; numbers are printed, not written.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from accent_rater import audio
from accent_rater.backbones import whisper
from accent_rater.models import get_family
from accent_rater.models.whisper_heads import L1Head
from accent_rater.training import data

CACHE = Path("cache/whisper/tiny.en/saa")


def load(run: Path):
    folds = json.loads((run / "folds.json").read_text())
    recs = [r for r in data.load_corpus("../shared/data/saa").recordings if r.speaker_id in folds]
    feats = [whisper.WhisperFeatures.load(CACHE / f"{r.speaker_id}.npz") for r in recs]
    y = np.array([r.label == "native" for r in recs], dtype=int)
    return recs, feats, y, np.array([folds[r.speaker_id] for r in recs])


def sub(f, idx):
    return dataclasses.replace(f, spans=f.spans[idx], stats=f.stats[idx], frames=None, n_frames=None)


def c_sweep(recs, feats, y, fold) -> None:
    for C in (0.003, 0.01, 0.03, 0.1):
        logit = np.zeros(len(y))
        for k in np.unique(fold):
            fam = get_family("whisper", C=C)
            fam.fit([feats[i] for i in np.flatnonzero(fold != k)], y[fold != k])
            for i in np.flatnonzero(fold == k):
                logit[i] = fam.recording_logit(feats[i])
        print(f"C {C}: raw out-of-fold ROC-AUC {roc_auc_score(y, logit):.4f}", flush=True)


def l1_heads(recs, feats, y, fold) -> None:
    nn = np.flatnonzero(y == 0)
    lang = np.array([recs[i].native_language for i in nn])
    variants = [("logistic C 0.1, every layer", dict(method="logistic", C=0.1))]
    variants += [(f"PCA {n} + LDA, layers {layers or 'all'}", dict(method="lda", layers=layers, n_components=n))
                 for layers in (None, [2, 3, 4], [3, 4], [1, 2, 3]) for n in (100, 128, 150, 300)]
    for name, params in variants:
        P = np.zeros((len(nn), 8))
        for k in np.unique(fold):
            tr, te = fold[nn] != k, fold[nn] == k
            head = L1Head(**params).fit([feats[i] for i in nn[tr]], lang[tr])
            P[te] = np.stack([head.proba(feats[i]) for i in nn[te]])
        truth = np.array([head.classes.index(x) for x in lang])
        order = np.argsort(-P, 1)
        print(f"{name}: top-1 {np.mean(order[:, 0] == truth):.3f}, top-3 {np.mean((order[:, :3] == truth[:, None]).any(1)):.3f}", flush=True)


def window_position(recs, feats, y, fold) -> None:
    """Head trained on each training speaker's first window only, tested on one window of held-out
    speakers (fold 0); then the first window cut to 3 s (re-encoded), padded or not."""
    tr, te = np.flatnonzero(fold != 0), np.flatnonzero(fold == 0)
    fam = get_family("whisper", C=0.03)
    fam.fit([sub(feats[i], np.array([0])) for i in tr], y[tr])
    for name, pick in (("first", lambda f: 0), ("second", lambda f: min(1, len(f.spans) - 1)),
                       ("third", lambda f: min(2, len(f.spans) - 1)), ("last", lambda f: len(f.spans) - 1)):
        lg = [fam.recording_logit(sub(feats[i], np.array([pick(feats[i])]))) for i in te]
        print(f"trained on first windows, tested on the {name} window: ROC-AUC {roc_auc_score(y[te], lg):.3f}", flush=True)
    from accent_rater import Rater

    enc = Rater().encoder
    cut = []
    for i in te[::2]:
        a = audio.prepare(recs[i].path).audio[: 3 * audio.SAMPLE_RATE]
        st = enc(whisper.log_mel(a))[0]
        cut.append(fam.recording_logit(dataclasses.replace(feats[i], spans=np.zeros((1, 2)), stats=np.stack([st.mean(1), st.std(1)], 1)[None])))
    print(f"first window cut to 3 s: ROC-AUC {roc_auc_score(y[te[::2]], cut):.3f}", flush=True)


def cache_vs_serving(recs, feats, y, fold) -> None:
    from accent_rater import Rater

    rater = Rater()
    d = [abs(rater.rate_features(feats[i]).p_native - rater.rate_features(rater.features(audio.prepare(recs[i].path))).p_native)
         for i in range(0, len(recs), 40)]
    print(f"{len(d)} recordings: max |p_native(training cache) - p_native(serving)| = {max(d):.2e}")


def encoder_speed(*_) -> None:
    wav = audio.load_audio(sorted(Path("../shared/data/saa/audio").glob("*.opus"))[0])
    wav = np.resize(wav, 30 * audio.SAMPLE_RATE)
    mel = whisper.log_mel(np.stack([wav[s:e] for s, e in audio.chunk_spans(len(wav))][:4]))
    for size in ("tiny.en", "base"):
        path = whisper.onnx_path(size)
        if not path.exists():
            print(f"{size}: {path} missing (accent-rater fetch-weights {size})")
            continue
        enc = whisper.OnnxWhisper(path, threads=2)
        enc(mel)
        t = time.perf_counter()
        for _ in range(5):
            enc(mel)
        print(f"{size}: {(time.perf_counter() - t) / 5 * 1000:.0f} ms for 4 x 7 s windows (2 threads)", flush=True)


def main() -> None:
    probes = {"c-sweep": c_sweep, "l1-heads": l1_heads, "window-position": window_position,
              "cache-vs-serving": cache_vs_serving, "encoder-speed": encoder_speed}
    ap = argparse.ArgumentParser()
    ap.add_argument("probe", choices=sorted(probes))
    ap.add_argument("--run", type=Path, default=Path("runs/default"))
    args = ap.parse_args()
    probes[args.probe](*(load(args.run) if args.probe != "encoder-speed" else ()))


if __name__ == "__main__":
    main()
