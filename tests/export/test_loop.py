"""The ONNX Loop form equals PyTorch per sample: same halting step, same answer, same DEQ iteration counts;
and the runtime's host loop with batch compaction gives the same answers as the Loop form."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edgekit.export.onnx_export import export_loop, export_step_graphs
from edgekit.models.checkpoint import load_model
from edgekit.tasks import sudoku
from edgekit.tasks.metrics import halting_steps


def _sudoku(n: int, givens, seed: int = 7) -> np.ndarray:
    pool = sudoku.SudokuPool.generate(n, seed=seed)
    return pool.sample(n, givens, np.random.default_rng(seed), augment=False)[0]


def _run(path, feeds):
    sess = ort.InferenceSession(str(path))
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


@pytest.fixture(scope="module", params=["trm-sudoku", "hrm-sudoku"])
def act_loop(request, root, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    m = load_model(root / "examples" / "models" / request.param, forward_dtype="float32")
    export_step_graphs(m, d)
    g = export_loop(m, d, d / "loop.onnx")
    onnx.checker.check_model(onnx.load(str(g.path)), full_check=True)
    return m, g.path


def test_act_loop_halts_like_pytorch(act_loop):
    m, path = act_loop
    x = _sudoku(24, (28, 40))
    out = _run(path, {"inputs": x})
    ref = m.rollout(torch.from_numpy(x))
    hs = halting_steps(torch.stack(ref.halt_logits).numpy())
    assert (out["steps"] == hs).all()
    assert out["done"].tolist() == (torch.stack(ref.halt_logits).numpy() > 0).any(0).tolist()
    want = torch.stack(ref.logits).numpy()[hs - 1, np.arange(len(hs))]
    assert (out["logits"].argmax(-1) == want.argmax(-1)).all()
    assert np.abs(out["logits"] - want).max() <= 1e-4 * np.abs(want).max()
    assert out["trace"].shape == (hs.max(), len(x))


@pytest.mark.parametrize("k", [1, 3])
def test_act_loop_state_matches_pytorch_at_every_step(act_loop, k):
    """No halting (threshold +inf) and a cap of k steps: the final state is PyTorch's state after k steps."""
    m, path = act_loop
    x = _sudoku(4, (28, 40))
    out = _run(path, {"inputs": x, "max_steps": np.array(k, np.int64), "halt_threshold": np.array(np.inf, np.float32)})
    ref = m.rollout(torch.from_numpy(x), steps=k, keep_states=True)
    for name, want in zip(m.state_names, ref.states[-1]):
        got, want = out[f"{name}_final"], want.numpy()
        assert np.abs(got - want).max() <= (1e-5 if k == 1 else 1e-4) * np.abs(want).max(), name
    assert (out["steps"] == k).all() and not out["done"].any()


def test_loop_exits_early_on_easy_puzzles(act_loop):
    _, path = act_loop
    easy = _run(path, {"inputs": _sudoku(16, (40, 40))})["steps"]
    hard = _run(path, {"inputs": _sudoku(16, (17, 24), seed=3)})["steps"]
    assert easy.mean() < hard.mean()


@pytest.mark.parametrize("solver", ["anderson", "fixed_point"])
def test_deq_loop_takes_the_solvers_iterations(root, tmp_path, solver):
    from edgekit.tasks import digits

    m = load_model(root / "examples" / "models" / "deq-digits")
    s = m.solver.model_copy(update={"name": solver})
    export_step_graphs(m, tmp_path)
    g = export_loop(m, tmp_path, tmp_path / "loop.onnx", solver=s)
    x = digits.load("test")[0][:64].astype(np.float32)
    out = _run(g.path, {"inputs": x})
    sol = m.solve(torch.from_numpy(x), s)
    assert (out["steps"] == sol.iterations.numpy()).all()
    assert out["done"].tolist() == sol.converged.tolist()
    answer = out["best"] if solver == "anderson" else out["z_final"]
    assert np.abs(answer - sol.z.numpy()).max() < 1e-5
    assert (out["logits"].argmax(-1) == m.head(sol.z).argmax(-1).numpy()).all()


def test_host_loop_with_compaction_equals_loop_form(trm_artefact):
    from edgekit.runtime import Runner

    r = Runner(trm_artefact)
    x = np.concatenate([_sudoku(8, (40, 40)), _sudoku(8, (17, 24), seed=3)])
    loop = r.solve(x, mode="loop")
    host = r.solve(x, mode="host")
    frozen = r.solve(x, mode="host", compact=False)
    for other in (host, frozen):
        assert (other.steps == loop.steps).all() and (other.done == loop.done).all()
        assert (other.preds == loop.preds).all()
        assert np.abs(other.logits - loop.logits).max() <= 1e-4 * np.abs(loop.logits).max()
    assert loop.steps.min() < loop.steps.max()  # some samples really left the batch early
    capped = r.solve(x, mode="host", max_steps=1)
    assert (capped.steps == 1).all()


def test_host_anderson_matches_the_pytorch_solver(root, tmp_path):
    from edgekit.pipeline import run_export
    from edgekit.runtime import Runner
    from edgekit.tasks import digits

    text = (root / "recipes" / "deq-digits.yaml").read_text()
    text = text.replace("path: ../examples/models/deq-digits", f"path: {root / 'examples/models/deq-digits'}")
    text = text.replace("n: 450", "n: 40").replace("output: ../artefacts/deq-digits", f"output: {tmp_path / 'a'}")
    (tmp_path / "r.yaml").write_text(text)
    out = run_export(tmp_path / "r.yaml", log=lambda s: None)
    assert out.exit_code == 0, out.results["gates"]
    onnx_entry = next(e for e in out.results["variants"] if e["name"] == "float32")
    assert onnx_entry["loop"]["same_iterations_as_pytorch_solver"] == 1.0
    m = load_model(root / "examples" / "models" / "deq-digits")
    x = digits.load("test")[0][:40].astype(np.float32)
    sol = m.solve(torch.from_numpy(x))
    r = Runner(out.folder)
    host, loop = r.solve(x, mode="host"), r.solve(x, mode="loop")
    assert (host.steps == sol.iterations.numpy()).all() and (loop.steps == host.steps).all()
    assert (host.preds == m.head(sol.z).argmax(-1).numpy()).all()
