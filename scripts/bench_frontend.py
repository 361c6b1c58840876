"""Benchmark the audio front-end: decode + band limit + VAD + trimming + log-mel segments
(``audio.prepare`` followed by ``logmel.segment_features``) on a 30 s recording.

The 30 s clip is real Speech Accent Archive speech: the bundled sample clips
(src/accent_rater/assets/samples) concatenated and cut to exactly 30.000 s, written into a temporary
folder as Ogg Opus (32 kbps) and as 16-bit WAV at 16 kHz. Every timing is warm (a few untimed runs
first); the table gives wall-clock p50/p95 over ``--runs`` runs, the process CPU time (a proxy for
the wall time on an idle machine when torch runs one thread) and the per-stage split of the total.

    .venv/bin/python scripts/bench_frontend.py [--runs 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from accent_rater import audio, logmel

SAMPLES = Path(audio.__file__).resolve().parent / "assets" / "samples"
TARGET_MS = 150.0
SECONDS = 30.0


def make_clip(folder: Path) -> dict[str, Path]:
    import av
    import soundfile as sf

    parts = [audio.load_audio(p) for p in sorted(SAMPLES.glob("*.opus"))]
    wav = np.concatenate(parts)[: int(SECONDS * audio.SAMPLE_RATE)]
    assert len(wav) == int(SECONDS * audio.SAMPLE_RATE), "bundled samples are shorter than 30 s in total"
    wav_path = folder / "clip30.wav"
    sf.write(str(wav_path), wav, audio.SAMPLE_RATE, subtype="PCM_16")
    opus_path = folder / "clip30.opus"
    with av.open(str(opus_path), "w", format="ogg") as out:
        st = out.add_stream("libopus", rate=audio.SAMPLE_RATE, layout="mono")
        st.bit_rate = 32_000
        frame = av.AudioFrame.from_ndarray(wav[None, :].astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = audio.SAMPLE_RATE
        for pkt in list(st.encode(frame)) + list(st.encode(None)):
            out.mux(pkt)
    return {"Opus 32 kbps": opus_path, "WAV 16 kHz s16": wav_path}


def stages(path: Path) -> dict[str, float]:
    """One run with the per-stage split (same work as prepare + segment_features)."""
    t0 = time.perf_counter()
    wav = audio.load_audio(path)
    t1 = time.perf_counter()
    regions = audio.detect_speech(wav)
    t2 = time.perf_counter()
    trimmed, _ = audio.trim_pauses(wav, regions)
    trimmed = audio.normalize_level(trimmed)
    windows, _ = audio.make_segments(trimmed)
    logmel.log_mel(windows)
    t3 = time.perf_counter()
    return {"decode+band": t1 - t0, "vad": t2 - t1, "features": t3 - t2}


def total(path: Path) -> tuple[float, float, int]:
    """(wall seconds, process CPU seconds, windows) for prepare + segment_features."""
    t0, c0 = time.perf_counter(), time.process_time()
    speech = audio.prepare(path)
    feats, _ = logmel.segment_features(speech)
    return time.perf_counter() - t0, time.process_time() - c0, int(feats.shape[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: leave torch's own)")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    ms = lambda xs, q: 1000.0 * float(np.percentile(xs, q))  # noqa: E731

    with tempfile.TemporaryDirectory() as tmp:
        clips = make_clip(Path(tmp))
        rows = []
        for label, path in clips.items():
            for _ in range(args.warmup):
                total(path)
                stages(path)
            totals, cpus, n_windows = [], [], 0
            split: dict[str, list[float]] = {"decode+band": [], "vad": [], "features": []}
            for _ in range(args.runs):
                t, c, n_windows = total(path)
                totals.append(t)
                cpus.append(c)
                for k, v in stages(path).items():
                    split[k].append(v)
            rows.append((label, path.stat().st_size, n_windows, totals, cpus, split))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Front-end on a {SECONDS:.0f} s clip: prepare + segment_features, warm, {args.runs} runs; "
          f"torch threads {torch.get_num_threads()}; {os.cpu_count()} CPUs, load average {load:.1f}\n")
    print("| input | size | windows | p50 ms | p95 ms | CPU ms p50 | decode+band p50 | VAD p50 | features p50 | < 150 ms (p50) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|:---:|")
    for label, size, n_windows, totals, cpus, split in rows:
        ok = "yes" if ms(totals, 50) < TARGET_MS else "no"
        print(
            f"| {label} | {size / 1024:.0f} KiB | {n_windows} | {ms(totals, 50):.1f} | {ms(totals, 95):.1f} | {ms(cpus, 50):.1f} | "
            f"{ms(split['decode+band'], 50):.1f} | {ms(split['vad'], 50):.1f} | {ms(split['features'], 50):.1f} | {ok} |"
        )


if __name__ == "__main__":
    main()
