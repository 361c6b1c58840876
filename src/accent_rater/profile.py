"""Site profiles: fit the bundled model's calibration to your own recording setup (microphones,
rooms, prompts) with a few recordings of speakers whose status you know, the cohort / score
normalisation habit of speaker verification.

    accent-rater calibrate --natives natives/ [--non-natives others/] --out site.json
    accent-rater rate --profile site.json speech.webm
    Rater(profile="site.json")

A profile is an affine map of the calibrated logit, applied after the bundle's Platt calibration
and before a deployment ``prior``: ``logit' = a * logit + b``; the bundle's threshold and bands then
apply to ``p_native = sigmoid(logit')``. Both fits are maximum a posteriori with the bundle's own
calibration (``a = 1, b = 0``) as the prior mean, so a few recordings move it a little and many
move it as far as they say:

- natives only (``method = "shift"``): ``a = 1``; ``b`` moves the median logit of the site's
  natives towards that of the natives the model was validated on (the bundle's ``reference``:
  out-of-fold scores of its training speakers), by the fraction ``k / (k + (sd / SHIFT_PRIOR_SD)^2)``
  for ``k`` recordings (the posterior mean of a shift with prior N(0, SHIFT_PRIOR_SD^2) when natives
  scatter with the reference's ``sd``). A shift cannot undo a channel that squeezes both groups
  towards the middle; natives and non-natives together can;
- natives and non-natives (``method = "platt"``): logistic regression of the labels on the site's
  logits with the priors a ~ N(1, SCALE_PRIOR_SD^2), b ~ N(0, SHIFT_PRIOR_SD^2), a > 0.

A profile moves where the site's scores fall relative to the threshold; it never changes their
order (a > 0), so it cannot make the model hear an accent it does not hear. What it gains on
simulated sites, against the number of recordings: ``reports/site_calibration/``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .calibration import Calibrator, logit

if TYPE_CHECKING:
    from .rater import Rater

PROFILE_FORMAT = 1
SHIFT_PRIOR_SD = 2.0  # logits: a site rarely moves scores by more than twice this
SCALE_PRIOR_SD = 0.5
MIN_SCALE = 0.1  # a > 0 keeps the order of the scores
MIN_PER_GROUP = 10  # recordings per group below which a profile warns (reports/site_calibration)
GROUPS = ("native", "non_native")


class ProfileError(ValueError):
    """A site profile that cannot be made or used: the message says why and what to do."""


@dataclass(frozen=True)
class SiteProfile:
    """An adjustment of one model bundle's calibration for one recording site (see the module)."""

    name: str
    model: str  # "<name> <version>" of the bundle it was fitted with
    model_sha256: str  # the bundle's model.safetensors digest ("" when the bundle lists none)
    method: Literal["shift", "platt"]
    a: float
    b: float
    groups: dict[str, dict[str, Any]]  # per group: n, and p_native before / after (quartiles, share native)
    warnings: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)  # recordings that could not be rated
    created: str = ""
    format: int = PROFILE_FORMAT

    def adjust(self, calibrator: Calibrator) -> Calibrator:
        """The bundle's calibrator followed by this profile: one Platt map, ``a * (a0 z + b0) + b``."""
        return Calibrator(self.a * calibrator.a, self.a * calibrator.b + self.b, calibrator.train_prior)

    def check_model(self, meta: Mapping[str, Any]) -> None:
        """Refuse a profile fitted with another model (name, version or weights)."""
        this = f"{meta['name']} {meta['version']}"
        digest = (meta.get("files") or {}).get("model.safetensors", "")
        if self.model != this or (self.model_sha256 and digest and self.model_sha256 != digest):
            weights = " (same version, other weights)" if self.model == this else ""
            raise ProfileError(f"site profile {self.name!r} was calibrated for model {self.model}, not {this}{weights}; "
                               "run `accent-rater calibrate` again with this model")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def from_dict(cls, d: Any, where: str = "profile") -> SiteProfile:
        """Validate a parsed profile; ``ProfileError`` names the first problem."""
        if not isinstance(d, dict) or "a" not in d or "method" not in d:
            raise ProfileError(f"{where} is not an accent-rater site profile (made by `accent-rater calibrate`)")
        if d.get("format") != PROFILE_FORMAT:
            raise ProfileError(f"{where}: profile format {d.get('format')!r} is not supported (expected {PROFILE_FORMAT})")
        types = {"name": str, "model": str, "model_sha256": str, "method": str, "a": (int, float), "b": (int, float),
                 "groups": dict, "warnings": list, "skipped": list, "created": str}
        for key, typ in types.items():
            if not isinstance(d.get(key), typ) or isinstance(d.get(key), bool):
                raise ProfileError(f"{where}: field {key!r} is missing or not a {getattr(typ, '__name__', 'number')}")
        if d["method"] not in ("shift", "platt"):
            raise ProfileError(f"{where}: unknown method {d['method']!r} (expected 'shift' or 'platt')")
        if not (math.isfinite(d["a"]) and math.isfinite(d["b"]) and d["a"] >= MIN_SCALE):
            raise ProfileError(f"{where}: adjustment a={d['a']!r}, b={d['b']!r} is not usable (a >= {MIN_SCALE}, finite)")
        return cls(**{k: d[k] for k in (*types, "format")})


def load_profile(profile: str | Path | SiteProfile, meta: Mapping[str, Any]) -> SiteProfile:
    """A profile (a JSON file or a ``SiteProfile``) checked against the bundle ``meta`` it will adjust."""
    if not isinstance(profile, SiteProfile):
        path = Path(profile)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise ProfileError(f"site profile {path} does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ProfileError(f"site profile {path} is not readable JSON ({exc})") from None
        profile = SiteProfile.from_dict(d, str(path))
    profile.check_model(meta)
    return profile


# --- fitting ---------------------------------------------------------------------------------------
def reference_scores(p_native: np.ndarray, y: np.ndarray) -> dict[str, dict[str, float]]:
    """Per group, the count, median and standard deviation of out-of-fold calibrated logits: what a
    bundle stores as ``reference`` (the natives' are the target of a natives-only profile)."""
    z, y = logit(p_native), np.asarray(y)
    return {g: {"n": int((y == lab).sum()), "median": float(np.median(z[y == lab])), "sd": float(np.std(z[y == lab]))}
            for g, lab in zip(GROUPS, (1, 0))}


def fit_shift(natives: np.ndarray, reference: Mapping[str, Any]) -> float:
    """``b`` of a natives-only profile (``a = 1``): the shrunk gap between the reference natives'
    median logit and the site natives'."""
    k = len(natives)
    ref = reference["native"]
    return float(k / (k + (ref["sd"] / SHIFT_PRIOR_SD) ** 2) * (ref["median"] - np.median(natives)))


def fit_platt(natives: np.ndarray, non_natives: np.ndarray) -> tuple[float, float]:
    """(a, b) of a two-group profile: Platt scaling of the site's logits, maximum a posteriori
    around the identity."""
    from scipy.optimize import minimize
    from scipy.special import log_expit

    x = np.concatenate([natives, non_natives])
    sign = np.concatenate([np.ones(len(natives)), -np.ones(len(non_natives))])

    def loss(v: np.ndarray) -> float:  # negative log posterior
        return float(-log_expit(sign * (v[0] * x + v[1])).sum() + (v[0] - 1) ** 2 / (2 * SCALE_PRIOR_SD**2)
                     + v[1] ** 2 / (2 * SHIFT_PRIOR_SD**2))

    res = minimize(loss, np.array([1.0, 0.0]), method="L-BFGS-B", bounds=[(MIN_SCALE, None), (None, None)])
    return float(res.x[0]), float(res.x[1])


def fit_adjustment(natives: np.ndarray, non_natives: np.ndarray | None = None,
                   reference: Mapping[str, Any] | None = None) -> tuple[Literal["shift", "platt"], float, float]:
    """(method, a, b) from the site's calibrated logits: Platt with both groups, a shift with natives only."""
    natives = np.asarray(natives, dtype=np.float64)
    if len(natives) == 0:
        raise ProfileError("a site profile needs at least one rated native recording")
    if non_natives is not None and len(non_natives):
        return ("platt", *fit_platt(natives, np.asarray(non_natives, dtype=np.float64)))
    if not reference:
        raise ProfileError("this model bundle has no reference scores of its training natives, so it cannot be "
                           "calibrated from natives alone: give --non-natives too")
    return "shift", 1.0, fit_shift(natives, reference)


def _spread(z: np.ndarray, threshold: float) -> dict[str, Any]:
    p = 1.0 / (1.0 + np.exp(-z))
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
    warnings = [f"only {len(z)} {g.replace('_', '-')} recordings: with fewer than {MIN_PER_GROUP} per group the adjustment "
                "stays close to the bundle's calibration, and a few unusual speakers can still move it the wrong way"
                for g, z in zip(GROUPS, (nat, non)) if 0 < len(z) < MIN_PER_GROUP]
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
                       created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))


def _logit_or_error(rater: Rater, path: str) -> tuple[float | None, dict[str, str] | None]:
    """The calibrated logit of one recording (its full-precision ``p_native``), or its error body."""
    from .errors import AudioError, error_body

    try:
        return float(logit(rater.rate(path).p_native)), None
    except AudioError as exc:
        return None, exc.to_dict()["error"]
    except OSError as exc:
        return None, error_body("not_found", str(exc))["error"]


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
