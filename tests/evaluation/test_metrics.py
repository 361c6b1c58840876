"""Metrics, ECE, speaker-bootstrap and Wilson intervals (accent_rater.evaluation.metrics) and the threshold chosen
on the other folds (accent_rater.calibration).

Synthetic predictions are fine here: the modules are pure metrics over predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from accent_rater.evaluation import metrics as mt
from accent_rater.training.stacking import nested_threshold_decisions


# --- metrics --------------------------------------------------------------------------------------
def test_perfect_predictions():
    y = np.array([1, 1, 0, 0, 1, 0])
    m = mt.metrics(y, y.astype(float))
    for k in ("accuracy", "balanced_accuracy", "roc_auc", "pr_auc", "f1_native", "f1_non_native"):
        assert m[k] == pytest.approx(1.0), k
    assert m["brier"] == 0.0 and m["ece"] == 0.0 and m["n"] == 6 and m["n_native"] == 3


def test_known_confusion_matrix():
    # native: 3 of 4 caught (TP 3, FN 1); non-native: 4 of 6 correct (TN 4, FP 2)
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.55, 0.4, 0.3, 0.1, 0.05])
    m = mt.metrics(y, p, threshold=0.5)
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
    assert mt.metrics([1, 0], [0.5, 0.2], threshold=0.5)["accuracy"] == 1.0


def test_ece_hand_case_and_calibrated_data():
    # two bins: 0.25 -> [0, 1, 0, 0] (observed 0.25: gap 0), 0.95 -> [1, 1] (gap 0.05)
    y = [0, 1, 0, 0, 1, 1]
    p = [0.25, 0.25, 0.25, 0.25, 0.95, 0.95]
    assert mt.ece(y, p) == pytest.approx(2 / 6 * 0.05)
    rng = np.random.default_rng(0)
    p = rng.random(200_000)
    y = (rng.random(p.size) < p).astype(int)
    assert mt.ece(y, p) < 0.01
    assert mt.ece(y, np.clip(p * 0.5, 0, 1)) > 0.2  # badly calibrated -> large ECE


def test_vectorised_bootstrap_matches_sklearn_on_resamples():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 150)
    p = np.round(np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.25, y.size), 0, 1), 2)  # many ties
    counts = rng.multinomial(y.size, np.full(y.size, 1 / y.size), size=4)
    vec = mt._weighted_metrics(y, p, 0.45, counts)
    for b in range(len(counts)):
        idx = np.repeat(np.arange(y.size), counts[b])
        ref = mt.metrics(y[idx], p[idx], 0.45)
        for k in mt.METRICS:
            assert vec[k][b] == pytest.approx(ref[k], abs=1e-9), k


def test_bootstrap_contains_point_and_narrows():
    def data(n, seed):
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 2, n)
        return y, 1 / (1 + np.exp(-((2 * y - 1) * 1.2 + rng.normal(0, 1.2, n))))

    small = mt.bootstrap_ci(*data(80, 0), threshold=0.5, n_boot=500, seed=0)
    large = mt.bootstrap_ci(*data(2000, 0), threshold=0.5, n_boot=500, seed=0)
    for k in ("accuracy", "balanced_accuracy", "roc_auc", "pr_auc", "brier", "f1_native"):
        for ci in (small, large):
            point, lo, hi = ci[k]
            assert lo <= point <= hi, (k, ci[k])
        assert large[k][2] - large[k][1] < small[k][2] - small[k][1], k
    assert set(small) == set(mt.METRICS)
    # same seed -> same interval
    assert mt.bootstrap_ci(*data(80, 0), 0.5, n_boot=200, seed=3) == mt.bootstrap_ci(*data(80, 0), 0.5, n_boot=200, seed=3)


def test_segment_bootstrap_resamples_speakers():
    rng = np.random.default_rng(2)
    spk_y = rng.integers(0, 2, 40)
    groups = np.repeat(np.arange(40), 20)  # 20 segments per speaker
    y = spk_y[groups]
    spk_effect = rng.normal(0, 1.5, 40)[groups]  # segments of one speaker are strongly correlated
    p = 1 / (1 + np.exp(-((2 * y - 1) + spk_effect + rng.normal(0, 0.3, y.size))))
    naive = mt.bootstrap_ci(y, p, 0.5, n_boot=400, seed=0)
    by_spk = mt.bootstrap_ci(y, p, 0.5, n_boot=400, seed=0, groups=groups)
    assert naive["accuracy"][0] == by_spk["accuracy"][0]
    width = lambda ci: ci["roc_auc"][2] - ci["roc_auc"][1]  # noqa: E731
    assert width(by_spk) > 1.5 * width(naive)  # speaker resampling does not pretend 800 independent samples


# --- Wilson, speaker table, nested threshold ------------------------------------------------------
def test_wilson_known_values():
    lo, hi = mt.wilson_ci(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=5e-4)
    lo, hi = mt.wilson_ci(10, 10)
    assert hi == 1.0 and lo == pytest.approx(1 - 0.2775, abs=5e-4)
    lo, hi = mt.wilson_ci(5, 10)
    assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=5e-4)
    assert all(np.isnan(mt.wilson_ci(0, 0)))


def test_speaker_table_averages_recordings_and_string_labels():
    df = pd.DataFrame({"speaker_id": ["a", "a", "b"], "label": ["native", "native", "non_native"],
                       "model": "m", "fold": 0, "p_native": [0.2, 0.6, 0.1]})
    s = mt.speaker_table(df)
    assert len(s) == 2 and s.set_index("speaker_id").loc["a", "p_native"] == pytest.approx(0.4)
    assert list(s["label"]) == [1, 0]


def test_nested_threshold_comes_from_the_other_folds():
    """Fold 0 is decided by the threshold that suits fold 1 (0.4) and vice versa (0.8), so both
    fold-0 speakers are called native and both fold-1 speakers non-native; one threshold chosen on
    all four could not do that."""
    df = pd.DataFrame({"speaker_id": list("abcd"), "label": [1, 0, 1, 0], "model": "m", "fold": [0, 0, 1, 1],
                       "p_native": [0.8, 0.6, 0.4, 0.2]})
    y, decision = nested_threshold_decisions(df, "m")
    assert list(y) == [1, 0, 1, 0] and list(decision) == [1, 1, 0, 0]
