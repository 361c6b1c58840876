"""Site profiles (``accent_rater.profile``) with the real bundled model on real speech: a simulated
site (Speech Accent Archive readings through a reverberant room, noise and a telephone line),
calibrated from 3 natives and 3 non-natives, and every surface that takes ``--profile``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, make_result

from accent_rater import audio, features
from accent_rater.calibration import Calibrator, logit
from accent_rater.profile import ProfileError, SiteProfile, calibrate, fit_adjustment, load_profile
from accent_rater.rater import Rater

SITE = "reverb+noise+telephone"  # one room, one line: the same parameters for every speaker
NATIVES = ("english34", "english52", "english79")
NON_NATIVES = ("arabic2", "korean5", "russian3")
CLI = [sys.executable, "-m", "accent_rater"]
CLIP = FIXTURES / "native_us_english5.flac"


def run(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def site(shared_data: Path, tmp_path_factory) -> Path:
    """natives/ and non_natives/ of the simulated site, as FLAC files."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("site")
    for group, ids in (("natives", NATIVES), ("non_natives", NON_NATIVES)):
        (root / group).mkdir()
        for sid in ids:
            wav = audio.load_audio(shared_data / "saa" / "audio" / f"{sid}.opus")
            sf.write(root / group / f"{sid}.flac", features.degrade(wav, SITE, np.random.default_rng(0)), audio.SAMPLE_RATE)
    return root


@pytest.fixture(scope="module")
def rater() -> Rater:
    return Rater()


@pytest.fixture(scope="module")
def files(site: Path) -> dict[str, list[Path]]:
    return {g: sorted((site / g).iterdir()) for g in ("natives", "non_natives")}


@pytest.fixture(scope="module")
def before(rater: Rater, files) -> dict[Path, float]:
    return {f: rater.rate(f).p_native for group in files.values() for f in group}


@pytest.fixture(scope="module")
def natives_only(rater: Rater, files) -> SiteProfile:
    return calibrate(rater, files["natives"], name="natives-only")


@pytest.fixture(scope="module")
def both(rater: Rater, files) -> SiteProfile:
    return calibrate(rater, files["natives"], files["non_natives"], name="site")


@pytest.fixture(scope="module")
def profile_file(both: SiteProfile, tmp_path_factory) -> Path:
    return both.save(tmp_path_factory.mktemp("profile") / "site.json")


def test_without_a_profile_the_bundle_is_unchanged(rater: Rater, natives_only: SiteProfile) -> None:
    """No profile: the bundle's own calibrator, the same result as a Rater built without the
    argument; an identity profile changes no number either."""
    plain = Rater(profile=None)
    assert plain.profile is None and plain.calibrator == Calibrator(**plain.meta["calibration"])
    result = rater.rate(CLIP)
    assert plain.rate(CLIP) == result and result.profile == "" and result.to_dict()["profile"] == ""
    identity = Rater(profile=SiteProfile(**{**natives_only.__dict__, "a": 1.0, "b": 0.0, "name": "identity"})).rate(CLIP)
    assert identity.p_native == result.p_native and identity.segments == result.segments and identity.profile == "identity"


def test_natives_only_profile_lifts_the_sites_natives(rater: Rater, files, before, natives_only: SiteProfile) -> None:
    """The site's natives score below the natives the model was validated on; a natives-only
    profile shifts them up, part of the way (shrunk for 3 recordings), and says so in results."""
    ref = rater.meta["reference"]["native"]["median"]
    site_median = float(np.median(logit(np.array([before[f] for f in files["natives"]]))))
    assert site_median < ref  # the room and the line make natives sound less native
    assert natives_only.method == "shift" and natives_only.a == 1.0 and 0 < natives_only.b < ref - site_median
    adjusted = Rater(profile=natives_only)
    for f in files["natives"] + files["non_natives"]:
        result = adjusted.rate(f)
        assert result.p_native > before[f] and result.profile == "natives-only"
    g = natives_only.groups["native"]
    assert g["n"] == 3 and g["p_native_after"]["median"] > g["p_native_before"]["median"]
    assert any("only 3 native recordings" in w for w in natives_only.warnings)
    assert any("natives only" in w for w in natives_only.warnings)


def test_two_group_profile_fits_the_site_and_keeps_the_order(files, before, both: SiteProfile) -> None:
    """Platt refitted around the bundle's fit: it never loses log-likelihood on the speakers it was
    fitted to (the identity is one of its candidates), and it keeps the ranking (a > 0)."""
    y = np.array([1] * len(files["natives"]) + [0] * len(files["non_natives"]))
    z = logit(np.array([before[f] for f in files["natives"] + files["non_natives"]]))

    def log_loss(a: float, b: float) -> float:
        s = (2 * y - 1) * (a * z + b)
        return float(np.logaddexp(0, -s).sum())

    assert both.method == "platt" and both.a > 0
    assert log_loss(both.a, both.b) <= log_loss(1.0, 0.0)
    assert np.array_equal(np.argsort(z), np.argsort(both.a * z + both.b))
    assert {g: both.groups[g]["n"] for g in both.groups} == {"native": 3, "non_native": 3}


def test_profile_for_another_model_is_refused(rater: Rater, profile_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"calibrated for model default .* not fast"):
        Rater("fast", profile=profile_file)
    d = json.loads(profile_file.read_text())
    for field, value, message in (("model", "default 0.0.1", "calibrated for model default 0.0.1"),
                                  ("model_sha256", "0" * 64, "same version, other weights")):
        path = tmp_path / f"{field}.json"
        path.write_text(json.dumps({**d, field: value}))
        with pytest.raises(ProfileError, match=message):
            Rater(profile=path)
    assert Rater(profile=profile_file).profile.name == "site"


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not readable JSON"),
    ("[1, 2]", "is not an accent-rater site profile"),
    ('{"a": 1, "method": "shift", "format": 1}', "field 'name' is missing"),
    ("FORMAT2", "profile format 2 is not supported"),
    ("NEGATIVE", "is not usable"),
    ("METHOD", "unknown method 'isotonic'"),
])
def test_bad_profile_files_give_clear_errors(rater: Rater, both: SiteProfile, tmp_path: Path, content: str, message: str) -> None:
    good = json.loads(both.to_json())
    edits = {"FORMAT2": {"format": 2}, "NEGATIVE": {"a": -1.0}, "METHOD": {"method": "isotonic"}}
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({**good, **edits[content]}) if content in edits else content)
    with pytest.raises(ProfileError, match=message):
        load_profile(path, rater.meta)
    with pytest.raises(ProfileError, match="does not exist"):
        load_profile(tmp_path / "missing.json", rater.meta)


def test_natives_only_needs_the_bundles_reference() -> None:
    with pytest.raises(ProfileError, match="give --non-natives too"):
        fit_adjustment(np.array([2.0, 3.0]), None, reference=None)
    method, a, _ = fit_adjustment(np.array([2.0, 3.0]), np.array([-3.0]), reference=None)
    assert method == "platt" and a > 0
    with pytest.raises(ProfileError, match="at least one"):
        fit_adjustment(np.array([]), np.array([-3.0]))


def test_cli_calibrate_then_rate_with_the_profile(site: Path, tmp_path: Path) -> None:
    natives = tmp_path / "natives"
    shutil.copytree(site / "natives", natives)
    (natives / "broken.wav").write_text("not audio")  # skipped and reported, like a batch
    out = tmp_path / "lab.json"
    proc = run("calibrate", "--natives", natives, "--non-natives", site / "non_natives", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "skipped" in proc.stderr and "broken.wav" in proc.stderr and "only 3 native" in proc.stderr
    saved = json.loads(out.read_text())
    assert saved["name"] == "lab" and saved["method"] == "platt" and saved["skipped"][0]["code"] == "not_audio"
    clip = site / "natives" / f"{NATIVES[0]}.flac"
    row = json.loads(run("rate", clip, "--json", "--profile", out).stdout)
    assert row["profile"] == "lab"
    assert row["p_native"] == pytest.approx(Rater(profile=out).rate(clip).p_native, abs=1e-4)

    (tmp_path / "empty").mkdir()
    proc = run("calibrate", "--natives", tmp_path / "empty", "--out", tmp_path / "x.json")
    assert proc.returncode == 2 and "contains no audio files" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "bad.json").write_text("{")
    proc = run("rate", CLIP, "--profile", tmp_path / "bad.json")
    assert proc.returncode == 2 and "not readable JSON" in proc.stderr and "Traceback" not in proc.stderr


def test_batch_api_and_ui_say_which_profile(profile_file: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from accent_rater import api, ui
    from accent_rater.batch import rater_options, run_batch
    from accent_rater.engine import Engine

    (tmp_path / "in").mkdir()
    shutil.copy(CLIP, tmp_path / "in" / CLIP.name)
    out = tmp_path / "out.jsonl"
    run_batch(tmp_path / "in", out, Engine(workers=1), rater_options(profile=profile_file), progress=False)
    expected = Rater(profile=profile_file).rate(CLIP)
    row = json.loads(out.read_text().splitlines()[0])
    assert row["profile"] == "site" and row["p_native"] == pytest.approx(expected.p_native, abs=1e-4)
    with TestClient(api.create_app(profile=profile_file)) as c:
        body = c.post("/v1/rate", files={"file": (CLIP.name, CLIP.read_bytes(), "audio/flac")}).json()
    assert body["profile"] == "site" and body["p_native"] == pytest.approx(expected.p_native, abs=1e-4)
    assert "Site profile:** site" in ui.format_result(make_result(0.7, profile="site"))
    assert "Site profile" not in ui.format_result(make_result(0.7))
