"""Habits of the repository, checked: one naming scheme for configs and one report folder per
config, no logs committed, and scripts that use only the public names of the package and of the
experiments."""

from __future__ import annotations

import ast
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from accent_rater import paths

from conftest import REPO

CONFIGS = sorted((REPO / "configs").rglob("*.toml"))
RUN_REPORT = "# Accent Rater: evaluation of run"  # the first line of a training run's report


def tracked() -> list[str]:
    return subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_a_config_is_named_after_its_file(config: Path) -> None:
    """One scheme: lower-case snake-case file names, and the run's ``name`` is the file's stem (so
    runs/NAME and reports/... are found from the config)."""
    assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", config.stem), config.stem
    assert tomllib.loads(config.read_text())["name"] == config.stem


def test_every_run_report_belongs_to_one_config() -> None:
    """A committed training-run report (``accent-rater evaluate``'s README) lies in its config's
    folder (``paths.report_dir``) or beneath it (an earlier run of the same config), never beside it."""
    homes = {REPO / paths.report_dir(c.relative_to(REPO)) for c in CONFIGS}
    assert REPO / "reports" / "default" in homes and REPO / "reports" / "experiments" / "whisper_base" in homes
    runs = [r.parent for r in (REPO / "reports").rglob("README.md") if r.read_text().startswith(RUN_REPORT)]
    assert len(runs) >= 8
    for folder in runs:
        assert any(folder == h or h in folder.parents for h in homes), f"{folder.relative_to(REPO)} has no config"


def test_no_logs_are_committed() -> None:
    offenders = [f for f in tracked() if f.startswith("logs/") or f.endswith(".log") or "onnxruntime_profile" in f]
    assert offenders == []


def _private_uses(path: Path) -> list[str]:
    """Names starting with ``_`` that a script imports, or reads from a module it imported."""
    tree = ast.parse(path.read_text(), str(path))
    modules: set[str] = set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_") and a.name != "__version__"]
            modules.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Import):
            modules.update((a.asname or a.name).split(".")[0] for a in node.names)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name) and node.value.id in modules):
            found.append(f"{node.value.id}.{node.attr} (line {node.lineno})")
    return found


@pytest.mark.parametrize("script", sorted((REPO / "scripts").glob("*.py")), ids=lambda p: p.name)
def test_scripts_use_only_public_names(script: Path) -> None:
    assert _private_uses(script) == []


def test_the_private_name_check_sees_a_private_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import pronunciation as ps\nfrom accent_rater.rater import _with_accuracy\nps._decode(1)\n")
    assert _private_uses(bad) == ["accent_rater.rater._with_accuracy", "ps._decode (line 3)"]
