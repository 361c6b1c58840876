"""The speed budget of issue 21, measured in one run on this host (hosts differ up to 2x: read the
ratios to the seed's recipe, measured in the same run on the same threads):

    .venv/bin/python scripts/bench_speed.py [--runs 7] [--files 40] [--out reports/speed.md]

- seed recipe: the front-end (decode, band limit, VAD), then the seed's ResNet18 on 7 s windows with a
  3.5 s hop (PyTorch, 2 threads), on a 30 s clip of archive speech;
- the default model: ``Rater.rate`` on the same clip, warm (2 threads), and where its time goes
  (decode, VAD, log-mel, encoder, heads);
- ``accent-rater batch`` over ``--files`` archive recordings spread over the corpus, one worker, in a
  fresh process: seconds of audio per CPU-second (user + system of the whole command, start-up
  included);
- CLI cold start: ``accent-rater rate --json`` on a 5 s clip in a fresh process, to its result;
- word feedback: ``Rater.rate(words=True)`` and ``pronunciation=True`` on the 30 s clip, warm.
Prints a Markdown table and writes it to ``--out`` with the host's load before and after.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_backbone import timed as median_time  # noqa: E402

from accent_rater import Rater, audio, logmel  # noqa: E402
from accent_rater.backbones import whisper  # noqa: E402
from accent_rater.threads import one_blas_thread  # noqa: E402

from bench_rate import REPO, make_clip  # noqa: E402

CLI = str(Path(sys.executable).parent / "accent-rater")
SAA = REPO.parent / "shared" / "data" / "saa" / "audio"
TARGETS = {"rate": 0.5, "batch": 100.0, "cold": 1.2, "words": 1.3}


def children_cpu() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def spread(folder: Path, n: int) -> list[Path]:
    files = sorted(folder.glob("*.opus"))
    return [files[i * len(files) // n] for i in range(n)]


def rating_rows(clip: Path, runs: int) -> tuple[float, list[tuple[str, float]]]:
    """The seed recipe (the reference) and the default's rating, with its stages, in seconds."""
    import torch

    from accent_rater.models.resnet import SeedResNet18

    torch.set_num_threads(2)
    resnet = SeedResNet18().eval()

    @torch.inference_mode()
    def seed() -> None:
        windows, _ = audio.make_segments(audio.prepare(clip).audio)
        resnet(logmel.log_mel(windows))

    ref = median_time(seed, runs)
    rater = Rater(threads=2)
    speech = audio.prepare(clip)
    wav = audio.load_audio(clip)
    spans = audio.chunk_spans(len(speech.audio))
    mels = [whisper.log_mel(speech.audio[a:b]) for a, b in spans]
    feats = rater.features(speech)
    with one_blas_thread():
        rows = [
            ("seed recipe: front-end + ResNet18 per 7 s window (3.5 s hop)", ref),
            ("default: `Rater.rate`, warm", median_time(lambda: rater.rate(clip), runs)),
            ("  decode + band limit", median_time(lambda: audio.load_audio(clip), runs)),
            ("  voice activity (silero-vad)", median_time(lambda: audio.detect_speech(wav), runs)),
            ("  log-mel", median_time(lambda: [whisper.log_mel(speech.audio[a:b]) for a, b in spans], runs)),
            (f"  encoder ({rater.meta['encoder']}, {len(spans)} windows)", median_time(lambda: [rater.encoder(m) for m in mels], runs)),
            ("  heads, calibration, first language", median_time(lambda: rater.rate_features(feats), runs)),
        ]
    return ref, rows


def batch_row(files: int, tmp: Path) -> tuple[float, float, float]:
    """(seconds of audio, CPU seconds, wall seconds) of ``accent-rater batch`` over ``files`` recordings."""
    import pyarrow.parquet as pq

    folder = tmp / "batch"
    folder.mkdir()
    for p in spread(SAA, files):
        (folder / p.name).symlink_to(p)
    out = tmp / "batch.parquet"
    cpu0, t0 = children_cpu(), time.perf_counter()
    done = subprocess.run([CLI, "batch", str(folder), "--out", str(out), "--workers", "1"], capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    table = pq.read_table(out, columns=["duration_seconds", "error_code"]).to_pydict()
    if any(table["error_code"]):
        raise SystemExit(f"batch: {sum(map(bool, table['error_code']))} of {files} files failed")
    return float(sum(table["duration_seconds"])), cpu, wall


def cold_start(clip: Path, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        done = subprocess.run([CLI, "rate", "--json", str(clip)], capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        if done.returncode != 0:
            raise SystemExit(done.stderr[-2000:])
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "speed.md")
    args = ap.parse_args()
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        c30, c5 = make_clip(SAA, 30, tmp / "c30.wav"), make_clip(SAA, 5, tmp / "c5.wav")
        ref, rows = rating_rows(c30, args.runs)
        audio_s, cpu_s, wall_s = batch_row(args.files, tmp)
        cold = cold_start(c5)
        rater = Rater(threads=2)
        words = pron = None
        try:
            rater.transcriber  # noqa: B018 - loads Whisper base once
            words = median_time(lambda: rater.rate(c30, words=True), max(3, args.runs // 2))
            pron = median_time(lambda: rater.rate(c30, pronunciation=True), max(3, args.runs // 2))
        except whisper.WeightsError as exc:
            print(f"word feedback not measured: {exc}")
    loads.append(os.getloadavg()[0])
    lines = [f"Host: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
             f"{loads[0]:.1f} before and {loads[1]:.1f} after; median of {args.runs} warm runs; 30 s clip of archive speech "
             "unless stated.", "", "| what | time | x seed recipe | target |", "|---|---|---|---|"]
    for what, t in rows:
        target = f"<= {TARGETS['rate']}x" if what.startswith("default") else ""
        lines.append(f"| {what} | {t * 1000:.0f} ms | {t / ref:.2f} | {target} |")
    lines.append(f"| `accent-rater batch`, {args.files} archive recordings, 1 worker: {audio_s:.0f} s of audio in "
                 f"{cpu_s:.1f} CPU-s ({wall_s:.1f} s wall), start-up included | **{audio_s / cpu_s:.0f} s of audio per CPU-second** "
                 f"| | >= {TARGETS['batch']:.0f} |")
    lines.append(f"| CLI cold start to the first result (`rate --json`, 5 s clip) | {cold:.2f} s | {cold / ref:.2f} | <= {TARGETS['cold']} s |")
    if words is not None:
        lines.append(f"| `Rater.rate(words=True)`, warm | {words:.2f} s | {words / ref:.2f} | <= {TARGETS['words']} s |")
        lines.append(f"| `Rater.rate(pronunciation=True)`, warm | {pron:.2f} s | {pron / ref:.2f} | |")
    text = "\n".join(lines)
    print(text)
    args.out.write_text("# Speed (`scripts/bench_speed.py`)\n\n" + text + "\n")


if __name__ == "__main__":
    main()
