"""Site profiles: fit the bundled model's calibration to your own recording setup (microphones,
rooms, prompts) with a few recordings of speakers whose status you know, the cohort / score
normalisation habit of speaker verification.

    accent-rater calibrate --natives natives/ [--non-natives others/] --out site.json
    accent-rater rate --profile site.json speech.webm
    calibrate(Rater(), native_paths, non_native_paths, name="lab").save("site.json")
    Rater(profile="site.json")

A profile is an affine map of the calibrated logit, applied after the bundle's Platt calibration
and before a deployment ``prior``: ``logit' = a * logit + b``; the bundle's threshold and bands then
apply to ``p_native = sigmoid(logit')``. The target is the bundle's ``reference``: the median
logits of its natives and non-natives, out of fold (what the model gives speakers it never saw,
recorded like its training data). The site's medians are mapped onto them (cohort normalisation),
but only as far as the recordings show beyond chance: each group's median moves by its gap to the
reference less ``CONFIDENCE_Z`` standard errors (a median of ``k`` logits scattering with the
reference's ``sd`` has one of ``sqrt(pi / 2) * sd / sqrt(k)``), so a profile from a site like the
training data is the identity, and a few recordings correct only a large shift:

- natives only (``method = "shift"``): ``a = 1``, ``b`` moves the site natives' median towards the
  reference natives'. A shift cannot undo a setup that squeezes both groups towards the middle;
- natives and non-natives (``method = "scale+shift"``): the line that moves both groups' medians
  towards the reference's (a scale and a shift).

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

from .calibration import Calibrator, logit, sigmoid

if TYPE_CHECKING:
    from .rater import Rater

PROFILE_FORMAT = 1
CONFIDENCE_Z = 1.96  # an adjustment is what the recordings show at 95% confidence, no more
MEDIAN_SE = math.sqrt(math.pi / 2)  # standard error of a median of k normal values: this * sd / sqrt(k)
MIN_PER_GROUP = 10  # recordings per group below which a profile warns (reports/site_calibration)
METHODS = ("shift", "scale+shift")
GROUPS = ("native", "non_native")


class ProfileError(ValueError):
    """A site profile that cannot be made or used: the message says why and what to do."""


@dataclass(frozen=True)
class SiteProfile:
    """An adjustment of one model bundle's calibration for one recording site (see the module)."""

    name: str
    model: str  # "<name> <version>" of the bundle it was fitted with
    model_sha256: str  # the bundle's model.safetensors digest ("" when the bundle lists none)
    method: Literal["shift", "scale+shift"]
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
        if d["method"] not in METHODS:
            raise ProfileError(f"{where}: unknown method {d['method']!r} (expected one of {', '.join(METHODS)})")
        if not (math.isfinite(d["a"]) and math.isfinite(d["b"]) and d["a"] > 0):
            raise ProfileError(f"{where}: adjustment a={d['a']!r}, b={d['b']!r} is not usable (a > 0, both finite)")
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
                       created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))


def _logit_or_error(rater: Rater, path: str) -> tuple[float | None, dict[str, str] | None]:
    """The calibrated logit of one recording (its full-precision ``p_native``), or its error body."""
    from .errors import error_of

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
