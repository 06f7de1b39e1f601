"""Validation at scale (edgekit/scale): the shard plan, executors that change where a batch runs and never what is
in it (results.json identical to the serial run), resumable per-shard records, a real two-node Ray cluster on this
machine, and the bad inputs (one line, exit 2)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from import_blocker import blocker

from edgekit.scale import ScaleError, plan_shards
from edgekit.scale.plan import SHARD_BATCHES

EDGEKIT = [sys.executable, "-m", "edgekit.cli"]
VOLATILE = {"seconds", "scale", "environment", "rollout_from_cache", "from_cache"}  # where and how long, not what


def numbers(doc):
    """results.json without what may differ between executors: timings, the executor record, cache flags."""
    if isinstance(doc, dict):
        return {k: numbers(v) for k, v in doc.items() if k not in VOLATILE}
    if isinstance(doc, list):
        return [numbers(v) for v in doc]
    return doc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def has_ray() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


needs_ray = pytest.mark.skipif(not has_ray(), reason='Ray is not installed (pip install "edgekit[scale]")')


@pytest.fixture
def no_ray_left():
    """A test that connects this process to Ray disconnects it after (the next test may want another cluster)."""
    yield
    if has_ray():
        import ray

        if ray.is_initialized():
            ray.shutdown()


# -- the plan ---------------------------------------------------------------------------------------------------------
def test_plan_covers_every_example_once_in_batches_a_single_loop_would_make():
    shards = plan_shards(70, 4)
    assert [s.start for s in shards] == list(range(0, 70, 4 * SHARD_BATCHES)) and shards[-1].stop == 70
    starts = [s.start + a for s in shards for a, _ in s.batches(4)]
    assert starts == list(range(0, 70, 4))  # the serial loop's batches, unchanged
    assert plan_shards(0, 4) == []


def test_plan_keeps_each_group_in_one_shard():
    groups = ["a"] * 5 + ["b"] * 5 + ["c"] * 3 + ["d"] * 9
    shards = plan_shards(len(groups), 2, groups)
    for s in shards:
        inside = set(groups[s.start : s.stop])
        for g in inside:  # every copy of a task is in this shard
            assert groups.index(g) >= s.start and len(groups) - groups[::-1].index(g) <= s.stop
    assert sum(s.size for s in shards) == len(groups)


def test_report_line_says_where_the_rollouts_ran():
    from edgekit.scale.settings import ScaleRun, ScaleSettings, report_lines

    run = ScaleRun(ScaleSettings("ray", 4), "cuda", "cuda (NVIDIA H200)", workers=4, threads=1)
    (line,) = report_lines(run.record())
    assert line.startswith("Rollouts computed by the ray executor (4 workers × 1 thread); PyTorch references on cuda")
    assert "TF32 off" in line and "not comparable bit for bit" in line
    assert report_lines(None) == [] and report_lines({"x": 1}) == []  # results.json of an older edgekit


# -- bad input: one line, exit 2 --------------------------------------------------------------------------------------
RAY_BLOCKER = (
    blocker("ray")
    + """
import runpy
runpy.run_module("edgekit.cli", run_name="__main__")
"""
)


def _cli(*args, env=None, timeout=300):
    return subprocess.run(
        [*EDGEKIT, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def _one_line(r) -> str:
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_executor_ray_without_ray_names_the_install_command(small_trm_recipe, tmp_path):
    """export, validate and tune refuse it before any work, and write nothing."""
    for args in (
        ["validate", str(small_trm_recipe), str(tmp_path / "nothing")],
        ["export", str(small_trm_recipe), "--out", str(tmp_path / "nothing")],
        ["tune", str(small_trm_recipe), "--artefact", str(tmp_path / "nothing"), "--latency-budget", "5"],
    ):
        r = subprocess.run([sys.executable, "-c", RAY_BLOCKER, *args, "--executor", "ray"], capture_output=True,
                           text=True, timeout=300)  # fmt: skip
        assert r.returncode == 2, (args[0], r.stderr)
        assert 'pip install "edgekit[scale]"' in _one_line(r)
        assert not (tmp_path / "nothing").exists()


@needs_ray
def test_unreachable_cluster_is_one_line_within_seconds(small_trm_recipe, tmp_path):
    port = free_port()  # nothing listens there
    t0 = time.time()
    r = _cli("validate", str(small_trm_recipe), str(tmp_path / "a"), "--executor", "ray",
             env={"RAY_ADDRESS": f"127.0.0.1:{port}"})  # fmt: skip
    assert r.returncode == 2 and f"no Ray cluster answers at 127.0.0.1:{port}" in _one_line(r)
    assert time.time() - t0 < 120  # bounded: a 5 s connection check, not ray.init's minutes
    assert not (tmp_path / "a").exists()


def test_unknown_executor_and_cuda_without_a_gpu(small_trm_recipe, tmp_path):
    r = _cli("validate", str(small_trm_recipe), str(tmp_path / "a"), "--executor", "dask")
    assert r.returncode == 2 and "unknown executor 'dask'" in _one_line(r)
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    text = small_trm_recipe.read_text().replace("gates:", "validate: {device: cuda}\ngates:")
    p = tmp_path / "cuda.yaml"
    p.write_text(text)
    r = _cli("validate", str(p), str(tmp_path / "a"))
    assert r.returncode == 2 and "validate.device is cuda but PyTorch sees no CUDA GPU" in _one_line(r)


# -- rollouts: identical on every executor, resumable -----------------------------------------------------------------
def _rollout_parts(artefact: Path, n: int = 64, batch: int = 4):
    from edgekit.runtime import Runner
    from edgekit.tasks import sudoku

    x, y = sudoku.SudokuPool.generate(n, seed=7).sample(n, (28, 40), np.random.default_rng(7), augment=False)
    return Runner(artefact, variant="float32"), x, batch


def _sharded(runner, x, batch, key, executor="serial", workers=None, on_shard=None):
    from edgekit.scale.rollouts import begin, sharded
    from edgekit.scale.settings import overriding
    from edgekit.scale.work import OnnxSpec, Worker, onnx_solver

    with overriding(executor=executor, workers=workers):
        run = begin()
    out = sharded(run, "test", lambda ship: OnnxSpec.of(runner, ship), lambda: Worker.around(onnx_solver(runner)),
                  x, None, batch, key, None, on_shard)  # fmt: skip
    return out, run


def _same(a, b) -> bool:
    return all(np.array_equal(p, q) for p, q in zip(a[0], b[0])) and all(
        np.array_equal(p, q) for p, q in zip(a[1], b[1])
    ) and np.array_equal(a[2], b[2])  # fmt: skip


def test_a_stopped_rollout_resumes_with_only_the_missing_shards(trm_artefact, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "cache"))
    runner, x, batch = _rollout_parts(trm_artefact)
    whole, _ = _sharded(runner, x, batch, None)  # no cache: the reference answer
    n_shards = len(plan_shards(len(x), batch))
    seen: list[int] = []

    def stop_half_way(s, rec):
        seen.append(s.index)
        if len(seen) == n_shards // 2:
            raise KeyboardInterrupt  # what a kill leaves: the shards finished so far, stored as they came

    with pytest.raises(KeyboardInterrupt):
        _sharded(runner, x, batch, "k" * 64, on_shard=stop_half_way)
    again: list[int] = []
    resumed, run = _sharded(runner, x, batch, "k" * 64, on_shard=lambda s, r: again.append(s.index))
    assert _same(resumed, whole)
    assert len(again) / n_shards <= 0.55 and not set(again) & set(seen)
    assert run.rollouts[-1]["shards_from_cache"] == n_shards // 2


def test_records_of_another_key_are_never_reused(trm_artefact, tmp_path, monkeypatch):
    """A shard entry copied under another rollout's key (another artefact, provider, device) is discarded."""
    from edgekit.cache import cache_dir
    from edgekit.scale.rollouts import shard_key

    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "cache"))
    runner, x, batch = _rollout_parts(trm_artefact, n=32)
    first, _ = _sharded(runner, x, batch, "a" * 64)
    for s in plan_shards(len(x), batch):
        src = cache_dir() / "shard" / f"{shard_key('a' * 64, batch, s)}.npz"
        shutil.copy(src, cache_dir() / "shard" / f"{shard_key('b' * 64, batch, s)}.npz")
    computed: list[int] = []
    second, run = _sharded(runner, x, batch, "b" * 64, on_shard=lambda s, r: computed.append(s.index))
    assert len(computed) == len(plan_shards(len(x), batch)) and run.rollouts[-1]["shards_from_cache"] == 0
    assert _same(first, second)


@pytest.mark.slow  # starts Ray, kills a worker, retries its shard (~27 s)
@needs_ray
def test_a_worker_that_dies_has_its_shard_retried_or_the_run_stops(trm_artefact, no_ray_left):
    from edgekit.scale import executors

    runner, x, batch = _rollout_parts(trm_artefact)
    serial, _ = _sharded(runner, x, batch, None)
    killed: list[int] = []

    def kill_once(s, rec):
        if not killed:  # the worker that answered first still holds its next shard: it dies with it
            killed.append(int(rec.where.split("/")[1]))
            os.kill(killed[0], signal.SIGKILL)

    ray_out, run = _sharded(runner, x, batch, None, "ray", 2, kill_once)
    assert killed and _same(ray_out, serial)
    executors.SHARD_RETRIES, saved = 0, executors.SHARD_RETRIES
    try:
        with pytest.raises(ScaleError, match="workers died 1 times.*nothing was merged"):
            _sharded(runner, x, batch, None, "ray", 2, lambda s, rec: os.kill(int(rec.where.split("/")[1]), 9))
    finally:
        executors.SHARD_RETRIES = saved


def _validate(recipe: Path, artefact: Path, out: Path, cache: Path, *extra: str, env=None) -> dict:
    shutil.copytree(artefact, out)
    r = _cli("validate", str(recipe), str(out), "--json", *extra, env={"EDGEKIT_CACHE": str(cache), **(env or {})},
             timeout=900)  # fmt: skip
    assert r.returncode in (0, 3), r.stderr[-2000:]
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def batch4_recipe(small_trm_recipe, tmp_path_factory) -> Path:
    """The small TRM recipe validated in batches of 4: 32 puzzles make two shards."""
    p = tmp_path_factory.mktemp("scale") / "trm4.yaml"
    p.write_text(small_trm_recipe.read_text().replace("gates:", "validate: {batch_size: 4}\ngates:"))
    return p


def test_results_are_identical_on_serial_and_processes(batch4_recipe, trm_artefact, tmp_path):
    serial = _validate(batch4_recipe, trm_artefact, tmp_path / "s", tmp_path / "c1")
    procs = _validate(batch4_recipe, trm_artefact, tmp_path / "p", tmp_path / "c2", "--executor", "processes",
                      "--workers", "2")  # fmt: skip
    assert numbers(procs) == numbers(serial) and procs["scale"]["workers"] == 2
    assert serial["scale"]["executor"] == "serial" and procs["scale"]["executor"] == "processes"


@pytest.mark.slow  # three validations, one on a local Ray instance (~60 s); serial = processes stays in the default run
@needs_ray
def test_results_are_identical_on_serial_processes_and_ray(batch4_recipe, trm_artefact, tmp_path):
    serial = _validate(batch4_recipe, trm_artefact, tmp_path / "s", tmp_path / "c1")
    procs = _validate(batch4_recipe, trm_artefact, tmp_path / "p", tmp_path / "c2", "--executor", "processes",
                      "--workers", "2")  # fmt: skip
    ray = _validate(batch4_recipe, trm_artefact, tmp_path / "r", tmp_path / "c3", "--executor", "ray",
                    "--workers", "2")  # fmt: skip
    assert numbers(procs) == numbers(serial) and numbers(ray) == numbers(serial)
    assert serial["scale"]["executor"] == "serial" and ray["scale"]["executor"] == "ray"
    assert ray["scale"]["workers"] == 2 and procs["scale"]["workers"] == 2
    assert all(r["shards"] == 2 for r in ray["scale"]["rollouts"])
    assert "ray executor (2 workers × 1 thread)" in (tmp_path / "r" / "report.md").read_text()


# -- ARC with an INT8 variant: shards are whole tasks ----------------------------------------------------------------
@pytest.fixture(scope="module")
def arc_int8(root, tmp_path_factory):
    sys.path.insert(0, str(root / "examples"))
    import make_arc_dataset

    from edgekit.pipeline import run_export

    d = tmp_path_factory.mktemp("arc-scale")
    info = make_arc_dataset.write(d / "data", tasks=8, eval_tasks=4, aug=4, seed=0)
    make_arc_dataset.write_model(d / "model", info["identifiers"])
    n = len(np.load(d / "data" / "test" / "all__inputs.npy"))
    (d / "arc.yaml").write_text(f"""schema_version: 1
name: arc-scale
model: {{path: {d / "model"}}}
task: {{name: arc, data: {d / "data"}, n: {n}}}
export: {{forms: [step], puzzle_ids: from_data}}
quantize: {{modes: [int8], calibration: {{n: 32}}, search: {{n: 32}}}}
validate: {{halt_calibration_n: 32, batch_size: 2}}
gates: {{min_exact: null, max_exact_drop: 0.5, max_pass2_drop: 0.5}}
output: {d / "art"}
""")
    out = run_export(d / "arc.yaml", log=lambda s: None)
    return d / "arc.yaml", out.folder, out.results


@pytest.mark.slow
@needs_ray
def test_arc_with_an_int8_variant_is_identical_on_ray(arc_int8, tmp_path):
    recipe, art, exported = arc_int8
    assert any("int8" in v["name"] for v in exported["variants"])
    ray = _validate(recipe, art, tmp_path / "r", tmp_path / "c", "--executor", "ray", "--workers", "2")
    assert numbers(ray) == numbers(exported)
    assert all(r["shards"] >= 2 for r in ray["scale"]["rollouts"])


# -- a real cluster: a head and a worker node as separate processes ---------------------------------------------------
AUTH = {"RAY_AUTH_MODE": "token"}  # `ray start` turns token authentication on; its token is in ~/.ray


def _node(args: list[str], log: Path) -> subprocess.Popen:
    ray = Path(sys.executable).parent / "ray"
    return subprocess.Popen(
        [str(ray), "start", "--block", "--num-cpus=1", *args], stdout=log.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True, env={**os.environ, **AUTH},
    )  # fmt: skip


def _ports(prefix: str = "") -> list[str]:
    names = ("node-manager-port", "object-manager-port", "dashboard-agent-grpc-port", "dashboard-agent-listen-port",
             "runtime-env-agent-port", "metrics-export-port")  # fmt: skip
    lo = free_port()
    return [f"--{n}={free_port()}" for n in names] + [f"--min-worker-port={lo}", f"--max-worker-port={lo + 40}"]


@pytest.mark.slow
@needs_ray
def test_two_node_cluster_on_this_machine(batch4_recipe, trm_artefact, tmp_path):
    """`ray start --head` and `ray start --address` as separate processes (not local mode; the driver connects
    through 127.0.0.1): the shards run on both nodes and the results equal the serial run's. Both nodes are stopped by
    their process groups (started here), whatever happens."""
    port = free_port()
    head = _node(["--head", f"--port={port}", "--include-dashboard=false", f"--ray-client-server-port={free_port()}",
                  *_ports()], tmp_path / "head.log")  # fmt: skip
    nodes = [head]
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(1)
        time.sleep(5)
        nodes.append(_node([f"--address=127.0.0.1:{port}", *_ports()], tmp_path / "worker.log"))
        env = {"RAY_ADDRESS": f"127.0.0.1:{port}", **AUTH}
        probe = (
            "import ray, time\nray.init()\nt = time.time()\n"
            "while sum(n['Alive'] for n in ray.nodes()) < 2 and time.time() - t < 90: time.sleep(1)\n"
            "print(sum(n['Alive'] for n in ray.nodes()))"
        )
        alive = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=180,
                               env={**os.environ, **env})  # fmt: skip
        assert alive.stdout.strip().endswith("2"), alive.stdout + alive.stderr + (tmp_path / "worker.log").read_text()
        serial = _validate(batch4_recipe, trm_artefact, tmp_path / "s", tmp_path / "c1")
        ray = _validate(batch4_recipe, trm_artefact, tmp_path / "r", tmp_path / "c2", "--executor", "ray",
                        "--workers", "2", env=env)  # fmt: skip
        assert numbers(ray) == numbers(serial)
        print("two-node scale record:", json.dumps(ray["scale"]))
        assert any(r["nodes"] == 2 for r in ray["scale"]["rollouts"]), ray["scale"]
    finally:
        for p in reversed(nodes):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in nodes:
            try:
                p.wait(timeout=60)  # a node drains for up to 30 s
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
