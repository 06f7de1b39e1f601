"""The bundled demo models are really trained, small, and recursion and halting matter in them."""

import json

import numpy as np
import pytest

from edgekit.models.checkpoint import load_model
from edgekit.tasks import digits, sudoku
from edgekit.tasks.evaluate import evaluate


@pytest.fixture(scope="module")
def puzzles():
    pool = sudoku.SudokuPool.generate(48, seed=4242)
    rng = np.random.default_rng(4242)
    return {"34-40": pool.sample(48, (34, 40), rng, augment=False), "28": pool.sample(48, 28, rng, augment=False)}


@pytest.mark.parametrize("name", ["trm-sudoku", "hrm-sudoku", "deq-digits"])
def test_demo_files_are_small_and_documented(root, name):
    folder = root / "examples" / "models" / name
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size <= 5 * 1024 * 1024
    meta = json.loads((folder / "training.json").read_text())
    assert meta["training"]["command"].startswith("python examples/train_")


# The demos were trained in bfloat16; they are evaluated here in float32, which gives the same answers on these
# puzzles (test_bf16_and_fp32_demo_agree) and is 15x faster on CPUs without AVX512-BF16 (CI machines vary).
def test_bf16_and_fp32_demo_agree(root, puzzles):
    x, y = puzzles["34-40"]
    bf = evaluate(load_model(root / "examples" / "models" / "trm-sudoku"), x[:4], y[:4]).summary()
    fp = evaluate(load_model(root / "examples" / "models" / "trm-sudoku", forward_dtype="float32"), x[:4], y[:4])
    assert abs(bf["exact_full"] - fp.summary()["exact_full"]) <= 1 / 4 + 1e-9


def test_trm_demo_recursion_and_halting_matter(root, puzzles):
    m = load_model(root / "examples" / "models" / "trm-sudoku", forward_dtype="float32")
    assert m.family == "trm" and m.config.mlp_t
    x, y = puzzles["34-40"]
    s = evaluate(m, x, y).summary()
    assert s["exact_full"] >= 0.9
    assert s["exact_full"] >= s["exact_1"]
    assert s["halted_before_cap"] >= 0.5  # the halting head halts a real share early
    x, y = puzzles["28"]
    s = evaluate(m, x, y).summary()
    assert s["exact_full"] >= s["exact_1"] + 0.3  # recursion matters on harder puzzles


def test_hrm_demo_recursion_and_halting_matter(root, puzzles):
    m = load_model(root / "examples" / "models" / "hrm-sudoku", forward_dtype="float32")
    assert m.family == "hrm" and m.prefix_len == 1
    x, y = puzzles["34-40"]
    s = evaluate(m, x, y).summary()
    assert s["exact_full"] >= 0.75
    assert s["exact_full"] >= s["exact_1"] + 0.5  # one ACT step solves almost nothing
    assert s["halted_before_cap"] >= 0.3


def test_deq_demo_converges_and_classifies(root):
    m = load_model(root / "examples" / "models" / "deq-digits")
    import torch

    x, y = digits.load("test")
    sol = m.solve(torch.from_numpy(x))
    assert sol.converged.float().mean() == 1.0
    acc = float((m.head(sol.z).argmax(-1).numpy() == y).mean())
    assert acc >= 0.95
    one = float(
        (
            m.head(m.step(m.initial_state(m.encode(torch.from_numpy(x))), m.encode(torch.from_numpy(x)))[0])
            .argmax(-1)
            .numpy()
            == y
        ).mean()
    )
    assert acc > one
