"""Pronunciation scores: accuracy, fluency, prosody and total (0-100, the experts' 0-10 scale x 10)
for a reading, and accuracy for each word read.

What they are made of (``measure``, one pass of Whisper base over the speech, shared with word
feedback; then ``features``, which training and rating both call):
- what the recogniser makes of the text: each written word teacher-forced through the decoder (its
  tokens' log-probabilities: a goodness of pronunciation per word) and what it heard freely (the
  word feedback statuses);
- the encoder's states of the speech, over the reading and over each word (full band), and the
  accent model's own features (``pooled``);
- timing from the word alignment and voice detection: speaking and articulation rate, pauses;
- pitch and energy contours for prosody.
The heads are linear (``PronunciationHead``), trained on speechocean762's expert scores with
LibriSpeech's natives as the top of the scale (``training/pronunciation.py``); the archive only
checks them. A reading of part of the text is scored on that part (``read_part``).

The scores say how a reading compares with the experts' ratings of learners' readings. They are not
a test score and not a judgement of a person."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import numpy as np

from . import audio
from .errors import AccentRaterError
from .words import Forced, Heard, Listening, Word, normalize

MIN_SPEECH_SECONDS = 0.2  # a single short word is scored; less than this is silence
HOP_SECONDS = 0.01  # pitch and energy contours: one value per 10 ms
PITCH_FRAME = 640  # 40 ms analysis window
PITCH_MIN_HZ, PITCH_MAX_HZ = 70.0, 400.0
VOICED_CORRELATION = 0.5  # normalised autocorrelation peak above this: voiced
OCTAVE_SHARE = 0.9  # the period is the shortest lag whose peak reaches this share of the highest
ASPECTS = ("accuracy", "fluency", "prosody", "total")
SCALE = 10.0  # experts' 0-10 scale -> 0-100


class Pronunciation(NamedTuple):
    """Pronunciation scores of one reading, 0-100 (the experts' 0-10 scale x 10)."""

    accuracy: Annotated[float, "How accurately the sounds of the words were pronounced (speechocean762's experts' "
                        "'accuracy', 0-100)"]
    fluency: Annotated[float, "How smoothly the speech flowed: pauses, hesitations, repetitions, speed (0-100)"]
    prosody: Annotated[float, "Intonation, stress and rhythm: how natural the melody and timing of the speech "
                       "sound (0-100)"]
    total: Annotated[float, "Overall pronunciation (0-100)"]


# --- measuring ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measures:
    """Everything the scores are computed from, for one reading (cached for training)."""

    written: list[str]  # the words of the text ([] for free speech: the heard words are scored)
    heard: list[Heard]
    forced: list[Forced]  # one per written word
    state_mean: np.ndarray  # (512,) mean of the encoder states over the speech
    state_std: np.ndarray  # (512,)
    word_states: np.ndarray  # (words, 512) mean encoder state over each written word's span
    regions: np.ndarray  # (n, 2) speech regions (voice detection) in seconds of the recording
    speech_seconds: float
    pitch: np.ndarray  # (frames,) F0 in Hz every 10 ms of the pause-trimmed speech, 0 where unvoiced
    energy: np.ndarray  # (frames,) level in dB every 10 ms of the pause-trimmed speech
    accent: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # ``pooled`` accent-model features

    def with_accent(self, feats: Any) -> Measures:
        """These measures with the accent model's features of the same speech (``pooled``)."""
        return replace(self, accent=pooled(feats))

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path, written=np.array(self.written, dtype=object), heard=np.array([tuple(h) for h in self.heard], dtype=object),
            forced=np.array([tuple(f) for f in self.forced], dtype=object), state_mean=self.state_mean,
            state_std=self.state_std, word_states=self.word_states.astype(np.float16), regions=self.regions,
            speech_seconds=self.speech_seconds, pitch=self.pitch.astype(np.float32), energy=self.energy.astype(np.float32),
            accent=self.accent)

    @classmethod
    def load(cls, path: Path) -> Measures:
        z = np.load(path, allow_pickle=True)
        return cls([str(w) for w in z["written"]], [Heard(str(t), float(a), float(b), float(p)) for t, a, b, p in z["heard"]],
                   [Forced(str(w), float(a), float(b), float(lp), float(mn), int(n)) for w, a, b, lp, mn, n in z["forced"]],
                   z["state_mean"], z["state_std"], z["word_states"].astype(np.float32), z["regions"],
                   float(z["speech_seconds"]), z["pitch"], z["energy"],
                   z["accent"] if "accent" in z.files else np.zeros(0, np.float32))


def pooled(feats: Any) -> np.ndarray:
    """The accent model's Whisper tiny.en window statistics (``backbones.whisper.WhisperFeatures``,
    4 kHz band) averaged over the windows, weighted by their length: one vector per reading."""
    w = np.maximum(feats.spans[:, 1] - feats.spans[:, 0], 1e-3).astype(np.float64)
    x = feats.stats.reshape(len(feats.stats), -1).astype(np.float64)
    return ((x * w[:, None]).sum(0) / w.sum()).astype(np.float32)


def measure(speech: audio.Speech, listening: Listening, written: list[str]) -> Measures:
    """``Measures`` of a reading from the recogniser's ``listening`` (``Transcriber.listen`` with the
    text whose words are ``written``) and the speech's contours."""
    states, times = listening.states, listening.times
    if len(states):
        mean, std = states.mean(0), states.std(0)
    else:
        mean = std = np.zeros(512, np.float32)
    word_states = np.zeros((len(listening.forced), states.shape[1] if len(states) else 512), np.float32)
    for k, f in enumerate(listening.forced):
        inside = (times >= f.start - 0.01) & (times <= f.end + 0.01)
        if not inside.any() and len(times):
            inside = np.abs(times - (f.start + f.end) / 2) == np.abs(times - (f.start + f.end) / 2).min()
        if inside.any():
            word_states[k] = states[inside].mean(0)
    regions = np.array(speech.regions, np.float64).reshape(-1, 2) / audio.SAMPLE_RATE
    word_states = word_states.astype(np.float16).astype(np.float32)  # as the training cache stores them
    return Measures(list(written), listening.heard, listening.forced, mean.astype(np.float32), std.astype(np.float32),
                    word_states, regions, float(speech.speech_seconds), pitch_contour(speech.audio), energy_contour(speech.audio))


def _frames(wav: np.ndarray, size: int) -> np.ndarray:
    hop = int(HOP_SECONDS * audio.SAMPLE_RATE)
    n = max(1, 1 + (len(wav) - size) // hop) if len(wav) >= size else 0
    if n == 0:
        return np.zeros((0, size), np.float32)
    idx = np.arange(size)[None, :] + hop * np.arange(n)[:, None]
    return wav[idx]


def energy_contour(wav: np.ndarray) -> np.ndarray:
    """Level in dB (re full scale) of 25 ms frames every 10 ms."""
    frames = _frames(wav, 400)
    return 10.0 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-10)


def pitch_contour(wav: np.ndarray) -> np.ndarray:
    """F0 in Hz of 40 ms frames every 10 ms (normalised autocorrelation, peak between 70 and 400 Hz;
    0 where the peak is under ``VOICED_CORRELATION`` or the frame is 35 dB below the loudest)."""
    frames = _frames(wav, PITCH_FRAME).astype(np.float64)
    if not len(frames):
        return np.zeros(0)
    frames = frames - frames.mean(1, keepdims=True)
    spec = np.fft.rfft(frames * np.hanning(PITCH_FRAME), 2 * PITCH_FRAME)
    ac = np.fft.irfft(np.abs(spec) ** 2)[:, :PITCH_FRAME]
    window_ac = np.fft.irfft(np.abs(np.fft.rfft(np.hanning(PITCH_FRAME), 2 * PITCH_FRAME)) ** 2)[:PITCH_FRAME]
    ac = ac / np.maximum(ac[:, :1], 1e-12) / np.maximum(window_ac / window_ac[0], 1e-3)
    lo, hi = int(audio.SAMPLE_RATE / PITCH_MAX_HZ), int(audio.SAMPLE_RATE / PITCH_MIN_HZ)
    band = ac[:, lo - 1: hi + 1]
    local = (band[:, 1:-1] >= band[:, :-2]) & (band[:, 1:-1] >= band[:, 2:])
    top = band[:, 1:-1].max(1, keepdims=True)
    lag = lo + np.argmax(local & (band[:, 1:-1] >= OCTAVE_SHARE * top), axis=1)  # the shortest lag near the top:
    peak = ac[np.arange(len(ac)), lag]  # multiples of the period peak as high (no sub-octave errors)
    power = 10 * np.log10(np.mean(frames**2, 1) + 1e-10)
    voiced = (peak >= VOICED_CORRELATION) & (power > power.max() - 35.0)
    return np.where(voiced, audio.SAMPLE_RATE / lag, 0.0)


# --- features -----------------------------------------------------------------------------------------
def syllables(word: str) -> int:
    """A spelling-based syllable count (vowel groups, a silent final e dropped), at least 1."""
    n = 0
    for part in normalize(word) or [word.lower()]:
        groups = len(re.findall(r"[aeiouy]+", part))
        if part.endswith("e") and not part.endswith(("le", "ee")) and groups > 1:
            groups -= 1
        n += max(1, groups)
    return max(1, n)


LOW_P = (np.log(0.5), np.log(0.1))  # shares of words whose teacher-forced probability is under these
PAUSE_SECONDS = 0.15  # a gap between speech regions at least this long counts as a pause
STATUSES = ("ok", "unclear", "different", "missed")


def _semitones(f0: np.ndarray) -> np.ndarray:
    voiced = f0[f0 > 0]
    return 12.0 * np.log2(voiced / np.median(voiced)) if len(voiced) else np.zeros(0)


def prosody_features(pitch: np.ndarray, energy: np.ndarray) -> dict[str, float]:
    """Melody and loudness of the speech: spread and movement of pitch (semitones about the
    speaker's median, so voices of any height compare) and of level (dB)."""
    st = _semitones(pitch)
    voiced = pitch > 0
    moves = np.abs(np.diff(12.0 * np.log2(np.where(voiced, pitch, 1.0))))[voiced[1:] & voiced[:-1]]
    loud = energy[energy > energy.max() - 40.0] if len(energy) else np.zeros(0)
    def q(a: np.ndarray, lo: float, hi: float) -> float:  # an inter-percentile range
        return float(np.percentile(a, hi) - np.percentile(a, lo)) if len(a) > 1 else 0.0

    return {
        "voiced_share": float(voiced.mean()) if len(pitch) else 0.0,
        "pitch_sd": float(np.std(np.clip(st, -12, 12))) if len(st) else 0.0,
        "pitch_range": q(st, 10, 90),
        "pitch_move": float(np.median(moves)) if len(moves) else 0.0,
        "pitch_jump_share": float(np.mean(moves > 3.0)) if len(moves) else 0.0,
        "energy_sd": float(np.std(loud)) if len(loud) else 0.0,
        "energy_range": q(loud, 10, 90),
        "energy_move": float(np.mean(np.abs(np.diff(loud)))) if len(loud) > 1 else 0.0,
    }


def timing_features(m: Measures) -> dict[str, float]:
    """Speed and pauses: rates over the reading (first to last word), pauses between speech
    regions inside it, and how even the words' durations are per syllable."""
    words = m.forced
    n = max(1, len(words))
    start = words[0].start if words else 0.0
    end = words[-1].end if words else m.speech_seconds
    span = max(end - start, 0.1)
    sylls = np.array([syllables(f.word) for f in words], float) if words else np.ones(1)
    gaps = m.regions[1:, 0] - m.regions[:-1, 1] if len(m.regions) > 1 else np.zeros(0)
    inside = gaps[(m.regions[1:, 0] > start) & (m.regions[:-1, 1] < end)] if len(gaps) else gaps
    pauses = inside[inside >= PAUSE_SECONDS - 2 * audio.SPEECH_PAD_SECONDS]
    per_syll = np.array([max(f.end - f.start, 0.02) for f in words]) / sylls if words else np.ones(1)
    return {
        "log_words": float(np.log(n)),
        "log_speech_s": float(np.log(max(m.speech_seconds, 0.1))),
        "words_per_s": n / span,
        "syllables_per_s": float(sylls.sum()) / span,
        "articulation": float(sylls.sum()) / max(m.speech_seconds, 0.1),
        "pauses_per_word": len(pauses) / n,
        "pause_share": float(pauses.sum()) / span if len(pauses) else 0.0,
        "longest_pause": float(pauses.max()) if len(pauses) else 0.0,
        "syllable_s": float(np.median(per_syll)),
        "syllable_cv": float(np.std(np.log(per_syll))),
    }


def recogniser_features(m: Measures, words: list[Word]) -> dict[str, float]:
    """What the recogniser makes of the reading: teacher-forced log-probabilities of the written
    words; the share of words heard as written, unclear, as another word or not at all; how close
    in spelling what it heard is to what was written."""
    lp = np.array([f.logprob for f in m.forced]) if m.forced else np.zeros(1)
    mn = np.array([f.min_logprob for f in m.forced]) if m.forced else np.zeros(1)
    said = [w for w in words if w.status != "extra"]
    n = max(1, len(said))
    probs = np.array([h.probability for h in m.heard]) if m.heard else np.zeros(1)
    close = np.array([similarity(w) for w in said]) if said else np.zeros(1)
    out = {
        "lp_mean": float(lp.mean()),
        "lp_min": float(lp.min()),
        "lp_q25": float(np.percentile(lp, 25)),
        "lp_token_min": float(mn.mean()),
        "lp_under_half": float(np.mean(lp < LOW_P[0])),
        "lp_under_tenth": float(np.mean(lp < LOW_P[1])),
        "heard_p_mean": float(probs.mean()),
        "heard_p_min": float(probs.min()),
        "ok_confidence": float(np.mean([w.confidence if w.status == "ok" and w.confidence else 0.0 for w in said])) if said else 0.0,
        "similarity_mean": float(close.mean()),
        "similarity_min": float(close.min()),
        "extra_share": float(sum(w.status == "extra" for w in words)) / n,
    }
    for s in STATUSES:
        out[f"share_{s}"] = float(sum(w.status == s for w in said)) / n
    return out


def similarity(w: Word) -> float:
    """How close what was heard for a written word is to it in spelling (normalised Levenshtein
    similarity of the comparable parts, 0..1); 0 when nothing was heard."""
    from rapidfuzz.distance import Levenshtein

    if w.status == "missed" or not w.heard:
        return 0.0
    return float(Levenshtein.normalized_similarity(" ".join(normalize(w.word)), " ".join(normalize(w.heard))))


def word_feedback(m: Measures) -> list[Word]:
    """Word feedback on the reading (``words.feedback``): every written word, and extra words heard."""
    from .words import feedback

    return feedback(m.heard, " ".join(m.written))[0] if m.written else []


def read_part(m: Measures) -> tuple[Measures, int, list[Word]]:
    """The measures of the stretch of the text that was read (from the first written word heard to
    the last; words skipped inside it stay), the index of its first word, and the word feedback on
    that stretch: a reading of part of the text is scored on that part. The whole text when no
    word of it was heard."""
    words = word_feedback(m)
    said = [w for w in words if w.status != "extra"]
    heard_at = [i for i, w in enumerate(said) if w.status != "missed"]
    if not heard_at or (heard_at[0], heard_at[-1] + 1) == (0, len(said)):
        return m, 0, words
    lo, hi = heard_at[0], heard_at[-1] + 1
    part = replace(m, written=m.written[lo:hi], forced=m.forced[lo:hi], word_states=m.word_states[lo:hi])
    return part, lo, word_feedback(part)


class Features(NamedTuple):
    """What the heads read of one reading (its ``read_part``)."""

    names: list[str]
    values: np.ndarray  # (D,) recogniser, timing and prosody features, then the encoder states' mean and std
    word_names: list[str]
    words: np.ndarray  # (words of the stretch read, E)
    first: int  # index in the text of the stretch's first word


def reading_features(m: Measures) -> Features:
    """The reading's features and its words' (``read_part``; word feedback computed once per stretch).
    Per reading: recogniser, timing and prosody features, the encoder states' mean and std over the
    speech, the accent model's features. Per written word: its teacher-forced log-probabilities (also
    against the reading's mean), status, heard probability, spelling similarity, duration per
    syllable and mean encoder state."""
    part, first, words = read_part(m)
    named = {**recogniser_features(part, words), **timing_features(part), **prosody_features(part.pitch, part.energy)}
    names = list(named) + [f"state_mean{i}" for i in range(len(part.state_mean))] + \
        [f"state_std{i}" for i in range(len(part.state_std))] + [f"state_accent{i}" for i in range(len(part.accent))]
    values = np.concatenate([np.array(list(named.values()), np.float64), part.state_mean, part.state_std, part.accent])
    said = [w for w in words if w.status != "extra"]
    lp_mean = float(np.mean([f.logprob for f in part.forced])) if part.forced else 0.0
    rows = []
    for f, w in zip(part.forced, said):
        n = syllables(f.word)
        rows.append([f.logprob, f.min_logprob, f.logprob - lp_mean, lp_mean, float(f.tokens), float(n),
                     np.log(max(f.end - f.start, 0.02) / n), w.confidence if w.confidence is not None else 0.0,
                     similarity(w)] + [float(w.status == x) for x in STATUSES])
    word_names = ["lp", "lp_min", "lp_rel", "lp_reading", "tokens", "syllables", "log_syllable_s", "heard_p", "similarity"] + \
        [f"is_{x}" for x in STATUSES] + [f"state{i}" for i in range(part.word_states.shape[1])]
    hand = np.array(rows, np.float64).reshape(len(rows), len(word_names) - part.word_states.shape[1])
    return Features(names, values, word_names, np.concatenate([hand, part.word_states[: len(rows)].astype(np.float64)], 1), first)


# --- the heads ----------------------------------------------------------------------------------------
BUNDLE_FILE = "pronunciation.safetensors"
SHORT_SPEECH_WARNING = (f"only {{seconds:.1f}} s of speech: the accent is rated from {audio.MIN_SPEECH_SECONDS:.0f} s "
                        "of speech, so this result holds pronunciation scores only")


class NoPronunciationError(AccentRaterError, ValueError):
    """Pronunciation scores asked of a model bundle trained without them."""

    code = "pronunciation_unavailable"
    http_status = 501


class PronunciationHead:
    """Linear heads over ``reading_features`` (one per aspect over the reading's, one for word accuracy),
    stored in a bundle's ``pronunciation.safetensors`` with their feature names in ``model.json``."""

    def __init__(self, utterance: dict[str, tuple[np.ndarray, float]], word: tuple[np.ndarray, float],
                 names: list[str], word_names: list[str]) -> None:
        self.utterance, self.word, self.names, self.word_names = utterance, word, names, word_names

    def tensors(self) -> dict[str, np.ndarray]:
        out = {f"{a}.coef": c.astype(np.float64) for a, (c, _) in self.utterance.items()}
        out.update({f"{a}.intercept": np.array([b]) for a, (_, b) in self.utterance.items()})
        out["word.coef"], out["word.intercept"] = self.word[0].astype(np.float64), np.array([self.word[1]])
        return out

    def meta(self) -> dict[str, Any]:
        return {"file": BUNDLE_FILE, "aspects": list(self.utterance), "features": len(self.names),
                "word_features": len(self.word_names), "decoder": "base"}

    @classmethod
    def load(cls, model_dir: Path, meta: dict[str, Any]) -> PronunciationHead:
        from safetensors.numpy import load_file

        t = load_file(str(model_dir / meta["file"]))
        utterance = {a: (t[f"{a}.coef"], float(t[f"{a}.intercept"][0])) for a in meta["aspects"]}
        head = cls(utterance, (t["word.coef"], float(t["word.intercept"][0])), [], [])
        if any(len(c) != meta["features"] for c, _ in utterance.values()) or len(head.word[0]) != meta["word_features"]:
            raise ValueError(f"model bundle {model_dir}: the pronunciation heads do not match their feature count")
        return head

    def score(self, m: Measures) -> tuple[Pronunciation, list[float | None]]:
        """The reading's four scores and each written word's accuracy, 0-100 (None for the words
        outside the stretch read, ``read_part``)."""
        f = reading_features(m)
        scores = {a: _scale(f.values @ c + b) for a, (c, b) in self.utterance.items()}
        read = [_scale(v) for v in (f.words @ self.word[0] + self.word[1])] if len(f.words) else []
        words: list[float | None] = [None] * len(m.written)
        words[f.first: f.first + len(read)] = read
        return Pronunciation(**scores), words


def _scale(value: float) -> float:
    """A head's output on the experts' 0-10 scale as 0-100, one decimal."""
    return round(float(np.clip(value, 0.0, 10.0)) * SCALE, 1)
