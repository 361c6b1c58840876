"""Hostile load on the REST API: 16 concurrent clients for at least 2 minutes, mixed valid and bad uploads.

    .venv/bin/python scripts/load_test.py --seconds 120 --out reports/load.md

Starts ``accent-rater serve`` (default model, ``--max-bytes 8 MB`` so that oversized uploads are
cheap to send; its own empty TMPDIR) and runs the clients (asyncio + httpx, one connection each).
Valid uploads: the test fixtures, the bundled samples and a few SAA recordings, as multipart or raw
bodies. Hostile ones: empty, truncated, random bytes, a text file, a raw body to the batch route,
oversized (declared and chunked), three minutes of silence, an invalid query, and a batch with one
bad file. Recorded: every status (each kind has the statuses it may get), connection errors,
latency of valid ratings, the server's resident memory and open file descriptors (idle after a
warm-up run of the same load, and idle at the end; RSS also sampled each second), files left in its
TMPDIR, whether any upload's file name reached its log, and a SIGTERM shutdown. Prints a Markdown
report and its JSON; exits 1 on any 5xx, dropped connection, unexpected status, RSS growth of 50 MB
or more, fd or temp-file leak. The measured load runs until ``--seconds`` have passed and
``--min-requests`` were made.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psutil
from bench_api import free_port, start_server, wav_bytes

ROOT = Path(__file__).resolve().parents[1]
SAA = Path(os.environ.get("ACCENT_RATER_DATA", ROOT.parent / "shared" / "data")) / "saa"
MAX_BYTES = 8_000_000
RSS_LIMIT_MB = 50.0


@dataclass
class Kind:
    """One kind of request (``send`` sends it): its share of the mix and the statuses it may get."""

    name: str
    expect: frozenset[int]
    weight: float


@dataclass
class Stats:
    statuses: Counter = field(default_factory=Counter)  # (kind, status)
    dropped: Counter = field(default_factory=Counter)  # (kind, exception)
    unexpected: Counter = field(default_factory=Counter)
    latency: list[float] = field(default_factory=list)  # valid ratings of the measured phase
    total: int = 0  # requests sent
    measured: int = 0  # requests of the measured phase
    measuring: bool = False


def valid_files(n_saa: int) -> list[Path]:
    """Fixtures, bundled samples and ``n_saa`` SAA recordings of 20-40 s spread over the corpus."""
    files = sorted((ROOT / "tests" / "fixtures").glob("*.flac")) + sorted((ROOT / "src/accent_rater/assets/samples").glob("*.opus"))
    if n_saa and (SAA / "speakers.csv").is_file():
        with open(SAA / "speakers.csv") as fh:
            rows = sorted((r for r in csv.DictReader(fh) if 20 < float(r["duration_s"] or 0) < 40), key=lambda r: r["speaker_id"])
        files += [SAA / r["path"] for r in rows[:: max(1, len(rows) // n_saa)][:n_saa]]
    return files


KINDS = [
    Kind("valid", frozenset({200}), 0.45),
    Kind("batch_with_bad_part", frozenset({200}), 0.08),
    Kind("empty", frozenset({422}), 0.05),
    Kind("truncated", frozenset({200, 415, 422}), 0.06),
    Kind("random_bytes", frozenset({415}), 0.06),
    Kind("text_file", frozenset({415}), 0.05),
    Kind("raw_body_to_batch", frozenset({415}), 0.05),
    Kind("oversized", frozenset({413}), 0.05),
    Kind("oversized_chunked", frozenset({413}), 0.05),
    Kind("silence_3min", frozenset({422}), 0.05),
    Kind("bad_query", frozenset({422}), 0.05),
]


async def send(c: httpx.AsyncClient, kind: str, rng: random.Random, clips: list[tuple[str, bytes]], big: bytes,
               silence: bytes) -> httpx.Response:
    name, data = rng.choice(clips)
    if kind == "valid":
        if rng.random() < 0.5:
            return await c.post("/v1/rate", files={"file": (name, data)})
        return await c.post("/v1/rate", content=data, headers={"Content-Type": "application/octet-stream"})
    if kind == "batch_with_bad_part":
        r = await c.post("/v1/rate/batch", files=[("files", (name, data)), ("files", ("bad.bin", rng.randbytes(20_000)))])
        good, bad = r.json()["results"] if r.status_code == 200 else ({}, {})
        if r.status_code == 200 and not ("p_native" in good and bad.get("error", {}).get("code") == "not_audio"):
            raise AssertionError(f"batch results: {r.text[:300]}")
        return r
    if kind == "empty":
        return await c.post("/v1/rate", content=b"")
    if kind == "truncated":
        return await c.post("/v1/rate", files={"file": (name, data[: len(data) // 3])})
    if kind == "random_bytes":
        return await c.post("/v1/rate", content=rng.randbytes(65_536), headers={"Content-Type": "audio/ogg"})
    if kind == "text_file":
        return await c.post("/v1/rate", files={"file": ("notes.txt", b"not audio\n" * 500, "text/plain")})
    if kind == "raw_body_to_batch":
        return await c.post("/v1/rate/batch", content=data, headers={"Content-Type": "audio/ogg"})
    if kind == "oversized":
        return await c.post("/v1/rate", content=big)
    if kind == "oversized_chunked":
        async def chunks():
            for i in range(0, len(big), 65_536):
                yield big[i: i + 65_536]

        return await c.post("/v1/rate", content=chunks())
    if kind == "silence_3min":
        return await c.post("/v1/rate", content=silence, headers={"Content-Type": "audio/wav"})
    if kind == "bad_query":
        return await c.post("/v1/rate", params={"threshold": "2"}, content=data)
    raise ValueError(kind)


async def client(rng: random.Random, url: str, until: float, until_total: int, stats: Stats, clips: list[tuple[str, bytes]],
                 big: bytes, silence: bytes) -> None:
    names, weights = [k.name for k in KINDS], [k.weight for k in KINDS]
    expect = {k.name: k.expect for k in KINDS}
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(300, connect=10)) as c:
        while time.monotonic() < until or stats.total < until_total:
            kind = rng.choices(names, weights)[0]
            t0 = time.monotonic()
            stats.total += 1
            try:
                r = await send(c, kind, rng, clips, big, silence)
            except (httpx.HTTPError, AssertionError, ValueError) as exc:  # ValueError: a body that is not JSON
                stats.dropped[(kind, type(exc).__name__)] += 1
                continue
            stats.statuses[(kind, r.status_code)] += 1
            if r.status_code not in expect[kind]:
                stats.unexpected[(kind, r.status_code, r.text[:120])] += 1
            if stats.measuring:
                stats.measured += 1
                if kind == "valid" and r.status_code == 200:
                    stats.latency.append(time.monotonic() - t0)


async def sample_rss(proc: psutil.Process, out: list[tuple[float, float]], stop: asyncio.Event, stats: Stats) -> None:
    """RSS once a second, and a progress line on stderr every 15 s."""
    t0 = time.monotonic()
    while not stop.is_set():
        out.append((time.monotonic() - t0, proc.memory_info().rss / 2**20))
        if len(out) % 15 == 0:
            done = sum(stats.statuses.values())
            print(f"{out[-1][0]:5.0f} s: {done} requests ({stats.measured} measured), RSS {out[-1][1]:.0f} MB", file=sys.stderr)
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            pass


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) >= 2 else (values[0] if values else float("nan"))


async def run(args: argparse.Namespace, url: str, server: psutil.Process) -> dict:
    """Warm-up load, then the measured load; RSS and open fds are compared with the server idle after each."""
    clips = [(p.name, p.read_bytes()) for p in valid_files(args.saa)]
    big, silence = os.urandom(MAX_BYTES + 1_000_000), wav_bytes(np.zeros(180 * 16_000, np.int16), 16_000)
    rngs = [random.Random(i) for i in range(args.clients)]
    stats, rss, stop = Stats(), [], asyncio.Event()
    sampler = asyncio.create_task(sample_rss(server, rss, stop, stats))

    async def load(seconds: float, min_requests: int) -> float:
        start, until_total = time.monotonic(), stats.total + min_requests
        await asyncio.gather(*(client(rng, url, start + seconds, until_total, stats, clips, big, silence) for rng in rngs))
        await asyncio.sleep(2.0)  # idle: the server has closed the clients' connections
        return time.monotonic() - start - 2.0

    warm_wall = await load(args.warmup, args.warmup_requests)
    idle_warm, fds_before, load_before = server.memory_info().rss / 2**20, server.num_fds(), os.getloadavg()
    stats.measuring, first_sample = True, len(rss)
    wall = await load(args.seconds, args.min_requests)
    idle_end, fds_after, load_after = server.memory_info().rss / 2**20, server.num_fds(), os.getloadavg()
    stop.set()
    await sampler
    lat = stats.latency
    by_status = Counter()
    for (_, status), n in stats.statuses.items():
        by_status[status] += n
    return {
        "clients": args.clients,
        "warmup_s": round(warm_wall, 1),
        "seconds": round(wall, 1),
        "requests": sum(stats.statuses.values()) + sum(stats.dropped.values()),
        "requests_measured": stats.measured,
        "valid_files": len(clips),
        "statuses": {str(k): v for k, v in sorted(by_status.items())},
        "by_kind": {f"{k} {s}": n for (k, s), n in sorted(stats.statuses.items())},
        "server_errors_5xx": sum(n for s, n in by_status.items() if s >= 500),
        "dropped_connections": {f"{k} {e}": n for (k, e), n in stats.dropped.items()},
        "unexpected_statuses": {f"{k} {s} {t}": n for (k, s, t), n in stats.unexpected.items()},
        "valid_latency_s": {"n": len(lat), "p50": round(pct(lat, 50), 2), "p95": round(pct(lat, 95), 2),
                            "max": round(max(lat, default=float("nan")), 2)},
        "rss_mb": {"idle_after_warmup": round(idle_warm, 1), "idle_at_end": round(idle_end, 1),
                   "max_under_load": round(max(m for _, m in rss[first_sample:]), 1), "growth": round(idle_end - idle_warm, 1)},
        "open_fds": {"idle_after_warmup": fds_before, "idle_at_end": fds_after},
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(),
        "clip_names": [n for n, _ in clips],
    }


def markdown(r: dict) -> str:
    lat, rss, fds = r["valid_latency_s"], r["rss_mb"], r["open_fds"]
    lines = [
        "| measure | value |",
        "|---|---|",
        f"| clients x duration | {r['clients']} x {r['seconds']} s |",
        f"| requests: all (measured, after a warm-up of {r['warmup_s']} s) | {r['requests']} ({r['requests_measured']}) |",
        f"| statuses | {', '.join(f'{k}: {v}' for k, v in r['statuses'].items())} |",
        f"| 5xx | {r['server_errors_5xx']} |",
        f"| dropped connections | {sum(r['dropped_connections'].values())} |",
        f"| unexpected statuses | {sum(r['unexpected_statuses'].values())} |",
        f"| valid ratings: n, p50 / p95 / max latency | {lat['n']}, {lat['p50']} / {lat['p95']} / {lat['max']} s |",
        f"| server RSS, idle after warm-up -> idle at end (max under load) | {rss['idle_after_warmup']} -> "
        f"{rss['idle_at_end']} MB ({rss['max_under_load']} MB): growth {rss['growth']} MB |",
        f"| server open fds, idle after warm-up -> idle at end | {fds['idle_after_warmup']} -> {fds['idle_at_end']} |",
        f"| files left in the server's TMPDIR | {r['temp_files_left']} |",
        f"| uploaded file names in the server log | {r['file_names_in_log']} |",
        f"| shutdown (SIGTERM) | exit {r['exit_code']} in {r['shutdown_s']} s |",
        f"| host | {r['cpus']} CPUs, load average {r['loadavg_before'][0]} before, {r['loadavg_after'][0]} after |",
        f"| result | {'PASS' if not r['failures'] else 'FAIL: ' + '; '.join(r['failures'])} |",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=120.0, help="load duration (at least)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--warmup", type=float, default=30.0, help="seconds of the same load before the measured one (at least)")
    ap.add_argument("--warmup-requests", type=int, default=100, help="requests of that warm-up (at least)")
    ap.add_argument("--min-requests", type=int, default=500, help="requests in the measured load (at least)")
    ap.add_argument("--saa", type=int, default=6, help="SAA recordings among the valid uploads")
    ap.add_argument("--out", type=Path, help="also write the report (Markdown + JSON) here")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server on the way out

    with tempfile.TemporaryDirectory(prefix="load_test_") as scratch:
        server_tmp = Path(scratch) / "tmp"
        server_tmp.mkdir()
        log_path = Path(scratch) / "server.log"
        port = free_port()
        proc = start_server(port, log_path, ("--max-bytes", str(MAX_BYTES)), env={"TMPDIR": str(server_tmp)})
        try:
            result = asyncio.run(run(args, f"http://127.0.0.1:{port}", psutil.Process(proc.pid)))
        finally:
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(180)
        log = log_path.read_text(errors="replace")
        result.update(
            exit_code=code,
            shutdown_s=round(time.monotonic() - t0, 1),
            temp_files_left=len(list(server_tmp.iterdir())),
            file_names_in_log=sum(log.count(name) for name in set(result.pop("clip_names")) | {"bad.bin", "notes.txt"}),
        )
    failures = []
    if result["server_errors_5xx"]:
        failures.append("5xx responses")
    if result["dropped_connections"]:
        failures.append("dropped connections")
    if result["unexpected_statuses"]:
        failures.append("unexpected statuses")
    if result["rss_mb"]["growth"] >= RSS_LIMIT_MB:
        failures.append(f"RSS grew by {result['rss_mb']['growth']} MB")
    if result["open_fds"]["idle_at_end"] > result["open_fds"]["idle_after_warmup"]:
        failures.append("file descriptors left open")
    if result["temp_files_left"]:
        failures.append("temp files left")
    if result["file_names_in_log"]:
        failures.append("file names in the log")
    if code not in (0, -signal.SIGTERM):
        failures.append(f"server exit code {code}")
    result["failures"] = failures
    report = f"{markdown(result)}\n\n```json\n{json.dumps(result, indent=1)}\n```\n"
    print(report)
    if args.out:
        args.out.write_text(f"# REST API under hostile load\n\n`{' '.join(['scripts/load_test.py', *sys.argv[1:]])}`\n\n{report}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
