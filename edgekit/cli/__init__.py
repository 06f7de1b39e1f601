"""The `edgekit` command: parse arguments, call a stage's entry point, print. Every error a user can cause ends as
one line and a documented exit code (edgekit.errors).

  app.py          the Typer app, consoles, the one-line error printer
  workstation.py  export, validate, targets, check, plan, build   (need the `export` extra)
  device.py       bench, solve, info, serve                        (the base install: numpy + onnxruntime)
  verify.py       verify: hashes, golden answers, --full gates     (the base install)
  tune.py         tune: the accuracy-latency front for a budget     (needs the `export` extra)
  examples.py     the example at the end of each command's --help
"""

from __future__ import annotations

import signal
import sys

from ..errors import EXIT_USAGE, EdgekitError
from . import debug, device, doctor, tune, verify, workstation  # noqa: F401  (importing them registers their commands)
from .app import app, err_console
from .examples import add_examples

add_examples(app)  # one example at the end of every command's --help

# Modules of the `export` extra: a command that needs one on a base (device) install says so in one line.
EXPORT_EXTRA = {
    "torch",
    "onnx",
    "onnxscript",
    "onnx_ir",
    "yaml",
    "pydantic",
    "safetensors",
    "sklearn",
    "nncf",
    "matplotlib",
    "scipy",
    "torchdeq",
}


class Terminated(BaseException):
    """SIGINT / SIGTERM, raised in the main thread so every `with atomic_folder` removes its temporary folder.
    Not a KeyboardInterrupt: click would turn that into "Aborted!" and exit 1."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum: int, frame: object) -> None:
    raise Terminated(signum)


def main() -> None:
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        app()
    except EdgekitError as e:  # safety net: errors raised outside a command body
        err_console.print(f"error: {e}", markup=False, highlight=False)
        sys.exit(e.exit_code)
    except ModuleNotFoundError as e:
        root = (e.name or "").split(".")[0]
        if root not in EXPORT_EXTRA:
            raise
        err_console.print(
            f"error: this command needs the workstation pipeline ({root} is not installed); install it "
            'with: pip install "edgekit[export]"',
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(EXIT_USAGE)
    except OSError as e:
        from ..artefact import disk_error

        err = disk_error(e, e.filename or "the output folder")
        if err is None:
            raise
        err_console.print(f"error: {err}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(err.exit_code)
    except Terminated as t:
        name = "SIGINT" if t.signum == signal.SIGINT else "SIGTERM"
        err_console.print(f"interrupted ({name}); temporary files removed, no partial artefact was left", markup=False)
        sys.exit(128 + t.signum)


__all__ = ["app", "main"]
