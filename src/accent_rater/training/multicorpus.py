"""Training the accent head on several corpora at once, so that it learns accent rather than one
corpus' microphones, text and voices (issue 19; measured by ``scripts/cross_corpus.py``).

Every corpus of ``CORPORA`` holds one label except the archive: LibriSpeech readers are natives,
speechocean762 learners non-natives. A head trained on such a corpus learns its channel as its label
(leave-corpus-out shows it), and a head trained on the archive alone finds directions that mark the
archive's own recordings as native. The default recipe therefore trains the head on the archive
(clean, augmented copies, 3 s windows) and projects out of its input the directions along which the
other corpora's means differ from the archive's at the same label (nuisance attribute projection),
so no linear head can score "this corpus"; the other corpora weigh as much as the archive in
calibration, threshold and novelty. ``Recipe`` also has the options that were measured and not
adopted (other corpora as training labels, channel and passage-position directions, ...). A linear
head on projected rows is a linear head on the rows (its coefficients are projected too), so the
bundle and the rater are unchanged by any of it.

Features are ``backbones.whisper.WhisperFeatures`` from the training caches: one file per
recording, keyed by ``recording_key`` (the file's stem; the archive's stems are its speaker ids).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import paths
from ..audio import MIN_SPEECH_SECONDS
from . import data

if TYPE_CHECKING:
    from ..calibration import Calibrator

CORPORA = ("saa", "librispeech", "speechocean762")
SHORT_WINDOW_S = 3.0  # the extra windows of ``Recipe.short``
TRAIN_MIN_SPEECH_S = 0.5  # utterances this short still train (a rating needs audio.MIN_SPEECH_SECONDS)


def recording_key(rec: data.Recording) -> str:
    """Cache key of one recording: its file's stem (unique within a corpus)."""
    return Path(rec.path).stem


@dataclass
class Corpora:
    """Window rows of every loaded recording, with what each row and recording is."""

    records: list[data.Recording]
    corpus: np.ndarray  # (R,) corpus name per recording
    label: np.ndarray  # (R,) 1 = native
    rows: np.ndarray  # (N, D) float32 window rows (every layer's mean and std)
    row_rec: np.ndarray  # (N,) recording index of each row
    row_view: np.ndarray  # (N,) "clean", an augmentation kind, or "short" (3 s windows of the clean speech)
    row_copy: np.ndarray  # (N,) which copy of the recording a row belongs to (0 = clean, 1.. = augmented, -1 = short)
    row_pos: np.ndarray  # (N,) where the window's centre lies in the recording's speech, 0..1
    feats: list = field(default_factory=list)  # clean WhisperFeatures per recording (first-language head, novelty)
    aug: list = field(default_factory=list)  # per recording its augmented copies as (kind, WhisperFeatures)

    @property
    def row_half(self) -> np.ndarray:
        """(N,) 0 = the window lies in the first half of its recording's speech, 1 = the second."""
        return (self.row_pos >= 0.5).astype(np.int8)

    def select(self, recs: np.ndarray, views: Sequence[str] | None = None) -> np.ndarray:
        """Row indices of recordings ``recs`` (optionally only the given views)."""
        m = np.isin(self.row_rec, recs)
        if views is not None:
            m &= np.isin(self.row_view, views)
        return np.flatnonzero(m)


def _position(spans: np.ndarray) -> np.ndarray:
    """Each window's centre as a fraction of the span from the first window's start to the last's end."""
    return ((spans.mean(1) - spans[0, 0]) / max(spans[-1, 1] - spans[0, 0], 1e-6)).astype(np.float32)


def cache_dirs(cache: str | Path, size: str, corpus: str) -> tuple[Path, Path]:
    """Where a corpus' Whisper features live under the cache root ``cache`` (``paths.whisper_features``):
    the 7 s windows (clean and augmented) and the 3 s windows."""
    from ..backbones.whisper import feature_tag

    tag = feature_tag(size)
    return paths.whisper_features(tag, corpus, cache=cache), paths.whisper_features(tag, corpus, SHORT_WINDOW_S, cache)


def corpus_recordings(paths: Sequence[str | Path], max_speakers: int = 0, seed: int = 0) -> dict[str, list[data.Recording]]:
    """{corpus name: its recordings} of the corpora at ``paths`` (a stratified ``max_speakers``
    subset of each when given: quick runs and tests); the name is the folder's."""
    from . import splits

    out = {}
    for path in paths:
        report = data.load_corpus(path)
        for row, why in report.skipped:
            print(f"skipped {row}: {why}")
        recs = report.recordings
        out[Path(path).name] = splits.speaker_subset(recs, max_speakers, seed) if max_speakers else recs
    return out


def build_caches(corpora: dict[str, list[data.Recording]], cache: str | Path = paths.CACHE, size: str = "tiny.en",
                 copies: dict[str, int] | None = None, short: Sequence[str] = (), engine=None) -> dict[str, str]:
    """Whisper features of every recording of ``corpora`` ({name: recordings}; resumable): clean,
    ``copies[name]`` augmented copies (``augment.augment_kind``), and 3 s windows for the corpora named
    in ``short``. Utterances shorter than a rating needs are kept (down to 0.5 s of speech) but for
    the archive, whose readings are all long. Returns {key: error} of unusable recordings."""
    from ..backbones import whisper
    from . import caches
    from .augment import augment_kind

    copies = copies or {}
    errors: dict[str, str] = {}
    for name, recs in corpora.items():
        base, short_dir = cache_dirs(cache, size, name)
        clean = [(recording_key(r), r.path, None, 0) for r in recs]
        items = clean + [(f"{k}__aug{c}", p, augment_kind(k, c), c + 1) for k, p, _, _ in clean for c in range(copies.get(name, 0))]
        min_s = MIN_SPEECH_SECONDS if name == "saa" else TRAIN_MIN_SPEECH_S
        errors.update(caches.build_whisper_cache(items, base, whisper.onnx_path(size), engine=engine, min_speech_s=min_s))
        if name in short:
            errors.update(caches.build_whisper_cache(clean, short_dir, whisper.onnx_path(size), engine=engine,
                                                       window_s=SHORT_WINDOW_S, min_speech_s=TRAIN_MIN_SPEECH_S))
    return errors


def load_corpora(corpora: dict[str, list[data.Recording]], cache: str | Path, size: str, copies: dict[str, int]) -> Corpora:
    """Every cached recording of ``corpora`` ({name: recordings}, as ``build_caches`` wrote them):
    clean, ``copies[name]`` augmented copies and the 3 s windows when cached; recordings without a
    clean cache file (unusable ones) are left out. ``train.corpora_data`` gives a config's."""
    from ..backbones.whisper import WhisperFeatures
    from ..models.whisper_heads import layer_rows
    from .augment import augment_kind
    from .caches import cache_path

    records, corpus_of, rows, rec_of, view_of, copy_of, pos_of, feats, aug = [], [], [], [], [], [], [], [], []
    for corpus, recs in corpora.items():
        base, short = cache_dirs(cache, size, corpus)
        for rec in recs:
            key = recording_key(rec)
            if not cache_path(base, key).exists():
                continue
            i = len(records)
            records.append(rec)
            corpus_of.append(corpus)
            views = [("clean", 0, cache_path(base, key))]
            views += [(augment_kind(key, c), c + 1, cache_path(base, f"{key}__aug{c}")) for c in range(copies.get(corpus, 0))]
            views.append(("short", -1, cache_path(short, key)))
            aug.append([])
            for view, copy, path_ in views:
                if not path_.exists():
                    continue
                f = WhisperFeatures.load(path_)
                if copy == 0:
                    feats.append(f)
                elif copy > 0:
                    aug[-1].append((view, f))
                r = layer_rows(f, None)
                rows.append(r.astype(np.float32))
                rec_of.append(np.full(len(r), i))
                view_of += [view] * len(r)
                copy_of.append(np.full(len(r), copy))
                pos_of.append(_position(f.spans))
    return Corpora(records, np.array(corpus_of), np.array([r.label == data.NATIVE for r in records], int),
                   np.concatenate(rows), np.concatenate(rec_of), np.array(view_of), np.concatenate(copy_of),
                   np.concatenate(pos_of), feats, aug)


@dataclass
class Recipe:
    """How the accent head is trained (``fit_head``)."""

    corpora: tuple[str, ...] = CORPORA  # corpora whose recordings train the head
    C: float = 0.01  # logistic regression's inverse L2 strength (standardised rows)
    augmented: bool = True  # the augmented copies train too
    short: bool = True  # the 3 s windows of the clean speech train too
    nuisance: int = 0  # channel directions projected out (top principal directions of copy - clean)
    corpus_nuisance: int = 0  # > 0: the corpora's within-label mean differences are projected out
    view_nuisance: bool = False  # each view's (augmentation kind's, 3 s windows', second half's) mean shift from clean
    scale_floor: float = 0.0  # a column's scale is at least this fraction of its (layer, mean/std) block's median scale
    columns: str = "all"  # which of every layer's (mean, std) statistics the head reads: ``feature_columns``
    halves: tuple[int, ...] = (0, 1)  # which halves of each recording's speech train (leave-text-out)
    extra: dict[str, float] = field(default_factory=dict)  # weight of a corpus' cell relative to the archive's (default 1)


@dataclass
class LinearHead:
    """standardise -> linear map; ``coef`` already projected, so ``logits`` is one dot product."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    basis: np.ndarray | None = None  # (k, D) the projected-out directions (standardised space)
    cols: np.ndarray | None = None  # the row columns read (None: all)

    def logits(self, rows: np.ndarray) -> np.ndarray:
        x = rows if self.cols is None else rows[:, self.cols]
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept

    def recording_logits(self, d: Corpora, recs: Sequence[int], view: str = "clean", half: int | None = None) -> np.ndarray:
        """Mean window logit of each recording's ``view`` rows (optionally one half of its speech),
        as the rater scores a recording."""
        m = d.row_view == view
        if half is not None:
            m &= d.row_half == half
        idx = np.flatnonzero(m & np.isin(d.row_rec, recs))
        z = self.logits(d.rows[idx])
        sums = np.bincount(d.row_rec[idx], weights=z, minlength=len(d.records))
        counts = np.bincount(d.row_rec[idx], minlength=len(d.records))
        out = sums[np.asarray(recs)] / np.maximum(counts[np.asarray(recs)], 1)
        out[counts[np.asarray(recs)] == 0] = np.nan
        return out


N_LAYERS, D_STATE = 5, 384  # Whisper tiny.en: the embedding + 4 blocks, 384 channels


def feature_columns(spec: str) -> np.ndarray:
    """Column indices of the (layer, mean/std, channel) rows: "all", or "L2-4", "L3-4:std", "all:mean" ..."""
    layers, _, part = spec.partition(":")
    ls = range(N_LAYERS) if layers == "all" else range(int(layers[1]), int(layers.split("-")[-1]) + 1)
    parts = {"": (0, 1), "mean": (0,), "std": (1,)}[part]
    grid = np.arange(N_LAYERS * 2 * D_STATE).reshape(N_LAYERS, 2, D_STATE)
    return grid[list(ls)][:, list(parts)].ravel()


def row_weights(d: Corpora, idx: np.ndarray, recipe: Recipe) -> np.ndarray:
    """Each (corpus, label) cell of the training rows weighs the same (times ``recipe.extra``),
    each speaker the same within its cell, each recording within its speaker, each view within its
    recording and each window within its
    view; natives and non-natives weigh the same in all; the total is the number of speakers."""
    rec = d.row_rec[idx]
    w = np.ones(len(idx))
    view_key = np.char.add(rec.astype(str), np.char.add("|", d.row_view[idx]))
    _, inv, cnt = np.unique(view_key, return_inverse=True, return_counts=True)
    w /= cnt[inv]  # windows of one view
    _, inv_v = np.unique(rec, return_inverse=True)
    views_per_rec = np.bincount(inv_v, weights=w)
    w /= views_per_rec[inv_v]  # views of one recording
    spk = np.array([d.records[r].speaker_id for r in rec])
    _, inv_s = np.unique(spk, return_inverse=True)
    w /= np.bincount(inv_s, weights=w)[inv_s]  # recordings of one speaker
    cell = np.char.add(d.corpus[rec], d.label[rec].astype(str))
    _, inv_c = np.unique(cell, return_inverse=True)
    w /= np.bincount(inv_c, weights=w)[inv_c]  # speakers of one cell
    w *= np.array([recipe.extra.get(c, 1.0) for c in d.corpus[rec]])
    lab = d.label[rec]
    for v in (0, 1):
        w[lab == v] /= w[lab == v].sum()
    # total weight = the number of training speakers, whatever the number of windows and copies, so
    # that C means the same regularisation for every recipe on the same speakers
    return w * len(np.unique(spk)) / w.sum()


def nuisance_basis(d: Corpora, recs: np.ndarray, mean: np.ndarray, scale: np.ndarray, recipe: Recipe,
                   cols: np.ndarray, given: np.ndarray | None = None) -> np.ndarray | None:
    """Orthonormal (k, D) directions of the standardised rows that carry channel, corpus or text;
    the corpus directions come from every ``given`` recording, also of corpora that do not train the head."""
    dirs = []
    z = lambda r: (r[:, cols] - mean) / scale  # noqa: E731
    if recipe.nuisance:
        diffs = []
        for i in recs:
            own = d.row_rec == i
            clean = own & (d.row_copy == 0)
            if not clean.any():
                continue
            c = z(d.rows[clean]).mean(0)
            for copy in range(1, int(d.row_copy[own].max(initial=0)) + 1):
                m = own & (d.row_copy == copy)
                if m.any():
                    diffs.append(z(d.rows[m]).mean(0) - c)
        if diffs:
            from sklearn.utils.extmath import randomized_svd

            D = np.stack(diffs)
            _, _, vt = randomized_svd(D, min(recipe.nuisance, len(D) - 1), random_state=0)
            dirs.append(vt)
    if recipe.corpus_nuisance:
        dirs += corpus_directions(d, recs if given is None else given, z)
    if recipe.view_nuisance:
        dirs += view_directions(d, recs, z)
    if not dirs:
        return None
    q, _ = np.linalg.qr(np.concatenate(dirs).T)
    return q.T.astype(np.float32)


def view_directions(d: Corpora, recs: np.ndarray, z) -> list[np.ndarray]:
    """Within each label, how far each view's rows (an augmentation kind, the 3 s windows) and the
    second half of the speech sit from the clean rows of the same recordings, on average: channel,
    window length and text shifts that say nothing of accent."""
    found: list[np.ndarray] = []
    for v in (0, 1):
        own = recs[d.label[recs] == v]
        idx = d.select(own)
        Z = z(d.rows[idx])
        view, half = d.row_view[idx], d.row_half[idx]
        clean = view == "clean"
        base = Z[clean].mean(0)
        found += [(Z[view == k].mean(0) - base)[None] for k in np.unique(view) if k != "clean" and np.sum(view == k) > 10]
        if np.sum(clean & (half == 1)) > 10 and np.sum(clean & (half == 0)) > 10:
            found.append((Z[clean & (half == 1)].mean(0) - Z[clean & (half == 0)].mean(0))[None])
    return found


def corpus_directions(d: Corpora, recs: np.ndarray, z) -> list[np.ndarray]:
    """Directions that tell the corpora apart within a label: each corpus' mean minus the mean of
    the corpora's means (one fewer than the corpora of that label). With them projected out, every
    corpus has the same mean at a label, so a linear score cannot separate them on average."""
    found: list[np.ndarray] = []
    for v in (0, 1):
        own = recs[d.label[recs] == v]
        cells = list(np.unique(d.corpus[own]))
        if len(cells) < 2:
            continue
        means = [z(d.rows[d.select(own[d.corpus[own] == c], ["clean"])]).mean(0) for c in cells]
        grand = np.mean(means, 0)
        found += [(m - grand)[None] for m in means[:-1]]
    return found


def fit_head(d: Corpora, recs: np.ndarray, recipe: Recipe) -> LinearHead:
    """The accent head of ``recipe`` trained on recordings ``recs`` (only those of ``recipe.corpora``)."""
    from sklearn.linear_model import LogisticRegression

    given = np.asarray(recs)
    recs = given[np.isin(d.corpus[given], recipe.corpora)]
    idx = d.select(recs)
    keep = np.isin(d.row_half[idx], recipe.halves)
    if not recipe.augmented:
        keep &= d.row_copy[idx] <= 0
    if not recipe.short:
        keep &= d.row_view[idx] != "short"
    idx = idx[keep]
    cols = feature_columns(recipe.columns)
    X = d.rows[idx][:, cols]
    w = row_weights(d, idx, recipe)
    mean = np.average(X, axis=0, weights=w).astype(np.float32)
    scale = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=w)).astype(np.float32) + 1e-6
    if recipe.scale_floor:
        block = np.repeat(np.arange(len(cols) // D_STATE), D_STATE)  # columns come in blocks of one (layer, part)
        med = np.array([np.median(scale[block == b]) for b in range(block.max() + 1)])[block]
        scale = np.maximum(scale, recipe.scale_floor * med).astype(np.float32)
    Z = (X - mean) / scale
    basis = nuisance_basis(d, recs, mean, scale, recipe, cols, given)
    if basis is not None:
        Z = Z - (Z @ basis.T) @ basis
    y = d.label[d.row_rec[idx]]
    lr = LogisticRegression(C=recipe.C, max_iter=2000).fit(Z, y, sample_weight=w)
    coef = lr.coef_[0]
    if basis is not None:
        coef = coef - basis.T @ (basis @ coef)
    return LinearHead(mean, scale, coef.astype(np.float32), float(lr.intercept_[0]), basis, cols)


# --- cross-validation and the bundled model ------------------------------------------------------
def folds_of(d: Corpora, k: int = 5, seed: int = 0) -> np.ndarray:
    """Speaker-disjoint folds, label-stratified, drawn within each corpus (the archive's are the
    folds an archive-only run draws, so archive figures stay comparable across recipes)."""
    from . import splits

    fold = np.zeros(len(d.records), int)
    for c in np.unique(d.corpus):
        idx = np.flatnonzero(d.corpus == c)
        fold[idx] = splits.speaker_folds([d.records[i] for i in idx], k=k, seed=seed)
    return fold


def cross_validate(d: Corpora, recipe: Recipe, fold: np.ndarray, recs: np.ndarray | None = None, half: int | None = None
                   ) -> tuple[np.ndarray, dict[str, np.ndarray], list[np.ndarray], list[LinearHead]]:
    """Out-of-fold recording logits of the recordings ``recs`` (default: all; only they train),
    clean, of their augmented copies by view, and their window logits, each fold's from a head
    trained on the other folds; and those heads. ``half``: score one half of each recording only
    (leave-text-out; train on one half with ``recipe.halves``). Others' entries stay NaN / empty."""
    recs = np.arange(len(d.records)) if recs is None else np.asarray(recs)
    heads = []
    z = np.full(len(d.records), np.nan)
    views = [v for v in np.unique(d.row_view) if v not in ("clean", "short")]
    zv = {v: np.full(len(d.records), np.nan) for v in views}
    seg: list[np.ndarray] = [np.zeros(0)] * len(d.records)
    for k in np.unique(fold[recs]):
        te = recs[fold[recs] == k]
        head = fit_head(d, recs[fold[recs] != k], recipe)
        heads.append(head)
        z[te] = head.recording_logits(d, te, half=half)
        for v in views:
            zv[v][te] = head.recording_logits(d, te, view=v, half=half)
        rows = d.select(te, ["clean"])  # one pass over the fold's rows, in window order
        zr, owner = head.logits(d.rows[rows]), d.row_rec[rows]
        for i in te:
            seg[i] = zr[owner == i]
    return z, zv, seg, heads


def fold_calibration(z: np.ndarray, y: np.ndarray, w: np.ndarray, fold: np.ndarray,
                     ok: np.ndarray | None = None) -> dict[int, tuple[Calibrator, float]]:
    """Each fold's Platt calibration and balanced threshold, both fitted on the other folds'
    out-of-fold logits (the ``ok`` ones) with weights ``w``: how a fold's recordings are decided
    without their own logits choosing anything."""
    from ..calibration import Calibrator
    from .stacking import choose_threshold

    ok = np.ones(len(z), bool) if ok is None else ok
    out = {}
    for k in np.unique(fold[ok]):
        oth = ok & (fold != k)
        cal = Calibrator.fit(z[oth], y[oth], w[oth])
        out[int(k)] = (cal, choose_threshold(cal.apply(z[oth]), y[oth], w[oth]))
    return out


def cell_weights(d: Corpora, recs: np.ndarray | None = None) -> np.ndarray:
    """Recording weights making every (corpus, label) cell and every speaker in it weigh the same,
    and natives and non-natives half each: what calibration and the threshold are fitted with."""
    recs = np.arange(len(d.records)) if recs is None else np.asarray(recs)
    return cell_weights_of(d.corpus[recs], d.label[recs], np.array([d.records[i].speaker_id for i in recs]))


def cell_weights_of(corpus: np.ndarray, label: np.ndarray, speaker: np.ndarray) -> np.ndarray:
    """``cell_weights`` from the columns of a predictions table (mean weight 1)."""
    _, inv, cnt = np.unique(speaker, return_inverse=True, return_counts=True)
    w = 1.0 / cnt[inv]
    cell = np.char.add(np.asarray(corpus).astype(str), np.asarray(label).astype(str))
    _, inv_c = np.unique(cell, return_inverse=True)
    w /= np.bincount(inv_c, weights=w)[inv_c]
    label = np.asarray(label).astype(int)
    for v in (0, 1):
        w[label == v] /= max(w[label == v].sum(), 1e-12)
    return w * len(w) / w.sum()


def recipe_of(spec: dict, corpora: Sequence[str]) -> Recipe:
    """The ``Recipe`` of a config's model entry: its keys that are ``Recipe`` fields (``family`` and
    ``label`` aside); any other key is refused, so a misspelt one cannot pass unnoticed."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(Recipe)}
    params = {k: v for k, v in spec.items() if k not in ("family", "label")}
    unknown = sorted(set(params) - names)
    if unknown:
        raise ValueError(f"unknown accent-head setting(s) {unknown}; known: {sorted(names)}")
    params["corpora"] = tuple(params.get("corpora", corpora))
    params["halves"] = tuple(params.get("halves", (0, 1)))
    return Recipe(**params)


def write_run_files(out: Path, d, name: str, fold: np.ndarray, fold_heads, cal, p: np.ndarray, z: np.ndarray,
                       zv: dict[str, np.ndarray], seg: list[np.ndarray], archive: str) -> None:
    """``train.run_corpora``'s files: the fold heads, and for the archive what an archive-only run writes
    (predictions, segments, held-out augmented copies), plus every corpus' out-of-fold predictions."""
    import csv

    from safetensors.numpy import save_file

    y, arch = d.label, np.flatnonzero(d.corpus == archive)
    (out / "folds").mkdir(exist_ok=True)
    for k, h in enumerate(fold_heads):  # what scripts/robustness.py rates held-out speakers with
        save_file({"mean": h.mean, "scale": h.scale, "coef": h.coef, "intercept": np.array([h.intercept], np.float32)},
                  str(out / "folds" / f"{name}_fold{k}.safetensors"))
    with open(out / "predictions.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["speaker_id", "label", "native_language", "country", "sex", "age", "model", "fold", "p_native"])
        for i in arch:
            r = d.records[i]
            wr.writerow([r.speaker_id, y[i], r.native_language, r.country, r.sex, "" if r.age is None else r.age, name, fold[i], f"{p[i]:.6f}"])
    with open(out / "segments.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["speaker_id", "label", "model", "fold", "segment", "p_native"])
        for i in arch:
            for j, q in enumerate(cal[fold[i]].apply(seg[i])):
                wr.writerow([d.records[i].speaker_id, y[i], name, fold[i], j, f"{q:.6f}"])
    with open(out / "augmented.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["speaker_id", "label", "model", "fold", "kind", "p_native"])
        for i in arch:
            for kind, zk in zv.items():
                if not np.isnan(zk[i]):
                    wr.writerow([d.records[i].speaker_id, y[i], name, fold[i], kind, f"{float(cal[fold[i]].apply(zk[i])):.6f}"])
    with open(out / "corpora_predictions.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["corpus", "key", "speaker_id", "label", "native_language", "age", "fold", "logit", "p_native"])
        for i, r in enumerate(d.records):
            wr.writerow([d.corpus[i], recording_key(r), r.speaker_id, y[i], r.native_language, "" if r.age is None else r.age,
                         fold[i], f"{z[i]:.5f}", f"{p[i]:.6f}"])


CROSS_CORPUS_RESULTS = Path("reports") / "cross_corpus" / "results.json"  # written by scripts/cross_corpus.py


def cross_corpus_results(path: Path = CROSS_CORPUS_RESULTS) -> dict | None:
    """``scripts/cross_corpus.py``'s figures at the recipe's own C (leave-corpus-out ``lco_<corpus>``,
    ``in_corpus_<corpus>``, archive), or None when it has not been run."""
    if not path.exists():
        return None
    r = json.loads(path.read_text())
    return r["by_C"].get(str(r["recipe"]["C"]))


def corpora_notes(d: Corpora, p: np.ndarray, threshold: float, archive: str) -> str:
    """The report's section on the other corpora: this run's out-of-fold decisions on them (their
    other speakers in the fit), beside the leave-corpus-out figures of ``scripts/cross_corpus.py``
    (each corpus out of every fit: the estimate for corpora never seen) when it has been run."""
    rows = []
    for c in dict.fromkeys(d.corpus):
        if c == archive:
            continue
        m = (d.corpus == c) & np.array([f.speech_seconds >= MIN_SPEECH_SECONDS for f in d.feats])
        target = int(d.label[m][0]) if m.any() else 1
        share = float(np.mean((p[m] >= threshold) == target)) if m.any() else float("nan")
        rows.append(f"| {c} | {'native' if target else 'non-native'} | {int(m.sum())} | {100 * share:.1f}% |")
    res = cross_corpus_results() or {}
    lco_text = ""
    if res:
        lco_text = "\n".join(f"| {c} | {100 * res[f'lco_{c}']['correct'][0]:.1f}% [{100 * res[f'lco_{c}']['correct'][1]:.1f}, "
                             f"{100 * res[f'lco_{c}']['correct'][2]:.1f}] |" for c in dict.fromkeys(d.corpus) if f"lco_{c}" in res)
        lco_text = ("\n\nLeave-corpus-out (`scripts/cross_corpus.py`, the corpus out of every fit, calibration and threshold; "
                    "95% speaker bootstrap): the best estimate for corpora never seen.\n\n| corpus | rated as its label |\n|---|---|\n"
                    + lco_text)
    return ("## Beyond the archive\n\nThis run's out-of-fold decisions at its threshold on the other corpora (their other "
            "speakers in the fit; recordings with the 3 s of speech a rating needs):\n\n| corpus | label | recordings | "
            "rated as its label |\n|---|---|---|---|\n" + "\n".join(rows) + lco_text + "\n")
