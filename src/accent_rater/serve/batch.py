"""``accent-rater batch``: rate every recording of a folder, a manifest or Hugging Face parquet
shards on a local process pool or on Ray (see ``engine``), one output row per input.

Inputs (``plan``):

- a folder: its audio files (``audio.AUDIO_EXTENSIONS``), walked recursively; a folder with no audio
  files but ``*.parquet`` shards is read as those shards;
- a CSV or Parquet manifest with a ``path`` column (relative paths are read against the manifest's
  folder; the output keeps them as written); its other columns are carried through; with word
  feedback or pronunciation scores, a ``text`` column gives each row the text read (an empty cell:
  free speech; a bad text fails that row only);
- Hugging Face parquet shards (an ``audio`` column: a {bytes, path} struct or binary): the bytes are
  rated straight from the shard, in units of at most ``UNIT_ROWS`` rows of one row group; a row's
  ``path`` is ``<shard>#<row>``; the shard's other columns, and ``audio.path`` as ``audio_path``, are
  carried through.

A carried column whose name is an output column is renamed ``input_<name>``.

Output (``RESULT_SCHEMA``, then the carried columns): ``path``, the fields of ``rate --json``
(``AccentResult.to_dict()``, the same numbers and rounding; ``segments``, ``l1`` and ``words`` as
lists of structs, ``reading`` and ``pronunciation`` structs, null without word feedback (``--words``)
or pronunciation scores (``--pronunciation``); ``parts`` what each row holds), ``model`` (name
and version, on failed rows too), ``error_code`` / ``error_message`` (null when rated). A file that cannot be rated is a row with its error, never an abort.
JSONL when the name ends in ``.jsonl`` (a line per row, appended as rows arrive), else Parquet: rows go
to part files in ``<out>.parts/`` as they arrive (at least every ``PART_ROWS`` rows or
``PART_SECONDS``) and are merged into ``<out>`` at the end. What was written before a crash stays,
and ``resume`` skips the paths already there.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from collections import Counter
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from .. import audio
from ..errors import AccentRaterError
from ..pronunciation import Pronunciation
from ..rater import Rater, rate_row
from ..training.data import PATH_COLUMNS, audio_bytes, manifest_path
from ..words import Reading, Word
from .engine import Engine, run_map

UNIT_ROWS = 16
TEXT_COLUMN = "text"  # a manifest column giving each row the text read (word feedback, pronunciation)
PART_ROWS = 256
PART_SECONDS = 30.0


RESULT_COLUMNS = ("path", "p_native", "label", "score", "band", "borderline", "threshold", "speech_seconds",
                  "duration_seconds", "segments", "model", "profile", "warnings", "l1", "l1_guess", "words", "transcript",
                  "reading", "pronunciation", "parts", "error_code", "error_message")


def _result_schema() -> Any:
    import pyarrow as pa

    segment = pa.struct([("start_s", pa.float64()), ("end_s", pa.float64()), ("p_native", pa.float64())])
    types = {"p_native": pa.float64(), "score": pa.int64(), "borderline": pa.bool_(), "threshold": pa.float64(),
             "speech_seconds": pa.float64(), "duration_seconds": pa.float64(), "segments": pa.list_(segment),
             "warnings": pa.list_(pa.string()), "l1": pa.list_(pa.struct([("language", pa.string()), ("p", pa.float64())])),
             "words": pa.list_(pa.struct([(f, pa.float64() if f in ("start", "end", "confidence", "accuracy") else pa.string())
                                          for f in Word._fields])),
             "pronunciation": pa.struct([(f, pa.float64()) for f in Pronunciation._fields]),
             "parts": pa.list_(pa.string()),
             "reading": pa.struct([(f, pa.float64() if f in ("accuracy", "words_per_minute") else pa.int64())
                                   for f in Reading._fields])}
    return pa.schema([(c, types.get(c, pa.string())) for c in RESULT_COLUMNS])


class BatchInputError(AccentRaterError, ValueError):
    """The batch input cannot be read as a folder, a manifest or parquet shards."""

    code = "bad_batch_input"
    http_status = 422


def flat_row(row: dict[str, Any], model: str) -> dict[str, Any]:
    """A ``rate_row`` as an output row: every ``RESULT_COLUMNS`` key, errors as two columns."""
    err = row.get("error") or {}
    out = {k: row.get(k) for k in RESULT_COLUMNS}
    out.update(model=model, error_code=err.get("code"), error_message=err.get("message"))
    return out


# --- work units: run in the workers --------------------------------------------------------------
_RATERS: dict[str, Rater] = {}  # one model per worker process
_ROW_GROUP: dict[str, Any] = {}  # the last row group's audio column read by this worker


def _rater(opts: dict[str, Any]) -> Rater:
    key = json.dumps(opts, sort_keys=True)
    if key not in _RATERS:
        _RATERS.clear()
        _RATERS[key] = Rater(**{k: v for k, v in opts.items() if k != "rate"})
    return _RATERS[key]


def _rate_unit(opts: dict[str, Any], uid: int, unit: tuple) -> tuple[int, list[dict[str, Any]]]:
    """``("file", key, path, text)`` (text: the manifest row's own, or None) or ``("shard", key_prefix, shard_path, row_group, first_row, rows)``
    -> (uid, output rows in the unit's order)."""
    rater, options = _rater(opts), opts.get("rate", {})
    if unit[0] == "file":
        if unit[3] is not None and options:  # the manifest's text column: this row's own text
            options = {**options, "text": unit[3]}
        return uid, [flat_row(rate_row(rater, unit[2], unit[1], **options), rater.name)]
    import pyarrow.parquet as pq

    _, prefix, shard, group, first, rows = unit
    if _ROW_GROUP.get("key") != (shard, group):  # a row group's units come in a row: read it once per worker
        _ROW_GROUP.update(key=(shard, group), column=pq.ParquetFile(shard).read_row_group(group, columns=["audio"]).column("audio"))
    column = _ROW_GROUP["column"]
    out = []
    for i in rows:
        data = audio_bytes(column[i].as_py()) or b""
        out.append(flat_row(rate_row(rater, data, f"{prefix}#{first + i}", **options), rater.name))
    return uid, out


# --- planning: in the driver ------------------------------------------------------------------------
@dataclass
class Plan:
    """The units still to rate and, per unit, the carried columns of each of its rows."""

    units: list[tuple] = field(default_factory=list)
    extras: list[list[dict[str, Any]]] = field(default_factory=list)
    rows: int = 0

    def add(self, unit: tuple, extras: list[dict[str, Any]]) -> None:
        self.units.append(unit)
        self.extras.append(extras)
        self.rows += len(extras)


def _carried(row: dict[str, Any]) -> dict[str, Any]:
    return {(f"input_{k}" if k in RESULT_COLUMNS else k): v for k, v in row.items()}


def plan(source: Path, done: AbstractSet[str] = frozenset()) -> Plan:
    """Work units for ``source`` (see the module docstring), leaving out the paths in ``done``."""
    out = Plan()
    if source.is_dir():
        files = audio.audio_files(source)
        if files:
            for p in files:
                if str(p) not in done:
                    out.add(("file", str(p), str(p.resolve()), None), [{}])
            return out
        shards = sorted(source.rglob("*.parquet"))
        if not shards:
            raise BatchInputError(f"{source} holds no audio files ({', '.join(audio.AUDIO_EXTENSIONS)}) and no .parquet shards")
        for shard in shards:
            _plan_shard(shard, done, out)
        return out
    suffix = source.suffix.lower()
    if suffix == ".csv":
        with open(source, newline="", encoding="utf-8-sig") as fh:
            _plan_manifest(source, list(csv.DictReader(fh)), done, out)
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        if _has_audio_bytes(pq.ParquetFile(source).schema_arrow):
            _plan_shard(source, done, out)
        else:
            _plan_manifest(source, pq.read_table(source).to_pylist(), done, out)
    else:
        raise BatchInputError(f"{source.name}: expected a folder, a .csv or .parquet manifest, or .parquet shards")
    return out


def _plan_manifest(manifest: Path, rows: list[dict[str, Any]], done: AbstractSet[str], out: Plan) -> None:
    column = next((c for c in PATH_COLUMNS if rows and c in rows[0]), None)
    if rows and column is None:
        raise BatchInputError(f"{manifest.name} has no path column (one of {', '.join(PATH_COLUMNS)})")
    for row in rows:
        key = str(row.pop(column) or "")
        if key not in done:
            path = manifest_path(manifest, key)
            text = row.get(TEXT_COLUMN)
            out.add(("file", key, str(path.resolve()), None if text is None else str(text)), [_carried(row)])


def _has_audio_bytes(schema: Any) -> bool:
    """Hugging Face audio shards have an ``audio`` column of bytes: a {bytes, path} struct or binary."""
    import pyarrow as pa

    kind = schema.field("audio").type if "audio" in schema.names else pa.null()
    return pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or (pa.types.is_struct(kind) and kind.get_field_index("bytes") >= 0)


def _plan_shard(shard: Path, done: AbstractSet[str], out: Plan) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(shard)
    schema = pf.schema_arrow
    if not _has_audio_bytes(schema):
        raise BatchInputError(f"{shard.name} has no audio column of bytes (Hugging Face audio shards have one)")
    carried = pf.read(columns=[n for n in schema.names if n != "audio"]).to_pylist()
    atype = schema.field("audio").type
    if pa.types.is_struct(atype) and atype.get_field_index("path") >= 0:
        for row, value in zip(carried, pf.read(columns=["audio.path"]).column("audio").to_pylist()):
            row["audio_path"] = value["path"] if value else None
    first = 0
    for group in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(group).num_rows
        todo = [i for i in range(n) if f"{shard}#{first + i}" not in done]
        for k in range(0, len(todo), UNIT_ROWS):
            rows = todo[k:k + UNIT_ROWS]
            out.add(("shard", str(shard), str(shard.resolve()), group, first, rows), [_carried(carried[first + i]) for i in rows])
        first += n


# --- output --------------------------------------------------------------------------------------------
class ResultWriter:
    """Appends rows to ``out`` as they arrive (see the module docstring); ``done_paths`` is what a
    resumed run skips. ``out`` (or its part files) existing without ``resume`` is refused."""

    def __init__(self, out: Path, resume: bool = False) -> None:
        self.out = out
        self.jsonl = out.suffix.lower() == ".jsonl"
        self.parts = out.with_name(out.name + ".parts")
        if not resume and (out.exists() or self.parts.exists()):
            raise FileExistsError(f"{out} exists: pass --resume to skip the inputs it already has, or remove it")
        out.parent.mkdir(parents=True, exist_ok=True)
        self._buffer: list[dict[str, Any]] = []
        self._flushed = time.monotonic()

    def done_paths(self) -> set[str]:
        if self.jsonl:
            if not self.out.exists():
                return set()
            text = self.out.read_bytes()
            complete = text[: text.rfind(b"\n") + 1]  # a line cut short by a crash is dropped
            if len(complete) < len(text):
                with open(self.out, "r+b") as fh:
                    fh.truncate(len(complete))
            return {json.loads(line)["path"] for line in complete.splitlines() if line.strip()}
        import pyarrow.parquet as pq

        files = ([self.out] if self.out.exists() else []) + self._part_files()
        return {p for f in files for p in pq.read_table(f, columns=["path"]).column("path").to_pylist()}

    def _part_files(self) -> list[Path]:
        return sorted(self.parts.glob("part-*.parquet")) if self.parts.is_dir() else []

    def write(self, rows: list[dict[str, Any]]) -> None:
        if self.jsonl:
            with open(self.out, "a", encoding="utf-8") as fh:
                fh.writelines(json.dumps(r) + "\n" for r in rows)
            return
        self._buffer += rows
        if len(self._buffer) >= PART_ROWS or time.monotonic() - self._flushed >= PART_SECONDS:
            self._flush()

    def _flush(self) -> None:
        import pyarrow.parquet as pq

        self._flushed = time.monotonic()
        if not self._buffer:
            return
        self.parts.mkdir(exist_ok=True)
        existing = self._part_files()
        n = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0
        tmp = self.parts / f".part-{n:06d}.tmp"
        pq.write_table(_table(self._buffer), tmp)
        tmp.replace(self.parts / f"part-{n:06d}.parquet")
        self._buffer = []

    def close(self) -> None:
        """Parquet: merge the output so far and the part files into ``out``."""
        if self.jsonl:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._flush()
        parts = self._part_files()
        if not parts and self.out.exists():
            return
        tables = [pq.read_table(f) for f in ([self.out] if self.out.exists() else []) + parts]
        table = pa.concat_tables(tables, promote_options="permissive") if tables else _table([])
        tmp = self.out.with_name(self.out.name + ".tmp")
        pq.write_table(table, tmp)
        tmp.replace(self.out)
        shutil.rmtree(self.parts, ignore_errors=True)


def _table(rows: list[dict[str, Any]]) -> Any:
    """Result columns with their fixed types, then the carried columns with inferred ones."""
    import pyarrow as pa

    table = pa.Table.from_pylist([{k: r[k] for k in RESULT_COLUMNS} for r in rows], schema=_result_schema())
    extra = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in RESULT_COLUMNS]
    if extra:
        carried = pa.Table.from_pylist([{k: r.get(k) for k in extra} for r in rows])
        for name in extra:
            table = table.append_column(name, carried.column(name))
    return table


# --- the run ----------------------------------------------------------------------------------------
@dataclass
class Summary:
    """What one run did (rows already in the output before it are counted apart)."""

    files: int = 0
    failures: Counter = field(default_factory=Counter)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    already_done: int = 0
    engine: str = ""

    def add(self, row: dict[str, Any]) -> None:
        self.files += 1
        if row["error_code"]:
            self.failures[row["error_code"]] += 1
        else:
            self.audio_seconds += row["duration_seconds"]

    @property
    def x_realtime(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds else 0.0

    def text(self) -> str:
        failed = sum(self.failures.values())
        codes = ", ".join(f"{code} {n}" for code, n in self.failures.most_common())
        return (f"{self.files - failed} of {self.files} inputs rated"
                + (f", {failed} failed ({codes})" if failed else "")
                + f"; {self.audio_seconds / 3600:.2f} h of audio in {self.wall_seconds:.0f} s"
                + f" ({self.x_realtime:.0f}x real time) on {self.engine}"
                + (f"; {self.already_done} already in the output (resumed)" if self.already_done else ""))


def rater_options(model: str | None = None, threshold: float | None = None, prior: float | None = None,
                  max_seconds: float = audio.MAX_DURATION_SECONDS, threads: int = 1,
                  profile: str | Path | None = None, rate: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``Rater`` arguments every worker loads its model with (a bundle directory and a site
    profile made absolute, so that workers elsewhere find them at the same path), and under ``rate``
    the options of ``Rater.rate`` (word feedback: ``words``, ``text``)."""
    if model is not None and Path(model).is_dir():
        model = str(Path(model).resolve())
    return {"model": model, "threshold": threshold, "prior": prior, "max_seconds": max_seconds, "threads": threads,
            "profile": None if profile is None else str(Path(profile).resolve()), "rate": rate or {}}


def run_batch(source: Path, out: Path, engine: Engine, opts: dict[str, Any], *, resume: bool = False,
              progress: bool = True) -> Summary:
    """Rate ``source`` into ``out`` on ``engine``; ``opts`` from ``rater_options``. Raises
    ``BatchInputError`` / ``FileExistsError`` / ``FileNotFoundError`` / ``ValueError`` (bad model or
    text) / ``WeightsError`` (word feedback without its weights) before any work starts."""
    from tqdm import tqdm

    rater, options = _rater(opts), opts.get("rate", {})  # a bad --model or threshold fails here, not in every worker
    if options.get("words") or options.get("pronunciation"):
        rater.check_words(options.get("text"), bool(options.get("pronunciation")))
    writer = ResultWriter(out, resume)
    done = writer.done_paths()
    work = plan(source, done)
    summary = Summary(already_done=len(done), engine=engine.describe())
    start = time.perf_counter()
    with tqdm(total=work.rows, desc="rating", unit="file", disable=not progress, mininterval=2) as bar:
        results = run_map(engine, partial(_rate_unit, opts), list(enumerate(work.units)), setup=partial(_rater, opts))
        for uid, rows in results:
            rows = [{**row, **extra} for row, extra in zip(rows, work.extras[uid])]
            writer.write(rows)
            for row in rows:
                summary.add(row)
            bar.update(len(rows))
    writer.close()
    summary.wall_seconds = time.perf_counter() - start
    return summary
