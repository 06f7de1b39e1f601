"""NNCF on the standalone step graph (never on a Loop model: NNCF skips Loop bodies and its SmoothQuant can
rewrite weights the body shares)."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings

import onnx

from ..errors import EdgekitError, first_line


class QuantizeError(EdgekitError):
    """Quantization failed or produced a graph the target cannot take."""


def drop_nop_casts(model: onnx.ModelProto) -> onnx.ModelProto:
    """Turn Casts to the type their input already has into Identity. The TorchScript exporter leaves them on
    graph outputs, and NNCF's own nop-cast pass then crashes looking up the removed output's value info."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.value_info, *g.input, *g.output]}
    types.update({t.name: t.data_type for t in g.initializer})
    for n in model.graph.node:
        if n.op_type == "Cast" and types.get(n.input[0]) == next(a.i for a in n.attribute if a.name == "to"):
            n.op_type = "Identity"
            del n.attribute[:]
    return model


def fold_weight_identities(model: onnx.ModelProto) -> onnx.ModelProto:
    """The TorchScript exporter shares a weight between recursion calls through `Identity` nodes. NNCF then
    sees those weights as activations (per-tensor ranges, and its weight compression cannot find them), so
    point every consumer at the initializer itself."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = {t.name for t in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    alias = {
        n.output[0]: n.input[0]
        for n in model.graph.node
        if n.op_type == "Identity" and n.input[0] in inits and n.output[0] not in outputs
    }
    keep = [n for n in model.graph.node if not (n.op_type == "Identity" and n.output[0] in alias)]
    for n in keep:
        n.input[:] = [alias.get(i, i) for i in n.input]
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return model


def prepare(model: onnx.ModelProto) -> onnx.ModelProto:
    return fold_weight_identities(drop_nop_casts(model))


@contextlib.contextmanager
def _quiet():
    """NNCF prints progress bars and INFO lines to stdout; edgekit's own log says what stage runs."""
    logging.getLogger("nncf").setLevel(logging.ERROR)
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        yield


def quantize_int8(
    step: onnx.ModelProto, items: list[dict], patterns: list[str], types: list[str], names: list[str] | None = None
) -> onnx.ModelProto:
    """Static INT8 PTQ: symmetric signed per-channel weights and symmetric activations (PERFORMANCE preset,
    what TensorRT needs), transformer op set (MatMul/Gemm inputs only). SmoothQuant is off: it crashes on
    TorchScript exports (probe §3) and rescales weights other graphs read."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters

    scope = nncf.IgnoredScope(names=list(names or []), patterns=list(patterns), types=list(types), validate=False)
    try:
        with _quiet():
            return nncf.quantize(
                prepare(step),
                nncf.Dataset(items),
                subset_size=len(items),
                model_type=nncf.ModelType.TRANSFORMER,
                preset=nncf.QuantizationPreset.PERFORMANCE,
                ignored_scope=scope,
                advanced_parameters=AdvancedQuantizationParameters(
                    smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=-1)
                ),
            )
    except Exception as e:  # NNCF raises many internal types; name the stage
        raise QuantizeError(
            f"NNCF INT8 quantization of the step graph failed: {first_line(e, 200)}",
            "try keeping more layers float (quantize.keep_float) or report the model",
        ) from None


def unshare_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give every consumer of a shared initializer its own copy. NNCF's weight compression (like its accuracy
    control restorer) looks weights up per consumer and fails on a weight several recursion calls share."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = {t.name: t for t in model.graph.initializer}
    seen: dict[str, int] = {}
    for n in model.graph.node:
        for i, name in enumerate(n.input):
            if name in inits:
                seen[name] = seen.get(name, 0) + 1
                if seen[name] > 1:
                    c = onnx.TensorProto()
                    c.CopyFrom(inits[name])
                    c.name = f"{name}__use{seen[name]}"
                    model.graph.initializer.append(c)
                    n.input[i] = c.name
    return model


def share_identical_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """Undo `unshare_weights` after compression: byte-identical initializers become one again."""
    import hashlib

    first: dict[tuple, str] = {}
    rename: dict[str, str] = {}
    keep = []
    for t in model.graph.initializer:
        key = (
            t.data_type,
            tuple(t.dims),
            hashlib.sha256(t.SerializeToString().replace(t.name.encode(), b"")).hexdigest(),
        )
        if key in first:
            rename[t.name] = first[key]
        else:
            first[key] = t.name
            keep.append(t)
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    for n in model.graph.node:
        n.input[:] = [rename.get(i, i) for i in n.input]
    return model


def compress_weights_int8(step: onnx.ModelProto, patterns: list[str], types: list[str]) -> onnx.ModelProto:
    """INT8 weight-only compression (symmetric, per output channel): a 4x smaller step graph, float compute."""
    import nncf

    try:
        with _quiet():
            q = nncf.compress_weights(
                unshare_weights(prepare(step)),
                mode=nncf.CompressWeightsMode.INT8_SYM,
                ignored_scope=nncf.IgnoredScope(patterns=list(patterns), types=list(types), validate=False),
            )
    except Exception as e:
        raise QuantizeError(
            f"NNCF weight compression of the step graph failed: {first_line(e, 200)}",
            "use quantize mode int8 or float16 instead",
        ) from None
    from .lint import positive_scales

    return positive_scales(share_identical_initializers(q))[0]


def layer_groups(step: onnx.ModelProto, by: str = "role") -> dict[str, list[str]]:
    """MatMul/Gemm nodes grouped by the module that owns their weight: a recursive step calls the same
    module many times (TRM: H_cycles x (L_cycles + 1)), and all calls share one weight, so keeping a layer
    float means keeping every call of it float. by="layer" keys are module paths such as
    /L_level/layers.0/mlp/down_proj; by="role" merges the same module across layers (/L_level/layers.*/mlp/down_proj),
    since one role sees similar activation statistics in every layer (measured: the SwiGLU down projections
    are the sensitive ones in the TRM demo)."""
    import re

    groups: dict[str, list[str]] = {}
    for n in step.graph.node:
        if n.op_type in ("MatMul", "Gemm"):
            parts = n.name.rsplit("/", 1)[0] if "/" in n.name else n.name
            key = re.sub(r"_\d+(?=/|$)", "", parts)
            if by == "role":
                key = re.sub(r"layers\.\d+", "layers.*", key)
            groups.setdefault(key, []).append(n.name)
    return groups
