"""ARC-AGI grids on the device: the reference token layout, its augmentations and their inverses, and the vote.

Facts (read from sapientinc/HRM and SamsungSAILMontreal/TinyRecursiveModels `dataset/build_arc_dataset.py`,
`dataset/common.py`, TRM `evaluators/arc.py`, HRM `arc_eval.ipynb`):
- tokens: PAD 0, EOS 1, colour c -> c + 2, grid at the top-left of 30 x 30, EOS on the row below the grid (under
  its columns) and the column right of it (beside its rows), row-major; the test split is never translated;
- an augmented puzzle is named `<task>|||t<k>|||<10 digits>` (TRM) or `<task>_t<k>_<10 digits>` (HRM): dihedral
  transform k (0 identity, 1-3 rot90 k times, 4 fliplr, 5 flipud, 6 transpose, 7 anti-transpose) of the colour
  map `mapping[grid]` (digit i of the name is mapping[i]); undone as `argsort(mapping)[inverse_dihedral(grid)]`;
- a prediction is the largest all-colour rectangle anchored at (0, 0); candidates per (task, test input) are ranked
  by (votes, mean sigmoid of the halting logit), most votes first.
Numpy only: `Runner.solve_arc` and the validation stage both use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

SIZE = 30
PAD, EOS, OFFSET = 0, 1, 2
SEQ = SIZE * SIZE
INVERSE = (0, 3, 2, 1, 4, 5, 6, 7)
_TRM = re.compile(r"^(?P<task>.+?)\|\|\|t(?P<t>\d+)\|\|\|(?P<perm>\d+)$")
_HRM = re.compile(r"^(?P<task>[^_]+)_t(?P<t>\d+)_(?P<perm>\d+)$")
IDENTITY = np.arange(10, dtype=np.uint8)


class ARCError(ValueError):
    """A grid or augmentation name that is not ARC's."""


def check_grid(grid: object, what: str = "grid") -> np.ndarray:
    """A 2-D grid of colours 0-9 of at most 30 x 30, as uint8."""
    try:
        a = np.asarray(grid)
    except (ValueError, TypeError):
        raise ARCError(f"{what} is not a rectangular array of colours") from None
    if a.ndim != 2 or not (1 <= a.shape[0] <= SIZE and 1 <= a.shape[1] <= SIZE):
        raise ARCError(f"{what} has shape {list(a.shape)}; ARC grids are 1x1 to 30x30")
    if a.dtype == bool or a.dtype.kind not in "iu" or a.min() < 0 or a.max() > 9:
        raise ARCError(f"{what} holds values outside the colours 0-9")
    return a.astype(np.uint8)


def to_tokens(grid: np.ndarray) -> np.ndarray:
    """The reference's untranslated sequence of a grid: 900 tokens with the EOS border."""
    g = check_grid(grid)
    h, w = g.shape
    out = np.zeros((SIZE, SIZE), np.uint8)
    out[:h, :w] = g + OFFSET
    if h < SIZE:
        out[h, :w] = EOS
    if w < SIZE:
        out[:h, w] = EOS
    return out.reshape(-1)


def crop_sizes(tokens: np.ndarray) -> np.ndarray:
    """(rows, columns) [N, 2] of the largest rectangle of colour tokens anchored at (0, 0) in each of N sequences,
    as the reference crops: rows scanned top-down, the width only shrinks (to the first non-colour token of each
    row), the first largest area wins (equal areas keep the fewest rows), no area at all is an empty grid."""
    g = np.asarray(tokens).reshape(-1, SIZE, SIZE)
    valid = (g >= OFFSET) & (g <= OFFSET + 9)
    prefix = np.where(valid.all(-1), SIZE, valid.argmin(-1))  # colour prefix of each row
    width = np.minimum.accumulate(prefix, axis=1)
    area = width * np.arange(1, SIZE + 1)
    rows = area.argmax(1)
    idx = np.arange(len(g))
    found = area[idx, rows] > 0
    return np.stack([np.where(found, rows + 1, 0), np.where(found, width[idx, rows], 0)], 1)


def crops(tokens: np.ndarray) -> list[np.ndarray]:
    """The cropped grid (colours) of each of N token sequences."""
    g = np.asarray(tokens).reshape(-1, SIZE, SIZE)
    return [
        (g[i, :h, :w].astype(np.int64) - OFFSET).astype(np.uint8) for i, (h, w) in enumerate(crop_sizes(g).tolist())
    ]


def crop(tokens: np.ndarray) -> np.ndarray:
    """The cropped grid of one token sequence (see crop_sizes)."""
    return crops(tokens)[0]


def dihedral(a: np.ndarray, t: int) -> np.ndarray:
    ops = (
        lambda x: x,
        lambda x: np.rot90(x, 1),
        lambda x: np.rot90(x, 2),
        lambda x: np.rot90(x, 3),
        np.fliplr,
        np.flipud,
        lambda x: x.T,
        lambda x: np.fliplr(np.rot90(x, 1)),
    )
    return np.ascontiguousarray(ops[t](a))


@dataclass(frozen=True)
class Augmentation:
    """How an augmented puzzle was made from its task: colour map, then dihedral transform."""

    task: str
    transform: int = 0
    mapping: tuple[int, ...] = tuple(range(10))

    def apply(self, grid: np.ndarray) -> np.ndarray:
        return dihedral(np.asarray(self.mapping, np.uint8)[check_grid(grid)], self.transform)

    def undo(self, grid: np.ndarray) -> np.ndarray:
        inv = np.argsort(np.asarray(self.mapping)).astype(np.uint8)
        out: np.ndarray = inv[dihedral(np.asarray(grid, np.uint8), INVERSE[self.transform])]
        return out


def parse_name(name: str) -> Augmentation:
    """An identifier name -> its task and augmentation; a bare task name is the identity. ARCError when the name
    looks augmented but its transform or colour map cannot be inverted."""
    m = _TRM.match(name) or _HRM.match(name)
    if m is None:
        if "|||" in name:
            raise ARCError(f"puzzle name {name[:60]!r} is not <task>|||t<0-7>|||<10-digit colour map>")
        return Augmentation(name)
    t, perm = int(m["t"]), m["perm"]
    if t > 7 or len(perm) != 10 or sorted(perm) != list("0123456789"):
        raise ARCError(
            f"puzzle name {name[:60]!r}: transform t{t} / colour map {perm[:12]!r} is not a dihedral transform "
            "0-7 and a permutation of the digits 0-9"
        )
    return Augmentation(m["task"], t, tuple(int(c) for c in perm))


def key(grid: np.ndarray) -> bytes:
    """Identity of a grid for voting: its shape and colours."""
    g = np.asarray(grid, np.uint8)
    return bytes(g.shape) + g.tobytes()


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


@dataclass
class Candidate:
    grid: np.ndarray
    votes: int = 0
    q_sum: float = 0.0

    @property
    def mean_q(self) -> float:
        return self.q_sum / max(self.votes, 1)


@dataclass
class TestInput:
    """One test input of a task (in the original frame) and the ranked answers the augmented copies voted for."""

    task: str
    grid: np.ndarray
    candidates: dict[bytes, Candidate] = field(default_factory=dict)
    truth: np.ndarray | None = None

    def add(self, answer: np.ndarray, q: float) -> None:
        c = self.candidates.setdefault(key(answer), Candidate(answer))
        c.votes += 1
        c.q_sum += float(q)

    def ranked(self) -> list[Candidate]:
        """Most votes first, ties by higher mean sigmoid(halt); equal on both: first seen first (stable sort)."""
        return sorted(self.candidates.values(), key=lambda c: (c.votes, c.mean_q), reverse=True)

    def top(self, k: int) -> list[np.ndarray]:
        return [c.grid for c in self.ranked()[:k]]

    def solved(self, k: int) -> bool:
        return self.truth is not None and any(key(g) == key(self.truth) for g in self.top(k))


Prepared = list[tuple[np.ndarray, np.ndarray | None]]


def prepare(inputs: np.ndarray, augmentations: list[Augmentation], labels: np.ndarray | None = None) -> Prepared:
    """Per example, its test input in the original frame and (with `labels`, token sequences) its true output:
    what every vote over the same examples shares, computed once."""
    ins = crops(inputs)
    outs = crops(np.where(np.asarray(labels) < 0, PAD, labels)) if labels is not None else None
    return [(a.undo(ins[i]), None if outs is None else a.undo(outs[i])) for i, a in enumerate(augmentations)]


def vote(
    inputs: np.ndarray,
    preds: np.ndarray,
    halt: np.ndarray,
    augmentations: list[Augmentation],
    labels: np.ndarray | None = None,
    prepared: Prepared | None = None,
) -> dict[str, list[TestInput]]:
    """Per task, its test inputs (in first-seen order) with the answers of every augmented copy undone and voted;
    `labels` (token sequences) give each test input's true output; `prepared` (from `prepare`) replaces both
    when several votes run over the same examples."""
    if prepared is None:
        prepared = prepare(inputs, augmentations, labels)
    tasks: dict[str, dict[bytes, TestInput]] = {}
    q = sigmoid(halt)
    for i, (aug, answer, (original, truth)) in enumerate(zip(augmentations, crops(preds), prepared)):
        ti = tasks.setdefault(aug.task, {}).setdefault(key(original), TestInput(aug.task, original))
        ti.add(aug.undo(answer), q[i])
        if truth is not None and ti.truth is None:
            ti.truth = truth
    return {t: list(v.values()) for t, v in tasks.items()}


def pass_at(tasks: dict[str, list[TestInput]], k: int) -> dict[str, float]:
    """pass@k two ways: `fractional` (TRM evaluators/arc.py: per test input, averaged within a task, then over
    tasks) and `all_inputs` (HRM arc_eval.ipynb: a task counts when every test input is solved)."""
    if not tasks:
        return {"fractional": 0.0, "all_inputs": 0.0}
    frac = [np.mean([ti.solved(k) for ti in tis]) for tis in tasks.values()]
    full = [all(ti.solved(k) for ti in tis) for tis in tasks.values()]
    return {"fractional": float(np.mean(frac)), "all_inputs": float(np.mean(full))}


def submission(tasks: dict[str, list[TestInput]], attempts: int = 2) -> dict[str, list[dict[str, list[list[int]]]]]:
    """Kaggle-style answers, as TRM writes submission.json: per task one {attempt_1, attempt_2} per test input;
    fewer candidates than attempts repeat the first."""
    out: dict[str, list[dict[str, list[list[int]]]]] = {}
    for task, tis in tasks.items():
        rows = []
        for ti in tis:
            top = ti.top(attempts)
            top += [top[0]] * (attempts - len(top))
            rows.append({f"attempt_{j + 1}": g.astype(int).tolist() for j, g in enumerate(top)})
        out[task] = rows
    return out
