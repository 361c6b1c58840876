"""Corpora -> one manifest schema (``Recording``); the speaker-disjoint splits are in ``splits``.

Every loader returns a ``LoadReport``: the usable recordings plus ``skipped`` rows as
``(row identifier, reason)``; a row with a missing file, a missing or unknown label, a duplicate
path, or a speaker whose rows disagree on the label is reported there, never silently dropped.

Native rule (the seed's, ``native_label``): a native-language / accent string is ``native`` when,
lower-cased, it contains one of ``NATIVE_MARKERS`` (english, american, british, australian,
canadian, united states, united kingdom, australia, canada, scotland, scottish, ireland, irish,
welsh, new zealand, south african); the test is also made with spaces, ``_`` and ``-`` removed on
both sides, so "unitedstates", "new_zealand" and "south-african" match. It is a substring rule:
"canadian french" counts as native. One guard added to the seed: a string that starts with
"non"/"not" followed by a separator or a marker ("non_english", "non-english", "not english") is
``non_native``. Empty text is ``non_native``; loaders report an empty label as skipped instead.

Layouts (``load_corpus`` detects them in this order):

- ``load_saa``: ``speakers.csv`` (speaker_id, path relative to the folder, label, native_language,
  country, sex, age, duration_s, ...) - the layout of shared/data/saa and saa-fullband.
- ``load_kaggle_saa``: Kaggle Speech Accent Archive: ``speakers_all.csv`` + ``recordings/{filename}.mp3``
  (also ``recordings/recordings/``); speaker_id = ``filename`` (e.g. "afrikaans1", the archive id the
  saa layout uses), label by the native rule on ``native_language``; rows with ``file_missing?``
  true are skipped.
- ``load_folder_per_label``: ``root/native/**`` and ``root/non_native/**`` audio files (also
  ``english`` / ``non_english``); speaker_id = file stem.
- ``load_hf_parquet``: Hugging Face parquet shards with ``id`` and ``audio`` ({bytes, path} struct or
  binary). Codec-variant rule (``speaker_key``): (1) the id is cut before its first token (tokens
  are separated by ``_ - . space``) that names a codec or bitrate (mp3, opus, ogg, wav, flac, aac,
  64k, 24kbps, 8khz, orig, ...); (2) what is left is cut to its shortest prefix that ends in a run of
  digits followed by the end or a separator (the archive's "language+number" ids). So
  "english12_mp3_64k", "english12-opus", "english12.mp3" and "english12" are all speaker
  "english12", and "spk_001_mp3" is "spk_001". All variants of one id are recordings of ONE
  speaker, so splits keep them together. Label: from the optional metadata CSV (keyed by speaker_id / filename / id, run
  through ``speaker_key``; ``label`` column, else the native rule on ``native_language``; an id
  missing from a given metadata CSV is skipped), else the native rule on the id's leading letters
  ("english12" -> "english" -> native).
- ``load_csv_manifest``: any CSV with ``path`` (aliases file, filepath, audio, audio_path) and
  ``label`` (aliases class, target); optional speaker_id (alias speaker; default: file stem),
  native_language, country, sex, age, duration (alias duration_s). Relative paths are resolved
  against the CSV's folder. Label values (case-insensitive, ``-``/space read as ``_``):
  native = native, 1, 1.0, true, yes, english, en, l1, native_english; non_native = non_native,
  nonnative, not_native, 0, 0.0, false, no, non_english, nonenglish, l2, foreign. Any other value is
  skipped as unrecognised; an empty label with a native_language falls back to the native rule.
  ``recordings_to_csv`` writes this format (absolute paths), ``read_manifest`` reads it back.

"""

from __future__ import annotations

import csv
import math
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import astuple, dataclass, field, fields
from pathlib import Path

import numpy as np

from ..audio import PATH_COLUMNS, audio_bytes, manifest_path

NATIVE = "native"
NON_NATIVE = "non_native"
LABELS = (NATIVE, NON_NATIVE)

NATIVE_MARKERS = (
    "english", "american", "british", "australian", "canadian", "united states", "united kingdom",
    "australia", "canada", "scotland", "scottish", "ireland", "irish", "welsh", "new zealand",
    "south african",
)
_LABEL_DIRS = {"native": NATIVE, "english": NATIVE, "non_native": NON_NATIVE, "non_english": NON_NATIVE}
_NATIVE_VALUES = {"native", "1", "1.0", "true", "yes", "english", "en", "l1", "native_english"}
_NON_NATIVE_VALUES = {"non_native", "nonnative", "not_native", "0", "0.0", "false", "no",
                      "non_english", "nonenglish", "l2", "foreign"}
_CODEC_TOKEN = re.compile(r"^(mp3|opus|ogg|vorbis|wav|flac|aac|m4a|webm|amr|gsm|pcm|mulaw|alaw|"
                          r"\d+(k|kbps|khz|hz)|orig|original|raw)$")
AGE_BANDS = ("<25", "25-44", "45-64", "65+", "unknown")
VARIETIES = ("USA", "UK", "Canada", "Australia", "Ireland", "other")
_VARIETY_ALIASES = {
    "USA": ("usa", "us", "u.s.", "u.s.a.", "united states", "united states of america", "america"),
    "UK": ("uk", "u.k.", "united kingdom", "great britain", "britain", "england", "scotland", "wales",
           "northern ireland"),
    "Canada": ("canada",),
    "Australia": ("australia",),
    "Ireland": ("ireland", "republic of ireland", "eire"),
}
_VARIETY_OF = {alias: v for v, aliases in _VARIETY_ALIASES.items() for alias in aliases}


@dataclass(frozen=True)
class Recording:
    """One audio file of one speaker: the manifest schema every loader produces."""

    speaker_id: str
    path: str  # absolute
    label: str  # "native" | "non_native"
    native_language: str = ""
    country: str = ""
    sex: str = ""
    age: float | None = None
    duration: float | None = None  # seconds, when the source states it

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ValueError(f"label must be one of {LABELS}, got {self.label!r}")


@dataclass
class LoadReport:
    """What a loader found: usable recordings and every row it could not use, with the reason."""

    recordings: list[Recording] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (row identifier, reason)

    @property
    def speakers(self) -> list[str]:
        return sorted({r.speaker_id for r in self.recordings})


# --- labels ----------------------------------------------------------------------------------------
def _squash(text: str) -> str:
    return re.sub(r"[\s_\-]+", "", text)


def native_label(text: str | None) -> str:
    """The seed's rule: ``native`` if the language/accent string names an English-speaking origin."""
    t = (text or "").strip().lower()
    if re.match(r"^no[nt]([\s_\-]|" + "|".join(_squash(m) for m in NATIVE_MARKERS) + ")", t):
        return NON_NATIVE
    sq = _squash(t)
    return NATIVE if any(m in t or _squash(m) in sq for m in NATIVE_MARKERS) else NON_NATIVE


def parse_label(value: str | None) -> str | None:
    """A label cell -> ``native`` / ``non_native``, or None when empty or unrecognised."""
    v = re.sub(r"[\s\-]+", "_", (value or "").strip().lower())
    if v in _NATIVE_VALUES:
        return NATIVE
    if v in _NON_NATIVE_VALUES:
        return NON_NATIVE
    return None


def speaker_key(item_id: str) -> str:
    """Speaker id of a (possibly codec-suffixed) item id: "english12_mp3_64k" -> "english12"."""
    s = str(item_id).strip()
    for m in re.finditer(r"[_\-. ]([^_\-. ]+)", s):  # 1) cut at the first codec/bitrate token
        if _CODEC_TOKEN.match(m.group(1).lower()):
            s = s[: m.start()]
            break
    m = re.match(r"^(.*?\d+)(?=$|[_\-. ])", s)  # 2) shortest prefix ending in digits
    return m.group(1) if m and re.search(r"[A-Za-z]", m.group(1)) else s


def _language_prefix(speaker_id: str) -> str:
    m = re.match(r"[A-Za-z][A-Za-z \-']*", speaker_id)
    return m.group(0).rstrip(" -") if m else ""


# --- speaker groups (reports, group weights) --------------------------------------------------
def age_band(age) -> str:
    """'<25', '25-44', '45-64', '65+' or 'unknown' (missing, NaN or negative)."""
    try:
        a = float(age)
    except (TypeError, ValueError):
        return "unknown"
    if math.isnan(a) or a < 0:
        return "unknown"
    return "<25" if a < 25 else "25-44" if a < 45 else "45-64" if a < 65 else "65+"


def native_variety(country) -> str:
    """USA, UK, Canada, Australia, Ireland or 'other' (also for missing countries)."""
    if country is None or (isinstance(country, float) and math.isnan(country)):
        return "other"
    return _VARIETY_OF.get(" ".join(str(country).strip().lower().split()), "other")


# --- helpers ---------------------------------------------------------------------------------------
def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(f)]


def _get(row: Mapping[str, str], *names: str) -> str:
    for n in names:
        if row.get(n):
            return row[n]
    return ""


def _float(value: str | None) -> float | None:
    try:
        x = float(value) if value not in (None, "") else None
    except ValueError:
        return None
    return x if x is not None and np.isfinite(x) else None


def _abs(path: str | os.PathLike) -> str:
    return os.path.abspath(os.fspath(path))


def _audio_extensions() -> tuple[str, ...]:
    from ..audio import AUDIO_EXTENSIONS  # lazy: keeps `import accent_rater.training.data` free of torch

    return AUDIO_EXTENSIONS


def _truthy(value: str) -> bool:
    return value.strip().lower() in {"true", "1", "yes", "y", "t"}


def _finish(report: LoadReport) -> LoadReport:
    """Drop duplicate paths and speakers with conflicting labels into ``skipped``."""
    seen: set[str] = set()
    labels: dict[str, set[str]] = defaultdict(set)
    kept: list[Recording] = []
    for r in report.recordings:
        if r.path in seen:
            report.skipped.append((r.path, "duplicate path (already listed)"))
            continue
        seen.add(r.path)
        labels[r.speaker_id].add(r.label)
        kept.append(r)
    bad = {s for s, ls in labels.items() if len(ls) > 1}
    for r in kept:
        if r.speaker_id in bad:
            report.skipped.append((r.path, f"speaker {r.speaker_id!r} has conflicting labels {sorted(labels[r.speaker_id])}"))
    report.recordings = [r for r in kept if r.speaker_id not in bad]
    return report


# --- loaders ---------------------------------------------------------------------------------------
def load_saa(root: str | os.PathLike) -> LoadReport:
    """shared/data/saa layout: ``root/speakers.csv`` with paths relative to ``root``."""
    root = Path(root)
    report = LoadReport()
    for i, row in enumerate(_read_csv(root / "speakers.csv"), start=2):
        rid = f"speakers.csv:{i} {row.get('speaker_id', '')}".strip()
        sid, rel = row.get("speaker_id", ""), row.get("path", "")
        label = parse_label(row.get("label"))
        if not sid or not rel:
            report.skipped.append((rid, "missing speaker_id or path"))
        elif label is None:
            report.skipped.append((rid, f"missing or unrecognised label {row.get('label', '')!r}"))
        elif not (root / rel).is_file():
            report.skipped.append((rid, f"audio file not found: {root / rel}"))
        else:
            report.recordings.append(Recording(
                sid, _abs(root / rel), label, row.get("native_language", ""), row.get("country", ""),
                row.get("sex", ""), _float(row.get("age")), _float(_get(row, "duration_s", "duration"))))
    return _finish(report)


def load_kaggle_saa(root: str | os.PathLike) -> LoadReport:
    """Kaggle Speech Accent Archive: ``speakers_all.csv`` + ``recordings/{filename}.mp3``."""
    root = Path(root)
    audio_dir = root / "recordings"
    if (audio_dir / "recordings").is_dir():  # the Kaggle zip unpacks to recordings/recordings/
        audio_dir = audio_dir / "recordings"
    report = LoadReport()
    for i, row in enumerate(_read_csv(root / "speakers_all.csv"), start=2):
        name = row.get("filename", "")
        rid = f"speakers_all.csv:{i} {name}".strip()
        path = audio_dir / f"{name}.mp3"
        if not name:
            report.skipped.append((rid, "missing filename"))
        elif not row.get("native_language"):
            report.skipped.append((rid, "missing native_language (no label)"))
        elif _truthy(row.get("file_missing?", "")):
            report.skipped.append((rid, "marked file_missing? in speakers_all.csv"))
        elif not path.is_file():
            report.skipped.append((rid, f"audio file not found: {path}"))
        else:
            report.recordings.append(Recording(
                name, _abs(path), native_label(row["native_language"]), row["native_language"],
                row.get("country", ""), row.get("sex", ""), _float(row.get("age"))))
    return _finish(report)


def load_folder_per_label(root: str | os.PathLike) -> LoadReport:
    """``root/native/**`` and ``root/non_native/**`` (or english / non_english); speaker_id = stem."""
    root = Path(root)
    report = LoadReport()
    dirs = [d for d in sorted(root.iterdir()) if d.is_dir() and d.name.lower() in _LABEL_DIRS] if root.is_dir() else []
    if not dirs:
        raise ValueError(f"{root} has no label folders ({', '.join(_LABEL_DIRS)})")
    for d in dirs:
        for p in sorted(d.rglob("*")):
            if not p.is_file() or p.name.startswith("."):
                continue
            if p.suffix.lower() not in _audio_extensions():
                report.skipped.append((str(p.relative_to(root)), f"not an audio extension ({p.suffix or 'none'})"))
                continue
            report.recordings.append(Recording(p.stem, _abs(p), _LABEL_DIRS[d.name.lower()]))
    return _finish(report)


def load_csv_manifest(csv_path: str | os.PathLike) -> LoadReport:
    """Generic CSV (path, label, optional speaker_id/native_language/country/sex/age/duration)."""
    csv_path = Path(csv_path)
    report = LoadReport()
    for i, row in enumerate(_read_csv(csv_path), start=2):
        rel = _get(row, *PATH_COLUMNS)
        rid = f"{csv_path.name}:{i} {rel}".strip()
        if not rel:
            report.skipped.append((rid, "missing path"))
            continue
        path = manifest_path(csv_path, rel)
        raw = _get(row, "label", "class", "target")
        lang = row.get("native_language", "")
        label = parse_label(raw) if raw else (native_label(lang) if lang else None)
        if label is None:
            report.skipped.append((rid, f"unrecognised label {raw!r}" if raw else "missing label"))
        elif not path.is_file():
            report.skipped.append((rid, f"audio file not found: {path}"))
        else:
            report.recordings.append(Recording(
                _get(row, "speaker_id", "speaker") or path.stem, _abs(path), label, lang,
                row.get("country", ""), row.get("sex", ""), _float(row.get("age")),
                _float(_get(row, "duration", "duration_s"))))
    return _finish(report)


_MAGIC = ((b"RIFF", ".wav"), (b"OggS", ".ogg"), (b"fLaC", ".flac"), (b"ID3", ".mp3"),
          (b"\x1aE\xdf\xa3", ".webm"), (b"\xff\xfb", ".mp3"), (b"\xff\xf3", ".mp3"), (b"\xff\xf2", ".mp3"))


def _audio_suffix(data: bytes, name: str | None) -> str:
    suffix = Path(name).suffix.lower() if name else ""
    if suffix in _audio_extensions():
        return suffix
    if data[4:8] == b"ftyp":
        return ".m4a"
    return next((ext for magic, ext in _MAGIC if data.startswith(magic)), ".bin")


def _parquet_files(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    out: list[Path] = []
    for item in map(Path, items):
        out.extend(sorted(item.rglob("*.parquet")) if item.is_dir() else [item])
    return out


def _metadata_index(metadata_csv: str | os.PathLike) -> dict[str, dict[str, str]]:
    index: dict[str, dict[str, str]] = {}
    for row in _read_csv(Path(metadata_csv)):
        key = _get(row, "speaker_id", "filename", "id")
        if key:
            index.setdefault(speaker_key(key), row)
    return index


def load_hf_parquet(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    extract_dir: str | os.PathLike,
    metadata_csv: str | os.PathLike | None = None,
) -> LoadReport:
    """Hugging Face parquet shards (``id``, ``audio``): audio bytes are written to ``extract_dir``
    once (an existing file of the same size is kept); codec variants of an id share one speaker."""
    import pyarrow.parquet as pq  # lazy: only this loader needs pyarrow

    out_dir = Path(extract_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = _metadata_index(metadata_csv) if metadata_csv is not None else None
    report = LoadReport()
    for shard in _parquet_files(paths):
        pf = pq.ParquetFile(shard)
        missing = {"id", "audio"} - set(pf.schema_arrow.names)
        if missing:
            report.skipped.append((shard.name, f"parquet shard lacks column(s) {sorted(missing)}"))
            continue
        row_no = 0
        for batch in pf.iter_batches(batch_size=32, columns=["id", "audio"]):
            for item_id, audio in zip(batch.column("id").to_pylist(), batch.column("audio").to_pylist()):
                rid = f"{shard.name}[{row_no}] {item_id}"
                row_no += 1
                data = audio_bytes(audio)
                if not item_id:
                    report.skipped.append((rid, "missing id"))
                    continue
                if not data:
                    report.skipped.append((rid, "no audio bytes"))
                    continue
                sid = speaker_key(item_id)
                row = meta.get(sid) if meta is not None else None
                if meta is not None and row is None:
                    report.skipped.append((rid, f"speaker {sid!r} not in metadata CSV"))
                    continue
                lang = (row or {}).get("native_language", "") or _language_prefix(sid)
                label = parse_label(_get(row, "label")) if row and row.get("label") else native_label(lang) if lang else None
                if label is None:
                    report.skipped.append((rid, "no label: unrecognised metadata label or no language prefix"))
                    continue
                name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(item_id))
                path = out_dir / (name + _audio_suffix(data, audio.get("path") if isinstance(audio, dict) else None))
                if not (path.is_file() and path.stat().st_size == len(data)):
                    tmp = path.with_name(path.name + ".part")
                    tmp.write_bytes(data)
                    tmp.replace(path)
                r = row or {}
                report.recordings.append(Recording(
                    sid, _abs(path), label, lang, r.get("country", ""), r.get("sex", ""), _float(r.get("age"))))
    return _finish(report)


def _hf_cache_dir(path: Path) -> Path:
    base = Path(os.environ.get("ACCENT_RATER_CACHE", Path.home() / ".cache" / "accent_rater"))
    return base / "hf" / (path.stem if path.is_file() else path.name or "dataset")


def load_corpus(
    path: str | os.PathLike,
    *,
    extract_dir: str | os.PathLike | None = None,
    metadata_csv: str | os.PathLike | None = None,
) -> LoadReport:
    """Detect the layout of ``path`` and load it (see the module docstring for the order).

    Parquet audio is extracted to ``extract_dir``, by default ``$ACCENT_RATER_CACHE/hf/<name>``
    (``~/.cache/accent_rater`` when the variable is unset)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such dataset: {p}")
    if p.is_file():
        if p.suffix.lower() == ".parquet":
            return load_hf_parquet([p], extract_dir or _hf_cache_dir(p), metadata_csv)
        if p.name.lower() == "speakers.csv":
            return load_saa(p.parent)
        if p.name.lower() == "speakers_all.csv":
            return load_kaggle_saa(p.parent)
        if p.suffix.lower() == ".csv":
            return load_csv_manifest(p)
        raise ValueError(f"{p.name}: expected a .csv manifest, a .parquet shard or a dataset folder")
    if (p / "speakers.csv").is_file():
        return load_saa(p)
    if (p / "speakers_all.csv").is_file():
        return load_kaggle_saa(p)
    if (p / "utterances.csv").is_file():  # librispeech/, speechocean762/: one row per utterance
        return load_csv_manifest(p / "utterances.csv")
    if any(d.is_dir() and d.name.lower() in _LABEL_DIRS for d in p.iterdir()):
        return load_folder_per_label(p)
    if next(p.rglob("*.parquet"), None) is not None:
        return load_hf_parquet([p], extract_dir or _hf_cache_dir(p), metadata_csv)
    csvs = sorted(p.glob("*.csv"))
    if len(csvs) == 1:
        return load_csv_manifest(csvs[0])
    raise ValueError(
        f"cannot tell the layout of {p}: expected speakers.csv (saa), speakers_all.csv (Kaggle), "
        f"label folders (native/non_native), *.parquet shards or one manifest .csv"
        + (f"; found several CSVs: {[c.name for c in csvs]}" if csvs else ""))


# --- manifest CSV ---------------------------------------------------------------------------------
MANIFEST_FIELDS = tuple(f.name for f in fields(Recording))


def recordings_to_csv(recordings: Iterable[Recording], path: str | os.PathLike) -> Path:
    """Write recordings as a CSV with the schema fields as columns (None -> empty cell)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(MANIFEST_FIELDS)
        for r in recordings:
            w.writerow(["" if v is None else v for v in astuple(r)])
    return path


def read_manifest(path: str | os.PathLike) -> list[Recording]:
    """Read a CSV written by ``recordings_to_csv`` back, exactly (files are not checked)."""
    out = []
    for row in _read_csv(Path(path)):
        out.append(Recording(
            row["speaker_id"], row["path"], row["label"], row.get("native_language", ""),
            row.get("country", ""), row.get("sex", ""), _float(row.get("age")), _float(row.get("duration"))))
    return out
