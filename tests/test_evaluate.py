"""Evaluation metrics, bootstrap intervals, group error analysis and the report (accent_rater.evaluate).

Synthetic predictions are fine here: the module is pure metrics over a predictions table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from accent_rater import evaluate as ev

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


# --- metrics --------------------------------------------------------------------------------------
def test_perfect_predictions():
    y = np.array([1, 1, 0, 0, 1, 0])
    m = ev.metrics(y, y.astype(float))
    for k in ("accuracy", "balanced_accuracy", "roc_auc", "pr_auc", "f1_native", "f1_non_native"):
        assert m[k] == pytest.approx(1.0), k
    assert m["brier"] == 0.0 and m["ece"] == 0.0 and m["n"] == 6 and m["n_native"] == 3


def test_known_confusion_matrix():
    # native: 3 of 4 caught (TP 3, FN 1); non-native: 4 of 6 correct (TN 4, FP 2)
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.55, 0.4, 0.3, 0.1, 0.05])
    m = ev.metrics(y, p, threshold=0.5)
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["precision_native"] == pytest.approx(3 / 5)
    assert m["recall_native"] == pytest.approx(3 / 4)
    assert m["f1_native"] == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))
    assert m["precision_non_native"] == pytest.approx(4 / 5)
    assert m["recall_non_native"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 4 / 6) / 2)
    # AUC by counting: pairs (native, non-native) ranked correctly; 0.2 beats 0.1 and 0.05 only
    assert m["roc_auc"] == pytest.approx((6 + 6 + 6 + 2) / 24)
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
    # threshold is inclusive: p == threshold counts as native
    assert ev.metrics([1, 0], [0.5, 0.2], threshold=0.5)["accuracy"] == 1.0


def test_ece_hand_case_and_calibrated_data():
    # two bins: 0.25 -> [0, 1, 0, 0] (observed 0.25: gap 0), 0.95 -> [1, 1] (gap 0.05)
    y = [0, 1, 0, 0, 1, 1]
    p = [0.25, 0.25, 0.25, 0.25, 0.95, 0.95]
    assert ev.ece(y, p) == pytest.approx(2 / 6 * 0.05)
    rng = np.random.default_rng(0)
    p = rng.random(200_000)
    y = (rng.random(p.size) < p).astype(int)
    assert ev.ece(y, p) < 0.01
    assert ev.ece(y, np.clip(p * 0.5, 0, 1)) > 0.2  # badly calibrated -> large ECE


def test_vectorised_bootstrap_matches_sklearn_on_resamples():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 150)
    p = np.round(np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.25, y.size), 0, 1), 2)  # many ties
    counts = rng.multinomial(y.size, np.full(y.size, 1 / y.size), size=4)
    vec = ev._weighted_metrics(y, p, 0.45, counts)
    for b in range(len(counts)):
        idx = np.repeat(np.arange(y.size), counts[b])
        ref = ev.metrics(y[idx], p[idx], 0.45)
        for k in ev.METRICS:
            assert vec[k][b] == pytest.approx(ref[k], abs=1e-9), k


def test_bootstrap_contains_point_and_narrows():
    def data(n, seed):
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 2, n)
        return y, 1 / (1 + np.exp(-((2 * y - 1) * 1.2 + rng.normal(0, 1.2, n))))

    small = ev.bootstrap_ci(*data(80, 0), threshold=0.5, n_boot=500, seed=0)
    large = ev.bootstrap_ci(*data(2000, 0), threshold=0.5, n_boot=500, seed=0)
    for k in ("accuracy", "balanced_accuracy", "roc_auc", "pr_auc", "brier", "f1_native"):
        for ci in (small, large):
            point, lo, hi = ci[k]
            assert lo <= point <= hi, (k, ci[k])
        assert large[k][2] - large[k][1] < small[k][2] - small[k][1], k
    assert set(small) == set(ev.METRICS)
    # same seed -> same interval
    assert ev.bootstrap_ci(*data(80, 0), 0.5, n_boot=200, seed=3) == ev.bootstrap_ci(*data(80, 0), 0.5, n_boot=200, seed=3)


def test_segment_bootstrap_resamples_speakers():
    rng = np.random.default_rng(2)
    spk_y = rng.integers(0, 2, 40)
    groups = np.repeat(np.arange(40), 20)  # 20 segments per speaker
    y = spk_y[groups]
    spk_effect = rng.normal(0, 1.5, 40)[groups]  # segments of one speaker are strongly correlated
    p = 1 / (1 + np.exp(-((2 * y - 1) + spk_effect + rng.normal(0, 0.3, y.size))))
    naive = ev.bootstrap_ci(y, p, 0.5, n_boot=400, seed=0)
    by_spk = ev.bootstrap_ci(y, p, 0.5, n_boot=400, seed=0, groups=groups)
    assert naive["accuracy"][0] == by_spk["accuracy"][0]
    width = lambda ci: ci["roc_auc"][2] - ci["roc_auc"][1]  # noqa: E731
    assert width(by_spk) > 1.5 * width(naive)  # speaker resampling does not pretend 800 independent samples


def test_bootstrap_speed():
    import time

    df = _synthetic(900, models=("a", "b", "c"))
    t = time.perf_counter()
    for _, sub in df.groupby("model"):
        ev.bootstrap_ci(sub["label"], sub["p_native"], 0.5, n_boot=1000)
    assert time.perf_counter() - t < 10


# --- Wilson and groups ---------------------------------------------------------------------------
def test_wilson_known_values():
    lo, hi = ev.wilson_ci(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=5e-4)
    lo, hi = ev.wilson_ci(10, 10)
    assert hi == 1.0 and lo == pytest.approx(1 - 0.2775, abs=5e-4)
    lo, hi = ev.wilson_ci(5, 10)
    assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=5e-4)
    assert all(np.isnan(ev.wilson_ci(0, 0)))


def test_age_band_and_variety():
    assert [ev.age_band(a) for a in (6, 24.9, 25, 44, 45, 64, 65, 90, None, float("nan"), "x")] == \
        ["<25", "<25", "25-44", "25-44", "45-64", "45-64", "65+", "65+", "unknown", "unknown", "unknown"]
    assert [ev.native_variety(c) for c in ("usa", "United States", "England", "uk", "canada", "Australia",
                                           "ireland", "us virgin islands", "jamaica", None, float("nan"))] == \
        ["USA", "USA", "UK", "UK", "Canada", "Australia", "Ireland", "other", "other", "other", "other"]


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
    t = ev.group_errors(_group_df(), 0.5, by="native_language")
    assert t.attrs["overall"] == pytest.approx(11 / 101)
    row = t.set_index("group")
    assert row.loc["arabic", "n_errors"] == 6 and row.loc["arabic", "error_rate"] == pytest.approx(0.6)
    assert bool(row.loc["arabic", "flag"]) is True
    assert bool(row.loc["tiny", "flag"]) is False  # 100 % error but fewer than 5 speakers
    assert not row.drop(["arabic"])["flag"].any()
    lo, hi = ev.wilson_ci(6, 10)
    assert (row.loc["arabic", "ci_lo"], row.loc["arabic", "ci_hi"]) == pytest.approx((lo, hi))
    assert list(t["n_speakers"]) == sorted(t["n_speakers"], reverse=True)

    age = ev.group_errors(_group_df(), 0.5, by="age_band")
    assert list(age["group"]) == ["25-44", "unknown"]
    sex = ev.group_errors(_group_df(), 0.5, by="sex")
    assert set(sex["group"]) == {"female", "male"}


def test_native_variety_view_uses_native_speakers_only():
    df = _synthetic(400, models=("m",))
    t = ev.group_errors(df, 0.5, by="native_variety")
    natives = df[df.label == 1]
    assert t["n_speakers"].sum() == len(natives)
    assert (t["n_native"] == t["n_speakers"]).all()
    assert list(t["group"]) == [g for g in ev.VARIETIES if g in set(t["group"])]
    assert set(t["group"]) <= set(ev.VARIETIES) and "other" in set(t["group"])  # jamaica -> other
    fnr = np.mean(natives["p_native"] < 0.5)
    assert t.attrs["overall"] == pytest.approx(fnr)
    from sklearn.metrics import roc_auc_score  # threshold-free column: that variety's natives vs all non-natives

    usa = df[(df.label == 0) | (df.country == "usa")]
    assert t.set_index("group").loc["USA", "auc_vs_non_native"] == pytest.approx(roc_auc_score(usa.label, usa.p_native))
    assert "auc_vs_non_native" not in ev.group_errors(df, 0.5, by="native_language").columns


def test_group_errors_requires_model_when_several():
    with pytest.raises(ValueError, match="model="):
        ev.group_errors(_synthetic(50), 0.5, by="sex")
    assert len(ev.group_errors(_synthetic(50), 0.5, by="sex", model="cnn")) == 2


def test_speaker_table_averages_recordings_and_string_labels():
    df = pd.DataFrame({"speaker_id": ["a", "a", "b"], "label": ["native", "native", "non_native"],
                       "model": "m", "fold": 0, "p_native": [0.2, 0.6, 0.1]})
    s = ev.speaker_table(df)
    assert len(s) == 2 and s.set_index("speaker_id").loc["a", "p_native"] == pytest.approx(0.4)
    assert list(s["label"]) == [1, 0]


def test_fold_summary():
    df = _synthetic(200)
    fs = ev.fold_summary(df).set_index("model")
    assert list(fs.index) == ["encoder", "cnn"] and (fs["n_folds"] == 5).all()
    sub = df[(df.model == "cnn")]
    per_fold = [ev.metrics(g.label, g.p_native)["roc_auc"] for _, g in sub.groupby("fold")]
    assert fs.loc["cnn", "roc_auc_mean"] == pytest.approx(np.mean(per_fold))
    assert fs.loc["cnn", "roc_auc_sd"] == pytest.approx(np.std(per_fold, ddof=1))
    assert fs.loc["cnn", "roc_auc_ci_lo"] < fs.loc["cnn", "roc_auc_mean"] < fs.loc["cnn", "roc_auc_ci_hi"]


def test_nested_threshold_comes_from_the_other_folds():
    """Fold 0 is decided by the threshold that suits fold 1 (0.4) and vice versa (0.8), so both
    fold-0 speakers are called native and both fold-1 speakers non-native; one threshold chosen on
    all four could not do that."""
    df = pd.DataFrame({"speaker_id": list("abcd"), "label": [1, 0, 1, 0], "model": "m", "fold": [0, 0, 1, 1],
                       "p_native": [0.8, 0.6, 0.4, 0.2]})
    y, decision = ev.nested_threshold_decisions(df, "m")
    assert list(y) == [1, 0, 1, 0] and list(decision) == [1, 1, 0, 0]


# --- report ---------------------------------------------------------------------------------------
def test_write_report(tmp_path: Path):
    rec = _synthetic(240)
    rng = np.random.default_rng(5)
    seg = rec.loc[rec.index.repeat(4), ["speaker_id", "label", "model", "fold", "p_native"]].reset_index(drop=True)
    seg["p_native"] = np.clip(seg["p_native"] + rng.normal(0, 0.1, len(seg)), 0, 1)
    csv = tmp_path / "predictions.csv"
    rec.to_csv(csv, index=False)  # CSV path input, NaN ages included
    readme = ev.write_report(csv, tmp_path / "report", segments=seg, thresholds={"cnn": 0.45}, primary="cnn",
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
    expect = ev.metrics(rec[rec.model == "encoder"].label, rec[rec.model == "encoder"].p_native, 0.5)
    assert m["speaker_level"]["encoder"]["accuracy"]["point"] == pytest.approx(expect["accuracy"])


def test_report_run_default_primary_and_flag_words(tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    df = pd.concat([_group_df(), _group_df().assign(model="weak", p_native=0.5)], ignore_index=True)
    df.to_csv(run / "predictions.csv", index=False)
    (run / "summary.json").write_text(json.dumps({"name": "exp", "thresholds": {"m": 0.4}}))
    (run / "notes.md").write_text("NOTES-MARKER")
    readme = ev.report_run(run, n_boot=50)
    assert readme == run / "report" / "README.md"
    text = readme.read_text()
    m = json.loads((readme.parent / "metrics.json").read_text())
    assert m["primary"] == "m" and m["thresholds"] == {"m": 0.4, "weak": 0.5}
    assert "no primary model was named" in text and "NOTES-MARKER" in text
    assert "**Flagged: arabic**" in text and "6 of 10" in text


def test_module_does_not_import_torch():
    import ast

    tree = ast.parse(Path(ev.__file__).read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "evaluate must stand alone (no relative imports)"
            names.add(node.module.split(".")[0])
    assert names <= {"__future__", "json", "math", "pathlib", "typing", "numpy", "pandas", "sklearn", "scipy",
                     "matplotlib"}, names
