"""Pronunciation scores: the features' parts on synthetic signals, the heads' folding and bundle
round trip, and the bundled heads on real readings (native above accented, another text low on
accuracy, single words, short speech without the accent fields) through every surface."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from accent_rater import audio
from accent_rater.pronunciation import (
    ASPECTS,
    SCALE,
    Measures,
    NoPronunciationError,
    PronunciationHead,
    pitch_contour,
    prosody_features,
    reading_features,
    syllables,
)
from accent_rater.words import Forced, Heard, TextError, natural_case, written_windows

from conftest import FIXTURES, write_wav

SR = audio.SAMPLE_RATE


def _tone(f0: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))).astype(np.float32)


@pytest.mark.parametrize("f0", [110.0, 220.0, 330.0])
def test_pitch_of_a_harmonic_tone_is_its_fundamental(f0: float) -> None:
    pitch = pitch_contour(_tone(f0))
    voiced = pitch[pitch > 0]
    assert len(voiced) > 0.9 * len(pitch)
    assert abs(np.median(voiced) - f0) < 0.03 * f0


def test_white_noise_is_mostly_unvoiced_and_a_gliding_tone_moves_in_pitch() -> None:
    noise = np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32)
    assert np.mean(pitch_contour(noise) > 0) < 0.2
    t = np.arange(SR) / SR
    glide = (0.3 * np.sin(2 * np.pi * (150 * t + 75 * t**2))).astype(np.float32)  # 150 -> 300 Hz: one octave
    steady = prosody_features(pitch_contour(_tone(200.0)), np.zeros(10))
    moving = prosody_features(pitch_contour(glide), np.zeros(10))
    assert moving["pitch_range"] > 6.0 > steady["pitch_range"] + 5.0


@pytest.mark.parametrize("word, n", [("cheese", 1), ("snake", 1), ("Stella.", 2), ("plastic", 2), ("beautiful", 3),
                                     ("21", 3), ("I", 1)])
def test_syllables_from_spelling(word: str, n: int) -> None:
    assert syllables(word) == n


def test_capitals_throughout_are_read_in_natural_case_other_texts_as_written() -> None:
    assert natural_case(["WE", "CALL", "IT", "BEAR.", "I'M", "HERE"]) == ["We", "call", "it", "bear.", "I'm", "here"]
    assert natural_case(["Call", "NASA", "now"]) == ["Call", "NASA", "now"]


def test_a_word_not_heard_is_forced_in_the_window_of_the_word_before_it() -> None:
    heard = [Heard("one", 0.0, 0.5, 0.9), Heard("two", 0.6, 1.0, 0.9), Heard("four", 31.0, 31.5, 0.9)]
    assert written_windows(["one", "two", "three", "four"], heard, [0, 0, 1], 2) == [0, 0, 0, 1]
    assert written_windows(["zero", "one"], heard[:1], [1], 2) == [1, 1]  # before the first heard word: the next one's


def _measures(n_words: int = 3, lp: float = -0.5) -> Measures:
    rng = np.random.default_rng(n_words)
    written = ["please", "call", "Stella."][:n_words]
    forced = [Forced(w, 0.5 * i, 0.5 * i + 0.4, lp, lp - 0.2, 1) for i, w in enumerate(written)]
    heard = [Heard(w, f.start, f.end, 0.9) for w, f in zip(written, forced)]
    return Measures(written, heard, forced, rng.normal(size=512).astype(np.float32), np.ones(512, np.float32),
                    rng.normal(size=(n_words, 512)).astype(np.float32), np.array([[0.0, 1.6]]), 1.4,
                    pitch_contour(_tone(180.0, 1.4)), np.full(130, -20.0), rng.normal(size=16).astype(np.float32))


def test_features_have_fixed_names_and_follow_the_teacher_forced_probabilities() -> None:
    names, x, word_names, w, first = reading_features(_measures())
    assert len(names) == len(x) == len(set(names)) and np.isfinite(x).all()
    worse = reading_features(_measures(lp=-4.0)).values
    k = names.index("lp_mean")
    assert x[k] == pytest.approx(-0.5) and worse[k] == pytest.approx(-4.0)
    assert w.shape == (3, len(word_names)) and first == 0


def test_the_folded_linear_head_predicts_what_the_pipeline_does() -> None:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import Ridge

    from accent_rater.training.pronunciation import fit_linear

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 30)) * rng.uniform(0.1, 5, 30)
    states = np.arange(30) >= 10
    Y = np.stack([X[:, 0] - X[:, 15], X[:, 3] + 0.1 * rng.normal(size=200)], 1)
    coef, intercept = fit_linear(X, Y, [states], components=8, alpha=3.0)
    Z = (X - X.mean(0)) / X.std(0)
    pca = PCA(8, random_state=0).fit(Z[:, states])
    F = np.concatenate([Z[:, ~states], pca.transform(Z[:, states]) / np.sqrt(pca.explained_variance_[0])], 1)
    expected = Ridge(alpha=3.0).fit(F, Y).predict(F)
    assert np.allclose(X @ coef + intercept, expected, atol=1e-8)


def test_heads_round_trip_through_a_bundle_and_a_mismatch_is_refused(tmp_path: Path) -> None:
    from accent_rater.training.export import add_pronunciation

    names, x, word_names, _, _ = reading_features(_measures())
    rng = np.random.default_rng(1)
    head = PronunciationHead({a: (rng.normal(size=len(names)) * 1e-3, 7.0) for a in ASPECTS},
                             (np.zeros(len(word_names)), 9.0), names, word_names)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "model.json").write_text(json.dumps({"files": {}}))
    add_pronunciation(bundle, head, {"total": 0.5})
    meta = json.loads((bundle / "model.json").read_text())
    assert meta["pronunciation"]["cv"] == {"total": 0.5} and "pronunciation.safetensors" in meta["files"]
    loaded = PronunciationHead.load(bundle, meta["pronunciation"])
    scores, words = loaded.score(_measures())
    assert scores.total == pytest.approx(round(float(np.clip(x @ head.utterance["total"][0] + 7.0, 0, 10)) * SCALE, 1))
    assert words == [90.0, 90.0, 90.0]
    with pytest.raises(ValueError, match="feature count"):
        PronunciationHead.load(bundle, {**meta["pronunciation"], "features": len(names) + 1})


# --- the bundled heads on real readings ----------------------------------------------------------------
@pytest.fixture(scope="module")
def rater(words_weights):
    from accent_rater.rater import Rater

    return Rater()


def _so762(shared_data: Path, utt_id: str) -> tuple[Path, str]:
    with open(shared_data / "speechocean762" / "utterances.csv", newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["utt_id"] == utt_id)
    return shared_data / "speechocean762" / row["path"], row["text"]


def test_a_native_reading_scores_above_a_strongly_accented_one(rater) -> None:
    native = rater.rate(FIXTURES / "native_us_english5.flac", pronunciation=True)
    accented = rater.rate(FIXTURES / "nonnative_spanish6.flac", pronunciation=True)
    assert native.parts == accented.parts == ["accent", "words", "pronunciation"]
    assert native.pronunciation.total > accented.pronunciation.total + 5  # 8 kHz archive readings: about 89 vs 80
    assert native.pronunciation.accuracy > accented.pronunciation.accuracy
    read = [w for w in native.words if w.status not in ("extra", "missed")]  # a 7 s clip: part of the passage
    assert read and all(w.accuracy is not None and 0 <= w.accuracy <= 100 for w in read)
    assert all(w.accuracy is None for w in native.words if w.status == "missed")


def test_a_reading_scored_against_another_text_is_low_on_accuracy(rater) -> None:
    right = rater.rate(FIXTURES / "native_uk_english2.flac", pronunciation=True)
    other = "The north wind and the sun were disputing which was the stronger, when a traveller came along wrapped in a warm cloak."
    wrong = rater.rate(FIXTURES / "native_uk_english2.flac", pronunciation=True, text=other)
    assert wrong.pronunciation.accuracy < right.pronunciation.accuracy - 20
    assert any("was this text read" in w for w in wrong.warnings)


def test_a_single_word_gets_scores_without_the_accent_fields(rater, shared_data: Path) -> None:
    path, text = _so762(shared_data, "000010173")  # "TREES", 2 s
    result = rater.rate(path, pronunciation=True, text=text)
    assert result.parts == ["words", "pronunciation"]
    assert result.p_native is None and result.label is None and result.score is None and result.segments == []
    assert any("pronunciation scores only" in w for w in result.warnings)
    assert [w.word for w in result.words] == ["TREES"] and result.words[0].accuracy is not None
    d = result.to_dict()
    assert d["p_native"] is None and set(d["pronunciation"]) == set(ASPECTS)
    with pytest.raises(audio.TooLittleSpeechError):  # without pronunciation scores it is still refused
        rater.rate(path)


def test_free_speech_is_scored_on_what_was_heard(rater) -> None:
    result = rater.rate(FIXTURES / "native_uk_english2.flac", pronunciation=True, text="")
    assert result.words == [] and result.transcript and result.pronunciation is not None


@pytest.mark.parametrize("text", ["你好，世界", "x" * 6000, " ".join(["word"] * 5000)])
def test_an_unusable_text_is_refused_before_any_audio_work(rater, text: str) -> None:
    with pytest.raises(TextError):
        rater.rate(b"not audio at all", pronunciation=True, text=text)


def test_noise_is_an_audio_error_not_a_score(rater, tmp_path: Path) -> None:


    samples = np.random.default_rng(0).normal(0, 0.05 * 32767, 3 * SR).astype(np.int16)
    noise = write_wav(tmp_path / "noise.wav", samples, SR)
    with pytest.raises(audio.AudioError):
        rater.rate(noise, pronunciation=True)


def test_a_bundle_without_heads_says_so(words_weights) -> None:
    from accent_rater.rater import Rater

    with pytest.raises(NoPronunciationError):
        Rater("fast").rate(FIXTURES / "native_us_english5.flac", pronunciation=True)


def test_cli_table_and_json_show_the_scores(words_weights, shared_data: Path) -> None:
    from typer.testing import CliRunner

    from accent_rater.cli import app

    path, text = _so762(shared_data, "000010168")
    run = CliRunner().invoke(app, ["rate", "--pronunciation", "--json", "--text", text, str(path)])
    assert run.exit_code == 0, run.output
    row = json.loads(run.stdout.strip().splitlines()[-1])
    assert row["parts"] == ["words", "pronunciation"] and row["p_native"] is None
    table = CliRunner().invoke(app, ["rate", "--pronunciation", str(FIXTURES / "native_us_english5.flac")])
    assert table.exit_code == 0 and "accuracy" in table.stdout and "prosody" in table.stdout
    assert "not a test score" in table.stdout


def test_batch_manifest_text_column_gives_each_row_its_text(words_weights, shared_data: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from accent_rater.cli import app

    path, text = _so762(shared_data, "000010011")
    manifest = tmp_path / "m.csv"
    shutil.copy(path, tmp_path / "a.opus")
    manifest.write_text(f"path,text\na.opus,{text}\na.opus,{'x' * 6000}\n")
    run = CliRunner().invoke(app, ["batch", str(manifest), "--out", str(tmp_path / "r.parquet"), "--pronunciation",
                                   "--workers", "1"])
    assert run.exit_code == 0, run.output
    rows = pq.read_table(tmp_path / "r.parquet").to_pylist()
    assert [w["word"] for w in rows[0]["words"]] == text.split() and rows[0]["pronunciation"]["total"] is not None
    assert rows[0]["text"] == text
    assert rows[1]["error_code"] == "bad_text"


def test_api_scores_and_leaves_out_the_accent_fields_of_short_speech(words_weights, shared_data: Path) -> None:
    from fastapi.testclient import TestClient

    from accent_rater.serve.api import create_app

    path, text = _so762(shared_data, "000010168")
    with TestClient(create_app()) as client:
        r = client.post("/v1/rate", params={"pronunciation": "true", "text": text}, files={"file": ("bye.opus", path.read_bytes())})
        assert r.status_code == 200, r.text
        body = r.json()
        assert "p_native" not in body and set(body["pronunciation"]) == set(ASPECTS)
        assert body["parts"] == ["words", "pronunciation"]
        r = client.post("/v1/rate", data={"pronunciation": "true"},
                        files={"file": ("a.flac", (FIXTURES / "native_us_english5.flac").read_bytes())})
        assert r.status_code == 200 and r.json()["pronunciation"]["total"] > 50
        bad = client.post("/v1/rate", params={"pronunciation": "true", "text": "你好"}, files={"file": ("b.opus", path.read_bytes())})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "bad_text"


def test_training_measures_fits_and_bundles_heads_on_a_handful_of_readings(words_weights, shared_data: Path,
                                                                            tmp_path: Path) -> None:
    """The audiocraft habit: the real pipeline (measure, cross-validate, fit, bundle, rate) on a few readings."""
    from accent_rater.rater import Rater
    from accent_rater.training import pronunciation as tp
    from accent_rater.training.export import add_pronunciation

    everything = tp.readings(shared_data, saa_per_label=1)
    so = [r for r in everything if r.corpus == "speechocean762"]
    per_speaker: dict[str, list] = {}
    for r in so:
        if len(per_speaker) < 4 or r.speaker in per_speaker:
            per_speaker.setdefault(r.speaker, [])
            if len(per_speaker[r.speaker]) < 2:
                per_speaker[r.speaker].append(r)
    items = [r for rs in per_speaker.values() for r in rs]  # 4 learners, 2 readings each
    items += [r for r in everything if r.corpus == "librispeech"][:2] + [r for r in everything if r.corpus == "saa"]
    cache = tmp_path / "cache"
    assert tp.measure_all(items, cache) == {}
    t = tp.load_table(items, cache, shared_data)
    assert len(t.items) == len(items) and t.X.shape[1] == len(t.names) and len(t.W) == len(t.word_item)
    small = tp.Settings(components=2, word_components=2)
    utt, _, chosen = tp.cross_validate(t, small, folds=2)
    assert chosen == [small, small]
    assert all(np.isfinite(v).all() and (0 <= v).all() and (v <= 10).all() for v in utt.values())
    bundle = tmp_path / "bundle"
    shutil.copytree(Path(Rater().model_dir), bundle)
    add_pronunciation(bundle, tp.fit_heads(t, ~t.where("saa"), small), {})
    result = Rater(bundle).rate(FIXTURES / "native_us_english5.flac", pronunciation=True)
    assert all(0 <= v <= 100 for v in result.pronunciation)


def test_web_app_shows_the_four_scores_colours_words_by_accuracy_and_says_when_the_accent_is_not_rated() -> None:
    from dataclasses import replace

    from accent_rater.pronunciation import Pronunciation
    from accent_rater.serve import ui
    from accent_rater.words import Reading, Word, practise

    from conftest import make_result

    words = [Word("Please", 0.1, 0.4, "ok", 0.9, "Please", 92.0), Word("call", 0.5, 0.8, "ok", 0.8, "call", 30.0),
             Word("Stella.", 0.9, 1.2, "unclear", 0.2, "Stella", 60.0), Word("Ask", None, None, "missed", None, "", None)]
    result = make_result(0.8, pronunciation=Pronunciation(70.0, 80.0, 75.0, 72.0), words=words,
                         reading=Reading(4, 2, 1, 0, 1, 0, 0.5, 100.0), parts=["accent", "words", "pronunciation"])
    md = ui.format_result(result)
    assert "Accuracy: 70 / 100" in md and "Prosody: 75 / 100" in md and "not a test score" in md and "Decision" in md
    page = ui.words_html(result)
    assert 'class="w ok acc-hi"' in page and 'class="w ok acc-lo"' in page and 'class="w unclear acc-mid"' in page
    assert 'class="w missed"' in page and "accuracy 80+" in page
    assert [w.word for w in practise(words)] == ["Stella.", "call"]  # unclear, then low accuracy ("Ask": not read)
    short = replace(result, p_native=None, label=None, score=None, band=None, borderline=None, segments=[],
                    parts=["words", "pronunciation"])
    md = ui.format_result(short)
    assert "not rated" in md and "Decision" not in md and "Accuracy: 70 / 100" in md
    assert ui.headline(short)["label"] == "not rated" and ui.timeline_frame(short).empty


def test_a_long_text_over_a_short_reading_is_scored_on_the_stretch_read(rater) -> None:
    """A 4,200-character text (828 words) over a 7 s excerpt: more tokens than Whisper's decoder holds,
    so the stretch read is forced; the scores are close to those against the passage it is from."""
    from accent_rater.words import PASSAGE

    long_text = " ".join([PASSAGE] * 12)[:4990]
    clip = FIXTURES / "native_us_english5.flac"
    long, passage = rater.rate(clip, pronunciation=True, text=long_text), rater.rate(clip, pronunciation=True)
    assert abs(long.pronunciation.total - passage.pronunciation.total) < 5
    assert sum(w.accuracy is not None for w in long.words) == sum(w.accuracy is not None for w in passage.words)
