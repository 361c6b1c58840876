"""Word-level feedback on a read text: what Whisper base heard, word by word, aligned to the text.

``Transcriber`` runs Whisper base with its decoder (CTranslate2 int8 on the CPU, through
faster-whisper) from the verified local copy that ``accent-rater fetch-weights --words`` made; it
never downloads. ``feedback`` aligns the heard words to the text (edit distance over normalised
words: case, punctuation, hyphens, digits and contractions do not count) and gives each word of the
text a status. Needs the ``words`` extra (faster-whisper; rapidfuzz for near misses in spelling;
num2words), imported only when used. Validation: ``reports/words/``."""

from __future__ import annotations

import re
import string
import unicodedata
from typing import Annotated, Any, Literal, NamedTuple

import numpy as np

from . import audio
from .errors import AccentRaterError

# The Speech Accent Archive paragraph: what the model was trained on and the default text.
PASSAGE = ("Please call Stella. Ask her to bring these things with her from the store: Six spoons of fresh snow "
           "peas, five thick slabs of blue cheese, and maybe a snack for her brother Bob. We also need a small "
           "plastic snake and a big toy frog for the kids. She can scoop these things into three red bags, and we "
           "will go meet her Wednesday at the train station.")
P_OK = 0.3  # a word heard as written with Whisper's probability below this is "unclear" (scripts/validate_words.py chooses it)
NEAR_MISS = 0.6  # another word this similar in spelling (normalised Levenshtein similarity) is "unclear"
BEAM_SIZE = 1  # greedy decoding: within the time budget, and feedback should not guess harder than a listener
MAX_TEXT_CHARS = 5_000
SNAP_REACH = 0.2  # s: a word whose middle is this close to a speech region belongs to it
PRACTISE_BELOW = 50.0  # a word heard as written but with a pronunciation accuracy under this is practised too
MOSTLY_UNHEARD = 0.5  # fewer words of the text heard than this share: warn that another text may have been read

Status = Literal["ok", "unclear", "different", "missed", "extra"]
_RANK: dict[str, int] = {"ok": 0, "unclear": 1, "different": 2, "missed": 3}  # a written word of several parts takes its worst


class Word(NamedTuple):
    """One word of the text (or one extra word heard between them), in reading order."""

    word: Annotated[str, "The word as written in the text, punctuation included; empty for an extra word"]
    start: Annotated[float | None, "Start in seconds of the original recording; null when missed"]
    end: Annotated[float | None, "End in seconds of the original recording; null when missed"]
    status: Annotated[Status, f"ok: heard as written (Whisper's probability >= {P_OK}); unclear: heard as written "
                      "with a lower probability, or a near miss in spelling; different: another word was heard; "
                      "missed: nothing was heard for it; extra: a word heard that is not in the text"]
    confidence: Annotated[float | None, "Whisper's probability of the word it heard (0..1); null when missed"]
    heard: Annotated[str, "What Whisper heard for this word (empty when missed)"]
    accuracy: Annotated[float | None, "Pronunciation accuracy of the word, 0-100 (with pronunciation scores); "
                        "null without them and for extra words"] = None


class Reading(NamedTuple):
    """How the text was read, over its words."""

    words: Annotated[int, "Words in the text"]
    ok: Annotated[int, "Words heard as written"]
    unclear: Annotated[int, "Words heard with low confidence or as a near miss"]
    different: Annotated[int, "Words heard as another word"]
    missed: Annotated[int, "Words not heard"]
    extra: Annotated[int, "Words heard that are not in the text"]
    accuracy: Annotated[float, "ok / words"]
    words_per_minute: Annotated[float, "Words heard per minute, from the first word's start to the last word's end"]


class Heard(NamedTuple):
    """One word as Whisper heard it, timed in seconds of the original recording."""

    text: str
    start: float
    end: float
    probability: float


class Forced(NamedTuple):
    """One written word teacher-forced through Whisper's decoder over the reading (the recogniser
    told what should have been said): how likely it found the word's tokens, and where it put them."""

    word: str
    start: float
    end: float
    logprob: float  # mean log-probability of the word's tokens (punctuation left out)
    min_logprob: float
    tokens: int


class Listening(NamedTuple):
    """What the recogniser made of one reading (``Transcriber.listen``)."""

    heard: list[Heard]
    forced: list[Forced]  # one per written word, in order; empty without a text
    states: np.ndarray  # (frames, 512) Whisper base encoder states of the speech, 20 ms apart
    times: np.ndarray  # (frames,) each state's time in seconds of the original recording


class TextError(AccentRaterError, ValueError):
    """The text given for word feedback is unusable (too long, or no words in it)."""

    code = "bad_text"
    http_status = 422


# --- normalisation -----------------------------------------------------------------------------------
_NUMBER = re.compile(r"^(\d{1,15}(?:\.\d{1,6})?)(st|nd|rd|th)?$")  # longer digit strings stay digits
_CONTRACTIONS = {"won't": "will not", "can't": "can not", "shan't": "shall not", "n't": " not", "'ll": " will",
                 "'re": " are", "'ve": " have", "'m": " am"}  # not 's and 'd: "Bob's", "he'd" are ambiguous
_CONTRACTION = re.compile("|".join(re.escape(k) for k in _CONTRACTIONS) + r"(?=\b)")


def normalize(token: str) -> list[str]:
    """The comparable parts of one written or heard word: lower case, accents and punctuation
    dropped (inner apostrophes kept), hyphenated and slashed compounds split, numbers spelled out
    ("21" -> ["twenty", "one"], "3rd" -> ["third"]), contractions expanded ("we'll" -> ["we", "will"])."""
    from num2words import num2words

    text = re.sub("[\u2018\u2019\u02bc]", "'", token)  # typographic apostrophes
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower().replace("&", " and ")
    text = _CONTRACTION.sub(lambda m: _CONTRACTIONS[m[0]], text)
    out: list[str] = []
    for part in re.split(r"[\s\-/\u2013\u2014]+", re.sub(r"(?<=\d),(?=\d{3})", "", text)):
        part = re.sub(r"[^a-z0-9.']+", "", part).strip(".'")
        number = _NUMBER.match(part)
        if number:
            value = float(number[1]) if "." in number[1] else int(number[1])
            part = num2words(value, to="ordinal" if number[2] else "cardinal")
            out += [w for w in re.split(r"[\s\-,]+", part) if w]
        elif part:
            out += [w for w in part.replace(".", " ").split() if w]
    return out


def reading_text(text: str | None) -> str:
    """The text a reading is compared with: the passage when none is given, else ``text`` without
    outer whitespace ("" means free speech: a transcript only)."""
    return PASSAGE if text is None else text.strip()


def text_words(text: str) -> list[str]:
    """The written words of ``text`` (whitespace-separated, keeping their punctuation) that hold at
    least one comparable part; ``TextError`` for a text too long to be a reading or without words."""
    if len(text) > MAX_TEXT_CHARS:
        raise TextError(f"the text has {len(text)} characters; word feedback takes at most {MAX_TEXT_CHARS}")
    written = [w for w in text.split() if normalize(w)]
    if not written:
        raise TextError("the text has no words to compare the reading with")
    return written


# --- alignment ---------------------------------------------------------------------------------------
def feedback(heard: list[Heard], text: str) -> tuple[list[Word], Reading]:
    """Align the heard words to the words of ``text`` and give each written word a status; extra
    heard words are listed where they were heard. Ties in the alignment go to the later reading, so
    a restarted sentence's first attempt is the extra one."""
    from rapidfuzz.distance import Levenshtein

    written = text_words(text)
    ref = [(i, p) for i, w in enumerate(written) for p in normalize(w)]
    hyp = [(j, p) for j, h in enumerate(heard) for p in normalize(h.text)]
    match = align([p for _, p in ref], [p for _, p in hyp])  # ref part -> hyp part
    used = {hyp[k][0] for k in match.values()}

    by_word: dict[int, list[tuple[Status, int | None]]] = {}  # written word -> (part status, heard word)
    for r, (i, part) in enumerate(ref):
        k = match.get(r)
        if k is None:
            by_word.setdefault(i, []).append(("missed", None))
            continue
        j, heard_part = hyp[k]
        status: Status
        if heard_part == part:
            status = "ok" if heard[j].probability >= P_OK else "unclear"
        else:
            status = "unclear" if Levenshtein.normalized_similarity(part, heard_part) >= NEAR_MISS else "different"
        by_word.setdefault(i, []).append((status, j))

    words: list[Word] = []
    extras = sorted(j for j in range(len(heard)) if j not in used)
    for i, w in enumerate(written):
        parts = by_word[i]
        js = sorted({j for _, j in parts if j is not None})
        while extras and js and extras[0] < js[0]:
            words.append(_extra(heard[extras.pop(0)]))
        status = "missed" if not js else max((s for s, _ in parts if s != "missed"), key=_RANK.__getitem__)
        if js and any(s == "missed" for s, _ in parts):
            status = max(status, "unclear", key=_RANK.__getitem__)  # a compound heard in part
        words.append(Word(w, heard[js[0]].start if js else None, heard[js[-1]].end if js else None, status,
                          min(heard[j].probability for j in js) if js else None, " ".join(_bare(heard[j].text) for j in js)))
    words += [_extra(heard[j]) for j in extras]
    return words, summarize(words, heard)


def align(ref: list[str], hyp: list[str]) -> dict[int, int]:
    """Edit-distance alignment (unit costs) of two word lists: {ref index: hyp index} for the pairs
    matched or substituted. Among equally good alignments, the one with the fewest gaps (runs of
    skipped words) wins, so a reading that stops leaves one run of missed words at the end; then the
    latest pairs (traced back from the end, pairing before skipping), so the first attempt of a
    restarted sentence is the one left over as extra words."""
    n, m = len(ref), len(hyp)
    ids = {w: k for k, w in enumerate(dict.fromkeys(ref + hyp))}
    cost = (np.array([ids[w] for w in ref], int)[:, None] != np.array([ids[w] for w in hyp], int)[None, :]).astype(np.int32)
    d = np.zeros((n + 1, m + 1), np.int32)
    d[0] = np.arange(m + 1)
    steps = np.arange(m + 1)
    for i in range(1, n + 1):
        row = np.empty(m + 1, np.int32)
        row[0] = i
        row[1:] = np.minimum(d[i - 1, 1:] + 1, d[i - 1, :-1] + cost[i - 1])
        d[i] = np.minimum.accumulate(row - steps) + steps  # then insertions, left to right

    def trace(pair_first: bool) -> tuple[int, dict[int, int]]:
        out: dict[int, int] = {}
        i, j, gaps, skipping = n, m, 0, False
        while i > 0 or j > 0:
            pair = i > 0 and j > 0 and d[i, j] == d[i - 1, j - 1] + cost[i - 1, j - 1]
            if pair and (pair_first or not (i > 0 and d[i, j] == d[i - 1, j] + 1 or j > 0 and d[i, j] == d[i, j - 1] + 1)):
                i, j = i - 1, j - 1
                out[i] = j
                skipping = False
                continue
            gaps += not skipping
            skipping = True
            if i > 0 and d[i, j] == d[i - 1, j] + 1 and not (pair_first and j > 0 and d[i, j] == d[i, j - 1] + 1):
                i -= 1
            else:
                j -= 1
        return gaps, out

    (gaps_late, late), (gaps_skip, skip) = trace(True), trace(False)
    return late if gaps_late <= gaps_skip else skip


def _extra(h: Heard) -> Word:
    return Word("", h.start, h.end, "extra", h.probability, _bare(h.text))


def _bare(text: str) -> str:
    """A heard word without the punctuation Whisper attaches to it ("case." -> "case")."""
    return text.strip(string.punctuation + "\u201c\u201d\u2018\u2019\u2026") or text


def summarize(words: list[Word], heard: list[Heard]) -> Reading:
    """Counts per status over the written words, accuracy and speaking rate."""
    count = {s: sum(w.status == s for w in words) for s in ("ok", "unclear", "different", "missed", "extra")}
    total = len(words) - count["extra"]
    minutes = (heard[-1].end - heard[0].start) / 60.0 if heard else 0.0
    return Reading(total, count["ok"], count["unclear"], count["different"], count["missed"], count["extra"],
                   count["ok"] / total if total else 0.0, len(heard) / minutes if minutes > 0 else 0.0)


def reading_warning(reading: Reading) -> str | None:
    """A note when most words of the text were not heard (another text read, or none)."""
    if reading.ok + reading.unclear < MOSTLY_UNHEARD * reading.words:
        return (f"only {reading.ok + reading.unclear} of the text's {reading.words} words were heard: was this "
                "text read? Word feedback compares the recording with the text given")
    return None


def practise(words: list[Word], limit: int = 8) -> list[Word]:
    """The words to practise: written words not heard as ok (or, with pronunciation scores, heard
    as written with an accuracy under ``PRACTISE_BELOW``), one per spelling; those heard as another
    word first, then unclear ones, then low-accuracy ones, then missed ones, in reading order within each. Words
    missed before the first or after the last word heard were not read, so they are left out."""
    order = {"different": 0, "unclear": 1, "low": 2, "missed": 3}
    written = [w for w in words if w.status != "extra"]
    heard_at = [i for i, w in enumerate(written) if w.status != "missed"]
    read = written[heard_at[0]: heard_at[-1] + 1] if heard_at else []
    seen: set[str] = set()
    out = []

    def kind(w: Word) -> str:  # a word heard as written but scored low on accuracy is practised too
        return "low" if w.status == "ok" and w.accuracy is not None and w.accuracy < PRACTISE_BELOW else w.status

    for w in sorted((w for w in read if kind(w) in order), key=lambda w: order[kind(w)]):
        key = " ".join(normalize(w.word))
        if key not in seen:
            seen.add(key)
            out.append(w)
    return out[:limit]


def transcript(heard: list[Heard]) -> str:
    return " ".join(h.text for h in heard)


# --- transcription -----------------------------------------------------------------------------------
WINDOW_SECONDS = 30.0  # Whisper's window; speech is cut into windows at its pauses
WORD_DELAY = 0.04  # s added to Whisper's word times: its cross-attention alignment runs early (fitted on tuning natives)
MAX_FORCED_TOKENS = 440  # Whisper's decoder holds 448 positions; its start sequence and the end take the rest
UNFORCED_LOGPROB = float(np.log(1e-6))  # a word the decoder could not be given (beyond MAX_FORCED_TOKENS in its window)
TOKENS_PER_SECOND = 8  # decoding stops after this many tokens per second of speech (a passage needs ~2.5)
PUNCTUATION_BEFORE = "\"'\u201c\u00bf([{-"  # faster-whisper's defaults: attached to the next word
PUNCTUATION_AFTER = "\"'.\u3002,\uff0c!\uff01?\uff1f:\uff1a\u201d)]}\u3001"  # ... to the previous word


def windows(speech: audio.Speech, seconds: float = WINDOW_SECONDS) -> list[tuple[int, int]]:
    """[start, end) sample spans of ``speech.audio``, each at most ``seconds`` long, cut in the
    middle of a (shortened) pause where one falls in the window, else at the window's end."""
    size, n = int(seconds * audio.SAMPLE_RATE), len(speech.audio)
    starts = {s for s, _ in speech.regions}
    cuts = [t0 + length // 2 for t0, orig, length in speech.pieces if orig not in starts]  # mid-pause
    out, start = [], 0
    while n - start > size:
        end = max((c for c in cuts if start < c <= start + size), default=start + size)
        out.append((start, end))
        start = end
    return out + [(start, n)]


class Transcriber:
    """Whisper base (encoder and decoder) in CTranslate2 int8 on the CPU, from ``check_decoder``'s
    verified directory. Each window of speech is encoded once, decoded greedily as text only, and
    its words timed by the decoder's cross-attention alignment (faster-whisper's, with word
    probabilities). Thread-safe; raises ``WeightsError`` (with how to fetch them) without weights."""

    def __init__(self, threads: int = 2) -> None:
        from .backbones.whisper import check_decoder

        path = check_decoder("base")
        try:
            from faster_whisper import WhisperModel
            from faster_whisper.tokenizer import Tokenizer
        except ImportError:
            from .backbones.whisper import WeightsError

            raise WeightsError("word feedback needs the `words` extra: pip install -c constraints.txt "
                               "'accent-rater[words]'") from None
        self.model = WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=threads,
                                  local_files_only=True)
        self.tokenizer = Tokenizer(self.model.hf_tokenizer, self.model.model.is_multilingual, task="transcribe",
                                   language="en")

    def __call__(self, speech: audio.Speech) -> list[Heard]:
        """The words of the speech (``audio.prepare``'s pause-trimmed audio, its full band where it was
        kept), timed in seconds of the original recording."""
        return self.listen(speech).heard

    def listen(self, speech: audio.Speech, text: str | None = None) -> Listening:
        """What the recogniser makes of the speech: the words it heard (``__call__``), and with a
        ``text`` what it makes of that text read over the same encoded windows (each written word's
        tokens teacher-forced, their probabilities and times: ``Forced``; "" forces the words heard),
        with the encoder states of the speech (for pronunciation scores)."""
        from .backbones.whisper import log_mel

        wav = speech.wide if speech.wide is not None else speech.audio
        spans = windows(speech)
        size = int(WINDOW_SECONDS * audio.SAMPLE_RATE)
        mel = log_mel(np.stack([np.pad(wav[a:b], (0, size - (b - a))) for a, b in spans]))
        encoded = self.model.encode(mel)
        longest = max(b - a for a, b in spans) / audio.SAMPLE_RATE
        prompt = self.tokenizer.sot_sequence + [self.tokenizer.no_timestamps]
        results = self.model.model.generate(
            encoded, [prompt] * len(spans), beam_size=BEAM_SIZE, max_length=min(448, len(prompt) + 16 + int(
                TOKENS_PER_SECOND * longest)), suppress_blank=True, suppress_tokens=[-1])
        tokens = [[t for t in r.sequences_ids[0] if t < self.tokenizer.eot] for r in results]
        frames = [(b - a) // audio.HOP_LENGTH for a, b in spans]
        heard, window_of = self._heard(speech, spans, frames, encoded, tokens)
        if text is None:
            return Listening(heard, [], np.zeros((0, 0), np.float32), np.zeros(0))
        states = np.asarray(encoded)
        written = text_words(text) if text else [w for w in (_bare(h.text) for h in heard) if normalize(w)]  # free speech: what was heard
        forced = self._forced(speech, spans, frames, states, written, heard, window_of) if written else []
        kept = [states[i, : frames[i] // 2] for i in range(len(spans))]
        times = np.concatenate([np.array([speech.to_original_seconds(a + k * 2 * audio.HOP_LENGTH)
                                          for k in range(len(s))]) for (a, _), s in zip(spans, kept)])
        return Listening(heard, forced, np.concatenate(kept).astype(np.float32), times)

    def _heard(self, speech: audio.Speech, spans: list[tuple[int, int]], frames: list[int], encoded: Any,
               tokens: list[list[int]]) -> tuple[list[Heard], list[int]]:
        """The decoded words timed by cross-attention, with the window each came from."""
        from faster_whisper.transcribe import merge_punctuations

        keep = [i for i, t in enumerate(tokens) if t]
        if not keep:
            return [], []
        if len(keep) < len(spans):  # the alignment takes one encoded window per token list
            encoded = _windows_of(encoded, keep)
        out, window_of = [], []
        for i, alignment in zip(keep, self.model.find_alignment(self.tokenizer, [tokens[i] for i in keep], encoded,
                                                                 [frames[i] for i in keep])):
            merge_punctuations(alignment, PUNCTUATION_BEFORE, PUNCTUATION_AFTER)
            for w in alignment:
                if w["word"].strip():
                    start, end = self._seconds(speech, spans[i][0], w["start"], w["end"])
                    out.append(Heard(w["word"].strip(), round(start, 2), round(end, 2), round(float(w["probability"]), 3)))
                    window_of.append(i)
        snapped = snap_to_speech(out, speech.regions)
        return snapped, window_of

    @staticmethod
    def _seconds(speech: audio.Speech, offset: int, start: float, end: float) -> tuple[float, float]:
        return speech.span_seconds(offset + int(round((start + WORD_DELAY) * audio.SAMPLE_RATE)),
                                   offset + int(round((end + WORD_DELAY) * audio.SAMPLE_RATE)))

    def _forced(self, speech: audio.Speech, spans: list[tuple[int, int]], frames: list[int], states: np.ndarray,
                written: list[str], heard: list[Heard], window_of: list[int]) -> list[Forced]:
        """Each written word teacher-forced in the window where its reading was heard (words not
        heard go with the word before them), aligned by cross-attention, as the heads were trained.
        Where a window's words exceed what the decoder holds (``MAX_FORCED_TOKENS``: a long text over
        a short reading), only the stretch read (first to last written word heard) is forced there,
        from its first word on as far as it fits. Words not forced get ``UNFORCED_LOGPROB`` at their
        window's end (the scores leave them out: ``read_part``)."""
        window = written_windows(written, heard, window_of, len(spans))
        cased = natural_case(written)
        tokens = [self.tokenizer.encode(" " + w) for w in cased]
        groups = [[k for k in range(len(written)) if window[k] == i] for i in range(len(spans))]
        if any(sum(len(tokens[k]) for k in g) > MAX_FORCED_TOKENS for g in groups):
            read = {i for i, _ in aligned_words(written, heard)}
            first, last = (min(read), max(read)) if read else (0, len(written) - 1)
            groups = [g if sum(len(tokens[k]) for k in g) <= MAX_FORCED_TOKENS else
                      _fitting([k for k in g if first <= k <= last], tokens, 0) for g in groups]
        used = [i for i, g in enumerate(groups) if g]
        results = self.model.model.align(_windows_of(states, used), self.tokenizer.sot_sequence,
                                          [[t for k in groups[i] for t in tokens[k]] for i in used], [frames[i] for i in used])
        out: dict[int, Forced] = {}
        for i, result in zip(used, results):
            probs = np.asarray(result.text_token_probs, np.float64)
            text_idx = np.array([a for a, _ in result.alignments])
            time_idx = np.array([b for _, b in result.alignments])
            jumps = np.pad(np.diff(text_idx), (1, 0), constant_values=1).astype(bool)
            jump_times = time_idx[jumps] / 50.0  # cross-attention steps of 20 ms
            edges = np.concatenate([[0], np.cumsum([len(tokens[k]) for k in groups[i]])])
            for k, a, b in zip(groups[i], edges[:-1], edges[1:]):
                word_tokens = [j for j in range(a, b) if any(c.isalnum() for c in self.tokenizer.decode([tokens[k][j - a]]))]
                lp = np.log(np.clip(probs[word_tokens or list(range(a, b))], 1e-6, 1.0))
                t0 = jump_times[min(a, len(jump_times) - 1)]
                t1 = jump_times[min(b, len(jump_times) - 1)]
                start, end = self._seconds(speech, spans[i][0], float(t0), float(t1))
                out[k] = Forced(written[k], round(start, 2), round(end, 2), float(lp.mean()), float(lp.min()), int(b - a))
        end_of = {i: round(speech.span_seconds(*spans[i])[1], 2) for i in range(len(spans))}
        return [out.get(k) or Forced(written[k], end_of[window[k]], end_of[window[k]], UNFORCED_LOGPROB, UNFORCED_LOGPROB,
                                     len(tokens[k])) for k in range(len(written))]


def _fitting(group: list[int], tokens: list[list[int]], anchor: int) -> list[int]:
    """The run of ``group``'s words whose tokens fit the decoder: from ``anchor`` on, then back."""
    lo = hi = anchor
    total = 0
    while hi < len(group) and total + len(tokens[group[hi]]) <= MAX_FORCED_TOKENS:
        total += len(tokens[group[hi]])
        hi += 1
    while lo > 0 and total + len(tokens[group[lo - 1]]) <= MAX_FORCED_TOKENS:
        lo -= 1
        total += len(tokens[group[lo]])
    return group[lo:hi]


def aligned_words(written: list[str], heard: list[Heard]) -> list[tuple[int, int]]:
    """(written word, heard word) index pairs of ``align`` over their normalised parts, in order."""
    ref = [(i, p) for i, w in enumerate(written) for p in normalize(w)]
    hyp = [(j, p) for j, h in enumerate(heard) for p in normalize(h.text)]
    match = align([p for _, p in ref], [p for _, p in hyp])
    return [(ref[r][0], hyp[k][0]) for r, k in sorted(match.items())]


def _windows_of(encoded: Any, keep: list[int]) -> Any:
    import ctranslate2

    return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.asarray(encoded)[keep]))


def written_windows(written: list[str], heard: list[Heard], window_of: list[int], n_windows: int) -> list[int]:
    """The window each written word was read in: the window of the heard word aligned to it; a word
    not heard takes the window of the nearest aligned word before it (after it at the start)."""
    if n_windows == 1 or not heard:
        return [0] * len(written)
    found: dict[int, int] = {}
    for i, j in aligned_words(written, heard):
        found.setdefault(i, window_of[j])
    out: list[int | None] = [found.get(i) for i in range(len(written))]
    last = next((w for w in out if w is not None), 0)
    for i, w in enumerate(out):
        last = w if w is not None else last
        out[i] = last
    return [int(w) for w in out]  # type: ignore[arg-type]


def natural_case(written: list[str]) -> list[str]:
    """Words as Whisper writes them: a text in capitals throughout (as corpora print prompts) in
    lower case with sentence starts and "I" capitalised; any other text as written."""
    if any(c.islower() for w in written for c in w):
        return list(written)
    out, start = [], True
    for w in written:
        low = w.lower()
        low = re.sub(r"^i(?=$|\W|')", "I", low)
        out.append(low[:1].upper() + low[1:] if start else low)
        start = low.rstrip("\"')\u201d").endswith((".", "!", "?"))
    return out


def snap_to_speech(heard: list[Heard], regions: list[tuple[int, int]]) -> list[Heard]:
    """Word edges at pauses moved out to where voice activity detection heard the speech begin and
    end (``regions``: padded speech regions in samples of the original recording). Whisper puts a
    phrase's edges early, most of all before a pause (a final /s/ or /z/ has little energy in the
    4 kHz band): the first word of a region starts no earlier than its speech, the last ends no
    earlier than its speech. Applying it twice changes nothing."""
    pad = audio.SPEECH_PAD_SECONDS
    spans = [(s / audio.SAMPLE_RATE + pad, e / audio.SAMPLE_RATE - pad) for s, e in regions]
    out = list(heard)
    for i, h in enumerate(out):
        mid = (h.start + h.end) / 2
        span = next(((a, b) for a, b in spans if a - SNAP_REACH <= mid <= b + SNAP_REACH), None)
        if span is None:
            continue
        a, b = span
        start = max(h.start, a) if i == 0 or out[i - 1].end < a else h.start
        end = max(h.end, b) if i + 1 == len(out) or out[i + 1].start > b else h.end
        out[i] = h._replace(start=round(min(start, h.end), 2), end=round(end, 2))
    return out

