"""A tiny device application: answer Sudoku puzzles with an exported artefact, using only the edgekit runtime.

Needs numpy + onnxruntime + edgekit (`pip install "edgekit[runtime]"`); torch is never imported. The artefact is
loaded once; each input line is one puzzle of 81 cells (digits 1-9, '0' or '.' for a blank; spaces ignored)
and is answered with the host loop (per-puzzle early halting). For each puzzle one line is printed: the 81-digit
answer and the recursion steps it took. A line that is not a puzzle gets a one-line error on stderr and the rest
are still answered. Exit code 0 when every line was a valid puzzle, 2 otherwise (or when the artefact is unusable).

    python examples/embed_runtime.py artefacts/trm-sudoku puzzles.txt
    echo "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79" | \\
        python examples/embed_runtime.py artefacts/trm-sudoku
"""
from __future__ import annotations

import sys

import numpy as np

from edgekit.runtime import ArtefactError, Runner, RuntimeInputError

BLANK = 1   # reference token encoding: 0 pad, 1 blank, 2-10 the digits 1-9


def parse(line: str) -> np.ndarray:
    """81 cells -> token ids; ValueError with a one-line reason otherwise."""
    cells = [ch for ch in line if not ch.isspace()]
    if len(cells) != 81:
        raise ValueError(f"a Sudoku needs 81 cells, got {len(cells)}")
    bad = next((i for i, ch in enumerate(cells) if ch not in ".0123456789"), None)
    if bad is not None:
        raise ValueError(f"cell {bad} is {cells[bad]!r}: use digits 1-9 and '.' or '0' for blanks")
    return np.array([BLANK if ch in ".0" else int(ch) + 1 for ch in cells], dtype=np.int64)


def render(tokens: np.ndarray) -> str:
    """Answer tokens -> 81 characters (digits; '.' where the model answered a non-digit token)."""
    return "".join(str(int(t) - 1) if t >= 2 else "." for t in tokens)


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2) or argv[0] in ("-h", "--help"):
        print("usage: embed_runtime.py ARTEFACT [PUZZLES_FILE]  (puzzles on stdin without a file)", file=sys.stderr)
        return 2
    try:
        runner = Runner(argv[0])
        if list(runner.graph["input"]["shape"][1:]) != [81]:
            raise ArtefactError(f"{argv[0]} is not a Sudoku artefact (input shape {runner.graph['input']['shape']})")
        runner.session("step")   # load the graphs now, not on the first puzzle
    except ArtefactError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        source = open(argv[1], encoding="utf-8") if len(argv) == 2 else sys.stdin
    except OSError as e:
        print(f"error: cannot read {argv[1]}: {e.strerror}", file=sys.stderr)
        return 2
    ok = True
    with source:
        for number, line in enumerate(source, 1):
            if not line.strip():
                continue
            try:
                puzzle = parse(line)
                sol = runner.solve(puzzle[None], mode="host")
            except (ValueError, RuntimeInputError) as e:
                print(f"line {number}: {e}", file=sys.stderr)
                ok = False
                continue
            print(f"{render(sol.preds[0])} steps {int(sol.steps[0])}", flush=True)
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
