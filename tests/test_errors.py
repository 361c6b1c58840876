"""The one error base: every user-facing error of the package is an ``AccentRaterError`` with a
stable code and an HTTP status, ``error_of`` maps it to its body, and the CLI and the REST API
answer non-audio errors with their class's code and message (real model, real audio)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import accent_rater
from accent_rater import errors
from accent_rater.backbones.whisper import WeightsError
from accent_rater.errors import AccentRaterError, AudioError, BundleError, RequestError, error_body, error_of
from accent_rater.profile import ProfileError, SiteProfile
from accent_rater.pronunciation import NoPronunciationError
from accent_rater.serve.batch import BatchInputError
from accent_rater.words import TextError

FIXTURES = Path(__file__).parent / "fixtures"
CLIP = FIXTURES / "native_us_english5.flac"

# every class the package raises for a user-facing reason, with the base it must keep for the code that catches it
KEPT_BASES = {
    AudioError: ValueError,
    errors.NotAudioError: AudioError,
    errors.CorruptAudioError: AudioError,
    errors.EmptyAudioError: AudioError,
    errors.FileTooLargeError: AudioError,
    errors.AudioTooLongError: AudioError,
    errors.SilentAudioError: AudioError,
    errors.TooLittleSpeechError: AudioError,
    TextError: ValueError,
    WeightsError: RuntimeError,
    ProfileError: ValueError,
    NoPronunciationError: ValueError,
    BatchInputError: ValueError,
    BundleError: ValueError,
    RequestError: AccentRaterError,
}
# the codes and statuses the CLI's JSON and the API return today (clients rely on them)
CODES = {
    AudioError: ("audio_error", 422),
    errors.NotAudioError: ("not_audio", 415),
    errors.CorruptAudioError: ("corrupt", 422),
    errors.EmptyAudioError: ("empty", 422),
    errors.FileTooLargeError: ("too_large", 413),
    errors.AudioTooLongError: ("too_long", 413),
    errors.SilentAudioError: ("silent", 422),
    errors.TooLittleSpeechError: ("too_little_speech", 422),
    TextError: ("bad_text", 422),
    WeightsError: ("words_unavailable", 501),
    NoPronunciationError: ("pronunciation_unavailable", 501),
    BundleError: ("bad_bundle", 500),
}


def _all_subclasses(cls: type) -> set[type]:
    return {c for sub in cls.__subclasses__() for c in (sub, *_all_subclasses(sub))}


def _instance(cls: type[AccentRaterError]) -> AccentRaterError:
    if cls is RequestError:
        return RequestError(503, "busy", "the server is busy", {"Retry-After": "2"})
    return cls(f"a {cls.__name__}")


def test_every_user_facing_error_is_an_accent_rater_error_with_a_code_and_a_status() -> None:
    found = _all_subclasses(AccentRaterError)
    assert set(KEPT_BASES) <= found, f"not AccentRaterErrors: {set(KEPT_BASES) - found}"
    for cls in found:
        assert isinstance(cls.code, str) and cls.code and cls.code != AccentRaterError.code, cls
        assert 400 <= cls.http_status < 600, cls
        assert isinstance(cls.hint, str), cls
    class_codes = [cls.code for cls in found if cls is not RequestError]  # RequestError's code is per instance
    assert len(class_codes) == len(set(class_codes)), "two classes share a code"
    for cls, base in KEPT_BASES.items():
        assert issubclass(cls, base) and issubclass(cls, AccentRaterError), cls
    for cls, (code, status) in CODES.items():
        assert (cls.code, cls.http_status) == (code, status), cls
    assert accent_rater.AccentRaterError is AccentRaterError and "AccentRaterError" in accent_rater.__all__
    assert accent_rater.AudioError is AudioError


def test_error_of_maps_each_error_to_its_code_and_message() -> None:
    for cls in _all_subclasses(AccentRaterError):
        exc = _instance(cls)
        assert error_of(exc) == exc.to_dict() == error_body(exc.code, str(exc)), cls
    busy = _instance(RequestError)
    assert error_of(busy) == error_body("busy", "the server is busy") and busy.http_status == 503
    assert busy.headers == {"Retry-After": "2"} and TextError("x").headers is None
    assert error_of(FileNotFoundError("gone.wav")) == error_body("not_found", "gone.wav")
    assert error_of(KeyError("x")) == error_body("internal", "KeyError: 'x'")
    assert error_of(ValueError("plain")) == error_body("internal", "ValueError: plain")  # no code: not the user's


def test_the_hint_follows_the_message() -> None:
    exc = errors.SilentAudioError("the recording is silent")
    assert str(exc) == "the recording is silent. " + errors.SilentAudioError.hint
    assert exc.to_dict()["error"]["message"] == str(exc)
    assert str(TextError("no words")) == "no words"  # no hint: the message as raised


# --- through the real surfaces ----------------------------------------------------------------------
def _foreign_profile(tmp_path: Path) -> Path:
    """A valid site profile, made for a model that is not the fast one."""
    return SiteProfile(name="elsewhere", model="default 0.0.1", model_sha256="", method="shift", a=1.0, b=0.25,
                       groups={}).save(tmp_path / "elsewhere.json")


def test_rate_row_gives_a_non_audio_error_its_code() -> None:
    from accent_rater.rater import Rater, rate_row

    row = rate_row(Rater("fast"), CLIP, str(CLIP), words=True, text="?!")
    assert row["error"]["code"] == TextError.code and "no words" in row["error"]["message"]


def test_cli_stops_with_the_errors_message(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from accent_rater.cli import app

    runner = CliRunner()
    bad_text = runner.invoke(app, ["rate", "--model", "fast", "--words", "--text", "?!", "--json", str(CLIP)])
    assert bad_text.exit_code == 2 and "the text has no words to compare the reading with" in bad_text.output
    assert "Traceback" not in bad_text.output
    profile = _foreign_profile(tmp_path)
    other_model = runner.invoke(app, ["rate", "--model", "fast", "--profile", str(profile), str(CLIP)])
    assert other_model.exit_code == 2 and "calibrated for model default 0.0.1, not fast" in other_model.output
    manifest = tmp_path / "m.csv"
    manifest.write_text("file_name,label\na.flac,native\n")
    no_path = runner.invoke(app, ["batch", str(manifest), "--out", str(tmp_path / "r.jsonl"), "--model", "fast", "--workers", "1"])
    assert no_path.exit_code == 2 and "m.csv has no path column" in no_path.output


def test_api_answers_non_audio_errors_with_their_code(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("python_multipart")
    from fastapi.testclient import TestClient

    from accent_rater.serve.api import create_app

    data = CLIP.read_bytes()
    with TestClient(create_app("fast")) as c:
        r = c.post("/v1/rate", data={"words": "true", "text": "?!"}, files={"file": (CLIP.name, data)})
        assert r.status_code == TextError.http_status
        assert r.json() == error_body(TextError.code, "the text has no words to compare the reading with")
        long_text = c.post("/v1/rate/batch", data={"words": "true", "text": "word " * 2000}, files={"files": ("a.flac", data)})
        assert long_text.status_code == 422 and long_text.json()["error"]["code"] == TextError.code
        r = c.post("/v1/rate/batch", params={"pronunciation": "true"}, files=[("files", ("a.flac", data))])
        assert r.status_code == NoPronunciationError.http_status
        assert r.json()["error"]["code"] == NoPronunciationError.code and "has no pronunciation scores" in r.json()["error"]["message"]
        r = c.post("/v1/rate", files={"other": ("a.flac", data)})
        assert r.status_code == 422 and r.json()["error"]["code"] == "missing_file"  # a RequestError
        assert c.get("/healthz").json()["status"] == "ok"
    with pytest.raises(ProfileError, match="calibrated for model default 0.0.1") as refused:
        create_app("fast", profile=_foreign_profile(tmp_path))
    assert error_of(refused.value)["error"]["code"] == ProfileError.code
    assert json.loads(json.dumps(refused.value.to_dict())) == error_body("bad_profile", str(refused.value))
