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
