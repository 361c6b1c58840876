"""`accent-rater batch` on real clips and hostile files: a local process pool and a local Ray give the
rows in-process rating gives (same numbers as `rate --json`), from a folder, a manifest and Hugging
Face parquet shards; failures are rows; an interrupted run resumes without duplicates."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from accent_rater import Rater, audio
from accent_rater.rater import AccentResult
from accent_rater.serve import batch
from accent_rater.serve.batch import RESULT_COLUMNS, ResultWriter, flat_row, rate_row, rater_options, run_batch
from accent_rater.serve.engine import Engine

from conftest import FIXTURES, SAMPLES

pq = pytest.importorskip("pyarrow.parquet")
CLI = [sys.executable, "-m", "accent_rater"]
CLIPS = [FIXTURES / "native_us_english5.flac", FIXTURES / "nonnative_spanish6.flac", SAMPLES / "native_uk_english38.opus",
         SAMPLES / "nonnative_mandarin8.opus"]
OPTS = rater_options()


def hostile(folder: Path) -> dict[str, str]:
    """Bad inputs next to the real clips, with the error code each must give."""
    import soundfile as sf

    (folder / "notes.wav").write_text("this is a text file, not audio")
    (folder / "empty.flac").write_bytes(b"")
    (folder / "noise.mp3").write_bytes(np.random.default_rng(0).bytes(20_000))
    sf.write(folder / "silence.wav", np.zeros(16_000 * 5, np.float32), 16_000)
    (folder / "truncated.flac").write_bytes(CLIPS[0].read_bytes()[:3000])
    return {"notes.wav": "not_audio", "empty.flac": "empty", "noise.mp3": "not_audio", "silence.wav": "silent"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    d = tmp_path_factory.mktemp("corpus")
    (d / "sub").mkdir()
    for i, clip in enumerate(CLIPS):
        shutil.copy(clip, (d / "sub" if i % 2 else d) / clip.name)
    return d, hostile(d)


@pytest.fixture(scope="module")
def rater() -> Rater:
    return Rater(threads=1)


def read(out: Path) -> list[dict]:
    if out.suffix == ".jsonl":
        return [json.loads(line) for line in out.read_text().splitlines()]
    return pq.read_table(out).to_pylist()


def assert_same_as_in_process(rows: list[dict], rater: Rater, source_of) -> None:
    """Every row equals in-process rating of its input (the `rate --json` row), all columns."""
    for row in rows:
        expected = flat_row(rate_row(rater, source_of(row["path"]), row["path"]), rater.name)
        assert abs((row["p_native"] or 0) - (expected["p_native"] or 0)) <= 1e-6, row["path"]
        assert {k: row[k] for k in RESULT_COLUMNS if k != "p_native"} == {k: expected[k] for k in RESULT_COLUMNS if k != "p_native"}


def test_output_columns_are_every_result_field_plus_path_and_error() -> None:
    fields = {f.name for f in dataclasses.fields(AccentResult)}
    assert set(RESULT_COLUMNS) == fields | {"path", "error_code", "error_message"}


def test_pool_rates_a_folder_like_in_process_and_bad_files_are_rows(corpus, rater, tmp_path) -> None:
    folder, codes = corpus
    out = tmp_path / "out.jsonl"
    summary = run_batch(folder, out, Engine(workers=2), OPTS, progress=False)
    rows = read(out)
    by_name = {Path(r["path"]).name: r for r in rows}
    assert len(rows) == summary.files == 9 and len(by_name) == 9
    for name, code in codes.items():
        assert by_name[name]["error_code"] == code and by_name[name]["p_native"] is None
    assert by_name["truncated.flac"]["error_code"]  # a cut-off file is refused, whichever way
    assert all(r["model"] == rater.name for r in rows)
    rated = [r for r in rows if not r["error_code"]]
    assert {Path(r["path"]).name for r in rated} == {c.name for c in CLIPS}
    assert_same_as_in_process(rows, rater, Path)
    assert summary.audio_seconds == pytest.approx(sum(r["duration_seconds"] for r in rated))
    assert sum(summary.failures.values()) == 5


def test_cli_batch_gives_rate_json_numbers_and_refuses_to_overwrite(tmp_path) -> None:
    out = tmp_path / "r.parquet"
    proc = subprocess.run([*CLI, "batch", FIXTURES, "--out", out, "-w", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "5 of 5 inputs rated" in proc.stderr
    ref = subprocess.run([*CLI, "rate", "--json", FIXTURES], capture_output=True, text=True, timeout=300)
    expected = {r["path"]: r for r in map(json.loads, ref.stdout.splitlines())}
    rows = read(out)
    assert {r["path"] for r in rows} == set(expected)
    assert max(abs(r["p_native"] - expected[r["path"]]["p_native"]) for r in rows) <= 1e-6
    assert all(r["segments"] == expected[r["path"]]["segments"] and r["l1"] == expected[r["path"]]["l1"] for r in rows)
    again = subprocess.run([*CLI, "batch", FIXTURES, "--out", out], capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "--resume" in again.stderr and "Traceback" not in again.stderr
    bad = subprocess.run([*CLI, "batch", FIXTURES / "README.md", "--out", tmp_path / "x.parquet"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "expected a folder" in bad.stderr and "Traceback" not in bad.stderr


def test_resume_after_a_crash_finishes_without_duplicates(corpus, rater, tmp_path, monkeypatch) -> None:
    folder, _ = corpus
    out = tmp_path / "out.parquet"
    monkeypatch.setattr(batch, "PART_ROWS", 2)  # flush part files often...

    def crash(self) -> None:  # ...and die before the final merge
        raise KeyboardInterrupt

    monkeypatch.setattr(ResultWriter, "close", crash)
    with pytest.raises(KeyboardInterrupt):
        run_batch(folder, out, Engine(workers=1), OPTS, progress=False)
    monkeypatch.undo()
    kept = ResultWriter(out, resume=True).done_paths()
    assert 2 <= len(kept) < 9 and not out.exists()
    with pytest.raises(FileExistsError):
        ResultWriter(out)
    summary = run_batch(folder, out, Engine(workers=1), OPTS, resume=True, progress=False)
    rows = read(out)
    assert summary.already_done == len(kept) and summary.files == 9 - len(kept)
    assert sorted(r["path"] for r in rows) == sorted({r["path"] for r in rows}) and len(rows) == 9
    assert not out.with_name(out.name + ".parts").exists()
    assert_same_as_in_process(rows, rater, Path)


def test_jsonl_resume_drops_a_line_cut_short(corpus, tmp_path) -> None:
    folder, _ = corpus
    out = tmp_path / "out.jsonl"
    run_batch(folder, out, Engine(workers=1), OPTS, progress=False)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:3]) + lines[3][:40])  # killed while writing the fourth line
    summary = run_batch(folder, out, Engine(workers=1), OPTS, resume=True, progress=False)
    assert summary.already_done == 3 and summary.files == 6
    paths = [r["path"] for r in read(out)]
    assert len(paths) == len(set(paths)) == 9


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray", reason="the scale extra (ray[data]) is not installed: pip install -e '.[scale]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_rates_shards_and_a_manifest_like_in_process(ray_local, corpus, rater, tmp_path) -> None:
    import pyarrow as pa

    folder, codes = corpus
    # Hugging Face layout: id + audio {bytes, path}, several row groups; hostile bytes included
    names = [c.name for c in CLIPS] + sorted(codes) + ["none"]
    blobs = {n: c.read_bytes() for n, c in zip(names, CLIPS)} | {n: (folder / n).read_bytes() for n in codes}
    audio_col = [{"bytes": blobs.get(n), "path": n} for n in names]
    shard = tmp_path / "shards" / "train-00000-of-00001.parquet"
    shard.parent.mkdir()
    pq.write_table(pa.table({"id": [f"utt{i}" for i in range(len(names))], "audio": audio_col}), shard, row_group_size=3)
    out = tmp_path / "shards.parquet"
    summary = run_batch(shard.parent, out, Engine(workers=2, ray="local"), OPTS, progress=False)
    rows = {r["path"]: r for r in read(out)}
    assert summary.files == len(rows) == len(names)
    by_name = {r["audio_path"]: r for r in rows.values()}
    assert {n: by_name[n]["error_code"] for n in codes} == codes and by_name["none"]["error_code"] == "empty"
    assert all(rows[f"{shard}#{i}"]["id"] == f"utt{i}" for i in range(len(names)))
    assert_same_as_in_process(list(rows.values()), rater, lambda key: audio_col[int(key.rsplit("#", 1)[1])]["bytes"] or b"")

    # a CSV manifest: relative paths, extra columns carried through (label -> input_label), a missing file
    manifest = folder / "manifest.csv"
    manifest.write_text("path,label,speaker\n" + "".join(f"{p.relative_to(folder)},native,s{i}\n" for i, p in
                                                           enumerate(audio.audio_files(folder))) + "gone.wav,non_native,s99\n")
    out = tmp_path / "manifest.jsonl"
    run_batch(manifest, out, Engine(workers=2, ray="local"), OPTS, progress=False)
    rows = read(out)
    assert len(rows) == 10 and {r["speaker"] for r in rows} == {f"s{i}" for i in range(9)} | {"s99"}
    gone = next(r for r in rows if r["path"] == "gone.wav")
    assert gone["error_code"] == "not_found" and gone["input_label"] == "non_native" and gone["model"] == rater.name
    assert_same_as_in_process([r for r in rows if r is not gone], rater, lambda key: folder / key)


def test_training_feature_cache_builds_on_ray_as_on_the_pool(ray_local, corpus, rater, tmp_path) -> None:
    """The training cache (Whisper features of clean and augmented copies) is the same, file for
    file and array for array, built by Ray actors or in-process (to float32 round-off: Ray's workers
    run numpy's BLAS on one thread, which sums in another order; measured 1e-6); a bad file is an
    error, not an abort."""
    from accent_rater.training import caches

    folder, _ = corpus
    encoder = rater.model_dir / rater.meta["encoder"]
    items = [(c.stem, str(c), None, 0) for c in CLIPS[:2]] + [("aug", str(CLIPS[2]), "telephone", 3), ("bad", str(folder / "notes.wav"), None, 0)]
    errors = {name: caches.build_whisper_cache(items, tmp_path / name, encoder, engine) for name, engine in
              (("inline", Engine(1)), ("ray", Engine(2, "local")))}
    assert set(errors["inline"]) == set(errors["ray"]) == {"bad"} and errors["ray"]["bad"].startswith("not_audio")
    for key, *_ in items[:-1]:
        a, b = (np.load(caches.cache_path(tmp_path / name, key)) for name in errors)
        assert sorted(a.files) == sorted(b.files) and all(np.allclose(a[f], b[f], rtol=0, atol=1e-5) for f in a.files), key
