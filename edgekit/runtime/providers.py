"""onnxruntime execution providers by short name, with the options a device user sets, and the check that a session
really got the providers it was asked for.

`resolve(["cuda"], settings)` -> (onnxruntime provider names, their options), always ending with the CPU provider as
onnxruntime's fallback for nodes a GPU provider does not take; `tensorrt` registers TensorRT, CUDA, CPU in that
order (nodes TensorRT rejects run on CUDA, not on the CPU with copies). A provider the installed onnxruntime lacks is
a one-line `ProviderError` naming the wheel to install.

onnxruntime falls back quietly: a provider whose libraries do not load is dropped with a log line, and one whose
constructor fails (e.g. a TensorRT engine cache folder it cannot create) makes the Python API retry on CUDA/CPU.
So `check_session` compares what a session got with what was asked: a missing provider is a `ProviderError` with
onnxruntime's own reason (re-created on a one-node graph with fallback off, its log captured), or, with
`allow_fallback`, a warning line.

The TensorRT provider's engine and timing caches go to a user cache folder keyed by the artefact's hash, never into
the artefact (artefacts stay read-only and hash-verifiable); the folders are created here with mode 0700, because
the provider itself creates only the last level, and refused when another user could write into them (an engine
file is code the GPU runs).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnxruntime as ort

from ..artefact import make_private_levels, private_folder_problem

CPU, CUDA, TENSORRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"


class ProviderError(ValueError):
    """An execution provider that is unknown, not present in the installed onnxruntime, or that a session did not
    get (one-line message)."""


@dataclass(frozen=True)
class ProviderSettings:
    device_id: int = 0
    fp16: bool = False  # TensorRT EP: allow fp16 kernels
    cache_dir: Path | None = None  # TensorRT EP: cache root in place of $EDGEKIT_CACHE (default ~/.cache/edgekit)
    artefact_key: str = "default"  # which artefact the cache belongs to (sha of its manifest)
    allow_fallback: bool = False  # a requested provider that does not start is a warning, not an error
    tf32: bool | None = None  # CUDA EP `use_tf32`; None: onnxruntime's default (on); validation passes False


def _cpu(s: ProviderSettings) -> dict[str, Any]:
    return {}


def _cuda(s: ProviderSettings) -> dict[str, Any]:
    opts: dict[str, Any] = {"device_id": s.device_id}
    if s.tf32 is not None:  # Ampere and later run float32 MatMul/Conv in TF32 unless this is off
        opts["use_tf32"] = int(s.tf32)
    return opts


def cache_root(settings: ProviderSettings) -> Path:
    """The cache root: --cache-dir, else $EDGEKIT_CACHE, else ~/.cache/edgekit (shared with edgekit.cache)."""
    if settings.cache_dir is not None:
        return Path(settings.cache_dir).expanduser()
    env = os.environ.get("EDGEKIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edgekit"


def user_cache(settings: ProviderSettings) -> Path:
    """The TensorRT provider's engine and timing cache folder for one artefact: <root>/trt-ep/<artefact key>."""
    return cache_root(settings) / "trt-ep" / settings.artefact_key


def prepare_cache(settings: ProviderSettings) -> Path:
    """Create the TensorRT provider's cache folder (every missing level with mode 0700) and refuse one another
    user could write into. The root's own parents are the user's business; root, trt-ep and the artefact's folder
    must be real folders of this user that only this user can write."""
    root = cache_root(settings)
    folder = user_cache(settings)
    try:
        make_private_levels(folder)
    except OSError as e:
        raise ProviderError(
            f"cannot create the TensorRT engine cache folder {folder} ({e.strerror}); "
            "pass --cache-dir with a writable folder, or set EDGEKIT_CACHE"
        ) from None
    for p in (root, root / "trt-ep", folder):
        why = private_folder_problem(p)
        if why:
            raise ProviderError(
                f"the TensorRT engine cache folder {p} {why}, so another user could plant an engine there; "
                f"use a folder only you can write (chmod 700 {p}), or pass --cache-dir"
            )
    return folder


def _tensorrt(s: ProviderSettings) -> dict[str, Any]:
    cache = prepare_cache(s)
    return {
        "device_id": s.device_id,
        "trt_fp16_enable": s.fp16,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache),
    }


class Provider(NamedTuple):
    ort_name: str
    options: Callable[[ProviderSettings], dict[str, Any]]
    wheel: str  # what to install when it is missing


_GPU_WHEEL = (
    "onnxruntime-gpu (desktop: `pip install onnxruntime-gpu`; Jetson: the JetPack onnxruntime-gpu wheel for its "
    "CUDA and Python)"
)
PROVIDERS: dict[str, Provider] = {
    "cpu": Provider(CPU, _cpu, "onnxruntime"),
    "cuda": Provider(CUDA, _cuda, _GPU_WHEEL),
    "tensorrt": Provider(
        TENSORRT,
        _tensorrt,
        "onnxruntime-gpu with the TensorRT libraries it was built for (desktop: `pip install onnxruntime-gpu` "
        "plus TensorRT; Jetson: the JetPack onnxruntime-gpu wheel, TensorRT comes with JetPack)",
    ),
}
# Providers registered right after another: nodes TensorRT rejects run on CUDA, not on the CPU with copies.
REGISTERED_WITH: dict[str, tuple[str, ...]] = {"tensorrt": ("cuda",)}
_BY_ORT_NAME = {p.ort_name: short for short, p in PROVIDERS.items()}


def available() -> list[str]:
    """Short names of the providers the installed onnxruntime offers."""
    have = set(ort.get_available_providers())
    return [short for short, p in PROVIDERS.items() if p.ort_name in have]


def ort_distribution() -> str:
    """Which onnxruntime wheel is installed (onnxruntime, onnxruntime-gpu, ...), for messages."""
    for dist in ("onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino", "onnxruntime"):
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    return f"onnxruntime {ort.__version__}"


def artefact_key(manifest_bytes: bytes) -> str:
    return hashlib.sha256(manifest_bytes).hexdigest()[:16]


def resolve(
    names: list[str] | None, settings: ProviderSettings | None = None
) -> tuple[list[str], list[dict[str, Any]]]:
    """Provider names and options for onnxruntime sessions; CPU is always last as the fallback. With
    `allow_fallback` a provider this onnxruntime lacks stays in the list without options: onnxruntime skips it and
    `check_session` turns its absence into the warning line."""
    settings = settings or ProviderSettings()
    wanted: list[str] = []
    for name in names or ["cpu"]:
        short = _BY_ORT_NAME.get(name, name)
        if short not in PROVIDERS:
            raise ProviderError(f"unknown execution provider {short!r}; use one of {', '.join(PROVIDERS)}")
        wanted += [short, *REGISTERED_WITH.get(short, ())]
    have = set(ort.get_available_providers())
    out: list[str] = []
    opts: list[dict[str, Any]] = []
    for short in wanted:
        p = PROVIDERS[short]
        if p.ort_name in out:
            continue
        if p.ort_name not in have:
            if not settings.allow_fallback:
                raise ProviderError(
                    f"execution provider {short!r} ({p.ort_name}) is not in this {ort_distribution()} (it has "
                    f"{', '.join(available()) or 'none edgekit uses'}); install {p.wheel}, or pass --allow-fallback"
                )
            out.append(p.ort_name)
            opts.append({})
            continue
        out.append(p.ort_name)
        opts.append(p.options(settings))
    if CPU in out:  # CPU last: it takes every node, so anything after it would get none
        i = out.index(CPU)
        out.append(out.pop(i))
        opts.append(opts.pop(i))
    else:
        out.append(CPU)
        opts.append({})
    return out, opts


def _dim(d: int | str | None, what: str, name: str) -> int:
    if isinstance(d, int) and not isinstance(d, bool) and d > 0:
        return d
    raise ProviderError(
        f"input {name!r} has a dynamic {what} dimension ({d!r}); the TensorRT provider's optimization profile "
        "needs every dimension but the batch fixed: re-export the artefact, or use --provider cuda"
    )


def options_for_graph(
    providers: list[str], options: list[dict[str, Any]], inputs: dict[str, list[int | str]], max_batch: int
) -> list[dict[str, Any]]:
    """Per-session provider options. For the TensorRT provider one optimization profile covering batch
    1..max_batch for every input whose first dimension is dynamic, so the batch sizes compaction and slot refill
    produce never make it build another engine; other providers' options are returned unchanged."""
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
        raise ProviderError(f"the largest batch must be an integer >= 1, got {max_batch!r}")
    out = [dict(o) for o in options]
    if TENSORRT not in providers:
        return out
    lo, hi = [], []
    for name, shape in inputs.items():
        if not shape or isinstance(shape[0], int) and not isinstance(shape[0], bool) and shape[0] > 0:
            continue  # a scalar or a fixed batch: nothing for a profile to cover
        if any(c in name for c in ":,"):
            raise ProviderError(f"input name {name!r} cannot be written in a TensorRT profile (it has ':' or ',')")
        tail = "".join(f"x{_dim(d, 'non-batch', name)}" for d in shape[1:])
        lo.append(f"{name}:1{tail}")
        hi.append(f"{name}:{max_batch}{tail}")
    if lo:
        trt = out[providers.index(TENSORRT)]
        trt["trt_profile_min_shapes"] = ",".join(lo)
        trt["trt_profile_opt_shapes"] = ",".join(hi)  # batches start full and shrink; slot refill keeps them full
        trt["trt_profile_max_shapes"] = ",".join(hi)
    return out


# -- what a session really got ----------------------------------------------------------------------------------


def _pb_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _pb(field: int, value: int | bytes | str) -> bytes:
    """One protobuf field: an integer as a varint, bytes or text length-delimited."""
    if isinstance(value, int):
        return _pb_varint(field << 3) + _pb_varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _pb_varint(field << 3 | 2) + _pb_varint(len(data)) + data


def probe_model() -> bytes:
    """A one-node ONNX model, y = Identity(x) with x float32 [batch, 4], written as protobuf bytes by hand: the
    runtime has no `onnx` package, and this is all a provider check needs (opset 13, IR version 7)."""
    shape = _pb(2, _pb(1, _pb(2, "batch")) + _pb(1, _pb(1, 4)))  # TensorShapeProto: dim {dim_param}, dim {dim_value}
    tensor = _pb(1, _pb(1, 1) + shape)  # TypeProto.tensor_type: elem_type FLOAT, shape

    def value(name: str) -> bytes:
        return _pb(1, name) + _pb(2, tensor)  # ValueInfoProto

    node = _pb(1, "x") + _pb(2, "y") + _pb(3, "probe") + _pb(4, "Identity")
    graph = _pb(1, node) + _pb(2, "edgekit-probe") + _pb(11, value("x")) + _pb(12, value("y"))
    return _pb(1, 7) + _pb(2, "edgekit") + _pb(7, graph) + _pb(8, _pb(1, "") + _pb(2, 13))


@contextlib.contextmanager
def _captured_output() -> Iterator[list[str]]:
    """onnxruntime says why a provider did not load in its C++ log (file descriptor 2) and, where its Python
    fallback runs, with print (descriptor 1); collect both while a probe session is created."""
    lines: list[str] = []
    for f in (sys.stdout, sys.stderr):
        f.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            for f in (sys.stdout, sys.stderr):
                f.flush()
            for fd, old in zip((1, 2), saved):
                os.dup2(old, fd)
                os.close(old)
            tmp.seek(0)
            lines += tmp.read(65536).decode(errors="replace").splitlines()


_EVIDENCE = ("failed to load library", "cannot open shared object", "failed to create", "error", "fail")


def _reason(log: list[str], error: BaseException | None) -> str:
    """The most telling line: onnxruntime's exception, else its log line naming the failure."""
    if error is not None:
        text = " ".join(str(error).split())
        return (text or type(error).__name__)[:300]
    for marker in _EVIDENCE:
        for line in log:
            if marker in line.lower():
                return " ".join(line.split("]", 2)[-1].split())[:300]  # drop the "[W:onnxruntime:...]" prefix
    return "onnxruntime dropped it without saying why"


@dataclass(frozen=True)
class Probe:
    """What onnxruntime did with one provider on the one-node graph."""

    provider: str
    ok: bool  # the session got the provider and the node ran on it with the right answer
    got: list[str]
    reason: str  # why not, in onnxruntime's words ("" when ok)


def probe(ort_name: str, options: dict[str, Any] | None = None, strict: bool = False) -> Probe:
    """Create a session on the one-node graph with `ort_name` (then CPU) and onnxruntime's Python fallback off,
    check that it got the provider and run it once. `strict`: `ort_name` alone with onnxruntime's CPU fallback
    off, so the node itself must run on that provider (not for providers without an Identity kernel, such as
    the Azure provider)."""
    if ort_name not in ort.get_available_providers():
        return Probe(ort_name, False, [], f"not in this {ort_distribution()}")
    opts = ort.SessionOptions()
    providers = [ort_name] if ort_name == CPU or strict else [ort_name, CPU]
    if strict and ort_name != CPU:
        opts.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    error: BaseException | None = None
    got: list[str] = []
    with _captured_output() as log:
        try:
            per = [options or {}] + [{}] * (len(providers) - 1)
            sess = ort.InferenceSession(
                probe_model(), opts, providers=providers, provider_options=per, enable_fallback=0
            )
            got = list(sess.get_providers())
            x = np.arange(8, dtype=np.float32).reshape(2, 4)
            if ort_name in got and not np.array_equal(sess.run(None, {"x": x})[0], x):
                error = RuntimeError("the one-node graph gave a wrong answer")
        except Exception as e:  # onnxruntime raises its own Fail/EPFail/RuntimeException types
            error = e
    ok = error is None and ort_name in got
    return Probe(ort_name, ok, got, "" if ok else _reason(log, error))


def _expected(requested: list[str]) -> list[str]:
    """onnxruntime names a session must have: each requested provider (short or onnxruntime name) and those
    registered with it (tensorrt brings cuda)."""
    out: list[str] = []
    for name in requested:
        short = _BY_ORT_NAME.get(name, name)
        p = PROVIDERS.get(short)
        names = [p.ort_name, *(PROVIDERS[w].ort_name for w in REGISTERED_WITH.get(short, ()))] if p else [name]
        out += [n for n in names if n not in out]
    return out


_WHY: dict[tuple[str, ProviderSettings], str] = {}  # one probe per provider and settings, not one per graph


def _why(name: str, p: Provider | None, settings: ProviderSettings) -> str:
    """onnxruntime's reason for not starting `name`, from a probe session with the same options."""
    if (name, settings) not in _WHY:
        try:
            options = p.options(settings) if p and name in ort.get_available_providers() else {}
            why = probe(name, options).reason or "it starts on a one-node graph, so the model's session dropped it"
        except ProviderError as e:  # e.g. the cache folder refused: that is the reason
            why = str(e)
        _WHY[(name, settings)] = why
    return _WHY[(name, settings)]


def check_session(session: Any, requested: list[str], settings: ProviderSettings) -> list[str]:
    """Compare the providers `session` got with those requested. A missing one is a one-line ProviderError with
    onnxruntime's reason and the fix; with `settings.allow_fallback`, a warning line instead. Returns the
    warnings (empty when every requested provider is there)."""
    got = list(session.get_providers())
    warnings: list[str] = []
    for name in _expected(requested):
        if name == CPU or name in got:
            continue
        short = _BY_ORT_NAME.get(name, name)
        p = PROVIDERS.get(short)
        why = _why(name, p, settings)
        runs_on = ", ".join(_BY_ORT_NAME.get(g, g) for g in got) or "nothing"
        if settings.allow_fallback:
            warnings.append(f"warning: execution provider {short!r} did not start ({why}); running on {runs_on}")
            continue
        install = p.wheel if p else name
        raise ProviderError(
            f"execution provider {short!r} ({name}) did not start: {why}; the session would run on {runs_on}. "
            f"Fix: install {install} (`edgekit doctor` checks it), or pass --allow-fallback to run anyway"
        )
    return warnings
