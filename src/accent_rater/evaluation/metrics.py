"""Metrics of native-probabilities against labels: point metrics, ECE, speaker-bootstrap CIs,
Wilson intervals, and the predictions table they read.

Input contract (written by ``train``): a recording-level predictions table with columns
``speaker_id, label (1 = native, 0 = non_native), native_language, country, sex, age, model, fold,
p_native`` - one row group per model - and optionally a segment-level table ``speaker_id, label,
model, fold, p_native`` (one row per 7-s segment). Plain numpy / pandas / scikit-learn.

Conventions
- "native" is the positive class: a speaker is predicted native when ``p_native >= threshold``.
- Speaker level: recording rows are averaged to one row per (model, speaker) first (a no-op when
  each speaker has one recording, as in the Speech Accent Archive).
- Confidence intervals are 95 % percentile intervals of a bootstrap over *speakers*; at segment
  level a resampled speaker brings all of its segments. Point values are the full-data metrics.
- P/R/F1 use ``zero_division = 0``; ROC-AUC / PR-AUC are NaN when a class is missing.
- ECE: 15 equal-width bins on [0, 1], sum over bins of (bin share) * |mean label - mean p|.
"""

from __future__ import annotations

import math

import numpy as np

METRICS = (
    "accuracy", "balanced_accuracy", "roc_auc", "pr_auc",
    "precision_native", "recall_native", "f1_native",
    "precision_non_native", "recall_non_native", "f1_non_native",
    "brier", "ece", "n", "n_native",
)
ECE_BINS = 15
Z95 = 1.959963984540054
_LABEL_STRINGS = {"native": 1, "1": 1, "true": 1, "english": 1, "non_native": 0, "non-native": 0,
                  "nonnative": 0, "non native": 0, "0": 0, "false": 0}


# --- point metrics -------------------------------------------------------------------------------
def as_arrays(y, p) -> tuple[np.ndarray, np.ndarray]:
    """Labels (0/1 ints) and probabilities as flat arrays of one length; ValueError otherwise."""
    y = np.asarray(y).astype(np.int64).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y and p differ in length: {len(y)} vs {len(p)}")
    if len(y) and not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (non_native) or 1 (native)")
    if np.isnan(p).any():
        raise ValueError("p_native contains NaN")
    return y, p


def bin_index(p: np.ndarray, n_bins: int = ECE_BINS) -> np.ndarray:
    """Equal-width bin of each probability; p = 1 goes to the last bin."""
    return np.clip((np.clip(p, 0.0, 1.0) * n_bins).astype(np.int64), 0, n_bins - 1)


def ece(y, p, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error: sum_b (n_b / n) * |mean(y in b) - mean(p in b)|, equal-width bins."""
    y, p = as_arrays(y, p)
    if len(y) == 0:
        return float("nan")
    b = bin_index(p, n_bins)
    diff = np.bincount(b, weights=y - p, minlength=n_bins)  # n_b * (mean y - mean p) per bin
    return float(np.abs(diff).sum() / len(y))


def metrics(y, p, threshold: float = 0.5) -> dict[str, float]:
    """Threshold and ranking metrics of native-probabilities ``p`` against labels ``y`` (1 = native)."""
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        balanced_accuracy_score,
        brier_score_loss,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    y, p = as_arrays(y, p)
    n, n_pos = len(y), int(y.sum())
    if n == 0:
        return {k: (0.0 if k in ("n", "n_native") else float("nan")) for k in METRICS}
    pred = (p >= threshold).astype(np.int64)
    both = 0 < n_pos < n
    prec, rec, f1, _ = precision_recall_fscore_support(y, pred, labels=[1, 0], zero_division=0.0)
    recalls = [rec[i] for i, present in enumerate((n_pos > 0, n_pos < n)) if present]
    return {
        "accuracy": float(accuracy_score(y, pred)),
        # = sklearn's balanced_accuracy_score (mean recall over the classes present), without its warning
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)) if both else float(np.mean(recalls)),
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if n_pos > 0 else float("nan"),
        "precision_native": float(prec[0]), "recall_native": float(rec[0]), "f1_native": float(f1[0]),
        "precision_non_native": float(prec[1]), "recall_non_native": float(rec[1]),
        "f1_non_native": float(f1[1]),
        "brier": float(brier_score_loss(y, p, pos_label=1)) if both else float(np.mean((p - y) ** 2)),
        "ece": ece(y, p),
        "n": float(n),
        "n_native": float(n_pos),
    }


# --- vectorised bootstrap ------------------------------------------------------------------------
def _safe_div(a: np.ndarray, b: np.ndarray, empty: float = 0.0) -> np.ndarray:
    out = np.full(np.broadcast(a, b).shape, empty, dtype=np.float64)
    np.divide(a, b, out=out, where=b > 0)
    return out


def _weighted_metrics(y: np.ndarray, p: np.ndarray, threshold: float, W: np.ndarray) -> dict[str, np.ndarray]:
    """The metrics of ``metrics`` for each row of integer weights ``W`` (B x n): resampling with
    replacement is exactly "each sample counted W[b, i] times", so no per-resample Python loop."""
    W = W.astype(np.float64)
    yf = y.astype(np.float64)
    pred = (p >= threshold).astype(np.float64)
    tot = W.sum(1)
    P = W @ yf
    N = tot - P
    tp = W @ (yf * pred)
    fp = W @ ((1 - yf) * pred)
    fn = P - tp
    tn = N - fp
    out: dict[str, np.ndarray] = {}
    out["accuracy"] = _safe_div(tp + tn, tot, np.nan)
    rec_pos, rec_neg = _safe_div(tp, P, np.nan), _safe_div(tn, N, np.nan)
    out["balanced_accuracy"] = np.nanmean(np.stack([rec_pos, rec_neg]), axis=0) if len(W) else rec_pos
    out["precision_native"] = _safe_div(tp, tp + fp)
    out["recall_native"] = _safe_div(tp, P)
    out["f1_native"] = _safe_div(2 * tp, 2 * tp + fp + fn)
    out["precision_non_native"] = _safe_div(tn, tn + fn)
    out["recall_non_native"] = _safe_div(tn, N)
    out["f1_non_native"] = _safe_div(2 * tn, 2 * tn + fn + fp)
    out["brier"] = _safe_div(W @ (p - yf) ** 2, tot, np.nan)
    bins = bin_index(p)
    onehot = np.zeros((len(p), ECE_BINS))
    onehot[np.arange(len(p)), bins] = yf - p
    out["ece"] = _safe_div(np.abs(W @ onehot).sum(1), tot, np.nan)

    # ranking metrics over the distinct scores, highest first (ties form one ROC / PR step)
    order = np.argsort(-p, kind="mergesort")
    ps = p[order]
    starts = np.flatnonzero(np.r_[True, ps[1:] != ps[:-1]])
    Ws = W[:, order]
    tps = np.cumsum(np.add.reduceat(Ws * yf[order], starts, axis=1), axis=1)
    fps = np.cumsum(np.add.reduceat(Ws * (1 - yf[order]), starts, axis=1), axis=1)
    tps0 = np.concatenate([np.zeros((len(W), 1)), tps], 1)
    fps0 = np.concatenate([np.zeros((len(W), 1)), fps], 1)
    area = (np.diff(fps0, axis=1) * (tps0[:, 1:] + tps0[:, :-1]) / 2).sum(1)
    out["roc_auc"] = np.where((P > 0) & (N > 0), _safe_div(area, P * N, np.nan), np.nan)
    prec = _safe_div(tps, tps + fps)
    out["pr_auc"] = np.where(P > 0, _safe_div((np.diff(tps0, axis=1) * prec).sum(1), P, np.nan), np.nan)
    out["n"] = tot
    out["n_native"] = P
    return out


def bootstrap_ci(y, p, threshold: float = 0.5, n_boot: int = 1000, seed: int = 0, groups=None,
                 alpha: float = 0.05) -> dict[str, tuple[float, float, float]]:
    """``{metric: (point, lo, hi)}``: full-data value and the 95 % percentile interval of ``n_boot``
    resamples of speakers. Without ``groups`` each row is a speaker; with ``groups`` (speaker id per
    row, e.g. segment rows) the speakers are resampled and each brings all of its rows."""
    y, p = as_arrays(y, p)
    point = metrics(y, p, threshold)
    if groups is None:
        gidx, n_groups = np.arange(len(y)), len(y)
    else:
        groups = np.asarray(groups)
        if len(groups) != len(y):
            raise ValueError("groups must have one entry per row")
        _, gidx = np.unique(groups, return_inverse=True)
        gidx = gidx.ravel()
        n_groups = int(gidx.max()) + 1 if len(gidx) else 0
    if n_groups == 0 or n_boot <= 0:
        return {k: (v, float("nan"), float("nan")) for k, v in point.items()}
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, 2_000_000 // max(1, len(y))))  # bounds memory at a few tens of MB
    parts: dict[str, list[np.ndarray]] = {k: [] for k in METRICS}
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=b)
        for k, v in _weighted_metrics(y, p, threshold, counts[:, gidx]).items():
            parts[k].append(v)
        done += b
    out = {}
    for k in METRICS:
        vals = np.concatenate(parts[k])
        if np.isnan(vals).all():
            lo = hi = float("nan")
        else:
            lo, hi = (float(v) for v in np.nanpercentile(vals, [100 * alpha / 2, 100 * (1 - alpha / 2)]))
        out[k] = (point[k], lo, hi)
    return out


def wilson_ci(k: int | float, n: int | float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes out of n (NaNs when n = 0)."""
    if n <= 0:
        return float("nan"), float("nan")
    ph = k / n
    denom = 1 + z * z / n
    centre = (ph + z * z / (2 * n)) / denom
    half = z * math.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n)) / denom
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    return (0.0 if k <= 0 else min(lo, ph)), (1.0 if k >= n else max(hi, ph))


# --- tables --------------------------------------------------------------------------------------
def load_table(table):
    """A DataFrame as given, or read from a CSV / parquet path; ``label`` normalised to 0/1 ints."""
    import pandas as pd

    df = table.copy() if isinstance(table, pd.DataFrame) else (
        pd.read_parquet(table) if str(table).endswith(".parquet") else pd.read_csv(table))
    for col in ("speaker_id", "label", "model", "p_native"):
        if col not in df.columns:
            raise ValueError(f"predictions table lacks column {col!r} (has {list(df.columns)})")
    df["label"] = _labels(df["label"])
    df["speaker_id"] = df["speaker_id"].astype(str)
    df["model"] = df["model"].astype(str)
    df["p_native"] = df["p_native"].astype(np.float64)
    return df


def _labels(s):
    import pandas as pd

    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        vals = s.astype(np.int64)
    else:
        vals = s.astype(str).str.strip().str.lower().map(_LABEL_STRINGS)
        if vals.isna().any():
            bad = sorted(set(s[vals.isna()].astype(str)))[:5]
            raise ValueError(f"unrecognised labels {bad}: use 1/0 or native/non_native")
        vals = vals.astype(np.int64)
    if not vals.isin((0, 1)).all():
        raise ValueError("labels must be 0 (non_native) or 1 (native)")
    return vals


def speaker_table(df):
    """One row per (model, speaker): mean ``p_native`` over the speaker's recordings, first value of
    every other column. A no-op (copy) when the table already has one row per speaker and model."""
    df = load_table(df)
    if not df.duplicated(["model", "speaker_id"]).any():
        return df.reset_index(drop=True)
    if (df.groupby(["model", "speaker_id"])["label"].nunique() > 1).any():
        raise ValueError("a speaker has both labels")
    agg = {c: "first" for c in df.columns if c not in ("model", "speaker_id")}
    agg["p_native"] = "mean"
    return df.groupby(["model", "speaker_id"], sort=False, as_index=False).agg(agg)


def pearson_ci(y, p, groups, n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Pearson r of ``p`` against ``y`` with a 95% bootstrap interval that resamples ``groups``
    (speakers) with all their rows: (r, low, high)."""
    y, p, groups = np.asarray(y, float), np.asarray(p, float), np.asarray(groups)
    r = float(np.corrcoef(y, p)[0, 1])
    names, index = np.unique(groups, return_inverse=True)
    rows = [np.flatnonzero(index == k) for k in range(len(names))]
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        take = np.concatenate([rows[k] for k in rng.integers(0, len(rows), len(rows))])
        if np.std(y[take]) > 0 and np.std(p[take]) > 0:
            boots.append(np.corrcoef(y[take], p[take])[0, 1])
    low, high = np.percentile(boots, [2.5, 97.5]) if boots else (np.nan, np.nan)
    return r, float(low), float(high)
