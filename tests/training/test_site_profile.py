"""Site profiles (``accent_rater.profile``) with the real bundled model on real speech: a simulated
site (Speech Accent Archive readings with noise at 5 dB SNR, in a reverberant room, over a telephone
line), calibrated from 6 natives and 3 non-natives, and every surface that takes ``--profile``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from accent_rater import audio
from accent_rater.calibration import Calibrator, logit
from accent_rater.profile import ProfileError, SiteProfile, load_profile
from accent_rater.rater import Rater
from accent_rater.training import caches
from accent_rater.training.site_profile import calibrate, detectable_shift, fit_adjustment

from conftest import FIXTURES, make_result

SITE = "snr5+reverb+telephone"  # one room, one line: the same parameters for every speaker
NATIVES = ("english3", "english34", "english38", "english4", "english52", "english79")
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
            sf.write(root / group / f"{sid}.flac", caches.degrade(wav, SITE, np.random.default_rng(0)), audio.SAMPLE_RATE)
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
    """The site's natives score far below the natives the model was validated on; a natives-only
    profile shifts every score up, by the part of the gap that 6 recordings show beyond chance."""
    ref = rater.meta["reference"]["native"]
    gap = ref["median"] - float(np.median(logit(np.array([before[f] for f in files["natives"]]))))
    assert gap > detectable_shift(6, ref["sd"])  # the noisy room and the line make natives sound less native
    assert natives_only.method == "shift" and natives_only.a == 1.0
    # calibrate rates in parallel threads: the int8 encoder's sums then differ in their last bits (~1e-5 in a logit)
    assert natives_only.b == pytest.approx(gap - detectable_shift(6, ref["sd"]), rel=1e-4)
    adjusted = Rater(profile=natives_only)
    for f in files["natives"] + files["non_natives"]:
        result = adjusted.rate(f)
        assert result.p_native > before[f] and result.profile == "natives-only"
    g = natives_only.groups["native"]
    assert g["n"] == 6 and g["p_native_after"]["median"] > g["p_native_before"]["median"]
    assert g["p_native_after"]["rated_native"] >= g["p_native_before"]["rated_native"]
    assert any("only 6 native recordings" in w for w in natives_only.warnings)
    assert any("natives only" in w for w in natives_only.warnings)


def test_two_group_profile_moves_each_median_towards_the_reference(rater: Rater, files, before, both: SiteProfile) -> None:
    """Both groups: each group's median moves towards the reference's, never past it (the natives'
    gap is beyond chance here, so theirs moves), and the ranking of recordings is kept (a > 0)."""
    ref = rater.meta["reference"]
    nat = logit(np.array([before[f] for f in files["natives"]]))
    non = logit(np.array([before[f] for f in files["non_natives"]]))
    assert both.method == "scale+shift" and both.a > 0
    for z, group in ((nat, "native"), (non, "non_native")):
        m, target = float(np.median(z)), ref[group]["median"]
        assert min(m, target) - 1e-9 <= both.a * m + both.b <= max(m, target) + 1e-9, group
    assert both.a * np.median(nat) + both.b > np.median(nat) + 0.5
    z = np.concatenate([nat, non])
    assert np.array_equal(np.argsort(z), np.argsort(both.a * z + both.b))
    assert {g: both.groups[g]["n"] for g in both.groups} == {"native": 6, "non_native": 3}


def test_a_site_like_the_training_data_gets_the_identity(rater: Rater) -> None:
    """Clean recordings of natives score within chance of the reference: the profile changes nothing."""
    clean = [FIXTURES / "native_uk_english2.flac", FIXTURES / "native_us_english5.flac"]
    profile = calibrate(rater, clean, [FIXTURES / "nonnative_spanish6.flac"], name="clean")
    assert (profile.a, profile.b) == (1.0, 0.0) and any("leaves ratings unchanged" in w for w in profile.warnings)


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


def test_a_bundle_without_reference_scores_cannot_be_calibrated() -> None:
    with pytest.raises(ProfileError, match="no reference scores"):
        fit_adjustment(np.array([2.0, 3.0]), np.array([-3.0]), reference=None)
    with pytest.raises(ProfileError, match="at least one"):
        fit_adjustment(np.array([]), np.array([-3.0]), reference={"native": {}, "non_native": {}})


def test_cli_calibrate_then_rate_with_the_profile(site: Path, tmp_path: Path) -> None:
    natives = tmp_path / "natives"
    shutil.copytree(site / "natives", natives)
    (natives / "broken.wav").write_text("not audio")  # skipped and reported, like a batch
    out = tmp_path / "lab.json"
    proc = run("calibrate", "--natives", natives, "--non-natives", site / "non_natives", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "skipped" in proc.stderr and "broken.wav" in proc.stderr and "only 6 native" in proc.stderr
    saved = json.loads(out.read_text())
    assert saved["name"] == "lab" and saved["method"] == "scale+shift" and saved["skipped"][0]["code"] == "not_audio"
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

    from accent_rater.serve import api, ui
    from accent_rater.serve.batch import rater_options, run_batch
    from accent_rater.serve.engine import Engine

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
