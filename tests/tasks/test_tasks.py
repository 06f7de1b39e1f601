import numpy as np
import pytest

from edgekit.tasks import digits, maze, sudoku
from edgekit.tasks.metrics import exact_and_cell, halting_steps, step_metrics


def _digits_of(tokens):
    return [int(t) - 1 if t > 1 else 0 for t in tokens]


def test_sudoku_puzzles_have_unique_solutions_at_every_difficulty():
    pool = sudoku.SudokuPool.generate(6, seed=3)
    rng = np.random.default_rng(0)
    for givens in (0, 28, 34, 40):
        x, y = pool.sample(12, givens, rng)
        for xi, yi in zip(x, y):
            assert sudoku.count_solutions(_digits_of(xi), 2) == 1
            assert sudoku.is_valid_solution(yi, xi)
            if givens:
                assert int((xi > sudoku.BLANK).sum()) == givens
    minimal = pool.puzzles[0].tolist()
    for i in np.flatnonzero(pool.puzzles[0]):  # minimal: removing any given breaks uniqueness
        p = list(minimal)
        p[i] = 0
        assert sudoku.count_solutions(p, 2) == 2


def test_sudoku_token_encoding_is_reference():
    pool = sudoku.SudokuPool.generate(1, seed=0)
    x, y = pool.sample(1, 30, np.random.default_rng(0))
    assert set(np.unique(x)) <= set(range(1, 11)) and sudoku.BLANK in x
    assert y.min() >= 2 and y.max() <= 10
    assert np.array_equal(sudoku.parse(sudoku.render(x[0])), x[0])
    with pytest.raises(ValueError, match="81 cells"):
        sudoku.parse("123")


def test_train_and_eval_pools_differ():
    a = sudoku.SudokuPool.generate(3, seed=1000)
    b = sudoku.SudokuPool.generate(3, seed=99)
    assert not any(np.array_equal(p, q) for p in a.solutions for q in b.solutions)


def test_maze_labels_are_unique_shortest_paths():
    x, y = maze.generate(8, 11, seed=1, loops=4, min_path=6)
    for xi, yi in zip(x, y):
        assert maze.is_valid_path(yi, xi, 11)
        assert not maze.is_valid_path(xi, xi, 11)  # no path marked
        assert set(np.unique(xi)) <= {maze.WALL, maze.OPEN, maze.START, maze.GOAL}
        assert (xi == maze.START).sum() == 1 and (xi == maze.GOAL).sum() == 1


def test_digits_split_is_fixed_and_disjoint():
    xtr, _ = digits.load("train")
    xte, yte = digits.load("test")
    assert xte.shape[1] == 64 and xte.min() >= 0 and xte.max() <= 1
    assert len(xtr) + len(xte) == 1797
    assert np.array_equal(digits.load("test")[1], yte)


def test_metrics_exact_cell_and_halting():
    labels = np.array([[2, 3], [4, 5]])
    assert exact_and_cell(np.array([[2, 3], [4, 0]]), labels) == (0.5, 0.75)
    q = np.array([[-1.0, 2.0], [1.0, 3.0], [2.0, -1.0]])  # [T, B]
    assert halting_steps(q).tolist() == [2, 1]
    preds = [np.array([[2, 0], [4, 5]]), np.array([[2, 3], [4, 0]]), labels]
    m = step_metrics(preds, labels, list(q))
    assert m.exact_per_step == [0.5, 0.5, 1.0]
    assert m.exact_halted == 1.0  # sample 0 halts at step 2 (right), sample 1 at step 1 (right)
    assert m.halted_before_cap == 1.0
