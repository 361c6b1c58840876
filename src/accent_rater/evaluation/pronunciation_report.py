"""The pronunciation heads' report (``reports/pronunciation/``): figures, the out-of-fold
predictions behind them, and what the scores are and are not."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from .report import md_table

TARGETS_DONE = {"total": 0.80, "accuracy": 0.78, "fluency": 0.82, "prosody": 0.82}  # issue 20's dev targets
WORD_TARGET = 0.60


def _ci(t: Any) -> str:
    return f"{t[0]:.3f} [{t[1]:.3f}, {t[2]:.3f}]"


def write_report(out: Path, t: Any, utt: dict[str, np.ndarray], words: np.ndarray, summary: dict[str, Any]) -> Path:
    """README.md, metrics.json and predictions.csv (one row per reading: corpus, speaker, the
    experts' scores where there are some, the out-of-fold scores) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(summary, indent=1))
    with open(out / "predictions.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["corpus", "key", "speaker", *(f"expert_{a}" for a in utt), *(f"score_{a}" for a in utt)])
        for i, r in enumerate(t.items):
            experts = [t.target(a)[i] for a in utt]
            w.writerow([r.corpus, r.key, r.speaker, *("" if np.isnan(e) else e for e in experts),
                        *(round(float(utt[a][i]) * 10, 1) for a in utt)])
    rows = [[a, _ci(v["utterance"]), _ci(v["speaker"]), _ci(v["within_speaker"]), f"{v['children']:.3f} / {v['adults']:.3f}",
             f"{TARGETS_DONE[a]:.2f}"] for a, v in summary["aspects"].items()]
    wr = summary["words"]["r"]
    rows.append(["word accuracy", _ci(wr), "", "", "", f"{WORD_TARGET:.2f}"])
    lines = [
        "# Pronunciation scores: cross-validated figures",
        "",
        "Written by `python -m accent_rater.training.pronunciation fit` (the heads in the default bundle).",
        f"speechocean762 train split: {summary['readings']} readings of {summary['speakers']} speakers, 5 speaker-disjoint",
        "folds; each fold's settings (principal components, ridge strength) chosen by an inner speaker-disjoint",
        "CV on its training speakers only. Pearson r with the experts (median of five, 0-10), 95% intervals",
        "from 1,000 speaker bootstraps. Speaker level: each speaker's mean score against the mean of the experts'.",
        "Within speaker: each speaker's readings about that speaker's mean (does the score move with a learner's",
        f"better and worse readings?). Children: speakers aged up to {summary.get('child_age', 12)}.",
        "",
        md_table(["aspect", "readings r", "speakers r", "within speaker r", "children / adults r", "issue target (readings)"], rows),
        "",
    ]
    a = summary.get("archive")
    if a:
        rho, p = a["spearman_age_onset"]
        lines += [
            "## Beyond speechocean762 (never trained on)",
            "",
            f"- Speech Accent Archive, {a['natives']} natives and {a['non_natives']} non-natives reading the passage "
            f"(8 kHz band): ROC-AUC of `total` separating natives from non-natives {_ci(a['roc_auc_total'])} "
            f"(target 0.90); median total {a['native_median']:.0f} (natives) vs {a['non_native_median']:.0f} (non-natives).",
            f"- Among the archive's non-natives ({a['age_onset_n']}), Spearman(total, age English was learned) = "
            f"{rho:.3f} (p = {p:.2g}): later learners score lower." if rho < 0 else
            f"- Among the archive's non-natives, Spearman(total, age English was learned) = {rho:.3f} (p = {p:.2g}).",
            "",
        ]
    lines += _held_out(summary)
    lib = summary.get("librispeech_total") or {}
    if lib.get("n"):
        lines += [f"LibriSpeech natives (free speech, scored on what was heard; in the folds as the top of the "
                  f"scale): median out-of-fold total {lib['median']:.0f}.", ""]
    lines += [
        "## What the scores are and are not",
        "",
        "They estimate how speechocean762's experts would rate a reading (accuracy of the sounds, fluency,",
        "prosody, overall), from Whisper's view of it. They are not a test score, not a measure of",
        "intelligibility to every listener, and not a judgement of a person. Trained on Mandarin-L1 learners",
        "reading short sentences: other first languages and long free speech are checked only as above.",
        "",
        f"Settings per fold: {summary['settings']['folds']}; the bundle's: {summary['settings']['final']}.",
    ]
    (out / "README.md").write_text("\n".join(lines) + "\n")
    return out


def _held_out(summary: dict[str, Any]) -> list[str]:
    """The leave-corpus-out lines: natives of corpora the heads were fitted without."""
    out = summary.get("librispeech_out") or {}
    names = {"librispeech": "LibriSpeech", "saa": "the archive"}
    parts = [f"{names[c]}'s {v['natives']} natives median total {v['median_total']:.0f}, {100 * v['share_80_or_more']:.0f}% "
             "at 80 or more" for c, v in out.items()]
    return [f"Leave-corpus-out (heads fitted on speechocean762 alone, without the LibriSpeech anchors): {'; '.join(parts)}.",
            ""] if parts else []


def card_section(summary: dict[str, Any]) -> str:
    """The model card's section on the pronunciation heads, from the report's figures."""
    a = summary["aspects"]
    lines = [
        "## Pronunciation scores",
        "",
        "`rate(..., pronunciation=True)` adds accuracy, fluency, prosody and total (0-100, the experts' 0-10 x 10)",
        "and each read word's accuracy. Linear heads over what Whisper base makes of the reading (each written",
        "word teacher-forced through its decoder; what it heard freely), its encoder states over the reading and",
        "each word, timing and pauses, pitch and energy, and the accent model's own features.",
        "",
        f"**Data.** speechocean762 train split ({summary['speakers']} Mandarin-L1 speakers, about half children,",
        f"{summary['readings']} short sentences, five experts' scores; Zhang et al., Interspeech 2021, free with credit)",
        "and LibriSpeech natives (CC BY 4.0) as the top of the scale.",
        "",
        "**Figures** (5-fold speaker-disjoint CV, settings chosen inside each fold, Pearson r with 95% speaker",
        "bootstrap intervals; readings / speaker means):",
        "",
    ]
    lines += [f"- {k}: {_ci(v['utterance'])} / {_ci(v['speaker'])}; within a speaker's readings {v['within_speaker'][0]:.2f}; "
              f"children / adults {v['children']:.2f} / {v['adults']:.2f}" for k, v in a.items()]
    lines.append(f"- word accuracy: {_ci(summary['words']['r'])}")
    arch = summary.get("archive")
    if arch:
        lines += ["", f"Beyond the corpus (never trained on): the archive's natives score above its non-natives "
                      f"(ROC-AUC by total {_ci(arch['roc_auc_total'])}); among its non-natives total against the "
                      f"age English was learned, Spearman {arch['spearman_age_onset'][0]:.3f}."]
    lines += [""] + _held_out(summary)[:1]
    lines += [
        "",
        "**Limits.** Learned from Mandarin-L1 learners reading short prompts: other first languages, long",
        "readings and free speech are checked only as above; the archive's 8 kHz band is unlike the training",
        "recordings. They track differences between learners far better than a learner's own better and worse",
        "readings, and children's less well than adults'. A reading of part of the text is scored on that part.",
        "The scores are not a test score and not a judgement of a person; a word's accuracy is a hint about",
        "what to practise.",
        "",
        "**Reproduce.** `python -m accent_rater.training.pronunciation measure` then `... fit` (`reports/pronunciation/`).",
        "",
    ]
    return "\n".join(lines)
