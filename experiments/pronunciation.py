"""Pronunciation (GOP-like) features from the pocketsphinx US-English acoustic model.

``pron_features(audio_16k, text)`` returns a fixed-length float32 vector (names in ``PRON_NAMES``).

STATUS (probe, 300 SAA speakers): with ``text`` it runs ``set_align_text`` (word-level FSG forced
alignment, optional silences/fillers) + ``set_alignment()`` (phone/state Viterbi second pass) and
computes per-phone per-frame aligned acoustic scores. pocketsphinx normalises acoustic scores per
frame against the best-scoring senone, so these are already GOP-like; the planned phone-loop
denominator (re-aligning the loop's phone string) is NOT applied yet, so ``gop_*`` currently equal
the aligned scores (``ascore_*`` duplicates them) and ``loop_frame`` is always None.
``_passage_search`` (grammar with skippable words) is written but not used yet.
A free phone loop (FSG over the 39 CMU phones as one-phone words) gives the text-independent
features (phone rate, durations; its segment scores are in other units than the alignment's).
Alignment fails for ~30% of speakers (about equally for both labels); about half of those align
with pocketsphinx's default beams. The settings ``bestpath=False`` / ``fwdflat=False`` are
required: with bestpath on, ``Decoder.hyp()`` after an FSG search can run for minutes.
Hierarchical iteration over an Alignment (phones of a word) crashes, so only flat iteration is used.

pocketsphinx is imported lazily, so this module imports without it.
"""

from __future__ import annotations

import re
import threading

import numpy as np

SAMPLE_RATE = 16_000
FRAME_RATE = 100  # pocketsphinx frames per second
SCORE_SCALE = 100.0  # pocketsphinx alignment scores per frame are O(-10..-100)
SKIP_PROB = 0.02  # probability of skipping a passage word in the alignment grammar

# Decoder settings. Beams were narrowed from pocketsphinx's defaults (1e-48) for speed; see
# experiments/probe_pronunciation.py for the measured cost. The acoustic front end is left exactly as
# the model was trained (wideband 16 kHz, 25 filters to 6.8 kHz): the band-limited input simply has
# (near-)empty top filters, and changing -upperf/-nfilt would change the cepstra the model expects.
DECODER_CONFIG: dict[str, object] = {
    "beam": 1e-30,
    "pbeam": 1e-30,
    "wbeam": 1e-20,
    "lpbeam": 1e-25,
    "lponlybeam": 1e-20,
    "bestpath": False,  # FSG hyp() with bestpath runs a lattice search that can take minutes
    "fwdflat": False,
}

PHONES = ("AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH "
          "UH UW V W Y Z ZH").split()
VOWELS = frozenset("AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW".split())
PHONE_GROUPS: dict[str, frozenset[str]] = {
    "vowel": VOWELS,
    "cons": frozenset(PHONES) - VOWELS,
    "stop": frozenset("B D G K P T".split()),
    "fric": frozenset("CH DH F HH JH S SH TH V Z ZH".split()),
    "nasal": frozenset("M N NG".split()),
    "approx": frozenset("L R W Y".split()),
    "th_dh": frozenset("TH DH".split()),
    "r_l": frozenset("R L".split()),
    "z_v_w": frozenset("Z V W".split()),
    "lax_vowel": frozenset("IH EH AE AH UH".split()),
}
_PCTS = (10, 25, 50, 75, 90)


def _names() -> list[str]:
    names = ["align_ok", "pron_seconds"]
    # text-independent (phone loop)
    names += ["loop_phone_rate", "loop_score_mean", "loop_score_std", "loop_score_p10",
              "loop_dur_mean", "loop_dur_std", "loop_vowel_frac"]
    # alignment: words, rate, pauses
    names += ["words_found_frac", "align_phone_rate", "articulation_rate", "pause_count_per_word",
              "pause_time_frac", "pause_mean_s", "phone_logdur_mean", "phone_logdur_std",
              "vowel_logdur_mean", "cons_logdur_mean", "word_dur_cv"]
    # GOP over all phones
    names += ["gop_mean", "gop_std"] + [f"gop_p{p}" for p in _PCTS]
    names += ["gop_frac_lt_m1", "gop_frac_lt_m3", "gop_word_min_mean", "gop_word_mean_std"]
    names += ["ascore_mean", "ascore_std", "ascore_p10", "ascore_p50"]
    # GOP per phone group
    for g in PHONE_GROUPS:
        names += [f"gop_{g}_mean", f"gop_{g}_p25"]
    # duration-weighted (per frame) GOP
    names += ["gop_frame_mean"]
    return names


PRON_NAMES: list[str] = _names()
PRON_DIM = len(PRON_NAMES)

_lock = threading.Lock()
_decoder = None
_passages: dict[str, str] = {}


def normalize_text(text: str) -> list[str]:
    """Lower-case words, punctuation removed (apostrophes kept): the dictionary's spelling."""
    return re.sub(r"[^a-z' ]", " ", text.lower().replace("-", " ")).split()


def _import_pocketsphinx():
    try:
        import pocketsphinx  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "pronunciation features need the 'pocketsphinx' package (pip install pocketsphinx, "
            "with -c constraints.txt); it ships the US-English acoustic model and dictionary"
        ) from exc
    return pocketsphinx


def _get_decoder():
    """One Decoder per process (building it loads the model: ~0.4 s). Not thread-safe: use _lock."""
    global _decoder
    if _decoder is None:
        ps = _import_pocketsphinx()
        d = ps.Decoder(lm=None, loglevel="FATAL", **DECODER_CONFIG)
        for i, p in enumerate(PHONES):
            d.add_word(f"ph_{p.lower()}", p, i == len(PHONES) - 1)
        loop = d.create_fsg("loop", 0, 1, [(0, 1, 1.0 / len(PHONES), f"ph_{p.lower()}") for p in PHONES] + [(1, 0, 1.0)])
        d.add_fsg("loop", loop)
        _decoder = d
    return _decoder


def _passage_search(d, words: list[str]) -> str:
    key = " ".join(words)
    name = _passages.get(key)
    if name is None:
        name = f"passage{len(_passages)}"
        trans = []
        for i, w in enumerate(words):
            trans.append((i, i + 1, 1.0 - SKIP_PROB, w))
            trans.append((i, i + 1, SKIP_PROB))  # epsilon: the word may be left out
        d.add_fsg(name, d.create_fsg(name, 0, len(words), trans))
        _passages[key] = name
    return name


def _decode(d, data: bytes) -> None:
    d.start_utt()
    d.process_raw(data, full_utt=True)
    d.end_utt()


def _state_align(d, data: bytes):
    """Second pass on the current hypothesis: list of phones (name, start, dur, score) and a
    per-frame score array spread from the state level."""
    d.set_alignment()
    _decode(d, data)
    al = d.get_alignment()
    if al is None:
        return None
    n = d.n_frames()
    per_frame = np.zeros(n, np.float64)
    for s in al.states():
        if s.duration > 0 and s.start < n:
            e = min(n, s.start + s.duration)
            per_frame[s.start:e] = s.score / s.duration
    # flat iteration only: hierarchical iteration (phones of a word) crashes in pocketsphinx 5.1.1
    phones = [(p.name, p.start, p.duration, p.score) for p in al.phones()]
    words = []
    j = 0
    for w in al.words():
        end = w.start + w.duration
        mine = []
        while j < len(phones) and phones[j][1] < end:
            mine.append(phones[j])
            j += 1
        words.append((w.name, w.start, w.duration, mine))
    return words, per_frame


def _stats(x: np.ndarray, k: int = 2) -> list[float]:
    if x.size == 0:
        return [0.0] * k
    return [float(np.mean(x)), float(np.std(x))][:k]


def is_filler(w: str) -> bool:
    return w.startswith("<") or w.startswith("+") or w.startswith("[") or w.upper() == "SIL"


def _base_phone(p: str) -> str:
    return p.split("(")[0].upper()


def _compute(audio_16k: np.ndarray, words: list[str] | None) -> np.ndarray:
    f = dict.fromkeys(PRON_NAMES, 0.0)
    audio = np.asarray(audio_16k, dtype=np.float32).reshape(-1)
    audio = np.nan_to_num(audio)
    f["pron_seconds"] = len(audio) / SAMPLE_RATE
    if len(audio) < SAMPLE_RATE // 2:
        return np.array([f[n] for n in PRON_NAMES], np.float32)
    peak = float(np.max(np.abs(audio))) or 1.0
    if peak > 1.0:
        audio = audio / peak
    data = (audio * 32767.0).astype(np.int16).tobytes()
    d = _get_decoder()

    # --- free phone loop (text-independent) --------------------------------------------------
    # Its segment scores are not in the units of the state alignment, and re-aligning the loop's
    # phone string (to get comparable per-frame scores) hangs pocketsphinx 5.1.1 on the second
    # utterance, so the loop contributes rates/durations only; GOP uses pocketsphinx's per-frame
    # normalised acoustic score of the aligned phones (scores are relative to the frame's best).
    loop_frame = None
    try:
        d.activate_search("loop")
        _decode(d, data)
        lph = [(s.word[3:].upper(), s.end_frame - s.start_frame + 1, s.ascore) for s in d.seg()
               if s.word.startswith("ph_")] if d.hyp() is not None else []
        if lph:
            dur = np.array([p[1] for p in lph], float)
            sc = np.log(np.maximum(np.array([p[2] for p in lph], float), 1e-300)) / dur
            f["loop_phone_rate"] = len(lph) / max(dur.sum() / FRAME_RATE, 1e-3)
            f["loop_score_mean"] = float(np.mean(sc))
            f["loop_score_std"] = float(np.std(sc))
            f["loop_score_p10"] = float(np.percentile(sc, 10))
            f["loop_dur_mean"], f["loop_dur_std"] = _stats(np.log(dur / FRAME_RATE))
            f["loop_vowel_frac"] = float(np.mean([p[0] in VOWELS for p in lph]))
    except RuntimeError:
        pass

    if not words:
        return np.array([f[n] for n in PRON_NAMES], np.float32)

    # --- forced alignment --------------------------------------------------------------------
    try:
        d.set_align_text(" ".join(words))
        _decode(d, data)
        if d.hyp() is None:
            raise RuntimeError("no alignment path reached the end of the passage")
        res = _state_align(d, data)
        if res is None:
            raise RuntimeError("no state alignment")
        awords, _ = res
    except RuntimeError:
        return np.array([f[n] for n in PRON_NAMES], np.float32)

    real = [w for w in awords if not is_filler(w[0])]
    pauses = [w for w in awords if is_filler(w[0])]
    if len(real) < max(3, len(words) // 4):
        return np.array([f[n] for n in PRON_NAMES], np.float32)
    n_frames = d.n_frames()
    lead = awords[0][2] if is_filler(awords[0][0]) else 0
    trail = awords[-1][2] if len(awords) > 1 and is_filler(awords[-1][0]) else 0
    inner_pauses = [w for w in pauses if w is not awords[0] and w is not awords[-1] and w[2] >= 5]

    ph_name, ph_dur, ph_num, ph_den, ph_word = [], [], [], [], []
    for wi, (_, _, _, phones) in enumerate(real):
        for name, start, dur, score in phones:
            if dur <= 0:
                continue
            name = _base_phone(name)
            den = float(loop_frame[start:start + dur].sum()) if loop_frame is not None and start + dur <= len(loop_frame) else 0.0
            ph_name.append(name)
            ph_dur.append(dur)
            ph_num.append(float(score))
            ph_den.append(den)
            ph_word.append(wi)
    if not ph_name:
        return np.array([f[n] for n in PRON_NAMES], np.float32)
    dur = np.array(ph_dur, float)
    num = np.array(ph_num, float)
    den = np.array(ph_den, float)
    gop = (num - den) / dur / SCORE_SCALE if loop_frame is not None else num / dur / SCORE_SCALE
    asc = num / dur / SCORE_SCALE
    wid = np.array(ph_word)
    names = np.array(ph_name)

    f["align_ok"] = 1.0
    f["words_found_frac"] = len(real) / len(words)
    speech_s = (n_frames - lead - trail) / FRAME_RATE
    f["align_phone_rate"] = len(ph_name) / max(speech_s, 1e-3)
    f["articulation_rate"] = len(ph_name) / max(dur.sum() / FRAME_RATE, 1e-3)
    f["pause_count_per_word"] = len(inner_pauses) / len(real)
    f["pause_time_frac"] = sum(w[2] for w in inner_pauses) / max(n_frames - lead - trail, 1)
    f["pause_mean_s"] = float(np.mean([w[2] for w in inner_pauses]) / FRAME_RATE) if inner_pauses else 0.0
    ld = np.log(dur / FRAME_RATE)
    f["phone_logdur_mean"], f["phone_logdur_std"] = _stats(ld)
    isv = np.isin(names, list(VOWELS))
    f["vowel_logdur_mean"] = float(ld[isv].mean()) if isv.any() else 0.0
    f["cons_logdur_mean"] = float(ld[~isv].mean()) if (~isv).any() else 0.0
    wd = np.array([w[2] for w in real], float)
    f["word_dur_cv"] = float(wd.std() / max(wd.mean(), 1e-6))

    f["gop_mean"], f["gop_std"] = _stats(gop)
    for p, v in zip(_PCTS, np.percentile(gop, _PCTS)):
        f[f"gop_p{p}"] = float(v)
    f["gop_frac_lt_m1"] = float(np.mean(gop < -1.0))
    f["gop_frac_lt_m3"] = float(np.mean(gop < -3.0))
    wmin = [gop[wid == i].min() for i in np.unique(wid)]
    wmean = [gop[wid == i].mean() for i in np.unique(wid)]
    f["gop_word_min_mean"] = float(np.mean(wmin))
    f["gop_word_mean_std"] = float(np.std(wmean))
    f["ascore_mean"], f["ascore_std"] = _stats(asc)
    f["ascore_p10"], f["ascore_p50"] = (float(v) for v in np.percentile(asc, [10, 50]))
    for g, members in PHONE_GROUPS.items():
        m = np.isin(names, list(members))
        if m.any():
            f[f"gop_{g}_mean"] = float(gop[m].mean())
            f[f"gop_{g}_p25"] = float(np.percentile(gop[m], 25))
        else:  # fall back to the overall values so the vector stays informative and finite
            f[f"gop_{g}_mean"] = f["gop_mean"]
            f[f"gop_{g}_p25"] = f["gop_p25"]
    f["gop_frame_mean"] = float(((num - den).sum() if loop_frame is not None else num.sum()) / dur.sum() / SCORE_SCALE)
    return np.array([f[n] for n in PRON_NAMES], np.float32)


def pron_features(audio_16k: np.ndarray, text: str | None = None) -> np.ndarray:
    """Pronunciation features (``PRON_NAMES``) of 16 kHz mono float audio; ``text``: the words read.

    Never raises for bad audio or a failed alignment (``align_ok`` = 0 then); raises ImportError
    when pocketsphinx is missing. The result is float32, finite, of length ``PRON_DIM``.
    """
    words = normalize_text(text) if text else None
    with _lock:
        d = _get_decoder()
        if words:
            known = [w for w in words if d.lookup_word(w) is not None]
            words = known or None
        try:
            out = _compute(audio_16k, words)
        except (RuntimeError, ValueError):
            out = np.zeros(PRON_DIM, np.float32)
            out[PRON_NAMES.index("pron_seconds")] = len(audio_16k) / SAMPLE_RATE
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def align_words(data: bytes, words: list[str]) -> list | None:
    """Forced alignment of ``words`` (normalised, ``normalize_text``) to 16 kHz int16 ``data``, with
    optional silences and fillers between them: per aligned word ``(name, start frame, frames,
    phones)``, phones as ``(name, start, frames, score)``; None when pocketsphinx finds none.
    Thread-safe (one decoder per process)."""
    with _lock:
        d = _get_decoder()
        try:
            d.set_align_text(" ".join(words))
            _decode(d, data)
            res = _state_align(d, data) if d.hyp() is not None else None
        except RuntimeError:
            return None
    return None if res is None else res[0]
