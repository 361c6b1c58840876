"""The `accent-rater` command on real clips with the bundled model: JSON lines, CSV, tables,
directories, and bad files that never stop a batch."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from accent_rater import Rater

from conftest import SAMPLES, make_result

FIXTURES = Path(__file__).parent / "fixtures"
CLI = [sys.executable, "-m", "accent_rater"]


@pytest.fixture(scope="module")
def batch_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("batch")
    for name in ("native_us_english5.flac", "nonnative_spanish6.flac"):
        shutil.copy(FIXTURES / name, d / name)
    (d / "sub").mkdir()
    (d / "sub" / "notes.wav").write_text("this is a text file, not audio")
    (d / "readme.txt").write_text("ignored: not an audio extension")
    return d


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=300)


def test_json_lines_one_per_input_and_bad_file_does_not_stop_batch(batch_dir: Path, tmp_path: Path) -> None:
    out_csv = tmp_path / "out.csv"
    proc = run("rate", batch_dir, tmp_path / "missing.wav", "--json", "--csv", out_csv)
    assert proc.returncode == 1, proc.stderr  # some inputs failed
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    by_name = {Path(r["path"]).name: r for r in rows}
    assert set(by_name) == {"native_us_english5.flac", "nonnative_spanish6.flac", "notes.wav", "missing.wav"}
    assert by_name["notes.wav"]["error"]["code"] == "not_audio"
    assert by_name["missing.wav"]["error"]["code"] == "not_found"
    good = by_name["native_us_english5.flac"]
    expected = Rater().rate(batch_dir / "native_us_english5.flac")
    assert good["p_native"] == pytest.approx(expected.p_native, abs=1e-4)
    assert good["score"] == expected.score and good["label"] == expected.label
    assert [s["start_s"] for s in good["segments"]] == sorted(s["start_s"] for s in good["segments"])
    with open(out_csv) as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 4 and {r["error_code"] for r in table} >= {"not_audio", "not_found"}


def test_table_output_and_success_exit_code() -> None:
    proc = run("rate", FIXTURES / "native_uk_english2.flac")
    assert proc.returncode == 0, proc.stderr
    assert "native_uk_english2.flac" in proc.stdout and "accent" in proc.stdout


def test_threshold_option_moves_the_label() -> None:
    clip = FIXTURES / "native_us_english5.flac"
    p = Rater().rate(clip).p_native
    low = json.loads(run("rate", clip, "--json", "--threshold", f"{p / 2:.6f}").stdout)
    high = json.loads(run("rate", clip, "--json", "--threshold", f"{(1 + p) / 2:.6f}").stdout)
    assert low["label"] == "native" and high["label"] == "non_native"
    assert low["p_native"] == high["p_native"]


def test_invalid_options_fail_cleanly(tmp_path: Path) -> None:
    proc = run("rate", FIXTURES / "native_us_english5.flac", "--model", tmp_path)
    assert proc.returncode == 2 and "model bundle" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("rate", FIXTURES / "native_us_english5.flac", "--prior", "1.5")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = run("rate", FIXTURES / "native_us_english5.flac", "--model", "no-such-model")
    assert proc.returncode == 2 and "bundled models: default, fast" in proc.stderr and "Traceback" not in proc.stderr


def test_model_option_takes_bundled_names_and_json_csv_carry_l1_fields(tmp_path: Path) -> None:
    assert "'default'" in run("rate", "--help").stdout and "'fast'" in run("rate", "--help").stdout
    clip, out_csv = FIXTURES / "nonnative_spanish6.flac", tmp_path / "fast.csv"
    proc = run("rate", clip, "--model", "fast", "--json", "--csv", out_csv)
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)
    expected = Rater("fast").rate(clip)
    assert row["model"] == expected.model and row["model"].startswith("fast ")
    assert row["p_native"] == pytest.approx(expected.p_native, abs=1e-4)
    assert row["l1"] == [] and row["l1_guess"] == ""  # the fast model has no first-language head
    with open(out_csv) as fh:
        (csv_row,) = list(csv.DictReader(fh))
    assert csv_row["l1_guess"] == "" and csv_row["l1"] == ""


def test_l1_guess_in_json_csv_and_table(tmp_path: Path) -> None:
    """The real default model on real clips: non-native speech gets its first-language guess in the
    JSON (the same as in-process), the CSV and the table; native speech gets none."""
    clips = [SAMPLES / "nonnative_mandarin8.opus", FIXTURES / "nonnative_spanish6.flac", SAMPLES / "native_us_english33.opus"]
    rater = Rater()
    expected = {c.name: rater.rate(c) for c in clips}
    out_csv = tmp_path / "out.csv"
    proc = run("rate", *clips, "--json", "--csv", out_csv)
    assert proc.returncode == 0, proc.stderr
    rows = {Path(r["path"]).name: r for r in map(json.loads, proc.stdout.splitlines())}
    for name, res in expected.items():
        assert rows[name]["l1"] == res.to_dict()["l1"] and rows[name]["l1_guess"] == res.l1_guess
    assert rows["native_us_english33.opus"]["l1"] == [] and rows["native_us_english33.opus"]["l1_guess"] == ""
    for name in ("nonnative_mandarin8.opus", "nonnative_spanish6.flac"):
        assert 1 <= len(rows[name]["l1"]) <= 3 and rows[name]["l1_guess"] in (rows[name]["l1"][0]["language"], "unsure")
    with open(out_csv) as fh:
        table = {Path(r["path"]).name: r for r in csv.DictReader(fh)}
    for name, res in expected.items():
        assert table[name]["l1_guess"] == res.l1_guess
        assert table[name]["l1"] == ";".join(f"{x['language']}:{x['p']:.2f}" for x in res.to_dict()["l1"])

    proc = run("rate", *clips)
    assert proc.returncode == 0, proc.stderr
    assert "first language (guess)" in proc.stdout and "never about a person" in proc.stdout
    assert "Knows: " + ", ".join(rater.l1_languages) in " ".join(proc.stdout.split())
    top = expected["nonnative_mandarin8.opus"].l1[0][0]
    assert top in proc.stdout


def test_l1_text_formats_confident_unsure_and_native_rows() -> None:
    from accent_rater.cli import l1_text

    sure = make_result(0.12, l1=[("spanish", 0.62), ("portuguese", 0.2), ("french", 0.09)]).to_dict()
    unsure = make_result(0.2, l1=[("spanish", 0.31), ("french", 0.29), ("arabic", 0.2)]).to_dict()
    assert l1_text(sure) == "spanish 62% · portuguese 20% · french 9%"
    assert l1_text(unsure) == "unsure (spanish 31%)"
    assert l1_text(make_result(0.8).to_dict()) == ""
