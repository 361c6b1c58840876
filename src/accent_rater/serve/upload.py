"""Reading uploads out of HTTP requests, into memory and within size limits: no temporary files.

Multipart bodies are parsed here (streaming, with python-multipart) rather than by Starlette, whose
form parser spools files over 1 MiB to disk. Limits are enforced before reading (``Content-Length``)
and while reading (a chunked body stops at the limit), so an oversize upload is never buffered.
A request refused part-way is read through (discarded, within ``DRAIN_BYTES`` and ``DRAIN_SECONDS``)
before the error goes out: closing a connection with unread data resets it, and the client would
see a dropped connection instead of its 413.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from ..errors import AudioError, FileTooLargeError, RequestError

MULTIPART_OVERHEAD = 64 * 1024  # allowance for boundaries, part headers and small form fields
MAX_FIELD_BYTES = 64 * 1024  # non-file form fields larger than this are refused
DRAIN_BYTES = 64 * 2**20  # at most this much of a refused body is read through; larger ones are cut off
DRAIN_SECONDS = 10.0


@dataclass
class Upload:
    """One uploaded file. ``too_large``: it passed the limit, so its data was dropped (batch only)."""

    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)
    size: int = 0
    too_large: bool = False
    form: dict[str, str] = field(default_factory=dict)  # the request's small text fields (multipart), e.g. "text"


def mib(n: float) -> str:
    """A byte count for people: "1.5 MiB", "88 KiB"."""
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


def too_large_error(limit: int, size: int | None = None) -> FileTooLargeError:
    """413 ``too_large``; ``size`` when it is known (declared, or a whole batch part)."""
    return FileTooLargeError(f"the upload {f'({mib(size)}) ' if size else ''}exceeds the {mib(limit)} limit")


async def read_file(request: Request, max_bytes: int) -> Upload:
    """The one recording of a request: multipart field ``file``, or else the raw body (named by a
    ``Content-Disposition: attachment; filename=...`` header)."""
    stream = request.stream()
    try:
        if not _is_multipart(request):
            return Upload(_raw_filename(request), await _read_body(request, stream, max_bytes))
        parts = await _read_multipart(
            request, stream, fields=("file",), max_part_bytes=max_bytes, max_total_bytes=max_bytes + MULTIPART_OVERHEAD,
            max_parts=1, keep_oversize=False,
        )
    except (AudioError, RequestError):
        await _drain(request, stream)
        raise
    if not parts:
        raise RequestError(422, "missing_file", "multipart body has no field named 'file'")
    return parts[0]


async def read_files(request: Request, max_bytes: int, max_files: int) -> list[Upload]:
    """The recordings of a multipart batch (repeated field ``files``). A file over ``max_bytes`` is
    kept with ``too_large`` set (one bad file never fails the batch); the request as a whole is
    limited to ``max_files`` files of ``max_bytes``."""
    stream = request.stream()
    try:
        if not _is_multipart(request):
            raise RequestError(415, "unsupported_media_type", "send the files as multipart/form-data (field 'files')")
        parts = await _read_multipart(
            request, stream, fields=("files", "file"), max_part_bytes=max_bytes,
            max_total_bytes=max_files * max_bytes + MULTIPART_OVERHEAD, max_parts=max_files, keep_oversize=True,
        )
    except (AudioError, RequestError):
        await _drain(request, stream)
        raise
    if not parts:
        raise RequestError(422, "missing_file", "multipart body has no field named 'files'")
    return parts


async def _drain(request: Request, stream: AsyncIterator[bytes]) -> None:
    """Read the rest of a refused body and drop it (not when it is declared larger than DRAIN_BYTES)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > DRAIN_BYTES:
        return
    drained = 0
    with anyio.move_on_after(DRAIN_SECONDS):
        async for chunk in stream:
            drained += len(chunk)
            if drained > DRAIN_BYTES:
                return


def _declared_size(request: Request, limit: int) -> None:
    """Refuse before reading anything when the declared body is over ``limit``."""
    value = request.headers.get("content-length")
    if value is None:
        return
    if not value.isdigit():
        raise RequestError(400, "bad_request", f"invalid Content-Length header: {value!r}")
    if int(value) > limit:
        raise too_large_error(limit, int(value))


async def _read_body(request: Request, stream: AsyncIterator[bytes], limit: int) -> bytearray:
    """The whole body, refusing (413) as soon as it passes ``limit`` bytes."""
    _declared_size(request, limit)
    buf = bytearray()
    async for chunk in stream:
        buf += chunk
        if len(buf) > limit:
            raise too_large_error(limit)
    return buf


async def _read_multipart(
    request: Request, stream: AsyncIterator[bytes], *, fields: tuple[str, ...], max_part_bytes: int, max_total_bytes: int, max_parts: int,
    keep_oversize: bool,
) -> list[Upload]:
    """Stream-parse a multipart body, keeping only the parts named in ``fields``.

    A kept part over ``max_part_bytes`` either stops the request (413) or, with ``keep_oversize``,
    is marked ``too_large`` and its data dropped; more than ``max_parts`` kept parts is refused.
    Other parts are read and discarded (files) or must be small (plain fields)."""
    _declared_size(request, max_total_bytes)
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise RequestError(400, "invalid_multipart", "multipart/form-data without a boundary")

    parts: list[Upload] = []
    plain: dict[str, bytes] = {}  # text fields, kept for every part's ``form``
    state: dict[str, Any] = {"part": None, "name": "", "kept": False, "hname": b"", "hvalue": b"", "headers": {}}

    def on_part_begin() -> None:
        state["part"], state["headers"] = Upload(), {}

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["hname"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["hvalue"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["hname"].lower()] = state["hvalue"]
        state["hname"], state["hvalue"] = b"", b""

    def on_headers_finished() -> None:
        part: Upload = state["part"]
        _, opts = parse_options_header(state["headers"].get(b"content-disposition", b""))
        if b"name" not in opts:
            raise RequestError(400, "invalid_multipart", 'a multipart part has no Content-Disposition "name"')
        if b"filename" in opts:
            part.filename = opts[b"filename"].decode("utf-8", "replace")
        state["name"] = opts[b"name"].decode("utf-8", "replace")
        state["kept"] = state["name"] in fields
        if not state["kept"] and part.filename is None:
            plain.setdefault(state["name"], b"")  # an empty field is still sent
        if state["kept"]:
            parts.append(part)
            if len(parts) > max_parts:
                if max_parts == 1:
                    raise RequestError(422, "too_many_files", "send one 'file' per request; use /v1/rate/batch for several")
                raise RequestError(413, "too_many_files", f"more than {max_parts} files in one request")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part: Upload = state["part"]
        part.size += end - start
        if not state["kept"]:  # other parts are discarded; plain form fields must be small
            if part.filename is None and part.size > MAX_FIELD_BYTES:
                raise RequestError(413, "too_large", f"form field {state['name']!r} exceeds {mib(MAX_FIELD_BYTES)}")
            if part.filename is None:
                plain[state["name"]] += data[start:end]
        elif part.size > max_part_bytes:
            if not keep_oversize:
                raise too_large_error(max_part_bytes)
            part.too_large, part.data = True, bytearray()
        elif not part.too_large:
            part.data += data[start:end]

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
        async for chunk in stream:
            received += len(chunk)
            if received > max_total_bytes:
                raise too_large_error(max_total_bytes)
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise RequestError(400, "invalid_multipart", f"malformed multipart body ({exc})") from None
    for part in parts:
        part.form = {k: v.decode("utf-8", "replace") for k, v in plain.items()}
    return parts


def _is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().lstrip().startswith("multipart/form-data")


def _raw_filename(request: Request) -> str | None:
    cd = request.headers.get("content-disposition")
    if not cd:
        return None
    _, opts = parse_options_header(cd)
    name = opts.get(b"filename")
    return name.decode("utf-8", "replace") if name else None
