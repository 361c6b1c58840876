"""The REST API's OpenAPI models. A rating's model is generated from ``AccentResult`` (its fields,
types and ``Annotated`` descriptions), so the schema follows the dataclass without restating it."""

from __future__ import annotations

import dataclasses
import inspect
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from pydantic import BaseModel, Field, create_model

from ..rater import AccentResult


def model_of(cls: type, name: str | None = None, notes: dict[str, str] | None = None, **extra: Any) -> type[BaseModel]:
    """A Pydantic model of ``cls`` (a dataclass or NamedTuple) in the JSON form ``to_dict`` writes:
    the same fields, types and descriptions (``Annotated[type, "description"]``), nested NamedTuples
    (in lists or optional) as objects. ``notes`` appends text to named fields' descriptions; ``extra``
    adds fields first."""
    fields: dict[str, Any] = dict(extra)
    for field, hint in get_type_hints(cls, include_extras=True).items():
        tp, description = get_args(hint)[:2] if get_origin(hint) is Annotated else (hint, None)
        args = [a for a in get_args(tp) if a is not type(None)]
        if get_origin(tp) is list and _is_record(args[0]):
            tp = list[model_of(args[0])]
        elif get_origin(tp) in (Union, types.UnionType) and len(args) == 1 and _is_record(args[0]):  # record | None
            tp = model_of(args[0]) | None
        if notes and field in notes:
            description = f"{description} {notes[field]}"
        fields[field] = (tp, Field(description=description))
    return create_model(name or cls.__name__, __doc__=inspect.getdoc(cls), **fields)


def _is_record(tp: Any) -> bool:
    return isinstance(tp, type) and (dataclasses.is_dataclass(tp) or issubclass(tp, tuple))


def l1_known(languages: list[str]) -> str:
    """The sentence naming the first languages the loaded model knows (appended to the l1 fields)."""
    if not languages:
        return "The loaded model has no first-language guess, so this is always empty."
    return f"Knows: {', '.join(languages)}; other first languages map to the nearest one or to \"unsure\"."


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. not_audio, too_large, silent, busy")
    message: str = Field(description="What went wrong, for a person")


class ErrorResponse(BaseModel):
    """Every error: ``{"error": {"code", "message"}}`` (``errors.error_body``)."""

    error: ErrorDetail


class BatchError(BaseModel):
    filename: str | None = None
    error: ErrorDetail


def rating_models(l1_languages: list[str]) -> tuple[type[BaseModel], type[BaseModel]]:
    """``RateResult`` (``AccentResult.to_dict()`` plus the upload's file name) and ``BatchResponse``,
    with the first languages of the loaded model in the l1 fields' descriptions."""
    known = l1_known(l1_languages)
    rate_result = model_of(
        AccentResult,
        "RateResult",
        notes={"l1": known, "l1_guess": known},
        filename=(str | None, Field(None, description="Name of the uploaded file, when the client sent one")),
    )
    batch = create_model(
        "BatchResponse",
        results=(list[rate_result | BatchError], Field(description="One entry per uploaded file, in upload order")),
    )
    return rate_result, batch


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


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


UNAUTHORIZED = {401: _error("The server requires an API key (X-API-Key or Authorization: Bearer) and none or a wrong one was sent")}
RATE_ERRORS = {
    400: _error("Malformed request body (multipart, Content-Length)"),
    413: _error("Upload too large, recording too long, or too many files"),
    415: _error("Not a supported audio file, or (batch) not a multipart body"),
    422: _error("Unusable audio (empty, corrupt, silent, too little speech) or invalid request"),
    503: _error("Too many requests waiting: retry after the seconds in the Retry-After header"),
    501: _error("Word feedback asked for, but the server has no Whisper base weights (`words_unavailable`), or "
                "pronunciation scores of a model without them (`pronunciation_unavailable`)"),
    504: _error("The rating did not finish within the server's per-request timeout"),
}

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_WORD_FIELDS = {
    "words": {"type": "boolean", "description": "Word feedback on the text read (as the query parameter `words`)"},
    "text": {"type": "string", "description": "The text that was read (wins over the query parameter `text`)"},
    "pronunciation": {"type": "boolean", "description": "Pronunciation scores (as the query parameter `pronunciation`)"},
}
RATE_BODY = {
    "requestBody": {
        "required": True,
        "description": "Either multipart/form-data with the recording in the field `file`, or the raw audio bytes "
        "as the body (any audio/* or video/webm type, or application/octet-stream). Supported: WAV, FLAC, MP3, "
        "OGG (Vorbis/Opus), WebM/Opus, M4A/AAC.",
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}, **_WORD_FIELDS},
                           "required": ["file"]}
            },
            "application/octet-stream": _BINARY,
            "audio/*": _BINARY,
        },
    }
}
BATCH_BODY = {
    "requestBody": {
        "required": True,
        "description": "multipart/form-data with one or more recordings in the repeated field `files`.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}, **_WORD_FIELDS},
                    "required": ["files"],
                }
            }
        },
    }
}
