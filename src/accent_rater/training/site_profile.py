"""Fitting a site profile (``accent_rater.profile`` is what a rating applies): rate a site's
recordings of known natives (and non-natives), and move their median calibrated logits towards the
bundle's ``reference`` by the part of the gap beyond chance (``CONFIDENCE_Z`` standard errors of a
median). ``reference_scores`` makes that reference when a bundle is trained. What it gains on
simulated sites, against the number of recordings: ``reports/site_calibration/``."""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..calibration import logit, sigmoid
from ..profile import GROUPS, ProfileError, SiteProfile

if TYPE_CHECKING:
    from ..rater import Rater

CONFIDENCE_Z = 1.96  # an adjustment is what the recordings show at 95% confidence, no more


MEDIAN_SE = math.sqrt(math.pi / 2)  # standard error of a median of k normal values: this * sd / sqrt(k)


MIN_PER_GROUP = 10  # recordings per group below which a profile warns (reports/site_calibration)


def reference_scores(p_native: np.ndarray, y: np.ndarray) -> dict[str, dict[str, float]]:
    """Per group, the count, median and standard deviation of out-of-fold calibrated logits: what a
    bundle stores as ``reference``, the target of site profiles."""
    z, y = logit(p_native), np.asarray(y)
    return {g: {"n": int((y == lab).sum()), "median": float(np.median(z[y == lab])), "sd": float(np.std(z[y == lab]))}
            for g, lab in zip(GROUPS, (1, 0))}


def _towards_zero(x: float, se: float) -> float:
    """``x`` moved ``CONFIDENCE_Z`` standard errors towards 0 (0 when it is within them)."""
    return math.copysign(max(0.0, abs(x) - CONFIDENCE_Z * se), x)


def detectable_shift(k: int, sd: float) -> float:
    """The smallest gap between a site's median of ``k`` logits and the reference that a profile
    acts on (logits)."""
    return CONFIDENCE_Z * MEDIAN_SE * sd / math.sqrt(k)


def fit_adjustment(natives: np.ndarray, non_natives: np.ndarray | None = None,
                   reference: Mapping[str, Any] | None = None) -> tuple[Literal["shift", "scale+shift"], float, float]:
    """(method, a, b) from the site's calibrated logits per group and the bundle's ``reference``:
    each group's median moves towards the reference's by the part of the gap beyond chance; one
    group gives a shift, two give the line through both moves (the identity where the site's
    natives do not score above its non-natives)."""
    nat = np.asarray(natives, dtype=np.float64)
    non = np.asarray(() if non_natives is None else non_natives, dtype=np.float64)
    if len(nat) == 0:
        raise ProfileError("a site profile needs at least one rated native recording")
    if not reference:
        raise ProfileError("this model bundle has no reference scores of its training speakers (bundles exported "
                           "before site profiles), so it cannot be calibrated; use a bundle exported by this version")

    def target(z: np.ndarray, group: str) -> tuple[float, float]:  # (site median, where it moves)
        m, ref = float(np.median(z)), reference[group]
        return m, m + _towards_zero(ref["median"] - m, MEDIAN_SE * ref["sd"] / math.sqrt(len(z)))

    m_n, t_n = target(nat, "native")
    if len(non) == 0:
        return "shift", 1.0, t_n - m_n
    m_x, t_x = target(non, "non_native")
    if m_n <= m_x or t_n <= t_x:
        return "scale+shift", 1.0, 0.0
    a = (t_n - t_x) / (m_n - m_x)
    return "scale+shift", a, t_n - a * m_n


def _spread(z: np.ndarray, threshold: float) -> dict[str, Any]:
    p = sigmoid(z)
    q = np.quantile(p, [0.0, 0.25, 0.5, 0.75, 1.0])
    return {**{k: round(float(v), 4) for k, v in zip(("min", "q1", "median", "q3", "max"), q)},
            "rated_native": round(float(np.mean(p >= threshold)), 4)}


def make_profile(name: str, meta: Mapping[str, Any], threshold: float, logits: Mapping[str, np.ndarray],
                 skipped: Sequence[dict[str, Any]] = ()) -> SiteProfile:
    """Fit a profile from calibrated logits per group (``GROUPS``; ``non_native`` may be empty)
    and describe it: per group the count and p_native before / after, and warnings."""
    nat, non = (np.asarray(logits.get(g, ()), dtype=np.float64) for g in GROUPS)
    method, a, b = fit_adjustment(nat, non, meta.get("reference"))
    groups = {g: {"n": len(z), "p_native_before": _spread(z, threshold), "p_native_after": _spread(a * z + b, threshold)}
              for g, z in zip(GROUPS, (nat, non)) if len(z)}
    sd = {g: meta["reference"][g]["sd"] for g in GROUPS}  # fit_adjustment checked that there is a reference
    warnings = [f"only {len(z)} {g.replace('_', '-')} recordings: the profile acts only where their median score is more "
                f"than {detectable_shift(len(z), sd[g]):.1f} logits from the reference's ({detectable_shift(MIN_PER_GROUP, sd[g]):.1f} "
                f"with {MIN_PER_GROUP}, the recommended minimum per group)" for g, z in zip(GROUPS, (nat, non)) if 0 < len(z) < MIN_PER_GROUP]
    if a == 1.0 and b == 0.0:
        warnings.append("these recordings score like the speakers the model was validated on (within chance): the profile "
                        "leaves ratings unchanged")
    if method == "shift":
        warnings.append("natives only: the profile shifts every score by the same amount; add non-natives recorded the "
                        "same way to correct a setup that also squeezes scores towards the middle")
    elif np.median(nat) <= np.median(non):
        warnings.append("at this site the model does not rank natives above non-natives: a profile cannot fix that")
    if len(skipped):
        warnings.append(f"{len(skipped)} recordings could not be rated and were left out (see 'skipped')")
    digest = (meta.get("files") or {}).get("model.safetensors", "")
    return SiteProfile(name=name, model=f"{meta['name']} {meta['version']}", model_sha256=digest, method=method, a=a, b=b,
                       groups=groups, warnings=warnings, skipped=list(skipped),
                       created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))


def _logit_or_error(rater: Rater, path: str) -> tuple[float | None, dict[str, str] | None]:
    """The calibrated logit of one recording (its full-precision ``p_native``), or its error body."""
    from ..errors import error_of

    try:
        return float(logit(rater.rate(path).p_native)), None
    except Exception as exc:  # a recording that cannot be rated is skipped, never an abort
        return None, error_of(exc)["error"]


def calibrate(rater: Rater, natives: Sequence[str | Path], non_natives: Sequence[str | Path] = (), name: str = "site",
              jobs: int = 1) -> SiteProfile:
    """Rate the recordings with ``rater`` (no profile, no prior) and fit a profile; a recording
    that cannot be rated is listed under ``skipped``, never an abort."""
    if rater.profile is not None or rater.prior is not None:
        raise ProfileError("calibrate with the bundle's own calibration: a Rater without profile and prior")
    paths = [(g, str(p)) for g, group in zip(GROUPS, (natives, non_natives)) for p in group]
    with ThreadPoolExecutor(jobs) as pool:
        rated = list(pool.map(lambda gp: _logit_or_error(rater, gp[1]), paths))
    logits = {g: [z for (pg, _), (z, _) in zip(paths, rated) if pg == g and z is not None] for g in GROUPS}
    skipped = [{"path": p, "group": g, **err} for (g, p), (_, err) in zip(paths, rated) if err is not None]
    if not logits["native"]:
        raise ProfileError(f"none of the {len(natives)} native recordings could be rated: "
                           + "; ".join(f"{s['path']}: {s['message']}" for s in skipped[:3]))
    return make_profile(name, rater.meta, rater.threshold, {g: np.array(z) for g, z in logits.items()}, skipped)
