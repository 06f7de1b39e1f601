"""Maze: generated grids with shortest-path labels, in the reference Maze-Hard encoding.

Tokens (reference charset "# SGo"): 0 pad, 1 wall '#', 2 open ' ', 3 start 'S', 4 goal 'G', 5 path 'o'.
Inputs hold walls, open cells, S and G; labels are the same grid with the cells of one shortest S->G path
marked 'o'. Mazes are carved by a randomised depth-first search (a perfect maze, so the shortest path is
unique), then `loops` extra walls are knocked out; with loops the path is made unique by rejecting grids
with more than one shortest path.
"""

from __future__ import annotations

from collections import deque

import numpy as np

PAD, WALL, OPEN, START, GOAL, PATH = 0, 1, 2, 3, 4, 5
VOCAB_SIZE = 6
CHARS = "?# SGo"


def carve(size: int, rng: np.random.Generator, loops: int = 0) -> np.ndarray:
    """A size x size grid (size odd) of WALL/OPEN cells carved by randomised DFS."""
    if size < 5 or size % 2 == 0:
        raise ValueError(f"maze size must be odd and >= 5, got {size}")
    g = np.full((size, size), WALL, dtype=np.int64)
    stack = [(1, 1)]
    g[1, 1] = OPEN
    while stack:
        r, c = stack[-1]
        nbrs = [
            (r + dr, c + dc, r + dr // 2, c + dc // 2)
            for dr, dc in ((2, 0), (-2, 0), (0, 2), (0, -2))
            if 0 < r + dr < size - 1 and 0 < c + dc < size - 1 and g[r + dr, c + dc] == WALL
        ]
        if not nbrs:
            stack.pop()
            continue
        nr, nc, wr, wc = nbrs[rng.integers(len(nbrs))]
        g[wr, wc] = OPEN
        g[nr, nc] = OPEN
        stack.append((nr, nc))
    walls = [(r, c) for r in range(1, size - 1) for c in range(1, size - 1) if g[r, c] == WALL and (r + c) % 2 == 1]
    for k in rng.permutation(len(walls))[:loops]:
        g[walls[k]] = OPEN
    return g


def shortest_paths(
    g: np.ndarray, start: tuple[int, int], goal: tuple[int, int]
) -> tuple[list[tuple[int, int]] | None, int]:
    """(one shortest path, number of shortest paths capped at 2) by BFS over non-wall cells."""
    h, w = g.shape
    dist = -np.ones((h, w), dtype=np.int64)
    count = np.zeros((h, w), dtype=np.int64)
    prev: dict[tuple[int, int], tuple[int, int]] = {}
    dist[start] = 0
    count[start] = 1
    q = deque([start])
    while q:
        r, c = q.popleft()
        for nr, nc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if 0 <= nr < h and 0 <= nc < w and g[nr, nc] != WALL:
                if dist[nr, nc] < 0:
                    dist[nr, nc] = dist[r, c] + 1
                    count[nr, nc] = count[r, c]
                    prev[(nr, nc)] = (r, c)
                    q.append((nr, nc))
                elif dist[nr, nc] == dist[r, c] + 1:
                    count[nr, nc] = min(2, count[nr, nc] + count[r, c])
    if dist[goal] < 0:
        return None, 0
    path = [goal]
    while path[-1] != start:
        path.append(prev[path[-1]])
    return path[::-1], int(count[goal])


def _cell(rc: np.ndarray) -> tuple[int, int]:
    """A (row, col) grid index as plain ints."""
    return int(rc[0]), int(rc[1])


def generate(n: int, size: int, seed: int, loops: int = 0, min_path: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n (inputs, labels) pairs of flattened size*size token grids with a unique shortest path >= min_path cells."""
    rng = np.random.default_rng(seed)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    tries = 0
    while len(xs) < n:
        tries += 1
        if tries > 50 * n + 100:
            raise ValueError(
                f"could not generate {n} mazes with a unique path of >= {min_path} cells; lower min_path or loops"
            )
        g = carve(size, rng, loops)
        cells = np.argwhere(g == OPEN)
        s, t = (_cell(cells[i]) for i in rng.choice(len(cells), 2, replace=False))
        path, count = shortest_paths(g, s, t)
        if path is None or count != 1 or len(path) < min_path:
            continue
        x = g.copy()
        x[s], x[t] = START, GOAL
        y = x.copy()
        for cell in path[1:-1]:
            y[cell] = PATH
        xs.append(x.reshape(-1))
        ys.append(y.reshape(-1))
    return np.stack(xs), np.stack(ys)


def is_valid_path(pred: np.ndarray, inputs: np.ndarray, size: int) -> bool:
    """True when `pred` marks a connected S->G path through open cells as short as the true shortest path."""
    g = inputs.reshape(size, size)
    p = pred.reshape(size, size)
    if np.any((g == WALL) != (p == WALL)):
        return False
    s = _cell(np.argwhere(g == START)[0])
    t = _cell(np.argwhere(g == GOAL)[0])
    true_path, _ = shortest_paths(g, s, t)
    if true_path is None:  # no S->G path in the input: no prediction can be a valid one
        return False
    marked = np.where(p == PATH, OPEN, WALL)
    marked[s], marked[t] = OPEN, OPEN
    mine, _ = shortest_paths(marked, s, t)
    return mine is not None and len(mine) == len(true_path) and int((p == PATH).sum()) == len(true_path) - 2


def render(tokens: np.ndarray, size: int) -> str:
    return "\n".join("".join(CHARS[int(v)] for v in tokens.reshape(size, size)[r]) for r in range(size))
