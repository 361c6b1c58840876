"""Export a trained model to the bundle format served by ``accent_rater.rater``:

    model.json          members, fusion weights, calibration, threshold, metrics, provenance
    model.safetensors   linear members' arrays ("<member>.<name>")
    <member>.onnx       neural members (served with onnxruntime; parity-tested against PyTorch)

No pickle anywhere: everything loads with ``safetensors`` / ``onnxruntime`` / ``json``.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__, audio, bundle, paths
from ..bundle import sha256
from ..calibration import Calibrator
from ..models import Family


def export_onnx(module: torch.nn.Module, path: Path) -> None:
    """Neural segment classifier -> ONNX with a dynamic batch and frame axis."""
    module.eval()
    dummy = torch.randn(2, audio.N_MELS, audio.SEGMENT_FRAMES)
    torch.onnx.export(
        module,
        (dummy,),
        str(path),
        input_names=["mels"],
        output_names=["logits"],
        dynamic_axes={"mels": {0: "batch", 2: "frames"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )


def export_encoder(path: Path) -> None:
    """The pretrained speaker encoder -> ONNX (batch of (160, 40) mel partials -> embeddings and
    per-layer hidden-state mean / mean square)."""
    from ..backbones.speaker import MEL_CHANNELS, PARTIAL_FRAMES, load_encoder

    dummy = torch.rand(1, PARTIAL_FRAMES, MEL_CHANNELS)
    names = ["embeddings", "means", "squares"]
    torch.onnx.export(
        load_encoder(),
        (dummy,),
        str(path),
        input_names=["mels"],
        output_names=names,
        dynamic_axes={"mels": {0: "batch"}, **{n: {0: "batch"} for n in names}},
        opset_version=17,
        dynamo=False,
    )


def export_bundle(
    out_dir: Path,
    members: Sequence[tuple[str, Family]],
    fusion: dict[str, Any] | None,
    calibrator: Calibrator,
    threshold: float,
    summary: dict[str, Any],
    backbone: str | None = None,
    l1: Any = None,
    novelty: Any = None,
) -> Path:
    """Write the bundle. ``backbone``: the Whisper size whose converted encoder the members read
    (copied from ``whisper.onnx_path``; an unchanged file is left untouched, so retraining the heads
    does not rewrite tens of MB); otherwise the speaker encoder is exported. ``l1``: a fitted
    ``L1Head`` (first-language guess)."""
    import shutil

    from safetensors.numpy import save_file

    from ..backbones.whisper import onnx_path

    out_dir.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, np.ndarray] = {}
    if backbone is None:
        export_encoder(out_dir / "encoder.onnx")
        encoder_file = "encoder.onnx"
    else:
        src = onnx_path(backbone)
        encoder_file = src.name
        dst = out_dir / encoder_file
        if not dst.exists() or sha256(dst) != sha256(src):
            shutil.copyfile(src, dst)
    spec = []
    for name, fam in members:
        entry = {"name": name, "family": fam.name, "params": fam.params}
        if fam.neural:
            export_onnx(fam.module, out_dir / f"{name}.onnx")
            entry["onnx"] = f"{name}.onnx"
        else:
            tensors.update({f"{name}.{k}": np.ascontiguousarray(v, dtype=np.float32) for k, v in fam.tensors().items()})
        spec.append(entry)
    for prefix, part in (("l1", l1), ("novelty", novelty)):
        if part is not None:
            tensors.update({f"{prefix}.{k}": np.ascontiguousarray(v, dtype=np.float32) for k, v in part.tensors().items()})
    save_file(tensors, str(out_dir / "model.safetensors"))
    meta = {
        "format": bundle.FORMAT,
        "name": summary.get("name", "accent-rater"),
        "version": f"{__version__}+{_dt.date.today():%Y%m%d}",
        "members": spec,
        "encoder": encoder_file,
        "backbone": backbone,
        "l1": None if l1 is None else {"classes": l1.classes, "params": l1.params},
        "novelty": novelty is not None,
        "fusion": fusion,
        "calibration": calibrator.to_dict(),
        "threshold": threshold,
        "reference": summary.get("reference"),  # out-of-fold calibrated logits per group (training.site_profile.reference_scores)
        "frontend": audio.frontend(),
        "training": {k: summary[k] for k in ("n_speakers", "members", "primary") if k in summary},
    }
    kept = _kept_pronunciation(out_dir)
    if kept:
        meta["pronunciation"] = kept
    meta["files"] = {f.name: sha256(f) for f in sorted(out_dir.iterdir())
                     if f.is_file() and f.name in {encoder_file, "model.safetensors", *(m.get("onnx", "") for m in spec),
                                                   *([kept["file"]] if kept else [])}}
    (out_dir / "model.json").write_text(json.dumps(meta, indent=1))
    return out_dir


def _kept_pronunciation(out_dir: Path) -> dict[str, Any] | None:
    """The pronunciation heads already in ``out_dir`` (trained on their own, by
    ``training.pronunciation``): a re-exported accent model keeps them."""
    old = out_dir / "model.json"
    if not old.is_file():
        return None
    entry = json.loads(old.read_text()).get("pronunciation")
    return entry if entry and (out_dir / entry["file"]).is_file() else None


PRONUNCIATION_CARD = "## Pronunciation scores"


def add_pronunciation(bundle_dir: Path, head: Any, summary: dict[str, Any], card: str = "") -> None:
    """Write the pronunciation heads (``pronunciation.PronunciationHead``) into a bundle, with their
    feature counts, cross-validated figures (``summary``) and model card section (``card``, which
    replaces the card's previous one) in ``model.json``."""
    from safetensors.numpy import save_file

    meta = json.loads((bundle_dir / "model.json").read_text())
    entry = {**head.meta(), "cv": summary, **({"card": card} if card else {})}
    card_path = bundle_dir / "MODEL_CARD.md"
    if card and card_path.is_file():
        kept = card_path.read_text().split(f"\n{PRONUNCIATION_CARD}")[0]
        card_path.write_text(kept.rstrip("\n") + "\n\n" + card)
    save_file({k: np.ascontiguousarray(v) for k, v in head.tensors().items()}, str(bundle_dir / entry["file"]))
    meta["pronunciation"] = entry
    meta["files"] = {**meta.get("files", {}), entry["file"]: sha256(bundle_dir / entry["file"])}
    (bundle_dir / "model.json").write_text(json.dumps(meta, indent=1))


def _metric_tables(metrics: dict[str, Any], primary: str) -> tuple[list[str], str, list[str], str]:
    """The card's metric rows, the nested-threshold sentence, the per-group rows and the flagged groups' line."""
    def ci(model: str, key: str) -> str:
        v = metrics["speaker_level"][model][key]
        return f"{v['point']:.3f} [{v['lo']:.3f}, {v['hi']:.3f}]"

    rows = [
        f"| {m} | {ci(m, 'balanced_accuracy')} | {ci(m, 'roc_auc')} | {ci(m, 'accuracy')} | {ci(m, 'brier')} | {ci(m, 'ece')} |"
        for m in metrics["speaker_level"]
    ]
    nested = metrics.get("speaker_level_nested_threshold", {}).get(primary)
    nested_text = (f"\n\nWith each fold's threshold chosen on the other folds only, `{primary}` has balanced accuracy "
                   f"{nested['balanced_accuracy']['point']:.3f} [{nested['balanced_accuracy']['lo']:.3f}, "
                   f"{nested['balanced_accuracy']['hi']:.3f}] (the table's threshold-dependent numbers use one threshold "
                   "chosen on all out-of-fold predictions, slightly optimistic)." if nested else "")
    groups, flagged = [], []
    for view in ("native_variety", "native_language"):
        for g in metrics["groups"].get(view, []):
            if g["n_speakers"] >= 5:
                flag = " **(> 2x overall)**" if g.get("flag") else ""
                groups.append(f"| {view} | {g['group']} | {g['n_speakers']} | {g['error_rate']:.3f} [{g['ci_lo']:.3f}, {g['ci_hi']:.3f}]{flag} |")
                if g.get("flag"):
                    flagged.append(f"{g['group']} ({view.replace('_', ' ')}: {100 * g['error_rate']:.1f}% of {g['n_speakers']})")
    flagged_text = (
        "- **Groups rated wrong more than twice as often as their population (all natives for a native variety, "
        "all speakers for a first language): " + "; ".join(flagged) + ".** "
        "For these speakers the label is unreliable at the default threshold; read `p_native`, or choose a "
        "threshold for your population.\n"
        if flagged else "- No native variety or first language with 5 or more speakers has more than twice the overall error rate.\n"
    )
    return rows, nested_text, groups, flagged_text


def _architecture_text(meta: dict[str, Any], members: str, window_s: float) -> str:
    """What the bundle is made of: the frozen encoder (Whisper or the speaker encoder) and the heads."""
    combine = "Stacking fusion (logistic regression on member logits)" if meta.get("fusion") else "The member"
    if meta.get("backbone"):
        return (
            f"{combine} {members} on the frozen **OpenAI Whisper {meta['backbone']} encoder** (MIT licence; weights "
            "verified by SHA-256 and converted to ONNX, its projections quantised to 8 bits, by `accent-rater fetch-weights`, shipped "
            f"as `{meta['encoder']}`), then Platt calibration. Speech is cut into {window_s:g} s windows, each encoded on its own; "
            "every layer's states are pooled (time mean and std) per window, a logistic regression gives each window a "
            "logit and a recording's logit is their mean. Training used the clean recordings and augmented copies of the "
            "same training speakers (telephone band, Opus / MP3 / AMR codecs, rooms, noise, gain and AGC, clipping)."
        )
    return (
        f"{combine} {members}, then Platt calibration. The speaker encoder is resemblyzer's pretrained GE2E LSTM "
            "(weights from its PyPI wheel), exported to ONNX; the CNN (if present) is trained from scratch and exported "
            "to ONNX; linear members are plain arrays in `model.safetensors`."
        )


def _l1_text(metrics: dict[str, Any], meta: dict[str, Any]) -> str:
    """The first-language guess paragraph (empty for a bundle without one)."""
    from ..rater import L1_UNSURE_BELOW

    l1 = metrics.get("l1")
    l1_text = ""
    if l1 and meta.get("l1"):
        def ci3(k: str) -> str:
            return f"{l1[k]['point']:.3f} [{l1[k]['lo']:.3f}, {l1[k]['hi']:.3f}]"

        l1_text = (f"**First-language guess.** A second head on the same features guesses the first language among "
                   f"{', '.join(l1['languages'])}; it is shown only for speech rated non-native, as the top 3 "
                   f"with probabilities, and as \"unsure\" when the top probability is below {L1_UNSURE_BELOW:g}. Other first languages map to "
                   f"the nearest known one or to \"unsure\". Out of fold over {l1['n_speakers']} non-natives: top-1 {ci3('top1')}, "
                   f"top-3 {ci3('top3')}, macro recall {ci3('macro_recall')}. It is a guess about an accent, never about a person.\n\n")
    return l1_text


def _robustness_texts(report: Path, meta: dict[str, Any], window_s: float) -> tuple[str, str]:
    """The robustness paragraph (from ``report/robustness.json``, written by ``scripts/robustness.py``)
    and the note on texts other than the passage (leave-text-out, from there or the cross-corpus results)."""
    robust = report / "robustness.json"
    robust_text = ""
    r = json.loads(robust.read_text()) if robust.exists() else {}
    if r:
        cond = r.get("conditions", {})
        worst = sorted(cond.items(), key=lambda kv: kv[1]["delta_bacc"][0])[:3]
        robust_text = ("**Robustness** (held-out speakers, `scripts/robustness.py`, details in "
                       f"`{report}/robustness.md`): change in balanced accuracy "
                       + "; ".join(f"{k} {v['delta_bacc'][0]:+.3f}" for k, v in cond.items())
                       + (f". Largest losses: {', '.join(k for k, _ in worst)}." if worst else ".") + "\n\n")
    text_losses, text_script = " and ".join(f"{-100 * v['delta_bacc'][0]:.1f}" for v in r.get("leave_text_out", {}).values()), "robustness"
    from .multicorpus import CROSS_CORPUS_RESULTS

    if not text_losses and CROSS_CORPUS_RESULTS.exists():  # a multi-corpus recipe measures it there
        lto_rows = json.loads(CROSS_CORPUS_RESULTS.read_text()).get("leave_text_out", [])
        text_losses, text_script = " and ".join(f"{-100 * float(row[-1]):.1f}" for row in lto_rows), "cross_corpus"
    text_note = (f" The head is trained on {window_s:g} s windows from the whole passage"
                 + (f"; trained on one half of the passage and tested on the other, it loses {text_losses} points of "
                    f"balanced accuracy (`scripts/{text_script}.py`)" if text_losses else "")
                 + ", so independence from other texts rests on the other corpora's figures below." if meta.get("backbone") else "")
    return robust_text, text_note


def write_model_card(bundle_dir: Path, run_dir: Path, config_path: str) -> Path:
    """MODEL_CARD.md in the bundle: every figure (metrics, speaker counts, languages, folds) from the
    run's files (``report/metrics.json``, ``summary.json``, ``predictions.csv``, ``folds.json``)."""
    metrics = json.loads((run_dir / "report" / "metrics.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    meta = json.loads((bundle_dir / "model.json").read_text())
    primary = summary["primary"]

    rows, nested_text, groups, flagged_text = _metric_tables(metrics, primary)
    weighting = summary.get("group_weighting") or 0.0
    weighting_text = (f" Training speakers were re-weighted by group size (weight ~ n_group^-{weighting:g}; group = native "
                      "variety for natives, first language for non-natives); calibration and threshold are unweighted."
                      if weighting else "")
    members = ", ".join(f"`{m['name']}` ({m['family']})" for m in meta["members"])
    natives, others = _corpus_counts(run_dir / "predictions.csv", primary)
    corpus_text = (f"{sum(natives.values())} native English ({', '.join(f'{k} {v}' for k, v in natives.most_common())}), "
                   f"{sum(others.values())} non-native ({', '.join(f'{k.capitalize()} {v}' for k, v in others.most_common())})")
    top_variety, top_count = natives.most_common(1)[0] if natives else ("", 0)
    n_folds = len(set(json.loads((run_dir / "folds.json").read_text()).values()))
    band_khz, window_s = audio.BAND_RATE // 1000, audio.CHUNK_SECONDS if meta.get("backbone") else audio.SEGMENT_SECONDS
    architecture = _architecture_text(meta, members, window_s)
    l1_text = _l1_text(metrics, meta)
    report = paths.report_dir(config_path)
    robust_text, text_note = _robustness_texts(report, meta, window_s)
    channel_note = ("other phones, codecs, rooms and noise are simulated in training (augmented copies), not recorded."
                    if meta.get("backbone") else "other microphones and rooms were not in training.")
    whisper_credit = (f" The Whisper {meta['backbone']} encoder weights are OpenAI's (MIT licence, "
                      "github.com/openai/whisper), converted; keep their licence notice." if meta.get("backbone") else "")
    text = f"""# Model card: {meta['name']} {meta['version']}

**What it does.** Estimates the probability that English speech sounds like a native speaker's
accent (`p_native`), from {band_khz} kHz-band audio features. It rates *accent only*: not intelligibility,
fluency, grammar or English proficiency.

**Architecture.** {architecture} Decision threshold on `p_native`: {meta['threshold']:.3f}
(chosen on out-of-fold predictions to maximise balanced accuracy).{weighting_text}

**Data.** Speech Accent Archive (Steven H. Weinberger, George Mason University, accent.gmu.edu;
CC BY-NC-SA): {summary['n_speakers']} speakers reading the same English paragraph, {band_khz} kHz band;
{corpus_text}. Labels are self-reported native language.{_other_corpora_text(summary)}

**Evaluation.** {n_folds}-fold cross-validation with speaker-disjoint, label-stratified folds; every number is
out-of-fold at speaker level with a 95% bootstrap interval over speakers (calibration cross-fitted).

| model | balanced accuracy | ROC-AUC | accuracy | Brier | ECE |
|---|---|---|---|---|---|
{chr(10).join(rows)}{nested_text}

Per-group error rates of `{primary}` (groups with at least 5 speakers; 95% Wilson intervals):

| view | group | speakers | error rate |
|---|---|---|---|
{chr(10).join(groups)}

Full report with plots: `{report}/README.md` (a copy of `{run_dir}/report`, written by
the command below).

**Limitations.**
- Few texts, one task: the head learns accent from speakers who all read the same paragraph{" (other corpora only keep it from learning their channel)" if summary.get("corpora") else ""}.
  Free and spontaneous speech are out of distribution; scores there are less reliable.{text_note}
- One recording setup per speaker and narrow band: every input is band-limited to {band_khz / 2:g} kHz so full-band
  microphones and the corpus look alike; {channel_note}
- The non-native speakers have only {len(others)} first languages; other L1s are unseen. Of the {sum(natives.values())}
  native speakers, {top_count} are from one variety ({top_variety}); see the per-variety error rates above before
  relying on it for other varieties.
{flagged_text}- Small data ({summary['n_speakers']} speakers): expect errors on individual speakers; use the probability, not the label,
  and never use it to judge people (hiring, immigration, grading).

{l1_text}{robust_text}{_cross_corpus_text()}**Contested boundaries.** The archive labels by first language: an Indian speaker whose first
language is English counts as native, one whose first language is Hindi does not, though both may
speak Indian English. The score says how close the accent sounds to the native speakers in the
training data, who are mostly North American and British; read a low score for a speaker of another
native variety as "unlike these varieties", not as "not a native speaker". The interfaces word the
label as "native-sounding" / "accented" for this reason, and the first-language guess is shown only
as a guess about the accent.

**Licence.** Model weights are derived from CC BY-NC-SA data: non-commercial use, share-alike,
credit the Speech Accent Archive.{whisper_credit}

**Reproduce.** `accent-rater train --config {config_path}` (needs `../shared/data`).
"""
    path = bundle_dir / "MODEL_CARD.md"
    card = (meta.get("pronunciation") or {}).get("card")
    path.write_text(text + (f"\n{card}" if card else ""))  # the pronunciation heads' section, kept with them
    return path


def _other_corpora_text(summary: dict[str, Any]) -> str:
    """The corpora beside the archive in a multi-corpus run, with their credit."""
    credit = {"librispeech": "LibriSpeech (Panayotov et al., ICASSP 2015; CC BY 4.0): audiobook readers on home "
                             "microphones, other texts, taken as natives",
              "speechocean762": "speechocean762 (Zhang et al., Interspeech 2021; free for any use, credited): "
                                "Mandarin-L1 children and adults reading short sentences, non-natives"}
    parts = [f"{credit.get(name, name)} ({c['recordings']} recordings of {c['speakers']} speakers)"
             for name, c in (summary.get("corpora") or {}).items() if name != "saa"]
    return ("\nAlso in every fit, one label each: " + "; ".join(parts) + ". They do not train the accent head: the "
            "directions along which their means differ from the archive's at the same label are projected out of its "
            "input, and they weigh as much as the archive in calibration, threshold and the novelty check." if parts else "")


def _cross_corpus_text() -> str:
    """The leave-corpus-out figures of ``scripts/cross_corpus.py``, when it has been run."""
    from .multicorpus import cross_corpus_results

    res = cross_corpus_results()
    if not res:
        return ""

    def pct(t: list[float]) -> str:
        return f"{100 * t[0]:.1f}% [{100 * t[1]:.1f}, {100 * t[2]:.1f}]"

    return ("**Beyond the archive** (`scripts/cross_corpus.py`, `reports/cross_corpus/`): trained without LibriSpeech, "
            f"{pct(res['lco_librispeech']['correct'])} of its natives' recordings are rated native; trained without "
            f"speechocean762, {pct(res['lco_speechocean762']['correct'])} of its learners' recordings non-native. With "
            f"each corpus' other speakers in the fit: {pct(res['in_corpus_librispeech'])} and {pct(res['in_corpus_speechocean762'])}. "
            "The leave-corpus-out figures are the best estimate for corpora the model has never seen.\n\n")


def _corpus_counts(predictions: Path, model: str) -> tuple[Counter, Counter]:
    """Speakers of a run's predictions by native variety (natives) and by first language (non-natives)."""
    import csv

    from .data import native_variety

    with open(predictions) as fh:
        rows = [r for r in csv.DictReader(fh) if r["model"] == model]
    return (Counter(native_variety(r["country"]) for r in rows if r["label"] == "1"),
            Counter(r["native_language"] for r in rows if r["label"] == "0"))
