"""Channel augmentation (``accent_rater.training.augment``) on real speech.

All checks run on ``native_us_english5.flac`` (7 s of read speech, 16 kHz, 8 kHz band) and measure
the effect from the signals themselves: band power by Welch PSD, SNR from the added signal
(output minus input), time alignment from the waveform cross-correlation peak.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import correlate, welch

from accent_rater import audio
from accent_rater.training import augment

from conftest import FIXTURES

SR = audio.SAMPLE_RATE
CODEC_KINDS = [k for k in ("opus", "mp3", "amr", "gsm") if k in augment.KINDS]
FRAME = SR // 50  # 20 ms


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    wav = audio.load_audio(FIXTURES / "native_us_english5.flac")
    assert wav.dtype == np.float32 and wav.size == 7 * SR
    return wav


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def db(x: float) -> float:
    return 20.0 * np.log10(x)


def speech_rms(x: np.ndarray) -> float:
    """RMS over the 20 ms frames within 30 dB of the loudest frame (computed here, independently)."""
    frames = x[: x.size // FRAME * FRAME].astype(np.float64).reshape(-1, FRAME)
    power = np.mean(frames**2, axis=1)
    return float(np.sqrt(np.mean(power[power >= power.max() * 1e-3])))


def band_power_db(x: np.ndarray, lo: float, hi: float) -> float:
    freqs, psd = welch(x, SR, nperseg=2048)
    band = (freqs >= lo) & (freqs < hi)
    return float(10.0 * np.log10(np.sum(psd[band])))


def peak_lag(ref: np.ndarray, out: np.ndarray, max_lag: int = SR // 4) -> tuple[int, float]:
    """Lag (samples, positive = ``out`` late) of the cross-correlation peak within +-max_lag, and
    the normalised correlation there."""
    corr = correlate(out.astype(np.float64), ref.astype(np.float64), mode="full", method="fft")
    lags = np.arange(corr.size) - (ref.size - 1)
    corr = np.where(np.abs(lags) <= max_lag, corr, -np.inf)
    best = int(np.argmax(corr))
    return int(lags[best]), float(corr[best] / np.sqrt(np.sum(ref.astype(np.float64) ** 2) * np.sum(out.astype(np.float64) ** 2)))


def spectral_slope(x: np.ndarray, lo: float = 100.0, hi: float = 4000.0) -> float:
    """Slope of log10(PSD) against log10(f) between lo and hi: 0 white, -1 pink, -2 brown."""
    freqs, psd = welch(x, SR, nperseg=4096)
    band = (freqs >= lo) & (freqs <= hi)
    return float(np.polyfit(np.log10(freqs[band]), np.log10(psd[band]), 1)[0])


# --- every kind ----------------------------------------------------------------------------------
def test_kinds_are_the_working_ones():
    assert {"telephone", "reverb", "noise", "gain", "clipping"} <= set(augment.KINDS)
    assert {"opus", "mp3"} <= set(augment.KINDS)  # PyAV's wheels bundle libopus and LAME
    assert len(set(augment.KINDS)) == len(augment.KINDS)
    import av

    for kind, encoder in (("gsm", "libgsm"), ("amr", "libopencore_amrnb")):
        try:
            av.Codec(encoder, "w")
            present = True
        except Exception:
            present = False
        assert (kind in augment.KINDS) == present


@pytest.mark.parametrize("kind", augment.KINDS)
def test_kind_keeps_length_is_finite_deterministic_and_changes_the_audio(speech, kind):
    out = augment.augment(speech, kind, np.random.default_rng(7))
    again = augment.augment(speech, kind, np.random.default_rng(7))
    assert out.dtype == np.float32 and out.shape == speech.shape
    assert np.all(np.isfinite(out))
    assert np.array_equal(out, again)
    assert np.max(np.abs(out)) <= 1.5
    change = rms(out - speech) / rms(speech)
    assert change > 0.02, f"{kind} left the audio (almost) unchanged: relative difference {change:.4f}"
    assert np.array_equal(speech, audio.load_audio(FIXTURES / "native_us_english5.flac"))  # input untouched


@pytest.mark.parametrize("kind", ["telephone", "reverb", "noise", "gain", "clipping"])
def test_seeds_draw_different_parameters(speech, kind):
    outs = [augment.augment(speech, kind, np.random.default_rng(seed)) for seed in (1, 2)]
    assert not np.allclose(outs[0], outs[1])


def test_unknown_kind_names_the_valid_ones(speech):
    with pytest.raises(ValueError) as err:
        augment.augment(speech, "underwater", np.random.default_rng(0))
    message = str(err.value)
    assert "underwater" in message and all(kind in message for kind in augment.KINDS)


def test_random_augment_draws_kinds_from_kinds(speech):
    clip = speech[: 2 * SR]
    seen = []
    for seed in range(16):
        out, kind = augment.random_augment(clip, np.random.default_rng(seed))
        assert kind in augment.KINDS
        assert out.shape == clip.shape and np.all(np.isfinite(out))
        again, kind_again = augment.random_augment(clip, np.random.default_rng(seed))
        assert kind_again == kind and np.array_equal(out, again)
        seen.append(kind)
    assert len(set(seen)) >= 5


def test_short_and_empty_input():
    rng = np.random.default_rng(0)
    for kind in augment.KINDS:
        assert augment.augment(np.zeros(0, np.float32), kind, rng).shape == (0,)
        tiny = (0.1 * np.sin(np.arange(100) * 0.3)).astype(np.float32)
        out = augment.augment(tiny, kind, rng)
        assert out.shape == tiny.shape and np.all(np.isfinite(out))


# --- telephone -----------------------------------------------------------------------------------
def test_telephone_band_limits_to_300_3400(speech):
    out = augment.augment(speech, "telephone", np.random.default_rng(0))
    low_drop = band_power_db(speech, 60, 200) - band_power_db(out, 60, 200)
    high_drop = band_power_db(speech, 3600, 3900) - band_power_db(out, 3600, 3900)
    pass_change = band_power_db(out, 500, 3000) - band_power_db(speech, 500, 3000)
    assert low_drop > 15.0, f"only {low_drop:.1f} dB less power below 200 Hz"
    assert high_drop > 8.0, f"only {high_drop:.1f} dB less power above 3.6 kHz"
    assert abs(pass_change) < 1.0
    lag, corr = peak_lag(speech, out)
    assert abs(lag) <= SR // 100 and corr > 0.5


def test_mulaw_matches_ffmpeg_g711():
    """The companding reconstructs to exactly G.711's 255 mu-law levels (FFmpeg's pcm_mulaw decoder
    table), and over every 16-bit input agrees with FFmpeg's encoder except on decision boundaries
    (FFmpeg rounds those, and negative inputs, differently from the ITU reference), where the two
    pick neighbouring levels."""
    import av

    dec = av.CodecContext.create("pcm_mulaw", "r")
    dec.sample_rate, dec.layout = 8000, "mono"
    table = np.concatenate([f.to_ndarray().reshape(-1) for f in dec.decode(av.Packet(bytes(range(256))))])
    levels = np.unique(table.astype(np.int64))
    assert levels.size == 255

    s16 = np.arange(-32768, 32768, dtype=np.int16)
    ours = np.round(augment._mulaw_g711(s16 / 32768.0).astype(np.float64) * 32768.0).astype(np.int64)
    assert np.array_equal(np.unique(ours), levels)
    enc = av.CodecContext.create("pcm_mulaw", "w")
    enc.sample_rate, enc.layout, enc.format = 8000, "mono", "s16"
    enc.open()
    frame = av.AudioFrame.from_ndarray(s16[None, :], format="s16", layout="mono")
    frame.sample_rate = 8000
    dec = av.CodecContext.create("pcm_mulaw", "r")
    dec.sample_rate, dec.layout = 8000, "mono"
    packets = list(enc.encode(frame)) + list(enc.encode(None))
    ffmpeg = np.concatenate([f.to_ndarray().reshape(-1) for p in packets for f in dec.decode(p)]).astype(np.int64)
    assert np.mean(ours == ffmpeg) > 0.98
    step = np.abs(np.searchsorted(levels, ours) - np.searchsorted(levels, ffmpeg))
    assert step.max() == 1


# --- codecs --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", CODEC_KINDS)
def test_codec_output_is_time_aligned_and_correlated(speech, kind):
    for seed in range(4):
        out = augment.augment(speech, kind, np.random.default_rng(seed))
        lag, _ = peak_lag(speech, out)
        assert abs(lag) <= SR // 100, f"{kind} (seed {seed}) is {lag / SR * 1000:.1f} ms off"
        zero_lag_corr = float(np.corrcoef(speech, out)[0, 1])
        assert zero_lag_corr > 0.5, f"{kind} (seed {seed}) correlates only {zero_lag_corr:.2f} with the input"
        assert abs(db(rms(out) / rms(speech))) < 3.0


def test_opus_low_bitrate_is_lossy(speech):
    """6-12 kbps Opus is far from transparent: the error is large, unlike a near-lossless codec."""
    if "opus" not in augment.KINDS:
        pytest.skip("no Opus encoder")
    out = augment.augment(speech, "opus", np.random.default_rng(0))
    snr = db(rms(speech) / rms(out - speech))
    assert snr < 15.0


# --- reverb --------------------------------------------------------------------------------------
def _pause_after_speech(x: np.ndarray) -> tuple[int, int]:
    """The longest run of 20 ms frames at least 35 dB below the loudest frame, in samples."""
    frames = x[: x.size // FRAME * FRAME].astype(np.float64).reshape(-1, FRAME)
    power = np.mean(frames**2, axis=1)
    quiet = power < power.max() * 10 ** -3.5
    best, start = (0, 0), None
    for i, q in enumerate(np.append(quiet, False)):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    return best[0] * FRAME, best[1] * FRAME


def test_reverb_fills_the_pause_after_speech_and_keeps_level(speech):
    start, end = _pause_after_speech(speech)
    assert end - start >= SR // 4 and start > SR  # a real pause (0.6 s here, at ~3.9 s)
    window = slice(start, start + 3 * SR // 20)  # first 150 ms of the pause
    quiet_in = rms(speech[window])
    gains = []
    for seed in range(6):
        out = augment.augment(speech, "reverb", np.random.default_rng(seed))
        gains.append(db(rms(out[window]) / quiet_in))
        assert abs(db(rms(out) / rms(speech))) < 0.1  # level kept
        # the added energy decays: the tail is louder early in the pause than later on
        early, late = out[start: start + SR // 20], out[start + SR // 10: start + 3 * SR // 20]
        assert rms(early) > rms(late)
    assert min(gains) > 1.5 and np.mean(gains) > 6.0, gains


# --- noise ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("color", ["pink", "white", "brown"])
@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
@pytest.mark.parametrize("pause_s", [0.0, 4.0])
def test_add_noise_hits_the_requested_snr(speech, color, snr_db, pause_s):
    """SNR against the speech, not against speech plus pauses: 4 s of silence after the 7 s clip
    would otherwise make the noise 2.4 dB too quiet."""
    wav = np.concatenate([speech, np.zeros(int(pause_s * SR), np.float32)])
    out = augment.add_noise(wav, snr_db, np.random.default_rng(3), color=color)
    assert out.shape == wav.shape and out.dtype == np.float32
    noise = out.astype(np.float64) - wav
    measured = db(speech_rms(speech) / rms(noise))
    assert abs(measured - snr_db) < 1.0, f"{color} at {snr_db} dB measured {measured:.2f} dB"


def test_add_noise_colors_have_their_spectral_slopes(speech):
    slopes = {}
    for color in ("white", "pink", "brown"):
        out = augment.add_noise(speech, 0.0, np.random.default_rng(5), color=color)
        slopes[color] = spectral_slope(out.astype(np.float64) - speech)
    assert abs(slopes["white"]) < 0.15 and abs(slopes["pink"] + 1.0) < 0.15 and abs(slopes["brown"] + 2.0) < 0.2, slopes
    with pytest.raises(ValueError):
        augment.add_noise(speech, 10.0, np.random.default_rng(0), color="purple")


def test_pink_noise_is_unit_rms_1_over_f_and_seeded():
    x = augment.pink_noise(10 * SR, np.random.default_rng(11))
    assert x.shape == (10 * SR,) and x.dtype == np.float32
    assert abs(rms(x) - 1.0) < 1e-3 and abs(float(np.mean(x))) < 1e-3
    assert abs(spectral_slope(x) + 1.0) < 0.1
    assert np.array_equal(x, augment.pink_noise(10 * SR, np.random.default_rng(11)))
    assert not np.array_equal(x, augment.pink_noise(10 * SR, np.random.default_rng(12)))


def test_noise_kind_snr_stays_within_5_to_20_db(speech):
    for seed in range(5):
        out = augment.augment(speech, "noise", np.random.default_rng(seed))
        snr = db(speech_rms(speech) / rms(out.astype(np.float64) - speech))
        assert 4.5 < snr < 20.5, snr


# --- level, gain, clipping -----------------------------------------------------------------------
def test_change_level_lowers_rms_and_quantises(speech):
    out = augment.change_level(speech, -30.0)
    assert abs(db(rms(out) / rms(speech)) + 30.0) < 0.5
    assert np.array_equal(out * 32768.0, np.round(out * 32768.0))  # on the 16-bit grid
    coarse = augment.change_level(speech, -30.0, bits=8)
    assert np.array_equal(coarse * 128.0, np.round(coarse * 128.0))
    assert len(np.unique(coarse)) < 20  # a quiet 8-bit recording has few levels left
    loud = augment.change_level(speech, 20.0)
    assert np.max(loud) <= 32767 / 32768 and np.min(loud) >= -1.0
    with pytest.raises(ValueError):
        augment.change_level(speech, 0.0, bits=1)


def test_gain_never_exceeds_full_scale_and_sets_a_speech_level(speech):
    clicks = speech.copy()
    clicks[SR // 2:: SR // 2] = 1.0  # microphone bumps, twice the speech peak: the limiter must act
    for wav in (speech * np.float32(0.05), speech * np.float32(1.8), clicks):
        for seed in range(4):
            out = augment.augment(wav, "gain", np.random.default_rng(seed))
            assert np.max(np.abs(out)) <= 1.0
            assert -27.5 < db(speech_rms(out)) < -14.5


def test_limiter_caps_peaks_and_leaves_quiet_parts(speech):
    loud = speech.astype(np.float64) * 4.0  # peaks near 2.2
    out = augment._limit(loud)
    assert np.max(np.abs(out)) <= 0.99 + 1e-9
    quiet = np.abs(loud) < 0.2
    reach = 3 * augment._LIMIT_HALF_WINDOW  # peak hold, minimum and average windows
    far = np.convolve(np.abs(loud) > 0.99, np.ones(2 * reach + 1), mode="same") == 0
    assert np.allclose(out[quiet & far], loud[quiet & far])


def test_clipping_flattens_peaks_and_keeps_the_peak(speech):
    peak = float(np.max(np.abs(speech)))
    crest_in = peak / rms(speech)
    for seed in range(5):
        out = augment.augment(speech, "clipping", np.random.default_rng(seed))
        assert abs(float(np.max(np.abs(out))) - peak) < 1e-5
        assert peak / rms(out) < 0.8 * crest_in
