"""Write the bundled demo datasets in the reference builders' layout (edgekit/tasks/files.py), so recipes can show
`task.data` working without downloading anything:

    python examples/make_reference_datasets.py          # writes examples/data/sudoku-demo and examples/data/maze-demo

- sudoku-demo/test holds exactly the 256 puzzles the sudoku task generates with 28-40 givens and seed 123, and
  sudoku-demo/train exactly the 128 it generates to calibrate the halting threshold (seed 123 + 7919; a draw of
  all 128 examples of a split is the split in file order): recipes/trm-sudoku.yaml (the main job) reads this
  folder and measures what the generated puzzles measure, threshold included.
- maze-demo holds 30x30 mazes from edgekit's Maze generator, in the Maze-Hard encoding (vocab 6, seq 900).
Both are deterministic: running the script again writes identical files.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from edgekit.tasks import get_task
from edgekit.tasks.files import write_reference_layout
from edgekit.tasks.maze import VOCAB_SIZE as MAZE_VOCAB
from edgekit.tasks.sudoku import VOCAB_SIZE as SUDOKU_VOCAB

HERE = Path(__file__).resolve().parent


class _Settings:
    """The recipe task settings of recipes/trm-sudoku.yaml (what its generated validation set depends on)."""

    def __init__(self, name: str, n: int, seed: int, givens: tuple[int, int] | None = None) -> None:
        self.name, self.n, self.seed, self.givens = name, n, seed, givens
        self.data, self.split, self.calibration_split = None, "test", "train"


def _split(task: str, n: int, seed: int, givens: tuple[int, int] | None = None) -> tuple:
    d = get_task(task).generate(_Settings(task, n, seed, givens), n, seed, "test")
    return d.inputs, d.labels


def _written_here(folder: Path) -> bool:
    """True when `folder` holds only what write_reference_layout writes (so replacing it deletes nothing else)."""
    for f in folder.rglob("*"):
        rel = f.relative_to(folder)
        if f.is_symlink():
            return False
        if f.is_dir() and len(rel.parts) == 1:
            continue
        if rel.parts == ("identifiers.json",) or (len(rel.parts) == 2 and f.is_file() and (
            rel.name == "dataset.json" or (rel.name.startswith("all__") and rel.suffix == ".npy")
        )):  # fmt: skip
            continue
        return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "data")
    args = ap.parse_args()
    sudoku_dir, maze_dir = args.out / "sudoku-demo", args.out / "maze-demo"
    for d in (sudoku_dir, maze_dir):
        if d.exists():
            if not _written_here(d):
                raise SystemExit(f"{d} holds files this script did not write; pass another --out")
            shutil.rmtree(d)
    write_reference_layout(
        sudoku_dir,
        {"test": _split("sudoku", 256, 123, (28, 40)), "train": _split("sudoku", 128, 123 + 7919, (28, 40))},
        vocab_size=SUDOKU_VOCAB,
    )
    write_reference_layout(
        maze_dir, {"test": _split("maze", 24, 5), "train": _split("maze", 48, 6)}, vocab_size=MAZE_VOCAB
    )
    for d in (sudoku_dir, maze_dir):
        size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
        print(f"wrote {d} ({size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
