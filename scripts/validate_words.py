"""Validation of word feedback (issue 13). No word-level human labels exist here, so it measures
what can be measured on Speech Accent Archive speakers reading the passage:

1. natives: share of the passage's words not ``ok`` (target <= 5%);
2. timing: Whisper's word start/end against a pocketsphinx forced alignment of the same recording
   (the reference where it succeeds; target: both within 0.15 s for >= 90% of words);
3. non-natives: share of flagged words against natives (95% bootstrap CIs over speakers), and its
   Spearman correlation with the bundled model's p_native (expected negative) and age_onset
   (expected positive);
4. hostile input built from real recordings: a reading of another text, long silences between
   sentences, a restart in the middle, a reading that stops half-way;
5. time per recording for transcription + alignment (the machine is shared: see the load average);
6. the optional refinement of ``unclear`` words by pocketsphinx's per-word acoustic score.

Three sets of speakers, none in two of them:
- ``tune``: the 120 speakers of the first validation (seed 13; its 130 less the full-band ones), now only for choosing ``P_OK`` by a
  rule fixed in advance (``choose_p_ok``) and for fitting the refinement;
- ``native`` / ``non_native``: 60 + 60 speakers never looked at before (seed 14), 8 kHz-band corpus;
- ``fullband``: the 102 speakers of ``saa-fullband/`` (kept out of the other two), the same
  recordings with their full band: what a learner's own microphone gives Whisper.

    .venv/bin/python scripts/validate_words.py [--natives 60] [--non-natives 60] [--hostile 8] [--stage tune]

Everything computed from audio is cached per recording in ``cache/words/v4/`` (what Whisper heard,
p_native, the reference alignment with per-word scores), so a re-run only re-analyses. Needs the
``pron`` extra (pocketsphinx). Writes ``reports/words/results.json`` and ``reports/words/tables.md``.
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

from accent_rater import Rater, audio, paths  # noqa: E402
from accent_rater import words as W  # noqa: E402

CORPUS = REPO.parent / "shared" / "data" / "saa"
FULLBAND = REPO.parent / "shared" / "data" / "saa-fullband"
CACHE = REPO / paths.words_cache("v4")  # a new version for each change of the Transcriber (v4: log-mel on one BLAS thread)
OUT = REPO / "reports" / "words"
TOL = 0.15  # seconds
SEED = 13  # the first validation's sample: now the tuning set
FRESH_SEED = 14
P_OK_GRID = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
MAX_NATIVE_FLAGGED = 0.05  # choose_p_ok: natives' mean share not ok on the tuning set (the target)
OTHER_TEXT = ("When the sunlight strikes raindrops in the air, they act as a prism and form a rainbow. The rainbow "
              "is a division of white light into many beautiful colors. These take the shape of a long round arch, "
              "with its path high above, and its two ends apparently beyond the horizon.")  # the Rainbow Passage
SENTENCE_ENDS = (2, 33, 48)  # "Stella.", "Bob.", "kids.": silence is inserted after these words
RESTART_AFTER = 19  # "peas,": the reader stops after this word and starts again from the beginning
STOP_AFTER = 33  # "Bob.": the reading ends after this word
SILENCE_S = 3.0


def rows_of(corpus: Path) -> list[dict]:
    return list(csv.DictReader(open(corpus / "speakers.csv")))


def sample(rows: list[dict], n_nat: int, n_non: int, n_tune: int, rng: np.random.Generator) -> tuple[list[dict], list[dict], list[dict]]:
    """``n_tune`` natives, then ``n_nat`` natives and ``n_non`` non-natives (first languages in turn)."""
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


def speaker_sets(n_nat: int, n_non: int) -> dict[str, list[dict]]:
    """The tuning, evaluation and full-band sets (see the module docstring)."""
    rows = rows_of(CORPUS)
    tune_nat, old_nat, old_non = sample(rows, 60, 60, 10, np.random.default_rng(SEED))
    fullband = rows_of(FULLBAND)
    held = {r["speaker_id"] for r in fullband}
    tune = [r for r in tune_nat + old_nat + old_non if r["speaker_id"] not in held]
    used = held | {r["speaker_id"] for r in tune_nat + old_nat + old_non}
    _, nat, non = sample([r for r in rows if r["speaker_id"] not in used], n_nat, n_non, 0, np.random.default_rng(FRESH_SEED))
    return {"tune": tune, "native": nat, "non_native": non, "fullband": fullband}


# --- per-recording work (cached) -------------------------------------------------------------------
def reference_alignment(wav: np.ndarray) -> list[list[float]] | None:
    """[start s, end s, acoustic score per frame] of each passage word by pocketsphinx forced
    alignment (optional silences and fillers between words), or None when it fails. The score is
    pocketsphinx's (normalised per frame against the best senone: GOP-like, higher is better)."""
    import pronunciation as ps

    words = ps.normalize_text(W.PASSAGE)
    data = (np.clip(wav / max(1.0, float(np.abs(wav).max())), -1, 1) * 32767).astype(np.int16).tobytes()
    aligned = ps.align_words(data, words)
    if aligned is None:
        return None
    real = [[s / ps.FRAME_RATE, (s + n) / ps.FRAME_RATE, sum(p[3] for p in phones) / max(1, sum(p[2] for p in phones))]
            for name, s, n, phones in aligned if not ps.is_filler(name)]
    return real if len(real) == len(words) else None


def listen(rater: Rater, wav: np.ndarray, wide: np.ndarray | None = None) -> dict:
    """What Whisper heard in a waveform (timed in the original recording) and how long it took."""
    speech = audio.prepare_waveform(wav, wide=wide)
    t0 = time.perf_counter()
    heard = rater.transcriber(speech)
    seconds = time.perf_counter() - t0
    return {"heard": [list(h) for h in heard], "regions": speech.regions, "seconds": seconds,
            "speech_s": len(speech.audio) / audio.SAMPLE_RATE, "load": os.getloadavg()[0],
            "p_native": rater.rate_features(rater.features(speech)).p_native}


def cached(name: str, make) -> dict:
    """``make()`` once per name."""
    path = CACHE / f"{name}.json"
    if path.exists():
        return json.loads(path.read_text())
    out = make()
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    return out


def record(rater: Rater, row: dict, fullband: bool = False) -> dict:
    """One speaker's reading (cached): heard words, p_native, the reference alignment. A full-band
    recording is heard (and aligned by pocketsphinx) on its full band, rated on the 4 kHz band."""
    def make() -> dict:
        path = (FULLBAND if fullband else CORPUS) / row["path"]
        if fullband:
            wav, full = audio.load_audio_wide(path)
        else:
            wav = full = audio.load_audio(path)
        return {**listen(rater, wav, full if fullband else None), "reference": reference_alignment(full)}
    return {**cached(("fb." if fullband else "") + row["speaker_id"], make), "row": row}


def heard_of(rec: dict) -> list[W.Heard]:
    """What ``Transcriber`` heard (its word edges already snapped to the speech regions)."""
    return [W.Heard(*h) for h in rec["heard"]]


def hostile(rater: Rater, row: dict, clean: dict) -> dict:
    """The four hostile readings of one speaker (cached), built from the recording and the times
    Whisper gave its words in the clean run."""
    wav = audio.load_audio(CORPUS / row["path"])
    words, _ = W.feedback(heard_of(clean), W.PASSAGE)
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
    return {name: cached(f"{sid}.{name}", partial(run, build))
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


def flagged_share(rec: dict, refine: dict | None = None) -> float:
    words = statuses(rec)
    if refine is not None:
        words = refined(words, rec, refine)
    return float(np.mean([w.status != "ok" for w in words]))


def auc(pos: list[float], neg: list[float]) -> float:
    """P(a non-native's share > a native's), ties counted half."""
    a, b = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float(np.mean(a > b) + 0.5 * np.mean(a == b))


def choose_p_ok(tune: list[dict]) -> tuple[float, dict]:
    """The rule fixed before any evaluation speaker is heard: among the grid's thresholds that keep
    the tuning natives' mean share of words not ok at or under ``MAX_NATIVE_FLAGGED``, the one whose
    share separates the tuning natives from the tuning non-natives best (ROC-AUC; ties: the higher)."""
    nat = [r for r in tune if r["row"]["label"] == "native"]
    non = [r for r in tune if r["row"]["label"] != "native"]
    keep, sweep = W.P_OK, {}
    for p in P_OK_GRID:
        W.P_OK = p  # feedback reads the module's threshold
        a, b = [flagged_share(r) for r in nat], [flagged_share(r) for r in non]
        sweep[p] = {"native": float(np.mean(a)), "non_native": float(np.mean(b)), "auc": auc(b, a)}
    W.P_OK = keep
    ok = [p for p in P_OK_GRID if sweep[p]["native"] <= MAX_NATIVE_FLAGGED] or [min(P_OK_GRID)]
    return max(ok, key=lambda p: (round(sweep[p]["auc"], 3), p)), sweep


# --- the optional refinement of unclear words by pocketsphinx ----------------------------------------
REFINE_QUANTILE = 0.1


def fit_refinement(tune: list[dict]) -> dict:
    """Per passage word, the ``REFINE_QUANTILE`` quantile of the tuning natives' pocketsphinx score:
    an unclear word scoring at least this is taken as ok."""
    nat = [r for r in tune if r["row"]["label"] == "native" and r.get("reference")]
    scores = np.array([[w[2] for w in r["reference"]] for r in nat])
    return {"quantile": REFINE_QUANTILE, "speakers": len(nat),
            "threshold": np.quantile(scores, REFINE_QUANTILE, axis=0).tolist() if len(nat) else []}


def refined(words: list[W.Word], rec: dict, refine: dict) -> list[W.Word]:
    ref = rec.get("reference")
    if not ref or not refine["threshold"]:
        return words
    return [w._replace(status="ok") if w.status == "unclear" and r[2] >= t else w
            for w, r, t in zip(words, ref, refine["threshold"])]


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
    ap.add_argument("--fullband", type=int, default=102, help="speakers of saa-fullband (natives and non-natives in turn)")
    ap.add_argument("--hostile", type=int, default=8, help="evaluation natives whose recordings are made hostile")
    ap.add_argument("--stage", choices=("tune", "all"), default="all", help="tune: only the tuning set and the choice of P_OK")
    args = ap.parse_args()
    sets = speaker_sets(args.natives, args.non_natives)
    nat, non = split_label(sets["fullband"])
    sets["fullband"] = [r for pair in zip(nat, non) for r in pair][: args.fullband]
    rater = Rater()
    t0 = time.time()
    recs: dict[str, list[dict]] = {}
    for g, rows in sets.items():
        if args.stage == "tune" and g != "tune":
            continue
        recs[g] = []
        for i, row in enumerate(rows):
            recs[g].append(record(rater, row, fullband=g == "fullband"))
            print(f"{g} {i + 1}/{len(rows)} {row['speaker_id']} ({time.time() - t0:.0f} s)", flush=True)
    chosen, sweep = choose_p_ok(recs["tune"])
    print(f"P_OK chosen on the tuning set: {chosen} (words.P_OK is {W.P_OK})\n" + json.dumps(sweep, indent=1))
    if args.stage == "tune":
        return
    if chosen != W.P_OK:
        sys.exit(f"set words.P_OK = {chosen} (the tuning set's choice) and run again")
    hostile_rows = sets["native"][: args.hostile]
    cases = {}
    for i, row in enumerate(hostile_rows):
        cases[row["speaker_id"]] = hostile(rater, row, recs["native"][i])
        print(f"hostile {i + 1}/{len(hostile_rows)} {row['speaker_id']} ({time.time() - t0:.0f} s)", flush=True)

    results = {"thresholds": {"P_OK": W.P_OK, "NEAR_MISS": W.NEAR_MISS, "BEAM_SIZE": W.BEAM_SIZE},
               "sweep_p_ok_tune": sweep, "sets": {g: len(v) for g, v in recs.items()},
               "eval": analyse(recs["native"], recs["non_native"]),
               "fullband": analyse(*split_label(recs["fullband"])),
               "tune_timing": timing([r for r in recs["tune"] if r["row"]["label"] == "native"]),
               "hostile": hostile_results(cases, hostile_rows, recs["native"])}
    refine = fit_refinement(recs["tune"])
    results["refinement"] = {"fit": {k: v for k, v in refine.items() if k != "threshold"}, **{
        name: compare_refinement(*pair, refine) for name, pair in (
            ("eval", (recs["native"], recs["non_native"])), ("fullband", split_label(recs["fullband"])))}}
    secs = [r["seconds"] for v in recs.values() for r in v]
    speech = [r["speech_s"] for v in recs.values() for r in v]
    results["speed"] = {"recordings": len(secs), "median_seconds": float(np.median(secs)),
                        "median_speech_s": float(np.median(speech)),
                        "median_seconds_25_to_30s_speech": float(np.median([t for t, x in zip(secs, speech) if 25 <= x <= 30])),
                        "recordings_25_to_30s_speech": sum(25 <= x <= 30 for x in speech),
                        "median_load_average": float(np.median([r["load"] for v in recs.values() for r in v])),
                        "cpus": os.cpu_count()}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    (OUT / "tables.md").write_text(tables(results))
    print(tables(results))


def split_label(recs: list[dict]) -> tuple[list[dict], list[dict]]:
    """Natives and non-natives of a list of records (or of speaker rows)."""
    label = [r.get("row", r)["label"] for r in recs]
    return [r for r, x in zip(recs, label) if x == "native"], [r for r, x in zip(recs, label) if x != "native"]


def analyse(nat: list[dict], non: list[dict]) -> dict:
    res: dict = {}
    share = {"native": [flagged_share(r) for r in nat], "non_native": [flagged_share(r) for r in non]}
    res["flagged"] = {g: {"mean": ci(v), "median": float(np.median(v)), "q90": float(np.quantile(v, 0.9)),
                          "min": float(np.min(v)), "max": float(np.max(v)), "n": len(v)} for g, v in share.items()}
    diff = stats.bootstrap((np.array(share["non_native"]), np.array(share["native"])), lambda a, b: np.mean(a) - np.mean(b),
                           n_resamples=2000, method="percentile", random_state=0, vectorized=False)
    res["flagged"]["difference"] = [float(np.mean(share["non_native"]) - np.mean(share["native"])),
                                    float(diff.confidence_interval.low), float(diff.confidence_interval.high)]
    res["auc_flagged_vs_label"] = auc(share["non_native"], share["native"])
    res["spearman"] = {
        "p_native_all": spearman_ci(share["native"] + share["non_native"], [r["p_native"] for r in nat + non]),
        "p_native_non_natives": spearman_ci(share["non_native"], [r["p_native"] for r in non]),
        "age_onset_non_natives": spearman_ci(share["non_native"], [float(r["row"]["age_onset"] or "nan") for r in non]),
    }
    res["per_status_mean_count"] = {
        g: dict(zip(("ok", "unclear", "different", "missed", "extra"), np.array(
            [list(W.feedback(heard_of(r), W.PASSAGE)[1])[1:6] for r in rs], float).mean(0).round(2).tolist()))
        for g, rs in (("native", nat), ("non_native", non))}
    groups: dict[str, dict[str, list[float]]] = {"native_language": {}, "native_country": {}}
    for r, v in zip(non, share["non_native"]):
        groups["native_language"].setdefault(r["row"]["native_language"], []).append(v)
    for r, v in zip(nat, share["native"]):
        groups["native_country"].setdefault(r["row"]["country"], []).append(v)
    res["flagged_by_group"] = {k: {g: [float(np.mean(v)), len(v)] for g, v in sorted(d.items())} for k, d in groups.items()}
    top: dict[str, dict[str, int]] = {}
    for g, rs in (("native", nat), ("non_native", non)):
        c: dict[str, int] = {}
        for r in rs:
            for w in statuses(r):
                if w.status != "ok":
                    key = w.word.strip(".,:").lower()
                    c[key] = c.get(key, 0) + 1
        top[g] = dict(sorted(c.items(), key=lambda kv: -kv[1])[:12])
    res["most_flagged_words"] = top
    res["timing"] = timing(nat)
    return res


def compare_refinement(nat: list[dict], non: list[dict], refine: dict) -> dict:
    out = {}
    for name, rf in (("without", None), ("with", refine)):
        a, b = [flagged_share(r, rf) for r in nat], [flagged_share(r, rf) for r in non]
        out[name] = {"native": ci(a), "non_native": ci(b), "auc": auc(b, a)}
    return out


def hostile_results(cases: dict, hostile_rows: list[dict], clean: list[dict]) -> dict:
    per = {row["speaker_id"]: hostile_summary(rec, cases[row["speaker_id"]]) for row, rec in zip(hostile_rows, clean)}
    return {"per_speaker": per, "summary": {
        case: {k: float(np.mean([p[case][k] for p in per.values() if case in p]))
               for k in next(p[case] for p in per.values() if case in p)}
        for case in ("wrong_text", "silence", "restart", "stop") if any(case in p for p in per.values())}}


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _ci(v: list[float], pct: bool = True) -> str:
    f = _pct if pct else (lambda x: f"{x:+.2f}")
    return f"{f(v[0])} [{f(v[1])}, {f(v[2])}]"


def tables(r: dict) -> str:
    ev, fb, hs = r["eval"], r["fullband"], r["hostile"]["summary"]

    def row(name: str, get, target: str) -> str:
        return f"| {name} | {get(ev)} | {get(fb)} | {target} |"

    def n(res: dict, g: str) -> int:
        return res["flagged"][g]["n"]

    def tm(res: dict) -> str:
        t = res["timing"]
        return f"{_pct(t['within_both'])} ({t['words']} words, {t['speakers_aligned']}/{t['speakers']} natives aligned)"

    lines = [f"P_OK = {r['thresholds']['P_OK']} (chosen on the tuning set, {r['sets']['tune']} speakers), "
             f"NEAR_MISS = {r['thresholds']['NEAR_MISS']}, greedy decoding.", "",
             "| measure | 8 kHz-band corpus (fresh speakers) | full band (saa-fullband) | target |", "|---|---|---|---|",
             row("natives: words not ok (mean, 95% CI)", lambda x: f"{_ci(x['flagged']['native']['mean'])} (n={n(x, 'native')})", "<= 5%"),
             row("natives: words not ok, per speaker median / 90th percentile / range", lambda x: "{} / {} / {}-{}".format(
                 *(_pct(x["flagged"]["native"][k]) for k in ("median", "q90", "min", "max"))), "—"),
             row("non-natives: words not ok", lambda x: f"{_ci(x['flagged']['non_native']['mean'])} (n={n(x, 'non_native')})", "higher"),
             row("difference non-natives - natives", lambda x: _ci(x["flagged"]["difference"]), "> 0"),
             row("ROC-AUC of the flagged share for the label", lambda x: f"{x['auc_flagged_vs_label']:.3f}", "—"),
             row("Spearman with p_native, all", lambda x: _ci(x["spearman"]["p_native_all"], False), "negative"),
             row("Spearman with p_native, non-natives", lambda x: _ci(x["spearman"]["p_native_non_natives"], False), "negative"),
             row("Spearman with age_onset, non-natives", lambda x: _ci(x["spearman"]["age_onset_non_natives"], False), "positive"),
             row(f"timing: start and end within {TOL} s of pocketsphinx", tm, ">= 90%"),
             row("timing: start within / end within", lambda x: f"{_pct(x['timing']['within_start'])} / {_pct(x['timing']['within_end'])}", "—"),
             row("timing: median abs. difference start / end", lambda x: f"{x['timing']['median_abs_start']:.3f} s / {x['timing']['median_abs_end']:.3f} s", "—"),
             "", f"Timing on the tuning natives: {_pct(r['tune_timing']['within_both'])} both within {TOL} s "
             f"({r['tune_timing']['words']} words).", "",
             f"Transcription + alignment, median per recording ({r['speed']['recordings']} recordings, median speech "
             f"{r['speed']['median_speech_s']:.1f} s): {r['speed']['median_seconds']:.2f} s, "
             f"{r['speed']['median_seconds_25_to_30s_speech']:.2f} s for the {r['speed']['recordings_25_to_30s_speech']} "
             f"with 25-30 s of speech (one Whisper window) (load average "
             f"{r['speed']['median_load_average']:.1f} on {r['speed']['cpus']} CPUs).",
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
    sw = r["sweep_p_ok_tune"]
    lines += ["", "P_OK on the tuning set (mean share of words not ok; ROC-AUC natives vs non-natives):", "",
              "| P_OK | " + " | ".join(str(p) for p in sw) + " |", "|---|" + "---|" * len(sw),
              "| natives | " + " | ".join(_pct(v["native"]) for v in sw.values()) + " |",
              "| non-natives | " + " | ".join(_pct(v["non_native"]) for v in sw.values()) + " |",
              "| ROC-AUC | " + " | ".join(f"{v['auc']:.3f}" for v in sw.values()) + " |"]
    rf = r["refinement"]
    lines += ["", f"Refinement of unclear words by pocketsphinx (an unclear word whose score reaches the "
              f"{rf['fit']['quantile']} quantile of {rf['fit']['speakers']} tuning natives' scores for that word is taken as ok):", "",
              "| set | natives not ok | non-natives not ok | ROC-AUC |", "|---|---|---|---|"]
    for name in ("eval", "fullband"):
        for k, v in rf[name].items():
            lines.append(f"| {name}, {k} | {_ci(v['native'])} | {_ci(v['non_native'])} | {v['auc']:.3f} |")
    for name, res in (("8 kHz-band", ev), ("full band", fb)):
        lines += ["", f"{name}: mean words per status (of 69): " + "; ".join(
            f"{g} " + ", ".join(f"{v} {k}" for k, v in c.items()) for g, c in res["per_status_mean_count"].items())]
        lines += [f"{name}: share not ok by group (mean, n): " + "; ".join(
            ", ".join(f"{k} {_pct(v[0])} ({v[1]})" for k, v in d.items()) for d in res["flagged_by_group"].values())]
        lines += [f"{name}: most flagged words: natives " + ", ".join(f"{k} {v}" for k, v in res["most_flagged_words"]["native"].items())
                  + "; non-natives " + ", ".join(f"{k} {v}" for k, v in res["most_flagged_words"]["non_native"].items())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
