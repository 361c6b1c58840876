"""The one reader of a model bundle (``bundle.open_bundle``): what it refuses, and that every ONNX
session of a rating is made by the one helper."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from accent_rater import audio, bundle
from accent_rater.errors import BundleError
from accent_rater.rater import Rater

from conftest import FIXTURES


@pytest.fixture()
def fast_copy(tmp_path: Path) -> Path:
    """A copy of the bundled fast model (three ONNX files and the heads) to damage."""
    out = tmp_path / "bundle"
    shutil.copytree(bundle.bundle_dir("fast"), out)
    return out


def _edit(path: Path, **changes) -> None:
    meta = json.loads((path / "model.json").read_text())
    meta.update(changes)
    (path / "model.json").write_text(json.dumps(meta))


def test_the_bundled_models_open_and_record_this_front_end() -> None:
    for name in bundle.BUNDLED_MODELS:
        b = bundle.open_bundle(name)
        assert b.meta["format"] == bundle.FORMAT and b.meta["frontend"] == audio.frontend()
        assert set(b.meta["files"]) >= {"model.safetensors", b.meta["encoder"]}
    assert bundle.open_bundle(None).dir == bundle.bundle_dir("default")


def test_a_copy_rates_like_the_original(fast_copy: Path) -> None:
    clip = FIXTURES / "nonnative_spanish6.flac"
    assert Rater(fast_copy).rate(clip).p_native == Rater("fast").rate(clip).p_native


def test_a_damaged_file_is_refused_by_name(fast_copy: Path) -> None:
    data = bytearray((fast_copy / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (fast_copy / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="model.safetensors does not match the SHA-256"):
        Rater(fast_copy)


def test_a_missing_file_is_refused_by_name(fast_copy: Path) -> None:
    (fast_copy / "cnn.onnx").unlink()
    with pytest.raises(BundleError, match="is missing cnn.onnx"):
        bundle.open_bundle(fast_copy)
    _edit(fast_copy, files=None)
    with pytest.raises(BundleError, match="lists no SHA-256 of its files"):
        bundle.open_bundle(fast_copy)


def test_another_format_is_refused(fast_copy: Path) -> None:
    _edit(fast_copy, format=bundle.FORMAT + 1)
    with pytest.raises(BundleError, match=f"has format {bundle.FORMAT + 1}.*reads format {bundle.FORMAT}"):
        Rater(fast_copy)


def test_other_front_end_settings_are_refused_naming_them(fast_copy: Path) -> None:
    _edit(fast_copy, frontend={**audio.frontend(), "n_mels": 64, "f_max": 8000.0})
    with pytest.raises(BundleError, match=r"n_mels 64 \(here 80\), f_max 8000.0 \(here 3800.0\)"):
        Rater(fast_copy)
    _edit(fast_copy, frontend=None)
    with pytest.raises(BundleError, match="does not record its front-end settings"):
        bundle.open_bundle(fast_copy)


def test_not_a_bundle_and_unreadable_json_are_refused(tmp_path: Path, fast_copy: Path) -> None:
    with pytest.raises(BundleError, match="not a model bundle.*bundled models: default, fast"):
        Rater(tmp_path)
    (fast_copy / "model.json").write_text("{not json")
    with pytest.raises(BundleError, match="model.json is not readable JSON"):
        Rater(fast_copy)
    (fast_copy / "model.json").write_text("[1, 2]")
    with pytest.raises(BundleError, match="not an object"):
        Rater(fast_copy)
