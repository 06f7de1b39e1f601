"""The puzzle-embedding table of an ARC-size HRM (random init, reference layout) before and after the
cut, and an uncut table past protobuf's 2 GB limit (ONNX external data).

Writes an HRM at ARC size (seq 900, vocab 12, hidden 512, 4+4 layers, one 512-wide puzzle row per identifier) with
`--ids` identifiers as the reference saves it (`torch.save` of `_orig_mod.model.inner.` keys + all_config.yaml),
then, each in a fresh process so peak RSS is its own: export of the uncut table (step graphs + Loop form; the
table goes to encode.onnx.data when over 1 GiB), export with the table cut to `--keep` identifiers, a Runner
answering on the cut artefact, and its refusal of an identifier outside the cut.

    .venv/bin/python benchmarks/arc_table.py [--ids 1045829] [--keep 1000] [--out arc_table.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def hrm_arc() -> dict:
    """sapientinc's HRM at ARC size: the official Sudoku architecture on 30 x 30 grids of 12 tokens."""
    from reference_checkpoints import OFFICIAL

    return {**OFFICIAL["hrm-sudoku"], "seq_len": 900, "vocab_size": 12}


CHILD = """
import json, resource, sys, time
from dataclasses import replace
from pathlib import Path
import numpy as np
from edgekit.artefact import sha256_file
from edgekit.models.checkpoint import load_model
from edgekit.export.forms import ExportPlan, export_forms
from edgekit.export.manifest import build_manifest, with_files, write_initial_state
from edgekit.export.puzzle_table import PuzzleTable, write_table
ck, out, keep = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
t = time.perf_counter(); m = load_model(ck, seq_len=900, forward_dtype="float32"); load = time.perf_counter() - t
rows, dim = m.puzzle_emb.weights.shape
ids = np.arange(rows) if keep == 0 else np.sort(np.random.default_rng(0).choice(rows, keep, replace=False))
table = PuzzleTable(ids.astype(np.int64), None, rows, dim)
out.mkdir(parents=True, exist_ok=True)
t = time.perf_counter()
ex = export_forms(lambda p: m, out, ExportPlan(["step", "loop"], ["float32"], table=table))
export_s = time.perf_counter() - t
files = dict(ex.files)
files["puzzle_ids"] = write_table(out, table)
init = write_initial_state(m, out, files)
man = build_manifest(m, out, recipe_name="arc-table", recipe_sha256="0" * 64, target="x86-cpu",
                     weights_file=ck / "checkpoint", forms=["step", "loop"], opset=17, halt_threshold=0.0,
                     files=files, variants=dict(ex.variants), export_seconds=ex.seconds, initial_state=init)
man = with_files(replace(man, graph=replace(man.graph, puzzle_ids=table.spec(4))), out, files)
man = replace(man, sha256={k: sha256_file(out / v) for k, v in files.items()})
(out / "manifest.json").write_text(man.dumps())
sizes = {k: (out / v).stat().st_size for k, v in files.items()}
print(json.dumps({"load_s": load, "export_s": export_s, "rows_before": int(rows), "rows": len(ids),
                  "table_mb_before": rows * dim * 4 / 1e6, "table_mb_after": len(ids) * dim * 4 / 1e6,
                  "files_mb": {k: round(v / 1e6, 2) for k, v in sizes.items()},
                  "artefact_mb": round(sum(sizes.values()) / 1e6, 1), "kept": ids[:3].tolist(),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

RUN = """
import json, resource, sys, time
import numpy as np
from edgekit.runtime.runner import Runner
from edgekit.runtime.errors import RuntimeInputError
folder, manifest = sys.argv[1], json.loads(sys.argv[2])
t = time.perf_counter()
r = Runner(folder)
x = np.random.default_rng(0).integers(1, 12, (2, 900))
kept = manifest["kept"]
sol = r.solve(x, puzzle_ids=[kept[0], kept[1]], max_steps=2)
out = {"solve_s": time.perf_counter() - t, "steps": sol.steps.tolist()}
kept_all = set(r.puzzles.original.tolist())
outside = next((i for i in range(manifest["rows_before"]) if i not in kept_all), None)
try:
    if outside is not None:
        r.solve(x, puzzle_ids=[outside, kept[0]], max_steps=1)
    out["refusal"] = None
except RuntimeInputError as e:
    out["refusal"] = str(e)
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def _py(code: str, *args: str) -> dict:
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if r.returncode:
        return {"error": (r.stderr.strip().splitlines() or ["?"])[-1][:300], "returncode": r.returncode}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ids", type=int, default=1_045_829)
    ap.add_argument("--keep", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--skip-uncut", action="store_true")
    a = ap.parse_args()
    from reference_checkpoints import write_reference_checkpoint

    res: dict = {"ids": a.ids, "keep": a.keep}
    with tempfile.TemporaryDirectory() as d:
        ck = Path(d) / "hrm-arc"
        t = time.perf_counter()
        write_reference_checkpoint(ck, {**hrm_arc(), "num_puzzle_identifiers": a.ids})
        res["write_checkpoint_s"] = round(time.perf_counter() - t, 1)
        res["checkpoint_mb"] = round((ck / "checkpoint").stat().st_size / 1e6, 1)
        print(json.dumps(res), flush=True)
        for name, keep in (("uncut", 0), ("cut", a.keep)):
            if name == "uncut" and a.skip_uncut:
                continue
            folder = Path(d) / name
            res[name] = _py(CHILD, str(ck), str(folder), str(keep))
            print(json.dumps({name: res[name]}), flush=True)
            if "error" not in res[name]:
                res[name]["runtime"] = _py(RUN, str(folder), json.dumps(res[name]))
                print(json.dumps({f"{name} runtime": res[name]["runtime"]}), flush=True)
            shutil.rmtree(folder, ignore_errors=True)
    if a.out:
        a.out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
