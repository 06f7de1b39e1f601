"""An int8_weight_only variant added to a copy of an exported artefact, as `export` writes it (NNCF INT8 weights of
the float32 step graph, the halting head kept float): for tests of what runs that variant (OpenVINO's int8) that
need not export and quantize anew."""

from __future__ import annotations

import json
from pathlib import Path

import onnx

from edgekit.artefact import sha256_file, write_json

VARIANT = "int8_weight_only"


def add_int8_weight_only(artefact: Path) -> Path:
    """`artefact` (a copy the test owns) with the variant's step graph, files entry, hash, size and roles added."""
    from edgekit.quantize import QuantizeSection
    from edgekit.quantize.nncf_backend import compress_weights_int8

    m = json.loads((artefact / "manifest.json").read_text())
    step = onnx.load(str(artefact / m["files"][m["variants"]["float32"]["step"]]))
    keep = QuantizeSection().keep_float
    (artefact / VARIANT).mkdir()
    path = artefact / VARIANT / "step.onnx"
    onnx.save(compress_weights_int8(step, keep.patterns, keep.types), str(path))
    key = f"{VARIANT}/step"
    m["files"][key] = f"{VARIANT}/step.onnx"
    m["sha256"][key] = sha256_file(path)
    m["bytes"][key] = path.stat().st_size
    m["variants"][VARIANT] = {"encode": "encode", "step": key, "readout": "readout"}
    m.setdefault("quantization", {})[VARIANT] = {"method": "nncf.compress_weights INT8_SYM", "form": "weight_only"}
    write_json(artefact / "manifest.json", m)
    return artefact
