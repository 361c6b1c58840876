"""Site profiles: fit the bundled model's calibration to your own recording setup (microphones,
rooms, prompts) with a few recordings of speakers whose status you know, the cohort / score
normalisation habit of speaker verification.

    accent-rater calibrate --natives natives/ [--non-natives others/] --out site.json
    accent-rater rate --profile site.json speech.webm
    calibrate(Rater(), native_paths, non_native_paths, name="lab").save("site.json")  # training.site_profile
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

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from .calibration import Calibrator
from .errors import AccentRaterError

PROFILE_FORMAT = 1
METHODS = ("shift", "scale+shift")
GROUPS = ("native", "non_native")


class ProfileError(AccentRaterError, ValueError):
    """A site profile that cannot be made or used: the message says why and what to do."""

    code = "bad_profile"
    http_status = 422


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
        types: dict[str, type | tuple[type, ...]] = {"name": str, "model": str, "model_sha256": str, "method": str, "a": (int, float), "b": (int, float),
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
