"""Write every requested form x precision of a model into an artefact folder and describe it for the manifest.

Layout: float32 graphs at the top level (encode.onnx, step.onnx, readout.onnx, loop.onnx, unrolled.onnx),
other precisions in a sub-folder named after them (float16/step.onnx, ...). The manifest's `files` maps a key
("step", "float16/step", ...) to each file and `variants` maps a precision to its graph keys, so the runtime and
later stages (quantize, build, validate) find graphs by name, never by path conventions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ExportError
from ..models.act import ACTModel
from ..models.deq import DEQModel
from ..models.families import get_family
from .onnx_export import ExportedGraph, export_loop, export_step_graphs, export_unrolled
from .puzzle_table import PuzzleTable

FORMS = ("step", "loop", "unrolled")
PRECISIONS = ("float32", "float16")


@dataclass
class ExportPlan:
    forms: list[str]
    precisions: list[str]
    opset: int = 17
    halt_threshold: float = 0.0
    optimize: bool = True
    table: PuzzleTable | None = None  # the puzzle-embedding rows kept (export.puzzle_ids)
    external: bool = False  # store the puzzle table as external data whatever its size


@dataclass
class Exported:
    files: dict[str, str] = field(default_factory=dict)  # key -> path relative to the folder
    variants: dict[str, dict[str, str]] = field(default_factory=dict)  # precision -> graph -> file key
    graphs: list[ExportedGraph] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # file key -> export wall time

    def add(self, precision: str, folder: Path, g: ExportedGraph, graph: str | None = None) -> None:
        graph = graph or g.name
        key = graph if precision == "float32" else f"{precision}/{graph}"
        self.files[key] = str(g.path.relative_to(folder))
        self.variants.setdefault(precision, {})[graph] = key
        if g.data is not None:
            self.files[f"{key}_data"] = str(g.data.relative_to(folder))
        self.graphs.append(g)
        self.seconds[key] = round(g.seconds, 3)


def export_forms(load: Callable[[str], ACTModel | DEQModel], folder: Path, plan: ExportPlan) -> Exported:
    """`load(precision)` gives the model computing in that precision (fp16 graphs come from a model running
    in fp16, with the references' own fp32 islands such as RMSNorm, not from a blind cast of the fp32 graph)."""
    out = Exported()
    for precision in plan.precisions:
        model = load(precision)
        allowed = get_family(model.family).precisions
        if precision not in allowed:
            raise ExportError(
                f"{model.family.upper()} models export in {' and '.join(allowed)} only (asked for {precision})",
                f"set export.precisions: [{', '.join(allowed)}]",
            )
        sub = folder if precision == "float32" else folder / precision
        sub.mkdir(exist_ok=True)
        for g in export_step_graphs(model, sub, plan.opset, plan.optimize, plan.table, plan.external):
            out.add(precision, folder, g)
        if "loop" in plan.forms:
            out.add(precision, folder, export_loop(model, sub, sub / "loop.onnx", plan.halt_threshold))
        if "unrolled" in plan.forms:
            out.add(
                precision,
                folder,
                export_unrolled(model, sub, sub / "unrolled.onnx"),
                "unrolled",
            )
    return out
