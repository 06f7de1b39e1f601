"""Validation stage: does the exported (and compressed) model still behave like the original?

Entry points: `validate_artefact` (the whole stage on an artefact folder: metrics per variant against the PyTorch
reference, forms parity, state drift, DEQ fixed-point report, gates, results.json / junit.xml / report.md / plots /
golden outputs) and `calibrate_halt_threshold` (the halting threshold chosen on held-out data before export).

  stage.py      validate_artefact: runs the variants, assembles results.json, writes every output
  threshold.py  calibrate_halt_threshold
  compare.py    per-variant metrics and agreement (argmax, halting step) between two variants
  drift.py, forms.py, deq.py   state drift, Loop / unrolled parity, fixed-point report
  gates.py      the recipe's gates as pass / fail records
  junit.py, plots.py, report.py   what CI and people read
"""

from .stage import RESULTS_SCHEMA_VERSION, validate_artefact
from .threshold import calibrate_halt_threshold

__all__ = ["RESULTS_SCHEMA_VERSION", "calibrate_halt_threshold", "validate_artefact"]
