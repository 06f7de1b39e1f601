"""Will the artefact fit the target's memory? Weights (the graph files) plus an estimate of peak activation memory
at the target's largest batch, against what the device leaves free.

Activations come from ONNX shape inference on the graph itself: the per-sample bytes of the largest tensors that
are alive together (the biggest op's inputs and outputs are at least that; the estimate takes the four largest
intermediates), times the batch; for HRM / TRM never less than a floor computed from the configuration
(attention scores sit behind computed Reshapes that shape inference leaves unknown).
On unified-memory devices (Jetson) the serialized engine and the built engine
share the same DRAM while an engine loads, so weights count twice there. These are estimates, labelled as such;
a GPU with TensorRT is what measures the real figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..manifest import VariantGraphs

if TYPE_CHECKING:
    import onnx

LIVE_TENSORS = 4  # intermediates assumed alive at the peak (an op's inputs and outputs, plus the carried state)


def activation_bytes_per_sample(model: onnx.ModelProto) -> int:
    """Bytes per sample of the largest simultaneously-live intermediates, from shape inference with batch = 1.
    Tensors whose shapes stay unknown are left out (an underestimate, never a crash)."""
    import onnx
    from onnx import shape_inference

    try:
        inferred = shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # shape inference is best effort on graphs with custom ops
        inferred = model
    sizes: list[int] = []
    graphs = [inferred.graph]
    while graphs:
        g = graphs.pop()
        for vi in list(g.value_info) + list(g.output):
            t = vi.type.tensor_type
            if not t.HasField("shape") or t.elem_type == 0:
                continue
            dims = []
            for d in t.shape.dim:
                if d.HasField("dim_value"):
                    dims.append(int(d.dim_value))
                elif d.dim_param in ("batch", "N"):  # edgekit names its batch axis "batch"
                    dims.append(1)
                else:
                    dims = []
                    break
            if dims:
                itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)).itemsize
                sizes.append(int(np.prod(dims)) * itemsize)
        for n in g.node:
            graphs += [a.g for a in n.attribute if a.type == onnx.AttributeProto.GRAPH]
    return int(sum(sorted(sizes, reverse=True)[:LIVE_TENSORS]))


def analytic_bytes_per_sample(config: dict[str, Any]) -> int:
    """A floor from the model's configuration for what shape inference cannot see (attention scores behind
    computed Reshapes): float32 attention scores and softmax (heads x S x S), the gated MLP's two projections
    (S x expansion x hidden) and three states (S x hidden), S = sequence plus puzzle-embedding prefix."""
    try:
        h, seq = int(config["hidden_size"]), int(config["seq_len"])
        emb = int(config.get("puzzle_emb_ndim") or 0)
        prefix = int(config.get("puzzle_emb_len") or 0) if config.get("family") == "trm" else -(-emb // h)
        s = seq + (prefix if emb else 0)
        attention = 0 if config.get("mlp_t") else 2 * int(config.get("num_heads", 1)) * s * s
        mlp = 2 * s * int(float(config.get("expansion", 4)) * h)
        return 4 * (attention + mlp + 3 * s * h)
    except (KeyError, TypeError, ValueError):  # not an HRM / TRM config: shape inference only
        return 0


def form_groups(variants: Mapping[str, VariantGraphs | Mapping[str, str]]) -> dict[str, tuple[list[str], str | None]]:
    """'<variant> <form>' -> (the file keys a device loads together for it: host loop = encode + step + readout;
    the variant's step graph key, whose activations a Loop or unrolled graph has at least). `variants`: variant
    -> its graphs (`Manifest.variants`, or graph role -> file key)."""
    out: dict[str, tuple[list[str], str | None]] = {}
    for variant, roles in variants.items():
        graphs = roles if isinstance(roles, VariantGraphs) else VariantGraphs.of(roles)
        host = [k for k in (graphs.encode, graphs.step, graphs.readout) if k is not None]
        if host:
            out[f"{variant} host loop"] = (host, graphs.step)
        for form, key in (("loop", graphs.loop), ("unrolled", graphs.unrolled)):
            if key is not None:
                out[f"{variant} {form}"] = ([key], graphs.step)
    return out


def memory_estimate(
    variants: Mapping[str, VariantGraphs | Mapping[str, str]],
    config: Mapping[str, Any] | None,
    graphs: dict[str, dict],
    target: Any,
) -> dict[str, Any]:
    """Per deployable form (of `variants`: variant -> its graphs, as `form_groups` takes them): weights,
    activations at the target's max batch (never under what the model `config` says they take), what it needs and
    what is free."""
    if not target.memory_gb:
        return {}
    batch = target.profile().max
    free = (target.memory_gb - target.memory_reserved_gb) * 1e9
    workspace = (target.workspace_mb or 0) * 1e6
    factor = 2 if target.unified_memory else 1
    forms = {}
    for label, (keys, step) in form_groups(variants).items():
        summaries = [graphs[k] for k in keys if k in graphs]
        weights = sum(s.get("bytes", 0) for s in summaries)
        # shape inference does not always see through a Loop body's batch axis: a Loop or unrolled graph has at
        # least the activations of the step graph it runs
        act_graphs = summaries + ([graphs[step]] if step in graphs else [])
        floor = analytic_bytes_per_sample(dict(config or {}))
        act = max([floor] + [s.get("activation_bytes_per_sample", 0) for s in act_graphs]) * batch
        need = factor * weights + act + workspace
        forms[label] = {
            "weights_mb": round(weights / 1e6, 1),
            "activations_mb": round(act / 1e6, 1),
            "needs_mb": round(need / 1e6, 1),
            "share_of_free": round(need / free, 3) if free > 0 else None,
        }
    return {
        "batch": batch,
        "free_mb": round(free / 1e6),
        "workspace_mb": target.workspace_mb or 0,
        "weights_counted": factor,
        "estimated": True,
        "forms": forms,
    }


def memory_messages(est: dict[str, Any], target_name: str) -> list[tuple[str, str, str]]:
    """(severity, form, message): an error when a form needs more than the device leaves free, a warning above
    80 % of it."""
    out = []
    for label, f in est.get("forms", {}).items():
        share = f["share_of_free"]
        if share is None:
            continue
        twice = ", weights held twice while an engine loads (unified memory)" if est["weights_counted"] == 2 else ""
        what = (
            f"{label} needs ~{f['needs_mb'] / 1e3:.2f} GB (estimated: {f['weights_mb']:.0f} MB weights{twice}, "
            f"~{f['activations_mb']:.0f} MB activations at batch {est['batch']}, {est['workspace_mb']} MB workspace) "
            f"of the ~{est['free_mb'] / 1e3:.1f} GB {target_name} leaves free"
        )
        if share > 1:
            out.append(("error", label, what + "; cut the embedding table, quantize, or lower the batch profile"))
        elif share > 0.8:
            out.append(("warning", label, what + ": little headroom for the rest of the application"))
        else:
            out.append(("note", label, what))
    return out
