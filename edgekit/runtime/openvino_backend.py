"""The OpenVINO backend of the host loop (runtime/base.py): the artefact's ONNX graphs read by OpenVINO's ONNX
frontend and compiled for an Intel device (CPU, GPU, NPU), run through the same loop as onnxruntime and TensorRT —
halting, compaction, chunking, slot refill, puzzle identifiers, the Loop and unrolled forms.

Why OpenVINO: on x86 CPUs with bf16 units (AVX512-BF16, AMX) its CPU plugin runs the step graph in bfloat16, which
onnxruntime's CPU provider cannot; on Intel integrated GPUs and NPUs it is the runtime Intel ships.

- `precision` is OpenVINO's `INFERENCE_PRECISION_HINT`, always set (OpenVINO's CPU default is bf16 on AMX CPUs,
  which would change the answers validation recorded in float32). A precision the device does not list in its
  `OPTIMIZATION_CAPABILITIES`, or one the compiled model did not get (OpenVINO turns f16 into bf16 on CPUs without
  f16 units), is an error, never a silent change.
- A requested device OpenVINO does not have is one line with the list it has.
- Compiled models are cached outside the artefact (artefacts stay read-only and hash-verifiable), in
  <cache root>/openvino/<artefact key>/ (the root of runtime/providers.py: --cache-dir, $EDGEKIT_CACHE or
  ~/.cache/edgekit), created 0700 and refused when another user could write into it. OpenVINO keys an entry by
  the model and the settings but loads whatever blob sits under that key, so entries are untrusted: an index of
  the blobs this backend saw OpenVINO write (name -> sha256) is checked before each compile (an unknown, edited
  or damaged blob is deleted), and every compiled model's inputs and outputs are compared with the graph's (an
  entry swapped in from another graph is discarded, the cache folder cleared, and the graph compiled again).
- The Loop form's step cap and threshold are ONNX inputs with defaults; OpenVINO's frontend turns them into
  constants, so they are made inputs again (a Parameter in place of the constant, threaded into the Loop body as
  an invariant input): `mode="loop"` then takes any cap and threshold, as with onnxruntime.
- Devices that compile static shapes only (the NPU) get each graph compiled per batch bucket (powers of two up to
  `max_batch`), the batch padded with copies of its last row and the outputs cut back.

openvino is an optional extra (`pip install "edgekit[openvino]"`), imported lazily: without it, asking for this
backend is one line naming the extra. Intel GPU and NPU code paths follow OpenVINO's documented API and are not run
on this project's CI (CPU only).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..artefact import make_private_levels, private_folder_problem
from ..errors import InputError, first_line
from .base import DEFAULT_CHUNK, HostRunner
from .errors import ArtefactError, RuntimeInputError
from .manifest import Manifest, load_manifest
from .providers import ProviderSettings, artefact_key, cache_root

INSTALL = 'pip install "edgekit[openvino]"'
DEVICE_NAME = re.compile(r"^(CPU|GPU|NPU)(\.[0-9]{1,3})?$")
INDEX = "edgekit-index.json"  # the blobs this backend saw OpenVINO write: name -> sha256
MAX_INDEX_BYTES = 1 << 20
Severity = Literal["error", "warning", "note"]  # as `edgekit check` reports them
LIMIT_INPUTS = ("max_steps", "halt_threshold", "tol")  # the Loop form's inputs with defaults


@dataclass(frozen=True)
class Precision:
    """An inference precision: OpenVINO's hint value, the capability a device lists for it, the activations'
    dynamic quantization group (OpenVINO's `DYNAMIC_QUANTIZATION_GROUP_SIZE`; 0: activations stay in the hint's
    float type) and, where the precision needs graphs of its own, the quantization form of the variant it runs (the
    manifest records each quantized variant's form)."""

    hint: str
    capability: str
    activation_group: int = 0
    graphs_form: str | None = None


# int8: the variant of form weight_only (the int8_weight_only mode: NNCF INT8_SYM weights, one scale per output
# channel, behind DequantizeLinear), which OpenVINO's CPU plugin runs as INT8-weight FullyConnected layers, with
# each token's activations quantized to INT8 at run time in groups of 32 channels (the CPU plugin's own default
# group). The float precisions set the group to 0: OpenVINO's CPU default (32) would otherwise quantize the
# activations of any weight-compressed variant run as "f32" without saying so.
PRECISIONS: dict[str, Precision] = {
    "f32": Precision("f32", "FP32"),
    "bf16": Precision("bf16", "BF16"),
    "f16": Precision("f16", "FP16"),
    "int8": Precision("f32", "INT8", activation_group=32, graphs_form="weight_only"),
}


def precision_variant(manifest: Manifest, precision: str) -> str | None:
    """The artefact variant an OpenVINO precision runs whatever variant is asked for (int8: the one with INT8
    weights), None where the precision runs any; one line where the artefact has none."""
    p = PRECISIONS.get(precision)
    if p is None or p.graphs_form is None:
        return None
    have = [v for v in manifest.variants if manifest.quantization_of(v).get("form") == p.graphs_form]
    if not have:
        raise ArtefactError(
            f"OpenVINO {precision} runs an artefact variant with INT8 weights (quantize mode int8_weight_only), "
            "which this artefact does not have: export it with int8_weight_only in quantize.modes, or use "
            "--ov-precision f32/bf16"
        )
    return have[0]


@dataclass(frozen=True)
class DeviceKind:
    """What edgekit needs to know about an OpenVINO device family."""

    static_shapes: bool  # compiles static shapes only: one compiled model per batch bucket
    threads: bool  # takes INFERENCE_NUM_THREADS
    dynamic_quantization: bool  # takes DYNAMIC_QUANTIZATION_GROUP_SIZE (the CPU and GPU plugins)


DEVICES: dict[str, DeviceKind] = {
    "CPU": DeviceKind(static_shapes=False, threads=True, dynamic_quantization=True),
    "GPU": DeviceKind(static_shapes=False, threads=False, dynamic_quantization=True),
    "NPU": DeviceKind(static_shapes=True, threads=False, dynamic_quantization=False),
}
STATIC_MAX_BATCH = 64  # the largest bucket compiled for static-shape devices


def import_openvino() -> Any:
    """The openvino module, or one line naming the extra to install (exit 2)."""
    try:
        import openvino
    except ImportError as e:
        raise InputError(
            f"the openvino backend needs the openvino package, which does not import here ({first_line(e, 100)})",
            INSTALL,
        ) from None
    return openvino


def openvino_version(ov: Any) -> str:
    """'2026.4.1' from OpenVINO's long build string."""
    return str(ov.get_version()).split("-")[0]


def check_device(core: Any, device: str) -> str:
    """`device` as OpenVINO names it, or one line with the devices this OpenVINO has."""
    if not isinstance(device, str) or not DEVICE_NAME.match(device.upper()):
        raise RuntimeInputError(f"unknown OpenVINO device {str(device)[:40]!r}; use CPU, GPU, GPU.<n> or NPU")
    device = device.upper()
    have = list(core.available_devices)
    # "GPU" is the first GPU: OpenVINO lists GPU alone, or GPU.0, GPU.1 ... when there are several
    if device not in have and not (device in DEVICES and any(d.startswith(device + ".") for d in have)):
        raise RuntimeInputError(
            f"OpenVINO device {device!r} is not on this machine; this OpenVINO has: {', '.join(have) or 'none'} "
            "(GPU needs Intel's GPU driver, NPU the NPU driver; see docs/openvino.md)"
        )
    return device


def prepare_cache(root: Path, key: str) -> Path | None:
    """<root>/openvino/<key>, every missing level created 0700; refused when another user could write into it (a
    compiled blob is code the device runs). None where it cannot be created (a read-only home): the graphs are
    then compiled on every start, nothing is stored."""
    folder = root / "openvino" / key
    try:
        make_private_levels(folder)
    except OSError:
        return None
    for p in (root, root / "openvino", folder):
        why = private_folder_problem(p)
        if why:
            raise RuntimeInputError(
                f"the OpenVINO cache folder {p} {why}, so another user could plant a compiled model there; use a "
                f"folder only you can write (chmod 700 {p}), or pass --cache-dir"
            )
    return folder


class BlobIndex:
    """The cache folder's blobs, checked against the digests recorded when OpenVINO wrote them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _read(self) -> dict[str, str]:
        path = self.folder / INDEX
        try:
            with open(path, "rb") as f:
                data = json.loads(f.read(MAX_INDEX_BYTES + 1).decode())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}

    @staticmethod
    def _digest(path: Path) -> str | None:
        h = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        except OSError:
            return None
        return h.hexdigest()

    def prune(self) -> int:
        """Delete every blob that is not exactly one this backend saw written; returns how many."""
        known, dropped = self._read(), 0
        for p in self.folder.glob("*.blob"):
            if p.is_symlink() or not p.is_file() or known.get(p.name) != self._digest(p):
                with contextlib.suppress(OSError):
                    p.unlink()
                    dropped += 1
        return dropped

    def record(self) -> None:
        """Record the digests of the blobs now in the folder (after OpenVINO wrote new ones); best effort."""
        index = {p.name: d for p in self.folder.glob("*.blob") if p.is_file() and (d := self._digest(p))}
        try:
            fd, name = tempfile.mkstemp(prefix=".index.", suffix=".tmp", dir=self.folder)
            with os.fdopen(fd, "w") as f:
                json.dump(index, f)
            os.replace(name, self.folder / INDEX)
        except OSError:
            with contextlib.suppress(OSError, UnboundLocalError):
                os.unlink(name)

    def clear(self) -> None:
        for p in [*self.folder.glob("*.blob"), self.folder / INDEX]:
            with contextlib.suppress(OSError):
                p.unlink()


def overridable_limits(ov: Any, model: Any) -> list[str]:
    """Make the Loop form's step cap and threshold inputs again (OpenVINO's ONNX frontend turns an ONNX input with
    a default into a constant). A constant named like a limit at the top level is replaced by a Parameter; one
    inside a Loop body gets a body Parameter fed by that outer Parameter as an invariant input. Returns the names
    made inputs (a limit not found stays built in, and the host loop refuses other values for it)."""
    from openvino import opset13 as ops

    def constants(m: Any, name: str) -> list[Any]:
        return [
            op for op in m.get_ordered_ops() if op.get_type_name() == "Constant" and name in op.output(0).get_names()
        ]

    loops = [op for op in model.get_ordered_ops() if op.get_type_name() == "Loop"]
    made = []
    for name in LIMIT_INPUTS:
        top = constants(model, name)
        inner = [(loop, c) for loop in loops for c in constants(loop.get_function(), name)]
        if not top and not inner:
            continue
        const = (top or [c for _, c in inner])[0]
        param = ops.parameter(const.get_output_partial_shape(0), const.get_output_element_type(0), name=name)
        param.output(0).set_names({name})
        for c in top:
            c.output(0).replace(param.output(0))
        for loop, c in inner:
            body_param = ops.parameter(c.get_output_partial_shape(0), c.get_output_element_type(0), name=f"b/{name}")
            c.output(0).replace(body_param.output(0))
            loop.get_function().add_parameters([body_param])
            loop.set_invariant_input(body_param, param.output(0))
            loop.validate_and_infer_types()
        model.add_parameters([param])
        made.append(name)
    if made:
        model.validate_nodes_and_infer_types()
    return made


def _signature(ports: Any) -> list[tuple[str, str, str]]:
    return [(p.get_any_name(), p.get_element_type().get_type_name(), str(p.get_partial_shape())) for p in ports]


class OpenVINORunner(HostRunner):
    """`OpenVINORunner(artefact, device="CPU", precision="f32")`: the host loop's contract on OpenVINO compiled
    models; see the module docstring."""

    backend = "openvino"

    def __init__(
        self,
        artefact: str | Path,
        variant: str | None = None,
        device: str = "CPU",
        precision: str = "f32",
        threads: int | None = None,
        cache_dir: str | Path | None = None,
        chunk_size: int = DEFAULT_CHUNK,
        complete: bool = True,
        cache: bool = True,
        static_shapes: bool | None = None,
    ) -> None:
        if precision not in PRECISIONS:
            raise RuntimeInputError(f"unknown OpenVINO precision {precision!r}; use one of {', '.join(PRECISIONS)}")
        own = None
        if PRECISIONS[precision].graphs_form is not None:
            own = precision_variant(load_manifest(Path(artefact), complete=complete), precision)
            if variant not in (None, own):
                raise RuntimeInputError(
                    f"OpenVINO {precision} runs the artefact's {own} graphs, not variant {variant!r}: drop --variant"
                )
        super().__init__(artefact, variant or own, chunk_size, complete)
        ov = import_openvino()
        self.ov = ov
        self.version = openvino_version(ov)
        self.core = ov.Core()
        self.device = check_device(self.core, device)
        self.kind = DEVICES[self.device.split(".")[0]]
        self.precision = precision
        caps = self._device_property("OPTIMIZATION_CAPABILITIES") or []
        if PRECISIONS[precision].capability not in caps:
            raise RuntimeInputError(
                f"OpenVINO device {self.device} has no {precision} inference (it lists {', '.join(caps) or 'none'}); "
                f"use --ov-precision {'/'.join(p for p, v in PRECISIONS.items() if v.capability in caps) or 'f32'}"
            )
        self.config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": PRECISIONS[precision].hint}
        group = PRECISIONS[precision].activation_group
        if self.kind.dynamic_quantization:
            self.config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = group
        elif group:
            raise RuntimeInputError(
                f"OpenVINO device {self.device} has no dynamic activation quantization, which {precision} needs; "
                "use --ov-precision f32/f16, or the CPU or GPU"
            )
        # one synchronous call at a time: the host loop's calls depend on each other
        self.config["PERFORMANCE_HINT"] = "LATENCY"
        if threads is not None:
            if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 1024:
                raise RuntimeInputError(f"threads must be an integer in [1, 1024], got {threads!r}")
            if not self.kind.threads:
                raise RuntimeInputError(f"--threads sets CPU threads; OpenVINO device {self.device} takes none")
            self.config["INFERENCE_NUM_THREADS"] = threads
        self.static_shapes = self.kind.static_shapes if static_shapes is None else static_shapes
        self.cache_folder: Path | None = None
        self.warnings: list[str] = []
        self.on_warning: Callable[[str], None] | None = None  # told each warning that arises later (the CLI prints)
        if cache:
            root = cache_root(ProviderSettings(cache_dir=Path(cache_dir) if cache_dir else None))
            key = artefact_key((self.folder / "manifest.json").read_bytes())
            self.cache_folder = prepare_cache(root, key)
            if self.cache_folder is None:
                self.warnings.append(
                    f"cannot create the OpenVINO cache folder under {root}: graphs are compiled on every start "
                    "(pass --cache-dir with a writable folder, or set EDGEKIT_CACHE)"
                )
            else:
                self._index = BlobIndex(self.cache_folder)
                self._index.prune()
                self.config["CACHE_DIR"] = str(self.cache_folder)
        self._models: dict[str, Any] = {}  # graph -> ov.Model as read (limits made inputs)
        self._compiled: dict[tuple[str, int | None], Any] = {}  # (graph, batch bucket or None) -> compiled model
        self._requests: dict[tuple[str, int | None], list[Any]] = {}  # free infer requests
        self._dtypes: dict[str, dict[str, Any]] = {}  # graph -> input name -> numpy dtype

    def _warn(self, text: str) -> None:
        self.warnings.append(text)
        if self.on_warning is not None:
            self.on_warning(text)

    def _device_property(self, name: str) -> Any:
        try:
            return self.core.get_property(self.device, name)
        except RuntimeError:
            return None

    @property
    def device_name(self) -> str:
        """The device as OpenVINO names it in full (the CPU's model name): answers in bf16 may differ between CPUs."""
        return str(self._device_property("FULL_DEVICE_NAME") or self.device)

    # -- graphs ---------------------------------------------------------------------------------------------------
    def model(self, graph: str) -> Any:
        """The graph as OpenVINO reads it (the Loop form with its limits made inputs)."""
        if graph not in self._models:
            path = self.graph_path(graph)  # present, inside the artefact, of a real graph's size
            try:
                m = self._read(path)
                if graph == "loop":
                    overridable_limits(self.ov, m)
            except Exception as e:  # OpenVINO raises RuntimeError/OpConversionFailure subclasses per frontend
                raise ArtefactError(
                    f"OpenVINO {self.version} cannot read {path.name} ({_reason(e)}): run this artefact with "
                    "onnxruntime (drop --backend openvino), or re-export it"
                ) from None
            self._models[graph] = m
        return self._models[graph]

    def _read(self, path: Path) -> Any:
        """The graph through OpenVINO's ONNX frontend only (`read_model` would try every frontend it has on a file
        that is not ONNX, TensorFlow's among them)."""
        from openvino.frontend import FrontEndManager

        frontend = FrontEndManager().load_by_framework("onnx")
        return frontend.convert(frontend.load(str(path)))

    def _bucket(self, n: int) -> int | None:
        """The batch size a static-shape device's compiled model takes for `n` samples (None: dynamic shapes)."""
        return 1 << max(n - 1, 0).bit_length() if self.static_shapes else None

    def compiled(self, graph: str, bucket: int | None = None) -> Any:
        """The graph compiled for the device (per batch bucket on static-shape devices), through the cache."""
        key = (graph, bucket)
        if key not in self._compiled:
            model = self.model(graph)
            if bucket is not None:
                model = model.clone()
                model.reshape({p.get_any_name(): self._static(p, bucket) for p in model.inputs})
            compiled = self._compile(model, graph)
            if _signature(compiled.inputs) != _signature(model.inputs) or _signature(compiled.outputs) != _signature(
                model.outputs
            ):
                # a cache entry of another graph under this graph's key: discard the folder's entries, compile anew
                self._warn(f"the OpenVINO cache entry for the {graph} graph belonged to another graph; rebuilt")
                if self.cache_folder is not None:
                    self._index.clear()
                compiled = self._compile(model, graph, cached=False)
            self._compiled[key] = compiled
            if self.cache_folder is not None:
                self._index.record()
        return self._compiled[key]

    def _static(self, port: Any, bucket: int) -> Any:
        shape = port.get_partial_shape()
        if shape.rank.is_dynamic or len(shape) == 0:
            return shape
        dims = [bucket] + [d.get_length() if d.is_static else -1 for d in list(shape)[1:]]
        if -1 in dims:
            raise ArtefactError(
                f"input {port.get_any_name()} has dynamic dimensions besides the batch, which OpenVINO device "
                f"{self.device} cannot compile: re-export with static shapes"
            )
        return self.ov.PartialShape(dims)

    def _compile(self, model: Any, graph: str, cached: bool = True) -> Any:
        config = self.config if cached else {k: v for k, v in self.config.items() if k != "CACHE_DIR"}
        try:
            compiled = self.core.compile_model(model, self.device, config)
        except Exception as e:  # the plugins raise RuntimeError subclasses with multi-line traces
            raise ArtefactError(
                f"OpenVINO {self.version} cannot compile the {graph} graph for {self.device} ({_reason(e)}): run "
                "this artefact with onnxruntime (drop --backend openvino)"
            ) from None
        got = compiled.get_property("INFERENCE_PRECISION_HINT")
        if hasattr(got, "get_type_name") and got.get_type_name() != PRECISIONS[self.precision].hint:
            raise RuntimeInputError(
                f"OpenVINO compiled the {graph} graph for {self.device} in {got.get_type_name()}, not the "
                f"{self.precision} asked for; use --ov-precision {got.get_type_name()} or another device"
            )
        want = self.config.get("DYNAMIC_QUANTIZATION_GROUP_SIZE")
        group: int | None
        try:
            group = int(compiled.get_property("DYNAMIC_QUANTIZATION_GROUP_SIZE"))
        except (RuntimeError, TypeError, ValueError):  # a plugin that takes the setting but does not report it
            group = want
        if want is not None and group != want:
            raise RuntimeInputError(
                f"OpenVINO compiled the {graph} graph for {self.device} with activation groups of {group}, not the "
                f"{want} {self.precision} needs; use another --ov-precision or device"
            )
        return compiled

    def override(self, graph: str, model: Any) -> None:
        """Use an OpenVINO model in place of the artefact's graph (e.g. a weight-compressed step graph being
        measured); what was compiled for that graph is dropped."""
        self._models[graph] = model
        self._dtypes.pop(graph, None)
        for key in [k for k in self._compiled if k[0] == graph]:
            del self._compiled[key]
            self._requests.pop(key, None)

    # -- the backend contract -------------------------------------------------------------------------------------
    def inputs_of(self, graph: str) -> set[str]:
        return {p.get_any_name() for p in self.model(graph).inputs}

    def outputs_of(self, graph: str) -> list[str]:
        return [p.get_any_name() for p in self.model(graph).outputs]

    @property
    def max_batch(self) -> int | None:
        return min(self.chunk_size, STATIC_MAX_BATCH) if self.static_shapes else None

    def _call(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        types = self._dtypes.get(graph)
        if types is None:
            types = self._dtypes[graph] = {
                p.get_any_name(): p.get_element_type().to_dtype() for p in self.model(graph).inputs
            }
        given = {k: np.asarray(v, dtype=types[k], order="C") for k, v in feeds.items() if k in types}
        missing = [k for k in types if k not in given]
        if missing:
            raise RuntimeInputError(f"the {graph} graph needs {', '.join(missing)}, which the host loop did not feed")
        n = next((len(v) for v in given.values() if v.ndim), 0)
        bucket = self._bucket(n) if n else None
        if bucket is not None and bucket != n:
            given = {k: _pad(v, bucket) if v.ndim else v for k, v in given.items()}
        key = (graph, bucket)
        compiled = self.compiled(graph, bucket)
        free = self._requests.setdefault(key, [])
        request = free.pop() if free else compiled.create_infer_request()
        try:
            result = request.infer(given)
            out = [np.array(result[p]) for p in compiled.outputs]  # copies: the request's buffers are reused
        except Exception as e:
            raise RuntimeInputError(f"OpenVINO failed to run the {graph} graph ({_reason(e)})") from None
        finally:
            free.append(request)
        if bucket is not None and bucket != n:
            out = [o[:n] if o.ndim and len(o) == bucket else o for o in out]
        return out


def _pad(a: np.ndarray, rows: int) -> np.ndarray:
    """`a` with copies of its last row appended up to `rows` (answers for them are cut off again)."""
    return np.concatenate([a, np.repeat(a[-1:], rows - len(a), axis=0)])


_LOCATION = re.compile(r"^(Exception from \S+|Check '.*' failed at \S+|Summary:)$")


def _reason(e: BaseException) -> str:
    """An OpenVINO exception on one line: its messages are several lines, most of them source locations."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not _LOCATION.match(ln.strip())]
    return " ".join(lines)[:240] if lines else first_line(e)


def graph_findings(path: Path, device: str = "CPU") -> list[tuple[Severity, str]]:
    """(severity, message) pairs `edgekit check` reports for one graph and an OpenVINO target: the graph read by
    OpenVINO's ONNX frontend and, for a CPU target where OpenVINO has a CPU, compiled for it in float32. Without
    openvino it is a warning (nothing checked), for a GPU or NPU target not present a note (read, not compiled)."""
    try:
        ov = import_openvino()
    except InputError:
        return [("warning", f"not checked with OpenVINO, which is not installed here ({INSTALL})")]
    from openvino.frontend import FrontEndManager

    version = openvino_version(ov)
    try:
        frontend = FrontEndManager().load_by_framework("onnx")
        model = frontend.convert(frontend.load(str(path)))
    except Exception as e:  # OpenVINO's frontend raises its own failure types
        return [("error", f"OpenVINO {version} cannot read it: {_reason(e)}")]
    core = ov.Core()
    if device not in {d.split(".")[0] for d in core.available_devices}:
        return [("note", f"read by OpenVINO {version}; not compiled: this machine has no OpenVINO {device} device")]
    try:
        core.compile_model(model, device, {"INFERENCE_PRECISION_HINT": "f32"} if device == "CPU" else {})
    except Exception as e:
        return [("error", f"OpenVINO {version} cannot compile it for {device}: {_reason(e)}")]
    return []


def available_devices() -> list[str]:
    """OpenVINO's devices on this machine (doctor), or an empty list without openvino."""
    try:
        import openvino
    except ImportError:
        return []
    return list(openvino.Core().available_devices)
