"""Evaluation report of a training run: per-group error analysis, fold summary, plots, Markdown
(``write_report``, ``report_run``, ``l1_report``). The metrics come from ``metrics``, the plots
from ``plots``; ``compare`` scores stacking combinations of saved members.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..training.data import AGE_BANDS, VARIETIES, age_band, native_variety
from ..training.stacking import nested_threshold_decisions
from .metrics import ECE_BINS, bootstrap_ci, load_table, metrics, speaker_table, wilson_ci
from .plots import figure, plot_confusion, plot_pr, plot_reliability, plot_roc, save

MIN_GROUP = 5  # groups smaller than this are never flagged
FLAG_RATIO = 2.0  # flag: group error rate > FLAG_RATIO x the overall rate
GROUP_VIEWS = ("native_language", "country", "sex", "age_band", "native_variety")
_REPORT_VIEWS = ("native_language", "native_variety", "sex", "age_band")
_VIEW_TITLES = {
    "native_language": "Native language",
    "country": "Country",
    "sex": "Sex",
    "age_band": "Age band",
    "native_variety": "Native variety (native speakers only)",
}


def _models(df) -> list[str]:
    return list(dict.fromkeys(df["model"]))


def _threshold(thresholds: Mapping[str, float] | float | None, model: str) -> float:
    if thresholds is None:
        return 0.5
    if isinstance(thresholds, (int, float)):
        return float(thresholds)
    return float(thresholds.get(model, 0.5))


def _group_column(df, by: str):
    if by == "age_band":
        return df["age"].map(age_band) if "age" in df.columns else np.full(len(df), "unknown")
    if by == "native_variety":
        return df["country"].map(native_variety) if "country" in df.columns else np.full(len(df), "other")
    if by not in df.columns:
        raise ValueError(f"no column {by!r} to group by (views: {GROUP_VIEWS})")
    col = df[by].astype(object).where(df[by].notna(), "")
    return col.map(lambda v: str(v).strip() or "unknown")


def _auc_above(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a random ``pos`` score > a random ``neg`` score), ties counting half (the ROC-AUC of pos vs neg)."""
    if not len(pos) or not len(neg):
        return float("nan")
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg)))


def group_errors(df, threshold: float = 0.5, by: str = "native_language", model: str | None = None,
                 min_group: int = MIN_GROUP, ratio: float = FLAG_RATIO):
    """Per-group speaker-level error rates of one model, with 95 % Wilson intervals.

    ``by``: a column (native_language, country, sex) or a derived view: ``age_band`` (<25, 25-44,
    45-64, 65+, unknown) or ``native_variety`` (native speakers only, by country: USA, UK, Canada,
    Australia, Ireland, other; an error there is a native speaker rated non-native). Columns: group,
    n_speakers, n_native, n_errors, error_rate, ci_lo, ci_hi, ratio (to the reference rate), flag
    (n_speakers >= ``min_group`` and error_rate > ``ratio`` x the reference rate). The reference
    ("overall") rate is the error rate of the population the groups partition - all speakers, or
    all native speakers for ``native_variety`` - and is stored in ``.attrs['overall']``."""
    import pandas as pd

    df = speaker_table(df)
    models = _models(df)
    if model is None:
        if len(models) > 1:
            raise ValueError(f"several models in the table ({models}); pass model=")
        model = models[0] if models else ""
    df = df[df["model"] == model]
    p_non_native = df.loc[df["label"] == 0, "p_native"].to_numpy()
    if by == "native_variety":
        df = df[df["label"] == 1]
    err = ((df["p_native"].to_numpy() >= threshold).astype(int) != df["label"].to_numpy()).astype(int)
    work = pd.DataFrame({"group": np.asarray(_group_column(df, by), dtype=object), "label": df["label"].to_numpy(),
                         "err": err, "p": df["p_native"].to_numpy()})
    n_all, e_all = len(work), int(err.sum())
    overall = e_all / n_all if n_all else float("nan")
    rows = []
    for g, sub in work.groupby("group", sort=False):
        n, k = len(sub), int(sub["err"].sum())
        lo, hi = wilson_ci(k, n)
        rate = k / n
        rat = rate / overall if overall > 0 else (float("inf") if rate > 0 else float("nan"))
        rows.append({"group": g, "n_speakers": n, "n_native": int(sub["label"].sum()), "n_errors": k,
                     "error_rate": rate, "ci_lo": lo, "ci_hi": hi, "ratio": rat,
                     "flag": bool(n >= min_group and rate > ratio * overall)})
        if by == "native_variety":  # threshold-free: how well this variety's natives are ranked above non-natives
            rows[-1]["auc_vs_non_native"] = _auc_above(sub["p"].to_numpy(), p_non_native)
    cols = ["group", "n_speakers", "n_native", "n_errors", "error_rate", "ci_lo", "ci_hi", "ratio", "flag"]
    cols += ["auc_vs_non_native"] if by == "native_variety" else []
    out = pd.DataFrame(rows, columns=cols)
    if by in ("age_band", "native_variety"):
        order = AGE_BANDS if by == "age_band" else VARIETIES
        out = out.set_index("group").reindex([g for g in order if g in set(out["group"])]).reset_index()
    else:
        out = out.sort_values(["n_speakers", "group"], ascending=[False, True], kind="mergesort").reset_index(drop=True)
    lo, hi = wilson_ci(e_all, n_all)
    out.attrs.update({"by": by, "model": model, "threshold": float(threshold), "overall": overall,
                      "overall_ci": (lo, hi), "n": n_all, "n_errors": e_all, "min_group": min_group, "ratio": ratio})
    return out


def fold_summary(df, thresholds: Mapping[str, float] | float | None = None):
    """Per model: ROC-AUC and balanced accuracy computed within each CV fold, then mean, sd
    (ddof 1) and a t-interval of the mean across folds (folds share training data, so the interval
    is optimistic; the speaker bootstrap in ``write_report`` is the primary CI)."""
    import pandas as pd
    from scipy import stats

    df = speaker_table(df)
    rows = []
    for model in _models(df):
        sub = df[df["model"] == model]
        thr = _threshold(thresholds, model)
        per = {"roc_auc": [], "balanced_accuracy": []}
        folds = sorted(sub["fold"].unique()) if "fold" in sub.columns else [0]
        for f in folds:
            fs = sub[sub["fold"] == f] if "fold" in sub.columns else sub
            m = metrics(fs["label"], fs["p_native"], thr)
            per["roc_auc"].append(m["roc_auc"])
            per["balanced_accuracy"].append(m["balanced_accuracy"])
        row = {"model": model, "n_folds": len(folds)}
        for k, vals in per.items():
            v = np.asarray(vals, dtype=float)
            v = v[~np.isnan(v)]
            mean = float(v.mean()) if len(v) else float("nan")
            sd = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
            half = float(stats.t.ppf(0.975, len(v) - 1) * sd / math.sqrt(len(v))) if len(v) > 1 else float("nan")
            row.update({f"{k}_mean": mean, f"{k}_sd": sd, f"{k}_ci_lo": mean - half, f"{k}_ci_hi": mean + half})
        rows.append(row)
    return pd.DataFrame(rows)


def plot_group_errors(table, path, top: int = 20, title: str | None = None) -> str:
    """Horizontal bars of per-group error rates with Wilson intervals; flagged groups in red, the
    reference rate and ``ratio`` x it as vertical lines. Groups below ``min_group`` speakers are
    left out when there are more than ``top`` groups."""
    a = table.attrs
    t = table
    if len(t) > top:
        t = t[t["n_speakers"] >= a.get("min_group", MIN_GROUP)].head(top)
    t = t.iloc[::-1]
    fig = figure(6.5, max(2.5, 0.32 * len(t) + 1.3))
    ax = fig.add_subplot()
    if len(t):
        rate = t["error_rate"].to_numpy()
        xerr = np.clip(np.vstack([rate - t["ci_lo"].to_numpy(), t["ci_hi"].to_numpy() - rate]), 0, None)
        colors = ["#d62728" if f else "#1f77b4" for f in t["flag"]]
        labels = [f"{g} (n={n})" for g, n in zip(t["group"], t["n_speakers"])]
        ax.barh(labels, rate, xerr=xerr, color=colors, ecolor="gray", capsize=2)
    overall = a.get("overall", float("nan"))
    if overall == overall:
        ax.axvline(overall, color="black", lw=1, label=f"overall {100 * overall:.1f}%")
        ax.axvline(a.get("ratio", FLAG_RATIO) * overall, color="#d62728", ls="--", lw=1,
                   label=f"{a.get('ratio', FLAG_RATIO):g}x overall")
    ax.set_xlim(0, 1)
    what = "native rated non-native" if a.get("by") == "native_variety" else "error rate"
    ax.set_xlabel(f"{what} (95% Wilson CI)")
    ax.set_title(title or f"{_VIEW_TITLES.get(a.get('by'), a.get('by'))}: {a.get('model', '')}")
    ax.legend(loc="lower right", fontsize="small")
    return save(fig, path)


# --- report --------------------------------------------------------------------------------------


def md_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table; floats to 3 significant digits, everything else as ``str`` gives it."""
    def cell(v: object) -> str:
        return (f"{v:.3g}" if isinstance(v, (float, np.floating)) else str(v)).replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _num(v: float, digits: int = 3) -> str:
    return "n/a" if v is None or v != v else f"{v:.{digits}f}"


def ci_text(t: tuple[float, float, float], digits: int = 3) -> str:
    point, lo, hi = t
    if point != point:
        return "n/a"
    return f"{point:.{digits}f} [{_num(lo, digits)}, {_num(hi, digits)}]"


def _pct(v: float) -> str:
    return "n/a" if v != v else f"{100 * v:.1f}%"


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _ci_dict(ci: Mapping[str, tuple[float, float, float]]) -> dict[str, dict[str, float]]:
    return {k: {"point": v[0], "lo": v[1], "hi": v[2]} for k, v in ci.items()}


def _flag_sentences(table, what: str = "error rate") -> list[str]:
    a = table.attrs
    flagged = table[table["flag"]]
    if not len(flagged):
        return [f"No group with at least {a['min_group']} speakers exceeds {a['ratio']:g}x the overall {what} "
                f"of {_pct(a['overall'])} ({a['n_errors']} of {a['n']})."]
    out = []
    for _, r in flagged.iterrows():
        out.append(f"- **Flagged: {r['group']}** - {r['n_errors']} of {r['n_speakers']} speakers wrong "
                   f"({_pct(r['error_rate'])}, 95% CI {_pct(r['ci_lo'])}-{_pct(r['ci_hi'])}), "
                   f"{r['ratio']:.1f}x the overall {_pct(a['overall'])}.")
    return [f"Groups with at least {a['min_group']} speakers whose {what} exceeds {a['ratio']:g}x the overall rate:", "",
            *out]


def _group_md(table, show_small: bool) -> str:
    a = table.attrs
    t = table if show_small else table[table["n_speakers"] >= a["min_group"]]
    auc = "auc_vs_non_native" in t.columns
    rows = [(r["group"], r["n_speakers"], r["n_native"], r["n_errors"], _pct(r["error_rate"]),
             f"{_pct(r['ci_lo'])}-{_pct(r['ci_hi'])}",
             "n/a" if not math.isfinite(r["ratio"]) else f"{r['ratio']:.2f}", "**yes**" if r["flag"] else "",
             *((_num(r["auc_vs_non_native"]),) if auc else ()))
            for _, r in t.iterrows()]
    md = md_table(["group", "speakers", "native", "errors", "error rate", "95% Wilson CI", "x overall", "flag",
                    *(("ROC-AUC vs all non-natives",) if auc else ())], rows)
    if auc:
        md += ("\n\nThe last column does not depend on the threshold: the chance that a native speaker of that variety "
               "gets a higher p_native than a random non-native speaker. A high error rate with a high AUC means the "
               "threshold, not the ranking, fails that group.")
    hidden = table[table["n_speakers"] < a["min_group"]] if not show_small else table.iloc[:0]
    if len(hidden):
        md += (f"\n\n{len(hidden)} smaller groups ({int(hidden['n_speakers'].sum())} speakers, "
               f"{int(hidden['n_errors'].sum())} errors) are not shown; every group is in `metrics.json` "
               f"and the CSV next to this report.")
    return md


def _usa_vs_rest(table) -> str:
    """Sentence comparing the false 'non-native' rate of US natives with all other natives."""
    from scipy.stats import fisher_exact

    usa = table[table["group"] == "USA"]
    rest = table[table["group"] != "USA"]
    if not len(usa) or not len(rest) or int(rest["n_speakers"].sum()) == 0:
        return "Not enough native speakers from both the USA and elsewhere to compare varieties."
    n1, k1 = int(usa["n_speakers"].iloc[0]), int(usa["n_errors"].iloc[0])
    n2, k2 = int(rest["n_speakers"].sum()), int(rest["n_errors"].sum())
    r1, r2 = k1 / n1, k2 / n2
    lo1, hi1 = wilson_ci(k1, n1)
    lo2, hi2 = wilson_ci(k2, n2)
    _, pval = fisher_exact([[k1, n1 - k1], [k2, n2 - k2]])
    verdict = ("the model does treat non-American native accents as less native"
               if pval < 0.05 and r2 > r1 else
               "the difference is not significant at the 5% level" if pval >= 0.05 else
               "US natives are rated non-native more often than other natives")
    return (f"Native speakers from the USA are rated non-native {_pct(r1)} of the time ({k1}/{n1}, CI "
            f"{_pct(lo1)}-{_pct(hi1)}); natives from everywhere else {_pct(r2)} ({k2}/{n2}, CI "
            f"{_pct(lo2)}-{_pct(hi2)}). Fisher's exact test p = {pval:.3g}: {verdict}.")


def _speaker_sections(spk, models: list[str], thr: dict[str, float], level: dict[str, dict], primary: str, n_native: int,
                      n_spk: int, n_boot: int, seed: int) -> tuple[list[str], dict[str, dict]]:
    """The speaker-level tables: every metric, per class, and with thresholds chosen on the other folds."""
    md: list[str] = []
    head = ["model", "threshold", "n", "accuracy", "balanced acc.", "ROC-AUC", "PR-AUC", "Brier", "ECE"]
    rows = [(f"**{m}**" if m == primary else m, f"{thr[m]:.3f}", int(level[m]["n"][0]),
             *(ci_text(level[m][k]) for k in ("accuracy", "balanced_accuracy", "roc_auc", "pr_auc", "brier", "ece")))
            for m in models]
    md += ["## Speaker-level metrics", "", md_table(head, rows), "",
           "PR-AUC is average precision with native as the positive class (chance = native share "
           f"{n_native / max(1, n_spk):.2f}). ECE uses {ECE_BINS} equal-width bins; it is biased upward "
           "on small samples, so its bootstrap interval can sit above the point value.", ""]
    head = ["model", "precision native", "recall native", "F1 native", "precision non-native",
            "recall non-native", "F1 non-native"]
    rows = [(m, *(ci_text(level[m][k]) for k in ("precision_native", "recall_native", "f1_native",
                                               "precision_non_native", "recall_non_native", "f1_non_native")))
            for m in models]
    md += ["### Per class", "", md_table(head, rows), ""]
    nested: dict[str, dict] = {}
    if "fold" in spk.columns and spk["fold"].nunique() > 1:
        rows = []
        for m in models:
            yy, dec = nested_threshold_decisions(spk, m)
            b = bootstrap_ci(yy, dec.astype(float), 0.5, n_boot=n_boot, seed=seed)
            nested[m] = {k: b[k] for k in ("accuracy", "balanced_accuracy")}
            rows.append((m, ci_text(b["accuracy"]), ci_text(b["balanced_accuracy"])))
        md += ["### Threshold chosen on the other folds", "",
               "The thresholds above are chosen on all out-of-fold predictions, so accuracy and balanced "
               "accuracy are slightly optimistic. Here each fold is decided by a threshold chosen on the other "
               "folds only (ROC-AUC, Brier and ECE do not depend on the threshold).", "",
               md_table(["model", "accuracy", "balanced acc."], rows), ""]
    return md, nested


def _fold_section(spk, thr: dict[str, float]):
    """Each metric within each test fold: mean, sd and a t-interval across folds (markdown, table or None)."""
    md: list[str] = []
    folds = fold_summary(spk, thr) if "fold" in spk.columns else None
    if folds is not None and len(folds):
        rows = [(r["model"], int(r["n_folds"]),
                 f"{_num(r['roc_auc_mean'])} ± {_num(r['roc_auc_sd'])} [{_num(r['roc_auc_ci_lo'])}, {_num(r['roc_auc_ci_hi'])}]",
                 f"{_num(r['balanced_accuracy_mean'])} ± {_num(r['balanced_accuracy_sd'])} "
                 f"[{_num(r['balanced_accuracy_ci_lo'])}, {_num(r['balanced_accuracy_ci_hi'])}]")
                for _, r in folds.iterrows()]
        md += ["### Across CV folds", "",
               "Metric within each test fold: mean ± sd across folds [95% t-interval of the mean; folds share "
               "training data, so this interval is optimistic - prefer the bootstrap above].", "",
               md_table(["model", "folds", "ROC-AUC", "balanced accuracy"], rows), ""]
    return md, folds


def _segment_section(segments, thresholds: Mapping[str, float] | None, n_boot: int, seed: int) -> tuple[list[str], dict[str, dict]]:
    """Each 7 s segment scored on its own, bootstrapped by speaker."""
    md: list[str] = []
    seg_level: dict[str, dict] = {}
    if segments is not None:
        seg = load_table(segments)
        for m in _models(seg):
            sub = seg[seg["model"] == m]
            seg_level[m] = bootstrap_ci(sub["label"], sub["p_native"], _threshold(thresholds, m),
                                        n_boot=n_boot, seed=seed, groups=sub["speaker_id"].to_numpy())
        head = ["model", "threshold", "segments", "speakers", "accuracy", "balanced acc.", "ROC-AUC", "PR-AUC", "Brier", "ECE"]
        rows = [(m, f"{_threshold(thresholds, m):.3f}", int(v["n"][0]),
                 seg[seg["model"] == m]["speaker_id"].nunique(),
                 *(ci_text(v[k]) for k in ("accuracy", "balanced_accuracy", "roc_auc", "pr_auc", "brier", "ece")))
                for m, v in seg_level.items()]
        md += ["## Segment-level metrics", "",
               "Each 7-s segment scored on its own (the speaker threshold reused); the bootstrap resamples "
               "speakers and takes all of their segments, so intervals are not narrowed by the many segments "
               "per speaker.", "", md_table(head, rows), ""]
    return md, seg_level


def _plot_sections(spk, primary: str, threshold: float, out: Path) -> tuple[list[str], list[str]]:
    """ROC, precision-recall, reliability and the primary model's confusion matrix."""
    p_roc = plot_roc(spk, out / "roc.png")
    p_pr = plot_pr(spk, out / "pr.png")
    p_rel = plot_reliability(spk, out / "reliability.png")
    prim = spk[spk["model"] == primary]
    p_cm = plot_confusion(prim["label"], prim["p_native"], threshold, out / "confusion.png",
                          title=f"Confusion matrix: {primary}")
    plots = [p_roc, p_pr, p_rel, p_cm]
    md = ["## Curves", "", f"![ROC curves]({p_roc})", "", f"![precision-recall curves]({p_pr})", "",
           "## Calibration", "", f"![reliability diagram]({p_rel})", "",
           f"## Confusion matrix (`{primary}`)", "", f"![confusion matrix]({p_cm})", ""]
    return md, plots


def _group_sections(prim, primary: str, threshold: float, out: Path) -> tuple[list[str], dict[str, list[dict]], dict[str, dict], list[str]]:
    """Error rates by group (CSV for every view, plots and flags for the reported ones)."""
    plots: list[str] = []
    groups: dict[str, list[dict]] = {}
    group_attrs: dict[str, dict] = {}
    md = [f"## Errors by group (`{primary}`, threshold {threshold:.3f})", "",
           f"Speaker-level error rates with 95% Wilson intervals. A group is flagged when it has at least "
           f"{MIN_GROUP} speakers and its error rate is more than {FLAG_RATIO:g}x the overall rate.", ""]
    for view in GROUP_VIEWS:
        if view == "country" and "country" not in prim.columns:
            continue
        table = group_errors(prim, threshold, by=view)
        table.to_csv(out / f"groups_{view}.csv", index=False)
        groups[view] = table.to_dict(orient="records")
        group_attrs[view] = dict(table.attrs)
        if view not in _REPORT_VIEWS:
            continue
        png = plot_group_errors(table, out / f"groups_{view}.png")
        plots.append(png)
        md += [f"### {_VIEW_TITLES[view]}", ""]
        if view == "native_variety":
            md += ["Native speakers only, by country; an error here is a native speaker rated **non-native**. "
                   "If American natives are rarely misjudged but other varieties often are, the model has "
                   "learned 'native' as 'American'.", "", _usa_vs_rest(table), ""]
        md += [f"![{view}]({png})", "", _group_md(table, show_small=view != "native_language"), "",
               *_flag_sentences(table, "false 'non-native' rate" if view == "native_variety" else "error rate"), ""]
    return md, groups, group_attrs, plots


def write_report(
    recordings,
    out_dir: str | Path,
    segments=None,
    thresholds: Mapping[str, float] | None = None,
    primary: str | None = None,
    title: str = "Accent Rater: evaluation report",
    extra_markdown: str = "",
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> Path:
    """Write ``out_dir/README.md`` (tables, flags, embedded PNG plots), ``out_dir/metrics.json``
    (every number, point + 95% CI) and per-group CSVs; returns the README path.

    ``recordings`` / ``segments``: DataFrames or CSV paths (the input contract is in ``metrics``).
    ``thresholds``: per model (missing models use 0.5). ``primary``: the model whose confusion
    matrix and group tables are shown; by default the one with the highest speaker-level ROC-AUC
    (stated in the report, since choosing on the test numbers is itself optimistic)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spk = speaker_table(recordings)
    if not len(spk):
        raise ValueError("no predictions to report on")
    models = _models(spk)
    thr = {m: _threshold(thresholds, m) for m in models}
    level: dict[str, dict] = {}
    for m in models:
        sub = spk[spk["model"] == m]
        level[m] = bootstrap_ci(sub["label"], sub["p_native"], thr[m], n_boot=n_boot, seed=seed)
    primary_note = ""
    if primary is None:
        primary = max(models, key=lambda m: -np.inf if level[m]["roc_auc"][0] != level[m]["roc_auc"][0]
                      else level[m]["roc_auc"][0])
        primary_note = " (no primary model was named: chosen as the highest speaker-level ROC-AUC below)"
    elif primary not in models:
        raise ValueError(f"primary model {primary!r} not among {models}")

    n_spk = spk[spk["model"] == primary]
    n_native = int(n_spk["label"].sum())
    md: list[str] = [f"# {title}", ""]
    md += [f"{len(n_spk)} speakers ({n_native} native, {len(n_spk) - n_native} non-native), "
           f"{len(models)} model(s): {', '.join(f'`{m}`' for m in models)}. Primary model: `{primary}`{primary_note}. "
           f"Every number is out-of-fold; intervals are 95% percentile intervals of {n_boot} bootstrap resamples "
           f"of speakers (seed {seed}). A speaker is predicted native when p_native >= the model's threshold.", ""]

    md_s, nested = _speaker_sections(spk, models, thr, level, primary, n_native, len(n_spk), n_boot, seed)
    md_f, folds = _fold_section(spk, thr)
    md_g, seg_level = _segment_section(segments, thresholds, n_boot, seed)
    prim = spk[spk["model"] == primary]
    md_p, plots = _plot_sections(spk, primary, thr[primary], out)
    md_e, groups, group_attrs, group_plots = _group_sections(prim, primary, thr[primary], out)
    md += md_s + md_f + md_g + md_p + md_e
    plots += group_plots

    if extra_markdown:
        md += [extra_markdown.rstrip(), ""]
    readme = out / "README.md"
    readme.write_text("\n".join(md))

    payload = {
        "title": title, "primary": primary, "thresholds": thr, "n_boot": n_boot, "seed": seed,
        "ci": "95% percentile bootstrap over speakers", "ece_bins": ECE_BINS,
        "speaker_level": {m: _ci_dict(v) for m, v in level.items()},
        "speaker_level_nested_threshold": {m: _ci_dict(v) for m, v in nested.items()},
        "segment_level": {m: _ci_dict(v) for m, v in seg_level.items()},
        "folds": [] if folds is None else folds.to_dict(orient="records"),
        "groups": groups, "group_overall": group_attrs, "plots": plots,
    }
    (out / "metrics.json").write_text(json.dumps(_jsonable(payload), indent=1))
    return readme


def report_run(run_dir: str | Path, out_dir: str | Path | None = None, *, n_boot: int = 1000) -> Path:
    """Report of a training run directory: ``predictions.csv`` (+ ``segments.csv``), thresholds and
    primary model from ``summary.json`` (``thresholds`` per model if present, else ``threshold``
    for the primary and 0.5 for the rest), and ``leakage.json`` / ``notes.md`` appended when present.
    Writes to ``out_dir`` (default ``run_dir/report``)."""
    run = Path(run_dir)
    preds = run / "predictions.csv"
    if not preds.is_file():
        raise FileNotFoundError(f"{preds} not found: is {run} a training run directory?")
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    primary = summary.get("primary") or None
    thresholds = dict(summary.get("thresholds") or {})
    if primary and "threshold" in summary:
        thresholds.setdefault(primary, float(summary["threshold"]))
    extra = []
    leak = run / "leakage.json"
    if leak.is_file():
        extra += ["## Leakage demonstration", "", "```json", leak.read_text().strip(), "```", ""]
    if (run / "notes.md").is_file():
        extra.append((run / "notes.md").read_text())
    out = Path(out_dir) if out_dir else run / "report"
    l1 = None
    if (run / "l1_predictions.csv").is_file():
        out.mkdir(parents=True, exist_ok=True)
        l1, l1_md = l1_report(run / "l1_predictions.csv", out, n_boot=n_boot)
        extra.append(l1_md)
    segs = run / "segments.csv"
    readme = write_report(preds, out, segments=segs if segs.is_file() else None, thresholds=thresholds, primary=primary,
                          title=f"Accent Rater: evaluation of run `{summary.get('name', run.name)}`",
                          extra_markdown="\n".join(extra), n_boot=n_boot)
    if l1 is not None:
        saved = json.loads((out / "metrics.json").read_text())
        saved["l1"] = l1
        (out / "metrics.json").write_text(json.dumps(saved, indent=1))
    return readme


def l1_report(path: Path, out: Path, *, n_boot: int = 1000, seed: int = 0) -> tuple[dict, str]:
    """First-language guess over the non-native speakers of ``l1_predictions.csv``: top-1 / top-3
    accuracy and macro recall among their languages (English excluded, as the product shows it),
    with 95% bootstrap CIs over speakers, and a confusion matrix (``l1_confusion.png``)."""
    import pandas as pd

    df = pd.read_csv(path)
    langs = [c for c in df.columns[4:] if c != "english"]
    nn = df[df["label"] == "non_native"].reset_index(drop=True)
    P = nn[langs].to_numpy(float)
    truth = np.array([langs.index(x) for x in nn["language"]])
    order = np.argsort(-P, axis=1)
    top1 = order[:, 0] == truth
    top3 = (order[:, :3] == truth[:, None]).any(axis=1)

    def macro(idx: np.ndarray) -> float:
        return float(np.mean([top1[idx][truth[idx] == c].mean() for c in range(len(langs)) if (truth[idx] == c).any()]))

    rng = np.random.default_rng(seed)
    boots = {"top1": [], "top3": [], "macro_recall": []}
    for _ in range(n_boot):
        idx = rng.integers(0, len(nn), len(nn))
        boots["top1"].append(top1[idx].mean())
        boots["top3"].append(top3[idx].mean())
        boots["macro_recall"].append(macro(idx))
    point = {"top1": float(top1.mean()), "top3": float(top3.mean()), "macro_recall": macro(np.arange(len(nn)))}
    res = {k: {"point": v, "lo": float(np.percentile(boots[k], 2.5)), "hi": float(np.percentile(boots[k], 97.5))} for k, v in point.items()}
    res["n_speakers"] = int(len(nn))
    res["languages"] = langs
    conf = np.zeros((len(langs), len(langs)), int)
    for t, pr in zip(truth, order[:, 0]):
        conf[t, pr] += 1
    res["confusion"] = conf.tolist()
    # English vs the rest: how often a non-native's top class overall is English
    if "english" in df.columns:
        res["english_top_share_non_natives"] = float((nn[[*langs, "english"]].to_numpy(float).argmax(1) == len(langs)).mean())
    fig = figure(6.5, 5.5)
    ax = fig.add_subplot()
    ax.imshow(conf / np.maximum(conf.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(langs)), langs, rotation=45, ha="right")
    ax.set_yticks(range(len(langs)), langs)
    for i in range(len(langs)):
        for j in range(len(langs)):
            ax.text(j, i, conf[i, j], ha="center", va="center", fontsize=8, color="black" if conf[i, j] < conf[i].sum() * 0.6 else "white")
    ax.set_xlabel("guessed (top-1)")
    ax.set_ylabel("first language")
    ax.set_title(f"First-language guess, {len(nn)} non-native speakers (out of fold)")
    img = save(fig, out / "l1_confusion.png")
    rows = [(name, f"{ci_text((res[k]['point'], res[k]['lo'], res[k]['hi']))}") for k, name in
            (("top1", "top-1 accuracy"), ("top3", "top-3 accuracy"), ("macro_recall", "macro recall (top-1)"))]
    recall = [(lang, int(conf[i].sum()), f"{conf[i, i] / max(conf[i].sum(), 1):.3f}") for i, lang in enumerate(langs)]
    md = "\n".join([
        "## First-language guess", "",
        f"Out-of-fold, over the {len(nn)} non-native speakers, among {len(langs)} languages (the product shows the guess "
        "only for speech rated non-native); 95% bootstrap intervals over speakers.", "",
        md_table(["measure", "value [95% CI]"], rows), "",
        md_table(["first language", "speakers", "recall (top-1)"], recall), "",
        f"![confusion]({img})", "",
    ])
    return res, md
