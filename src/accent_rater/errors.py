"""Typed errors a user can act on. Every error the package raises for a reason the user can fix
(or must be told about) derives from ``AccentRaterError``: a stable ``code`` (used by the CLI's JSON
and the REST API), an HTTP status for the API and an optional ``hint`` appended to the message.

    AccentRaterError
    +-- AudioError (also a ValueError) and its subclasses below: the recording cannot be rated
    +-- BundleError: a damaged, missing or incompatible model bundle
    +-- RequestError: a REST API request that cannot be served (status and code per instance)
    +-- words.TextError, pronunciation.NoPronunciationError, profile.ProfileError,
        backbones.whisper.WeightsError, serve.batch.BatchInputError (each also keeps its old base)
"""

from __future__ import annotations


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The one JSON shape of an error: the REST API's error body and the CLI's ``--json`` error rows."""
    return {"error": {"code": code, "message": message}}


def error_of(exc: BaseException) -> dict[str, dict[str, str]]:
    """The error body of a recording that could not be rated: an ``AccentRaterError``'s own,
    ``not_found`` for a file that is not there, else ``internal`` (for a batch or a calibration that goes on)."""
    if isinstance(exc, AccentRaterError):
        return exc.to_dict()
    if isinstance(exc, FileNotFoundError):
        return error_body("not_found", str(exc))
    return error_body("internal", f"{type(exc).__name__}: {exc}")


class AccentRaterError(Exception):
    """Base class of the package's user-facing errors. ``str(err)`` is a message meant for the user
    (with the class's ``hint``, if any, after it); ``code`` is stable, ``http_status`` is the REST
    API's status for it and ``headers`` any extra response headers."""

    code: str = "error"
    http_status: int = 500
    hint: str = ""
    headers: dict[str, str] | None = None

    def __str__(self) -> str:
        msg = super().__str__()
        return f"{msg}. {self.hint}" if self.hint else msg

    def to_dict(self) -> dict[str, dict[str, str]]:
        """``{"error": {"code": ..., "message": ...}}`` (see ``error_body``)."""
        return error_body(self.code, str(self))


class BundleError(AccentRaterError, ValueError):
    """A model bundle that is damaged (a file does not match its SHA-256), incomplete, missing or not
    one this version can load. 500 in the API: the server's own bundle is at fault, not the request."""

    code = "bad_bundle"
    http_status = 500


class AudioError(AccentRaterError, ValueError):
    """Base class: the input cannot be rated. Also a ``ValueError`` (as it always was)."""

    code = "audio_error"
    http_status = 422


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


class RequestError(AccentRaterError):
    """A REST API request that cannot be served (malformed body, too many files, busy, timeout...),
    with its HTTP status, a stable code and optional response headers (e.g. ``Retry-After``), set
    per instance."""

    code = "bad_request"
    http_status = 400

    def __init__(self, http_status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.http_status, self.code, self.headers = http_status, code, headers
