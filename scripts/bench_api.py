"""Load-test the REST API: N requests from C concurrent clients, each posting a 30 s clip.

    .venv/bin/python scripts/bench_api.py                      # starts a server, 32 requests, 8 clients
    .venv/bin/python scripts/bench_api.py --requests 64 --concurrency 8
    .venv/bin/python scripts/bench_api.py --url http://127.0.0.1:8000   # an already running server

Prints a Markdown table: throughput (requests/s), p50/p95/max latency, error count, plus the
machine's CPU count and load average (the numbers mean little on a busy machine).
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import threading
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = ROOT / "src" / "accent_rater" / "assets" / "samples" / "native_us_english33.opus"


def clip_wav(path: Path, seconds: float) -> bytes:
    """``path`` decoded (16 kHz, band-limited), looped to exactly ``seconds``, as a 16-bit WAV."""
    from accent_rater import audio

    wav = audio.load_audio(path)
    n = int(seconds * audio.SAMPLE_RATE)
    wav = np.tile(wav, int(np.ceil(n / len(wav))))[:n]
    return wav_bytes((np.clip(wav, -1.0, 1.0) * 32767).astype("<i2"), audio.SAMPLE_RATE)


def wav_bytes(pcm: np.ndarray, rate: int) -> bytes:
    """Mono 16-bit samples as a WAV file in memory."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(pcm, "<i2").tobytes())
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, log_path: Path, options: tuple[str, ...] = (), env: dict[str, str] | None = None) -> subprocess.Popen:
    """``accent-rater serve`` (with ``options``) on 127.0.0.1:``port``, once its /healthz answers."""
    env = {**os.environ, **(env or {})}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p)
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "accent_rater", "serve", "--host", "127.0.0.1", "--port", str(port), *options],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited ({proc.returncode}); see {log_path}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    proc.terminate()
    raise SystemExit(f"server not ready after 180 s; see {log_path}")


def run(url: str, body: bytes, n: int, concurrency: int) -> tuple[float, list[float], int, dict[str, int]]:
    local = threading.local()
    clients: list[httpx.Client] = []
    lock = threading.Lock()

    def client() -> httpx.Client:
        if not hasattr(local, "c"):
            local.c = httpx.Client(base_url=url, timeout=httpx.Timeout(600, connect=10))
            with lock:
                clients.append(local.c)
        return local.c

    def one(i: int) -> tuple[float, str]:
        t0 = time.perf_counter()
        try:
            r = client().post("/v1/rate", files={"file": (f"clip{i}.wav", body, "audio/wav")})
            outcome = "ok" if r.status_code == 200 else f"http {r.status_code}"
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
        return time.perf_counter() - t0, outcome

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        out = list(pool.map(one, range(n)))
    wall = time.perf_counter() - t0
    for c in clients:
        c.close()
    kinds: dict[str, int] = {}
    for _, k in out:
        kinds[k] = kinds.get(k, 0) + 1
    return wall, [lat for lat, _ in out], sum(v for k, v in kinds.items() if k != "ok"), kinds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="benchmark this running server instead of starting one")
    ap.add_argument("--requests", "-n", type=int, default=32)
    ap.add_argument("--concurrency", "-c", type=int, default=8)
    ap.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    ap.add_argument("--seconds", type=float, default=30.0, help="clip length sent (the clip is looped)")
    ap.add_argument("--warmup", type=int, default=2, help="requests sent (one at a time) before timing")
    args = ap.parse_args()

    body = clip_wav(args.clip, args.seconds)
    proc = None
    url = args.url
    if url is None:
        port = free_port()
        log_path = Path(os.environ.get("BENCH_LOG", "/tmp/bench_api_server.log"))
        t0 = time.perf_counter()
        proc = start_server(port, log_path)
        url = f"http://127.0.0.1:{port}"
        print(f"server up in {time.perf_counter() - t0:.1f} s (log: {log_path})", file=sys.stderr)
    try:
        with httpx.Client(base_url=url, timeout=600) as c:
            model = c.get("/healthz").json()["model"]
            for _ in range(args.warmup):
                r = c.post("/v1/rate", files={"file": ("warmup.wav", body, "audio/wav")})
                r.raise_for_status()
        load_before = os.getloadavg()
        wall, lats, errors, kinds = run(url, body, args.requests, args.concurrency)
        load_after = os.getloadavg()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)

    lat = np.asarray(lats)
    print(f"\nAccent Rater API benchmark — model `{model}`, {args.seconds:.0f} s WAV clip ({len(body) / 2**20:.2f} MiB) "
          f"from `{args.clip.name}`, multipart POST /v1/rate\n")
    print("| requests | clients | wall s | requests/s | p50 s | p95 s | max s | errors |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {args.requests} | {args.concurrency} | {wall:.1f} | {args.requests / wall:.2f} | "
          f"{np.percentile(lat, 50):.2f} | {np.percentile(lat, 95):.2f} | {lat.max():.2f} | {errors} |")
    print(f"\nCPU cores: {os.cpu_count()}; load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after.")
    if errors:
        print(f"Outcomes: {kinds}")


if __name__ == "__main__":
    main()
