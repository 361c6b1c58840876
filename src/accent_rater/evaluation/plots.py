"""Evaluation plots (ROC, precision-recall, reliability, confusion, per-group errors) with
matplotlib's object API: an Agg canvas, pyplot is never touched. Used by ``report`` and ``eda``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .metrics import ECE_BINS, as_arrays, bin_index, ece


def figure(width: float = 6.0, height: float = 4.5):
    from matplotlib.figure import Figure  # OO API: renders with Agg, leaves pyplot's backend alone

    return Figure(figsize=(width, height))


def save(fig, path: Path) -> str:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path.name


def _by_model(df) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {m: (sub["label"].to_numpy(), sub["p_native"].to_numpy()) for m, sub in df.groupby("model", sort=False)}


def plot_roc(df, path, title: str = "ROC (speaker level)") -> str:
    """ROC curves of every model in ``df`` (speaker rows) in one figure; returns the file name."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig = figure()
    ax = fig.add_subplot()
    for m, (y, p) in _by_model(df).items():
        if 0 < y.sum() < len(y):
            fpr, tpr, _ = roc_curve(y, p)
            ax.plot(fpr, tpr, label=f"{m} (AUC {roc_auc_score(y, p):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="gray", lw=1)
    ax.set_xlabel("false native rate (non-native rated native)")
    ax.set_ylabel("true native rate")
    ax.set_title(title)
    ax.legend(loc="lower right")
    return save(fig, path)


def plot_pr(df, path, title: str = "Precision-recall, native = positive (speaker level)") -> str:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    fig = figure()
    ax = fig.add_subplot()
    base = None
    for m, (y, p) in _by_model(df).items():
        if y.sum() > 0:
            prec, rec, _ = precision_recall_curve(y, p)
            ax.step(rec, prec, where="post", label=f"{m} (AP {average_precision_score(y, p):.3f})")
            base = y.mean()
    if base is not None:
        ax.axhline(base, ls="--", color="gray", lw=1, label=f"chance ({base:.2f})")
    ax.set_xlabel("recall (native)")
    ax.set_ylabel("precision (native)")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(loc="lower left")
    return save(fig, path)


def plot_reliability(df, path, n_bins: int = ECE_BINS, title: str = "Reliability (speaker level)") -> str:
    """Observed native share against mean predicted p_native per equal-width bin, every model; below,
    the histogram of predictions."""
    fig = figure(6, 6)
    ax = fig.add_subplot(3, 1, (1, 2))
    ax2 = fig.add_subplot(3, 1, 3)
    edges = np.linspace(0, 1, n_bins + 1)
    ax.plot([0, 1], [0, 1], ls="--", color="gray", lw=1, label="perfect calibration")
    for m, (y, p) in _by_model(df).items():
        b = bin_index(p, n_bins)
        cnt = np.bincount(b, minlength=n_bins)
        keep = cnt > 0
        mp = np.bincount(b, weights=p, minlength=n_bins)[keep] / cnt[keep]
        my = np.bincount(b, weights=y.astype(float), minlength=n_bins)[keep] / cnt[keep]
        line, = ax.plot(mp, my, marker="o", label=f"{m} (ECE {ece(y, p, n_bins):.3f})")
        ax2.hist(p, bins=edges, histtype="step", color=line.get_color())
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("observed native share")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")
    ax2.set_xlim(0, 1)
    ax2.set_xlabel(f"predicted p_native ({n_bins} equal-width bins)")
    ax2.set_ylabel("speakers")
    return save(fig, path)


def plot_confusion(y, p, threshold: float, path, title: str = "Confusion matrix") -> str:
    """2 x 2 counts (rows: true, columns: predicted; native first) with row percentages."""
    y, p = as_arrays(y, p)
    pred = (p >= threshold).astype(int)
    cm = np.array([[np.sum((y == t) & (pred == q)) for q in (1, 0)] for t in (1, 0)])
    fig = figure(4.6, 4)
    ax = fig.add_subplot()
    rows = cm.sum(1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(2):
        for j in range(2):
            ax.text(j, i, f"{cm[i, j]}\n{100 * share[i, j]:.1f}%", ha="center", va="center",
                    color="white" if share[i, j] > 0.6 else "black")
    names = ["native", "non_native"]
    ax.set_xticks([0, 1], names)
    ax.set_yticks([0, 1], names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title} (threshold {threshold:.3f})")
    return save(fig, path)
