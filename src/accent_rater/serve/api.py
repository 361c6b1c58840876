"""REST API (FastAPI): rate recordings over HTTP with the same ``Rater`` every other surface uses.

    accent-rater serve --port 8000
    curl -F file=@speech.webm http://127.0.0.1:8000/v1/rate
    curl --data-binary @speech.webm -H 'Content-Type: audio/webm' http://127.0.0.1:8000/v1/rate
    curl -F files=@a.flac -F files=@b.mp3 http://127.0.0.1:8000/v1/rate/batch

Endpoints: ``POST /v1/rate`` (multipart field ``file`` or a raw audio body), ``POST /v1/rate/batch``
(multipart, several ``files``), ``GET /v1/model`` (model card), ``GET /healthz``.

Design notes:
- The model bundle is loaded once, by ``create_app``, and shared by all requests. Per-request
  ``threshold`` / ``prior`` are applied to a shallow copy, never to the shared ``Rater``.
- Uploads are read into memory within the size limits (``upload.py``) and handed to ``Rater.rate``
  as bytes: nothing is written to disk; the log has one line per request (size and outcome).
- Bounded work (``RatingPool``): at most ``max_concurrent`` ratings run at once, in worker threads
  (the event loop keeps answering ``/healthz``); at most ``max_queue`` more requests wait, one more
  gets 503 ``busy`` with ``Retry-After``; a rating not done ``timeout`` s after it was queued gets
  504 ``timeout``. On shutdown uvicorn lets in-flight requests finish.
- Every error is JSON: ``{"error": {"code": ..., "message": ...}}`` (``errors.error_body``).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..errors import AccentRaterError, RequestError, error_body
from ..rater import AccentResult, Rater
from ..words import MAX_TEXT_CHARS, reading_text, text_words
from .limits import Settings
from .schemas import BATCH_BODY, RATE_BODY, RATE_ERRORS, UNAUTHORIZED, Health, ModelInfo, rating_models
from .upload import Upload, mib, read_file, read_files, too_large_error

log = logging.getLogger("accent_rater.serve.api")

RETRY_AFTER_S = 2  # what a 503 "busy" asks the client to wait
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


class RatingPool:
    """Bounded rating work: ``max_concurrent`` worker threads, at most ``max_queue`` more requests
    admitted to wait, and a timeout per rating (a rating still waiting then never runs; one already
    running finishes in its thread, which stays counted against ``max_concurrent``)."""

    def __init__(self, settings: Settings) -> None:
        self.limit = settings.max_concurrent + settings.max_queue
        self.timeout = settings.timeout
        self.in_flight = 0  # admitted requests (changed only on the event loop)
        self._executor = ThreadPoolExecutor(settings.max_concurrent, thread_name_prefix="rating")

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold a place for one request while it is read and rated, or refuse it (503 ``busy``)."""
        if self.in_flight >= self.limit:
            raise RequestError(503, "busy", f"the server is rating or queueing {self.in_flight} requests; try again in "
                               f"{RETRY_AFTER_S} s", {"Retry-After": str(RETRY_AFTER_S)})
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    async def rate(self, rater: Rater, data: bytes | bytearray, **options: Any) -> AccentResult:
        try:  # on timeout wait_for cancels the wrapper, which cancels the job if it has not started
            return await asyncio.wait_for(asyncio.wrap_future(self._executor.submit(rater.rate, data, **options)), self.timeout)
        except TimeoutError:
            raise RequestError(504, "timeout", f"the rating did not finish within {self.timeout:g} s (server busy or "
                               "recording long); try again later") from None

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


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


# --- errors, access and the request log --------------------------------------------------------------
def _error(request: Request, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    request.state.error_code = body["error"]["code"]  # for the request log line
    if status == 413:  # the rest of a body too large to read through (upload.DRAIN_BYTES) is left unread
        headers = {**(headers or {}), "Connection": "close"}
    return JSONResponse(body, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AccentRaterError)  # RequestError, AudioError, TextError, WeightsError (501), ...
    async def _accent_rater_error(request: Request, exc: AccentRaterError) -> JSONResponse:
        return _error(request, exc.http_status, exc.to_dict(), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body",))
            parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else str(e.get("msg", "invalid")))
        return _error(request, 422, error_body("invalid_request", "; ".join(parts) or "invalid request"))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = error_body(_HTTP_CODES.get(exc.status_code, "http_error"), str(exc.detail))
        return _error(request, exc.status_code, body, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(request, 500, error_body("internal", f"internal error ({type(exc).__name__})"))


class _RequireKey:
    """Every route but ``/healthz`` answers 401 without the key (``X-API-Key`` or ``Authorization: Bearer``)."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app, self.key = app, key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] != "/healthz":
            headers = Headers(scope=scope)
            bearer = headers.get("authorization", "")
            sent = headers.get("x-api-key") or (bearer[7:] if bearer[:7].lower() == "bearer " else "")
            if not secrets.compare_digest(sent.encode(), self.key):
                body = error_body("unauthorized", "this server needs an API key: send it as X-API-Key or Authorization: Bearer")
                await JSONResponse(body, 401, {"WWW-Authenticate": "Bearer"})(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _RequestLog:
    """One log line per request: method, path, bytes received, status (and error code), seconds.
    Never the content or the file name."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0, received, status = time.perf_counter(), 0, 500

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

        async def status_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, counting_receive, status_send)
        finally:
            code = scope.get("state", {}).get("error_code", "")
            log.info("%s %r %d bytes -> %d%s in %.2f s", scope["method"], scope["path"], received, status,
                     f" {code}" if code else "", time.perf_counter() - t0)


_THRESHOLD = Query(None, gt=0.0, lt=1.0, description="Decision threshold on p_native (default: the model's)")
_PRIOR = Query(
    None, gt=0.0, lt=1.0, description="Share of native speakers where you deploy; shifts p_native by Bayes' rule (default: the training prior)"
)

_WORDS = Query(False, description="Word feedback on the text read (also a multipart field `words`): `words`, "
               "`transcript` and `reading` in the result; 501 `words_unavailable` when the server has no Whisper base weights")
_TEXT = Query(None, max_length=MAX_TEXT_CHARS, description="The text that was read (also a multipart field `text`, "
              "which wins); default: the Stella passage; empty: free speech (a transcript only)")


_PRONUNCIATION = Query(False, description="Pronunciation scores (also a multipart field `pronunciation`): "
                       "`pronunciation` (accuracy, fluency, prosody, total, 0-100) and word feedback with each word's "
                       "`accuracy`, against `text`; speech too short for the accent (under 3 s) gets them without "
                       "the accent fields (see `parts`)")
_YES = ("true", "1", "yes", "on")


def word_options(words: bool, text: str | None, form: dict[str, str], pronunciation: bool = False) -> dict[str, Any]:
    """``Rater.rate``'s word-feedback and pronunciation options from the query and the multipart
    fields (a field wins); an unusable text is a 422 ``bad_text`` before any rating."""
    words = form.get("words", str(words)).strip().lower() in _YES
    pronunciation = form.get("pronunciation", str(pronunciation)).strip().lower() in _YES
    if not (words or pronunciation):
        return {}
    text = reading_text(form.get("text", text))
    if text:
        text_words(text)  # TextError: a 422 through its handler
    return {"words": True, "text": text, **({"pronunciation": True} if pronunciation else {})}


# --- the app -----------------------------------------------------------------------------------------
def create_app(model: str | Path | None = None, settings: Settings = Settings(), profile: str | Path | None = None) -> FastAPI:
    """Load the model bundle (default: the bundled model), with a site ``profile`` if given, and
    build the API around it."""
    s = settings
    rater = Rater(model, max_seconds=s.max_seconds, max_bytes=s.max_bytes, threads=1, profile=profile)  # ratings run in parallel threads
    app = FastAPI(
        title="Accent Rater",
        version=__version__,
        summary="How native does an English accent sound? Offline, on the CPU.",
        description=_description(s),
        lifespan=_lifespan(rater, s),
    )
    app.state.rater, app.state.settings = rater, s
    _install_error_handlers(app)
    _install_middleware(app, s)
    auth = UNAUTHORIZED if s.api_key else {}
    rate_result, batch_response = rating_models(rater.l1_languages)
    _add_rate_route(app, rater, s, rate_result, auth)
    _add_batch_route(app, rater, s, batch_response, auth)
    _add_model_routes(app, rater, auth)
    return app


def _description(s: Settings) -> str:
    """The OpenAPI description: what the score means, and this server's limits."""
    return (
        "Rates how native the accent in a recording of English speech sounds: `p_native` is a calibrated "
        "probability, `score` = round(100 x p_native). It rates accent only, not intelligibility, fluency or "
        f"proficiency. Limits: {mib(s.max_bytes)} per file, {s.max_seconds / 60:g} min per recording, "
        f"{s.max_batch} files per batch; {s.max_concurrent} ratings at once, {s.max_queue} more requests wait "
        f"(then 503 with Retry-After), {s.timeout:g} s per rating (then 504). "
        "Errors are JSON: `{\"error\": {\"code\", \"message\"}}`."
    )


def _lifespan(rater: Rater, s: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: its ``RatingPool`` made on startup (with a log line saying what is served), shut down on exit."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = RatingPool(s)
        log.info("model %s%s from %s; %d ratings at once, %d waiting, %g s timeout%s", rater.name,
                 f", site profile {rater.profile.name}" if rater.profile else "", rater.model_dir,
                 s.max_concurrent, s.max_queue, s.timeout, ", API key required" if s.api_key else "")
        yield
        app.state.pool.shutdown()

    return lifespan


def _install_middleware(app: FastAPI, s: Settings) -> None:
    """The API key check (when one is set), the request log and, outermost, CORS (when origins are given)."""
    if s.api_key:
        app.add_middleware(_RequireKey, key=s.api_key)
    app.add_middleware(_RequestLog)
    if s.cors_origins:  # outermost: preflights and error responses carry the CORS headers
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=list(s.cors_origins), allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Content-Disposition", "Authorization", "X-API-Key"], expose_headers=["Retry-After"],
        )


def _add_rate_route(app: FastAPI, rater: Rater, s: Settings, rate_result: Any, auth: dict[Any, Any]) -> None:
    """``POST /v1/rate``: one recording."""

    @app.post(
        "/v1/rate",
        response_model=rate_result,
        response_model_exclude_none=True,
        responses={**RATE_ERRORS, **auth},
        openapi_extra=RATE_BODY,
        summary="Rate one recording",
        tags=["rating"],
    )
    async def rate(request: Request, threshold: float | None = _THRESHOLD, prior: float | None = _PRIOR,
                   words: bool = _WORDS, text: str | None = _TEXT,
                   pronunciation: bool = _PRONUNCIATION) -> dict[str, Any]:
        """Rate how native the accent in one recording sounds. Send the file as multipart field `file`, or as
        the raw request body (a `Content-Disposition: attachment; filename=...` header names it). With
        `words=true`, also which words of the text read were heard as written; with `pronunciation=true`,
        pronunciation scores."""
        pool: RatingPool = request.app.state.pool
        with pool.admit():
            upload = await read_file(request, s.max_bytes)
            options = word_options(words, text, upload.form, pronunciation)
            result = (await pool.rate(rater_view(rater, threshold, prior), upload.data, **options)).to_dict()
        return {"filename": upload.filename, **result} if upload.filename else result


def _add_batch_route(app: FastAPI, rater: Rater, s: Settings, batch_response: Any, auth: dict[Any, Any]) -> None:
    """``POST /v1/rate/batch``: several recordings, an error entry for each one that cannot be rated."""

    @app.post(
        "/v1/rate/batch",
        response_model=batch_response,
        responses={**RATE_ERRORS, **auth},
        openapi_extra=BATCH_BODY,
        summary="Rate several recordings",
        tags=["rating"],
    )
    async def rate_batch(request: Request, threshold: float | None = _THRESHOLD, prior: float | None = _PRIOR,
                         words: bool = _WORDS, text: str | None = _TEXT,
                         pronunciation: bool = _PRONUNCIATION) -> dict[str, Any]:
        """Rate up to `max_batch` recordings sent as repeated multipart field `files`. Each file gets either
        a result or an `error` entry: one bad file never fails the batch. `words` / `text` / `pronunciation` as
        for one file."""
        pool: RatingPool = request.app.state.pool
        view = rater_view(rater, threshold, prior)

        async def one(upload: Upload, options: dict[str, Any]) -> dict[str, Any]:
            try:
                if upload.too_large:
                    raise too_large_error(s.max_bytes, upload.size)
                return {"filename": upload.filename, **(await pool.rate(view, upload.data, **options)).to_dict()}
            except AccentRaterError as exc:  # AudioError, RequestError (too large, timeout), WeightsError...
                return {"filename": upload.filename, **exc.to_dict()}
            except Exception as exc:  # a bad file never fails the batch
                log.exception("rating a batch file failed")
                return {"filename": upload.filename, **error_body("internal", f"internal error ({type(exc).__name__})")}
            finally:
                upload.data = bytearray()

        with pool.admit():
            uploads = await read_files(request, s.max_bytes, s.max_batch)
            options = word_options(words, text, uploads[0].form, pronunciation)
            if options.get("pronunciation"):
                view.pronunciation_head  # noqa: B018 - NoPronunciationError: one 501, not one per file
            return {"results": list(await asyncio.gather(*(one(u, options) for u in uploads)))}


def _add_model_routes(app: FastAPI, rater: Rater, auth: dict[Any, Any]) -> None:
    """``GET /v1/model`` (the model card) and ``GET /healthz``."""

    @app.get("/v1/model", response_model=ModelInfo, responses=auth, summary="The model card", tags=["model"])
    async def model_info() -> dict[str, Any]:
        """Name, version, default threshold, calibration, ensemble members, front-end settings and the model
        card (Markdown) of the loaded model bundle."""
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
    async def healthz() -> dict[str, Any]:
        """`{"status": "ok"}` once the model is loaded; answers while ratings run (and without an API key)."""
        return {"status": "ok", "model": rater.name}


def serve(host: str = "127.0.0.1", port: int = 8000, model: str | Path | None = None, settings: Settings = Settings(),
          profile: str | Path | None = None) -> None:
    """Serve the API with uvicorn (one process; ratings run in its worker threads). On SIGTERM or
    Ctrl-C, in-flight requests get up to ``settings.timeout`` s to finish."""
    import uvicorn

    app = create_app(model, settings, profile)
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)  # uvicorn's format, plus our own logger
    log_config["loggers"]["accent_rater"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    uvicorn.run(app, host=host, port=port, log_config=log_config, access_log=False,
                timeout_graceful_shutdown=max(1, round(settings.timeout)))
