"""A model bundle: the folder a ``Rater`` loads. ``model.json`` declares everything in it: its
``format``, the front-end settings it was trained with, its members (family, parameters, ONNX
file), the calibration and threshold, and under ``files`` the SHA-256 of every weight file.

``open_bundle`` is the one reader: it finds the folder (a bundled name or a path), parses
``model.json``, and refuses a bundle of another format, one trained with other front-end settings
than ``audio.frontend()``, and one whose files do not match their SHA-256, each with a
``BundleError`` saying what to do. Sessions of its ONNX files come from ``session``.

    bundle = open_bundle("default")
    bundle.meta["threshold"], bundle.session(bundle.meta["encoder"], threads=2)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from . import audio
from .errors import BundleError
from .threads import onnx_session

FORMAT = 1  # model.json's layout; a bundle of another format is refused
DEFAULT_MODEL = "default"
BUNDLED_MODELS = {"default": "assets/model", "fast": "assets/fast"}  # --model NAME -> folder in the package


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def bundle_dir(model: str | Path | None) -> Path:
    """The folder of a bundled model (``BUNDLED_MODELS``; None: the default) or of a bundle path."""
    if model is None or str(model) in BUNDLED_MODELS:
        return Path(str(resources.files("accent_rater").joinpath(BUNDLED_MODELS[str(model or DEFAULT_MODEL)])))
    path = Path(model)
    if not (path / "model.json").is_file():
        raise BundleError(f"{path} is not a model bundle (no model.json; bundled models: {', '.join(BUNDLED_MODELS)})")
    return path


@dataclass(frozen=True)
class Bundle:
    """A checked bundle: its folder and its parsed ``model.json``."""

    dir: Path
    meta: dict[str, Any]

    def path(self, name: str) -> Path:
        return self.dir / name

    def session(self, name: str, threads: int = 1) -> Any:
        """An onnxruntime session of one of the bundle's ONNX files."""
        return onnx_session(self.dir / name, threads)

    def tensors(self, name: str = "model.safetensors") -> dict[str, np.ndarray]:
        """The arrays of one of the bundle's safetensors files (never pickle)."""
        from safetensors.numpy import load_file

        return load_file(str(self.dir / name))


def check_format(where: Path, meta: dict[str, Any]) -> None:
    """Refuse a ``model.json`` of another format than this version reads."""
    if meta.get("format") != FORMAT:
        raise BundleError(f"model bundle {where} has format {meta.get('format')!r}; this version of accent-rater reads "
                          f"format {FORMAT}: re-export the model with this version")


def check_frontend(where: Path, meta: dict[str, Any]) -> None:
    """Refuse a bundle trained with other front-end settings than ``audio.frontend()``: its heads
    would read features computed differently from those they were fitted on."""
    ours, theirs = audio.frontend(), meta.get("frontend")
    if not isinstance(theirs, dict):
        raise BundleError(f"model bundle {where} does not record its front-end settings (model.json 'frontend'): "
                          "re-export the model with this version")
    differ = [f"{k} {theirs.get(k)!r} (here {v!r})" for k, v in ours.items() if theirs.get(k) != v]
    if differ:
        raise BundleError(f"model bundle {where} was trained with other front-end settings: {', '.join(differ)}; "
                          "retrain it with this version's front-end")


def check_files(where: Path, meta: dict[str, Any]) -> None:
    """Every file ``model.json`` lists under ``files`` must be there with its SHA-256: a damaged or
    swapped file is refused with a message naming it, and so is a bundle that lists none."""
    files = meta.get("files")
    if not isinstance(files, dict) or "model.safetensors" not in files:
        raise BundleError(f"model bundle {where} lists no SHA-256 of its files (model.json 'files'), so it cannot be "
                          "verified: re-export the model with this version")
    for name, digest in files.items():
        path = where / name
        if not path.is_file():
            raise BundleError(f"model bundle {where} is missing {name}; reinstall or re-export the model")
        if sha256(path) != digest:
            raise BundleError(f"model bundle {where}: {name} does not match the SHA-256 in model.json "
                              "(damaged or replaced); reinstall or re-export the model")


def open_bundle(model: str | Path | None = None) -> Bundle:
    """Find, read and check a bundle (see the module): a bundled name, a folder, or None (default)."""
    where = bundle_dir(model)
    try:
        meta = json.loads((where / "model.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"model bundle {where}: model.json is not readable JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise BundleError(f"model bundle {where}: model.json is not an object")
    check_format(where, meta)
    check_frontend(where, meta)
    check_files(where, meta)
    return Bundle(where, meta)
