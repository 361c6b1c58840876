"""Exploratory data report: ``write_report`` -> ``out_dir/README.md`` + PNG plots.

Metadata plots (speakers per class, languages, countries, durations) use every recording; audio
statistics (7-s segments, speech/silence ratio, log-mel statistics) come from running each file
through the real front-end (``audio.prepare`` -> ``audio.make_segments`` / ``logmel.log_mel``), on
all files or on those of ``max_files`` speakers, half of each label (``splits.speaker_subset``,
seed 0). Files the front-end refuses (``AudioError``) or cannot find are listed in the report (so is
any other exception a file raises, marked "unexpected": a long run is never lost to one file).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..training.data import LABELS, NATIVE, NON_NATIVE, Recording
from ..training.splits import speaker_subset
from .plots import figure, save
from .report import md_table

log = logging.getLogger(__name__)
_COLORS = {NATIVE: "#1f77b4", NON_NATIVE: "#ff7f0e"}
_DB_EDGES = np.arange(-110.0, 81.0, 1.0)  # histogram of log-mel values (dB); floor is -100 dB
TOP_N = 20


@dataclass
class _AudioStats:
    rows: list[dict] = field(default_factory=list)  # per file: speaker, label, duration, speech, segments
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (path, code, message)
    band_means: dict[str, list[np.ndarray]] = field(default_factory=lambda: {k: [] for k in LABELS})
    db_hist: np.ndarray = field(default_factory=lambda: np.zeros(len(_DB_EDGES) - 1, np.int64))
    db_min: float = np.inf
    db_max: float = -np.inf


def _analyse(recordings: Sequence[Recording]) -> _AudioStats:
    import torch
    from tqdm import tqdm

    from .. import audio, logmel
    from ..errors import AudioError

    st = _AudioStats()
    for r in tqdm(recordings, desc="EDA: analysing audio", unit="file"):
        try:
            speech = audio.prepare(r.path)
        except (AudioError, OSError) as exc:
            st.failures.append((r.path, getattr(exc, "code", type(exc).__name__), str(exc)))
            continue
        except Exception as exc:  # a front-end bug must not lose a long run; it is listed as such
            log.warning("unexpected error on %s: %r", r.path, exc)
            st.failures.append((r.path, f"unexpected {type(exc).__name__}", str(exc)))
            continue
        windows, _ = audio.make_segments(speech.audio)
        with torch.inference_mode():
            mel = logmel.log_mel(speech.audio)[0].numpy()  # (N_MELS, frames) of the speech itself
        st.band_means[r.label].append(mel.mean(axis=1))
        st.db_hist += np.histogram(np.clip(mel, _DB_EDGES[0], _DB_EDGES[-1] - 1e-3), _DB_EDGES)[0]
        st.db_min, st.db_max = min(st.db_min, float(mel.min())), max(st.db_max, float(mel.max()))
        st.rows.append(dict(speaker_id=r.speaker_id, label=r.label, path=r.path,
                            duration=speech.duration_seconds, speech=speech.speech_seconds,
                            segments=len(windows)))
    return st


def _counts_plot(meta, column: str, title: str, path: Path) -> tuple[str, str]:
    table = meta.pivot_table(index=column, columns="label", values="speaker_id", aggfunc="nunique", fill_value=0)
    table = table.reindex(columns=list(LABELS), fill_value=0)
    table["total"] = table.sum(axis=1)
    table = table.sort_values(["total"], ascending=False)
    top = table.head(TOP_N).iloc[::-1]
    fig = figure(7, max(3.0, 0.28 * len(top) + 1))
    ax = fig.add_subplot()
    left = np.zeros(len(top))
    for lab in LABELS:
        ax.barh(top.index.astype(str), top[lab], left=left, color=_COLORS[lab], label=lab)
        left += top[lab].to_numpy()
    ax.set_xlabel("speakers")
    ax.set_title(title + (f" (top {TOP_N} of {len(table)})" if len(table) > TOP_N else ""))
    ax.legend()
    rows = [(str(i), int(t[NATIVE]), int(t[NON_NATIVE]), int(t["total"])) for i, t in table.head(TOP_N).iterrows()]
    return save(fig, path), md_table([column, NATIVE, NON_NATIVE, "total"], rows)


def _balance_section(n_spk, n_rec, seg, out: Path) -> list[str]:
    """Speakers, recordings and 7 s segments per label: a bar plot and a table."""
    from .. import audio

    fig = figure(9, 3.5)
    for i, (series, name) in enumerate([(n_spk, "speakers"), (n_rec, "recordings"), (seg, "7-s segments")]):
        ax = fig.add_subplot(1, 3, i + 1)
        ax.bar(list(LABELS), series.to_numpy(), color=[_COLORS[k] for k in LABELS])
        ax.set_title(name)
        for x, v in enumerate(series.to_numpy()):
            ax.text(x, v, str(int(v)), ha="center", va="bottom")
    share = lambda s: f"{100 * s[NATIVE] / max(1, s.sum()):.1f}%"  # noqa: E731
    md = ["## Class balance", "", f"![class balance]({save(fig, out / 'class_balance.png')})", "",
           md_table(["", NATIVE, NON_NATIVE, "native share"],
                     [("speakers", int(n_spk[NATIVE]), int(n_spk[NON_NATIVE]), share(n_spk)),
                      ("recordings", int(n_rec[NATIVE]), int(n_rec[NON_NATIVE]), share(n_rec)),
                      (f"7-s segments ({audio.SEGMENT_SECONDS:g} s windows, {audio.SEGMENT_HOP_SECONDS:g} s hop, "
                       "analysed files)", int(seg[NATIVE]), int(seg[NON_NATIVE]), share(seg))]), ""]

    return md


def _duration_section(meta, res, out: Path) -> list[str]:
    """Durations per label (the metadata's where stated, else measured): a histogram and a table."""
    import pandas as pd

    measured = dict(zip(res.path, res.duration))
    meta["dur"] = [d if d is not None and not pd.isna(d) else measured.get(p) for d, p in zip(meta.duration, meta.path)]
    dur = meta.dropna(subset=["dur"])
    fig = figure(7, 4)
    ax = fig.add_subplot()
    if len(dur):
        bins = np.linspace(dur.dur.min(), dur.dur.max() + 1e-6, 30)
        for lab in LABELS:
            ax.hist(dur.dur[dur.label == lab], bins=bins, alpha=0.6, color=_COLORS[lab], label=lab)
    ax.set_xlabel("duration (s)")
    ax.set_ylabel("recordings")
    ax.legend()
    stats = []
    for lab in LABELS:
        d = dur.dur[dur.label == lab].astype(float)
        stats.append((lab, len(d), *((d.min(), d.median(), d.max()) if len(d) else ("-",) * 3)))
    md = ["## Durations", "", f"![durations]({save(fig, out / 'durations.png')})", "",
           md_table(["label", "recordings", "min s", "median s", "max s"], stats), ""]

    return md


def _speech_section(res, out: Path) -> list[str]:
    """The share of each file that is speech (silero-VAD) per label."""
    res["ratio"] = res.speech / res.duration.clip(lower=1e-6)
    fig = figure(7, 4)
    ax = fig.add_subplot()
    for lab in LABELS:
        ax.hist(res.ratio[res.label == lab], bins=np.linspace(0, 1, 26), alpha=0.6, color=_COLORS[lab], label=lab)
    ax.set_xlabel("speech seconds / duration seconds (silero-VAD)")
    ax.set_ylabel("recordings")
    ax.legend()
    rows = []
    for lab in LABELS:
        sel = res[res.label == lab]
        rows.append((lab, len(sel), *((sel.ratio.mean(), sel.speech.mean()) if len(sel) else ("-", "-"))))
    md = ["## Speech / silence ratio", "", f"![speech ratio]({save(fig, out / 'speech_ratio.png')})", "",
           md_table(["label", "files", "mean speech ratio", "mean speech s"], rows), ""]

    return md


def _mel_section(st, out: Path) -> list[str]:
    """Mean log-mel per band and the distribution of every frame's values; dead bands named."""
    from .. import audio

    fig = figure(9, 3.8)
    ax, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for lab in LABELS:
        if st.band_means[lab]:
            m = np.stack(st.band_means[lab])
            mu, sd = m.mean(axis=0), m.std(axis=0)
            ax.plot(mu, color=_COLORS[lab], label=f"{lab} ({len(m)} files)")
            ax.fill_between(np.arange(len(mu)), mu - sd, mu + sd, color=_COLORS[lab], alpha=0.2)
    ax.set_xlabel(f"mel band (0-{audio.F_MAX:.0f} Hz)")
    ax.set_ylabel("mean log-mel (dB)")
    ax.set_title("mean log-mel per band, ±1 sd across files")
    ax.legend()
    ax2.bar(_DB_EDGES[:-1], st.db_hist, width=1.0, align="edge", color="gray")
    ax2.set_yscale("log")
    ax2.set_xlabel("log-mel value (dB)")
    ax2.set_title("all frames, all bands")
    md = ["## Log-mel statistics", "", f"![mel statistics]({save(fig, out / 'mel_stats.png')})", ""]
    total = int(st.db_hist.sum())
    if total:
        cdf = np.cumsum(st.db_hist) / total
        q = {p: float(_DB_EDGES[1:][np.searchsorted(cdf, p / 100)]) for p in (1, 50, 99)}
        md += [f"Features: {audio.N_MELS} mels, n_fft {audio.N_FFT}, hop {audio.HOP_LENGTH}, "
               f"f_max {audio.F_MAX:.0f} Hz, speech level-normalised to {audio.TARGET_SPEECH_DBFS:g} dBFS.", "",
               md_table(["min dB", "p1 dB", "median dB", "p99 dB", "max dB"],
                         [(st.db_min, q[1], q[50], q[99], st.db_max)]), ""]
        means = [m for lab in LABELS for m in st.band_means[lab]]
        floor = 10 * np.log10(audio.DB_FLOOR) + 0.5
        dead = np.flatnonzero(np.max(np.stack(means), axis=0) <= floor).tolist()
        if dead:
            md += [f"Mel band(s) {dead} sit at the {floor - 0.5:.0f} dB floor in every file: their "
                   "filters hold no FFT bin (carry no information).", ""]

    return md


def write_report(
    recordings: Sequence[Recording],
    out_dir: str | Path,
    max_files: int | None = None,
    *,
    skipped: Sequence[tuple[str, str]] = (),
    title: str = "Accent Rater: dataset report",
) -> Path:
    """Write ``out_dir/README.md`` with PNG plots; returns the README path.

    ``skipped`` (a loader's ``LoadReport.skipped``) is listed so that the report shows every row
    that did not make it into the data."""
    import pandas as pd


    if not recordings:
        raise ValueError("no recordings to report on")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = pd.DataFrame([r.__dict__ for r in recordings])
    for col in ("native_language", "country", "sex"):
        meta[col] = meta[col].replace("", "(unknown)")
    chosen = list(recordings) if max_files is None or max_files >= len(recordings) else speaker_subset(recordings, max_files)
    st = _analyse(chosen)
    res = pd.DataFrame(st.rows, columns=["speaker_id", "label", "path", "duration", "speech", "segments"])
    md: list[str] = [f"# {title}", ""]

    # --- overview
    n_spk = meta.groupby("label")["speaker_id"].nunique().reindex(list(LABELS), fill_value=0)
    n_rec = meta.groupby("label").size().reindex(list(LABELS), fill_value=0)
    seg = res.groupby("label")["segments"].sum().reindex(list(LABELS), fill_value=0)
    md += [f"{len(recordings)} recordings of {meta.speaker_id.nunique()} speakers. Audio statistics from "
           f"{len(res)} of {len(chosen)} analysed files"
           + (f" (a class-balanced sample of {len(chosen)} of {len(recordings)})" if len(chosen) < len(recordings) else "")
           + f"; {len(st.failures)} failed the front-end; {len(skipped)} rows were skipped by the loader.", ""]

    md += _balance_section(n_spk, n_rec, seg, out)

    # --- languages and countries
    for column, title_ in (("native_language", "Native languages"), ("country", "Countries")):
        png, table = _counts_plot(meta, column, f"{title_} by label", out / f"{column}.png")
        md += [f"## {title_}", "", f"![{column}]({png})", "", table, ""]
    md += _duration_section(meta, res, out) + _speech_section(res, out) + _mel_section(st, out)

    # --- problems
    md += ["## Files that failed the audio front-end", ""]
    md += [md_table(["file", "error", "message"], [(Path(p).name, c, m) for p, c, m in st.failures]) if st.failures
           else "None.", ""]
    md += ["## Rows skipped by the loader", ""]
    md += [md_table(["row", "reason"], list(skipped)) if skipped else "None.", ""]
    readme = out / "README.md"
    readme.write_text("\n".join(md), encoding="utf-8")
    return readme


def run_eda(dataset: str, out_dir: str, max_files: int | None) -> Path:
    """Load ``dataset`` (any layout ``data.load_corpus`` detects) and write the report there."""
    from ..training.data import load_corpus

    report = load_corpus(dataset)
    if not report.recordings:
        raise ValueError(f"no usable recordings in {dataset} ({len(report.skipped)} rows skipped)")
    return write_report(report.recordings, out_dir, max_files, skipped=report.skipped,
                        title=f"Accent Rater: dataset report for {Path(dataset).name}")
