"""Export a trained model to the bundle format served by ``accent_rater.rater``:

    model.json          members, fusion weights, calibration, threshold, metrics, provenance
    model.safetensors   linear members' arrays ("<member>.<name>")
    <member>.onnx       neural members (served with onnxruntime; parity-tested against PyTorch)

No pickle anywhere: everything loads with ``safetensors`` / ``onnxruntime`` / ``json``.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from . import __version__, audio
from .calibration import Calibrator
from .models import Family

BUNDLE_FORMAT = 1


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
    from .models.encoder import MEL_CHANNELS, PARTIAL_FRAMES, load_encoder

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
) -> Path:
    from safetensors.numpy import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, np.ndarray] = {}
    export_encoder(out_dir / "encoder.onnx")
    spec = []
    for name, fam in members:
        entry = {"name": name, "family": fam.name, "params": fam.params}
        if hasattr(fam, "module"):
            export_onnx(fam.module, out_dir / f"{name}.onnx")
            entry["onnx"] = f"{name}.onnx"
        else:
            tensors.update({f"{name}.{k}": np.ascontiguousarray(v, dtype=np.float32) for k, v in fam.tensors().items()})
        spec.append(entry)
    save_file(tensors, str(out_dir / "model.safetensors"))
    meta = {
        "format": BUNDLE_FORMAT,
        "name": summary.get("name", "accent-rater"),
        "version": f"{__version__}+{_dt.date.today():%Y%m%d}",
        "members": spec,
        "encoder": "encoder.onnx",
        "fusion": fusion,
        "calibration": calibrator.to_dict(),
        "threshold": threshold,
        "frontend": {
            "sample_rate": audio.SAMPLE_RATE,
            "band_rate": audio.BAND_RATE,
            "n_fft": audio.N_FFT,
            "hop_length": audio.HOP_LENGTH,
            "n_mels": audio.N_MELS,
            "f_max": audio.F_MAX,
            "segment_seconds": audio.SEGMENT_SECONDS,
        },
        "training": {k: summary[k] for k in ("n_speakers", "members", "primary") if k in summary},
    }
    (out_dir / "model.json").write_text(json.dumps(meta, indent=1))
    return out_dir


def write_model_card(bundle_dir: Path, run_dir: Path, config_path: str) -> Path:
    """MODEL_CARD.md in the bundle, from the run's evaluation report (``report/metrics.json``)."""
    metrics = json.loads((run_dir / "report" / "metrics.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    meta = json.loads((bundle_dir / "model.json").read_text())
    primary = summary["primary"]

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
    weighting = summary.get("group_weighting") or 0.0
    weighting_text = (f" Training speakers were re-weighted by group size (weight ~ n_group^-{weighting:g}; group = native "
                      "variety for natives, first language for non-natives); calibration and threshold are unweighted."
                      if weighting else "")
    members = ", ".join(f"`{m['name']}` ({m['family']})" for m in meta["members"])
    text = f"""# Model card: {meta['name']} {meta['version']}

**What it does.** Estimates the probability that English speech sounds like a native speaker's
accent (`p_native`), from 8 kHz-band audio features. It rates *accent only*: not intelligibility,
fluency, grammar or English proficiency.

**Architecture.** Stacking fusion (logistic regression on member logits) of {members}, then Platt
calibration. The speaker encoder is resemblyzer's pretrained GE2E LSTM (weights from its PyPI wheel),
exported to ONNX; the CNN (if present) is trained from scratch and exported to ONNX; linear members
are plain arrays in `model.safetensors`. Decision threshold on `p_native`: {meta['threshold']:.3f}
(chosen on out-of-fold predictions to maximise balanced accuracy).{weighting_text}

**Data.** Speech Accent Archive (Steven H. Weinberger, George Mason University, accent.gmu.edu;
CC BY-NC-SA): {summary['n_speakers']} speakers reading the same English paragraph, 8 kHz band; 435 native
English (USA 280, UK 49, Canada 33, Australia 24, others), 440 non-native (Spanish, Arabic, Mandarin,
French, Korean, Portuguese, Russian, Dutch). Labels are self-reported native language.

**Evaluation.** 5-fold cross-validation with speaker-disjoint, label-stratified folds; every number is
out-of-fold at speaker level with a 95% bootstrap interval over speakers (calibration cross-fitted).

| model | balanced accuracy | ROC-AUC | accuracy | Brier | ECE |
|---|---|---|---|---|---|
{chr(10).join(rows)}{nested_text}

Per-group error rates of `{primary}` (groups with at least 5 speakers; 95% Wilson intervals):

| view | group | speakers | error rate |
|---|---|---|---|
{chr(10).join(groups)}

Full report with plots: `reports/{summary['name']}/README.md` (a copy of `{run_dir}/report`, written by
the command below).

**Limitations.**
- One text, one task: every training speaker read the same paragraph. Free speech, other texts and
  spontaneous speech are out of distribution; scores there are less reliable.
- One recording setup per speaker and narrow band: every input is band-limited to 4 kHz so full-band
  microphones and the corpus look alike, but other microphones and rooms were not in training.
- The non-native speakers have only 8 first languages; other L1s are unseen. Native speakers are
  mostly from the USA; see the per-variety error rates above before relying on it for other varieties.
{flagged_text}- Small data (875 speakers): expect errors on individual speakers; use the probability, not the label,
  and never use it to judge people (hiring, immigration, grading).

**Licence.** Model weights are derived from CC BY-NC-SA data: non-commercial use, share-alike,
credit the Speech Accent Archive.

**Reproduce.** `accent-rater train --config {config_path}` (needs `../shared/data/saa`).
"""
    path = bundle_dir / "MODEL_CARD.md"
    path.write_text(text)
    return path
