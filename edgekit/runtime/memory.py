"""Work an artefact may cause on a device, bounded before it is spent: numpy-free, standard library only.

- `bytes_per_sample(manifest)` / `chunk_for_memory(manifest, budget)`: how many samples one host-loop call may
  hold so that its activations stay within a memory budget. `DEFAULT_MEMORY_BUDGET` (1 GiB) leaves an 8 GB Jetson
  (~6.5 GB free after JetPack and the CUDA context) room for the weights, held twice on unified memory while an
  engine loads, and for the application: the ARC demo (HRM, 900 cells, ~34 MB a sample measured) runs 27 samples a
  chunk (~0.9 GB), where 1,024 would take ~35 GB.
- `check_graph_file(path, limits)`: an ONNX file is refused before onnxruntime parses it when it holds more
  nodes, initializers or nested graphs than `GraphLimits` allows. Session creation grows faster than linearly
  with the initializer count (tiny initializers on a loaded 2-core x86 CPU: 16,000 1.0 s, 32,000 3.6 s, 64,000
  20 s; 300,000 in a 6 MB file took 386 s), so a small file could stall a device for minutes. The check is a scan of
  protobuf field tags through a memory map: payloads (weights) are skipped, never read, and the scan stops at
  the first count over its limit, so it costs milliseconds for real graphs and for bombs alike.
- `check_golden_work(inputs, step_cap, runs)`: `verify` replays golden inputs; their count and steps are capped
  so a small `golden.npz` cannot ask for hours of work.

The estimates come from the manifest (the model's configuration and input contract); they bound what an honest
artefact costs. A hostile graph can allocate at batch 1 whatever its ops ask for: that is what `check_graph_file`
and the file hashes are for, not the chunk size.
"""

from __future__ import annotations

import math
import mmap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..manifest import Dimensions, Manifest
from .errors import ArtefactError

DEFAULT_MEMORY_BUDGET = 1 << 30  # bytes of activations one host-loop chunk may hold
MAX_CHUNK = 1024  # samples per chunk whatever the budget: per-call latency and the answers' own memory
MAX_CALL_BYTES = 4 * DEFAULT_MEMORY_BUDGET  # one unchunked graph call (timing a batch size, a benchmark batch)

MAX_GOLDEN_INPUTS = 64  # export writes 8
MAX_GOLDEN_SAMPLE_STEPS = 200_000  # golden inputs x step cap, per variant and mode (8 x 16 for the demos)

_F32 = 4  # activations are counted in float32 whatever the variant (float16 graphs still score in float32)


def _int(value: Any, lo: int, hi: int) -> int | None:
    """An integer config value within [lo, hi], else None (the manifest is untrusted)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    v = int(value)
    return v if v == value and lo <= v <= hi else None


def _input_length(sample_shape: tuple[Any, ...] | None) -> int:
    """Elements per sample of the input contract (1 when the manifest does not say)."""
    if sample_shape is None:
        return 1
    n = 1
    for d in sample_shape:
        v = _int(d, 1, 1 << 24)
        n *= v or 1
    return min(n, 1 << 30)


def _swiglu_width(hidden: int, expansion: float) -> int:
    """The reference SwiGLU's inner width (edgekit.models.layers.swiglu_width, without torch)."""
    return -(round(expansion * hidden * 2 / 3) // -256) * 256


def _act_bytes(config: Mapping[str, Any], states: int) -> int | None:
    """HRM / TRM: per sample, while the host loop runs one step (float32 counts):
    - attention: 5 x heads x S x S: the scores, scaled scores and softmax the exported graph holds together, plus
      the allocator's slack; none where TRM mixes tokens with an MLP (`mlp_t`);
    - each SwiGLU: 4 x its inner width per position (gate and up, SiLU, product); `mlp_t` adds one across positions;
    - (2 x states + 6) x S x hidden: the two state buffer sets of the loop's ping-pong, the encoded input, the
      initial state, q / k / v and residuals;
    - the readout's logits (twice: logits and argmax work) and the int64 inputs.
    S = sequence + puzzle-embedding prefix. Measured with onnxruntime on a 2-core x86 CPU (peak RSS slope per
    sample, `Runner.solve`): the ARC demo HRM (S 901, hidden 64, 2 heads) 34 MB, estimated 38.6 MB; the demo
    TRM (`mlp_t`, S 97, hidden 128) 2.1 MB, estimated 2.3 MB."""
    h, seq = _int(config.get("hidden_size"), 1, 1 << 20), _int(config.get("seq_len"), 1, 1 << 24)
    if h is None or seq is None:
        return None
    heads = _int(config.get("num_heads", 1), 1, 1 << 16) or 1
    vocab = _int(config.get("vocab_size", 2), 1, 1 << 24) or 2
    emb = _int(config.get("puzzle_emb_ndim", 0), 0, 1 << 20) or 0
    emb_len = _int(config.get("puzzle_emb_len", 16), 0, 1 << 16) or 0
    expansion = config.get("expansion", 4)
    expansion = float(expansion) if isinstance(expansion, (int, float)) and 0 < expansion <= 1024 else 4.0
    ceil_prefix = -(-emb // h)
    prefix = (emb_len or ceil_prefix) if config.get("family") == "trm" else ceil_prefix
    s = seq + (prefix if emb else 0)
    mlp_t = config.get("mlp_t") is True
    attention = 0 if mlp_t else 5 * heads * s * s
    mlp = 4 * s * _swiglu_width(h, expansion) + (4 * h * _swiglu_width(s, expansion) if mlp_t else 0)
    held = (2 * states + 6) * s * h
    return _F32 * (attention + mlp + held + 2 * seq * vocab) + 16 * seq


def _deq_bytes(config: Mapping[str, Any], solver: Mapping[str, Any], inputs: int) -> int | None:
    """DEQ: the input, the state and its candidates, Anderson's history (2 m states) and the class logits."""
    h = _int(config.get("hidden_size"), 1, 1 << 24)
    if h is None:
        return None
    m = (_int(solver.get("anderson_m", 5), 1, 1 << 10) or 5) if solver.get("name") == "anderson" else 0
    classes = _int(config.get("num_classes", 10), 1, 1 << 24) or 10
    return _F32 * (2 * inputs + (2 * m + 6) * h + 2 * classes)


def bytes_per_sample(manifest: Manifest | Mapping[str, Any]) -> int:
    """Estimated peak bytes one sample adds to a host-loop call (encode, a step, the readout), from the manifest's
    model configuration; for a configuration this does not know, a generous guess from the input length alone
    (attention over the input with one head and a 256-wide state). A plain mapping (a manifest not yet checked,
    or part of one) is read defensively (`Dimensions.read`)."""
    dims = Dimensions.of(manifest) if isinstance(manifest, Manifest) else Dimensions.read(manifest)
    config = dims.config
    states = dims.states if dims.states is not None and 0 < dims.states <= 64 else 2
    length = _input_length(dims.sample_shape)
    est: int | None = None
    if config is not None:  # a token-sequence body (HRM, TRM) says its seq_len; a vector-state one (DEQ) not
        est = _act_bytes(config, states) if "seq_len" in config else _deq_bytes(config, dims.solver or {}, length)
    if est is None:
        est = _F32 * (2 * length * length + 1024 * length)
    return max(1, est)


def chunk_for_memory(manifest: Manifest | Mapping[str, Any], budget_bytes: int = DEFAULT_MEMORY_BUDGET) -> int:
    """Samples per host-loop call (`Runner.solve`'s chunk, a server's slots) whose activations fit `budget_bytes`:
    at least 1 (one sample over the budget still runs), at most `MAX_CHUNK`."""
    if isinstance(budget_bytes, bool) or not isinstance(budget_bytes, int) or budget_bytes < 1:
        raise ValueError(f"budget_bytes must be a positive integer, got {budget_bytes!r}")
    return max(1, min(MAX_CHUNK, budget_bytes // bytes_per_sample(manifest)))


def check_golden_work(inputs: int, step_cap: int, runs: int = 1) -> None:
    """`verify`'s replay, bounded: at most `MAX_GOLDEN_INPUTS` golden inputs and `MAX_GOLDEN_SAMPLE_STEPS` sample
    steps (inputs x step cap) per variant and mode. Raises ArtefactError (one line) otherwise."""
    if inputs > MAX_GOLDEN_INPUTS:
        raise ArtefactError(
            f"golden.npz holds {inputs} inputs, more than the {MAX_GOLDEN_INPUTS} `edgekit verify` replays "
            "(export writes 8): re-run `edgekit export`"
        )
    if inputs * step_cap > MAX_GOLDEN_SAMPLE_STEPS:
        raise ArtefactError(
            f"golden.npz asks for {inputs} inputs x {step_cap} steps x {runs} run(s); `edgekit verify` replays at "
            f"most {MAX_GOLDEN_SAMPLE_STEPS:,} sample steps a run: the step budget is out of range, re-run "
            "`edgekit export`"
        )


# -- ONNX files: counts before a session is created ------------------------------------------------------------


@dataclass(frozen=True)
class GraphLimits:
    """What one ONNX file may hold before onnxruntime is asked to load it. Far above what edgekit exports (the
    demo TRM's Loop form: 507 nodes, 45 initializers; an official-size unrolled HRM: ~20,000 nodes), far below
    what stalls a session (see the module docstring)."""

    max_file_bytes: int = (2 << 30) + (1 << 20)  # protobuf's 2 GiB message limit; larger weights are external data
    max_nodes: int = 200_000  # nodes, in every subgraph and function (~linear load time: 64,000 took 10 s)
    max_initializers: int = 32_768  # initializers, sparse ones and tensor attributes (Constant values)
    max_values: int = 400_000  # graph inputs, outputs and value_info entries
    max_depth: int = 32  # subgraphs inside subgraphs (Loop / If / Scan bodies)


DEFAULT_GRAPH_LIMITS = GraphLimits()

# field numbers in onnx.proto (ModelProto, GraphProto, NodeProto, AttributeProto, FunctionProto, TrainingInfoProto)
_MODEL_GRAPH, _MODEL_TRAINING, _MODEL_FUNCTIONS = 7, 20, 25
_GRAPH_NODE, _GRAPH_INIT, _GRAPH_SPARSE, _GRAPH_VALUES = 1, 5, 15, (11, 12, 13)
_NODE_ATTRIBUTE = 5
_ATTR_TENSOR, _ATTR_GRAPH, _ATTR_TENSORS, _ATTR_GRAPHS, _ATTR_SPARSE = 5, 6, 10, 11, (22, 23)
_FUNCTION_NODE, _FUNCTION_VALUES = 7, 12
_TRAINING_GRAPHS = (1, 2)


class _Malformed(Exception):
    pass


class _TooMany(Exception):
    pass


class _Scan:
    """Counts over one serialized ModelProto (a memoryview), message by message."""

    def __init__(self, data: memoryview, limits: GraphLimits) -> None:
        self.data, self.limits = data, limits
        self.counts = {"nodes": 0, "initializers": 0, "values": 0, "depth": 0}

    def _count(self, what: str, limit: int, n: int = 1) -> None:
        self.counts[what] += n
        if self.counts[what] > limit:
            raise _TooMany(what)

    def fields(self, start: int, end: int) -> Any:
        """(field number, payload start, payload end) of every length-delimited field in [start, end); other
        wire types are skipped; groups and anything truncated are malformed (ONNX writers never emit groups)."""
        d = self.data
        i = start
        while i < end:
            tag = shift = 0
            while True:
                if i >= end or shift > 63:
                    raise _Malformed
                b = d[i]
                i += 1
                tag |= (b & 0x7F) << shift
                shift += 7
                if b < 0x80:
                    break
            wire, field = tag & 7, tag >> 3
            if wire == 0:
                while True:
                    if i >= end:
                        raise _Malformed
                    b = d[i]
                    i += 1
                    if b < 0x80:
                        break
            elif wire == 1:
                i += 8
            elif wire == 5:
                i += 4
            elif wire == 2:
                size = shift = 0
                while True:
                    if i >= end or shift > 63:
                        raise _Malformed
                    b = d[i]
                    i += 1
                    size |= (b & 0x7F) << shift
                    shift += 7
                    if b < 0x80:
                        break
                if i + size > end:
                    raise _Malformed
                yield field, i, i + size
                i += size
            else:
                raise _Malformed
            if i > end:
                raise _Malformed

    def model(self, start: int, end: int) -> None:
        for field, a, b in self.fields(start, end):
            if field == _MODEL_GRAPH:
                self.graph(a, b, 0)
            elif field == _MODEL_FUNCTIONS:
                self.function(a, b)
            elif field == _MODEL_TRAINING:
                for f2, a2, b2 in self.fields(a, b):
                    if f2 in _TRAINING_GRAPHS:
                        self.graph(a2, b2, 0)

    def graph(self, start: int, end: int, depth: int) -> None:
        if depth > self.counts["depth"]:
            self.counts["depth"] = depth
            if depth > self.limits.max_depth:
                raise _TooMany("depth")
        for field, a, b in self.fields(start, end):
            if field == _GRAPH_NODE:
                self._count("nodes", self.limits.max_nodes)
                self.node(a, b, depth)
            elif field in (_GRAPH_INIT, _GRAPH_SPARSE):
                self._count("initializers", self.limits.max_initializers)
            elif field in _GRAPH_VALUES:
                self._count("values", self.limits.max_values)

    def node(self, start: int, end: int, depth: int) -> None:
        for field, a, b in self.fields(start, end):
            if field == _NODE_ATTRIBUTE:
                self.attribute(a, b, depth)

    def attribute(self, start: int, end: int, depth: int) -> None:
        for field, a, b in self.fields(start, end):
            if field in (_ATTR_TENSOR, _ATTR_TENSORS) or field in _ATTR_SPARSE:
                self._count("initializers", self.limits.max_initializers)
            elif field in (_ATTR_GRAPH, _ATTR_GRAPHS):
                self.graph(a, b, depth + 1)

    def function(self, start: int, end: int) -> None:
        for field, a, b in self.fields(start, end):
            if field == _FUNCTION_NODE:
                self._count("nodes", self.limits.max_nodes)
                self.node(a, b, 0)
            elif field == _FUNCTION_VALUES:
                self._count("values", self.limits.max_values)


def check_graph_file(path: str | Path, limits: GraphLimits = DEFAULT_GRAPH_LIMITS) -> dict[str, int]:
    """Counts of an ONNX file (nodes, initializers, values, subgraph depth), or ArtefactError (one line) when
    it is not a regular file, is malformed protobuf, or holds more than `limits` allow. Call it before creating
    an onnxruntime session on an artefact's graph."""
    path = Path(path)
    try:
        size = path.stat().st_size
        regular = path.is_file() and not path.is_symlink()
    except OSError as e:
        raise ArtefactError(f"{path.name} cannot be read ({e.strerror}): re-run `edgekit export`") from None
    if not regular:
        raise ArtefactError(f"{path.name} is not a regular file: re-run `edgekit export`")
    if size > limits.max_file_bytes:
        raise ArtefactError(
            f"{path.name} is {size:,} bytes, over the {limits.max_file_bytes:,} an ONNX protobuf can be "
            "(weights beyond 2 GiB belong in external data): re-export it"
        )
    if size == 0:
        raise ArtefactError(f"{path.name} is empty: re-run `edgekit export`")
    scan: _Scan | None = None
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            view = memoryview(mm)
            try:
                scan = _Scan(view, limits)
                scan.model(0, size)
            finally:
                view.release()
    except _Malformed:
        raise ArtefactError(f"{path.name} is not an ONNX model (malformed protobuf): re-run `edgekit export`") from None
    except _TooMany as e:
        what = str(e)
        assert scan is not None
        limit = {
            "nodes": limits.max_nodes,
            "initializers": limits.max_initializers,
            "values": limits.max_values,
            "depth": limits.max_depth,
        }[what]
        shown = "subgraph nesting" if what == "depth" else what
        raise ArtefactError(
            f"{path.name} holds more {shown} than the runtime loads (over {limit:,}; onnxruntime would take "
            "minutes to create its session): it was not written by `edgekit export`; re-export it"
        ) from None
    except (OSError, ValueError) as e:
        raise ArtefactError(f"{path.name} cannot be read ({e}): re-run `edgekit export`") from None
    return dict(scan.counts)
