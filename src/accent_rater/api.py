"""REST API (FastAPI): rate recordings over HTTP with the same ``Rater`` every other surface uses.

    accent-rater serve --port 8000
    curl -F file=@speech.webm http://127.0.0.1:8000/v1/rate
    curl --data-binary @speech.webm -H 'Content-Type: audio/webm' http://127.0.0.1:8000/v1/rate
    curl -F files=@a.flac -F files=@b.mp3 http://127.0.0.1:8000/v1/rate/batch

Endpoints: ``POST /v1/rate`` (multipart field ``file`` or a raw audio body), ``POST /v1/rate/batch``
(multipart, several ``files``), ``GET /v1/model`` (model card), ``GET /healthz``.

Design notes:
- The model bundle is loaded once, at startup (lifespan), and shared by all requests. Per-request
  ``threshold`` / ``prior`` are applied to a shallow copy, never to the shared ``Rater``.
- Uploads are kept in memory and handed to ``Rater.rate`` as bytes: no temporary files. Multipart
  bodies are parsed here (streaming, with python-multipart) rather than by Starlette, whose
  form parser spools files over 1 MiB to disk.
- Size limits are enforced before reading (``Content-Length``) and while reading (chunked
  bodies stop at the limit), so an oversize upload is refused without being buffered.
- Rating runs in worker threads (at most ``RATING_CONCURRENCY`` at once), so the event loop keeps
  answering (``/healthz`` stays responsive while recordings are rated).
- Every error is JSON: ``{"error": {"code": ..., "message": ...}}``; the codes are those of
  ``accent_rater.errors`` plus a few request-level ones (``missing_file``, ``too_many_files``,
  ``invalid_multipart``, ``invalid_request``, ``not_found``, ``internal``...).
"""

from __future__ import annotations

import copy
import logging
import os
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Literal, Optional, Union

import anyio
import anyio.to_thread
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__, audio
from .errors import AudioError, EmptyAudioError, FileTooLargeError
from .rater import L1_UNSURE_BELOW, Rater

# onnxruntime >= 1.2x on Linux starts 1DS telemetry when it is first imported (it writes $TMPDIR/.ses
# and a device id under ~/.cache, and queues events for upload). An offline service opts out; this
# must happen before onnxruntime is imported (accent_rater imports it lazily, so it has not been).
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

log = logging.getLogger("accent_rater.api")

RATING_CONCURRENCY = 2  # ratings running at once (the rest queue); matches a small CPU box
MULTIPART_OVERHEAD = 64 * 1024  # allowance for boundaries, part headers and small form fields
MAX_FIELD_BYTES = 64 * 1024  # non-file form fields larger than this are refused
_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    500: "internal",
    503: "unavailable",
}


# --- response models (OpenAPI) ---------------------------------------------------------------------
class Segment(BaseModel):
    start_s: float = Field(description="Window start, in seconds of the original recording")
    end_s: float = Field(description="Window end, in seconds of the original recording")
    p_native: float = Field(description="Calibrated P(native-sounding) for this window")


# The default model's first-language classes (besides English); the OpenAPI document lists those of
# the model actually loaded (``_l1_known``), this is only the fallback before a model is loaded.
DEFAULT_L1_LANGUAGES = ("arabic", "dutch", "french", "korean", "mandarin", "portuguese", "russian", "spanish")
L1_DESCRIPTION = (
    "First-language guess: up to 3 languages with their probability, most likely first. A guess about the "
    "accent, never about a person. {known} Empty when the speech is rated native or the model has no "
    "first-language guess."
)
L1_GUESS_DESCRIPTION = (
    "The most likely first language of the accent, or \"unsure\" when its probability is below "
    f"{L1_UNSURE_BELOW}; \"\" when `l1` is empty. A guess about the accent, never about a person. {{known}}"
)


def _l1_known(languages: Any) -> str:
    if not languages:
        return "The loaded model has no first-language guess, so this is always empty."
    return f"Knows: {', '.join(languages)}; other first languages map to the nearest one or to \"unsure\"."


class L1Guess(BaseModel):
    language: str = Field(description="A first language the model knows (lower case English name)")
    p: float = Field(description="P(this first language | the accent is not native-sounding), 0..1")


class RateResult(BaseModel):
    """How native the accent in one recording sounds (``AccentResult.to_dict()``)."""

    filename: Optional[str] = Field(None, description="Name of the uploaded file, when the client sent one")
    p_native: float = Field(description="Calibrated probability that the accent sounds native (0..1)")
    label: Literal["native", "non_native"] = Field(description="p_native >= threshold ? native : non_native")
    score: int = Field(description="round(100 * p_native)")
    band: str = Field(description="native-like | light accent | noticeable accent | strong accent")
    borderline: bool = Field(description="p_native is within 0.10 of the threshold")
    threshold: float = Field(description="Decision threshold applied to p_native")
    speech_seconds: float = Field(description="Seconds of speech found by voice-activity detection")
    duration_seconds: float = Field(description="Length of the recording in seconds")
    segments: list[Segment] = Field(description="Per-window ratings in seconds of the original recording")
    model: str = Field(description="Model name and version")
    warnings: list[str] = Field(
        default_factory=list,
        description="Notes on the input that make the rating less reliable (little speech, clipping, low level, "
        "narrowband, or a recording unlike the training recordings)",
    )
    l1: list[L1Guess] = Field(default_factory=list, description=L1_DESCRIPTION.format(known=_l1_known(DEFAULT_L1_LANGUAGES)))
    l1_guess: str = Field("", description=L1_GUESS_DESCRIPTION.format(known=_l1_known(DEFAULT_L1_LANGUAGES)))


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. not_audio, too_large, silent")
    message: str = Field(description="What went wrong, for a person")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class BatchError(BaseModel):
    filename: Optional[str] = None
    error: ErrorDetail


class BatchResponse(BaseModel):
    results: list[Union[RateResult, BatchError]] = Field(description="One entry per uploaded file, in upload order")


class ModelInfo(BaseModel):
    name: str
    version: str
    threshold: float = Field(description="Default decision threshold on p_native")
    calibration: dict[str, float] = Field(description="Platt scaling parameters and the training prior")
    members: list[dict[str, Any]] = Field(description="Ensemble members (model families and their parameters)")
    frontend: dict[str, Any] = Field(description="Audio front-end settings the model was trained with")
    card_markdown: str = Field(description="The model card (Markdown); empty if the bundle has none")
    l1_languages: list[str] = Field(
        description="Languages the first-language guess knows (other first languages map to the nearest one or to "
        "\"unsure\"); empty when the model has no first-language guess"
    )


class Health(BaseModel):
    status: Literal["ok"]
    model: str


_ERRORS = {
    413: {"model": ErrorResponse, "description": "Upload too large, recording too long, or too many files"},
    415: {"model": ErrorResponse, "description": "Not a supported audio file"},
    422: {"model": ErrorResponse, "description": "Unusable audio (empty, corrupt, silent, too little speech) or invalid request"},
}

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_RATE_BODY = {
    "requestBody": {
        "required": True,
        "description": "Either multipart/form-data with the recording in the field `file`, or the raw audio bytes "
        "as the body (any audio/* or video/webm type, or application/octet-stream). Supported: WAV, FLAC, MP3, "
        "OGG (Vorbis/Opus), WebM/Opus, M4A/AAC.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
            "application/octet-stream": _BINARY,
            "audio/*": _BINARY,
        },
    }
}
_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "description": "multipart/form-data with one or more recordings in the repeated field `files`.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                    "required": ["files"],
                }
            }
        },
    }
}


# --- errors ------------------------------------------------------------------------------------------
class ApiError(Exception):
    """A request-level error with a stable code (rendered as the JSON error body)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        # An early 413 leaves the body unread: tell the client the connection will not be reused.
        headers = {"Connection": "close"} if exc.status == 413 else None
        return _error(exc.status, exc.code, exc.message, headers)

    @app.exception_handler(AudioError)
    async def _audio_error(request: Request, exc: AudioError) -> JSONResponse:
        return _error(exc.http_status, exc.code, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body",))
            parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else str(e.get("msg", "invalid")))
        return _error(422, "invalid_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, "internal", f"internal error ({type(exc).__name__})")


# --- reading request bodies ------------------------------------------------------------------------
def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    try:
        n = int(value)
    except ValueError:
        raise ApiError(400, "bad_request", f"invalid Content-Length header: {value!r}") from None
    if n < 0:
        raise ApiError(400, "bad_request", f"invalid Content-Length header: {value!r}")
    return n


def _too_large(size: str, limit: int) -> ApiError:
    return ApiError(413, FileTooLargeError.code, f"the upload ({size}) exceeds the {_mib(limit)} limit")


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


def _check_declared_size(request: Request, limit: int) -> None:
    """Refuse before reading anything when the declared body is over ``limit``."""
    declared = _content_length(request)
    if declared is not None and declared > limit:
        raise _too_large(_mib(declared), limit)


async def _read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) as soon as it passes ``limit`` bytes."""
    _check_declared_size(request, limit)
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise _too_large(f"more than {_mib(limit)}", limit)
    return bytes(buf)


class _Part:
    __slots__ = ("name", "filename", "data", "size", "oversize", "content_type")

    def __init__(self) -> None:
        self.name: str | None = None
        self.filename: str | None = None
        self.content_type: str | None = None
        self.data = bytearray()
        self.size = 0
        self.oversize = False


async def _read_multipart(
    request: Request,
    *,
    fields: tuple[str, ...],
    max_part_bytes: int,
    max_total_bytes: int,
    max_parts: int,
    on_oversize_part: Literal["raise", "mark"],
) -> list[_Part]:
    """Stream-parse a multipart body into memory, keeping only the parts named in ``fields``.

    A kept part larger than ``max_part_bytes`` either stops the request (413) or is marked
    ``oversize`` and its data dropped; more than ``max_parts`` kept parts is a 413. Other fields
    are read and discarded (files) or must be small (plain fields)."""
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header

    _check_declared_size(request, max_total_bytes)
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError(400, "invalid_multipart", "multipart/form-data without a boundary")

    parts: list[_Part] = []
    state: dict[str, Any] = {"part": None, "hname": b"", "hvalue": b"", "headers": {}}

    def on_part_begin() -> None:
        state["part"], state["headers"] = _Part(), {}

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["hname"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["hvalue"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["hname"].lower()] = state["hvalue"]
        state["hname"], state["hvalue"] = b"", b""

    def on_headers_finished() -> None:
        part: _Part = state["part"]
        _, opts = parse_options_header(state["headers"].get(b"content-disposition", b""))
        if b"name" not in opts:
            raise ApiError(400, "invalid_multipart", 'a multipart part has no Content-Disposition "name"')
        part.name = opts[b"name"].decode("utf-8", "replace")
        if b"filename" in opts:
            part.filename = opts[b"filename"].decode("utf-8", "replace")
        ctype = state["headers"].get(b"content-type")
        part.content_type = ctype.decode("latin-1") if ctype else None
        if part.name in fields:
            parts.append(part)
            if len(parts) > max_parts:
                if max_parts == 1:
                    raise ApiError(422, "too_many_files", "send one 'file' per request; use /v1/rate/batch for several")
                raise ApiError(413, "too_many_files", f"more than {max_parts} files in one request")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part: _Part = state["part"]
        n = end - start
        part.size += n
        if part.name in fields:
            if part.oversize:
                return
            if part.size > max_part_bytes:
                if on_oversize_part == "raise":
                    raise _too_large(f"more than {_mib(max_part_bytes)}", max_part_bytes)
                part.oversize, part.data = True, bytearray()
                return
            part.data += data[start:end]
        elif part.filename is None and part.size > MAX_FIELD_BYTES:
            raise ApiError(413, "too_large", f"form field {part.name!r} exceeds {_mib(MAX_FIELD_BYTES)}")
        # other parts: discarded

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
        },
    )
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_total_bytes:
                raise _too_large(f"more than {_mib(max_total_bytes)}", max_total_bytes)
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise ApiError(400, "invalid_multipart", f"malformed multipart body ({exc})") from None
    return parts


def _is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().lstrip().startswith("multipart/form-data")


def _raw_filename(request: Request) -> str | None:
    from python_multipart.multipart import parse_options_header

    cd = request.headers.get("content-disposition")
    if not cd:
        return None
    _, opts = parse_options_header(cd)
    name = opts.get(b"filename")
    return name.decode("utf-8", "replace") if name else None


# --- rating ------------------------------------------------------------------------------------------
def rater_view(rater: Rater, threshold: float | None = None, prior: float | None = None) -> Rater:
    """The shared ``Rater`` with a per-request threshold and/or prior, without mutating it.

    ``Rater`` keeps its decision settings in two plain attributes (``threshold``, ``prior``) read by
    ``rate_features``; everything else (loaded members, encoder session, calibrator, metadata) is
    shared read-only, so a shallow copy is a cheap, thread-safe per-request view."""
    if threshold is None and prior is None:
        return rater
    view = copy.copy(rater)
    if threshold is not None:
        view.threshold = float(threshold)
    if prior is not None:
        view.prior = float(prior)
    return view


async def _rate(request: Request, data: bytes, view: Rater) -> dict[str, Any]:
    if not data:
        raise EmptyAudioError("the upload is empty (0 bytes)")
    result = await anyio.to_thread.run_sync(view.rate, data, limiter=request.app.state.limiter)
    return result.to_dict()


_THRESHOLD = Query(None, gt=0.0, lt=1.0, description="Decision threshold on p_native (default: the model's)")
_PRIOR = Query(
    None, gt=0.0, lt=1.0, description="Share of native speakers where you deploy; shifts p_native by Bayes' rule (default: the training prior)"
)


# --- the app -----------------------------------------------------------------------------------------
def _document_loaded_l1(app: FastAPI) -> None:
    """The OpenAPI document names the first languages of the model loaded at startup (the static
    schema names the default model's, which is all that can be said before a model is loaded)."""
    static_openapi = app.openapi  # FastAPI's: builds the schema once and caches it in app.openapi_schema

    def openapi() -> dict[str, Any]:
        rater = getattr(app.state, "rater", None)
        if rater is None:  # not started yet: the static schema, left uncached
            app.openapi_schema = None
            schema = static_openapi()
            app.openapi_schema = None
            return schema
        if getattr(app.state, "openapi_for", None) is not rater:
            app.openapi_schema = None
            schema = static_openapi()
            props = schema["components"]["schemas"]["RateResult"]["properties"]
            known = _l1_known(rater.l1_languages)
            props["l1"]["description"] = L1_DESCRIPTION.format(known=known)
            props["l1_guess"]["description"] = L1_GUESS_DESCRIPTION.format(known=known)
            app.state.openapi_for = rater
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    model: str | Path | None = None,
    *,
    max_bytes: int = audio.MAX_FILE_BYTES,
    max_seconds: float = audio.MAX_DURATION_SECONDS,
    max_batch: int = 16,
) -> FastAPI:
    """Build the API. The model bundle (default: the bundled model) is loaded once, at startup."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        t0 = time.perf_counter()
        rater = await anyio.to_thread.run_sync(
            lambda: Rater(model, max_seconds=max_seconds, max_bytes=max_bytes, threads=1)  # 2 requests run at once
        )
        app.state.rater = rater
        app.state.limiter = anyio.CapacityLimiter(RATING_CONCURRENCY)
        log.info("loaded model %s from %s in %.1f s", rater.name, rater.model_dir, time.perf_counter() - t0)
        yield

    app = FastAPI(
        title="Accent Rater",
        version=__version__,
        summary="How native does an English accent sound? Offline, on the CPU.",
        description=(
            "Rates how native the accent in a recording of English speech sounds: `p_native` is a calibrated "
            "probability, `score` = round(100 x p_native). It rates accent only, not intelligibility, fluency or "
            f"proficiency. Limits: {_mib(max_bytes)} per file, {max_seconds / 60:.0f} min per recording, "
            f"{max_batch} files per batch. Errors are JSON: `{{\"error\": {{\"code\", \"message\"}}}}`."
        ),
        lifespan=lifespan,
    )
    app.state.max_bytes, app.state.max_seconds, app.state.max_batch = max_bytes, max_seconds, max_batch
    _install_error_handlers(app)
    _document_loaded_l1(app)

    @app.post(
        "/v1/rate",
        response_model=RateResult,
        response_model_exclude_none=True,
        responses={**_ERRORS, 400: {"model": ErrorResponse, "description": "Malformed multipart body"}},
        openapi_extra=_RATE_BODY,
        summary="Rate one recording",
        tags=["rating"],
    )
    async def rate(request: Request, threshold: Optional[float] = _THRESHOLD, prior: Optional[float] = _PRIOR) -> dict[str, Any]:
        """Rate how native the accent in one recording sounds. Send the file as multipart field `file`, or as
        the raw request body (a `Content-Disposition: attachment; filename=...` header names it)."""
        view = rater_view(request.app.state.rater, threshold, prior)
        if _is_multipart(request):
            parts = await _read_multipart(
                request,
                fields=("file",),
                max_part_bytes=max_bytes,
                max_total_bytes=max_bytes + MULTIPART_OVERHEAD,
                max_parts=1,
                on_oversize_part="raise",
            )
            if not parts:
                raise ApiError(422, "missing_file", "multipart body has no field named 'file'")
            data, filename = bytes(parts[0].data), parts[0].filename
        else:
            data, filename = await _read_body(request, max_bytes), _raw_filename(request)
        result = await _rate(request, data, view)
        return {"filename": filename, **result} if filename else result

    @app.post(
        "/v1/rate/batch",
        response_model=BatchResponse,
        responses={
            413: {"model": ErrorResponse, "description": "Too many files, or the request as a whole is too large"},
            415: {"model": ErrorResponse, "description": "The body is not multipart/form-data"},
            422: {"model": ErrorResponse, "description": "No files, or invalid query parameters"},
        },
        openapi_extra=_BATCH_BODY,
        summary="Rate several recordings",
        tags=["rating"],
    )
    async def rate_batch(request: Request, threshold: Optional[float] = _THRESHOLD, prior: Optional[float] = _PRIOR) -> dict[str, Any]:
        """Rate up to `max_batch` recordings sent as repeated multipart field `files`. Each file gets either
        a result or an `error` entry: one bad file never fails the batch."""
        if not _is_multipart(request):
            raise ApiError(415, "unsupported_media_type", "send the files as multipart/form-data (field 'files')")
        view = rater_view(request.app.state.rater, threshold, prior)
        parts = await _read_multipart(
            request,
            fields=("files", "file"),
            max_part_bytes=max_bytes,
            max_total_bytes=max_batch * max_bytes + MULTIPART_OVERHEAD,
            max_parts=max_batch,
            on_oversize_part="mark",
        )
        if not parts:
            raise ApiError(422, "missing_file", "multipart body has no field named 'files'")
        results: list[dict[str, Any] | None] = [None] * len(parts)

        async def one(i: int, part: _Part) -> None:
            try:
                if part.oversize:
                    raise FileTooLargeError(f"{_mib(part.size)} exceeds the {_mib(max_bytes)} limit")
                results[i] = {"filename": part.filename, **(await _rate(request, bytes(part.data), view))}
            except AudioError as exc:
                results[i] = {"filename": part.filename, "error": {"code": exc.code, "message": str(exc)}}
            except Exception as exc:  # a bad file never fails the batch
                log.exception("rating %s failed", part.filename)
                results[i] = {"filename": part.filename, "error": {"code": "internal", "message": f"internal error ({type(exc).__name__})"}}
            finally:
                part.data = bytearray()

        async with anyio.create_task_group() as tg:
            for i, part in enumerate(parts):
                tg.start_soon(one, i, part)
        return {"results": results}

    @app.get("/v1/model", response_model=ModelInfo, summary="The model card", tags=["model"])
    async def model_info(request: Request) -> dict[str, Any]:
        """Name, version, default threshold, calibration, ensemble members, front-end settings and the model
        card (Markdown) of the loaded model bundle."""
        rater: Rater = request.app.state.rater
        meta = rater.meta
        return {
            "name": meta["name"],
            "version": meta["version"],
            "threshold": rater.threshold,
            "calibration": meta["calibration"],
            "members": meta["members"],
            "frontend": meta.get("frontend", {}),
            "card_markdown": rater.card,
            "l1_languages": rater.l1_languages,
        }

    @app.get("/healthz", response_model=Health, summary="Liveness", tags=["service"])
    async def healthz(request: Request) -> dict[str, Any]:
        """`{"status": "ok"}` once the model is loaded; answers while ratings run."""
        return {"status": "ok", "model": request.app.state.rater.name}

    return app


def main(
    host: str = "127.0.0.1",
    port: int = 8000,
    model: str | Path | None = None,
    *,
    max_bytes: int = audio.MAX_FILE_BYTES,
    max_seconds: float = audio.MAX_DURATION_SECONDS,
    max_batch: int = 16,
) -> None:
    """Serve the API with uvicorn (one worker process; ratings run in its thread pool)."""
    import torch
    import uvicorn

    # Ratings run in parallel threads; torch's own intra-op pool on top of them oversubscribes the
    # CPU and makes every request far slower.
    torch.set_num_threads(1)
    app = create_app(model, max_bytes=max_bytes, max_seconds=max_seconds, max_batch=max_batch)
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)  # uvicorn's format, plus our own logger
    log_config["loggers"]["accent_rater"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    uvicorn.run(app, host=host, port=port, workers=1, log_level="info", log_config=log_config)


if __name__ == "__main__":  # python -m accent_rater.api --port 8000
    import argparse

    ap = argparse.ArgumentParser(description="Accent Rater REST API")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--model", default=None, help="bundled model name (default, fast) or a model bundle directory (default: default)")
    ap.add_argument("--max-bytes", type=int, default=audio.MAX_FILE_BYTES)
    ap.add_argument("--max-seconds", type=float, default=audio.MAX_DURATION_SECONDS)
    ap.add_argument("--max-batch", type=int, default=16)
    a = ap.parse_args()
    main(a.host, a.port, a.model, max_bytes=a.max_bytes, max_seconds=a.max_seconds, max_batch=a.max_batch)
