"""Property tests of the decoder boundary (hypothesis): arbitrary bytes and mutated real recordings
give an ``AudioError`` or a result, never another exception, and each example finishes within a
time bound. Numpy runtime warnings (overflow, invalid value, empty mean) count as failures too."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from accent_rater import audio
from accent_rater.errors import AudioError
from accent_rater.rater import AccentResult, Rater

from conftest import FIXTURES, SAMPLES, encode, read_fixture

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

DEADLINE_MS = 5_000  # per example, on 2 busy cores; a 7 s clip rates in ~0.3 s on an idle one
SLOW_FIXTURES = [HealthCheck.too_slow, HealthCheck.data_too_large]


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, bytes]:
    """Real speech in each container the rater meets: FLAC and Ogg/Opus from the corpus, and the
    FLAC fixture re-encoded as WAV (libsndfile), MP3 and WebM/Opus (PyAV)."""
    tmp = tmp_path_factory.mktemp("sources")
    wav, sr = read_fixture("native_us_english5.flac")
    sf.write(str(tmp / "clip.wav"), wav, sr, subtype="PCM_16")
    return {
        "flac": (FIXTURES / "native_us_english5.flac").read_bytes(),
        "opus": (SAMPLES / "native_uk_english38.opus").read_bytes(),
        "wav": (tmp / "clip.wav").read_bytes(),
        "mp3": encode(wav, sr, tmp / "clip.mp3", "libmp3lame", bit_rate=48_000).read_bytes(),
        "webm": encode(wav, sr, tmp / "clip.webm", "libopus", fmt="webm", bit_rate=32_000).read_bytes(),
    }


@pytest.fixture(scope="module")
def rater() -> Rater:
    return Rater()


# --- arbitrary bytes ------------------------------------------------------------------------------
MAGIC = [b"RIFF\x24\x00\x00\x00WAVEfmt ", b"fLaC\x00\x00\x00\x22", b"OggS\x00\x02", b"ID3\x04\x00\x00", b"\xff\xfb\x90\x64",
         b"\x1a\x45\xdf\xa3", b"\x00\x00\x00\x20ftypM4A ", b"\xff\xf1\x50\x80"]


def _check_speech(speech: audio.Speech) -> None:
    assert speech.audio.dtype == np.float32 and np.all(np.isfinite(speech.audio))
    assert 0 < speech.speech_seconds <= speech.duration_seconds + 1.0


@settings(max_examples=150, deadline=DEADLINE_MS, suppress_health_check=SLOW_FIXTURES)
@given(blob=st.binary(min_size=0, max_size=16_384))
def test_arbitrary_bytes_are_refused_or_decoded(blob: bytes) -> None:
    try:
        _check_speech(audio.prepare(blob))
        event("decoded")
    except AudioError as exc:
        event(f"refused: {exc.code}")


@settings(max_examples=150, deadline=DEADLINE_MS, suppress_health_check=SLOW_FIXTURES)
@given(name=st.sampled_from(["flac", "opus", "wav", "mp3", "webm"]), keep=st.integers(0, 512), body=st.binary(max_size=16_384),
       magic=st.sampled_from(MAGIC), use_magic=st.booleans())
def test_real_or_magic_header_with_arbitrary_body(sources, name: str, keep: int, body: bytes, magic: bytes, use_magic: bool) -> None:
    """A container's signature (or a real file's first bytes) followed by junk reaches the demuxers
    and decoders rather than stopping at format detection."""
    blob = (magic if use_magic else sources[name][:keep]) + body
    try:
        _check_speech(audio.prepare(blob))
        event("decoded")
    except AudioError as exc:
        event(f"refused: {exc.code}")


# --- mutated real files -------------------------------------------------------------------------
def _mutation(n: int) -> st.SearchStrategy[tuple]:
    pos = st.integers(0, n - 1)
    return st.one_of(
        st.tuples(st.just("truncate"), pos),
        st.tuples(st.just("flip"), st.lists(st.tuples(pos, st.integers(0, 255)), min_size=1, max_size=64)),
        st.tuples(st.just("header"), st.integers(0, 96), st.binary(min_size=1, max_size=64)),
        st.tuples(st.just("insert"), pos, st.binary(min_size=1, max_size=4096)),
        st.tuples(st.just("duplicate"), pos, st.integers(1, 16_384), pos),
    )


def mutate(data: bytes, ops: list[tuple]) -> bytes:
    """Apply mutations in order; positions past the (changing) end wrap around."""
    b = bytearray(data)
    for op, *args in ops:
        n = max(len(b), 1)
        if op == "truncate":
            del b[args[0] % n:]
        elif op == "flip":
            for p, v in args[0]:
                if b:
                    b[p % len(b)] = v
        elif op == "header":
            start, junk = args
            b[start: start + len(junk)] = junk
        elif op == "insert":
            b[args[0] % n: args[0] % n] = args[1]
        else:  # duplicate a chunk at another position
            start, length, at = args
            chunk = b[start % n: start % n + length]
            b[at % n: at % n] = chunk
    return bytes(b)


def _check_result(result: AccentResult) -> None:
    assert isinstance(result, AccentResult)
    assert 0.0 <= result.p_native <= 1.0 and result.label in ("native", "non_native")
    assert np.isfinite([result.speech_seconds, result.duration_seconds]).all()
    assert result.segments and all(np.isfinite(seg).all() and 0.0 <= seg[2] <= 1.0 for seg in result.segments)


@settings(max_examples=60, deadline=DEADLINE_MS, suppress_health_check=SLOW_FIXTURES)
@given(name=st.sampled_from(["flac", "opus", "wav", "mp3", "webm"]), data=st.data())
def test_mutated_real_files_rate_or_raise_audio_error(rater: Rater, sources, name: str, data) -> None:
    """Truncated, bit-flipped, header-overwritten, junk-inserted and chunk-duplicated recordings:
    the default model rates them or refuses them with a typed error."""
    src = sources[name]
    ops = data.draw(st.lists(_mutation(len(src)), min_size=1, max_size=3), label="mutations")
    try:
        _check_result(rater.rate(mutate(src, ops)))
        event("rated")
    except AudioError as exc:
        event(f"refused: {exc.code}")  # --hypothesis-show-statistics lists how often each outcome occurred


def test_unmutated_sources_rate(rater: Rater, sources) -> None:
    """The sources themselves are rateable, so the mutations start from valid files."""
    for name, blob in sources.items():
        _check_result(rater.rate(blob))
        assert mutate(blob, []) == blob, name


def test_mutations_change_the_file(sources) -> None:
    src = sources["flac"]
    assert mutate(src, [("truncate", 100)]) == src[:100]
    assert mutate(src, [("header", 0, b"JUNK")])[:8] == b"JUNK" + src[4:8]
    assert mutate(src, [("insert", 4, b"xx")]) == src[:4] + b"xx" + src[4:]
    assert mutate(src, [("duplicate", 0, 4, 4)])[:8] == src[:4] * 2

