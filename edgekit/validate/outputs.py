"""What the validation stage writes once every variant is judged: results.json's document, golden.npz,
references.npz, junit.xml, the plots, report.md and the manifest with every file's hash and size."""

from __future__ import annotations

import platform
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from ..artefact import sha256_file
from ..schema import Recipe
from ..tasks import TaskData

if TYPE_CHECKING:
    from .stage import _Run

RESULTS_SCHEMA_VERSION = 2  # 2: entries and gates name variants by their `--variant` name, `display` beside it


def takes_ids(model) -> bool:
    from ..export.graphs import takes_puzzle_ids

    return takes_puzzle_ids(model)


def results_document(
    recipe: Recipe, target: str, data: TaskData, reference: str, entries: list[dict], gates: list[dict],
    warnings: list[str], scale: Any,
) -> dict:  # fmt: skip
    """results.json: every variant's entry, the gates and the verdict, where the rollouts ran."""
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "recipe": recipe.name,
        "target": target,
        "data": data.description,
        **({"data_source": data.source} if data.source else {}),
        "reference": reference,
        "variants": entries,
        "gates": gates,
        "passed": all(x["passed"] for x in gates),
        **({"warnings": warnings} if warnings else {}),
        "environment": {"python": platform.python_version(), "machine": platform.machine(), "edgekit": __version__},
        "scale": scale.record(),  # where the rollouts ran: executor, workers, the references' device
    }


def write_outputs(run: _Run, results: dict, gates: list[dict]) -> None:
    """golden.npz and references.npz (what `edgekit verify [--full]` re-checks on a device), junit.xml, the plots,
    report.md, then the manifest with the hash and size of every file, these included."""
    from ..runtime.verify import GOLDEN, write_golden
    from .junit import junit_xml
    from .plots import write_plots
    from .report import report_markdown

    tmp, recipe, data, files = run.tmp, run.recipe, run.data, run.files
    k = min(8, len(data.inputs))
    gids = data.puzzle_ids[:k] if data.puzzle_ids is not None and takes_ids(run.fp32) else None
    _golden(tmp, files, data.inputs[:k], write_golden, gids)
    files["golden"] = GOLDEN
    files["references"] = run.recorded.write(
        tmp,
        {
            "batch_size": run.bs,
            "family": run.native.family,
            "task": recipe.task.name,
            "gates": recipe.gates.model_dump(),
            "latency": {
                "batch": recipe.validate_.latency_batch,
                "examples": recipe.validate_.latency_n,
                "rounds": recipe.validate_.latency_rounds,
            },
            "export_gates": gates,
        },
    )
    (tmp / "junit.xml").write_text(junit_xml(results))
    plots = write_plots(results, tmp)
    (tmp / "report.md").write_text(report_markdown(results, run.manifest, plots))
    manifest = replace(
        run.manifest,
        files=files,
        sha256={name: sha256_file(tmp / rel) for name, rel in files.items()},
        bytes={name: (tmp / rel).stat().st_size for name, rel in files.items()},  # verify: size before hash
    )
    (tmp / "manifest.json").write_text(manifest.dumps())


def _golden(tmp: Path, files: dict, inputs: np.ndarray, write_golden, ids: np.ndarray | None = None) -> None:
    """golden.npz (every variant and mode on a few inputs, what `edgekit verify` re-checks on a device), written
    from the cache when the same graph bytes answered the same inputs at the same settings before."""
    from ..cache import entry, read_arrays, write_arrays
    from ..runtime.manifest import load_manifest
    from ..runtime.verify import GOLDEN
    from .reference import keyed, onnx_rollout_key

    graphs = sorted(k for k in files if k != "golden")
    m = load_manifest(tmp, complete=False)  # the runner settings golden answers are computed at
    settings = ["golden", graphs, m.graph.to_json(), m.model.to_json(), {n: g.to_json() for n, g in m.variants.items()}]
    key = onnx_rollout_key([tmp / files[k] for k in graphs], keyed(inputs, ids), 0, settings)
    e = entry("onnx", f"golden-{key}")

    def decode(z: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not np.array_equal(z["inputs"], inputs):
            raise ValueError("answers to other inputs")
        return z

    cached = read_arrays(e, decode)  # a damaged or foreign entry is discarded and recomputed
    if cached is not None:
        np.savez(tmp / GOLDEN, **cached)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
        return
    write_arrays(e, write_golden(tmp, inputs, ids))
