"""Site profiles on simulated sites: does calibrating with k known speakers of a site help?

    .venv/bin/python scripts/site_calibration.py [--config configs/default.toml] [--draws 200]

Every score is out of fold: each speaker is scored by the fold model that never saw them and
calibrated by its fold's cross-fitted Platt calibrator (exactly ``predictions.csv``). Sites:

- ``clean``: the recordings as they are, where a profile has nothing to fix and should not hurt;
- channel kinds: the held-out augmented copies in ``augmented.csv`` (telephone, opus, mp3, amr,
  reverb, noise, gain, clipping: ~220 speakers each, every copy with its own random parameters);
- ``snr15``: pink noise at 15 dB SNR (the copies ``scripts/robustness.py`` cached, all speakers);
- other text: only the windows from the second half of the passage (``2nd half``), or only its
  last 7 s window (``last 7 s``);
- built here for 150 natives and 150 non-natives (features cached under the run's Whisper cache),
  with one draw of their parameters shared by every speaker (one room, one line), as a site would:
  ``phone in a room`` (reverberation, then noise, then a telephone line) and ``noise 0 dB`` (pink
  noise at 0 dB SNR, beyond the 5-20 dB the model was trained with).

For every site, k in ``KS`` and profile kind (natives only; natives and non-natives), ``--draws``
times: k natives (and k non-natives) of the site make the profile with ``training.site_profile.fit_adjustment``
(the fit ``accent-rater calibrate`` runs; its target, the bundle's reference, is the out-of-fold
clean scores of all speakers); every *other* speaker of the site is scored without and with it.
Balanced accuracy at the bundled threshold and ECE (``metrics.ece``) on those speakers: mean and
95% percentile interval over the draws, and the same for the paired difference. Two alternatives
are scored on the same draws: a shift shrunk by a N(0, 2^2) prior (natives), and Platt refitted by
maximum a posteriori around the bundled fit (both groups; priors a ~ N(1, 0.5^2), b ~ N(0, 2^2)).

Writes ``reports/site_calibration/README.md``, ``results.json`` and ``site_calibration.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from sklearn.metrics import roc_auc_score

from accent_rater.backbones import whisper
from accent_rater.calibration import Calibrator, logit, sigmoid
from accent_rater.evaluation.metrics import ece
from accent_rater.evaluation.report import md_table
from accent_rater.models import get_family
from accent_rater.training import caches, data
from accent_rater.training.site_profile import CONFIDENCE_Z, MIN_PER_GROUP, detectable_shift, fit_adjustment, reference_scores
from accent_rater.training.train import Config, family_params, member_name

KS = (3, 5, 10, 20)
KINDS = ("natives", "natives + non-natives")
BUILT = {"phone in a room": "reverb+noise+telephone", "noise 0 dB": "snr0"}  # site: caches.degrade kind
BUILT_SEED, BUILT_PER_GROUP = 0, 150
PROFILE = "profile"  # the shipped fit; the others are alternatives scored on the same draws
OUT = Path("reports/site_calibration")


def bacc(y: np.ndarray, p: np.ndarray, t: float) -> float:
    pred = p >= t
    return float((pred[y == 1].mean() + (~pred[y == 0]).mean()) / 2)


def interval(v: list[float]) -> list[float]:
    """[mean, 2.5th percentile, 97.5th percentile] over draws."""
    return [float(np.mean(v)), float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))]


def load_sites(cfg: Config, run: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, object]]:
    """{site: (labels, calibrated logits)} of held-out speakers, and facts for the report."""
    spec = next(s for s in cfg.models if member_name(s) == json.loads((run / "summary.json").read_text())["primary"])
    primary = member_name(spec)
    folds = json.loads((run / "folds.json").read_text())
    recs = [r for r in data.load_corpus(cfg.corpus).recordings if r.speaker_id in folds]
    y_of = {r.speaker_id: int(r.label == "native") for r in recs}
    models = []
    for k in range(cfg.folds):
        fam = get_family(spec["family"], **family_params(spec))
        fam.load_tensors(load_file(str(run / "folds" / f"{primary}_fold{k}.safetensors")))
        models.append(fam)
    size = cfg.features.removeprefix("whisper-")
    cache = cfg.feature_dir(Path(cfg.corpus).name)

    def windows(key: str) -> tuple[np.ndarray, np.ndarray]:
        """(window spans, fold-model logit per window) of one cached recording."""
        f = whisper.WhisperFeatures.load(caches.cache_path(cache, key))
        return f.spans, np.asarray(models[folds[key.split("__")[0]]].segment_logits(f), dtype=np.float64)

    sid = [r.speaker_id for r in recs]
    clean = {s: windows(s) for s in sid}
    y = np.array([y_of[s] for s in sid])
    fold = np.array([folds[s] for s in sid])
    raw = np.array([clean[s][1].mean() for s in sid])
    cals = [Calibrator.fit(raw[fold != k], y[fold != k]) for k in range(cfg.folds)]

    def calibrated(s: str, window_logits: np.ndarray) -> float:
        cal = cals[folds[s]]
        return float(cal.a * window_logits.mean() + cal.b)

    sites: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    sites["clean"] = (y, np.array([calibrated(s, clean[s][1]) for s in sid]))
    with open(run / "predictions.csv") as fh:  # the cross-fitted calibration reproduces the run's predictions
        pred = {r["speaker_id"]: float(r["p_native"]) for r in csv.DictReader(fh) if r["model"] == primary}
    parity = float(np.max(np.abs(sigmoid(sites["clean"][1]) - np.array([pred[s] for s in sid]))))
    with open(run / "augmented.csv") as fh:
        aug = [r for r in csv.DictReader(fh) if r["model"] == primary]
    for kind in ("telephone", "opus", "mp3", "amr", "reverb", "noise", "gain", "clipping"):
        rows = [r for r in aug if r["kind"] == kind]
        sites[kind] = (np.array([y_of[r["speaker_id"]] for r in rows]), logit(np.array([float(r["p_native"]) for r in rows])))
    noisy = [s for s in sid if caches.cache_path(cache, f"{s}__snr15").exists()]
    sites["snr15"] = (np.array([y_of[s] for s in noisy]), np.array([calibrated(s, windows(f"{s}__snr15")[1]) for s in noisy]))

    def second_half(spans: np.ndarray, lg: np.ndarray) -> np.ndarray:
        return lg[spans.mean(1) >= (spans[0, 0] + spans[-1, 1]) / 2]

    sites["2nd half"] = (y, np.array([calibrated(s, second_half(*clean[s])) for s in sid]))
    sites["last 7 s"] = (y, np.array([calibrated(s, clean[s][1][-1:]) for s in sid]))

    rng = np.random.default_rng(0)
    picked = []
    for label in ("native", "non_native"):
        group = [r for r in recs if r.label == label]
        picked += [group[i] for i in sorted(rng.choice(len(group), BUILT_PER_GROUP, replace=False))]
    facts: dict[str, object] = {"run": str(run), "model": primary, "calibration_parity_max_abs_dp": parity, "refused": {}}
    for site, kind in BUILT.items():
        items = [(f"{r.speaker_id}__{kind}", r.path, kind, BUILT_SEED) for r in picked]
        refused = caches.build_whisper_cache(items, cache, whisper.onnx_path(size))
        kept = [r.speaker_id for r in picked if f"{r.speaker_id}__{kind}" not in refused]
        sites[site] = (np.array([y_of[s] for s in kept]), np.array([calibrated(s, windows(f"{s}__{kind}")[1]) for s in kept]))
        facts["refused"][site] = len(refused)
    return sites, facts


def shrunk_shift(nat: np.ndarray, non: np.ndarray, reference: dict) -> tuple[float, float]:
    """Alternative (natives): the gap to the reference natives' median, shrunk by a N(0, 2^2) prior."""
    ref = reference["native"]
    return 1.0, len(nat) / (len(nat) + (ref["sd"] / 2.0) ** 2) * (ref["median"] - float(np.median(nat)))


def platt_map(nat: np.ndarray, non: np.ndarray, reference: dict) -> tuple[float, float]:
    """Alternative (both groups): Platt scaling of the site's logits, maximum a posteriori around the
    identity (a ~ N(1, 0.5^2), b ~ N(0, 2^2))."""
    from scipy.optimize import minimize
    from scipy.special import log_expit

    x, sign = np.concatenate([nat, non]), np.concatenate([np.ones(len(nat)), -np.ones(len(non))])
    res = minimize(lambda v: -log_expit(sign * (v[0] * x + v[1])).sum() + (v[0] - 1) ** 2 / 0.5 + v[1] ** 2 / 8,
                   np.array([1.0, 0.0]), method="L-BFGS-B", bounds=[(0.05, None), (None, None)])
    return float(res.x[0]), float(res.x[1])


FITS = {"natives": {PROFILE: lambda nat, non, ref: fit_adjustment(nat, None, ref)[1:], "shrunk shift": shrunk_shift},
        "natives + non-natives": {PROFILE: lambda nat, non, ref: fit_adjustment(nat, non, ref)[1:], "Platt (MAP)": platt_map}}


def simulate(y: np.ndarray, z: np.ndarray, reference: dict, t: float, draws: int, rng: np.random.Generator) -> dict:
    """Profiles from k site speakers, scored on the site's other speakers, ``draws`` times per k and kind."""
    nat, non = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    out: dict = {}
    for kind, fits in FITS.items():
        for k in KS:
            got: dict[str, dict[str, list[float]]] = {
                f: {m: [] for m in ("bacc", "ece", "bacc_before", "ece_before", "delta_bacc", "delta_ece", "a", "b")} for f in fits}
            for _ in range(draws):
                pn = rng.choice(nat, k, replace=False)
                pnn = rng.choice(non, k, replace=False) if kind != "natives" else np.array([], dtype=int)
                test = np.setdiff1d(np.arange(len(y)), np.concatenate([pn, pnn]))
                before = sigmoid(z[test])
                bacc0, ece0 = bacc(y[test], before, t), ece(y[test], before)
                for name, fit in fits.items():
                    a, b = fit(z[pn], z[pnn], reference)
                    after = sigmoid(a * z[test] + b)
                    b1, e1 = bacc(y[test], after, t), ece(y[test], after)
                    for m, v in (("bacc", b1), ("ece", e1), ("bacc_before", bacc0), ("ece_before", ece0), ("delta_bacc", b1 - bacc0),
                                 ("delta_ece", e1 - ece0), ("a", a), ("b", b)):
                        got[name][m].append(v)
            for name in fits:
                out.setdefault(kind, {}).setdefault(name, {})[str(k)] = {m: interval(v) for m, v in got[name].items()}
    return out


def cell(v: list[float], signed: bool = False) -> str:
    """mean [2.5%, 97.5%]; ``signed`` for differences."""
    f = "+.3f" if signed else ".3f"
    return f"{v[0]:{f}} [{v[1]:{f}}, {v[2]:{f}}]"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sites = list(results["sites"])
    cols = 5
    rows = -(-len(sites) // cols)
    fig, axes = plt.subplots(2 * rows, cols, figsize=(2.6 * cols, 2.3 * 2 * rows), sharex=True, squeeze=False)
    for j, site in enumerate(sites):
        r = results["sites"][site]
        for i, metric in enumerate(("bacc", "ece")):
            ax = axes[2 * (j // cols) + i, j % cols]
            for kind, colour in zip(FITS, ("tab:orange", "tab:blue")):
                res = [r["profiles"][kind][PROFILE][str(k)] for k in KS]
                v = np.array([x[metric] for x in res])
                ax.plot(KS, [x[metric + "_before"][0] for x in res], "--", color=colour, lw=0.9, alpha=0.7,
                        label=f"no profile (same test speakers as {kind})")
                ax.plot(KS, v[:, 0], "o-", color=colour, ms=3, lw=1.2, label=f"profile from {kind}")
                ax.fill_between(KS, v[:, 1], v[:, 2], color=colour, alpha=0.15, lw=0)
            ax.set_xscale("log")
            ax.minorticks_off()
            ax.set_xticks(KS, [str(k) for k in KS])
            ax.tick_params(labelsize=7)
            ax.set_title(f"{site}: {'balanced accuracy' if metric == 'bacc' else 'ECE'}", fontsize=8)
    for j in range(len(sites), rows * cols):
        axes[2 * (j // cols), j % cols].axis("off")
        axes[2 * (j // cols) + 1, j % cols].axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("k per group", fontsize=8)
    axes[0, 0].legend(fontsize=6, loc="lower left")
    fig.suptitle("Site profiles from k speakers of the site, scored on its other speakers (mean, 95% interval over draws)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", type=Path, default=Path("configs/default.toml"))
    ap.add_argument("--run", type=Path, default=None)
    ap.add_argument("--draws", type=int, default=200)
    args = ap.parse_args()
    cfg = Config.load(args.config)
    run = args.run or Path(cfg.out_dir)
    t = float(json.loads((run / "summary.json").read_text())["threshold"])
    sites, facts = load_sites(cfg, run)
    y0, z0 = sites["clean"]
    reference = reference_scores(sigmoid(z0), y0)
    results: dict = {**facts, "threshold": t, "draws": args.draws, "ks": list(KS), "reference": reference,
                     "confidence_z": CONFIDENCE_Z, "sites": {}}
    rng = np.random.default_rng(0)
    for site, (y, z) in sites.items():
        p = sigmoid(z)
        cuts = sigmoid(np.linspace(-4, 4, 401))
        results["sites"][site] = {
            "n": int(len(y)), "n_native": int(y.sum()),
            "uncalibrated": {"bacc": bacc(y, p, t), "ece": ece(y, p), "roc_auc": float(roc_auc_score(y, p)),
                             "best_bacc_in_sample": max(bacc(y, p, c) for c in cuts),
                             "median_logit_native": float(np.median(z[y == 1])), "median_logit_non_native": float(np.median(z[y == 0]))},
            "profiles": simulate(y, z, reference, t, args.draws, rng),
        }
        print(site, flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=1))
    plot(results, OUT / "site_calibration.png")
    (OUT / "README.md").write_text(report(results))
    print(report(results))


def summary(r: dict) -> list[str]:
    """Per profile kind, the worst and the best mean change over all sites and k."""
    out = []
    for kind in FITS:
        for metric, label in (("delta_bacc", "balanced accuracy"), ("delta_ece", "ECE")):
            cells = [(s["profiles"][kind][PROFILE][str(k)][metric][0], site, k) for site, s in r["sites"].items() for k in r["ks"]]
            (lo, lo_site, lo_k), (hi, hi_site, hi_k) = min(cells), max(cells)
            out.append(f"- profile from {kind}, {label}: mean change from {lo:+.3f} ({lo_site}, k = {lo_k}) to {hi:+.3f} "
                       f"({hi_site}, k = {hi_k}) over all sites and k.")
    return out


def report(r: dict) -> str:
    ref = r["reference"]
    sites = r["sites"]
    rows = [[site, s["n"], s["n_native"], f"{s['uncalibrated']['bacc']:.3f}", f"{s['uncalibrated']['best_bacc_in_sample']:.3f}",
             f"{s['uncalibrated']['ece']:.3f}", f"{s['uncalibrated']['roc_auc']:.3f}",
             f"{s['uncalibrated']['median_logit_native']:+.2f} / {s['uncalibrated']['median_logit_non_native']:+.2f}"]
            for site, s in sites.items()]
    detect = ", ".join(f"{detectable_shift(k, ref['native']['sd']):.1f} (k = {k})" for k in r["ks"])
    md = [
        "# Site profiles on simulated sites",
        "",
        f"`scripts/site_calibration.py` on run `{r['run']}` (model `{r['model']}`, the bundled default's training run). "
        "A site is one kind of recording change applied to held-out speakers; every score is out of fold (each speaker "
        "scored by the fold model that never saw them; the cross-fitted calibration reproduces `predictions.csv` within "
        f"{r['calibration_parity_max_abs_dp']:.0e}). For every site, k and profile kind, {r['draws']} draws: k natives "
        "(and k non-natives) of the site fit a profile with `training.site_profile.fit_adjustment` (what `accent-rater calibrate` "
        "runs), and all *other* speakers of the site are rated without and with it, so no speaker used for a profile is "
        f"scored with it. Balanced accuracy (bacc) at the bundled threshold {r['threshold']:.3f}, ECE with 15 bins; "
        "cells: mean over draws [95% percentile interval]. The profile's target is the reference stored in the bundle: "
        f"median calibrated logit {ref['native']['median']:+.2f} (sd {ref['native']['sd']:.2f}) for natives and "
        f"{ref['non_native']['median']:+.2f} (sd {ref['non_native']['sd']:.2f}) for non-natives, out of fold (these "
        f"include the test speakers' clean recordings, 1 in {ref['native']['n']} or {ref['non_native']['n']} each). A profile moves a median only beyond "
        f"{r['confidence_z']:g} standard errors of chance: for natives, a gap of more than {detect} logits.",
        "",
        "![bacc and ECE against k per site](site_calibration.png)",
        "",
        *summary(r),
        "",
        "## The sites without a profile",
        "",
        md_table(["site", "speakers", "natives", "bacc", "best bacc, threshold fitted on the site (in-sample)", "ECE", "ROC-AUC",
               "median logit natives / non-natives"], rows),
        "",
        "The best-threshold column is an optimistic ceiling for what moving the threshold can gain. Channel kinds: "
        "`accent_rater.training.augment` (the model was trained with these kinds), each copy with its own parameters. `2nd half` / "
        "`last 7 s`: only those windows of the passage are rated. `phone in a room`, `noise 0 dB`: one draw of the "
        f"parameters for every speaker ({', '.join(f'{k}: {v}' for k, v in r['refused'].items())} recordings refused as "
        "too little speech).",
        "",
    ]
    header = ["site", "no profile"] + [f"{'natives' if kind == 'natives' else 'both'}, k = {k}" for kind in FITS for k in r["ks"]]
    for metric, title in (("bacc", "Balanced accuracy"), ("ece", "ECE")):
        rows = [[site, f"{s['uncalibrated'][metric]:.3f}"] + [cell(s["profiles"][kind][PROFILE][str(k)][metric]) for kind in FITS
                                                              for k in r["ks"]] for site, s in sites.items()]
        md += [f"## {title} with a profile", "", md_table(header, rows), "",
               "`no profile`: all the site's speakers (the differences below compare on the same test speakers).", ""]
    for metric, title in (("delta_bacc", "Balanced accuracy: with profile − without, same test speakers"),
                          ("delta_ece", "ECE: with profile − without, same test speakers (negative: better calibrated)")):
        rows = [[site] + [cell(s["profiles"][kind][PROFILE][str(k)][metric], signed=True) for kind in FITS for k in r["ks"]]
                for site, s in sites.items()]
        md += [f"## {title}", "", md_table(header[:1] + header[2:], rows), ""]
    alt = [(kind, name) for kind, fits in FITS.items() for name in fits]
    rows = [[site] + [" / ".join(f"{s['profiles'][kind][name][str(k)][m][0]:+.3f}" for m in ("delta_bacc", "delta_ece"))
                      for kind, name in alt for k in r["ks"][-2:]] for site, s in sites.items()]
    md += ["## Alternatives on the same draws: mean Δbacc / ΔECE", "",
           "`profile` is the shipped fit; `shrunk shift`: the natives' gap shrunk by a N(0, 2²) prior on the shift; "
           "`Platt (MAP)`: Platt scaling refitted on the site's speakers by maximum a posteriori around the bundled fit "
           "(a ~ N(1, 0.5²), b ~ N(0, 2²)).", "",
           md_table(["site"] + [f"{kind}: {name}, k = {k}" for kind, name in alt for k in r["ks"][-2:]], rows), "",
           f"`accent-rater calibrate` warns below {MIN_PER_GROUP} recordings per group.", ""]
    return "\n".join(md)


if __name__ == "__main__":
    main()
