"""Benchmark `accent-rater batch`: throughput of the local process pool and of Ray Data (a local Ray),
with 1 and 2 workers, over dev files of the SAA corpus; writes reports/batch.md.

    .venv/bin/python scripts/bench_batch.py [--corpus ../shared/data/saa] [--files 200] [--workers 1 2]

Each configuration rates files end to end through ``run_batch`` (as the CLI does: start the workers
or Ray, load one model per worker, rate, write Parquet) twice: a short run of ``2 x workers`` files and
the full run. The difference of the two gives the steady rate (files/s and x real time once running)
and, with it, the fixed start-up cost (workers or Ray started, models loaded). The host load
(1-minute load average) is recorded before and after each full run: the figures are only as clean
as it was. The 10,000-hour estimate uses the CPU time per file of the pool runs (the driver and the pool's
workers are this process and its children; Ray's actors are not).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from accent_rater.serve.batch import Summary, rater_options, run_batch
from accent_rater.serve.engine import Engine
from accent_rater.training import data

REPO = Path(__file__).resolve().parents[1]
TARGET_HOURS = 10_000


def dev_files(corpus: Path, n: int) -> list[str]:
    """``n`` recordings spread evenly over the corpus manifest (every language, not the first few)."""
    recs = sorted(data.load_saa(corpus).recordings, key=lambda r: r.path)
    if len(recs) < n:
        raise SystemExit(f"{corpus} has {len(recs)} recordings, fewer than --files {n}")
    return [recs[i * len(recs) // n].path for i in range(n)]


def timed(files: list[str], engine: Engine, tmp: Path, name: str) -> tuple[Summary, dict[str, float]]:
    manifest = tmp / f"{name}.csv"
    manifest.write_text("path\n" + "".join(f"{p}\n" for p in files))
    out = tmp / f"{name}.parquet"
    summary = run_batch(manifest, out, engine, rater_options(), progress=False)
    return summary, {r["path"]: r["p_native"] for r in pq.read_table(out, columns=["path", "p_native"]).to_pylist()}


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its children that have exited."""
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "data" / "saa")
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--usd-per-core-hour", type=float, default=0.04, help="price assumed for the cost estimate")
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "batch.md")
    args = ap.parse_args()
    files = dev_files(args.corpus, args.files)
    results, outputs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for engine in [Engine(w, ray) for w in args.workers for ray in (None, "local")]:  # each pair back to back
            k = 2 * engine.workers
            short, _ = timed(files[:k], engine, Path(tmp), f"short{len(results)}")
            load_before, cpu_before = os.getloadavg()[0], cpu_seconds()
            full, p_native = timed(files, engine, Path(tmp), f"full{len(results)}")
            load_after, cpu = os.getloadavg()[0], cpu_seconds() - cpu_before
            steady_s = full.wall_seconds - short.wall_seconds  # the files after the first k, once running
            audio_per_file = full.audio_seconds / full.files
            results.append({
                "engine": "Ray Data (local Ray)" if engine.ray else "process pool", "workers": engine.workers,
                "wall": full.wall_seconds, "files": full.files, "failed": sum(full.failures.values()),
                "fps": full.files / full.wall_seconds, "xrt": full.x_realtime,
                "steady_fps": (full.files - k) / steady_s, "steady_xrt": (full.files - k) * audio_per_file / steady_s,
                "startup": short.wall_seconds - k * steady_s / (full.files - k),
                # this process and its (finished) children: the pool's workers, not Ray's actors
                "cpu_per_file": None if engine.ray else cpu / full.files, "audio_per_file": audio_per_file,
                "load": f"{load_before:.1f} / {load_after:.1f}"})
            outputs.append(p_native)
            print(results[-1], flush=True)
    max_delta = max(abs((p or 0) - (outputs[0][k] or 0)) for o in outputs for k, p in o.items())
    write_report(args, results, max_delta)


def write_report(args: argparse.Namespace, results: list[dict], max_delta: float) -> None:
    rows = "\n".join(
        f"| {r['engine']} | {r['workers']} | {r['files']} ({r['failed']} failed) | {r['wall']:.1f} | {r['startup']:.1f} | "
        f"{r['fps']:.2f} | {r['xrt']:.0f} | {r['steady_fps']:.2f} | {r['steady_xrt']:.0f} | "
        f"{'n/a' if r['cpu_per_file'] is None else format(r['cpu_per_file'], '.2f')} | {r['load']} |" for r in results)
    pool = {r["workers"]: r for r in results if r["engine"] == "process pool"}
    ray = {r["workers"]: r for r in results if r["engine"] != "process pool"}
    overhead = "\n".join(
        f"- {w} worker(s): Ray's start-up is {ray[w]['startup'] - pool[w]['startup']:+.1f} s longer; its steady "
        f"throughput is {100 * (ray[w]['steady_fps'] / pool[w]['steady_fps'] - 1):+.0f}% against the pool's "
        f"({ray[w]['steady_fps']:.2f} vs {pool[w]['steady_fps']:.2f} files/s); end to end "
        f"{100 * (ray[w]['wall'] / pool[w]['wall'] - 1):+.0f}% wall time." for w in sorted(pool) if w in ray)
    # a dedicated core: seconds of audio per CPU-second, from the pool runs' CPU time (load-independent)
    cpu = max((r for r in results if r["cpu_per_file"]), key=lambda r: r["cpu_per_file"])
    per_core = cpu["audio_per_file"] / cpu["cpu_per_file"]
    core_hours = TARGET_HOURS / per_core
    estimate = "\n".join(
        f"| {n} | {16 * n} | {core_hours / (16 * n):.1f} h | ${core_hours * args.usd_per_core_hour:,.0f} |" for n in (1, 4, 16, 64))
    text = f"""# Batch rating throughput: process pool vs Ray Data

Measured by `scripts/bench_batch.py` ({args.files} dev files of `{args.corpus.name}`, spread evenly over its
manifest; the default model, one model and one onnxruntime thread per worker; Parquet output) on
`{platform.node()}`: {os.cpu_count()} CPU cores, shared with other jobs. Load = the 1-minute load
average before / after the configuration; with {os.cpu_count()} cores, a load above {os.cpu_count()} means other processes took
CPU time from the benchmark and every figure is pessimistic.

| engine | workers | files | wall s | start-up s | files/s | x real time | steady files/s | steady x real time | CPU s / file | load |
|---|---|---|---|---|---|---|---|---|---|---|
{rows}

Steady = the rate once running: (full run - short run of 2 x workers files) / the files in between.
Start-up = the fixed cost of a run: the short run's wall time less its files at the steady rate
(starting worker processes or Ray and its actors, loading one model each). CPU s / file = CPU time
of the run's processes (driver and pool workers; Ray's actors are not its children, so n/a) per
file: unlike wall time it does not depend on the other jobs. Every run gave the same
p_native for every file as the first (max |diff| {max_delta:.1e}).

## Ray overhead against the local pool

{overhead}

Both engines make the same model call per file. Ray adds a fixed start-up (a local cluster: raylet,
object store, worker processes, then one actor and model per worker) and passes each input and row
through its object store. On a shared host the steady rates say more about how much CPU each
engine's processes were given than about the engines (compare a pool run's steady rate with what its
CPU s / file allows): use the start-up for Ray's cost here, and the CPU time for capacity. Ray pays
off when the work spans machines.

## 10,000 hours of audio

A core that only rates: {cpu['cpu_per_file']:.2f} CPU-seconds per recording of {cpu['audio_per_file']:.1f} s (the
costlier pool run above, its driver included), i.e. {per_core:.0f} s of audio per CPU-second, whatever
else the host runs (the wall-time rates above are lower because this host's {os.cpu_count()} cores were shared).
{TARGET_HOURS:,} h of audio then takes {core_hours:,.0f} core-hours. On N nodes of 16 cores (one worker per core, `--workers` = 16 N), at an assumed
${args.usd_per_core_hour} per core-hour (substitute your provider's price):

| nodes | cores | wall time | cost |
|---|---|---|---|
{estimate}

Add the start-up above once per run (at most {max(r['startup'] for r in results):.0f} s here) and the reading of the audio from shared
storage, which these figures include only from a local disk. Recordings here average {cpu['audio_per_file']:.0f} s; part of
the cost is per file, so a corpus of shorter recordings rates fewer seconds of audio per second.
"""
    args.out.write_text(text)
    print(f"report: {args.out}")


if __name__ == "__main__":
    main()
