"""`edgekit check` compares an artefact's weights and estimated peak activations with the target's memory
(an 8 GB Orin Nano was once told a 2.1 GB embedding table was COMPATIBLE)."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from edgekit.schema import load_target
from edgekit.tensorrt.check import check_artefact
from edgekit.tensorrt.memory import activation_bytes_per_sample, memory_estimate


def test_activation_estimate_reads_shapes_from_the_graph():
    """[batch, 100] -> MatMul [100, 1000] -> Relu -> MatMul [1000, 10]: the live set is the largest tensors."""
    w1 = numpy_helper.from_array(np.zeros((100, 1000), np.float32), "w1")
    w2 = numpy_helper.from_array(np.zeros((1000, 10), np.float32), "w2")
    g = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("MatMul", ["r", "w2"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 100])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])],
        initializer=[w1, w2],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    # h and r (1000 floats each) + y (10 floats): shape inference found them, the batch counts as 1
    assert activation_bytes_per_sample(m) == (1000 + 1000 + 10) * 4


def test_a_model_too_big_for_the_device_is_incompatible(trm_artefact):
    nano = load_target("jetson-orin-nano")
    ok = check_artefact(trm_artefact, nano)
    assert ok.memory["forms"]["float32 host loop"]["weights_mb"] > 1  # the demo's 2.8 MB of weights, counted
    assert ok.memory["weights_counted"] == 2 and ok.memory["batch"] == nano.profile().max
    assert not [f for f in ok.errors() if "GB" in f.message]
    tiny = nano.model_copy(update={"memory_gb": 1.5 + 0.004, "workspace_mb": 0})  # 4 MB left free
    bad = check_artefact(trm_artefact, tiny)
    msgs = [f.message for f in bad.errors()]
    assert not bad.compatible and any("needs ~" in m and "cut the embedding table" in m for m in msgs), msgs


def test_memory_estimate_counts_weights_once_on_discrete_gpus():
    variants = {"float32": {"encode": "encode", "step": "step", "readout": "readout"}}
    graphs = {
        k: {"bytes": 1_000_000_000, "activation_bytes_per_sample": 1_000_000} for k in ("encode", "step", "readout")
    }
    rtx = load_target("rtx-40").model_copy(update={"memory_gb": 24.0})
    nano = load_target("jetson-orin-nano")
    a = memory_estimate(variants, None, graphs, rtx)["forms"]["float32 host loop"]
    b = memory_estimate(variants, None, graphs, nano)["forms"]["float32 host loop"]
    assert a["weights_mb"] == b["weights_mb"] == 3000
    assert b["needs_mb"] - b["activations_mb"] - 1024 == 6000  # twice on unified memory, plus the workspace
    assert a["needs_mb"] - a["activations_mb"] - 4096 == 3000
    assert b["share_of_free"] > 1  # 3 GB of weights do not fit an 8 GB Orin Nano's ~6.5 GB twice over


def test_attention_scores_count_even_where_shape_inference_cannot_see_them():
    """The seq-900 TRM's attention scores (8 heads x 916 x 916 floats per sample) sit behind computed Reshapes;
    the estimate never goes below what the configuration says they take."""
    config = {"family": "trm", "hidden_size": 512, "seq_len": 900, "puzzle_emb_ndim": 512, "puzzle_emb_len": 16,
              "num_heads": 8, "expansion": 4}  # fmt: skip
    variants = {"float32": {"step": "step"}}
    graphs = {"step": {"bytes": 28_000_000, "activation_bytes_per_sample": 15_000_000}}
    est = memory_estimate(variants, config, graphs, load_target("jetson-orin-nano"))
    scores = 8 * 916 * 916 * 4 * 16  # one float32 score tensor at batch 16
    assert est["forms"]["float32 host loop"]["activations_mb"] * 1e6 >= 2 * scores
