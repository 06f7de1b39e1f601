"""Write a small synthetic ARC dataset in the reference ARC builders' layout, and a random-init HRM for it, so the
ARC path (puzzle identifiers, table cut, voting, pass@k, submission.json) runs end to end on a CPU:

    python examples/make_arc_dataset.py                      # examples/data/arc-demo + examples/models/arc-demo-random
    edgekit export recipes/arc-demo.yaml

Tasks are grid puzzles with one rule each (a colour map, a flip, a rotation, a transpose, recolouring, ...);
every task gets `--aug` augmented copies (a dihedral transform of a colour map with black fixed, deduplicated),
named `<task>|||t<k>|||<colour map>` as TinyRecursiveModels' builder names them, each its own puzzle identifier.
Train split: the demonstration pairs of every task (and the test pairs of the training tasks); test split: the
test pairs of the evaluation tasks, the original copy first in each task's group; identifiers.json and
test_puzzles.json as the reference writes them. Deterministic for a seed. The model is random-init (the
bundled demo models carry the accuracy results): its pass@k is ~0, and it is here for the plumbing.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from edgekit.runtime.arc import Augmentation, key, to_tokens

HERE = Path(__file__).resolve().parent
RULES = ("recolour", "fliplr", "flipud", "rot90", "transpose", "colour_map", "identity", "fill")


def _rule(name: str, rng: np.random.Generator):
    if name == "recolour":
        c = int(rng.integers(1, 10))
        return lambda g: np.where(g > 0, c, 0).astype(np.uint8)
    if name == "colour_map":
        m = np.concatenate([[0], rng.permutation(np.arange(1, 10))]).astype(np.uint8)
        return lambda g: m[g]
    if name == "fill":
        c = int(rng.integers(1, 10))
        return lambda g: np.where(g == 0, c, g).astype(np.uint8)
    ops = {"fliplr": np.fliplr, "flipud": np.flipud, "rot90": np.rot90, "transpose": np.transpose}
    return ops.get(name, lambda g: g)


def _task(rng: np.random.Generator, rule: str, tests: int) -> dict:
    f = _rule(rule, rng)
    pairs = []
    for _ in range(3 + tests):
        h, w = (int(v) for v in rng.integers(2, 9, 2))
        g = (rng.integers(0, 10, (h, w)) * (rng.random((h, w)) < 0.6)).astype(np.uint8)
        pairs.append({"input": g.tolist(), "output": np.ascontiguousarray(f(g)).tolist()})
    return {"train": pairs[:3], "test": pairs[3:]}


def _augmentations(name: str, task: dict, n: int, rng: np.random.Generator) -> list[tuple[str, Augmentation]]:
    """The original and up to n distinct augmented copies (deduplicated on all of the task's grids)."""
    grids = [np.asarray(p[k], np.uint8) for part in ("train", "test") for p in task[part] for k in ("input", "output")]
    seen, out = set(), []
    for trial in range(5 * n + 1):
        if trial == 0:
            aug = Augmentation(name)
        else:
            mapping = tuple(int(v) for v in np.concatenate([[0], rng.permutation(np.arange(1, 10))]))
            aug = Augmentation(name, int(rng.integers(0, 8)), mapping)
        h = b"".join(key(aug.apply(g)) for g in grids)
        if h in seen:
            continue
        seen.add(h)
        label = name if trial == 0 else f"{name}|||t{aug.transform}|||{''.join(map(str, aug.mapping))}"
        out.append((label, aug))
        if len(out) == n + 1:
            break
    return out


def write(root: Path, tasks: int = 12, eval_tasks: int = 6, aug: int = 8, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    all_tasks = {f"{i:03d}{r[:5]}": _task(rng, r, 1 + int(i % 3 == 0)) for i, r in enumerate(RULES * 4) if i < tasks}
    names = list(all_tasks)
    evaluation = set(names[-eval_tasks:])
    ids: dict[str, int] = {}
    splits: dict[str, list[list[tuple[int, list[dict]]]]] = {"train": [], "test": []}
    for name in names:
        t = all_tasks[name]
        copies = _augmentations(name, t, aug, rng)
        for label, _ in copies:
            ids.setdefault(label, len(ids) + 1)
        train_pairs = t["train"] + ([] if name in evaluation else t["test"])
        splits["train"].append([(ids[lab], [_pair(p, a) for p in train_pairs]) for lab, a in copies])
        if name in evaluation:
            splits["test"].append([(ids[lab], [_pair(p, a) for p in t["test"]]) for lab, a in copies])
    if root.exists():
        shutil.rmtree(root)
    for split, groups in splits.items():
        _write_split(root / split, groups, len(ids) + 1)
    (root / "identifiers.json").write_text(json.dumps(["<blank>"] + list(ids)))
    (root / "test_puzzles.json").write_text(json.dumps({n: all_tasks[n] for n in names if n in evaluation}))
    return {"identifiers": len(ids) + 1, "tasks": len(names), "evaluation_tasks": len(evaluation)}


def _pair(p: dict, aug: Augmentation) -> tuple[np.ndarray, np.ndarray]:
    return to_tokens(aug.apply(np.asarray(p["input"], np.uint8))), to_tokens(
        aug.apply(np.asarray(p["output"], np.uint8))
    )


def _write_split(folder: Path, groups: list[list[tuple[int, list]]], num_ids: int) -> None:
    folder.mkdir(parents=True)
    x, y, pid, pidx, gidx = [], [], [], [0], [0]
    for group in groups:
        for ident, examples in group:
            for inp, out in examples:
                x.append(inp)
                y.append(out)
            pid.append(ident)
            pidx.append(len(x))
        gidx.append(len(pid))
    np.save(folder / "all__inputs.npy", np.stack(x).astype(np.uint8))
    np.save(folder / "all__labels.npy", np.stack(y).astype(np.uint8))
    np.save(folder / "all__puzzle_identifiers.npy", np.array(pid, np.int32))
    np.save(folder / "all__puzzle_indices.npy", np.array(pidx, np.int32))
    np.save(folder / "all__group_indices.npy", np.array(gidx, np.int32))
    info = {
        "pad_id": 0,
        "ignore_label_id": 0,
        "blank_identifier_id": 0,
        "vocab_size": 12,
        "seq_len": 900,
        "num_puzzle_identifiers": num_ids,
        "total_groups": len(groups),
        "mean_puzzle_examples": len(x) / len(pid),
        "total_puzzles": len(pid),
        "sets": ["all"],
    }
    (folder / "dataset.json").write_text(json.dumps(info))


def write_model(folder: Path, num_ids: int, seed: int = 0) -> Path:
    """A random-init HRM for 30 x 30 ARC grids, small enough for CPU tests (hidden 64, one layer per level)."""
    import torch

    from edgekit.models.act import build_act_model
    from edgekit.models.checkpoint import save_act
    from edgekit.models.config import ACTConfig

    torch.manual_seed(seed)
    cfg = ACTConfig(
        family="hrm", seq_len=900, vocab_size=12, num_puzzle_identifiers=num_ids, puzzle_emb_ndim=64,
        H_cycles=1, L_cycles=1, H_layers=1, L_layers=1, hidden_size=64, expansion=2, num_heads=2,
        halt_max_steps=4, forward_dtype="float32",
    )  # fmt: skip
    m = build_act_model(cfg)
    with torch.no_grad():
        m.puzzle_emb.weights.normal_(std=1.0)
        m.q_head.weight.normal_(std=0.5)
        m.q_head.bias.zero_()
    if folder.exists():
        shutil.rmtree(folder)
    return save_act(m, folder, {"note": "random init (examples/make_arc_dataset.py): plumbing, not accuracy"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "data" / "arc-demo")
    ap.add_argument("--model", type=Path, default=HERE / "models" / "arc-demo-random")
    ap.add_argument("--tasks", type=int, default=12)
    ap.add_argument("--eval-tasks", type=int, default=6)
    ap.add_argument("--aug", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    info = write(a.out, a.tasks, a.eval_tasks, a.aug, a.seed)
    write_model(a.model, info["identifiers"], a.seed)
    print(f"wrote {a.out} ({info}) and {a.model}")


if __name__ == "__main__":
    main()
