"""Store each distinct constant once: the exporter folds per-use copies of the same tensor (RoPE cos/sin tables
at every attention call, transposed weights at every call of a shared layer) into separate initializers; the
seq-900 TRM step graph held its RoPE tables 60 times (28 MB of 56 MB). Same numbers, smaller files, less memory
for every later stage."""

from __future__ import annotations

import hashlib

import onnx


def dedupe_initializers(model: onnx.ModelProto, min_bytes: int = 64) -> int:
    """Merge byte-identical initializers (same dtype, shape and data) of the main graph into one; returns the
    bytes saved. Subgraphs keep theirs (edgekit's step graphs have none)."""
    g = model.graph
    inputs = {i.name for i in g.input}
    first: dict[tuple, str] = {}
    alias: dict[str, str] = {}
    keep: list[onnx.TensorProto] = []
    saved = 0
    for t in g.initializer:
        data = t.raw_data
        if t.name in inputs or len(data) < min_bytes:  # overridable inputs and scalars stay as they are
            keep.append(t)
            continue
        key = (t.data_type, tuple(t.dims), len(data), hashlib.sha256(data).digest())
        if key in first:
            alias[t.name] = first[key]
            saved += len(data)
        else:
            first[key] = t.name
            keep.append(t)
    if not alias:
        return 0
    del g.initializer[:]
    g.initializer.extend(keep)
    outputs = {o.name for o in g.output}
    for n in g.node:
        n.input[:] = [alias.get(i, i) for i in n.input]
    for name in outputs & set(alias):  # a graph output that was a duplicate constant: keep its name
        g.node.append(onnx.helper.make_node("Identity", [alias[name]], [name]))
    return saved
