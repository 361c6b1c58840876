"""The multi-corpus recipe (``multicorpus``): weights, the nuisance projection, the scale floor,
and the bundled default on real clips of every corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from accent_rater.training import data
from accent_rater.training.multicorpus import Corpora, Recipe, cell_weights, feature_columns, fit_head, recipe_of, row_weights

D = 3840  # 5 layers x (mean, std) x 384


def synthetic(shift: float = 3.0, seed: int = 0, windows: int = 2) -> Corpora:
    """An archive with both labels (accent on column 0) and a one-label corpus whose recordings
    sit ``shift`` away on column 1 (its channel), 20 speakers per cell, ``windows`` windows each."""
    rng = np.random.default_rng(seed)
    recs, corpus, label, rows, rec_of = [], [], [], [], []
    for c, lab, n_rec in (("saa", 1, 1), ("saa", 0, 1), ("other", 0, 3)):
        for s in range(20):
            for u in range(n_rec):
                i = len(recs)
                recs.append(data.Recording(f"{c}{lab}_{s}", f"/x/{c}{lab}_{s}_{u}.wav", data.NATIVE if lab else data.NON_NATIVE))
                corpus.append(c)
                label.append(lab)
                x = rng.normal(0, 1, (windows, D)).astype(np.float32)
                x[:, 0] += 1.5 if lab else -1.5
                if c == "other":
                    x[:, 1] += shift
                rows.append(x)
                rec_of.append(np.full(windows, i))
    n = windows * len(recs)
    return Corpora(recs, np.array(corpus), np.array(label), np.concatenate(rows), np.concatenate(rec_of),
                   np.array(["clean"] * n), np.zeros(n, int), np.tile(np.arange(windows) >= windows / 2, len(recs)).astype(np.int8),
                   np.tile((np.arange(windows) + 0.5) / windows, len(recs)))


def test_every_cell_and_speaker_weighs_the_same() -> None:
    d = synthetic()
    idx = np.arange(len(d.rows))
    w = row_weights(d, idx, Recipe(corpora=("saa", "other")))
    cell = np.char.add(d.corpus[d.row_rec], d.label[d.row_rec].astype(str))
    totals = {c: w[cell == c].sum() for c in np.unique(cell)}
    # natives (one cell) weigh what the two non-native cells weigh together; those two alike
    assert totals["saa1"] == pytest.approx(totals["saa0"] + totals["other0"])
    assert totals["saa0"] == pytest.approx(totals["other0"])
    assert w.sum() == pytest.approx(60)  # the number of speakers: C means the same whatever the windows
    spk = np.array([d.records[i].speaker_id for i in d.row_rec])
    other = [w[spk == s].sum() for s in np.unique(spk[cell == "other0"])]
    assert np.ptp(other) < 1e-9  # 3 recordings of one speaker weigh what 1 of another does
    cw = cell_weights(d)
    assert cw[d.corpus == "other"].sum() == pytest.approx(cw[(d.corpus == "saa") & (d.label == 0)].sum())


def test_corpus_projection_stops_a_one_label_corpus_being_learned_as_its_label() -> None:
    """Trained on both corpora, the plain head scores the one-label corpus' channel as "non-native";
    with the corpus directions projected out, the channel alone moves (almost) nothing."""
    d = synthetic(windows=40)
    recs = np.arange(len(d.records))
    r = Recipe(corpora=("saa", "other"), C=1.0, augmented=False, short=False, columns="L0-0:mean")
    plain = fit_head(d, recs, r)
    proj = fit_head(d, recs, Recipe(**{**r.__dict__, "corpus_nuisance": 1}))
    probe = np.zeros((1, D), np.float32)
    channel = probe.copy()
    channel[0, 1] = 3.0
    moved_plain = plain.logits(probe)[0] - plain.logits(channel)[0]
    moved_proj = abs(proj.logits(channel)[0] - proj.logits(probe)[0])
    assert moved_plain > 1.0 and moved_proj < 0.25 * moved_plain
    accent = probe.copy()
    accent[0, 0] = 1.5
    assert proj.logits(accent)[0] > proj.logits(probe)[0] + 1.0  # the accent direction survives


def test_scale_floor_keeps_a_near_constant_column_from_dominating() -> None:
    """Whisper's positional part of a window is nearly constant over equal-length windows: a window
    of another length must not get a huge logit from it (what broke leave-text-out)."""
    d = synthetic()
    rng = np.random.default_rng(1)
    d.rows[:, 5] = np.float32(0.01) + rng.normal(0, 1e-5, len(d.rows)).astype(np.float32)
    d.rows[:, 5] += np.where(d.label[d.row_rec] == 1, 1e-5, 0).astype(np.float32)  # faintly label-correlated
    recs = np.arange(len(d.records))
    base = d.rows[:1].copy()
    odd = base.copy()
    odd[0, 5] = 0.5  # a window of another length
    moved = {}
    for floor in (0.0, 0.5):
        head = fit_head(d, recs, Recipe(corpora=("saa",), C=1.0, augmented=False, short=False, scale_floor=floor))
        moved[floor] = abs(head.logits(odd)[0] - head.logits(base)[0])
    assert moved[0.0] > 50 and moved[0.5] < 5


def test_feature_columns_and_recipe_keys() -> None:
    assert len(feature_columns("all")) == D and len(feature_columns("L3-4:std")) == 2 * 384
    assert np.array_equal(feature_columns("L0-0:mean"), np.arange(384))
    assert recipe_of({"family": "whisper", "C": 0.1}, ["saa", "x"]).corpora == ("saa", "x")
    with pytest.raises(ValueError, match="unknown accent-head setting"):
        recipe_of({"family": "whisper", "scale_flor": 0.5}, ["saa"])


def test_the_whisper_family_takes_every_recipe_setting() -> None:
    """A config with corpora trains a ``Recipe`` and bundles it as a ``whisper`` member with the
    same settings (``run_corpora``), so the family takes every Recipe field, defaults equal."""
    import dataclasses

    from accent_rater.models.whisper_heads import WhisperFamily

    recipe = {f.name: getattr(Recipe(), f.name) for f in dataclasses.fields(Recipe)}
    assert set(WhisperFamily.RECIPE) == set(recipe) - {"C"} and set(recipe) <= set(WhisperFamily.parameters())
    fam = WhisperFamily().params
    assert fam["C"] == recipe["C"] and fam["corpora"] is None  # None: every corpus of the config (recipe_of)
    for k in set(WhisperFamily.RECIPE) - {"corpora"}:
        assert fam[k] == (list(recipe[k]) if isinstance(recipe[k], tuple) else recipe[k]), k
    assert WhisperFamily().recipe_settings() == {}
    assert WhisperFamily(corpora=["saa"], scale_floor=0.5).recipe_settings() == {"corpora": ["saa"], "scale_floor": 0.5}


def _rated(rater, corpus: Path, n: int) -> list[float]:
    """p_native of the first ``n`` speakers' first recording that holds enough speech to be rated."""
    from accent_rater.errors import AudioError

    seen, out = set(), []
    for r in data.load_corpus(corpus).recordings:
        if r.speaker_id in seen or len(out) == n:
            continue
        try:
            out.append(rater.rate(r.path).p_native)
            seen.add(r.speaker_id)
        except AudioError:  # under 3 s of speech: the next recording of the speaker
            pass
    return out


def test_default_rates_natives_of_every_corpus_above_learners(shared_data: Path) -> None:
    """Real clips: LibriSpeech readers (natives, other texts) are rated more native than
    speechocean762 learners reading short sentences and archive non-natives; most are rated native."""
    from accent_rater import Rater

    rater = Rater()
    libri = np.array(_rated(rater, shared_data / "librispeech", 6))
    so = np.array(_rated(rater, shared_data / "speechocean762", 6))
    assert len(libri) == len(so) == 6
    assert np.median(libri) > np.median(so) + 0.5
    assert np.mean(libri >= rater.threshold) >= 5 / 6 and np.mean(so < rater.threshold) >= 5 / 6


def test_other_corpora_need_whisper_features(tmp_path: Path) -> None:
    """A mel-feature config that keeps the default's other corpora is refused before any work,
    with the fix in the message (the mel families train on the archive alone)."""
    from accent_rater.training.train import Config, run

    cfg = Config(name="mels", features="mels", out_dir=str(tmp_path / "run"), models=[{"family": "fluency"}])
    with pytest.raises(ValueError, match="corpora = \\[\\]"):
        run(cfg)
    assert not (tmp_path / "run").exists()
