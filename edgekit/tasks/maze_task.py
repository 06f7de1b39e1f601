"""The Maze task (Maze-Hard encoding, 30x30, vocab 6): reference-layout folders, or mazes generated from seeds."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import maze
from .base import Task, TaskData, TaskSettings, register

SIZE = 30  # Maze-Hard grids; the generator carves odd sizes, so a 29x29 maze is padded with a wall row/column
SEQ_LEN = SIZE * SIZE


def _padded(grids: np.ndarray, carved: int) -> np.ndarray:
    """[N, carved*carved] -> [N, 900]: the carved maze in the top-left corner, walls around it."""
    out = np.full((len(grids), SIZE, SIZE), maze.WALL, dtype=np.int64)
    out[:, :carved, :carved] = grids.reshape(-1, carved, carved)
    return out.reshape(len(grids), SEQ_LEN)


@register
class MazeTask(Task):
    name = "maze"
    description = "30x30 mazes, reference Maze-Hard tokens (0 pad, 1 wall, 2 open, 3 start, 4 goal, 5 path)"

    def generate(self, settings: TaskSettings, n: int, seed: int, split: str) -> TaskData:
        carved = SIZE - 1
        x, y = maze.generate(n, carved, seed, min_path=20)
        return TaskData(_padded(x, carved), _padded(y, carved), f"{n} generated 30x30 mazes, seed {seed}")

    def fits(self, input_spec: dict[str, Any], family: str | None = None) -> bool:
        return (
            self.takes(input_spec)
            and list(input_spec.get("shape", []))[1:] == [SEQ_LEN]
            and list(input_spec.get("range", [0, maze.VOCAB_SIZE - 1])) == [0, maze.VOCAB_SIZE - 1]
        )

    def parse_line(self, line: str, length: int) -> np.ndarray:
        """900 characters of '# SGo' (a maze written row after row), or 900 token ids separated by spaces."""
        text = line.rstrip("\r\n")
        if len(text) == length and set(text) <= set(maze.CHARS[1:]):
            return np.array([maze.CHARS.index(c) for c in text], dtype=np.int64)
        return super().parse_line(line, length)

    def render(self, prediction: np.ndarray) -> str:
        return "".join(maze.CHARS[int(t)] if 0 <= int(t) < len(maze.CHARS) else "?" for t in prediction.reshape(-1))
