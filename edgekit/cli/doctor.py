"""`edgekit doctor`: print the device checks (edgekit.runtime.doctor), one line each; exit 0 when what the device
needs works, 1 otherwise. Base install only: no torch, and onnxruntime is imported in a child process."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import typer

from .app import app, console


def _doctor_module() -> ModuleType:
    """edgekit.runtime.doctor. Importing it runs edgekit.runtime's __init__, which imports onnxruntime: where that
    import is what is broken, the same file is loaded on its own (it needs the standard library only)."""
    try:
        from ..runtime import doctor

        return doctor
    except ImportError:
        path = Path(__file__).resolve().parent.parent / "runtime" / "doctor.py"
        spec = importlib.util.spec_from_file_location("edgekit_doctor", path)
        assert spec is not None and spec.loader is not None, path
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up by name
        spec.loader.exec_module(module)
        return module


@app.command()
def doctor(json_out: bool = typer.Option(False, "--json", help="print the checks as JSON")) -> None:
    """Check this device: Python, numpy and onnxruntime (and whether they import together), each execution
    provider on a one-node graph, TensorRT and cuda-python, the GPU, and which targets match it. One line per
    check with its fix; exit 0 when everything this device needs works (the CPU provider at least), else 1."""
    d = _doctor_module()
    checks = d.run_doctor()
    if json_out:
        console.print_json(json.dumps(d.as_json(checks)))
    else:
        for c in checks:
            console.print(d.line(c), markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(0 if d.passed(checks) else 1)
