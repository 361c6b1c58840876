"""Loaders, the native rule, speaker groups, speaker-disjoint splits and the EDA report (accent_rater.training.data / .eda)."""

from __future__ import annotations

import csv
import os
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from accent_rater.training import data
from accent_rater.training.data import NATIVE, NON_NATIVE, Recording
from accent_rater.training.splits import assert_disjoint, read_splits, select, speaker_folds, speaker_subset, split_speakers, write_splits


@pytest.fixture(scope="module")
def saa(shared_data: Path) -> data.LoadReport:
    return data.load_saa(shared_data / "saa")


def _pick(saa: data.LoadReport, n_each: int = 3) -> list[Recording]:
    """n_each native and n_each non-native real recordings (shortest first: fast to decode)."""
    out = []
    for label in (NATIVE, NON_NATIVE):
        recs = sorted((r for r in saa.recordings if r.label == label), key=lambda r: (r.duration or 0, r.speaker_id))
        out += recs[:n_each]
    return out


# --- native rule ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("english", NATIVE), ("English", NATIVE), ("american english", NATIVE), ("British", NATIVE),
        ("australian", NATIVE), ("Canadian", NATIVE), ("United States", NATIVE), ("unitedstates", NATIVE),
        ("united_kingdom", NATIVE), ("Australia", NATIVE), ("canada", NATIVE), ("Scotland", NATIVE),
        ("scottish", NATIVE), ("ireland", NATIVE), ("Irish", NATIVE), ("welsh", NATIVE),
        ("New Zealand", NATIVE), ("newzealand", NATIVE), ("new-zealand", NATIVE), ("South African", NATIVE),
        ("southafrican", NATIVE), ("  ENGLISH  ", NATIVE),
        ("spanish", NON_NATIVE), ("mandarin", NON_NATIVE), ("french", NON_NATIVE), ("arabic", NON_NATIVE),
        ("norwegian", NON_NATIVE), ("south korean", NON_NATIVE), ("", NON_NATIVE), (None, NON_NATIVE),
        ("non_english", NON_NATIVE), ("non-english", NON_NATIVE), ("not english", NON_NATIVE),
    ],
)
def test_native_rule(text, expected):
    assert data.native_label(text) == expected


@pytest.mark.parametrize(
    "value, expected",
    [("native", NATIVE), ("NATIVE", NATIVE), ("1", NATIVE), ("english", NATIVE), ("true", NATIVE),
     ("non_native", NON_NATIVE), ("non-native", NON_NATIVE), ("Non Native", NON_NATIVE), ("0", NON_NATIVE),
     ("non_english", NON_NATIVE), ("false", NON_NATIVE), ("", None), ("natve", None), ("spanish", None)],
)
def test_parse_label(value, expected):
    assert data.parse_label(value) == expected


@pytest.mark.parametrize(
    "item_id, speaker",
    [("english12_mp3_64k", "english12"), ("english12_opus_24k", "english12"), ("english12", "english12"),
     ("english12-opus", "english12"), ("english12.mp3", "english12"), ("arabic3_8khz", "arabic3"),
     ("spk_001_mp3", "spk_001"), ("speakerA_mp3_64k", "speakerA")],
)
def test_speaker_key_strips_codec_suffix(item_id, speaker):
    assert data.speaker_key(item_id) == speaker


def test_recording_rejects_unknown_label():
    with pytest.raises(ValueError, match="label"):
        Recording("x1", "/a.wav", "maybe")


# --- loaders ----------------------------------------------------------------------------------------
def test_load_saa_real(saa):
    assert len(saa.recordings) == 875
    assert sum(r.label == NATIVE for r in saa.recordings) == 435
    assert saa.skipped == []
    assert len(saa.speakers) == 875
    r = saa.recordings[0]
    assert os.path.isabs(r.path) and Path(r.path).is_file()
    assert r.native_language and r.country and r.sex and r.age is not None and r.duration and r.duration > 10
    assert all(r.label == (NATIVE if r.native_language == "english" else NON_NATIVE) for r in saa.recordings)


def test_load_saa_reports_missing_file_and_label(saa, tmp_path):
    picks = _pick(saa, 2)
    (tmp_path / "audio").mkdir()
    rows = []
    for r in picks:
        shutil.copy(r.path, tmp_path / "audio" / Path(r.path).name)
        rows.append([r.speaker_id, f"audio/{Path(r.path).name}", r.label, r.native_language, r.country, "", r.sex,
                     r.age, "", r.duration, 8000])
    rows.append(["ghost1", "audio/ghost1.opus", "native", "english", "usa", "", "male", 30, "", 20.0, 8000])
    rows.append(["nolabel1", f"audio/{Path(picks[0].path).name}", "", "english", "usa", "", "male", 30, "", 20.0, 8000])
    with open(tmp_path / "speakers.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["speaker_id", "path", "label", "native_language", "country", "birthplace", "sex", "age",
                    "age_onset", "duration_s", "source_sample_rate"])
        w.writerows(rows)
    rep = data.load_corpus(tmp_path)
    assert [r.speaker_id for r in rep.recordings] == [r.speaker_id for r in picks]
    reasons = dict(rep.skipped)
    assert len(rep.skipped) == 2
    ghost = next(k for k in reasons if "ghost1" in k)
    assert "not found" in reasons[ghost]
    nolabel = next(k for k in reasons if "nolabel1" in k)
    assert "label" in reasons[nolabel]


def test_load_kaggle_layout(saa, tmp_path):
    picks = _pick(saa, 2)
    rec_dir = tmp_path / "recordings"
    rec_dir.mkdir()
    for r in picks:  # opus bytes under an .mp3 name: the loader does not decode
        shutil.copy(r.path, rec_dir / f"{r.speaker_id}.mp3")
    header = ["age", "age_onset", "birthplace", "filename", "native_language", "sex", "speakerid", "country",
              "file_missing?"]
    rows = [[r.age, 5, "x", r.speaker_id, r.native_language, r.sex, i, r.country, "False"] for i, r in enumerate(picks)]
    rows.append([40, 10, "x", "german9", "german", "male", 98, "germany", "True"])  # marked missing
    rows.append([40, 10, "x", "dutch99", "dutch", "male", 99, "netherlands", "False"])  # file absent
    with open(tmp_path / "speakers_all.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    rep = data.load_corpus(tmp_path)
    assert [(r.speaker_id, r.label) for r in rep.recordings] == [(r.speaker_id, r.label) for r in picks]
    assert all(r.path.endswith(".mp3") and os.path.isabs(r.path) for r in rep.recordings)
    reasons = dict(rep.skipped)
    assert len(reasons) == 2
    assert "file_missing" in next(v for k, v in reasons.items() if "german9" in k)
    assert "not found" in next(v for k, v in reasons.items() if "dutch99" in k)


def test_load_hf_parquet_codec_variants_are_one_speaker(saa, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    nat, non = _pick(saa, 1)
    nat_bytes, non_bytes = Path(nat.path).read_bytes(), Path(non.path).read_bytes()
    ids = ["english12_mp3_64k", "english12_opus_24k", "spanish3", "french7_wav"]
    audio = [{"bytes": nat_bytes, "path": "english12.mp3"}, {"bytes": nat_bytes, "path": None},
             {"bytes": non_bytes, "path": "spanish3.opus"}, {"bytes": None, "path": None}]
    table = pa.table({"id": ids, "audio": audio})
    shard = tmp_path / "shards" / "train-00000-of-00001.parquet"
    shard.parent.mkdir()
    pq.write_table(table, shard)
    out = tmp_path / "extracted"
    rep = data.load_hf_parquet([shard.parent], out)
    assert sorted(rep.speakers) == ["english12", "spanish3"]
    by_id = {Path(r.path).name: r for r in rep.recordings}
    assert set(by_id) == {"english12_mp3_64k.mp3", "english12_opus_24k.ogg", "spanish3.opus"}
    assert {r.speaker_id for r in rep.recordings if r.label == NATIVE} == {"english12"}
    assert [r.label for r in rep.recordings if r.speaker_id == "spanish3"] == [NON_NATIVE]
    assert len(rep.skipped) == 1 and "french7_wav" in rep.skipped[0][0] and "no audio" in rep.skipped[0][1]
    assert Path(by_id["spanish3.opus"].path).read_bytes() == non_bytes
    # written once: a second load leaves the files untouched
    mtimes = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    rep2 = data.load_corpus(shard, extract_dir=out)
    assert rep2.recordings == rep.recordings
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes
    # metadata CSV overrides the id-prefix rule; ids missing from it are reported
    meta = tmp_path / "meta.csv"
    meta.write_text("speaker_id,label,country\nenglish12,non_native,x\n")
    rep3 = data.load_hf_parquet(shard, tmp_path / "extracted", metadata_csv=meta)
    assert {r.label for r in rep3.recordings} == {NON_NATIVE} and rep3.speakers == ["english12"]
    assert any("spanish3" in k and "metadata" in v for k, v in rep3.skipped)


def test_load_csv_manifest(saa, tmp_path):
    picks = _pick(saa, 2)
    (tmp_path / "wav").mkdir()
    for r in picks:
        shutil.copy(r.path, tmp_path / "wav" / Path(r.path).name)
    labels = ["1", "English", "non-native", "0"]
    lines = ["path,label,native_language,age"]
    lines += [f"wav/{Path(r.path).name},{lab},{r.native_language},{r.age}" for r, lab in zip(picks, labels)]
    lines += ["wav/missing.opus,native,english,", f"wav/{Path(picks[0].path).name},maybe,,",
              f"{tmp_path / 'wav' / Path(picks[1].path).name},,english,"]
    csv_path = tmp_path / "manifest.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    rep = data.load_corpus(csv_path)
    got = [(r.speaker_id, r.label) for r in rep.recordings]
    assert got[:4] == [(Path(r.path).stem, r.label) for r in picks]
    assert len(got) == 4  # the 7th row duplicates picks[1]'s file and is reported
    assert all(os.path.isabs(r.path) for r in rep.recordings)
    reasons = [v for _, v in rep.skipped]
    assert any("not found" in v for v in reasons)
    assert any("unrecognised label" in v for v in reasons)
    assert any("duplicate" in v for v in reasons)


def test_load_folder_per_label(saa, tmp_path):
    picks = _pick(saa, 3)
    for r in picks:
        sub = tmp_path / ("english" if r.label == NATIVE else "non_native")
        sub.mkdir(exist_ok=True)
        shutil.copy(r.path, sub / Path(r.path).name)
    (tmp_path / "english" / "notes.txt").write_text("not audio")
    rep = data.load_corpus(tmp_path)
    assert sorted((r.speaker_id, r.label) for r in rep.recordings) == sorted((r.speaker_id, r.label) for r in picks)
    assert rep.skipped == [("english/notes.txt", "not an audio extension (.txt)")]


def test_conflicting_labels_are_reported(tmp_path):
    for sub in ("native", "non_native"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "spk1.wav").write_bytes(b"RIFF")
    rep = data.load_folder_per_label(tmp_path)
    assert rep.recordings == [] and len(rep.skipped) == 2
    assert all("conflicting labels" in v for _, v in rep.skipped)


def test_load_corpus_unknown_layout(tmp_path):
    with pytest.raises(ValueError, match="layout"):
        data.load_corpus(tmp_path)
    with pytest.raises(FileNotFoundError):
        data.load_corpus(tmp_path / "nope")


def test_manifest_csv_round_trip(saa, tmp_path):
    recs = saa.recordings[:20] + [Recording("x1", "/abs/x1.wav", NATIVE)]
    path = data.recordings_to_csv(recs, tmp_path / "m.csv")
    assert data.read_manifest(path) == recs
    assert path.read_text().splitlines()[0] == ",".join(data.MANIFEST_FIELDS)


# --- speaker groups ---------------------------------------------------------------------------------
def test_age_band_and_variety():
    assert [data.age_band(a) for a in (6, 24.9, 25, 44, 45, 64, 65, 90, None, float("nan"), "x")] == \
        ["<25", "<25", "25-44", "25-44", "45-64", "45-64", "65+", "65+", "unknown", "unknown", "unknown"]
    assert [data.native_variety(c) for c in ("usa", "United States", "England", "uk", "canada", "Australia",
                                           "ireland", "us virgin islands", "jamaica", None, float("nan"))] == \
        ["USA", "USA", "UK", "UK", "Canada", "Australia", "Ireland", "other", "other", "other", "other"]



# --- splits -----------------------------------------------------------------------------------------
def test_speaker_folds_real(saa):
    recs = saa.recordings
    folds = np.array(speaker_folds(recs, k=5, seed=0))
    assert set(folds.tolist()) == set(range(5))
    owner: dict[str, int] = {}
    for r, f in zip(recs, folds):
        assert owner.setdefault(r.speaker_id, f) == f, f"speaker {r.speaker_id} in two folds"
    y = np.array([r.label == NATIVE for r in recs])
    for k in range(5):
        assert abs(y[folds == k].mean() - y.mean()) < 0.05
    assert speaker_folds(recs, k=5, seed=0) == folds.tolist()  # deterministic


def test_speaker_folds_keep_multi_recording_speakers_together():
    recs = [Recording(f"s{i}", f"/a/s{i}_{j}.wav", NATIVE if i % 2 else NON_NATIVE) for i in range(20) for j in range(3)]
    folds = speaker_folds(recs, k=4, seed=1)
    for i in range(20):
        assert len({folds[3 * i + j] for j in range(3)}) == 1
    with pytest.raises(ValueError):
        speaker_folds(recs[:3], k=2)


def test_split_speakers_real(saa, tmp_path):
    splits = split_speakers(saa.recordings, val=0.15, test=0.15, seed=0)
    assert_disjoint(splits)
    assert sum(len(v) for v in splits.values()) == 875
    assert set().union(*map(set, splits.values())) == set(saa.speakers)
    assert abs(len(splits["test"]) - 0.15 * 875) <= 2 and abs(len(splits["val"]) - 0.15 * 875) <= 2
    label = {r.speaker_id: r.label for r in saa.recordings}
    for ids in splits.values():
        assert abs(np.mean([label[s] == NATIVE for s in ids]) - 435 / 875) < 0.02
    path = write_splits(tmp_path / "splits.json", splits)
    assert read_splits(path) == splits
    assert split_speakers(saa.recordings, seed=0) == splits
    assert split_speakers(saa.recordings, seed=1) != splits
    assert len(select(saa.recordings, splits["test"])) == len(splits["test"])
    with pytest.raises(ValueError, match="val \\+ test < 1"):
        split_speakers(saa.recordings, val=0.5, test=0.5)


def test_split_speakers_keeps_speakers_whole_and_validates_each_label():
    """The early-stopping split (test=0): a speaker's recordings stay on one side, and even a tiny
    fraction puts at least one speaker of each label in validation."""
    recs = [Recording(f"s{i}", f"/a/s{i}_{j}.wav", NATIVE if i % 2 else NON_NATIVE) for i in range(10) for j in range(3)]
    splits = split_speakers(recs, val=0.01, test=0.0, seed=4)
    assert splits["test"] == [] and len(splits["val"]) == 2
    assert {int(s[1:]) % 2 for s in splits["val"]} == {0, 1}
    val = select(recs, splits["val"])
    assert len(val) == 6 and {r.speaker_id for r in val} == set(splits["val"])


def test_speaker_subset_is_balanced_seeded_and_keeps_speakers_whole(saa):
    sub = speaker_subset(saa.recordings, 120, seed=0)
    assert len(sub) == 120 and sum(r.label == NATIVE for r in sub) == 60
    assert speaker_subset(saa.recordings, 120, seed=0) == sub
    assert {r.speaker_id for r in speaker_subset(saa.recordings, 120, seed=1)} != {r.speaker_id for r in sub}
    recs = [Recording(f"s{i}", f"/a/s{i}_{j}.wav", NATIVE if i < 3 else NON_NATIVE) for i in range(12) for j in range(2)]
    small = speaker_subset(recs, 10, seed=0)  # 5 per label asked, only 3 natives exist
    assert sum(r.label == NATIVE for r in small) == 6 and sum(r.label == NON_NATIVE for r in small) == 10
    assert all(sum(r.speaker_id == s.speaker_id for r in small) == 2 for s in small)


def test_assert_disjoint_names_the_leak(tmp_path):
    with pytest.raises(ValueError, match="english12"):
        assert_disjoint({"train": ["a1", "english12"], "test": ["english12"]})
    with pytest.raises(ValueError, match="english12"):
        write_splits(tmp_path / "s.json", {"train": ["english12"], "val": ["english12"]})
    (tmp_path / "bad.json").write_text('{"train": ["x1"], "test": ["x1"]}')
    with pytest.raises(ValueError, match="x1"):
        read_splits(tmp_path / "bad.json")


# --- EDA --------------------------------------------------------------------------------------------
def test_eda_report_on_real_files(saa, tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("pandas")
    from accent_rater.evaluation import eda

    recs = _pick(saa, 3)
    silent = tmp_path / "silent.wav"  # decodes fine, refused by the front-end (SilentAudioError)
    with wave.open(str(silent), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000), w.writeframes(b"\0\0" * 16000 * 5)
    recs.append(Recording("silent1", str(silent), NON_NATIVE))
    recs.append(Recording("gone1", str(tmp_path / "gone.opus"), NATIVE))
    readme = eda.write_report(recs, tmp_path / "report", skipped=[("row 9", "audio file not found")])
    assert readme == tmp_path / "report" / "README.md"
    text = readme.read_text()
    pngs = ["class_balance.png", "native_language.png", "country.png", "durations.png", "speech_ratio.png",
            "mel_stats.png"]
    for png in pngs:
        assert (tmp_path / "report" / png).stat().st_size > 1000
        assert f"]({png})" in text
    assert "silent.wav" in text and "| silent |" in text  # listed, not crashed on
    assert "gone.opus" in text and "FileNotFoundError" in text
    assert "row 9" in text
    assert "| speakers | 4 | 4 |" in text
    assert "7-s segments" in text and "dB" in text
