"""Audio front-end: the one place that decides how any recording becomes model input.

Every path (training, evaluation, CLI, REST API, web app, tests) goes through these functions and
constants, so the model can never see features computed differently at serving time.

Pipeline: ``decode`` (PyAV, any container, size/duration limits) -> mono -> band limit (soxr to
8 kHz and back up to 16 kHz: the training corpus is 8 kHz-band, so every input is made so) ->
``detect_speech`` (silero-vad ONNX) -> ``trim_pauses`` -> ``make_segments`` (7 s windows) ->
``logmel.log_mel`` (80 mels, n_fft 400, hop 160, f_max at the band limit, dB; its own module, on these
constants). Word feedback's speech recogniser alone may also hear the input's full band
(``prepare(..., wide=True)``: ``Speech.wide``).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import soxr

from .errors import (
    AudioError,
    AudioTooLongError,
    CorruptAudioError,
    EmptyAudioError,
    FileTooLargeError,
    NotAudioError,
    SilentAudioError,
    TooLittleSpeechError,
)
from .threads import onnx_session

# --- constants: the single source of truth ---------------------------------------------------
SAMPLE_RATE = 16_000  # model rate (Hz)
BAND_RATE = 8_000  # every input is resampled through this rate: the corpus is 8 kHz-band
N_FFT = 400  # 25 ms window at 16 kHz (the seed's value)
HOP_LENGTH = 160  # 10 ms hop (the seed's value)
N_MELS = 80  # with f_max 3.8 kHz and 40 Hz FFT bins, the lowest filter holds no bin (always -100 dB)
F_MIN = 0.0
F_MAX = 3_800.0  # top of the shared band; soxr's anti-alias filter rolls off just below 4 kHz
DB_FLOOR = 1e-10  # power floor before 10*log10 (the seed's AmplitudeToDB: no top_db)

SEGMENT_SECONDS = 7.0
SEGMENT_HOP_SECONDS = 3.5
SEGMENT_SAMPLES = int(SEGMENT_SECONDS * SAMPLE_RATE)
SEGMENT_HOP_SAMPLES = int(SEGMENT_HOP_SECONDS * SAMPLE_RATE)
SEGMENT_FRAMES = SEGMENT_SAMPLES // HOP_LENGTH + 1  # 701 with center=True

# Whisper backbone: speech is cut into consecutive windows (no overlap, each encoded on its own, so a
# window's features depend only on the few words inside it); a remainder shorter than the minimum
# tail joins the previous window.
CHUNK_SECONDS = 7.0
MIN_TAIL_SECONDS = 2.0


MIN_SPEECH_SECONDS = 3.0  # less speech than this after VAD is refused
MAX_DURATION_SECONDS = 600.0  # longer recordings are refused (configurable per call)
MAX_FILE_BYTES = 200 * 1024 * 1024  # checked before decoding
SILENCE_PEAK_DBFS = -70.0  # a recording whose loudest sample is below this is digital silence
QUIET_DBFS = -45.0  # quieter recordings are amplified (up to MAX_VAD_GAIN_DB) before voice detection
VAD_LEVEL_DBFS = -30.0  # ... to this RMS level
MAX_VAD_GAIN_DB = 50.0
MIN_ANY_SPEECH_SECONDS = 0.5  # less speech than this: "silent" (no speech at all) rather than "too little"
MAX_PAUSE_SECONDS = 0.3  # pauses longer than this are shortened to it
SPEECH_PAD_SECONDS = 0.1  # kept around each VAD speech region
VAD_THRESHOLD = 0.5
TARGET_SPEECH_DBFS = -25.0  # speech is gain-normalised to this RMS level before any features
LEVEL_HIGHPASS_HZ = 100.0  # the level is measured above this frequency

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".webm", ".m4a", ".aac", ".mp4")

Source = str | os.PathLike | bytes | bytearray | BinaryIO


def frontend() -> dict[str, float]:
    """The front-end settings a model is trained with: a bundle records them (``model.json``'s
    ``frontend``) and ``bundle.open_bundle`` refuses one whose settings differ from these."""
    return {"sample_rate": SAMPLE_RATE, "band_rate": BAND_RATE, "n_fft": N_FFT, "hop_length": HOP_LENGTH,
            "n_mels": N_MELS, "f_max": F_MAX, "segment_seconds": SEGMENT_SECONDS}


# --- decoding ------------------------------------------------------------------------------------
def _open_source(source: Source, max_bytes: int) -> tuple[BinaryIO | str, str]:
    """Return something PyAV can open plus a name for messages; refuse oversize input unread."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) == 0:
            raise EmptyAudioError("the upload is empty (0 bytes)")
        if len(data) > max_bytes:
            raise FileTooLargeError(f"{len(data) / 2**20:.1f} MiB exceeds the {max_bytes / 2**20:.0f} MiB limit")
        return io.BytesIO(data), "<bytes>"
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        size = path.stat().st_size
        if size == 0:
            raise EmptyAudioError(f"{path.name} is empty (0 bytes)")
        if size > max_bytes:
            raise FileTooLargeError(f"{path.name} is {size / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:.0f} MiB")
        return str(path), path.name
    # file-like object
    data = source.read(max_bytes + 1)
    return _open_source(data, max_bytes)


def decode(
    source: Source,
    *,
    max_seconds: float = MAX_DURATION_SECONDS,
    max_bytes: int = MAX_FILE_BYTES,
    info: dict | None = None,
) -> np.ndarray:
    """Decode any supported file or bytes to mono float32 at BAND_RATE (8 kHz), band-limited (see
    ``decode_rates``, which this calls)."""
    return decode_rates(source, (BAND_RATE,), max_seconds=max_seconds, max_bytes=max_bytes, info=info)[0]


def _open_container(source: Source, max_bytes: int) -> tuple[Any, str]:
    """The PyAV container of ``source`` and its name for messages; ``NotAudioError`` when FFmpeg
    cannot open it as media."""
    import av

    handle, name = _open_source(source, max_bytes)
    try:
        return av.open(handle, mode="r", metadata_errors="ignore"), name
    except (av.error.InvalidDataError, av.error.EOFError, ValueError, UnicodeDecodeError) as exc:
        raise NotAudioError(f"{name} is not a recognised audio file ({_short(exc)})") from None
    except av.error.FFmpegError as exc:
        raise NotAudioError(f"{name} could not be opened as audio ({_short(exc)})") from None


def decode_rates(
    source: Source,
    rates: tuple[int, ...],
    *,
    max_seconds: float = MAX_DURATION_SECONDS,
    max_bytes: int = MAX_FILE_BYTES,
    info: dict | None = None,
) -> list[np.ndarray]:
    """Decode any supported file or bytes to mono float32, resampled in one pass to each of
    ``rates`` (the model's 8 kHz band, and for word feedback also 16 kHz with the input's full band).

    Decoding stops as soon as the audio passes ``max_seconds``, so a huge or malformed input never
    takes unbounded time or memory. Raises a subclass of ``AudioError`` with a readable message.
    If ``info`` is given it receives the source's ``sample_rate``, ``channels``, ``codec`` and
    ``clipped_fraction`` (share of samples at full scale before any resampling).
    """
    import av  # local import keeps `import accent_rater` light
    from av.audio.frame import format_dtypes

    container, name = _open_container(source, max_bytes)
    with container:
        if not container.streams.audio:
            raise NotAudioError(f"{name} contains no audio stream")
        stream = container.streams.audio[0]
        declared = _declared_seconds(container, stream)
        if declared is not None and declared > max_seconds + 1.0:
            raise AudioTooLongError(f"{name} lasts {declared / 60:.1f} min; the limit is {max_seconds / 60:.1f} min")
        resamplers: list[soxr.ResampleStream] = []
        in_rate = 0
        chunks: list[list[np.ndarray]] = [[] for _ in rates]
        pending: list[np.ndarray] = []  # raw frames, converted and resampled in ~1 s blocks
        pending_key: tuple = ()
        pending_n = 0
        decoded_seconds = 0.0
        clipped = 0

        def flush(last: bool = False) -> None:
            nonlocal pending, pending_n, clipped
            if pending:
                mono, n_clipped = _to_mono(np.concatenate(pending, axis=1), *pending_key[:2])
                clipped += n_clipped
                for out, resampler in zip(chunks, resamplers):
                    out.append(resampler.resample_chunk(mono, last=last))
            elif last:
                for out, resampler in zip(chunks, resamplers):
                    out.append(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
            pending, pending_n = [], 0

        try:
            for frame in container.decode(stream):
                if frame.samples == 0:
                    continue
                if not resamplers:
                    in_rate = int(frame.sample_rate)
                    resamplers = [soxr.ResampleStream(in_rate, r, 1, dtype="float32", quality="HQ") for r in rates]
                elif int(frame.sample_rate) != in_rate:
                    raise CorruptAudioError(f"{name} changes sample rate mid-stream")
                fmt = frame.format  # a change of format, layout or sample type starts a new block
                key = (fmt.is_planar, frame.layout.nb_channels, format_dtypes.get(fmt.name))
                if key != pending_key:
                    flush()
                    pending_key = key
                decoded_seconds += frame.samples / in_rate
                if decoded_seconds > max_seconds + 1.0:
                    raise AudioTooLongError(f"{name} is longer than the {max_seconds / 60:.1f} min limit")
                pending.append(_frame_samples(frame, *key))
                pending_n += frame.samples
                if pending_n >= in_rate:
                    flush()
        except AudioError:
            raise  # our own typed errors (too long, rate change) are ValueErrors too: keep them
        except (av.error.FFmpegError, ValueError) as exc:  # any decoder failure (EPERM, EINVAL, ...)
            if decoded_seconds == 0.0:
                raise CorruptAudioError(f"{name} could not be decoded ({_short(exc)})") from None
            raise CorruptAudioError(
                f"{name} is damaged after {decoded_seconds:.1f} s of audio ({_short(exc)})"
            ) from None
        if not resamplers:
            raise EmptyAudioError(f"{name} contains no audio samples")
        flush(last=True)
        if declared is not None and declared > 2.0 and decoded_seconds < 0.9 * declared - 0.5:
            raise CorruptAudioError(
                f"{name} is truncated: its header says {declared:.1f} s but only {decoded_seconds:.1f} s decode"
            )
        if info is not None:
            info.update(
                sample_rate=in_rate,
                channels=stream.codec_context.channels,
                codec=stream.codec_context.name,
                clipped_fraction=clipped / max(1.0, decoded_seconds * in_rate * max(1, stream.codec_context.channels)),
            )
    wavs = [np.concatenate(c).astype(np.float32, copy=False) for c in chunks]
    if not all(np.all(np.isfinite(w)) for w in wavs):
        raise CorruptAudioError(f"{name} decodes to non-finite samples")
    return wavs


def _short(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc).split(":")[-1].strip() or type(exc).__name__
    return str(text)[:120]


def _declared_seconds(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / 1_000_000
    return None


def _frame_samples(frame, planar: bool, channels: int, dtype: str | None) -> np.ndarray:
    """``frame.to_ndarray()``, (planes, n), but a view of the frame's buffer when it has one plane:
    PyAV's copy through ``np.vstack`` costs as much as decoding Opus's 20 ms frames."""
    planes = frame.planes
    if dtype is None or len(planes) != 1:
        return frame.to_ndarray()  # several planes, or a sample type numpy cannot hold (ValueError)
    return np.frombuffer(planes[0], dtype, frame.samples if planar else frame.samples * channels)[None]


def _to_mono(arr: np.ndarray, planar: bool, channels: int) -> tuple[np.ndarray, int]:
    """Decoded samples of any format and channel layout -> (mono float32 in [-1, 1], samples at
    full scale). Planar frames are (channels, n); packed ones are (1, n * channels)."""
    if not planar:
        arr = arr.reshape(-1, channels).T
    if arr.dtype.kind in "iu":
        bits = arr.dtype.itemsize * 8
        if arr.dtype.kind == "u":  # unsigned 8-bit WAV
            arr = arr.astype(np.float32) - 2 ** (bits - 1)
        arr = arr.astype(np.float32) / float(2 ** (bits - 1))
    arr = arr.astype(np.float32, copy=False)
    return arr.mean(axis=0), int(np.count_nonzero(np.abs(arr) >= 0.999))


def band_limit(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """Resample to BAND_RATE and back up to SAMPLE_RATE: every input ends with the corpus's band."""
    narrow = soxr.resample(wav, sample_rate, BAND_RATE, quality="HQ") if sample_rate != BAND_RATE else wav
    return soxr.resample(narrow, BAND_RATE, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)


def load_audio(source: Source, *, max_seconds: float = MAX_DURATION_SECONDS, max_bytes: int = MAX_FILE_BYTES, info: dict | None = None) -> np.ndarray:
    """Decode ``source`` and return band-limited mono float32 audio at SAMPLE_RATE."""
    return band_limit(decode(source, max_seconds=max_seconds, max_bytes=max_bytes, info=info), BAND_RATE)


def load_audio_wide(source: Source, *, max_seconds: float = MAX_DURATION_SECONDS, max_bytes: int = MAX_FILE_BYTES,
                    info: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``load_audio``'s band-limited audio and, from the same decoding pass, the input's full band at
    SAMPLE_RATE, sample for sample."""
    narrow, full = decode_rates(source, (BAND_RATE, SAMPLE_RATE), max_seconds=max_seconds, max_bytes=max_bytes, info=info)
    wav = band_limit(narrow, BAND_RATE)
    return wav, np.pad(full[: len(wav)], (0, max(0, len(wav) - len(full))))  # the two resamplers may differ by a sample


def audio_files(folder: Path) -> list[Path]:
    """The audio files under ``folder`` (recursively, sorted)."""
    return sorted(q for q in folder.rglob("*") if q.is_file() and q.suffix.lower() in AUDIO_EXTENSIONS)


# a manifest (CSV or parquet) names its audio by a path column or carries the bytes
PATH_COLUMNS = ("path", "file", "filepath", "audio", "audio_path")  # a manifest's path column (first found)


def manifest_path(manifest: Path, rel: str) -> Path:
    """A path written in a manifest: as it is when absolute, else relative to the manifest's folder."""
    return Path(rel) if os.path.isabs(rel) else manifest.parent / rel


def audio_bytes(cell: object) -> bytes | None:
    """The audio of a Hugging Face parquet cell: a ``{bytes, path}`` struct or the bytes themselves."""
    return cell.get("bytes") if isinstance(cell, dict) else cell  # type: ignore[return-value]


# --- voice activity ------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _vad_session():
    import importlib.util

    # Locate the weights without importing silero_vad (its __init__ imports torch models and
    # changes torch's global thread count).
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("silero-vad is not installed: pip install silero-vad")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / VAD_MODEL
    return onnx_session(path, threads=1, quiet=True)  # the file carries unused initializers


VAD_MODEL = "silero_vad_16k_sequence.onnx"  # silero-vad's 16 kHz model over a whole sequence of chunks
VAD_CHUNK = 512  # silero-vad window at 16 kHz (32 ms)
VAD_CONTEXT = 64
VAD_STATE = 128


VAD_STREAM_CHUNKS = 64  # audio is cut into ~2 s streams, each run on its own (LSTM state per stream)
VAD_WARMUP_CHUNKS = 8  # each stream first re-reads 256 ms before its start to settle its state


def speech_probabilities(wav: np.ndarray) -> np.ndarray:
    """Silero-VAD speech probability for every 32 ms chunk of 16 kHz audio.

    The audio is cut into ~2 s streams (each warmed up on the preceding 256 ms), each run through
    the model as one sequence of chunks: one call per stream instead of one per chunk, the same
    probabilities (a 30 s clip 66 -> 61 ms, a 3 s one 17 -> 8 ms; ``scripts/bench_speed.py``)."""
    sess = _vad_session()
    n = int(np.ceil(len(wav) / VAD_CHUNK))
    warm, span = VAD_WARMUP_CHUNKS, VAD_STREAM_CHUNKS
    n_streams = max(1, int(np.ceil(n / span)))
    lead = warm * VAD_CHUNK + VAD_CONTEXT
    padded = np.zeros(lead + n_streams * span * VAD_CHUNK, np.float32)
    padded[lead: lead + len(wav)] = wav
    # stream k covers chunks [k*span - warm, (k+1)*span); its chunk j starts at this sample of `padded`:
    starts = np.arange(warm + span) * VAD_CHUNK
    idx = np.arange(VAD_CHUNK + VAD_CONTEXT)[None, :]
    zero = np.zeros((1, 1, VAD_STATE), np.float32)
    probs = np.empty((n_streams, warm + span), np.float32)
    for k in range(n_streams):
        chunks = padded[k * span * VAD_CHUNK + starts[:, None] + idx]
        probs[k] = sess.run(None, {"input": chunks, "h": zero, "c": zero})[0]
    return probs[:, warm:].reshape(-1)[:n]


def detect_speech(
    wav: np.ndarray,
    *,
    threshold: float = VAD_THRESHOLD,
    min_speech_s: float = 0.25,
    min_silence_s: float = 0.1,
    pad_s: float = SPEECH_PAD_SECONDS,
) -> list[tuple[int, int]]:
    """Speech regions [(start, end)] in samples of 16 kHz audio (silero-vad with hysteresis)."""
    probs = speech_probabilities(wav)
    on, off = threshold, max(threshold - 0.15, 0.01)
    regions: list[list[int]] = []
    active = False
    start = 0
    for i, p in enumerate(probs):
        if not active and p >= on:
            active, start = True, i
        elif active and p < off:
            active = False
            regions.append([start, i])
    if active:
        regions.append([start, len(probs)])
    # merge short gaps, drop short blips
    gap = int(round(min_silence_s * SAMPLE_RATE / VAD_CHUNK))
    merged: list[list[int]] = []
    for r in regions:
        if merged and r[0] - merged[-1][1] <= gap:
            merged[-1][1] = r[1]
        else:
            merged.append(r)
    min_len = int(round(min_speech_s * SAMPLE_RATE / VAD_CHUNK))
    pad = int(pad_s * SAMPLE_RATE)
    out: list[tuple[int, int]] = []
    for a, b in merged:
        if b - a < min_len:
            continue
        s = max(0, a * VAD_CHUNK - pad)
        e = min(len(wav), b * VAD_CHUNK + pad)
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


@dataclass(frozen=True)
class Speech:
    """Speech-only audio plus the map back to the original recording's time axis."""

    audio: np.ndarray  # 16 kHz, band-limited, pauses shortened
    regions: list[tuple[int, int]]  # speech regions in original samples
    pieces: list[tuple[int, int, int]] = field(default_factory=list)  # (trimmed_start, orig_start, length)
    duration_seconds: float = 0.0  # of the original recording
    speech_seconds: float = 0.0  # VAD speech, before padding
    rms_dbfs: float = 0.0
    peak: float = 0.0
    wide: np.ndarray | None = None  # ``audio`` with the input's full band (up to 8 kHz), kept for word feedback

    def span_seconds(self, start: int, end: int) -> tuple[float, float]:
        """A window [start, end) of ``audio`` as (start_s, end_s) in the original recording."""
        return self.to_original_seconds(start), self.to_original_seconds(max(start, end - 1))

    def to_original_seconds(self, trimmed_sample: int) -> float:
        """Map a sample index in ``audio`` back to seconds in the original recording."""
        for t0, o0, length in reversed(self.pieces):
            if trimmed_sample >= t0:
                return (o0 + min(trimmed_sample - t0, length)) / SAMPLE_RATE
        return 0.0


@lru_cache(maxsize=8)
def _highpass_power(size: int) -> np.ndarray:
    """|H(f)|^2 of a 4th-order Butterworth high-pass at LEVEL_HIGHPASS_HZ (bilinear transform, the
    filter scipy's ``butter`` designs) on the bins of a ``size``-point real FFT."""
    f = np.fft.rfftfreq(size, 1.0 / SAMPLE_RATE)
    w = np.tan(np.pi * np.maximum(f, 1e-3) / SAMPLE_RATE) / np.tan(np.pi * LEVEL_HIGHPASS_HZ / SAMPLE_RATE)
    return 1.0 / (1.0 + w**-8.0)  # 1 / (1 + (wc / w)^(2 * order))


def speech_band_dbfs(wav: np.ndarray) -> float:
    """RMS level (dBFS) of ``wav`` above LEVEL_HIGHPASS_HZ, so low-frequency rumble does not set it:
    the high-pass is applied as its exact power response in the frequency domain (Parseval). Only the
    level is needed, so phase does not matter, and numpy alone keeps scipy.signal off the rating path."""
    n = len(wav)
    if n == 0:
        return rms_dbfs(wav)
    size = 1 << (n + SAMPLE_RATE // 10 - 1).bit_length()  # a power of two (fast FFT, few cached responses)
    spec = np.fft.rfft(wav, size)
    power = np.abs(spec) ** 2 * _highpass_power(size)
    energy = (2.0 * power.sum() - power[0] - power[-1]) / size  # = sum of squares of the filtered signal
    return 20.0 * np.log10(max(float(np.sqrt(max(energy, 0.0) / n)), 1e-12))


def rms_dbfs(wav: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) if wav.size else 0.0
    return 20.0 * np.log10(max(rms, 1e-12))


def trim_pauses(wav: np.ndarray, regions: list[tuple[int, int]], max_pause_s: float = MAX_PAUSE_SECONDS) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Drop leading/trailing silence and shorten every pause to at most ``max_pause_s``."""
    max_pause = int(max_pause_s * SAMPLE_RATE)
    parts: list[np.ndarray] = []
    pieces: list[tuple[int, int, int]] = []
    pos = 0
    for i, (s, e) in enumerate(regions):
        if i > 0:
            prev_end = regions[i - 1][1]
            pause = s - prev_end
            if pause > 0:
                keep = min(pause, max_pause)
                # keep the pause's middle part so that both edges stay natural
                ps = prev_end + (pause - keep) // 2
                parts.append(wav[ps: ps + keep])
                pieces.append((pos, ps, keep))
                pos += keep
        parts.append(wav[s:e])
        pieces.append((pos, s, e - s))
        pos += e - s
    audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return audio.astype(np.float32, copy=False), pieces


def prepare(
    source: Source,
    *,
    max_seconds: float = MAX_DURATION_SECONDS,
    max_bytes: int = MAX_FILE_BYTES,
    min_speech_seconds: float = MIN_SPEECH_SECONDS,
    info: dict | None = None,
    wide: bool = False,
) -> Speech:
    """Decode, band-limit, check level and run VAD: the speech every model rates. With ``wide`` the
    speech also keeps the input's full band (``Speech.wide``, for the speech recogniser of word
    feedback; the accent models never see it)."""
    if not wide:
        wav = load_audio(source, max_seconds=max_seconds, max_bytes=max_bytes, info=info)
        return prepare_waveform(wav, min_speech_seconds=min_speech_seconds)
    wav, full = load_audio_wide(source, max_seconds=max_seconds, max_bytes=max_bytes, info=info)
    return prepare_waveform(wav, min_speech_seconds=min_speech_seconds, wide=full)


def prepare_waveform(wav: np.ndarray, *, min_speech_seconds: float = MIN_SPEECH_SECONDS,
                     wide: np.ndarray | None = None) -> Speech:
    """Band-limited 16 kHz audio (``load_audio``'s output) -> speech: the level checks, VAD, pause
    trimming and level normalisation of ``prepare`` (augmented training copies enter here).
    ``wide``: the same recording with its full band, trimmed and scaled as ``wav`` is.

    Digital silence (peak below ``SILENCE_PEAK_DBFS``) and recordings without any speech are
    ``silent``; quiet speech is not: it is amplified before voice detection and rated (the rater
    warns about its low level)."""
    duration = len(wav) / SAMPLE_RATE
    if wav.size == 0:
        raise EmptyAudioError("the recording contains no samples")
    level = rms_dbfs(wav)
    peak = float(np.max(np.abs(wav)))
    if 20.0 * np.log10(max(peak, 1e-12)) < SILENCE_PEAK_DBFS:
        raise SilentAudioError(f"the recording is silent ({duration:.1f} s, peak {20 * np.log10(max(peak, 1e-12)):.0f} dBFS)")
    if duration < min_speech_seconds:
        raise TooLittleSpeechError(
            f"the recording lasts {duration:.2f} s; at least {min_speech_seconds:.0f} s of speech is needed"
        )
    vad_input = wav
    if level < QUIET_DBFS:  # quiet speech: voice detection works on a normal level
        vad_input = wav * np.float32(10.0 ** (min(VAD_LEVEL_DBFS - level, MAX_VAD_GAIN_DB) / 20.0))
    regions = detect_speech(vad_input)
    speech_s = sum(e - s for s, e in regions) / SAMPLE_RATE - 2 * SPEECH_PAD_SECONDS * len(regions)
    speech_s = max(0.0, speech_s)
    if speech_s < min(MIN_ANY_SPEECH_SECONDS, min_speech_seconds):  # a single short word may be asked for
        raise SilentAudioError(f"no speech found in {duration:.1f} s of audio ({level:.0f} dBFS)")
    if speech_s < min_speech_seconds:
        raise TooLittleSpeechError(
            f"only {speech_s:.1f} s of speech found in {duration:.1f} s; at least {min_speech_seconds:.0f} s is needed"
        )
    audio, pieces = trim_pauses(wav, regions)
    gain = level_gain(audio)
    if wide is not None:
        wide = (trim_pauses(wide, regions)[0] * gain).astype(np.float32, copy=False)
    return Speech((audio * gain).astype(np.float32, copy=False), regions, pieces, duration, speech_s, level, peak, wide)


def level_gain(audio: np.ndarray, target_dbfs: float = TARGET_SPEECH_DBFS) -> float:
    """The gain that brings the speech-band RMS (above LEVEL_HIGHPASS_HZ, so low-frequency rumble
    does not set it) to ``target_dbfs``: recording gain must not change features."""
    return 10.0 ** ((target_dbfs - speech_band_dbfs(audio)) / 20.0)


def normalize_level(audio: np.ndarray, target_dbfs: float = TARGET_SPEECH_DBFS) -> np.ndarray:
    """``audio`` scaled by ``level_gain``."""
    return (audio * level_gain(audio, target_dbfs)).astype(np.float32, copy=False)


# --- segmentation --------------------------------------------------------------------------------
def segment_starts(n_samples: int, window: int = SEGMENT_SAMPLES, hop: int = SEGMENT_HOP_SAMPLES) -> list[int]:
    """Window starts covering every sample: regular hops, plus one window flush with the end whenever
    samples remain after the last regular window (the tail is never dropped nor stretched)."""
    if n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window + 1, hop))
    if starts[-1] + window < n_samples:
        starts.append(n_samples - window)
    return starts


def chunk_spans(n_samples: int, window_s: float = CHUNK_SECONDS, min_tail_s: float = MIN_TAIL_SECONDS) -> list[tuple[int, int]]:
    """Consecutive, non-overlapping windows covering all ``n_samples``: full windows, then the
    remainder as its own shorter window, or appended to the last window when under ``min_tail_s``."""
    window, min_tail = int(window_s * SAMPLE_RATE), int(min_tail_s * SAMPLE_RATE)
    spans = [(s, min(s + window, n_samples)) for s in range(0, max(n_samples, 1), window)]
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < min_tail:
        spans[-2:] = [(spans[-2][0], n_samples)]
    return spans


def make_segments(audio: np.ndarray, window: int = SEGMENT_SAMPLES, hop: int = SEGMENT_HOP_SAMPLES) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Cut speech into fixed windows (B, window). Audio shorter than one window is tiled (looped)
    to fill it, never stretched; returns the windows and their (start, end) sample spans."""
    if len(audio) == 0:
        raise ValueError("cannot segment empty audio")
    if len(audio) < window:
        reps = int(np.ceil(window / len(audio)))
        return np.tile(audio, reps)[:window][None, :], [(0, len(audio))]
    starts = segment_starts(len(audio), window, hop)
    batch = np.stack([audio[s: s + window] for s in starts])
    return batch, [(s, s + window) for s in starts]
