"""Typed errors a user can act on. Each has a stable ``code`` (used by the CLI's JSON and the REST
API) and an HTTP status for the API."""

from __future__ import annotations


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The one JSON shape of an error: the REST API's error body and the CLI's ``--json`` error rows."""
    return {"error": {"code": code, "message": message}}


def error_of(exc: Exception) -> dict[str, dict[str, str]]:
    """The error body of a recording that could not be rated: its ``AudioError``'s, ``not_found``
    for a file that is not there, else ``internal`` (for a batch or a calibration that goes on)."""
    if isinstance(exc, AudioError):
        return exc.to_dict()
    if isinstance(exc, ValueError) and isinstance(getattr(exc, "code", None), str):  # e.g. words.TextError
        return error_body(exc.code, str(exc))  # type: ignore[attr-defined]
    if isinstance(exc, FileNotFoundError):
        return error_body("not_found", str(exc))
    return error_body("internal", f"{type(exc).__name__}: {exc}")


class AudioError(ValueError):
    """Base class: the input cannot be rated. ``str(err)`` is a message meant for the user."""

    code = "audio_error"
    http_status = 422
    hint = ""

    def __str__(self) -> str:
        msg = super().__str__()
        return f"{msg}. {self.hint}" if self.hint else msg

    def to_dict(self) -> dict[str, dict[str, str]]:
        """``{"error": {"code": ..., "message": ...}}`` (see ``error_body``)."""
        return error_body(self.code, str(self))


class NotAudioError(AudioError):
    code = "not_audio"
    http_status = 415
    hint = "Supported: WAV, FLAC, MP3, OGG (Vorbis/Opus), WebM/Opus, M4A/AAC"


class CorruptAudioError(AudioError):
    code = "corrupt"
    http_status = 422
    hint = "Re-export or re-record the file"


class EmptyAudioError(AudioError):
    code = "empty"
    http_status = 422


class FileTooLargeError(AudioError):
    code = "too_large"
    http_status = 413


class AudioTooLongError(AudioError):
    code = "too_long"
    http_status = 413
    hint = "Trim the recording or raise the limit (--max-seconds)"


class SilentAudioError(AudioError):
    code = "silent"
    http_status = 422
    hint = "Check that the microphone is connected and not muted"


class TooLittleSpeechError(AudioError):
    code = "too_little_speech"
    http_status = 422
    hint = "Record at least a few sentences; reading the passage takes about 25 s"


class RequestError(Exception):
    """A REST API request that cannot be served (malformed body, too many files, busy, timeout...),
    with its HTTP status, a stable code and optional response headers (e.g. ``Retry-After``)."""

    def __init__(self, http_status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.http_status, self.code, self.headers = http_status, code, headers

    def to_dict(self) -> dict[str, dict[str, str]]:
        return error_body(self.code, str(self))


class BundleError(ValueError):
    """A model bundle that cannot be used: missing, damaged, of another format or front-end."""

    code = "bad_bundle"
    http_status = 500
