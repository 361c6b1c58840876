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
    low = json.loads(run("rate", clip, "--json", "--threshold", "0.01").stdout)
    high = json.loads(run("rate", clip, "--json", "--threshold", "0.99").stdout)
    assert low["label"] == "native" and high["label"] == "non_native"
    assert low["p_native"] == high["p_native"]


def test_invalid_options_fail_cleanly(tmp_path: Path) -> None:
    proc = run("rate", FIXTURES / "native_us_english5.flac", "--model", tmp_path)
    assert proc.returncode == 2 and "model bundle" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("rate", FIXTURES / "native_us_english5.flac", "--prior", "1.5")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
