"""Group error analysis, fold summary and the Markdown report (accent_rater.evaluation.report; `accent-rater
compare` is tested on a real run in test_train.py).

Synthetic predictions are fine here: the report is pure metrics over a predictions table."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from accent_rater.evaluation import report as rp
from accent_rater.evaluation.metrics import metrics, wilson_ci
from accent_rater.training.data import VARIETIES

COUNTRIES = ["usa", "uk", "canada", "australia", "ireland", "jamaica"]


def _synthetic(n: int = 200, models=("encoder", "cnn"), seed: int = 0) -> pd.DataFrame:
    """n speakers, half native, 5 folds; each model's p_native correlated with the label."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2 == 0).astype(int)
    langs = np.where(y == 1, "english", rng.choice(["arabic", "mandarin", "spanish", "french"], n))
    country = np.where(y == 1, rng.choice(COUNTRIES, n, p=[0.6, 0.15, 0.1, 0.08, 0.05, 0.02]),
                       rng.choice(["china", "spain", "syria", "france"], n))
    age = rng.uniform(10, 80, n)
    age[rng.random(n) < 0.1] = np.nan
    base = pd.DataFrame({"speaker_id": [f"s{i}" for i in range(n)], "label": y, "native_language": langs,
                         "country": country, "sex": rng.choice(["male", "female"], n), "age": age,
                         "fold": np.arange(n) % 5})
    parts = []
    for j, m in enumerate(models):
        logit = (2 * y - 1) * (1.5 + j) + rng.normal(0, 1.5, n)
        parts.append(base.assign(model=m, p_native=1 / (1 + np.exp(-logit))))
    return pd.concat(parts, ignore_index=True)


# --- groups and folds ----------------------------------------------------------------------------
def _group_df() -> pd.DataFrame:
    # 100 speakers; 'arabic' (10 speakers) has 6 errors, the rest 4 errors in 90 -> overall 10 %
    rows = []
    for i in range(100):
        lang = "arabic" if i < 10 else ("english" if i % 2 else "spanish")
        y = 1 if lang == "english" else 0
        wrong = i < 6 or i in (20, 40, 60, 80)
        p = (0.8 if y else 0.2) if not wrong else (0.2 if y else 0.8)
        rows.append({"speaker_id": f"s{i}", "label": y, "native_language": lang, "country": "usa" if y else "x",
                     "sex": "female", "age": 30.0, "model": "m", "fold": 0, "p_native": p})
    rows.append({"speaker_id": "tiny", "label": 0, "native_language": "tiny", "country": "x", "sex": "male",
                 "age": np.nan, "model": "m", "fold": 0, "p_native": 0.9})  # 1 speaker, 100 % error: too small
    return pd.DataFrame(rows)


def test_group_flag_when_error_exceeds_twice_overall():
    t = rp.group_errors(_group_df(), 0.5, by="native_language")
    assert t.attrs["overall"] == pytest.approx(11 / 101)
    row = t.set_index("group")
    assert row.loc["arabic", "n_errors"] == 6 and row.loc["arabic", "error_rate"] == pytest.approx(0.6)
    assert bool(row.loc["arabic", "flag"]) is True
    assert bool(row.loc["tiny", "flag"]) is False  # 100 % error but fewer than 5 speakers
    assert not row.drop(["arabic"])["flag"].any()
    lo, hi = wilson_ci(6, 10)
    assert (row.loc["arabic", "ci_lo"], row.loc["arabic", "ci_hi"]) == pytest.approx((lo, hi))
    assert list(t["n_speakers"]) == sorted(t["n_speakers"], reverse=True)

    age = rp.group_errors(_group_df(), 0.5, by="age_band")
    assert list(age["group"]) == ["25-44", "unknown"]
    sex = rp.group_errors(_group_df(), 0.5, by="sex")
    assert set(sex["group"]) == {"female", "male"}


def test_native_variety_view_uses_native_speakers_only():
    df = _synthetic(400, models=("m",))
    t = rp.group_errors(df, 0.5, by="native_variety")
    natives = df[df.label == 1]
    assert t["n_speakers"].sum() == len(natives)
    assert (t["n_native"] == t["n_speakers"]).all()
    assert list(t["group"]) == [g for g in VARIETIES if g in set(t["group"])]
    assert set(t["group"]) <= set(VARIETIES) and "other" in set(t["group"])  # jamaica -> other
    fnr = np.mean(natives["p_native"] < 0.5)
    assert t.attrs["overall"] == pytest.approx(fnr)
    from sklearn.metrics import roc_auc_score  # threshold-free column: that variety's natives vs all non-natives

    usa = df[(df.label == 0) | (df.country == "usa")]
    assert t.set_index("group").loc["USA", "auc_vs_non_native"] == pytest.approx(roc_auc_score(usa.label, usa.p_native))
    assert "auc_vs_non_native" not in rp.group_errors(df, 0.5, by="native_language").columns


def test_group_errors_requires_model_when_several():
    with pytest.raises(ValueError, match="model="):
        rp.group_errors(_synthetic(50), 0.5, by="sex")
    assert len(rp.group_errors(_synthetic(50), 0.5, by="sex", model="cnn")) == 2


def test_fold_summary():
    df = _synthetic(200)
    fs = rp.fold_summary(df).set_index("model")
    assert list(fs.index) == ["encoder", "cnn"] and (fs["n_folds"] == 5).all()
    sub = df[(df.model == "cnn")]
    per_fold = [metrics(g.label, g.p_native)["roc_auc"] for _, g in sub.groupby("fold")]
    assert fs.loc["cnn", "roc_auc_mean"] == pytest.approx(np.mean(per_fold))
    assert fs.loc["cnn", "roc_auc_sd"] == pytest.approx(np.std(per_fold, ddof=1))
    assert fs.loc["cnn", "roc_auc_ci_lo"] < fs.loc["cnn", "roc_auc_mean"] < fs.loc["cnn", "roc_auc_ci_hi"]


# --- report ---------------------------------------------------------------------------------------
def test_write_report(tmp_path: Path):
    rec = _synthetic(240)
    rng = np.random.default_rng(5)
    seg = rec.loc[rec.index.repeat(4), ["speaker_id", "label", "model", "fold", "p_native"]].reset_index(drop=True)
    seg["p_native"] = np.clip(seg["p_native"] + rng.normal(0, 0.1, len(seg)), 0, 1)
    csv = tmp_path / "predictions.csv"
    rec.to_csv(csv, index=False)  # CSV path input, NaN ages included
    readme = rp.write_report(csv, tmp_path / "report", segments=seg, thresholds={"cnn": 0.45}, primary="cnn",
                             title="Synthetic report", extra_markdown="## Leakage demo\n\nEXTRA-MARKER", n_boot=200)
    text = readme.read_text()
    assert readme == tmp_path / "report" / "README.md"
    assert text.startswith("# Synthetic report")
    for needle in ("Speaker-level metrics", "Per class", "Threshold chosen on the other folds", "Across CV folds", "Segment-level metrics",
                   "Native language", "Native variety", "Age band", "Sex", "Fisher", "EXTRA-MARKER",
                   "0.450", "encoder", "cnn"):
        assert needle in text, needle
    assert re.search(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", text)  # point [lo, hi]
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert {"roc.png", "pr.png", "reliability.png", "confusion.png", "groups_native_variety.png"} <= set(images)
    for img in images:
        f = readme.parent / img
        assert f.is_file() and f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", img

    m = json.loads((readme.parent / "metrics.json").read_text())
    assert m["primary"] == "cnn" and m["thresholds"] == {"encoder": 0.5, "cnn": 0.45}
    assert set(m["speaker_level"]) == {"encoder", "cnn"} and set(m["segment_level"]) == {"encoder", "cnn"}
    auc = m["speaker_level"]["cnn"]["roc_auc"]
    assert auc["lo"] <= auc["point"] <= auc["hi"] and auc["point"] > 0.8
    assert m["segment_level"]["cnn"]["n"]["point"] == 4 * 240
    assert set(m["groups"]) >= {"native_language", "native_variety", "sex", "age_band", "country"}
    assert len(m["folds"]) == 2
    expect = metrics(rec[rec.model == "encoder"].label, rec[rec.model == "encoder"].p_native, 0.5)
    assert m["speaker_level"]["encoder"]["accuracy"]["point"] == pytest.approx(expect["accuracy"])


def test_report_run_default_primary_and_flag_words(tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    df = pd.concat([_group_df(), _group_df().assign(model="weak", p_native=0.5)], ignore_index=True)
    df.to_csv(run / "predictions.csv", index=False)
    (run / "summary.json").write_text(json.dumps({"name": "exp", "thresholds": {"m": 0.4}}))
    (run / "notes.md").write_text("NOTES-MARKER")
    readme = rp.report_run(run, n_boot=50)
    assert readme == run / "report" / "README.md"
    text = readme.read_text()
    m = json.loads((readme.parent / "metrics.json").read_text())
    assert m["primary"] == "m" and m["thresholds"] == {"m": 0.4, "weak": 0.5}
    assert "no primary model was named" in text and "NOTES-MARKER" in text
    assert "**Flagged: arabic**" in text and "6 of 10" in text


def test_report_modules_do_not_import_torch():
    """Reports run where the training stack is not installed: no torch, no onnxruntime."""
    code = ("import sys, accent_rater.evaluation.report, accent_rater.evaluation.metrics, accent_rater.calibration, accent_rater.training.data; "
            "print(sorted({'torch', 'onnxruntime'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"



def test_md_table_rounds_floats_and_escapes_pipes():
    """EDA tables pass raw floats: they print to 3 significant digits; text and ints as they are."""
    md = rp.md_table(["a", "b", "c"], [(np.float64(12.345678912), 0.000123456, "x|y"), (np.float32(2.5), 7, "z")])
    assert md.splitlines()[2:] == ["| 12.3 | 0.000123 | x\\|y |", "| 2.5 | 7 | z |"]
