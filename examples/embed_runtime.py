"""A tiny device application: answer Sudoku puzzles with an exported artefact, using only the base install.

Needs only `pip install edgekit` (numpy + onnxruntime + small pure-Python libraries); torch is never imported.
The artefact is loaded once; each input line is one puzzle of 81 cells (digits 1-9, '0' or '.' for a blank;
spaces ignored) and is answered with the host loop (per-puzzle early halting). For each puzzle one line is
printed: the 81-digit answer and the recursion steps it took. A line that is not a puzzle gets a one-line error on
stderr and the rest are still answered. Exit code 0 when every line was a valid puzzle, 2 otherwise (or when the
artefact is unusable).

From a fresh clone (the first venv exports the artefact, the second is what a device installs):

    python3 -m venv .venv && .venv/bin/pip install -e ".[export]" && .venv/bin/edgekit export recipes/trm-sudoku.yaml
    python3 -m venv .venv-device && .venv-device/bin/pip install -e .
    .venv-device/bin/python examples/embed_runtime.py artefacts/trm-sudoku examples/puzzles.txt
"""

from __future__ import annotations

import sys

from edgekit.runtime import ArtefactError, Runner, RuntimeInputError
from edgekit.tasks import get_task

SUDOKU = get_task("sudoku")  # knows the text form of a puzzle (parse_line) and of an answer (render)


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2) or argv[0] in ("-h", "--help"):
        print("usage: embed_runtime.py ARTEFACT [PUZZLES_FILE]  (puzzles on stdin without a file)", file=sys.stderr)
        return 2
    try:
        runner = Runner(argv[0])
        if not SUDOKU.fits(runner.graph.input.to_json(), runner.family):
            raise ArtefactError(f"{argv[0]} is not a Sudoku artefact (input shape {list(runner.graph.input.shape)})")
        runner.session("step")  # load the graphs now, not on the first puzzle
    except (ArtefactError, RuntimeInputError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        source = open(argv[1], encoding="utf-8") if len(argv) == 2 else sys.stdin  # noqa: SIM115 (closed below)
    except OSError as e:
        print(f"error: cannot read {argv[1]}: {e.strerror}", file=sys.stderr)
        return 2
    ok = True
    with source:
        for number, line in enumerate(source, 1):
            if not line.strip():
                continue
            try:
                sol = runner.solve(SUDOKU.parse_line(line, 81)[None], mode="host")
            except (ValueError, RuntimeInputError) as e:
                print(f"line {number}: {e}", file=sys.stderr)
                ok = False
                continue
            print(f"{SUDOKU.render(sol.preds[0])} steps {int(sol.steps[0])}", flush=True)
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
