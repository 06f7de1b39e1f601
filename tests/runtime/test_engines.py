"""The TensorRT engine backend's host-side logic, where TensorRT cannot be installed: the engine folder read strictly
(another artefact, another TensorRT or GPU, a changed engine: one line, exit 2), batches chunked to the profile's
maximum, every input shape checked, the Loop engine's built-in limits, the state kept on the device between steps,
and the same host loop (halting, compaction, slot refill) as onnxruntime. The engines are a stand-in
(tests/fake_tensorrt.py: the artefact's ONNX graphs run by onnxruntime behind TensorRT's API), so these tests say
nothing about TensorRT's numerics; the real engines are tested in test_tensorrt.py where TensorRT exists."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit.errors import EXIT_USAGE, InputError
from edgekit.runtime import Runner, RuntimeInputError
from edgekit.tasks import sudoku

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fake_tensorrt import install, real_cuda, write_fake_engines  # noqa: E402

GRAPHS = ["encode", "step", "readout", "loop"]


@pytest.fixture
def puzzles():
    pool = sudoku.SudokuPool.generate(40, seed=11)
    x, _ = pool.sample(40, (28, 40), np.random.default_rng(11), augment=False)
    return x


@pytest.fixture
def engines(trm_artefact, tmp_path, monkeypatch):
    trt, cudart = install(monkeypatch, profile=(1, 4, 16))
    folder = tmp_path / "engines"
    write_fake_engines(trm_artefact, folder, GRAPHS, batch=(1, 4, 16))
    return folder, trt, cudart


def _trt(artefact, folder, **kw):
    from edgekit.runtime.tensorrt_backend import TensorRTRunner

    return TensorRTRunner(artefact, engines=folder, **kw)


def test_engine_runner_answers_like_onnxruntime_with_batches_chunked_to_the_profile(trm_artefact, engines, puzzles):
    folder, trt, _ = engines
    ref = Runner(trm_artefact).solve(puzzles)
    r = _trt(trm_artefact, folder)
    assert r.max_batch == 16
    got = r.solve(puzzles)  # 40 puzzles, profile max 16: three chunks, never an engine call above 16
    assert trt.calls["encode"] == 3
    np.testing.assert_array_equal(got.steps, ref.steps)
    np.testing.assert_array_equal(got.done, ref.done)
    np.testing.assert_array_equal(got.preds, ref.preds)
    np.testing.assert_allclose(got.logits, ref.logits, rtol=1e-5, atol=1e-5)
    assert len(np.unique(ref.steps)) > 1, "halting and compaction must be exercised"


def test_engine_runner_validation_path_and_slot_refill_match_onnxruntime(trm_artefact, engines, puzzles):
    from edgekit.runtime.server import SlotScheduler

    folder, _, _ = engines
    r = _trt(trm_artefact, folder)
    ref_run, got_run = Runner(trm_artefact).run(puzzles, steps=3), r.run(puzzles, steps=3)
    for a, b in zip(ref_run.preds, got_run.preds):
        np.testing.assert_array_equal(a, b)
    ref = Runner(trm_artefact).solve(puzzles[:10])
    answers = {a.request_id: a for a in SlotScheduler(r, slots=4).run(enumerate(puzzles[:10]))}
    assert [answers[i].steps for i in range(10)] == ref.steps.tolist()
    assert all((answers[i].prediction == ref.preds[i]).all() for i in range(10))


@pytest.mark.skipif(real_cuda(), reason="counts copies in the stand-in's memory; real CUDA has no counter")
def test_state_stays_on_the_device_between_steps(trm_artefact, engines, puzzles):
    folder, _, cudart = engines
    r = _trt(trm_artefact, folder)
    x = puzzles[:8]
    r.solve(x, threshold=float("inf"), max_steps=6)  # nobody halts early: six steps, one readout
    state_bytes = sum(s.nbytes for s in r.initial_state(r.encode(r.check_inputs(x))))
    cudart.copies.update({"d2h_bytes": 0, "h2d_bytes": 0})
    r.solve(x, threshold=float("inf"), max_steps=6)
    # per step only the halting signal (8 floats) comes back; the state is read once, at the readout
    assert cudart.copies["d2h_bytes"] < 2 * state_bytes
    assert cudart.copies["h2d_bytes"] < 3 * state_bytes


def test_loop_engine_runs_at_its_built_in_limits_and_refuses_others(trm_artefact, engines, puzzles):
    folder, _, _ = engines
    r = _trt(trm_artefact, folder)
    ref = Runner(trm_artefact).solve(puzzles[:8], mode="loop")
    got = r.solve(puzzles[:8], mode="loop")
    np.testing.assert_array_equal(got.steps, ref.steps)
    np.testing.assert_array_equal(got.preds, ref.preds)
    with pytest.raises(RuntimeInputError, match="max_steps built in"):
        r.solve(puzzles[:8], mode="loop", max_steps=3)
    with pytest.raises(RuntimeInputError, match="built in"):
        r.solve(puzzles[:8], mode="loop", threshold=2.5)


def test_an_engine_call_outside_the_profile_is_one_line(trm_artefact, engines, puzzles):
    folder, _, _ = engines
    r = _trt(trm_artefact, folder)
    eng = r.engine("encode")
    with pytest.raises(RuntimeInputError, match=r"refuses input 'inputs' of shape \[20, 81\].*batch 1\.\.16"):
        eng({"inputs": eng.upload("inputs", puzzles[:20])})


def _edit(folder, change):
    path = folder / "engine_manifest.json"
    m = json.loads(path.read_text())
    change(m)
    path.write_text(json.dumps(m))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["engines"]["step"].update(onnx_sha256="0" * 64), "built from another artefact"),
        (lambda m: m.update(tensorrt_version="10.16.0"), "built with TensorRT 10.16.0, this device has 10.3.0"),
        (lambda m: m["gpu"].update(compute_capability="8.7"), "compute capability 8.7"),
        (lambda m: m["build_recipe"]["batch"].update(min=32), "1 <= min <= opt <= max"),
        (lambda m: m["engines"]["step"].update(file="../step.engine"), "plain file name"),
        (lambda m: m.update(schema_version=2), "not an edgekit engine manifest"),
        (lambda m: m["engines"].clear(), "must list the engines"),
        (lambda m: m["engines"]["step"].update(engine_bytes=True), "engine_bytes must be a size"),
        (lambda m: m["engines"]["step"].update(engine_bytes=1 << 40), "engine_bytes must be a size"),
    ],
)
def test_engine_folders_that_do_not_belong_here_are_refused(trm_artefact, engines, tmp_path, change, message):
    folder, _, _ = engines
    _edit(folder, change)
    with pytest.raises(InputError, match=message) as e:
        _trt(trm_artefact, folder)
    assert e.value.exit_code == EXIT_USAGE and "\n" not in str(e.value)


def test_an_engine_of_another_size_is_refused_before_it_is_hashed(trm_artefact, engines):
    """The engine manifest records each engine's size, so a file grown to 60 GiB (sparse: no disk, but hashing it
    would read it all) is refused by its size at once."""
    folder, _, _ = engines
    recorded = json.loads((folder / "engine_manifest.json").read_text())["engines"]["step"]["engine_bytes"]
    assert recorded == (folder / "step.engine").stat().st_size
    os.truncate(folder / "step.engine", 60 << 30)
    with pytest.raises(InputError, match=f"is 64,424,509,440 bytes, the engine manifest records {recorded:,}"):
        _trt(trm_artefact, folder)


def test_a_changed_or_linked_engine_file_is_refused(trm_artefact, engines, tmp_path):
    folder, _, _ = engines
    (folder / "step.engine").write_bytes((folder / "step.engine").read_bytes() + b"x")
    with pytest.raises(InputError, match="changed after the build"):
        _trt(trm_artefact, folder)
    outside = tmp_path / "elsewhere.engine"
    shutil.move(folder / "step.engine", outside)
    (folder / "step.engine").symlink_to(outside)
    with pytest.raises(InputError, match="not a regular file"):
        _trt(trm_artefact, folder)


@pytest.mark.skipif(real_cuda(), reason="fakes the GPU name")
def test_another_gpu_model_of_the_same_architecture_is_a_warning(trm_artefact, tmp_path, monkeypatch):
    install(monkeypatch, gpu=("Other GPU", "8.9"))
    write_fake_engines(trm_artefact, tmp_path / "e", GRAPHS)
    r = _trt(trm_artefact, tmp_path / "e")
    assert r.warnings and "rebuild here for tuned kernels" in r.warnings[0]


def test_cli_commands_run_engines(trm_artefact, engines, puzzles, tmp_path):
    from edgekit.cli import app

    folder, trt, _ = engines
    inputs = tmp_path / "x.npy"
    np.save(inputs, puzzles[:5])
    res = CliRunner().invoke(app, ["solve", str(trm_artefact), "--inputs", str(inputs), "--engines", str(folder)])
    assert res.exit_code == 0, res.output
    ref = Runner(trm_artefact).solve(puzzles[:5])
    assert [int(line.split("steps ")[1].split()[0]) for line in res.output.strip().splitlines()] == ref.steps.tolist()
    assert trt.calls["step"] > 0
    _edit(folder, lambda m: m.update(tensorrt_version="11.1.0"))
    res = CliRunner().invoke(app, ["solve", str(trm_artefact), "--inputs", str(inputs), "--engines", str(folder)])
    assert res.exit_code == EXIT_USAGE and "TensorRT 11.1.0" in res.output


def test_info_describes_an_engine_folder_and_says_when_it_does_not_belong(trm_artefact, engines):
    from edgekit.cli import app

    folder, _, _ = engines
    res = CliRunner().invoke(app, ["info", str(trm_artefact), "--engines", str(folder)])
    assert res.exit_code == 0, res.output
    assert "target rtx-40, TensorRT 10.3.0" in res.output and "batch 1/4/16" in res.output
    _edit(folder, lambda m: m["engines"]["step"].update(onnx_sha256="1" * 64))
    res = CliRunner().invoke(app, ["info", str(trm_artefact), "--engines", str(folder), "--json"])
    d = json.loads(res.output)["engines"]
    assert res.exit_code == 0 and not d["usable"] and "built from another artefact" in d["problem"]


def test_engines_on_the_base_install_without_tensorrt_is_one_line_exit_5(trm_artefact, tmp_path, root):
    """A device without TensorRT: the engine folder passes the host checks, then one line names what is missing."""
    import os
    import subprocess

    py = Path(os.environ.get("EDGEKIT_DEVICE_PYTHON") or root / ".venv-device" / "bin" / "python")
    if not py.exists():
        pytest.skip("no base-install venv (.ci/run builds it; EDGEKIT_DEVICE_PYTHON names it)")
    write_fake_engines(trm_artefact, tmp_path / "engines", GRAPHS, gpu=("Fake GPU", "8.9"))
    np.save(tmp_path / "x.npy", np.ones((2, 81), np.int64))
    cmd = [str(py.parent / "edgekit"), "solve", str(trm_artefact), "-i", str(tmp_path / "x.npy")]
    r = subprocess.run([*cmd, "--engines", str(tmp_path / "engines")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 5 and "TensorRT is not installed" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
