"""Units of the rating step: accent bands around the threshold, the deployment-prior shift, and the
quality warnings ``Rater.rate`` attaches to real recordings that are short, quiet or clipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from hypothesis import given
from hypothesis import strategies as st

from accent_rater import audio
from accent_rater.calibration import Calibrator, logit, shift, sigmoid
from accent_rater.rater import AccentResult, Rater, band_for

from conftest import FIXTURES, SAMPLES

ABOVE = ("native-like", "light accent")  # the bands of the "native" label
ORDER = ("strong accent", "noticeable accent", "light accent", "native-like")
THRESHOLDS = [0.2, 0.3, 0.5, 0.5638, 0.7, 0.9]


@pytest.fixture(scope="module")
def rater() -> Rater:
    return Rater()


# --- bands ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", THRESHOLDS)
def test_band_cut_points(t: float) -> None:
    """Cuts at t + 0.6 (1 - t), t and t / 2: a cut belongs to the band above it."""
    eps = 1e-9
    for cut, below, above in ((t / 2, "strong accent", "noticeable accent"),
                              (t, "noticeable accent", "light accent"),
                              (t + 0.6 * (1 - t), "light accent", "native-like")):
        assert band_for(cut - eps, t) == below, (t, cut)
        assert band_for(cut, t) == above, (t, cut)
        assert band_for(cut + eps, t) == above, (t, cut)
    assert band_for(0.0, t) == "strong accent" and band_for(1.0, t) == "native-like"


@given(t=st.floats(0.01, 0.99), p=st.floats(0.0, 1.0))
def test_band_agrees_with_label(t: float, p: float) -> None:
    """The band is on the label's side of the threshold and never falls as p rises."""
    band = band_for(p, t)
    assert (band in ABOVE) == (p >= t)
    higher = min(1.0, p + 0.01)
    assert ORDER.index(band_for(higher, t)) >= ORDER.index(band)


# --- prior shift ---------------------------------------------------------------------------------
CAL = Calibrator(a=0.9, b=-0.1, train_prior=0.45)
LOGITS = np.array([-6.0, -1.5, 0.0, 0.3, 2.0, 7.0])


def test_prior_equal_to_training_prior_changes_nothing() -> None:
    assert shift(CAL.train_prior, CAL.train_prior) == 0.0
    np.testing.assert_array_equal(CAL.apply(LOGITS, prior=CAL.train_prior), CAL.apply(LOGITS))


def test_prior_shift_is_bayes_rule_on_odds() -> None:
    """odds' = odds * [prior / (1 - prior)] / [train_prior / (1 - train_prior)], by hand."""
    for prior in (0.05, 0.2, 0.45, 0.8, 0.97):
        for z in LOGITS:
            p = 1.0 / (1.0 + np.exp(-(CAL.a * z + CAL.b)))
            odds = p / (1 - p) * (prior / (1 - prior)) / (CAL.train_prior / (1 - CAL.train_prior))
            assert float(CAL.apply(z, prior=prior)) == pytest.approx(odds / (1 + odds), rel=1e-12)


def test_prior_moves_probability_its_way() -> None:
    base = CAL.apply(LOGITS)
    assert np.all(CAL.apply(LOGITS, prior=0.1) < base) and np.all(CAL.apply(LOGITS, prior=0.9) > base)
    priors = np.linspace(0.01, 0.99, 25)
    assert np.all(np.diff([float(CAL.apply(0.3, prior=q)) for q in priors]) > 0)


@pytest.mark.parametrize("prior", [0.0, 1.0, -0.2, 1.5, float("nan")])
def test_impossible_priors_are_refused(prior: float) -> None:
    with pytest.raises(ValueError, match="prior"):
        shift(prior, 0.5)
    with pytest.raises(ValueError, match="prior"):
        Rater("fast", prior=prior)


def test_extreme_priors_stay_finite() -> None:
    """A prior within float reach of 0 or 1 is clipped: probabilities stay finite and strictly inside (0, 1)."""
    for prior in (1e-300, 1 - 1e-16):
        p = CAL.apply(LOGITS, prior=prior)
        assert np.all(np.isfinite(p)) and np.all((p > 0) & (p < 1))
    assert sigmoid(logit(0.3)) == pytest.approx(0.3, rel=1e-12)


def test_rater_prior_shifts_a_real_rating(rater: Rater) -> None:
    """The same speech rated with priors below, at and above the training prior."""
    feats = rater.features(audio.prepare(SAMPLES / "native_us_english33.opus"))
    train_prior = rater.calibrator.train_prior
    plain = rater.rate_features(feats).p_native
    assert Rater(prior=train_prior).rate_features(feats).p_native == pytest.approx(plain, abs=1e-12)
    low, high = (Rater(prior=q).rate_features(feats) for q in (0.1, 0.9))
    assert low.p_native < plain < high.p_native
    assert low.segments[0][2] < high.segments[0][2]


# --- quality warnings on real audio --------------------------------------------------------------
@pytest.fixture(scope="module")
def long_speech() -> tuple[np.ndarray, int]:
    """A bundled ~27 s sample (about 22 s of speech) at a normal level."""
    wav, sr = sf.read(str(SAMPLES / "native_us_english33.opus"), dtype="float32")
    return wav, sr


def _write(path: Path, wav: np.ndarray, sr: int) -> Path:
    sf.write(str(path), np.clip(wav, -1.0, 1.0), sr, subtype="PCM_16")
    return path


def _kinds(warnings: list[str]) -> set[str]:
    keys = {"speech": "of speech", "clipping": "clipping", "level": "recording level", "narrowband": "narrowband"}
    return {k for k, text in keys.items() if any(text in w for w in warnings)}


@pytest.fixture(scope="module")
def clean(rater: Rater, long_speech, tmp_path_factory) -> AccentResult:
    wav, sr = long_speech
    return rater.rate(_write(tmp_path_factory.mktemp("clean") / "clean.wav", wav, sr))


def test_clean_long_sample_has_no_warnings(clean: AccentResult) -> None:
    assert clean.speech_seconds > 15 and clean.warnings == []


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("n*.flac")))
def test_short_speech_is_flagged(rater: Rater, name: str) -> None:
    result = rater.rate(FIXTURES / name)
    assert result.speech_seconds < 10
    assert _kinds(result.warnings) == {"speech"}
    assert f"only {result.speech_seconds:.0f} s of speech" in result.warnings[0]


def test_attenuated_speech_is_flagged_as_low_level(rater: Rater, long_speech, clean: AccentResult, tmp_path: Path) -> None:
    wav, sr = long_speech
    quiet = rater.rate(_write(tmp_path / "quiet.wav", wav * 10 ** (-30 / 20), sr))
    assert _kinds(quiet.warnings) == {"level"}
    assert quiet.label == clean.label and abs(quiet.p_native - clean.p_native) < 0.1  # level-normalised


def test_amplified_speech_is_flagged_as_clipped(rater: Rater, long_speech, tmp_path: Path) -> None:
    wav, sr = long_speech
    loud = wav * 10 ** (20 / 20)
    assert np.mean(np.abs(loud) >= 1.0) > 0.01  # the write below clips over 1% of samples
    result = rater.rate(_write(tmp_path / "clipped.wav", loud, sr))
    assert _kinds(result.warnings) == {"clipping"}


def test_telephone_band_input_is_flagged(rater: Rater, long_speech, tmp_path: Path) -> None:
    wav, sr = long_speech
    narrow = soxr.resample(wav, sr, audio.BAND_RATE)
    result = rater.rate(_write(tmp_path / "phone.wav", narrow, audio.BAND_RATE))
    assert _kinds(result.warnings) == {"narrowband"}
