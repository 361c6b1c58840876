"""Integration: every model family trains for a few steps on a handful of real speakers, the
pipeline writes out-of-fold predictions, a report and an exported bundle that the Rater serves
(audiocraft's habit: prove the recipes run in CI without training a real model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from accent_rater import audio, features, logmel
from accent_rater.backbones import speaker as encoder
from accent_rater.evaluation.leakage import leakage_demo
from accent_rater.training import caches
from accent_rater.training.train import Config, run

from conftest import FIXTURES, REPO, SAMPLES

FAMILIES = [
    {"family": "encoder", "C": 0.05},
    {"family": "encoder", "label": "embedding", "inputs": "embedding", "C": 0.05},
    {"family": "fluency"},
    {"family": "handcrafted", "n_estimators": 10, "max_segments": 200},
    {"family": "cnn", "channels": 16, "epochs": 1, "max_steps": 2, "batch_size": 8},
    {"family": "seed_resnet", "epochs": 1, "max_steps": 1, "batch_size": 4, "specaugment": [34, 34, 2], "mixup": 0.3, "label_smoothing": 0.1},
]


@pytest.fixture(scope="module")
def tiny_run(shared_data: Path, tmp_path_factory) -> tuple[Config, dict, Path]:
    tmp = tmp_path_factory.mktemp("train")
    cfg = Config(
        name="tiny",
        corpus=str(shared_data / "saa"),
        cache=str(tmp / "cache"),
        folds=2,
        max_speakers=8,
        features="mels",
        corpora=[],  # the mel families train on the archive alone
        models=[dict(m) for m in FAMILIES],
        fusion=True,
        group_weighting=0.5,  # exercises weighted fitting in every family and the stacker
        primary="fusion",
        out_dir=str(tmp / "run"),
        bundle_dir=str(tmp / "bundle"),
        workers=1,
    )
    # the bundle can only hold exportable families
    cfg.models = [m for m in cfg.models if m["family"] != "handcrafted"]
    summary = run(cfg)
    return cfg, summary, tmp


def test_every_family_trains_and_predicts_out_of_fold(tiny_run) -> None:
    cfg, summary, tmp = tiny_run
    import pandas as pd

    preds = pd.read_csv(Path(cfg.out_dir) / "predictions.csv")
    assert set(preds["model"]) == {"encoder", "embedding", "fluency", "cnn", "seed_resnet", "fusion"}
    assert preds.groupby("model")["speaker_id"].nunique().eq(summary["n_speakers"]).all()
    assert preds["p_native"].between(0, 1).all()
    folds = json.loads((Path(cfg.out_dir) / "folds.json").read_text())
    assert set(folds.values()) == {0, 1}
    # a rerun resumes from the saved folds instead of retraining them
    fold_files = sorted((Path(cfg.out_dir) / "folds").glob("*.npz"))
    stamps = [p.stat().st_mtime_ns for p in fold_files]
    again = run(Config(**{**vars(cfg), "bundle_dir": ""}))  # no re-export: other tests use the bundle
    assert again["n_speakers"] == summary["n_speakers"]
    assert [p.stat().st_mtime_ns for p in fold_files] == stamps
    assert len(fold_files) == 2 * len(cfg.models)
    # ...but a member whose config changed is retrained, and only that member
    edited = [dict(m, C=0.5) if m["family"] == "fluency" else m for m in cfg.models]
    run(Config(**{**vars(cfg), "models": edited, "bundle_dir": ""}))
    changed = {p.name for p, t in zip(fold_files, stamps) if p.stat().st_mtime_ns != t}
    assert changed == {"fluency_fold0.npz", "fluency_fold1.npz"}


def test_report_is_written(tiny_run) -> None:
    from accent_rater.evaluation.report import report_run

    cfg, _, _ = tiny_run
    readme = report_run(cfg.out_dir, n_boot=50)
    text = readme.read_text()
    assert "ROC-AUC" in text and (readme.parent / "metrics.json").exists()


def test_model_card_states_the_runs_numbers(tiny_run) -> None:
    import json

    from accent_rater.evaluation.report import report_run
    from accent_rater.training.export import write_model_card

    cfg, _, _ = tiny_run
    report_run(cfg.out_dir, n_boot=50)
    card = write_model_card(Path(cfg.bundle_dir), Path(cfg.out_dir), "configs/tiny.toml").read_text()
    m = json.loads((Path(cfg.out_dir) / "report" / "metrics.json").read_text())
    auc = m["speaker_level"]["fusion"]["roc_auc"]
    nested = m["speaker_level_nested_threshold"]["fusion"]["balanced_accuracy"]
    assert f"{auc['point']:.3f} [{auc['lo']:.3f}, {auc['hi']:.3f}]" in card
    assert f"balanced accuracy {nested['point']:.3f}" in card  # threshold chosen on the other folds
    assert "n_group^-0.5" in card  # tiny_run trains with group_weighting = 0.5
    n = json.loads((Path(cfg.out_dir) / "summary.json").read_text())["n_speakers"]
    assert "2-fold cross-validation" in card and f"Small data ({n} speakers)" in card  # the run's, not the default's
    assert "accent-rater train --config configs/tiny.toml" in card and "CC BY-NC-SA" in card


def test_compare_command_stacks_every_member_combination(tiny_run) -> None:
    """`accent-rater compare RUN` scores every stacking combination of the run's saved members; a
    single member's ROC-AUC is that of its out-of-fold logits, and runs on other folds are refused."""
    import csv
    import itertools
    import shutil
    import subprocess
    import sys

    from sklearn.metrics import roc_auc_score

    cfg, summary, tmp = tiny_run
    cli = [sys.executable, "-m", "accent_rater", "compare"]
    proc = subprocess.run([*cli, cfg.out_dir], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1] for line in proc.stdout.splitlines()[2:]}
    members = summary["members"]
    assert set(rows) == {" + ".join(c) for r in range(1, len(members) + 1) for c in itertools.combinations(sorted(members), r)}
    run_dir = Path(cfg.out_dir)
    folds = json.loads((run_dir / "folds.json").read_text())
    fold = np.array(list(folds.values()))
    label = {r["speaker_id"]: int(r["label"]) for r in csv.DictReader(open(run_dir / "predictions.csv"))}
    y = np.array([label[s] for s in folds])
    logits = np.zeros(len(y))
    for k in np.unique(fold):
        logits[fold == k] = np.load(run_dir / "folds" / f"fluency_fold{k}.npz")["logits"]
    assert rows["fluency"].startswith(f"{roc_auc_score(y, logits):.3f} [")
    other = tmp / "other_run"  # the same run with two speakers' folds swapped
    shutil.copytree(run_dir, other, ignore=shutil.ignore_patterns("report"))
    s0, s1 = (next(s for s in folds if folds[s] == k) for k in (0, 1))
    (other / "folds.json").write_text(json.dumps({**folds, s0: 1, s1: 0}))
    proc = subprocess.run([*cli, cfg.out_dir, other], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "other speakers or folds" in proc.stderr and "Traceback" not in proc.stderr


def test_exported_bundle_serves(tiny_run) -> None:
    """The bundle holds no pickle and the Rater serves it (its ONNX members' parity with PyTorch:
    ``test_onnx_neural_member_matches_pytorch``; the trained modules themselves are not kept)."""
    from accent_rater import Rater

    cfg, _, tmp = tiny_run
    bundle = Path(cfg.bundle_dir)
    files = {p.name for p in bundle.iterdir()}
    assert {"model.json", "model.safetensors", "encoder.onnx", "cnn.onnx", "seed_resnet.onnx"} <= files
    assert not any(p.suffix in (".pt", ".pkl", ".pickle") for p in bundle.iterdir())
    clip = next(FIXTURES.glob("native_us_*.flac"))
    result = Rater(bundle).rate(clip)
    assert 0.0 <= result.p_native <= 1.0 and len(result.segments) >= 1


def test_onnx_encoder_matches_pytorch(shared_data: Path) -> None:
    """Serving (ONNX) and training (PyTorch) compute the same speaker-encoder features."""
    from accent_rater.rater import Rater

    speech = audio.prepare(next(FIXTURES.glob("nonnative_*.flac")))
    onnx_feats = features.extract(speech, Rater("fast").encoder)
    torch_feats = features.extract(speech, encoder.load_encoder())
    np.testing.assert_allclose(onnx_feats.stats, torch_feats.stats, atol=1e-4)
    np.testing.assert_allclose(onnx_feats.seg_embeddings, torch_feats.seg_embeddings, atol=1e-4)


@pytest.mark.parametrize("family", ["cnn", "seed_resnet"])
def test_onnx_neural_member_matches_pytorch(family: str, tmp_path: Path) -> None:
    """A seeded, randomly initialised member exported to ONNX gives PyTorch's logits on real speech,
    for full 7 s windows and for a shorter frame count (dynamic axis). Measured max |diff|: cnn ~5e-7,
    seed_resnet ~2e-6."""
    import onnxruntime as ort

    from accent_rater.models.neural import CNNFamily, SeedResNetFamily
    from accent_rater.training.export import export_onnx

    torch.manual_seed(0)
    model = (CNNFamily(channels=32) if family == "cnn" else SeedResNetFamily()).module
    mels, _ = logmel.segment_features(audio.prepare(SAMPLES / "nonnative_mandarin8.opus"))
    assert mels.shape[0] >= 3
    with torch.no_grad():  # batch-norm statistics of real log-mels, so that the windows' logits differ
        for _ in range(20):
            model.train()(mels)
    export_onnx(model.eval(), tmp_path / "member.onnx")
    session = ort.InferenceSession(str(tmp_path / "member.onnx"), providers=["CPUExecutionProvider"])
    for x in (mels, mels[..., :300].contiguous()):
        with torch.inference_mode():
            expected = model(x).numpy()
        assert np.ptp(expected) > 1e-3  # 10x the tolerance: a constant output would test little
        np.testing.assert_allclose(session.run(None, {"mels": x.numpy()})[0], expected, rtol=0, atol=1e-4)


def test_fast_model_rates_cached_features_as_it_serves(tmp_path: Path) -> None:
    """Training reads the float16 feature cache built with the PyTorch encoder; serving computes
    float32 features with the bundle's ONNX encoder. Through the whole fast bundle (members, stacker,
    calibrator) the two give the same p_native within 1e-3, per recording and per segment (measured
    on these 8 clips: at most 9e-5 per recording, 3e-4 per segment)."""
    from accent_rater.rater import Rater
    from accent_rater.serve.engine import Engine

    rater = Rater("fast")
    clips = sorted(FIXTURES.glob("*.flac")) + sorted(
        (REPO / "src" / "accent_rater" / "assets" / "samples").glob("*.opus"))
    assert caches.build_cache([(p.stem, str(p)) for p in clips], tmp_path, Engine(1)) == {}
    cached = caches.load_cache([p.stem for p in clips], tmp_path)
    assert cached[clips[0].stem].mels.dtype == np.float16  # the training path really is float16
    for clip in clips:
        served, trained = rater.rate(clip), rater.rate_features(cached[clip.stem])
        assert abs(served.p_native - trained.p_native) <= 1e-3, clip.name
        assert len(served.segments) == len(trained.segments)
        assert max(abs(a[2] - b[2]) for a, b in zip(served.segments, trained.segments)) <= 1e-3, clip.name


def test_handcrafted_rows_are_cached_by_content_and_bounded(monkeypatch) -> None:
    from accent_rater.models import handcrafted

    monkeypatch.setattr(handcrafted, "ROWS_CACHE_SIZE", 2)
    monkeypatch.setattr(handcrafted, "_rows_cache", type(handcrafted._rows_cache)())
    rng = np.random.default_rng(0)
    mels = [(rng.normal(-40, 10, (2, audio.N_MELS, 100))).astype(np.float16) for _ in range(3)]
    first = handcrafted.recording_rows(mels[0])
    assert handcrafted.recording_rows(mels[0].copy()) is first  # same content, another array: a hit
    for m in mels[1:]:
        handcrafted.recording_rows(m)
    assert len(handcrafted._rows_cache) == 2 and handcrafted.recording_rows(mels[0]) is not first  # evicted
    np.testing.assert_array_equal(handcrafted.recording_rows(mels[0]), first)


def test_config_defaults_are_the_default_recipe() -> None:
    """``Config()`` trains what ``configs/default.toml`` (the bundled model's recipe) says; only the
    export target differs, so that no run overwrites the bundled model unless its config says so."""
    from dataclasses import asdict

    recipe = asdict(Config.load(REPO / "configs" / "default.toml"))
    code = asdict(Config(name="default"))
    assert recipe.pop("bundle_dir") == "src/accent_rater/assets/model" and code.pop("bundle_dir") == ""
    for derived in ("out_dir", "primary"):  # filled in by Config.load from the rest
        recipe.pop(derived), code.pop(derived)
    assert code == recipe


CONFIGS = REPO / "configs"
# Config.load(...) of the two bundled recipes as recorded (asdict) before Config's defaults were
# read from configs/default.toml instead of restated in the dataclass
RESOLVED = {
    "default.toml": {
        "name": "default", "corpus": "../shared/data/saa", "cache": "cache", "folds": 5, "seed": 0, "max_speakers": 0,
        "models": [{"family": "whisper", "corpora": ["saa"], "C": 0.003, "scale_floor": 0.5, "corpus_nuisance": 1}],
        "fusion": False, "group_weighting": 0.0, "primary": "whisper", "out_dir": "runs/default",
        "bundle_dir": "src/accent_rater/assets/model", "workers": 0, "ray": "", "features": "whisper-tiny.en", "augment_copies": 2,
        "l1": {"method": "lda", "layers": [3, 4], "n_components": 128}, "window_seconds": 7.0,
        "corpora": ["../shared/data/librispeech", "../shared/data/speechocean762"], "copies": {"speechocean762": 1},
        "short_corpora": ["saa", "librispeech"]},
    "fast.toml": {
        "name": "fast", "corpus": "../shared/data/saa", "cache": "cache", "folds": 5, "seed": 0, "max_speakers": 0,
        "models": [{"family": "encoder", "C": 0.05, "segment_level": True},
                   {"family": "cnn", "channels": 128, "epochs": 20, "batch_size": 64, "lr": 0.003, "weight_decay": 0.01, "mixup": 0.2,
                    "label_smoothing": 0.05, "crop_frames": 400, "specaugment": [10, 40, 2], "patience": 6, "val_fraction": 0.15},
                   {"family": "fluency", "C": 1.0}],
        "fusion": True, "group_weighting": 0.0, "primary": "fusion", "out_dir": "runs/fast",
        "bundle_dir": "src/accent_rater/assets/fast", "workers": 0, "ray": "", "features": "mels", "augment_copies": 2,
        "l1": {"method": "lda", "layers": [3, 4], "n_components": 128}, "window_seconds": 7.0, "corpora": [],
        "copies": {"speechocean762": 1}, "short_corpora": ["saa", "librispeech"]},
}


@pytest.mark.parametrize("name", sorted(RESOLVED))
def test_the_bundled_recipes_resolve_as_before(name: str) -> None:
    from dataclasses import asdict

    assert asdict(Config.load(CONFIGS / name)) == RESOLVED[name]


def test_each_default_is_stated_once() -> None:
    """Config's recipe defaults are exactly what configs/default.toml sets (bundle_dir aside, the
    bundled model's export target); the fields with a code default are ones default.toml leaves alone."""
    import tomllib
    from dataclasses import MISSING, fields

    from accent_rater.training.train import DEFAULT_CONFIG, FROM_DEFAULT_CONFIG, default_recipe

    raw = tomllib.loads(DEFAULT_CONFIG.read_text())
    in_file = {*raw["data"], *raw["run"], "models", "l1"} - {"bundle_dir"}
    from_file = {f.name for f in fields(Config) if f.default is FROM_DEFAULT_CONFIG}
    in_code = {f.name for f in fields(Config) if f.default not in (MISSING, FROM_DEFAULT_CONFIG)}
    assert from_file == in_file == set(default_recipe()) and not in_code & in_file
    assert in_code | from_file | {"name"} == {f.name for f in fields(Config)}
    cfg = Config(name="x")
    cfg.models[0]["C"] = 1.0  # every Config gets its own copy of the defaults
    assert Config(name="y").models == raw["models"]


def config_files() -> list[Path]:
    return sorted([*CONFIGS.glob("*.toml"), *CONFIGS.glob("experiments/*.toml")])


@pytest.mark.parametrize("path", config_files(), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_config_resolves_into_valid_members(path: Path) -> None:
    """Every config under configs/ loads, and each member's family takes its parameters as given
    (none dropped or replaced by a default); what ``run`` checks before any work passes too."""
    from accent_rater.models import get_family
    from accent_rater.training.train import check_members, family_params, l1_head

    cfg = Config.load(path)
    assert cfg.models
    for spec in cfg.models:
        params = family_params(spec)
        fam = get_family(spec["family"], **params)
        assert {k: fam.params[k] for k in params} == params, spec
    if cfg.l1:
        assert l1_head(cfg.l1).params.items() >= cfg.l1.items()
    check_members(cfg)


def test_check_members_refuses_what_a_run_would_not_apply(tmp_path: Path) -> None:
    """A misspelt member parameter, an unknown scheduler or [l1] setting, multi-corpus settings in an
    archive-only config and extra members beside a multi-corpus head are refused before any work."""
    from accent_rater.training.train import check_members

    def load(text: str) -> Config:
        (tmp_path / "c.toml").write_text(text)
        return Config.load(tmp_path / "c.toml")

    mels = '[data]\nfeatures = "mels"\ncorpora = []\n'
    with pytest.raises(TypeError, match="model family 'encoder' has no parameter 'Cc' \\(did you mean 'C'\\?\\); valid: C, segment_level, inputs"):
        check_members(load(mels + '[[models]]\nfamily = "encoder"\nCc = 0.05\n'))
    with pytest.raises(ValueError, match="scheduler must be one of 'onecycle', 'cosine', 'plateau'; got 'cosin'"):
        check_members(load(mels + '[[models]]\nfamily = "cnn"\nscheduler = "cosin"\n'))
    with pytest.raises(TypeError, match="first-language head \\[l1\\] has no setting 'n_component'"):
        check_members(load('[l1]\nn_component = 64\n'))
    with pytest.raises(ValueError, match="scale_floor are multi-corpus settings"):
        check_members(load('[data]\ncorpora = []\n[[models]]\nfamily = "whisper"\nscale_floor = 0.5\n'))
    with pytest.raises(ValueError, match="one accent head"):
        check_members(load('[[models]]\nfamily = "whisper"\n[[models]]\nfamily = "whisper"\nlabel = "b"\n'))
    with pytest.raises(ValueError, match="unknown accent-head setting"):
        check_members(load('[[models]]\nfamily = "whisper"\nlayers = [3]\n'))


def test_an_unknown_config_key_is_refused_naming_it(tmp_path: Path) -> None:
    def load(text: str, **overrides):
        (tmp_path / "c.toml").write_text(text)
        return Config.load(tmp_path / "c.toml", **overrides)

    with pytest.raises(ValueError, match="\\[data\\] has no setting 'fold' \\(did you mean 'folds'\\?\\); valid: augment_copies, "):
        load("[data]\nfold = 3\n")
    with pytest.raises(ValueError, match="\\[run\\] has no setting 'fusoin'"):
        load("[run]\nfusoin = true\n")
    with pytest.raises(ValueError, match="has no top-level key 'rnu' \\(did you mean 'run'\\?\\); valid: name, data, run, models, l1"):
        load("[rnu]\nfusion = true\n")
    with pytest.raises(ValueError, match="has no top-level key 'model'"):
        load('[[model]]\nfamily = "encoder"\n')
    with pytest.raises(ValueError, match="folds set in both \\[data\\] and \\[run\\]"):
        load("[data]\nfolds = 3\n[run]\nfolds = 4\n")
    with pytest.raises(TypeError, match="Config.load has no setting 'max_speaker'"):
        load("", max_speaker=10)
    with pytest.raises(TypeError, match="unexpected keyword argument 'fold'"):
        Config(name="x", fold=3)
    # a base file's keys are checked as well
    (tmp_path / "base.toml").write_text("[data]\nseeds = 1\n")
    with pytest.raises(ValueError, match="has no setting 'seeds'"):
        load('base = "base.toml"\n')


def test_leakage_demo_separates_speaker_split(shared_data: Path, tmp_path: Path) -> None:
    cfg = Config(name="leak", corpus=str(shared_data / "saa"), cache=str(tmp_path / "cache"), max_speakers=10, workers=1,
                 models=[{"family": "encoder"}])
    out = leakage_demo(cfg, cfg.models[0])
    assert out["random segment split (seed)"]["speakers_in_both"] > 0
    assert out["speaker-disjoint split"]["speakers_in_both"] == 0


def test_neural_fit_resumes_from_checkpoint(tmp_path: Path) -> None:
    """An interrupted neural fit continues from its last epoch instead of starting over."""
    from accent_rater.models import get_family

    clip_dir = FIXTURES
    feats = [features.extract(audio.prepare(p)) for p in sorted(clip_dir.glob("n*.flac"))]
    y = np.array([1 if p.name.startswith("native") else 0 for p in sorted(clip_dir.glob("n*.flac"))])
    ckpt = tmp_path / "cnn.ckpt"
    params = {"channels": 8, "batch_size": 2, "checkpoint": str(ckpt), "crop_frames": 200}
    first = get_family("cnn", epochs=1, **params).fit(feats, y)
    assert ckpt.exists() and len(first["history"]) == 1
    second = get_family("cnn", epochs=2, **params).fit(feats, y)
    assert [h["epoch"] for h in second["history"]] == [1, 2]  # epoch 1 restored, only epoch 2 trained


def test_group_weights_lift_rare_native_varieties(shared_data: Path) -> None:
    """Re-weighting counters the US majority among natives without changing the class balance."""
    from accent_rater.training import data
    from accent_rater.training.train import group_weights

    recs = data.load_corpus(shared_data / "saa").recordings
    w = group_weights(recs, 0.5)
    native = np.array([r.label == "native" for r in recs])
    assert np.isclose(w[native].mean(), 1.0) and np.isclose(w[~native].mean(), 1.0)
    variety = np.array([data.native_variety(r.country) if r.label == "native" else "" for r in recs])
    assert w[variety == "other"].min() > 2 * w[variety == "USA"].max()
    np.testing.assert_allclose(group_weights(recs, 0.0), 1.0)


def test_weights_change_what_a_member_learns() -> None:
    """Weights reach the fit: up-weighting one speaker moves the model towards it."""
    from accent_rater.models import get_family

    clip_dir = FIXTURES
    paths = sorted(clip_dir.glob("n*.flac"))
    feats = [features.extract(audio.prepare(p)) for p in paths]
    y = np.array([1 if p.name.startswith("native") else 0 for p in paths])
    a, b = get_family("encoder", C=0.05), get_family("encoder", C=0.05)
    a.fit(feats, y)
    w = np.ones(len(feats))
    w[0] = 20.0
    b.fit(feats, y, weights=w)
    target = 1.0 if y[0] else -1.0
    assert target * b.recording_logit(feats[0]) > target * a.recording_logit(feats[0])


def test_encoder_reads_the_embedding_alone_when_asked(tmp_path: Path) -> None:
    from accent_rater.models import get_family

    paths = sorted(FIXTURES.glob("n*.flac"))
    feats = [features.extract(audio.prepare(p)) for p in paths]
    y = np.array([1 if p.name.startswith("native") else 0 for p in paths])
    emb, full = get_family("encoder", inputs="embedding"), get_family("encoder")
    emb.fit(feats, y)
    full.fit(feats, y)
    assert emb.coef.shape == (encoder.EMBED_DIM,) and full.coef.shape == (encoder.STATS_DIM + encoder.EMBED_DIM,)
    with pytest.raises(ValueError, match="inputs"):
        get_family("encoder", inputs="mfcc")
    # a config whose only model is labelled reports and calibrates that label
    toml = tmp_path / "emb.toml"
    toml.write_text('[[models]]\nfamily = "encoder"\nlabel = "embedding"\ninputs = "embedding"\n')
    assert Config.load(toml).primary == "embedding"


@pytest.fixture(scope="module")
def whisper_run(shared_data: Path, tmp_path_factory) -> tuple[Config, dict]:
    """The default's recipe (Whisper features of all three corpora, augmented copies and 3 s windows,
    accent head with the corpus projection, first-language head, novelty check) on 10 archive
    speakers and 5 of each other corpus, 2 folds, with the bundled encoder (no download)."""
    tmp = tmp_path_factory.mktemp("whisper")
    cfg = Config.load(REPO / "configs" / "default.toml", corpus=str(shared_data / "saa"),
                      corpora=[str(shared_data / "librispeech"), str(shared_data / "speechocean762")],
                      cache=str(tmp / "cache"), folds=2, max_speakers=10, augment_copies=1,
                      out_dir=str(tmp / "run"), bundle_dir=str(tmp / "bundle"), workers=1)
    cfg.l1 = {**cfg.l1, "n_components": 3}
    return cfg, run(cfg)


def test_whisper_recipe_trains_exports_and_serves(whisper_run) -> None:
    import csv

    from accent_rater import Rater
    from accent_rater.training.augment import KINDS

    cfg, summary = whisper_run
    out = Path(cfg.out_dir)
    with open(out / "predictions.csv") as fh:
        preds = list(csv.DictReader(fh))
    assert {r["model"] for r in preds} == {"whisper"} and len(preds) == summary["n_speakers"] == 10
    with open(out / "augmented.csv") as fh:  # every held-out speaker's augmented copy was scored
        aug = list(csv.DictReader(fh))
    assert len(aug) == 10 and {r["kind"] for r in aug} <= set(KINDS)
    with open(out / "l1_predictions.csv") as fh:
        l1 = list(csv.DictReader(fh))
    assert len(l1) == 10 and all(abs(sum(float(r[c]) for c in list(r)[4:]) - 1) < 1e-4 for r in l1)
    bundle = Path(cfg.bundle_dir)
    meta = json.loads((bundle / "model.json").read_text())
    assert meta["backbone"] == "tiny.en" and set(meta["files"]) == {meta["encoder"], "model.safetensors"}
    rater = Rater(bundle)
    assert rater.l1_languages and set(rater.l1_languages) <= {r.native_language for r in data_recordings(cfg)}
    result = rater.rate(FIXTURES / "nonnative_spanish6.flac")
    assert 0.0 <= result.p_native <= 1.0 and len(result.segments) == 1  # 6 s of speech: one window
    assert result.label == "native" or len(result.l1) >= 1
    with open(out / "corpora_predictions.csv") as fh:  # every corpus was cross-validated
        rows = list(csv.DictReader(fh))
    assert {r["corpus"] for r in rows} == {"saa", "librispeech", "speechocean762"}
    assert {r["label"] for r in rows if r["corpus"] == "librispeech"} == {"1"}
    assert summary["corpora"]["speechocean762"]["speakers"] == 5 and summary["recipe"]["corpus_nuisance"] == 1
    assert all(0.0 <= float(r["p_native"]) <= 1.0 for r in rows)
    notes = (out / "notes.md").read_text()  # the report's section on the other corpora
    assert "| librispeech | native |" in notes and "| speechocean762 | non-native |" in notes


def data_recordings(cfg: Config):
    from accent_rater.training.data import load_corpus
    from accent_rater.training.splits import speaker_subset

    return speaker_subset(load_corpus(cfg.corpus).recordings, cfg.max_speakers, cfg.seed)
