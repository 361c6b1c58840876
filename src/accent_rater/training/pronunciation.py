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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

DATA = Path("../shared/data")
CACHE = Path("cache/pronunciation")
SAA_PER_LABEL = 100  # archive speakers per label measured for the validity check


@dataclass(frozen=True)
class Reading:
    """One recording to measure: where it is, who read it, what text, and the experts' scores."""

    corpus: str
    key: str
    speaker: str
    path: Path
    text: Optional[str]  # None: the archive passage; "": free speech (the heard words are scored)
    native: bool
    scores: dict[str, float] = field(default_factory=dict)  # speechocean762: accuracy, fluency, prosodic, total
    age_onset: Optional[float] = None


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
                           {k: float(r[k]) for k in ("accuracy", "fluency", "prosodic", "total")}))
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
    from ..words import PASSAGE, Transcriber, text_words

    listen = Transcriber(threads)
    errors: dict[str, str] = {}
    todo = [r for r in items if not cache_path(r, cache).exists()]
    for r in tqdm(todo, desc="measuring", unit="reading", mininterval=10):
        text = PASSAGE if r.text is None else r.text
        try:
            speech = audio.prepare(r.path, wide=True, min_speech_seconds=MIN_SPEECH_SECONDS)
            listening = listen.listen(speech, text)
            written = text_words(text) if text else [f.word for f in listening.forced]
            m = measure(speech, listening, written)
        except Exception as exc:  # noqa: BLE001 - a corpus's unusable recording is reported, not fatal
            errors[f"{r.corpus}/{r.key}"] = f"{type(exc).__name__}: {exc}"
            continue
        path = cache_path(r, cache)
        path.parent.mkdir(parents=True, exist_ok=True)
        m.save(path)
    return errors


def main(argv: list[str]) -> None:
    if argv[:1] == ["measure"]:
        t0 = time.time()
        errors = measure_all(readings())
        for k, v in errors.items():
            print(f"unusable {k}: {v}")
        print(f"measured in {time.time() - t0:.0f} s; {len(errors)} unusable")
    else:
        raise SystemExit("usage: python -m accent_rater.training.pronunciation measure|fit")


if __name__ == "__main__":
    main(sys.argv[1:])


# --- fitting ------------------------------------------------------------------------------------------
import numpy as np  # noqa: E402

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


def load_table(items: list[Reading], cache: Path = CACHE, root: Path = DATA) -> Table:
    """The feature table of every measured reading of ``items`` (the unmeasured are left out)."""
    from ..pronunciation import Measures, utterance_features, word_features

    experts = word_scores(root)
    kept, rows, wrows, witem, wscore = [], [], [], [], []
    names: list[str] = []
    wnames: list[str] = []
    for r in items:
        path = cache_path(r, cache)
        if not path.exists():
            continue
        m = Measures.load(path)
        names, x = utterance_features(m)
        wnames, w = word_features(m)
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


def is_state(names: list[str]) -> np.ndarray:
    return np.array([n.startswith("state") for n in names])


def fit_linear(X: np.ndarray, y: np.ndarray, states: np.ndarray, *, components: int, alpha: float,
               weight: Optional[np.ndarray] = None) -> tuple[np.ndarray, float]:
    """Standardise every column, reduce the encoder-state columns to ``components`` principal
    components, ridge-regress ``y`` on both; returned folded into one linear map on the raw columns
    (coefficients, intercept), the form a bundle stores."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import Ridge

    mean, scale = X.mean(0), X.std(0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    Z = (X - mean) / scale
    parts = [Z[:, ~states]]
    pca = None
    if components and states.any():
        pca = PCA(components, random_state=0).fit(Z[:, states])
        parts.append(pca.transform(Z[:, states]) / np.sqrt(pca.explained_variance_[None, :]))
    ridge = Ridge(alpha=alpha).fit(np.concatenate(parts, 1), y, sample_weight=weight)
    n_hand = int((~states).sum())
    coef_z = np.zeros(X.shape[1])
    coef_z[~states] = ridge.coef_[:n_hand]
    intercept = float(ridge.intercept_)
    if pca is not None:
        w = ridge.coef_[n_hand:] / np.sqrt(pca.explained_variance_)
        coef_z[states] = pca.components_.T @ w
        intercept -= float(pca.mean_ @ pca.components_.T @ w)
    coef = coef_z / scale
    return coef, intercept - float(mean @ coef)


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


def _weights(t: Table, rows: np.ndarray, native_weight: float) -> np.ndarray:
    libri = t.where("librispeech")[rows]
    w = np.ones(int(rows.sum()))
    if libri.any() and native_weight > 0:
        w[libri] = native_weight * (~libri).sum() / libri.sum()
    return w


def fit_heads(t: Table, rows: np.ndarray, s: Settings) -> "PronunciationHead":
    """The four reading heads and the word head fitted on the readings ``rows`` (boolean mask)."""
    from ..pronunciation import ASPECTS, PronunciationHead

    states = is_state(t.names)
    train = rows & (t.where("speechocean762") | (t.where("librispeech") & (s.native_weight > 0)))
    w = _weights(t, train, s.native_weight)
    heads = {a: fit_linear(t.X[train], t.target(a)[train], states, components=s.components, alpha=s.alpha, weight=w)
             for a in ASPECTS}
    wrows = train[t.word_item] & ~np.isnan(t.word_score)
    libri_w = t.where("librispeech")[t.word_item][wrows]
    ww = np.ones(int(wrows.sum()))
    if libri_w.any() and s.native_weight > 0:
        ww[libri_w] = s.native_weight * (~libri_w).sum() / libri_w.sum()
    word = fit_linear(t.W[wrows], t.word_score[wrows], is_state(t.word_names), components=s.word_components,
                      alpha=s.word_alpha, weight=ww)
    return PronunciationHead(heads, word, t.names, t.word_names)


def predict(head: "PronunciationHead", t: Table, rows: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Out-of-sample predictions (0-10, clipped) of ``rows``: per aspect, and for their word rows."""
    from ..pronunciation import ASPECTS

    utt = {a: np.clip(t.X[rows] @ head.utterance[a][0] + head.utterance[a][1], 0, 10) for a in ASPECTS}
    wr = rows[t.word_item]
    return utt, np.clip(t.W[wr] @ head.word[0] + head.word[1], 0, 10)


def cross_validate(t: Table, s: Settings, folds: int = FOLDS, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Speaker-disjoint out-of-fold predictions of every reading (NaN for the archive: never
    trained on, predicted by every fold's heads averaged) and of every word row."""
    from ..pronunciation import ASPECTS

    fold = speaker_folds(t.speakers, folds, seed)
    saa = t.where("saa")
    utt = {a: np.full(len(t.items), np.nan) for a in ASPECTS}
    archive = {a: np.zeros(len(t.items)) for a in ASPECTS}
    words = np.full(len(t.W), np.nan)
    for k in range(folds):
        test = (fold == k) & ~saa
        head = fit_heads(t, (fold != k) & ~saa, s)
        p, pw = predict(head, t, test)
        for a in ASPECTS:
            utt[a][test] = p[a]
        words[test[t.word_item]] = pw
        if saa.any():
            pa, _ = predict(head, t, saa)
            for a in ASPECTS:
                archive[a][saa] += pa[a] / folds
    for a in ASPECTS:
        utt[a][saa] = archive[a][saa]
    return utt, words
