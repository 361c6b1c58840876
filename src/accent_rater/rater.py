"""Rating a recording with a bundled model: the one result type every surface (Python API, CLI,
REST API, web app) returns.

    from accent_rater import Rater
    result = Rater().rate("speech.webm")
    print(result.score, result.band, result.p_native)
"""

from __future__ import annotations

import os
import threading
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple

import numpy as np

from . import audio
from .bundle import Bundle, open_bundle
from .calibration import Calibrator, shift
from .profile import SiteProfile, load_profile
from .pronunciation import MIN_SPEECH_SECONDS as PRONUNCIATION_MIN_SPEECH
from .pronunciation import SHORT_SPEECH_WARNING, Pronunciation
from .threads import one_blas_thread
from .words import PASSAGE, Reading, Word, text_words

if TYPE_CHECKING:  # the mel-based features (and torch) are imported only for bundles that use them
    from .features import Features
    from .pronunciation import PronunciationHead
    from .words import Transcriber

Part = Literal["accent", "words", "pronunciation"]

BORDERLINE_MARGIN = 0.10  # |p_native - threshold| below this is flagged as borderline
SHORT_SPEECH_SECONDS = 10.0
LOW_LEVEL_DBFS = -40.0
CLIPPED_FRACTION = 0.001
L1_UNSURE_BELOW = 0.4  # top first-language probability under this -> l1_guess "unsure"

# score = round(100 * p_native). Bands are placed relative to the decision threshold t, so the band
# always agrees with the label: p >= t + 0.6 (1 - t) native-like; p >= t light accent (label
# "native"); p >= t / 2 noticeable accent; below that strong accent. With t = 0.5: 80 / 50 / 25.
BANDS: tuple[tuple[float, str], ...] = ((0.6, "native-like"), (0.0, "light accent"), (-0.5, "noticeable accent"), (-1.0, "strong accent"))


# The ``Annotated`` descriptions below are the documentation of every field, and the REST API's
# response schema is generated from them (``schemas.py``): a field added here appears there.
class Segment(NamedTuple):
    """One rated window of the recording."""

    start_s: Annotated[float, "Window start, in seconds of the original recording"]
    end_s: Annotated[float, "Window end, in seconds of the original recording"]
    p_native: Annotated[float, "Calibrated P(native-sounding) for this window"]


class L1Guess(NamedTuple):
    """One first language of the first-language guess."""

    language: Annotated[str, "A first language the model knows (lower case English name)"]
    p: Annotated[float, "P(this first language | the accent is not native-sounding), 0..1"]


@dataclass(frozen=True)
class AccentResult:
    """How native the accent in one recording sounds (and, when asked for, word feedback and
    pronunciation scores). The accent fields rate accent only, not intelligibility, fluency or
    English proficiency; ``parts`` says which parts the result holds: with pronunciation scores on
    less than 3 s of speech, the accent fields are null."""

    p_native: Annotated[float | None, "Calibrated probability that a listener-labelled native English speaker "
                        "produced the speech (0..1), shifted to the deployment prior when one was given; null when "
                        "the accent was not rated (see `parts`)"]
    label: Annotated[Literal["native", "non_native"] | None, '"native" when p_native >= threshold, else '
                     '"non_native"; null when the accent was not rated']
    score: Annotated[int | None, "round(100 * p_native); null when the accent was not rated"]
    band: Annotated[str | None, "native-like | light accent | noticeable accent | strong accent: the range of "
                    "p_native around the threshold; null when the accent was not rated"]
    borderline: Annotated[bool | None, f"p_native is within {BORDERLINE_MARGIN:.2f} of the threshold; null when "
                          "the accent was not rated"]
    threshold: Annotated[float, "Decision threshold applied to p_native"]
    speech_seconds: Annotated[float, "Seconds of speech found by voice-activity detection"]
    duration_seconds: Annotated[float, "Length of the recording in seconds"]
    segments: Annotated[list[Segment], "Per-window ratings in seconds of the original recording"]
    model: Annotated[str, "Model name and version"]
    profile: Annotated[str, 'Name of the site profile that adjusted p_native (`--profile`), "" when none'] = ""
    warnings: Annotated[list[str], "Notes on the input that make the rating less reliable (little speech, clipping, "
                        "low level, narrowband, or a recording unlike the training recordings)"] = field(default_factory=list)
    l1: Annotated[list[L1Guess], "First-language guess: up to 3 languages with their probability, most likely first. "
                  "A guess about the accent, never about a person. Empty when the speech is rated native or the "
                  "model has no first-language guess."] = field(default_factory=list)
    l1_guess: Annotated[str, 'The most likely first language of the accent, or "unsure" when its probability is '
                        f'below {L1_UNSURE_BELOW}; "" when `l1` is empty. A guess about the accent, never about '
                        "a person."] = ""
    words: Annotated[list[Word], "Word feedback (asked for with words=true): each word of the text read, in order, "
                     "with extra words heard between them; empty without word feedback or on free speech"] = field(default_factory=list)
    transcript: Annotated[str, "What Whisper heard (with word feedback); empty without it"] = ""
    reading: Annotated[Reading | None, "Reading accuracy and speaking rate over the text's words (with word "
                       "feedback on a text); null otherwise"] = None
    pronunciation: Annotated[Pronunciation | None, "Pronunciation scores, 0-100 (asked for with "
                             "pronunciation=true): accuracy, fluency, prosody and total, as speechocean762's experts "
                             "rate learners' readings; null when not asked for or with nothing to score. Not a test "
                             "score and not a judgement of a person"] = None
    parts: Annotated[list[Part], 'What this result holds: "accent" (the accent fields), "words" (word feedback), '
                     '"pronunciation" (pronunciation scores)'] = field(default_factory=lambda: ["accent"])

    def to_dict(self) -> dict[str, Any]:
        """The JSON form every surface returns: segments, first languages, words and the reading
        summary as objects, rounded."""
        d = asdict(self)
        d["segments"] = [Segment(round(a, 2), round(b, 2), round(p, 4))._asdict() for a, b, p in self.segments]
        d["p_native"] = None if self.p_native is None else round(self.p_native, 4)
        d["pronunciation"] = self.pronunciation._asdict() if self.pronunciation else None
        d["l1"] = [L1Guess(lang, round(p, 4))._asdict() for lang, p in self.l1]
        d["words"] = [w._asdict() for w in self.words]
        d["reading"] = self.reading._replace(accuracy=round(self.reading.accuracy, 4), words_per_minute=round(
            self.reading.words_per_minute, 1))._asdict() if self.reading else None
        return d


def band_for(p_native: float, threshold: float = 0.5) -> str:
    """Name of the accent band; the cut points are relative to ``threshold`` (see ``BANDS``)."""
    # a band's lower position (0 at the threshold, +1 at p = 1, -1 at p = 0) as a cut on p, so that p
    # exactly at a cut (e.g. t + 0.6 (1 - t)) is in the band above it, free of division round-off
    cuts = (threshold + lower * (1 - threshold if lower >= 0 else threshold) for lower, _ in BANDS)
    return next(name for cut, (_, name) in zip(cuts, BANDS) if p_native >= cut)


class Rater:
    """Loads a model bundle once; ``rate`` is then safe to call repeatedly (and from threads)."""

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        threshold: float | None = None,
        prior: float | None = None,
        max_seconds: float = audio.MAX_DURATION_SECONDS,
        max_bytes: int = audio.MAX_FILE_BYTES,
        threads: int | None = None,
        profile: str | Path | SiteProfile | None = None,
    ) -> None:
        """``threads``: onnxruntime threads per model call (and torch's, process-wide, for a mel-based
        model); default: up to 2 (lowest latency for one request at a time). Pass 1 when several files
        or requests are rated in parallel threads.
        ``profile``: a site profile (``accent-rater calibrate``) for this model, applied after its
        calibration; ``ProfileError`` for one made for another model or not a profile."""
        self.bundle = open_bundle(model)
        self.model_dir, self.meta = self.bundle.dir, self.bundle.meta
        self.calibrator = Calibrator(**self.meta["calibration"])
        self.profile = None if profile is None else load_profile(profile, self.meta)
        if self.profile is not None:
            self.calibrator = self.profile.adjust(self.calibrator)
        self.threshold = float(self.meta["threshold"] if threshold is None else threshold)
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {self.threshold}")
        if prior is not None:
            shift(prior, self.calibrator.train_prior)  # validates 0 < prior < 1 now, not at rate time
        self.prior = prior
        self.max_seconds, self.max_bytes = max_seconds, max_bytes
        self.threads = threads or min(2, os.cpu_count() or 1)
        self._transcriber: list[Transcriber] = []  # loaded on first use; shared by shallow copies (the API's views)
        self._transcriber_lock = threading.Lock()
        self._members, self._l1 = self._load_members()
        self.backbone: str | None = self.meta.get("backbone")
        if self.backbone:
            from .backbones.whisper import OnnxWhisper

            self._encoder: Any = OnnxWhisper(self.model_dir / self.meta["encoder"], threads=self.threads)
        else:
            import torch

            from .backbones.speaker import OnnxEncoder

            torch.set_num_threads(self.threads)  # the mel-based models compute log-mels with torch
            self._encoder = OnnxEncoder(self.model_dir / self.meta["encoder"], threads=self.threads)

    @property
    def encoder(self) -> Any:
        """The bundle's frozen encoder, an ONNX session wrapper: ``OnnxWhisper`` (log-mel windows ->
        layer states) or the speaker encoder's ``OnnxEncoder``."""
        return self._encoder

    @property
    def name(self) -> str:
        return f"{self.meta['name']} {self.meta['version']}"

    @cached_property
    def card(self) -> str:
        path = self.model_dir / "MODEL_CARD.md"
        return path.read_text() if path.exists() else ""

    @property
    def l1_languages(self) -> list[str]:
        """Languages the first-language guess knows (besides English); others map to the nearest."""
        return [c for c in self._l1.classes if c != "english"] if self._l1 else []

    def _load_members(self) -> tuple[list[tuple[str, Any]], Any]:
        from .models import get_family

        tensors = self.bundle.tensors()
        l1 = None
        if self.meta.get("l1"):
            from .models.whisper_heads import L1Head

            l1 = L1Head(**self.meta["l1"]["params"]).load_tensors(
                {k[3:]: v for k, v in tensors.items() if k.startswith("l1.")}, self.meta["l1"]["classes"])
        members: list[tuple[str, Any]] = []
        for spec in self.meta["members"]:
            if "onnx" in spec:
                members.append((spec["name"], _OnnxSegmentModel(self.bundle, spec["onnx"], self.threads)))
            else:
                fam = get_family(spec["family"], **spec["params"])
                prefix = spec["name"] + "."
                fam.load_tensors({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
                members.append((spec["name"], fam))
        self._novelty = None
        if self.meta.get("novelty"):
            from .models.whisper_heads import Novelty

            self._novelty = Novelty().load_tensors({k[8:]: v for k, v in tensors.items() if k.startswith("novelty.")})
        return members, l1

    def segment_logits(self, feats: Features) -> np.ndarray:
        """Fused, uncalibrated logit per segment."""
        per = np.stack([np.asarray(m.segment_logits(feats), dtype=np.float64) for _, m in self._members], 1)
        fusion = self.meta.get("fusion")
        if fusion:
            return per @ np.asarray(fusion["coef"]) + fusion["intercept"]
        return per[:, 0]

    def l1_guess(self, feats: Any) -> list[L1Guess]:
        """Top-3 first languages other than English, P(language | not English)."""
        if self._l1 is None:
            return []
        probs = self._l1.proba(feats)
        keep = [(c, float(q)) for c, q in zip(self._l1.classes, probs) if c != "english"]
        total = sum(q for _, q in keep) or 1.0
        return sorted((L1Guess(c, q / total) for c, q in keep), key=lambda t: -t.p)[:3]

    def novelty(self, feats: Any) -> float | None:
        """How unlike the training recordings the input is, relative to the bundle's threshold
        (> 1: less alike than 99% of them); None when the bundle has no novelty check."""
        if self._novelty is None:
            return None
        from .models.whisper_heads import layer_rows

        return self._novelty.score(layer_rows(feats, None)) / self._novelty.threshold

    def rate_features(self, feats: Any, warnings: list[str] | None = None) -> AccentResult:
        warnings = list(warnings or [])
        novelty = self.novelty(feats)
        if novelty is not None and novelty > 1.0:
            warnings.append(f"this recording is unlike those the model was trained on (novelty {novelty:.1f}x the "
                            "limit): the rating is less reliable")
        seg = self.segment_logits(feats)
        p = float(self.calibrator.apply(seg.mean(), prior=self.prior))
        seg_p = self.calibrator.apply(seg, prior=self.prior)
        score = int(round(100 * p))
        label: Literal["native", "non_native"] = "native" if p >= self.threshold else "non_native"
        l1 = self.l1_guess(feats) if label == "non_native" else []
        return AccentResult(
            p_native=p,
            label=label,
            score=score,
            band=band_for(p, self.threshold),
            borderline=abs(p - self.threshold) < BORDERLINE_MARGIN,
            threshold=self.threshold,
            speech_seconds=round(feats.speech_seconds, 2),
            duration_seconds=round(feats.duration_seconds, 2),
            segments=[Segment(float(a), float(b), float(q)) for (a, b), q in zip(feats.spans, seg_p)],
            model=self.name,
            profile=self.profile.name if self.profile else "",
            warnings=list(warnings or []),
            l1=l1,
            l1_guess=("" if not l1 else l1[0][0] if l1[0][1] >= L1_UNSURE_BELOW else "unsure"),
        )

    def features(self, speech: audio.Speech) -> Any:
        """What this bundle's members read: Whisper window statistics or the mel-based features."""
        if self.backbone:
            from .backbones.whisper import embed

            return embed(speech, self._encoder)
        from .features import extract

        return extract(speech, self._encoder)

    def rate(self, source: audio.Source, *, words: bool = False, text: str | None = PASSAGE,
             pronunciation: bool = False) -> AccentResult:
        """Rate a file path, bytes or binary file object. Raises ``AudioError`` for unusable input.

        ``words``: add word feedback on the reading of ``text`` (default: the passage the model was
        trained on; None or "" for free speech: a transcript only), heard on the recording's full band
        (the accent models see the 4 kHz band either way). It needs the Whisper base weights
        (``WeightsError`` says how to get them); ``TextError`` for an unusable text.
        ``pronunciation``: add pronunciation scores (and word feedback, each word with its accuracy),
        scored against ``text`` (free speech: what was heard). Speech too short for the accent
        (under 3 s, down to a single word) still gets them: the accent fields are then null, with a
        warning, and ``parts`` says so."""
        with one_blas_thread():
            return self._rate(source, words, text, pronunciation)

    def _rate(self, source: audio.Source, words: bool, text: str | None, pronunciation: bool) -> AccentResult:
        listen = words or pronunciation
        if listen and text:
            text_words(text)  # an unusable text is refused before any audio work
        if pronunciation:
            self.pronunciation_head  # noqa: B018 - a bundle without the heads is refused up front
        info: dict[str, Any] = {}
        speech = audio.prepare(source, max_seconds=self.max_seconds, max_bytes=self.max_bytes, info=info, wide=listen,
                               min_speech_seconds=PRONUNCIATION_MIN_SPEECH if pronunciation else audio.MIN_SPEECH_SECONDS)
        warnings = quality_warnings(speech, info)
        feats = self.features(speech)  # the pronunciation heads read the accent model's features too
        if speech.speech_seconds >= audio.MIN_SPEECH_SECONDS:
            result = self.rate_features(feats, warnings)
        else:  # only with pronunciation: the accent is not rated
            result = self.unrated(speech, warnings)
        return self.add_listening(result, speech, text, feats if pronunciation else None) if listen else result

    def unrated(self, speech: audio.Speech, warnings: list[str]) -> AccentResult:
        """A result without the accent fields (speech too short for them)."""
        return AccentResult(p_native=None, label=None, score=None, band=None, borderline=None, threshold=self.threshold,
                            speech_seconds=round(speech.speech_seconds, 2), duration_seconds=round(speech.duration_seconds, 2),
                            segments=[], model=self.name, profile=self.profile.name if self.profile else "",
                            warnings=warnings, parts=[])

    def check_words(self, text: str | None, pronunciation: bool = False) -> None:
        """Refuse up front what would stop word feedback later: an unusable ``text`` (``TextError``)
        or missing Whisper base weights (``WeightsError``; they are loaded and verified here once);
        with ``pronunciation``, a bundle without pronunciation heads (``NoPronunciationError``)."""
        if text:
            text_words(text)
        if pronunciation:
            self.pronunciation_head  # noqa: B018
        self.transcriber  # noqa: B018

    @property
    def transcriber(self) -> Transcriber:
        """Whisper base for word feedback, loaded (and verified) on first use, once per Rater."""
        with self._transcriber_lock:
            if not self._transcriber:
                from .words import Transcriber

                self._transcriber.append(Transcriber(self.threads))
            return self._transcriber[0]

    @cached_property
    def pronunciation_head(self) -> PronunciationHead:
        """The bundle's pronunciation heads; ``NoPronunciationError`` for a bundle trained without them."""
        from .pronunciation import NoPronunciationError, PronunciationHead

        meta = self.meta.get("pronunciation")
        if not meta:
            raise NoPronunciationError(f"the model {self.name} has no pronunciation scores; use the default model")
        return PronunciationHead.load(self.model_dir, meta)

    def add_listening(self, result: AccentResult, speech: audio.Speech, text: str | None = PASSAGE,
                      feats: Any = None) -> AccentResult:
        """``result`` with word feedback on ``speech``: the transcript, and with a ``text`` each of its
        words' status and the reading summary; given the accent model's ``feats`` of the speech, the
        pronunciation scores and each word's accuracy."""
        from .words import feedback, reading_warning, transcript

        pronunciation = feats is not None
        heard_only = not pronunciation
        listening = self.transcriber.listen(speech, None if heard_only else (text or ""))
        heard = listening.heard
        parts = result.parts + ["words"]
        scores, accuracy = None, list[float | None]()
        if pronunciation and listening.forced:
            from .pronunciation import measure

            m = measure(speech, listening, [f.word for f in listening.forced]).with_accent(feats)
            scores, accuracy = self.pronunciation_head.score(m)
            parts.append("pronunciation")
        notes = [] if scores or not pronunciation else ["no words were heard: there is nothing to score"]
        if not text:
            return replace(result, transcript=transcript(heard), pronunciation=scores, parts=parts,
                           warnings=result.warnings + notes)
        found, reading = feedback(heard, text)
        if accuracy:  # a word read gets its accuracy; a word skipped or outside the stretch read, none
            written = iter(accuracy)
            found = [w if w.status == "extra" else _with_accuracy(w, next(written)) for w in found]
        note = reading_warning(reading)
        return replace(result, words=found, transcript=transcript(heard), reading=reading, pronunciation=scores,
                       parts=parts, warnings=result.warnings + notes + ([note] if note else []))


def rate_row(rater: Rater, source: audio.Source, path: str, **options: Any) -> dict[str, Any]:
    """One ``rate --json`` row: ``{"path", **AccentResult.to_dict()}`` or ``{"path", "error": {code,
    message}}``; never raises for a bad input. ``options`` go to ``Rater.rate`` (word feedback)."""
    from .errors import error_of

    try:
        return {"path": path, **rater.rate(source, **options).to_dict()}
    except Exception as exc:  # a bad file never stops a batch
        return {"path": path, **error_of(exc)}


def _with_accuracy(w: Word, accuracy: float | None) -> Word:
    return w._replace(accuracy=None if w.status == "missed" else accuracy)


def quality_warnings(speech: audio.Speech, info: dict[str, Any]) -> list[str]:
    """Plain-language notes on input quality that make a rating less reliable; speech too short for
    the accent (pronunciation scores only) says so instead of asking for more."""
    out = []
    if speech.speech_seconds < audio.MIN_SPEECH_SECONDS:
        out.append(SHORT_SPEECH_WARNING.format(seconds=speech.speech_seconds))
    elif speech.speech_seconds < SHORT_SPEECH_SECONDS:
        out.append(f"only {speech.speech_seconds:.0f} s of speech: ratings are more reliable with 20 s or more")
    if info.get("clipped_fraction", 0.0) > CLIPPED_FRACTION:
        out.append(f"clipping: {100 * info['clipped_fraction']:.1f}% of samples are at full scale; lower the input gain")
    if speech.rms_dbfs < LOW_LEVEL_DBFS:
        out.append(f"low recording level ({speech.rms_dbfs:.0f} dBFS); move closer to the microphone")
    if info.get("sample_rate", audio.SAMPLE_RATE) <= audio.BAND_RATE:
        out.append(f"narrowband input ({info['sample_rate']} Hz, telephone quality)")
    return out


class _OnnxSegmentModel:
    """A neural member exported to ONNX: (S, n_mels, frames) -> (S,) logits, served by onnxruntime."""

    def __init__(self, bundle: Bundle, name: str, threads: int = 1) -> None:
        self.session = bundle.session(name, threads)

    def segment_logits(self, feats: Features) -> np.ndarray:
        return self.session.run(None, {"mels": np.asarray(feats.mels, dtype=np.float32)})[0]
