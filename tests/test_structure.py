"""The package's module structure: imports flow one way. Every import statement counts, lazy ones
inside functions included; only ``if TYPE_CHECKING:`` blocks (typing, never run) are left out."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

import accent_rater
from accent_rater.models import FAMILIES, Family, family_class

PACKAGE = Path(accent_rater.__file__).parent


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("accent_rater", *path.relative_to(PACKAGE).with_suffix("").parts)
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _is_type_checking(node: ast.stmt) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """The package modules that module ``name`` imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "accent_rater")
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            base = ".".join(p for p in (base, node.module) if p)
            if base.split(".")[0] == "accent_rater":
                # ``from . import audio`` imports the module audio; ``from .models import Family`` the package
                found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    found.discard(name)
    return found & modules


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    paths = module_names()
    g = {name: imports_of(name, path, set(paths)) for name, path in paths.items()}
    # the family registry imports its modules by name (importlib) when a family is asked for
    g["accent_rater.models"] |= {f"accent_rater.models.{entry.split(':')[0]}" for entry in FAMILIES.values()}
    return g


def reachable(g: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in g[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_the_import_graph_is_read(graph) -> None:
    """The graph sees lazy imports inside functions and skips typing-only ones (else the checks
    below could pass on an empty graph)."""
    assert "accent_rater.backbones.whisper" in graph["accent_rater.training.train"]  # inside load_features
    assert "accent_rater.backbones.speaker" in graph["accent_rater.features"]
    assert "accent_rater.features" not in graph["accent_rater.models.linear"]  # under TYPE_CHECKING
    assert "accent_rater.models.neural" in reachable(graph, "accent_rater.training.train")


def test_no_import_cycle(graph) -> None:
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as err:
        pytest.fail(f"import cycle: {' -> '.join(reversed(err.args[1]))}")  # listed importer first


def under(graph: dict[str, set[str]], prefix: str) -> set[str]:
    """The modules of a package (or the one module) ``prefix``."""
    return {m for m in graph if m == prefix or m.startswith(prefix + ".")}


SURFACES = ("accent_rater.training", "accent_rater.evaluation", "accent_rater.serve")


def test_layers_import_downwards_only(graph) -> None:
    """backbones < features < models < rater < cli, and training / evaluation / serve beside the CLI:
    pretrained extractors know nothing of features or heads, features nothing of the heads, heads
    nothing of the pipeline."""
    pipeline = {f"accent_rater.{m}" for m in ("features", "rater", "cli")}.union(*(under(graph, s) for s in SURFACES))
    assert len(pipeline) > 20  # the names exist (a renamed module would otherwise drop out silently)
    for m in under(graph, "accent_rater.backbones"):
        assert not reachable(graph, m) & (under(graph, "accent_rater.models") | pipeline), m
    assert not reachable(graph, "accent_rater.features") & under(graph, "accent_rater.models")
    for m in under(graph, "accent_rater.models"):
        assert not reachable(graph, m) & pipeline, m


def test_rating_imports_nothing_from_training_evaluation_or_serve(graph) -> None:
    """What you rate with lives at the top level (and in ``backbones`` / ``models``); every module of
    it, the package itself included, reaches no module of ``training``, ``evaluation`` or ``serve``.
    Only the CLI reaches into them (``serve``, ``train``, ``batch`` ...)."""
    surfaces = set().union(*(under(graph, s) for s in SURFACES))
    runtime = set(graph) - surfaces - {"accent_rater.cli", "accent_rater.__main__"}
    assert {"accent_rater", "accent_rater.rater", "accent_rater.bundle", "accent_rater.audio"} <= runtime
    for m in sorted(runtime):
        assert not reachable(graph, m) & surfaces, f"{m} reaches {sorted(reachable(graph, m) & surfaces)}"
    assert reachable(graph, "accent_rater.cli") & under(graph, "accent_rater.serve")  # the graph sees the CLI's lazy imports


def test_every_onnx_session_is_made_by_one_helper() -> None:
    """``threads.onnx_session`` is the one place an onnxruntime session is built (its thread counts)."""
    makers = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "InferenceSession(" in p.read_text())
    assert makers == ["threads.py"]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_families_declare_what_they_are(name: str) -> None:
    cls = family_class(name)
    assert issubclass(cls, Family) and cls.name == name
    assert cls.features in ("mels", "whisper")
    assert not (cls.neural and cls.features != "mels")  # the neural families read log-mels
    with pytest.raises(KeyError, match="unknown model family"):
        family_class("no_such_family")


# --- family parameters: declared, recorded, and never silently replaced by a default --------------
ASSETS = PACKAGE / "assets"


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_families_record_every_declared_parameter(name: str) -> None:
    """``params`` (what a bundle stores) holds every parameter the family declares, defaults filled in."""
    from accent_rater.models import get_family

    cls = family_class(name)
    assert cls.parameters() and len(set(cls.parameters())) == len(cls.parameters())
    assert set(get_family(name).params) == set(cls.parameters())


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_a_misspelt_family_parameter_is_refused_naming_it(name: str) -> None:
    from accent_rater.models import get_family

    valid = family_class(name).parameters()
    bad = valid[0] + valid[0][-1]  # e.g. "CC", "channelss"
    with pytest.raises(TypeError) as err:
        get_family(name, **{bad: 1})
    message = str(err.value)
    assert f"model family {name!r} has no parameter {bad!r}" in message and f"did you mean {valid[0]!r}" in message
    assert message.endswith("valid: " + ", ".join(valid))
    with pytest.raises(TypeError, match=repr(bad)):  # the class itself refuses it too
        family_class(name)(**{bad: 1})


def test_the_whisper_parameter_message() -> None:
    from accent_rater.models import get_family

    with pytest.raises(TypeError, match=r"^model family 'whisper' has no parameter 'Cc' \(did you mean 'C'\?\); valid: C, layers, parts, "):
        get_family("whisper", Cc=0.01)


@pytest.mark.parametrize("name, params, allowed", [
    ("cnn", {"scheduler": "cosin"}, "'onecycle', 'cosine', 'plateau'"),
    ("seed_resnet", {"scheduler": "step"}, "'onecycle', 'cosine', 'plateau'"),
    ("cnn", {"optimizer": "sgd"}, "'adamw', 'adam'"),
    ("seed_resnet", {"optimizer": "Adam"}, "'adamw', 'adam'"),
    ("encoder", {"inputs": "mfcc"}, "'stats\\+embedding', 'embedding'"),
    ("whisper", {"parts": "std"}, "'mean\\+std', 'mean'"),
])
def test_an_unknown_choice_is_refused_naming_the_allowed_ones(name: str, params: dict, allowed: str) -> None:
    from accent_rater.models import get_family

    key, value = next(iter(params.items()))
    with pytest.raises(ValueError, match=f"{key} must be one of {allowed}; got {value!r}"):
        get_family(name, **params)


def test_fixed_settings_and_the_first_language_head_refuse_other_values() -> None:
    from accent_rater.models import get_family
    from accent_rater.models.whisper_heads import L1Head

    with pytest.raises(ValueError, match="segment_level must be false"):
        get_family("fluency", segment_level=True)
    with pytest.raises(ValueError, match="segment_level must be true"):
        get_family("whisper", segment_level=False)
    with pytest.raises(ValueError, match="columns must be 'all'"):
        get_family("whisper", columns="L3-4")
    with pytest.raises(ValueError, match="specaugment must be"):
        get_family("cnn", specaugment=[8, 30])
    with pytest.raises(ValueError, match="method must be one of 'lda', 'logistic'; got 'qda'"):
        L1Head(method="qda")
    with pytest.raises(ValueError, match="parts must be one of"):
        L1Head(parts="means")
    with pytest.raises(TypeError, match="n_component"):
        L1Head(n_component=64)


@pytest.mark.parametrize("bundle", ["model", "fast"])
def test_the_bundled_members_params_are_valid_and_kept(bundle: str) -> None:
    """Every member a bundle stores, and its first-language head, instantiates from its stored
    ``params``, which it keeps as they are (the numbers: scripts/rate_fixtures.py)."""
    import json

    from accent_rater.models import get_family
    from accent_rater.models.whisper_heads import L1Head

    meta = json.loads((ASSETS / bundle / "model.json").read_text())
    for spec in meta["members"]:
        fam = get_family(spec["family"], **spec["params"])
        assert {k: fam.params[k] for k in spec["params"]} == spec["params"]
    if meta.get("l1"):
        assert L1Head(**meta["l1"]["params"]).params == meta["l1"]["params"]


MAX_FUNCTION_LINES = 100


def function_lengths() -> list[tuple[str, int]]:
    """(``path:line name``, lines from its first decorator to its last line) of every function and
    method in the package, nested ones included."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                out.append((f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}", node.end_lineno - start + 1))
    return out


def test_no_function_is_over_100_lines() -> None:
    lengths = function_lengths()
    assert len(lengths) > 300 and max(n for _, n in lengths) > 60  # the walk sees the package's functions
    assert [f"{where} ({n} lines)" for where, n in lengths if n > MAX_FUNCTION_LINES] == []
