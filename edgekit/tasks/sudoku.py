"""Sudoku 9x9 with unique solutions, in the reference token encoding (0 pad, 1 blank, 2-10 digits 1-9).

Generation: a random full grid, then cells are removed in random order while the solution stays unique, giving
a *minimal* puzzle (~22-26 givens). A puzzle with more givens is made by revealing solution cells of a minimal
puzzle, which keeps the solution unique. Sudoku symmetries (digit relabelling, transpose, band/stack and
row/column-within-band permutations) also keep uniqueness, so a small pool of minimal puzzles yields an endless
stream of distinct training puzzles at any difficulty.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

SEQ_LEN = 81
VOCAB_SIZE = 11
BLANK = 1

_ALL = 0x3FE  # bits 1..9
_PEERS: list[tuple[int, ...]] = []
_UNITS: list[tuple[int, ...]] = []
for _c in range(81):
    r, c = divmod(_c, 9)
    br, bc = 3 * (r // 3), 3 * (c // 3)
    peers = (
        {r * 9 + j for j in range(9)}
        | {i * 9 + c for i in range(9)}
        | {(br + i) * 9 + bc + j for i in range(3) for j in range(3)}
    )
    peers.discard(_c)
    _PEERS.append(tuple(sorted(peers)))
for _i in range(9):
    _UNITS.append(tuple(_i * 9 + j for j in range(9)))
    _UNITS.append(tuple(j * 9 + _i for j in range(9)))
    _UNITS.append(tuple((3 * (_i // 3) + a) * 9 + 3 * (_i % 3) + b for a in range(3) for b in range(3)))
_BITCOUNT = [bin(i).count("1") for i in range(1 << 10)]
_BITDIGITS = [[d for d in range(1, 10) if i >> d & 1] for i in range(1 << 10)]


def _candidates(grid: list[int]) -> list[int] | None:
    """Candidate bitmasks per cell (0 for filled cells); None if a given contradicts another."""
    cand = [0] * 81
    for i in range(81):
        if grid[i] == 0:
            used = 0
            for p in _PEERS[i]:
                if grid[p]:
                    used |= 1 << grid[p]
            cand[i] = _ALL & ~used
            if cand[i] == 0:
                return None
        else:
            for p in _PEERS[i]:
                if grid[p] == grid[i]:
                    return None
    return cand


def count_solutions(grid: list[int], limit: int = 2, rng: random.Random | None = None, out: list | None = None) -> int:
    """Count solutions of a digit grid (0 = empty) up to `limit`, with naked/hidden-single propagation and MRV
    branching. Fills `out` with the first solution found. `rng` randomises branch order (for grid generation)."""
    g = list(grid)
    cand = _candidates(g)
    if cand is None:
        return 0
    return _search(g, cand, limit, rng, out)


def _assign(g: list[int], cand: list[int], i: int, d: int, trail: list) -> bool:
    g[i] = d
    cand[i] = 0
    bit = 1 << d
    for p in _PEERS[i]:
        if g[p] == 0 and cand[p] & bit:
            cand[p] &= ~bit
            if cand[p] == 0:
                return False
    trail.append(i)
    return True


def _propagate(g: list[int], cand: list[int]) -> bool:
    changed = True
    while changed:
        changed = False
        for i in range(81):
            if g[i] == 0 and _BITCOUNT[cand[i]] == 1:
                if not _assign(g, cand, i, _BITDIGITS[cand[i]][0], []):
                    return False
                changed = True
        for unit in _UNITS:
            for d in range(1, 10):
                bit = 1 << d
                where = -1
                n = 0
                for i in unit:
                    if g[i] == d:
                        n = -1
                        break
                    if g[i] == 0 and cand[i] & bit:
                        n += 1
                        where = i
                if n == 0:
                    return False
                if n == 1:
                    if not _assign(g, cand, where, d, []):
                        return False
                    changed = True
    return True


def _search(g: list[int], cand: list[int], limit: int, rng: random.Random | None, out: list | None) -> int:
    if not _propagate(g, cand):
        return 0
    best, best_n = -1, 10
    for i in range(81):
        if g[i] == 0:
            n = _BITCOUNT[cand[i]]
            if n < best_n:
                best, best_n = i, n
                if n == 2:
                    break
    if best < 0:
        if out is not None and not out:
            out.extend(g)
        return 1
    digits = list(_BITDIGITS[cand[best]])
    if rng is not None:
        rng.shuffle(digits)
    total = 0
    for d in digits:
        g2, c2 = list(g), list(cand)
        if _assign(g2, c2, best, d, []):
            total += _search(g2, c2, limit - total, rng, out)
            if total >= limit:
                return total
    return total


def random_solution(rng: random.Random) -> list[int]:
    out: list[int] = []
    count_solutions([0] * 81, limit=1, rng=rng, out=out)
    return out


def minimal_puzzle(rng: random.Random) -> tuple[list[int], list[int]]:
    """(puzzle, solution) as digit lists, where no given can be removed without losing uniqueness."""
    solution = random_solution(rng)
    puzzle = list(solution)
    order = list(range(81))
    rng.shuffle(order)
    for i in order:
        keep = puzzle[i]
        puzzle[i] = 0
        if count_solutions(puzzle, 2) != 1:
            puzzle[i] = keep
    return puzzle, solution


def _symmetry(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random validity-preserving cell permutation and digit relabelling."""
    bands = rng.permutation(3)
    rows = np.concatenate([3 * b + rng.permutation(3) for b in bands])
    stacks = rng.permutation(3)
    cols = np.concatenate([3 * s + rng.permutation(3) for s in stacks])
    idx = rows[:, None] * 9 + cols[None, :]
    if rng.random() < 0.5:
        idx = idx.T
    digits = np.concatenate([[0], rng.permutation(9) + 1])
    return idx.reshape(-1), digits


@dataclass
class SudokuPool:
    """Minimal puzzles and their solutions as [N, 81] digit arrays (0 = empty)."""

    puzzles: np.ndarray
    solutions: np.ndarray

    @classmethod
    def generate(cls, n: int, seed: int) -> SudokuPool:
        from .. import progress

        rng = random.Random(seed)
        pairs = []
        with progress.task("generating minimal Sudoku puzzles", n) as bar:
            for _ in range(n):
                pairs.append(minimal_puzzle(rng))
                bar.advance()
        return cls(np.array([p for p, _ in pairs], dtype=np.int8), np.array([s for _, s in pairs], dtype=np.int8))

    def sample(
        self, n: int, givens: int | tuple[int, int], rng: np.random.Generator, augment: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """n puzzles with the given number of givens (or a range, inclusive) as (inputs, labels) token arrays.
        A requested count below a puzzle's minimal count yields the minimal puzzle itself."""
        lo, hi = (givens, givens) if isinstance(givens, int) else givens
        inputs = np.empty((n, SEQ_LEN), dtype=np.int64)
        labels = np.empty((n, SEQ_LEN), dtype=np.int64)
        for k in range(n):
            j = rng.integers(len(self.puzzles))
            puz, sol = self.puzzles[j].astype(np.int64), self.solutions[j].astype(np.int64)
            target = int(rng.integers(lo, hi + 1))
            blanks = np.flatnonzero(puz == 0)
            reveal = max(0, target - (81 - len(blanks)))
            if reveal:
                puz = puz.copy()
                chosen = rng.choice(blanks, size=min(reveal, len(blanks)), replace=False)
                puz[chosen] = sol[chosen]
            if augment:
                perm, digits = _symmetry(rng)
                puz, sol = digits[puz[perm]], digits[sol[perm]]
            inputs[k] = puz + 1
            labels[k] = sol + 1
        return inputs, labels


def is_valid_solution(tokens: np.ndarray, puzzle_tokens: np.ndarray) -> bool:
    """True when `tokens` is a full valid grid that keeps every given of the puzzle."""
    d = tokens.reshape(9, 9) - 1
    if d.min() < 1 or d.max() > 9:
        return False
    for unit in _UNITS:
        if len(set(d.reshape(-1)[list(unit)].tolist())) != 9:
            return False
    given = puzzle_tokens > BLANK
    return bool(np.all(tokens[given] == puzzle_tokens[given]))


def render(tokens: np.ndarray) -> str:
    """A puzzle or answer as 9 lines of digits with '.' for blanks."""
    chars = ["?", "."] + [str(d) for d in range(1, 10)]
    rows = ["".join(chars[int(t)] for t in tokens[r * 9 : (r + 1) * 9]) for r in range(9)]
    return "\n".join(rows)


def parse(text: str) -> np.ndarray:
    """Parse 81 cells ('1'-'9' digits, '.' or '0' blanks; whitespace ignored) into tokens; clear error otherwise."""
    cells = [ch for ch in text if not ch.isspace()]
    if len(cells) != 81:
        raise ValueError(f"a Sudoku needs 81 cells, got {len(cells)}: write 81 characters of 1-9 and '.' for blanks")
    out = np.empty(81, dtype=np.int64)
    for i, ch in enumerate(cells):
        if ch in ".0":
            out[i] = BLANK
        elif ch in "123456789":
            out[i] = int(ch) + 1
        else:
            raise ValueError(f"cell {i} is {ch!r}: use digits 1-9 and '.' or '0' for blanks")
    return out
