"""Validation of word feedback (issue 13). No word-level human labels exist here, so it measures
what can be measured on dev speakers of the Speech Accent Archive reading the passage:

1. natives: share of the passage's words not ``ok`` (target <= 5%);
2. timing: Whisper's word start/end against a pocketsphinx forced alignment of the same recording
   (the reference where it succeeds; target: both within 0.15 s for >= 90% of words);
3. non-natives: share of flagged words against natives (95% bootstrap CIs over speakers), and its
   Spearman correlation with the bundled model's p_native (expected negative) and age_onset
   (expected positive);
4. hostile input built from real recordings: a reading of another text, long silences between
   sentences, a restart in the middle, a reading that stops half-way;
5. time per recording for transcription + alignment (the machine is shared: see the load average).

The thresholds ``P_OK`` and ``NEAR_MISS`` are checked on a separate tuning set of natives, never chosen
on the evaluation speakers (the sweep over ``P_OK`` is in the report for both). Needs the ``pron`` extra
(pocketsphinx) for the reference alignment.

    .venv/bin/python scripts/validate_words.py [--natives 60] [--non-natives 60] [--tune 10] [--hostile 8]

Everything computed from audio is cached per recording in ``cache/words/`` (what Whisper heard,
p_native, the reference alignment), so a re-run only re-analyses. Writes ``reports/words/results.json``
and the tables that ``reports/words/README.md`` quotes (``reports/words/tables.md``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))  # the pocketsphinx alignment lives with the experiments

from accent_rater import Rater, audio  # noqa: E402
from accent_rater import words as W  # noqa: E402

CORPUS = REPO.parent / "shared" / "data" / "saa"
CACHE = REPO / "cache" / "words"
OUT = REPO / "reports" / "words"
TOL = 0.15  # seconds
SEED = 13
OTHER_TEXT = ("When the sunlight strikes raindrops in the air, they act as a prism and form a rainbow. The rainbow "
              "is a division of white light into many beautiful colors. These take the shape of a long round arch, "
              "with its path high above, and its two ends apparently beyond the horizon.")  # the Rainbow Passage
SENTENCE_ENDS = (2, 33, 48)  # "Stella.", "Bob.", "kids.": silence is inserted after these words
RESTART_AFTER = 19  # "peas,": the reader stops after this word and starts again from the beginning
STOP_AFTER = 33  # "Bob.": the reading ends after this word
SILENCE_S = 3.0


def sample(n_nat: int, n_non: int, n_tune: int, rng: np.random.Generator) -> tuple[list[dict], list[dict], list[dict]]:
    """Tuning natives, evaluation natives, evaluation non-natives (first languages in turn)."""
    rows = list(csv.DictReader(open(CORPUS / "speakers.csv")))
    nat = [r for r in rows if r["label"] == "native"]
    rng.shuffle(nat)
    by_l1: dict[str, list[dict]] = {}
    for r in rows:
        if r["label"] == "non_native":
            by_l1.setdefault(r["native_language"], []).append(r)
    for group in by_l1.values():
        rng.shuffle(group)
    non = [g[i] for i in range(max(map(len, by_l1.values()))) for g in by_l1.values() if i < len(g)][:n_non]
    return nat[:n_tune], nat[n_tune: n_tune + n_nat], non


# --- per-recording work (cached) -------------------------------------------------------------------
def reference_alignment(wav: np.ndarray) -> list[tuple[float, float]] | None:
    """(start, end) in seconds of each passage word by pocketsphinx forced alignment (optional
    silences and fillers between words), or None when it fails."""
    import pronunciation as ps

    words = ps.normalize_text(W.PASSAGE)
    data = (np.clip(wav / max(1.0, float(np.abs(wav).max())), -1, 1) * 32767).astype(np.int16).tobytes()
    with ps._lock:
        d = ps._get_decoder()
        try:
            d.set_align_text(" ".join(words))
            ps._decode(d, data)
            res = ps._state_align(d, data) if d.hyp() is not None else None
        except RuntimeError:
            return None
    if res is None:
        return None
    real = [(s / ps.FRAME_RATE, (s + n) / ps.FRAME_RATE) for name, s, n, _ in res[0] if not ps._is_filler(name)]
    return real if len(real) == len(words) else None


def listen(rater: Rater, wav: np.ndarray) -> dict:
    """What Whisper heard in a waveform (timed in the original recording) and how long it took."""
    speech = audio.prepare_waveform(wav)
    t0 = time.perf_counter()
    heard = rater.transcriber(speech)
    seconds = time.perf_counter() - t0
    return {"heard": [list(h) for h in heard], "regions": speech.regions, "seconds": seconds,
            "speech_s": len(speech.audio) / audio.SAMPLE_RATE, "load": os.getloadavg()[0],
            "p_native": rater.rate_features(rater.features(speech)).p_native}


def cached(name: str, make, wave) -> dict:
    """``make()`` once per name; ``wave()`` rebuilds the waveform to add the speech regions to a
    cache written before they were kept."""
    path = CACHE / f"{name}.json"
    out = json.loads(path.read_text()) if path.exists() else make()
    if "heard" in out and "regions" not in out:
        out["regions"] = audio.prepare_waveform(wave()).regions
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    return out


def raw_heard(rec: dict) -> list[W.Heard]:
    return [W.Heard(*h) for h in rec["heard"]]


def heard_of(rec: dict) -> list[W.Heard]:
    """What was heard, word edges at pauses snapped to the speech regions (as ``Transcriber`` does)."""
    return W.snap_to_speech(raw_heard(rec), [tuple(r) for r in rec["regions"]])


def hostile(rater: Rater, row: dict, clean: dict) -> dict:
    """The four hostile readings of one speaker (cached), built from the recording and the times
    Whisper gave its words in the clean run."""
    wav = audio.load_audio(CORPUS / row["path"])
    words, _ = W.feedback(raw_heard(clean), W.PASSAGE)
    passage = [w for w in words if w.status != "extra"]
    sr = audio.SAMPLE_RATE

    def gap(i: int) -> float:  # a moment between word i and word i + 1
        a, b = passage[i].end, passage[i + 1].start
        return (a + b) / 2 if a is not None and b is not None else float("nan")

    def silence_case() -> tuple[dict, np.ndarray | None]:
        cuts = [gap(i) for i in SENTENCE_ENDS]
        if any(np.isnan(cuts)):
            return {"skipped": "a sentence end was not heard in the clean run"}, None
        noise = np.random.default_rng(0).normal(0, 10 ** (-60 / 20), int(SILENCE_S * sr)).astype(np.float32)
        parts, last = [], 0
        for c in cuts:
            parts += [wav[last: int(c * sr)], noise]
            last = int(c * sr)
        return {"cuts": cuts}, np.concatenate(parts + [wav[last:]])

    def restart_case() -> tuple[dict, np.ndarray | None]:
        cut = gap(RESTART_AFTER)
        if np.isnan(cut):
            return {"skipped": "the restart point was not heard in the clean run"}, None
        return {"offset": cut + 0.5}, np.concatenate([wav[: int(cut * sr)], np.zeros(int(0.5 * sr), np.float32), wav])

    def stop_case() -> tuple[dict, np.ndarray | None]:
        cut = gap(STOP_AFTER)
        if np.isnan(cut):
            return {"skipped": "the stopping point was not heard in the clean run"}, None
        return {"cut": cut}, wav[: int(cut * sr)]

    def run(build) -> dict:
        meta, wave = build()
        return meta if wave is None else {**meta, **listen(rater, wave)}

    sid = row["speaker_id"]
    return {name: cached(f"{sid}.{name}", partial(run, build), lambda b=build: b()[1])
            for name, build in (("silence", silence_case), ("restart", restart_case), ("stop", stop_case))}


# --- analysis ----------------------------------------------------------------------------------------
def ci(x, stat=np.mean) -> list[float]:
    x = np.asarray(x, float)
    if len(x) < 2:
        return [float(stat(x)) if len(x) else float("nan"), float("nan"), float("nan")]
    res = stats.bootstrap((x,), stat, n_resamples=2000, method="percentile", random_state=0)
    return [float(stat(x)), float(res.confidence_interval.low), float(res.confidence_interval.high)]


def spearman_ci(x, y) -> list[float]:
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]

    def rho(a, b):
        return stats.spearmanr(a, b)[0]

    res = stats.bootstrap((x, y), rho, paired=True, vectorized=False, n_resamples=2000, method="percentile",
                          random_state=0)
    return [float(rho(x, y)), float(res.confidence_interval.low), float(res.confidence_interval.high), int(keep.sum())]


def flagged_share(rec: dict) -> float:
    words, reading = W.feedback(heard_of(rec), W.PASSAGE)
    return 1.0 - reading.ok / reading.words


def timing(recs: list[dict]) -> dict:
    """Whisper word times against the reference alignment, over the words heard (not missed)."""
    d_start, d_end, per_speaker = [], [], []
    for rec in recs:
        ref = rec.get("reference")
        if not ref:
            continue
        words = [w for w in W.feedback(heard_of(rec), W.PASSAGE)[0] if w.status != "extra"]
        both = [(abs(w.start - r[0]), abs(w.end - r[1])) for w, r in zip(words, ref) if w.start is not None]
        d_start += [a for a, _ in both]
        d_end += [b for _, b in both]
        per_speaker.append(np.mean([a <= TOL and b <= TOL for a, b in both]))
    s, e = np.array(d_start), np.array(d_end)
    return {"speakers_aligned": len(per_speaker), "speakers": len(recs), "words": int(len(s)),
            "within_both": float(np.mean((s <= TOL) & (e <= TOL))), "within_start": float(np.mean(s <= TOL)),
            "within_end": float(np.mean(e <= TOL)), "median_abs_start": float(np.median(s)),
            "median_abs_end": float(np.median(e)), "per_speaker_within_both": ci(per_speaker)}


def statuses(rec: dict, text: str = W.PASSAGE) -> list[W.Word]:
    return [w for w in W.feedback(heard_of(rec), text)[0] if w.status != "extra"]


def hostile_summary(clean: dict, cases: dict) -> dict:
    base = statuses(clean)
    out: dict = {}
    wrong, reading = W.feedback(heard_of(clean), OTHER_TEXT)
    out["wrong_text"] = {"ok_share": reading.ok / reading.words, "warned": W.reading_warning(reading) is not None}
    sil = cases["silence"]
    if "heard" in sil:
        got = statuses(sil)
        shift = [w.start - b.start - SILENCE_S * sum(c < b.start for c in sil["cuts"])
                 for w, b in zip(got, base) if w.start is not None and b.start is not None]
        out["silence"] = {"agree": float(np.mean([w.status == b.status for w, b in zip(got, base)])),
                          "times_within_0.1": float(np.mean(np.abs(shift) <= 0.1))}
    rs = cases["restart"]
    if "heard" in rs:
        got_all = W.feedback(heard_of(rs), W.PASSAGE)[0]
        got = [w for w in got_all if w.status != "extra"]
        early = [w for w in got[: RESTART_AFTER + 1] if w.start is not None]
        out["restart"] = {"agree": float(np.mean([w.status == b.status for w, b in zip(got, base)])),
                          "first_words_from_second_try": float(np.mean([w.start >= rs["offset"] - 0.05 for w in early])),
                          "extra": sum(w.status == "extra" for w in got_all), "restarted_words": RESTART_AFTER + 1}
    st = cases["stop"]
    if "heard" in st:
        got = statuses(st)
        out["stop"] = {"later_missed": float(np.mean([w.status == "missed" for w in got[STOP_AFTER + 1:]])),
                       "earlier_agree": float(np.mean([w.status == b.status for w, b in
                                                       zip(got[: STOP_AFTER + 1], base[: STOP_AFTER + 1])]))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--natives", type=int, default=60)
    ap.add_argument("--non-natives", type=int, default=60)
    ap.add_argument("--tune", type=int, default=10, help="natives for choosing the thresholds (not evaluated)")
    ap.add_argument("--hostile", type=int, default=8, help="evaluation natives whose recordings are made hostile")
    args = ap.parse_args()
    tune, nat, non = sample(args.natives, args.non_natives, args.tune, np.random.default_rng(SEED))
    rater = Rater()

    def record(row: dict, reference: bool) -> dict:
        def make() -> dict:
            wav = audio.load_audio(CORPUS / row["path"])
            return {**listen(rater, wav), "reference": reference_alignment(wav) if reference else None}
        return {**cached(row["speaker_id"], make, lambda: audio.load_audio(CORPUS / row["path"])), "row": row}

    t0 = time.time()
    groups = {"tune": tune, "native": nat, "non_native": non}
    recs: dict[str, list[dict]] = {}
    for g, rows in groups.items():
        recs[g] = []
        for i, row in enumerate(rows):
            recs[g].append(record(row, reference=g != "non_native"))
            print(f"{g} {i + 1}/{len(rows)} {row['speaker_id']} ({time.time() - t0:.0f} s)", flush=True)
    hostile_rows = nat[: args.hostile]
    cases = {}
    for i, row in enumerate(hostile_rows):
        cases[row["speaker_id"]] = hostile(rater, row, recs["native"][i])
        print(f"hostile {i + 1}/{len(hostile_rows)} {row['speaker_id']} ({time.time() - t0:.0f} s)", flush=True)

    results = analyse(recs, cases, hostile_rows)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    (OUT / "tables.md").write_text(tables(results))
    print(tables(results))


def analyse(recs: dict[str, list[dict]], cases: dict, hostile_rows: list[dict]) -> dict:
    res: dict = {"thresholds": {"P_OK": W.P_OK, "NEAR_MISS": W.NEAR_MISS, "BEAM_SIZE": W.BEAM_SIZE}}
    # threshold sweep on the tuning natives (and, for transparency only, the evaluation natives)
    sweep: dict[str, dict[float, float]] = {"tune": {}, "native": {}}
    chosen = W.P_OK
    for p in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7):
        W.P_OK = p  # feedback reads the module's threshold
        for g in sweep:
            sweep[g][p] = float(np.mean([flagged_share(r) for r in recs[g]]))
    W.P_OK = chosen
    res["sweep_p_ok"] = sweep
    share = {g: [flagged_share(r) for r in recs[g]] for g in ("native", "non_native")}
    res["flagged"] = {g: {"mean": ci(v), "median": float(np.median(v)), "q90": float(np.quantile(v, 0.9)),
                          "n": len(v)} for g, v in share.items()}
    diff = stats.bootstrap((np.array(share["non_native"]), np.array(share["native"])), lambda a, b: np.mean(a) - np.mean(b),
                           n_resamples=2000, method="percentile", random_state=0, vectorized=False)
    res["flagged"]["difference"] = [float(np.mean(share["non_native"]) - np.mean(share["native"])),
                                    float(diff.confidence_interval.low), float(diff.confidence_interval.high)]
    res["auc_flagged_vs_label"] = float(np.mean([[a > b for b in share["native"]] for a in share["non_native"]])
                                        + 0.5 * np.mean([[a == b for b in share["native"]] for a in share["non_native"]]))
    both = recs["native"] + recs["non_native"]
    flags = share["native"] + share["non_native"]
    res["spearman"] = {
        "p_native_all": spearman_ci(flags, [r["p_native"] for r in both]),
        "p_native_non_natives": spearman_ci(share["non_native"], [r["p_native"] for r in recs["non_native"]]),
        "age_onset_non_natives": spearman_ci(share["non_native"], [float(r["row"]["age_onset"] or "nan") for r in recs["non_native"]]),
    }
    per_status = {}
    for g in ("native", "non_native"):
        counts = np.array([list(W.feedback(heard_of(r), W.PASSAGE)[1])[1:6] for r in recs[g]], float)
        per_status[g] = dict(zip(("ok", "unclear", "different", "missed", "extra"), (counts.mean(0)).round(2).tolist()))
    res["per_status_mean_count"] = per_status
    by_l1: dict[str, list[float]] = {}
    for r, s in zip(recs["non_native"], share["non_native"]):
        by_l1.setdefault(r["row"]["native_language"], []).append(s)
    res["flagged_by_l1"] = {k: [float(np.mean(v)), len(v)] for k, v in sorted(by_l1.items())}
    top: dict[str, dict[str, int]] = {}
    for g in ("native", "non_native"):
        c: dict[str, int] = {}
        for r in recs[g]:
            for w in statuses(r):
                if w.status != "ok":
                    c[w.word.strip(".,:").lower()] = c.get(w.word.strip(".,:").lower(), 0) + 1
        top[g] = dict(sorted(c.items(), key=lambda kv: -kv[1])[:12])
    res["most_flagged_words"] = top
    res["timing"] = {"native": timing(recs["native"]), "tune": timing(recs["tune"])}
    secs = [r["seconds"] for g in ("tune", "native", "non_native") for r in recs[g]]
    speech = [r["speech_s"] for g in ("tune", "native", "non_native") for r in recs[g]]
    loads = [r["load"] for g in ("tune", "native", "non_native") for r in recs[g]]
    res["speed"] = {"recordings": len(secs), "median_seconds": float(np.median(secs)),
                    "median_speech_s": float(np.median(speech)),
                    "median_seconds_per_30s_speech": float(np.median(np.array(secs) / np.array(speech) * 30)),
                    "median_load_average": float(np.median(loads)), "cpus": os.cpu_count()}
    per = {row["speaker_id"]: hostile_summary(rec, cases[row["speaker_id"]])
           for row, rec in zip(hostile_rows, recs["native"])}
    res["hostile"] = {"per_speaker": per, "summary": {
        case: {k: float(np.mean([p[case][k] for p in per.values() if case in p]))
               for k in next(p[case] for p in per.values() if case in p)}
        for case in ("wrong_text", "silence", "restart", "stop") if any(case in p for p in per.values())}}
    return res


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _ci(v: list[float], pct: bool = True) -> str:
    f = _pct if pct else (lambda x: f"{x:+.2f}")
    return f"{f(v[0])} [{f(v[1])}, {f(v[2])}]"


def tables(r: dict) -> str:
    fl, sp, tm, hs = r["flagged"], r["spearman"], r["timing"]["native"], r["hostile"]["summary"]
    lines = ["| measure | result | target |", "|---|---|---|",
             f"| natives: words not ok (mean over {fl['native']['n']} speakers, 95% CI) | {_ci(fl['native']['mean'])} | <= 5% |",
             f"| non-natives: words not ok ({fl['non_native']['n']} speakers) | {_ci(fl['non_native']['mean'])} | higher than natives |",
             f"| difference non-natives - natives | {_ci(fl['difference'])} | > 0 |",
             f"| ROC-AUC of the flagged share for the label | {r['auc_flagged_vs_label']:.3f} | — |",
             f"| Spearman with p_native, all {sp['p_native_all'][3]} | {_ci(sp['p_native_all'], False)} | negative |",
             f"| Spearman with p_native, non-natives | {_ci(sp['p_native_non_natives'], False)} | negative |",
             f"| Spearman with age_onset, non-natives ({sp['age_onset_non_natives'][3]}) | {_ci(sp['age_onset_non_natives'], False)} | positive |",
             f"| timing: start and end within {TOL} s of pocketsphinx ({tm['words']} words, {tm['speakers_aligned']}/{tm['speakers']} natives aligned) | {_pct(tm['within_both'])} | >= 90% |",
             f"| timing: start within / end within | {_pct(tm['within_start'])} / {_pct(tm['within_end'])} | — |",
             f"| timing: median abs. difference start / end | {tm['median_abs_start']:.3f} s / {tm['median_abs_end']:.3f} s | — |",
             f"| transcription + alignment, median per recording ({r['speed']['recordings']}, median speech {r['speed']['median_speech_s']:.1f} s) | {r['speed']['median_seconds']:.2f} s (load average {r['speed']['median_load_average']:.1f} on {r['speed']['cpus']} CPUs) | <= 3 s per 30 s |",
             "", "Hostile input (means over the hostile speakers):", "", "| case | measure | value |", "|---|---|---|"]
    names = {"ok_share": "words ok", "warned": "warning given", "agree": "same status as the clean reading",
             "times_within_0.1": "word times shifted by exactly the inserted silence (±0.1 s)",
             "first_words_from_second_try": "restarted words timed in the second attempt",
             "extra": "extra words", "restarted_words": "words read twice",
             "later_missed": "words after the stop marked missed", "earlier_agree": "words before the stop: same status"}
    for case, vals in hs.items():
        for k, v in vals.items():
            lines.append(f"| {case} | {names.get(k, k)} | {v:.1f} |" if k in ("extra", "restarted_words")
                         else f"| {case} | {names.get(k, k)} | {_pct(v)} |")
    lines += ["", "P_OK sweep, mean share of words not ok (chosen on the tuning natives):", "",
              "| P_OK | " + " | ".join(str(p) for p in r["sweep_p_ok"]["tune"]) + " |",
              "|---|" + "---|" * len(r["sweep_p_ok"]["tune"])]
    for g, row in r["sweep_p_ok"].items():
        lines.append(f"| {g} | " + " | ".join(_pct(v) for v in row.values()) + " |")
    lines += ["", "Mean words per status (of 69):", "", "| group | ok | unclear | different | missed | extra |",
              "|---|---|---|---|---|---|"]
    for g, c in r["per_status_mean_count"].items():
        lines.append(f"| {g} | " + " | ".join(str(v) for v in c.values()) + " |")
    lines += ["", "By first language (mean share not ok, n): " + ", ".join(
        f"{k} {_pct(v[0])} ({v[1]})" for k, v in r["flagged_by_l1"].items())]
    lines += ["", "Most flagged words: natives " + ", ".join(f"{k} {v}" for k, v in r["most_flagged_words"]["native"].items())
              + "; non-natives " + ", ".join(f"{k} {v}" for k, v in r["most_flagged_words"]["non_native"].items())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
