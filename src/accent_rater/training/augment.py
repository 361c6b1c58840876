"""Channel augmentation: what phones, laptops, codecs and rooms do to speech.

Used for training-time augmentation and for robustness evaluation of the accent classifier. Every
function takes and returns mono float32 audio at ``audio.SAMPLE_RATE`` (16 kHz), roughly in
[-1, 1]; the output has exactly the input's length and stays time-aligned with it (codec delay is
removed, see below), and every random choice is drawn from the ``numpy.random.Generator`` passed
in, so a seeded generator gives identical output.

Kinds (``augment(wav, kind, rng)``; parameters drawn uniformly from the ranges shown):

* ``telephone``: 8 kHz line: soxr to 8 kHz, 300-3400 Hz Butterworth band-pass (order 4 per edge,
  ``sosfilt``), G.711 mu-law (the exact 8-bit segment code, at a line level of -12..0 dB that is
  undone afterwards), soxr back to 16 kHz.
* ``opus``: libopus at 6-12 kbps (whole kbps), ``application=voip``, encoder complexity 1 (a
  low-end phone setting; at these rates complexity 3 costs 1.3-2x and 10 about 3x the time for a
  similar waveform SNR on real speech; change ``_CODECS["opus"]`` to trade speed for fidelity).
* ``mp3``: LAME at 16 kbps, coded at 16 kHz (MPEG-2) or 8 kHz (MPEG-2.5), LAME quality 7.
* ``amr``: AMR-NB (libopencore) at 8 kHz, one of its eight modes 4.75-12.2 kbps.
* ``gsm``: GSM 06.10 full rate (libgsm, 13 kbps, 8 kHz), only where PyAV's FFmpeg has the
  ``libgsm`` encoder. The PyAV wheel installed here has no GSM encoder (``libgsm`` and
  ``libgsm_ms`` are missing; its decoders exist), so ``gsm`` is not in ``KINDS`` on this machine
  and that code path is untested here; it shares the AMR path (8 kHz, calibrated delay).
* ``reverb``: synthetic room: a direct path plus an exponentially decaying noise tail (RT60
  0.2-0.9 s, first reflection after 2-12 ms, tail duller than the direct sound), wet/dry mix
  0.3-0.8, ``fftconvolve``, RMS kept.
* ``noise``: pink, white or brown noise at 5-20 dB SNR (``add_noise``); in 30 % of cases a mains
  hum (50 or 60 Hz plus 2-7 harmonics) is part of the noise.
* ``gain``: gain -20..+10 dB, then an AGC-like compressor (1 ms block peak envelope, attack
  1-10 ms, release 100-500 ms, threshold -30..-15 dBFS, ratio 3-8), make-up gain to an active
  speech level of -26..-16 dBFS, and a look-ahead peak limiter at 0.99 so no sample exceeds 1.
* ``clipping``: clip at 0.1-0.5 of the peak (hard; in 25 % of cases soft, ``tanh``), then scaled
  back to the original peak.

Codecs run in memory through PyAV (its bundled FFmpeg; no CLI): one encoder and one decoder
context, packets passed straight from one to the other. FFmpeg already drops the encoders'
priming samples (Opus pre-skip, LAME delay) via the packets' skip-samples side data; whatever
delay remains (AMR-NB: about 5 ms) is measured once per codec setting by cross-correlating the
round trip of a fixed synthetic vowel (cached), and removed, so output is time-aligned with the
input within a few samples. The codec's tail is trimmed or zero-padded to the input length.

SNR and levels: ``add_noise`` sets the noise level against the RMS of the *active* speech (20 ms
frames within 30 dB of the loudest frame, ``active_rms``), so pauses do not make the SNR look
better than it sounds.

Speed (one call on 30 s of speech, one thread; median / worst over 8 seeds, CPU seconds; measured
on this project's 2-core development machine while another CPU-heavy job kept its load at ~5,
where a 3-million-step pure-Python loop took 0.59 s; expect less on an idle machine):
telephone 0.020 / 0.021, opus 0.16 / 0.23, mp3 0.11 / 0.17 (16 kHz coding is the slower), amr
0.20 / 0.23, reverb 0.033 / 0.039, noise 0.028 / 0.082 (with hum), gain 0.052 / 0.065, clipping
0.003 / 0.019. The first call of each codec setting also measures its delay (one 1 s round trip).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np
import soxr
from scipy.fft import irfft, next_fast_len, rfftfreq
from scipy.ndimage import maximum_filter1d, minimum_filter1d, uniform_filter1d
from scipy.signal import butter, fftconvolve, lfilter, sosfilt

from ..audio import SAMPLE_RATE

__all__ = [
    "KINDS",
    "active_rms",
    "add_noise",
    "augment",
    "augment_kind",
    "change_level",
    "pink_noise",
    "random_augment",
]

NOISE_COLORS = ("pink", "white", "brown")
ACTIVE_FRAME = SAMPLE_RATE // 50  # 20 ms frames for the active speech level
ACTIVE_RANGE_DB = 30.0  # frames within this of the loudest frame count as speech
_NOISE_FLOOR_HZ = 20.0  # coloured noise is flat below this (no sub-audible drift)


# --- levels and noise ----------------------------------------------------------------------------
def _as_mono(wav: np.ndarray) -> np.ndarray:
    x = np.asarray(wav, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected mono audio (1-D array), got shape {x.shape}")
    return x


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def active_rms(wav: np.ndarray, range_db: float = ACTIVE_RANGE_DB) -> float:
    """RMS of the active speech: 20 ms frames whose power is within ``range_db`` of the loudest
    frame (a trailing partial frame counts as a frame). 0.0 for empty or all-zero input."""
    x = _as_mono(wav).astype(np.float64)
    if x.size == 0:
        return 0.0
    n_frames = -(-x.size // ACTIVE_FRAME)
    padded = np.zeros(n_frames * ACTIVE_FRAME)
    padded[: x.size] = x
    power = np.square(padded).reshape(n_frames, ACTIVE_FRAME).sum(axis=1)
    counts = np.full(n_frames, ACTIVE_FRAME, dtype=np.float64)
    counts[-1] = x.size - (n_frames - 1) * ACTIVE_FRAME
    power /= counts
    loudest = float(power.max())
    if loudest <= 0.0:
        return 0.0
    active = power >= loudest * 10.0 ** (-range_db / 10.0)
    return float(np.sqrt(np.sum(power[active] * counts[active]) / np.sum(counts[active])))


def _power_law_noise(n: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise with power spectrum ~ 1/f**alpha above _NOISE_FLOOR_HZ (flat below, no DC)."""
    if n <= 0:
        return np.zeros(0, np.float32)
    m = next_fast_len(max(n, 2), real=True)
    freqs = rfftfreq(m, 1.0 / SAMPLE_RATE)
    shape = np.maximum(freqs, _NOISE_FLOOR_HZ) ** (-alpha / 2.0)
    shape[0] = 0.0
    spec = (rng.standard_normal(freqs.size) + 1j * rng.standard_normal(freqs.size)) * shape
    x = irfft(spec, m)[:n]
    x -= x.mean()
    rms = _rms(x)
    return (x / rms if rms > 0 else x).astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of unit-RMS pink (1/f power, -3 dB per octave) noise at 16 kHz.

    Made by shaping a white complex spectrum; flat below 20 Hz and without DC, so the level does
    not depend on ``n`` through sub-audible drift."""
    return _power_law_noise(int(n), 1.0, rng)


def _colored_noise(n: int, color: str, rng: np.random.Generator) -> np.ndarray:
    if color == "pink":
        return _power_law_noise(n, 1.0, rng)
    if color == "brown":
        return _power_law_noise(n, 2.0, rng)
    if color == "white":
        x = rng.standard_normal(n)
        rms = _rms(x)
        return (x / rms if rms > 0 else x).astype(np.float32)
    raise ValueError(f"unknown noise color {color!r}; expected one of {', '.join(NOISE_COLORS)}")


def _mix_at_snr(wav: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``wav`` plus unit-RMS ``noise`` scaled to ``snr_db`` below the active speech RMS."""
    ref = active_rms(wav)
    if ref == 0.0:
        return wav.copy()
    scale = ref * 10.0 ** (-float(snr_db) / 20.0) / max(_rms(noise), 1e-20)
    return (wav.astype(np.float64) + noise.astype(np.float64) * scale).astype(np.float32)


def add_noise(wav: np.ndarray, snr_db: float, rng: np.random.Generator, color: str = "pink") -> np.ndarray:
    """Add stationary ``color`` noise ("pink", "white" or "brown") at ``snr_db`` dB SNR.

    The SNR is the active speech RMS (``active_rms``: 20 ms frames within 30 dB of the loudest)
    over the RMS of the added noise. Digital silence has no speech level and is returned as is."""
    x = _as_mono(wav)
    return _mix_at_snr(x, _colored_noise(x.size, color, rng), snr_db)


def _hum(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS mains hum: 50 or 60 Hz (+-0.5 %) with 2-7 harmonics of decaying level."""
    f0 = float(rng.choice([50.0, 60.0])) * (1.0 + rng.uniform(-0.005, 0.005))
    n_harm = int(rng.integers(3, 9))  # fundamental + 2..7 harmonics
    slope = rng.uniform(0.5, 1.5)
    t = np.arange(n) / SAMPLE_RATE
    x = np.zeros(n)
    for k in range(1, n_harm + 1):
        x += k ** (-slope) * np.sin(2.0 * np.pi * k * f0 * t + rng.uniform(0.0, 2.0 * np.pi))
    rms = _rms(x)
    return (x / rms if rms > 0 else x).astype(np.float32)


def change_level(wav: np.ndarray, db: float, bits: int = 16) -> np.ndarray:
    """Apply ``db`` dB of gain, then quantise to ``bits``-bit integer PCM (rounding, saturating at
    full scale) and back, as a recording made that much quieter (or louder) would be stored."""
    if not 2 <= int(bits) <= 32:
        raise ValueError(f"bits must be between 2 and 32, got {bits}")
    x = _as_mono(wav).astype(np.float64) * 10.0 ** (float(db) / 20.0)
    q = float(2 ** (int(bits) - 1))
    return (np.clip(np.round(x * q), -q, q - 1.0) / q).astype(np.float32)


# --- telephone -----------------------------------------------------------------------------------
_PHONE_RATE = 8_000


@lru_cache(maxsize=2)
def _band_sos(rate: int) -> np.ndarray:
    return butter(4, [300.0, 3400.0], btype="bandpass", fs=rate, output="sos")


def _mulaw_g711(x: np.ndarray) -> np.ndarray:
    """Round trip through G.711 mu-law (8-bit codes, the standard segment table with bias 132)."""
    s = np.clip(np.round(np.asarray(x, np.float64) * 32768.0), -32768, 32767).astype(np.int64)
    negative = s < 0
    mag = np.minimum(np.abs(s), 32635) + 132
    seg = np.frexp(mag.astype(np.float64))[1] - 8  # floor(log2(mag)) - 7, in 0..7
    mant = (mag >> (seg + 3)) & 0x0F
    dec = (((mant << 3) + 132) << seg) - 132
    return (np.where(negative, -dec, dec) / 32768.0).astype(np.float32)


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad to ``n`` samples."""
    if x.size >= n:
        return np.ascontiguousarray(x[:n], dtype=np.float32)
    out = np.zeros(n, np.float32)
    out[: x.size] = x
    return out


def _telephone(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    line_gain = 10.0 ** (rng.uniform(-12.0, 0.0) / 20.0)
    narrow = soxr.resample(x, SAMPLE_RATE, _PHONE_RATE, quality="HQ")
    narrow = sosfilt(_band_sos(_PHONE_RATE), narrow)
    narrow = _mulaw_g711(narrow * line_gain) / line_gain
    wide = soxr.resample(narrow.astype(np.float32), _PHONE_RATE, SAMPLE_RATE, quality="HQ")
    return _fit(wide, x.size)


# --- codecs (PyAV, in memory) --------------------------------------------------------------------
@dataclass(frozen=True)
class _CodecSpec:
    encoders: tuple[str, ...]  # FFmpeg encoder names, first available wins
    decoders: tuple[str, ...]
    rates: tuple[int, ...]  # coding sample rates (Hz), one drawn per call
    bit_rates: tuple[int, ...]  # bits/s, one drawn per call
    options: tuple[tuple[str, str], ...] = ()


_CODECS: dict[str, _CodecSpec] = {
    "opus": _CodecSpec(
        ("libopus", "opus"),
        ("libopus", "opus"),
        (16_000,),
        tuple(range(6_000, 12_001, 1_000)),
        (("application", "voip"), ("compression_level", "1")),
    ),
    "mp3": _CodecSpec(("libmp3lame", "mp3"), ("mp3float", "mp3"), (16_000, 8_000), (16_000,), (("compression_level", "7"),)),
    "amr": _CodecSpec(
        ("libopencore_amrnb",),
        ("amrnb", "libopencore_amrnb"),
        (8_000,),
        (4_750, 5_150, 5_900, 6_700, 7_400, 7_950, 10_200, 12_200),
    ),
    "gsm": _CodecSpec(("libgsm",), ("gsm", "libgsm"), (8_000,), (13_000,)),
}


@cache
def _find_codec(names: tuple[str, ...], mode: str) -> str | None:
    """The first of ``names`` that PyAV's FFmpeg has as an encoder ("w") or decoder ("r")."""
    try:
        import av
    except ImportError:
        return None
    for name in names:
        try:
            codec = av.Codec(name, mode)
        except Exception:  # av.codec.codec.UnknownCodecError, or a non-audio codec
            continue
        if codec.type == "audio":
            return codec.name
    return None


def _codec_available(kind: str) -> bool:
    spec = _CODECS[kind]
    return _find_codec(spec.encoders, "w") is not None and _find_codec(spec.decoders, "r") is not None


_SAMPLE_DTYPES = {"u8": np.uint8, "s16": np.int16, "s32": np.int32, "s64": np.int64, "flt": np.float32, "dbl": np.float64}


def _frames_to_float(frames: list) -> tuple[np.ndarray, int]:
    """Decoded frames (one sample format throughout, as a decoder gives) -> (mono float32
    samples, sample rate)."""
    if not frames:
        return np.zeros(0, np.float32), 0
    channels = len(frames[0].layout.channels)
    if channels == 1:  # fast path: join the raw sample buffers (per-frame to_ndarray is 3x slower)
        width = frames[0].format.bytes
        raw = b"".join(bytes(f.planes[0])[: f.samples * width] for f in frames)
        a = np.frombuffer(raw, dtype=_SAMPLE_DTYPES[frames[0].format.name.rstrip("p")])
    else:
        planar = frames[0].format.is_planar
        blocks = [f.to_ndarray() for f in frames]
        a = np.concatenate([b.reshape(channels, -1) if planar else b.reshape(-1, channels).T for b in blocks], axis=1)
    if a.dtype.kind == "i":
        a = a.astype(np.float32) / float(2 ** (a.dtype.itemsize * 8 - 1))
    elif a.dtype.kind == "u":
        a = (a.astype(np.float32) - 128.0) / 128.0
    a = a.astype(np.float32, copy=False)
    return (a.mean(axis=0) if a.ndim == 2 else a), int(frames[0].sample_rate)


def _codec_raw(x: np.ndarray, kind: str, rate: int, bit_rate: int) -> np.ndarray:
    """Encode and decode 16 kHz ``x`` at ``rate`` Hz and ``bit_rate`` b/s; return 16 kHz output,
    not yet aligned (any delay left after FFmpeg's own priming removal is still in it)."""
    import av

    spec = _CODECS[kind]
    enc_name = _find_codec(spec.encoders, "w")
    dec_name = _find_codec(spec.decoders, "r")
    if enc_name is None or dec_name is None:
        raise ValueError(f"PyAV's FFmpeg has no {kind} codec on this machine (valid kinds: {', '.join(KINDS)})")
    coded = soxr.resample(x, SAMPLE_RATE, rate, quality="HQ") if rate != SAMPLE_RATE else x
    coded = np.clip(coded, -1.0, 1.0).astype(np.float32)
    enc = av.CodecContext.create(enc_name, "w")
    enc.sample_rate = rate
    enc.layout = "mono"
    enc.format = enc.codec.audio_formats[0].name
    enc.bit_rate = bit_rate
    if spec.options:
        enc.options = dict(spec.options)
    enc.open()
    frame = av.AudioFrame.from_ndarray(coded[None, :], format="flt", layout="mono")
    frame.sample_rate = rate
    frame.pts = 0
    packets = list(enc.encode(frame)) + list(enc.encode(None))  # PyAV re-frames to frame_size
    dec = av.CodecContext.create(dec_name, "r")
    dec.sample_rate = rate
    dec.layout = "mono"
    if enc.extradata:  # Opus: the OpusHead (channels, pre-skip)
        dec.extradata = enc.extradata
    frames = [f for packet in packets + [None] for f in dec.decode(packet)]
    y, out_rate = _frames_to_float(frames)
    if y.size and out_rate != SAMPLE_RATE:  # e.g. every Opus decoder outputs 48 kHz
        y = soxr.resample(y, out_rate, SAMPLE_RATE, quality="HQ")
    return np.nan_to_num(np.asarray(y, dtype=np.float32))  # a fresh, writable array


def _calibration_vowel(seconds: float = 1.0) -> np.ndarray:
    """A fixed speech-like test signal: glottal pulses with a gliding pitch (no periodic
    ambiguity for the cross-correlation) through three formants, syllable-rate modulated."""
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f0 = 100.0 + 100.0 * t / seconds + 15.0 * np.sin(2.0 * np.pi * 3.0 * t)
    phase = np.cumsum(f0 / SAMPLE_RATE)
    x = np.diff(np.floor(phase), prepend=0.0)
    for fc, bw in ((700.0, 130.0), (1200.0, 70.0), (2600.0, 160.0)):
        r = np.exp(-np.pi * bw / SAMPLE_RATE)
        x = lfilter([1.0 - r], [1.0, -2.0 * r * np.cos(2.0 * np.pi * fc / SAMPLE_RATE), r * r], x)
    x *= 0.5 + 0.5 * np.sin(2.0 * np.pi * 4.0 * t) ** 2
    x += 0.05 * np.std(x) * np.random.default_rng(0).standard_normal(n)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


_MAX_LEAD = SAMPLE_RATE // 20  # output up to 50 ms early ...
_MAX_DELAY = SAMPLE_RATE // 4  # ... or 250 ms late


@cache
def _codec_delay(kind: str, rate: int, bit_rate: int) -> int:
    """Delay (16 kHz samples; negative = early) of the codec round trip at this setting, from the
    cross-correlation peak on the calibration vowel; 0 if the correlation is too weak to trust."""
    x = _calibration_vowel()
    y = _codec_raw(x, kind, rate, bit_rate)
    if y.size == 0:
        return 0
    corr = fftconvolve(y.astype(np.float64), x[::-1].astype(np.float64), mode="full")
    lags = np.arange(corr.size) - (x.size - 1)
    window = (lags >= -_MAX_LEAD) & (lags <= _MAX_DELAY)
    best = int(np.argmax(np.where(window, corr, -np.inf)))
    norm = np.sqrt(np.sum(np.square(x, dtype=np.float64)) * np.sum(np.square(y, dtype=np.float64)))
    if norm <= 0 or corr[best] / norm < 0.3:
        return 0
    return int(lags[best])


def _codec(x: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    spec = _CODECS[kind]
    rate = int(spec.rates[int(rng.integers(len(spec.rates)))])
    bit_rate = int(spec.bit_rates[int(rng.integers(len(spec.bit_rates)))])
    if x.size == 0:
        return x.copy()
    y = _codec_raw(x, kind, rate, bit_rate)
    delay = _codec_delay(kind, rate, bit_rate)
    if delay >= 0:
        return _fit(y[delay:], x.size)
    return _fit(np.concatenate([np.zeros(-delay, np.float32), y]), x.size)


# --- room ----------------------------------------------------------------------------------------
def _reverb(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rt60 = rng.uniform(0.2, 0.9)
    mix = rng.uniform(0.3, 0.8)
    predelay = int(rng.uniform(0.002, 0.012) * SAMPLE_RATE)
    damping = rng.uniform(0.2, 0.6)  # one-pole low-pass on the tail: walls absorb highs
    length = predelay + int(rt60 * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    tail = rng.standard_normal(length) * np.exp(-3.0 * np.log(10.0) * t / rt60)  # -60 dB at RT60
    tail[:predelay] = 0.0
    tail = lfilter([1.0 - damping], [1.0, -damping], tail)
    tail /= np.sqrt(np.sum(np.square(tail)))
    rir = mix * tail
    rir[0] += 1.0 - mix  # direct path
    if x.size == 0:
        return x.copy()
    y = fftconvolve(x.astype(np.float64), rir)[: x.size]
    level, out_level = _rms(x), _rms(y)
    if out_level > 0:
        y *= level / out_level
    return y.astype(np.float32)


# --- device noise --------------------------------------------------------------------------------
def _noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    snr_db = rng.uniform(5.0, 20.0)
    color = NOISE_COLORS[int(rng.integers(len(NOISE_COLORS)))]
    noise = _colored_noise(x.size, color, rng).astype(np.float64)
    if rng.random() < 0.3:
        noise += _hum(x.size, rng) * 10.0 ** (rng.uniform(-10.0, 10.0) / 20.0)
    return _mix_at_snr(x, noise, snr_db)


# --- automatic gain ------------------------------------------------------------------------------
_BLOCK = 16  # 1 ms blocks for the compressor's envelope follower
_LIMIT_CEILING = 0.99
_LIMIT_HALF_WINDOW = 64  # 4 ms look-ahead / release of the limiter


def _compress(x: np.ndarray, threshold_db: float, ratio: float, attack_s: float, release_s: float) -> np.ndarray:
    """Feed-forward compressor: block-peak envelope (dB) with attack/release smoothing."""
    n = x.size
    n_blocks = -(-n // _BLOCK)
    padded = np.zeros(n_blocks * _BLOCK)
    padded[:n] = np.abs(x)
    peaks_db = 20.0 * np.log10(np.maximum(padded.reshape(n_blocks, _BLOCK).max(axis=1), 1e-6))
    a_att = float(np.exp(-_BLOCK / (attack_s * SAMPLE_RATE)))
    a_rel = float(np.exp(-_BLOCK / (release_s * SAMPLE_RATE)))
    env = np.empty(n_blocks)
    e = -120.0
    for i, level in enumerate(peaks_db.tolist()):
        a = a_att if level > e else a_rel
        e = a * e + (1.0 - a) * level
        env[i] = e
    reduction_db = -(1.0 - 1.0 / ratio) * np.maximum(env - threshold_db, 0.0)
    centres = (np.arange(n_blocks) + 0.5) * _BLOCK
    gain = 10.0 ** (np.interp(np.arange(n), centres, reduction_db) / 20.0)
    return x * gain


def _limit(x: np.ndarray, ceiling: float = _LIMIT_CEILING) -> np.ndarray:
    """Look-ahead peak limiter: no sample exceeds ``ceiling``. The gain is the minimum of the
    needed gain over a window, then averaged over the same window, so it is never above the
    needed gain at any sample (each average term is a minimum over a window containing it)."""
    size = 2 * _LIMIT_HALF_WINDOW + 1
    peak = maximum_filter1d(np.abs(x), size=size, mode="nearest")
    need = np.minimum(1.0, ceiling / np.maximum(peak, 1e-12))
    gain = uniform_filter1d(minimum_filter1d(need, size=size, mode="nearest"), size=size, mode="nearest")
    return np.clip(x * np.minimum(gain, need), -1.0, 1.0)


def _gain(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    pre_db = rng.uniform(-20.0, 10.0)
    threshold_db = rng.uniform(-30.0, -15.0)
    ratio = rng.uniform(3.0, 8.0)
    attack_s = rng.uniform(0.001, 0.010)
    release_s = rng.uniform(0.1, 0.5)
    target_db = rng.uniform(-26.0, -16.0)
    if x.size == 0:
        return x.copy()
    y = _compress(x.astype(np.float64) * 10.0 ** (pre_db / 20.0), threshold_db, ratio, attack_s, release_s)
    level = active_rms(y)
    if level > 0:
        y *= 10.0 ** (target_db / 20.0) / level  # make-up gain, AGC-style: to a target level
    return _limit(y).astype(np.float32)


# --- clipping ------------------------------------------------------------------------------------
def _clipping(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    fraction = rng.uniform(0.1, 0.5)
    soft = rng.random() < 0.25
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak == 0.0:
        return x.copy()
    c = fraction * peak
    xd = x.astype(np.float64)
    y = c * np.tanh(xd / c) if soft else np.clip(xd, -c, c)
    return (y * (peak / np.max(np.abs(y)))).astype(np.float32)


# --- public entry points -------------------------------------------------------------------------
_EFFECTS = {
    "telephone": _telephone,
    "reverb": _reverb,
    "noise": _noise,
    "gain": _gain,
    "clipping": _clipping,
}
_ORDER = ("telephone", "opus", "mp3", "amr", "gsm", "reverb", "noise", "gain", "clipping")

KINDS: tuple[str, ...] = tuple(k for k in _ORDER if k in _EFFECTS or _codec_available(k))
"""The channel kinds that work on this machine (codec kinds need PyAV's FFmpeg to have them)."""


def augment(wav: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Pass mono 16 kHz float32 ``wav`` through channel ``kind`` (one of ``KINDS``), its
    parameters drawn from ``rng``. Returns float32 of the same length, time-aligned with ``wav``."""
    if kind not in KINDS:
        extra = " (its encoder is missing from PyAV's FFmpeg here)" if kind in _CODECS else ""
        raise ValueError(f"unknown augmentation kind {kind!r}{extra}; valid kinds: {', '.join(KINDS)}")
    x = _as_mono(wav)
    if x.size == 0:
        return x.copy()
    if kind in _CODECS:
        return _codec(x, kind, rng)
    return _EFFECTS[kind](x, rng)


def random_augment(wav: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """``augment`` with a kind drawn uniformly from ``KINDS``; returns (audio, kind)."""
    kind = KINDS[int(rng.integers(len(KINDS)))]
    return augment(wav, kind, rng), kind


def augment_kind(speaker_id: str, copy: int) -> str:
    """The augmentation of a recording's ``copy``-th training copy: kinds in turn, offset per speaker."""
    import zlib

    return KINDS[(zlib.crc32(speaker_id.encode()) + copy) % len(KINDS)]
