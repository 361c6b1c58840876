"""Training the pronunciation heads (``accent_rater.pronunciation``) on speechocean762's expert scores,
with LibriSpeech's natives as the top of the scale, and the measures they read.

    python -m accent_rater.training.pronunciation measure   # Whisper base over every reading (resumable)
    python -m accent_rater.training.pronunciation fit       # CV figures, then the heads into the bundle

Every split is by speaker. The archive is never trained on: its readings are the check beyond the
corpus (natives above non-natives, and the age English was learned)."""

from __future__ import annotations

import csv
import hashlib
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import paths
from ..backbones.whisper import feature_tag

if TYPE_CHECKING:
    from ..pronunciation import PronunciationHead

DATA = Path("../shared/data")
CACHE = paths.PRONUNCIATION
SAA_PER_LABEL = 100  # archive speakers per label measured for the validity check


@dataclass(frozen=True)
class Reading:
    """One recording to measure: where it is, who read it, what text, and the experts' scores."""

    corpus: str
    key: str
    speaker: str
    path: Path
    text: str | None  # None: the archive passage; "": free speech (the heard words are scored)
    native: bool
    scores: dict[str, float] = field(default_factory=dict)  # speechocean762: accuracy, fluency, prosodic, total
    age_onset: float | None = None
    age: float | None = None


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def readings(root: Path = DATA, saa_per_label: int = SAA_PER_LABEL) -> list[Reading]:
    """speechocean762 (all), LibriSpeech (all, free speech: no texts ship with it) and a fixed
    subset of archive speakers, ``saa_per_label`` per label (the first by a hash of their id)."""
    out = []
    so = root / "speechocean762"
    for r in _rows(so / "utterances.csv"):
        out.append(Reading("speechocean762", r["utt_id"], r["speaker_id"], so / r["path"], r["text"], False,
                           {k: float(r[k]) for k in ("accuracy", "fluency", "prosodic", "total")}, age=float(r["age"])))
    libri = root / "librispeech"
    for r in _rows(libri / "utterances.csv"):
        out.append(Reading("librispeech", r["utt_id"], r["speaker_id"], libri / r["path"], "", True))
    saa = root / "saa"
    rows = sorted(_rows(saa / "speakers.csv"), key=lambda r: hashlib.sha256(r["speaker_id"].encode()).hexdigest())
    for label in ("native", "non_native"):
        for r in [r for r in rows if r["label"] == label][:saa_per_label]:
            onset = float(r["age_onset"]) if r.get("age_onset") not in (None, "") else None
            out.append(Reading("saa", r["speaker_id"], r["speaker_id"], saa / r["path"], None, label == "native",
                               age_onset=onset))
    return out


def cache_path(reading: Reading, cache: Path = CACHE) -> Path:
    return cache / reading.corpus / f"{reading.key}.npz"


def measure_all(items: list[Reading], cache: Path = CACHE, threads: int = 2) -> dict[str, str]:
    """Measure every reading not yet cached; {key: error} of those that could not be."""
    from tqdm import tqdm

    from .. import audio
    from ..pronunciation import MIN_SPEECH_SECONDS, measure
    from ..rater import Rater
    from ..words import PASSAGE, Transcriber, text_words

    listen = Transcriber(threads)
    accent = Rater(threads=threads)  # the accent model's features of the speech are read too
    errors = refresh_accent(items, cache, accent)
    todo = [r for r in items if not cache_path(r, cache).exists()]
    for r in tqdm(todo, desc="measuring", unit="reading", mininterval=10):
        text = PASSAGE if r.text is None else r.text
        try:
            speech = audio.prepare(r.path, wide=True, min_speech_seconds=MIN_SPEECH_SECONDS)
            listening = listen.listen(speech, text)
            written = text_words(text) if text else [f.word for f in listening.forced]
            m = measure(speech, listening, written).with_accent(accent.features(speech))
        except Exception as exc:  # noqa: BLE001 - a corpus's unusable recording is reported, not fatal
            errors[f"{r.corpus}/{r.key}"] = f"{type(exc).__name__}: {exc}"
            continue
        path = cache_path(r, cache)
        path.parent.mkdir(parents=True, exist_ok=True)
        m.save(path)
    return errors


def refresh_accent(items: list[Reading], cache: Path, accent: Any) -> dict[str, str]:
    """Measures cached with another accent encoder (``ACCENT_STAMP`` names the one they were made
    with) get the features of ``accent`` (a ``Rater``) instead: only the tiny.en pass is redone, on
    the same speech. {key: error} of readings that could not be."""
    from tqdm import tqdm

    from .. import audio
    from ..pronunciation import MIN_SPEECH_SECONDS, Measures

    stamp, encoder = cache / ACCENT_STAMP, accent.meta["files"][accent.meta["encoder"]]
    cached = [r for r in items if cache_path(r, cache).exists()]
    errors: dict[str, str] = {}
    if cached and (not stamp.exists() or stamp.read_text().strip() != encoder):
        for r in tqdm(cached, desc="accent features", unit="reading", mininterval=10):
            try:
                speech = audio.prepare(r.path, wide=True, min_speech_seconds=MIN_SPEECH_SECONDS)
            except Exception as exc:  # noqa: BLE001 - as in measure_all
                errors[f"{r.corpus}/{r.key}"] = f"{type(exc).__name__}: {exc}"
                continue
            Measures.load(cache_path(r, cache)).with_accent(accent.features(speech)).save(cache_path(r, cache))
    cache.mkdir(parents=True, exist_ok=True)
    stamp.write_text(encoder + "\n")
    return errors


ACCENT_STAMP = "accent_encoder.sha256"  # in the measures' cache: the accent encoder their features are from


# --- fitting ------------------------------------------------------------------------------------------

TARGETS = {"accuracy": "accuracy", "fluency": "fluency", "prosody": "prosodic", "total": "total"}
NATIVE_SCORE = 10.0  # a native's reading: the top of the experts' scale
FOLDS = 5


@dataclass
class Table:
    """Measured readings as feature matrices: one row per reading, and one per written word."""

    items: list[Reading]
    names: list[str]
    X: np.ndarray  # (R, D)
    word_names: list[str]
    W: np.ndarray  # (N, E)
    word_item: np.ndarray  # (N,) reading index of each word row
    word_score: np.ndarray  # (N,) the experts' word accuracy (NaN where none)

    def target(self, aspect: str) -> np.ndarray:
        """Experts' score of every reading (0-10); natives the top of the scale; NaN for the archive."""
        key = TARGETS[aspect]
        return np.array([r.scores[key] if r.scores else NATIVE_SCORE if r.corpus == "librispeech" else np.nan
                         for r in self.items])

    def where(self, corpus: str) -> np.ndarray:
        return np.array([r.corpus == corpus for r in self.items])

    @property
    def speakers(self) -> np.ndarray:
        return np.array([r.speaker for r in self.items])


def word_scores(root: Path = DATA) -> dict[str, list[float]]:
    """{utt_id: experts' accuracy of each word, in order} of speechocean762."""
    out: dict[str, list[tuple[int, float]]] = {}
    for r in _rows(root / "speechocean762" / "words.csv"):
        out.setdefault(r["utt_id"], []).append((int(r["word_index"]), float(r["accuracy"])))
    return {k: [a for _, a in sorted(v)] for k, v in out.items()}


def accent_features(r: Reading, cache: Path = paths.CACHE) -> Any:
    """The accent model's cached features of the reading's clean speech (``multicorpus.build_caches``
    writes them for every corpus), or None."""
    from ..backbones.whisper import WhisperFeatures

    path = paths.whisper_features(feature_tag("tiny.en"), r.corpus, cache=cache) / f"{Path(r.path).stem}.npz"
    return WhisperFeatures.load(path) if path.exists() else None


def load_table(items: list[Reading], cache: Path = CACHE, root: Path = DATA) -> Table:
    """The feature table of every measured reading of ``items`` (the unmeasured are left out)."""
    from ..pronunciation import Measures, reading_features

    experts = word_scores(root)
    kept, rows, wrows, witem, wscore = [], [], [], [], []
    names: list[str] = []
    wnames: list[str] = []
    for r in items:
        path = cache_path(r, cache)
        if not path.exists():
            continue
        m = Measures.load(path)
        if not len(m.accent):  # measured before the accent features were kept with the rest
            accent = accent_features(r)
            if accent is None:
                continue
            m = m.with_accent(accent)
        f = reading_features(m)
        names, x, wnames, w = f.names, f.values, f.word_names, f.words
        scores = experts.get(r.key) if r.corpus == "speechocean762" else None
        if r.corpus == "speechocean762" and (scores is None or len(scores) != len(w)):
            scores = None  # the text's words and the experts' words disagree: the reading trains, its words not
        target = np.array(scores, float) if scores is not None else np.full(len(w), NATIVE_SCORE if r.native and r.corpus == "librispeech" else np.nan)
        witem += [len(kept)] * len(w)
        kept.append(r)
        rows.append(x)
        wrows.append(w)
        wscore.append(target)
    return Table(kept, names, np.stack(rows), wnames, np.concatenate(wrows), np.array(witem), np.concatenate(wscore))


def state_blocks(names: list[str]) -> list[np.ndarray]:
    """Boolean masks of the encoder-state column blocks: Whisper base's states (mean and std over
    the speech, or over a word) and the accent model's features; the rest are hand-made features."""
    base = np.array([n.startswith(("state_mean", "state_std")) for n in names])
    accent = np.array([n.startswith("state_accent") for n in names])
    word = np.array([n.startswith("state") for n in names]) & ~base & ~accent
    return [b for b in (base, accent, word) if b.any()]


def fit_linear(X: np.ndarray, Y: np.ndarray, blocks: list[np.ndarray], *, components: int, alpha: float,
               weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Standardise every column, reduce each block of encoder-state columns (``blocks``: masks) to
    ``components`` principal components (scaled by the first one's spread, so the ridge penalty
    keeps their relative sizes), ridge-regress each column of ``Y`` (N, K) on them and the other
    columns; returned folded into one linear map on the raw columns, (D, K) coefficients and (K,)
    intercepts: what a bundle stores."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import Ridge

    mean, scale = X.mean(0), X.std(0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    Z = (X - mean) / scale
    hand = ~np.any(blocks, axis=0) if blocks else np.ones(X.shape[1], bool)
    parts, maps = [Z[:, hand]], []
    for b in blocks if components else []:
        pca = PCA(min(components, len(X) - 1, int(b.sum())), random_state=0).fit(Z[:, b])
        unit = np.sqrt(pca.explained_variance_[0])
        parts.append(pca.transform(Z[:, b]) / unit)
        maps.append((b, pca, unit))
    ridge = Ridge(alpha=alpha).fit(np.concatenate(parts, 1), Y, sample_weight=weight)
    B = np.atleast_2d(ridge.coef_).T  # (features, K)
    coef_z = np.zeros((X.shape[1], B.shape[1]))
    coef_z[hand] = B[: int(hand.sum())]
    intercept = np.atleast_1d(ridge.intercept_).astype(float)
    at = int(hand.sum())
    for b, pca, unit in maps:
        w = B[at: at + pca.n_components_] / unit
        at += pca.n_components_
        coef_z[b] = pca.components_.T @ w
        intercept = intercept - pca.mean_ @ pca.components_.T @ w
    coef = coef_z / scale[:, None]
    return coef, intercept - mean @ coef


def speaker_folds(speakers: np.ndarray, folds: int = FOLDS, seed: int = 0) -> np.ndarray:
    """Fold (0..folds-1) of every row, all rows of a speaker in one fold (speakers shuffled by seed)."""
    names = np.unique(speakers)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(names))
    fold_of = {names[i]: k % folds for k, i in enumerate(order)}
    return np.array([fold_of[s] for s in speakers])


@dataclass(frozen=True)
class Settings:
    """The heads' settings: principal components of the encoder states and ridge strength, for the
    readings' heads and the words' head; ``native_weight``: LibriSpeech's readings' total weight
    relative to speechocean762's."""

    components: int = 64
    alpha: float = 10.0
    word_components: int = 32
    word_alpha: float = 10.0
    native_weight: float = 0.1


def _weights(native: np.ndarray, native_weight: float) -> np.ndarray:
    """Row weights: LibriSpeech's rows together weigh ``native_weight`` times speechocean762's."""
    w = np.ones(len(native))
    if native.any() and native_weight > 0:
        w[native] = native_weight * (~native).sum() / native.sum()
    return w


def trained_on(t: Table, rows: np.ndarray, s: Settings) -> np.ndarray:
    """The readings of ``rows`` a fit learns from: speechocean762's, and LibriSpeech's natives unless
    their weight is 0 (the archive never)."""
    return rows & (t.where("speechocean762") | (t.where("librispeech") & (s.native_weight > 0)))


def fit_utterance(t: Table, rows: np.ndarray, s: Settings) -> dict[str, tuple[np.ndarray, float]]:
    """The four reading heads, fitted on the readings ``rows`` (one PCA, one multi-target ridge)."""
    from ..pronunciation import ASPECTS

    train = trained_on(t, rows, s)
    Y = np.stack([t.target(a)[train] for a in ASPECTS], 1)
    coef, intercept = fit_linear(t.X[train], Y, state_blocks(t.names), components=s.components, alpha=s.alpha,
                                 weight=_weights(t.where("librispeech")[train], s.native_weight))
    return {a: (coef[:, k], float(intercept[k])) for k, a in enumerate(ASPECTS)}


def fit_word(t: Table, rows: np.ndarray, s: Settings) -> tuple[np.ndarray, float]:
    """The word accuracy head, fitted on the scored words of the readings ``rows``."""
    train = trained_on(t, rows, s)[t.word_item] & ~np.isnan(t.word_score)
    native = t.where("librispeech")[t.word_item][train]
    coef, intercept = fit_linear(t.W[train], t.word_score[train][:, None], state_blocks(t.word_names),
                                 components=s.word_components, alpha=s.word_alpha, weight=_weights(native, s.native_weight))
    return coef[:, 0], float(intercept[0])


def fit_heads(t: Table, rows: np.ndarray, s: Settings) -> PronunciationHead:
    """The reading heads and the word head fitted on the readings ``rows`` (boolean mask)."""
    from ..pronunciation import PronunciationHead

    return PronunciationHead(fit_utterance(t, rows, s), fit_word(t, rows, s), t.names, t.word_names)


def cross_validate(t: Table, s: Settings | None, folds: int = FOLDS, seed: int = 0, words: bool = True,
                   utterances: bool = True) -> tuple[dict[str, np.ndarray], np.ndarray, list[Settings]]:
    """Speaker-disjoint out-of-fold predictions (0-10, clipped) of every reading and of every word
    row, and each fold's settings. ``s`` None: nested, each fold choosing its settings by ``select``
    on its own training speakers, so that no figure was tuned on the speakers it scores. The archive
    is never trained on: it is predicted by every fold's heads, averaged."""
    from ..pronunciation import ASPECTS

    fold = speaker_folds(t.speakers, folds, seed)
    saa = t.where("saa")
    utt = {a: np.zeros(len(t.items)) for a in ASPECTS}
    out_words = np.full(len(t.W), np.nan)
    chosen = []
    for k in range(folds):
        test, train = (fold == k) & ~saa, (fold != k) & ~saa
        chosen.append(s or select(t, train))
        if utterances:
            for a, (c, b) in fit_utterance(t, train, chosen[-1]).items():
                utt[a][test] = np.clip(t.X[test] @ c + b, 0, 10)
                utt[a][saa] += np.clip(t.X[saa] @ c + b, 0, 10) / folds
        if words:
            c, b = fit_word(t, train, chosen[-1])
            wr = test[t.word_item]
            out_words[wr] = np.clip(t.W[wr] @ c + b, 0, 10)
    return utt, out_words, chosen


GRID = [Settings(components=c, alpha=a) for c in (64, 128, 256) for a in (10.0, 30.0, 100.0, 300.0)]
WORD_GRID = [(c, a) for c in (32, 64, 128) for a in (0.1, 1.0, 10.0)]


def _r(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1]) if len(a) > 2 and np.std(a) > 0 and np.std(b) > 0 else 0.0


def select(t: Table, rows: np.ndarray, grid: list[Settings] = GRID, folds: int = 4) -> Settings:
    """The settings with the best mean out-of-fold Pearson r (speechocean762 readings of ``rows``,
    speaker-disjoint inner folds; the four aspects, then the word head's own settings)."""
    sub = _subset(t, rows)
    so = sub.where("speechocean762")
    words = so[sub.word_item] & ~np.isnan(sub.word_score)
    best, best_r = grid[0], -np.inf
    for s in grid:
        utt, _, _ = cross_validate(sub, s, folds, words=False)
        r = np.mean([_r(utt[a][so], sub.target(a)[so]) for a in utt])
        if r > best_r:
            best, best_r = s, r
    word_best, word_r = (best.word_components, best.word_alpha), -np.inf
    for c, a in WORD_GRID:
        _, pw, _ = cross_validate(sub, replace(best, word_components=c, word_alpha=a), folds, utterances=False)
        r = _r(pw[words], sub.word_score[words])
        if r > word_r:
            word_best, word_r = (c, a), r
    return replace(best, word_components=word_best[0], word_alpha=word_best[1])


def _subset(t: Table, rows: np.ndarray) -> Table:
    keep = np.flatnonzero(rows)
    new_index = {int(k): i for i, k in enumerate(keep)}
    wr = rows[t.word_item]
    return Table([t.items[k] for k in keep], t.names, t.X[keep], t.word_names, t.W[wr],
                 np.array([new_index[int(k)] for k in t.word_item[wr]], int), t.word_score[wr])


CHILD_AGE = 12  # speechocean762 speakers up to this age count as children in the report


def figures(t: Table, utt: dict[str, np.ndarray], words: np.ndarray, n_boot: int = 1000) -> dict[str, Any]:
    """The report's figures from out-of-fold predictions: Pearson r per aspect (readings, and speaker
    means) and for words, with speaker-bootstrap 95% intervals; children and adults; the archive's
    natives against its non-natives by total, and total against the age English was learned."""
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    from ..evaluation.metrics import pearson_ci

    so = t.where("speechocean762")
    spk = t.speakers
    out: dict[str, Any] = {"readings": int(so.sum()), "speakers": len(set(spk[so])), "child_age": CHILD_AGE, "aspects": {}}
    for a, p in utt.items():
        y = t.target(a)
        names = sorted(set(spk[so]))
        sy = np.array([y[so & (spk == n)].mean() for n in names])
        sp = np.array([p[so & (spk == n)].mean() for n in names])
        ages = np.array([t.items[i].age or 0 for i in range(len(t.items))])
        yc, pc = y.copy(), p.copy()  # each speaker's readings about the speaker's mean: does the score move with them?
        for n in names:
            m = so & (spk == n)
            yc[m] -= y[m].mean()
            pc[m] -= p[m].mean()
        out["aspects"][a] = {
            "utterance": pearson_ci(y[so], p[so], spk[so], n_boot),
            "speaker": pearson_ci(sy, sp, np.array(names), n_boot),
            "within_speaker": pearson_ci(yc[so], pc[so], spk[so], n_boot),
            "children": _r(p[so & (ages <= CHILD_AGE)], y[so & (ages <= CHILD_AGE)]),
            "adults": _r(p[so & (ages > CHILD_AGE)], y[so & (ages > CHILD_AGE)]),
        }
    wm = so[t.word_item] & ~np.isnan(t.word_score) & ~np.isnan(words)
    out["words"] = {"n": int(wm.sum()), "r": pearson_ci(t.word_score[wm], words[wm], spk[t.word_item][wm], n_boot)}
    libri = t.where("librispeech")
    out["librispeech_total"] = {"n": int(libri.sum()), "median": float(np.median(utt["total"][libri]) * 10) if libri.any() else None}
    saa = t.where("saa")
    native = np.array([r.native for r in t.items])[saa]
    if 0 < native.sum() < len(native):  # both of the archive's groups measured
        total = utt["total"][saa]
        rng = np.random.default_rng(0)
        boots = [roc_auc_score(native[b], total[b]) for b in (rng.integers(0, len(total), len(total)) for _ in range(n_boot))
                 if 0 < native[b].sum() < len(b)]
        onset = np.array([r.age_onset if r.age_onset is not None else np.nan for r in t.items])[saa]
        keep = ~native & ~np.isnan(onset)
        rho = spearmanr(total[keep], onset[keep])
        out["archive"] = {"natives": int(native.sum()), "non_natives": int((~native).sum()),
                          "roc_auc_total": (float(roc_auc_score(native, total)), *map(float, np.percentile(boots, [2.5, 97.5]))),
                          "native_median": float(np.median(total[native]) * 10), "non_native_median": float(np.median(total[~native]) * 10),
                          "spearman_age_onset": (float(rho.statistic), float(rho.pvalue)), "age_onset_n": int(keep.sum())}
    return out


def librispeech_out(t: Table, s: Settings) -> dict[str, Any]:
    """Leave-corpus-out for the natives: heads fitted on speechocean762 alone (``s`` without the
    LibriSpeech anchors), scoring LibriSpeech's natives and the archive: the figures for natives of a
    corpus the heads never saw."""
    heads = fit_utterance(t, t.where("speechocean762"), replace(s, native_weight=0.0))
    c, b = heads["total"]
    out: dict[str, Any] = {}
    for corpus in ("librispeech", "saa"):
        rows = t.where(corpus) & np.array([r.native for r in t.items])
        if rows.any():
            total = np.clip(t.X[rows] @ c + b, 0, 10) * 10
            out[corpus] = {"natives": int(rows.sum()), "median_total": float(np.median(total)),
                           "share_80_or_more": float(np.mean(total >= 80))}
    return out


def main(argv: list[str]) -> None:
    import argparse
    import json

    ap = argparse.ArgumentParser(prog="python -m accent_rater.training.pronunciation")
    ap.add_argument("job", choices=["measure", "fit"])
    ap.add_argument("--bundle", default="src/accent_rater/assets/model", help="write the heads into this bundle ('' = none)")
    ap.add_argument("--out", default="reports/pronunciation", help="the report folder")
    ap.add_argument("--quick", action="store_true", help="fixed settings, no nested selection (tests)")
    args = ap.parse_args(argv)
    t0 = time.time()
    if args.job == "measure":
        errors = measure_all(readings())
        for k, v in errors.items():
            print(f"unusable {k}: {v}")
        print(f"measured in {time.time() - t0:.0f} s; {len(errors)} unusable")
        return
    from ..evaluation.pronunciation_report import card_section, write_report
    from .export import add_pronunciation

    t = load_table(readings())
    utt, words, chosen = cross_validate(t, Settings() if args.quick else None)
    summary = figures(t, utt, words)
    final = Settings() if args.quick else select(t, ~t.where("saa"))
    summary["settings"] = {"folds": [vars(c) for c in chosen], "final": vars(final)}
    summary["librispeech_out"] = librispeech_out(t, final)
    write_report(Path(args.out), t, utt, words, summary)
    print(json.dumps(summary["aspects"], indent=1), f"in {time.time() - t0:.0f} s")
    if args.bundle:
        head = fit_heads(t, ~t.where("saa"), final)
        add_pronunciation(Path(args.bundle), head, {a: v["utterance"][0] for a, v in summary["aspects"].items()},
                          card_section(summary))


if __name__ == "__main__":
    main(sys.argv[1:])
