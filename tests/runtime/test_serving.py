"""Slot-refill serving gives every request the answer and step count the host loop gives it, refuses bad
requests one by one, applies back-pressure, and the execution-provider options are what onnxruntime expects.
`edgekit serve` survives its input: bytes with a per-line cap, no answered request kept, one line when a graph
call fails, quiet when stdout closes, stopped within a second by SIGINT / SIGTERM."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgekit.manifest import InputContract
from edgekit.runtime import Runner, RuntimeInputError
from edgekit.runtime.providers import PROVIDERS, ProviderError, ProviderSettings, resolve
from edgekit.runtime.server import LineReader, Server, ServerFailed, ServerStopped, SlotScheduler
from edgekit.stopping import fixed_point

# docs/serving.md's command, run by test_serving_docs_command (tests/system/test_readme.py reads this)
DOCS_COMMANDS = (r"^cat examples/puzzles\.txt \| \.venv-device/bin/edgekit serve artefacts/trm-sudoku --slots 16$",)


@pytest.fixture(scope="module")
def mixed_puzzles():
    """Puzzles of mixed difficulty (easy ones halt after a step or two, hard ones run long)."""
    from edgekit.tasks import sudoku

    pool = sudoku.SudokuPool.generate(12, seed=4242)
    rng = np.random.default_rng(4242)
    parts = [pool.sample(6, g, rng)[0] for g in (40, 34, 28, 0)]
    x = np.concatenate(parts)
    return x[rng.permutation(len(x))]


@pytest.mark.parametrize("slots", [1, 5, 64])
def test_slot_refill_answers_equal_the_host_loop(trm_artefact, mixed_puzzles, slots):
    runner = Runner(trm_artefact)
    ref = runner.solve(mixed_puzzles, mode="host", threshold=1.0)
    answers = list(SlotScheduler(runner, slots=slots, threshold=1.0).run(enumerate(mixed_puzzles)))
    assert sorted(a.request_id for a in answers) == list(range(len(mixed_puzzles)))
    by_id = {a.request_id: a for a in answers}
    steps = np.array([by_id[i].steps for i in range(len(mixed_puzzles))])
    preds = np.stack([by_id[i].prediction for i in range(len(mixed_puzzles))])
    assert (steps == ref.steps).all()
    assert (preds == ref.preds).all()
    assert len(set(steps.tolist())) > 1, "the test set must mix difficulties"
    if slots > 1:  # answers come out as they finish, not in arrival order
        order = [a.request_id for a in answers]
        assert order != sorted(order)


def test_a_bad_request_gets_its_own_error(trm_artefact, mixed_puzzles):
    runner = Runner(trm_artefact)
    reqs = [(0, mixed_puzzles[0]), (1, np.ones(80, np.int64)), (2, np.full(81, 99)), (3, mixed_puzzles[1])]
    answers = {a.request_id: a for a in SlotScheduler(runner, slots=2).run(reqs)}
    assert "expected [batch >= 1, 81]" in answers[1].error and answers[1].prediction is None
    assert "token ids must lie in [0, 10]" in answers[2].error
    assert answers[0].error is None and answers[3].error is None
    ref = runner.solve(mixed_puzzles[:2])
    assert answers[0].steps == ref.steps[0] and (answers[3].prediction == ref.preds[1]).all()


def test_threaded_server_futures_and_back_pressure(trm_artefact, mixed_puzzles):
    runner = Runner(trm_artefact)
    ref = runner.solve(mixed_puzzles)
    with Server(runner, slots=4, queue_size=2) as server:
        futs = [server.submit(x) for x in mixed_puzzles]
        got = [f.result(timeout=120) for f in futs]
    assert [a.steps for a in got] == ref.steps.tolist()
    assert all((a.prediction == p).all() for a, p in zip(got, ref.preds))
    # a full queue blocks submit; with a timeout it raises queue.Full instead of growing without bound
    gate = threading.Event()
    slow = Runner(trm_artefact)
    real = slow.call

    def blocked_call(graph, feeds):
        gate.wait(60)
        return real(graph, feeds)

    slow.call = blocked_call  # type: ignore[method-assign]
    server = Server(slow, slots=1, queue_size=1)
    first = server.submit(mixed_puzzles[0])  # taken by the worker, which then blocks in its first call
    second = None
    for _ in range(50):
        try:
            second = server.submit(mixed_puzzles[1], timeout=0.05)
            break
        except queue.Full:
            continue
    assert second is not None
    with pytest.raises(queue.Full):
        server.submit(mixed_puzzles[2], timeout=0.2)
    gate.set()
    server.close()
    assert first.result(timeout=60).error is None and second.result(timeout=60).error is None


def test_server_arguments_are_checked(trm_artefact):
    runner = Runner(trm_artefact)
    for bad in (0, -3, True, 2.5):
        with pytest.raises(RuntimeInputError, match="slots"):
            SlotScheduler(runner, slots=bad)  # type: ignore[arg-type]
    with pytest.raises(RuntimeInputError, match="max_steps"):
        SlotScheduler(runner, max_steps=0)
    with pytest.raises(RuntimeInputError, match="threshold"):
        SlotScheduler(runner, threshold=float("nan"))


def test_solve_limits_and_chunks(trm_artefact, mixed_puzzles):
    whole = Runner(trm_artefact).solve(mixed_puzzles)
    chunked = Runner(trm_artefact, chunk_size=5).solve(mixed_puzzles)
    assert (whole.preds == chunked.preds).all() and (whole.steps == chunked.steps).all()
    r = Runner(trm_artefact)
    assert (r.solve(mixed_puzzles[:3], max_steps=1).steps == 1).all()
    for bad in (0, -1, 1.5):
        with pytest.raises(RuntimeInputError, match="max_steps"):
            r.solve(mixed_puzzles[:1], max_steps=bad)  # type: ignore[arg-type]
    with pytest.raises(RuntimeInputError, match="threshold"):
        r.solve(mixed_puzzles[:1], threshold=float("nan"))


def test_providers_missing_gpu_is_one_line(trm_artefact):
    import onnxruntime as ort

    have = set(ort.get_available_providers())
    if "CUDAExecutionProvider" in have:
        pytest.skip("this onnxruntime has CUDA; the refusal cannot be shown here")
    with pytest.raises(ProviderError) as e:
        resolve(["cuda"])
    assert "onnxruntime-gpu" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(RuntimeInputError, match="not in this onnxruntime"):
        Runner(trm_artefact, providers=["cuda"])
    with pytest.raises(ProviderError, match="unknown execution provider 'tpu'"):
        resolve(["tpu"])
    assert resolve(None) == (["CPUExecutionProvider"], [{}])


def test_tensorrt_provider_options_cache_outside_the_artefact(tmp_path):
    _, build, _ = PROVIDERS["tensorrt"]
    opts = build(ProviderSettings(device_id=1, fp16=True, cache_dir=tmp_path / "cache", artefact_key="abc"))
    assert opts["device_id"] == 1 and opts["trt_fp16_enable"] is True and opts["trt_engine_cache_enable"] is True
    assert opts["trt_engine_cache_path"] == str(tmp_path / "cache" / "trt-ep" / "abc")
    assert PROVIDERS["cuda"][1](ProviderSettings(device_id=2)) == {"device_id": 2}


def test_serving_benchmark_script(trm_artefact, root, tmp_path):
    """benchmarks/serving.py on a tiny stream: three modes per B, identical answers for (b) and (c), fewer step
    calls with slot refill."""
    out = tmp_path / "s.json"
    r = subprocess.run(
        [
            sys.executable,
            str(root / "benchmarks" / "serving.py"),
            str(trm_artefact),
            "--n",
            "24",
            "--slots",
            "8",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["identical_answers"] is True and len(data["results"]) == 3
    rows = {row["mode"][:3]: row for row in data["results"]}
    assert rows["(a)"]["mean_steps"] == 16 and rows["(b)"]["mean_steps"] == rows["(c)"]["mean_steps"] < 16
    assert rows["(c)"]["step_calls"] < rows["(b)"]["step_calls"] <= rows["(a)"]["step_calls"]
    bad = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "serving.py"), str(tmp_path), "--n", "4"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "manifest.json" in bad.stderr and "Traceback" not in bad.stderr


# -- serve survives its input ---------------------------------------------------------------------------------------
# `edgekit serve` reads stdin as bytes with a per-line byte cap, keeps no answered request, ends with one line when
# a graph call fails, stops quietly when stdout closes and within a second on SIGINT / SIGTERM. The subprocess tests
# use stdin / stdout only (no network) and bounded waits.


def _serve(artefact: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "edgekit.cli", "serve", str(artefact), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )


def _lines(puzzles: np.ndarray) -> bytes:
    from edgekit.tasks import get_task

    task = get_task("sudoku")
    return ("\n".join(task.render(p) for p in puzzles) + "\n").encode()


# Peak RSS of one command, from a parent that runs nothing else (the test process's own children include exports).
_RSS = """
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
sys.stderr.write(r.stderr.decode(errors="replace")[-2000:])
print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _peak_rss_kb(cmd: list[str], stdin: Path, timeout: float = 300) -> tuple[int, int]:
    with open(stdin, "rb") as f:
        p = subprocess.run([sys.executable, "-c", _RSS, *cmd], stdin=f, capture_output=True, text=True, timeout=timeout)
    rc, kb = p.stdout.split()
    return int(rc), int(kb)


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30),
    cap=st.integers(1, 30),
    chunk=st.integers(1, 64),
    trailing=st.booleans(),
)
def test_line_reader_caps_every_line_without_holding_it(tmp_path_factory, lines, cap, chunk, trailing):
    """Lines come back numbered as written; one longer than the cap comes back as None, and the reader never holds
    more than the cap of it, whatever the read size."""
    path = tmp_path_factory.mktemp("lines") / "in.txt"
    data = b"\n".join(lines) + (b"\n" if trailing and lines else b"")
    path.write_bytes(data)
    want = [(i + 1, ln if len(ln) <= cap else None) for i, ln in enumerate(lines)]
    if lines and not trailing and lines[-1] == b"":
        want = want[:-1]  # "a\n" + "" : the stream ends with a newline
    fd = os.open(path, os.O_RDONLY)
    try:
        reader, got = LineReader(fd, cap, chunk=chunk), []
        while (batch := reader.read()) is not None:
            got += batch
            assert len(reader._buf) <= cap
        assert reader.read() is None
    finally:
        os.close(fd)
    assert got == want


class _FakeRunner:
    """The runner interface the scheduler uses, on numpy alone: a sample halts after its first token + 1 steps."""

    family, solver, takes_puzzle_ids, state_names = "deq", {}, False, ["z"]
    graph = SimpleNamespace(input=InputContract("float32", ("batch", 5)))
    stopping = fixed_point(0.5)  # how a sample stops (edgekit.stopping), as a real runner reads it from the manifest

    def __init__(self, fail_after: int | None = None, delay: float = 0.0) -> None:
        self.calls, self.fail_after, self.delay = 0, fail_after, delay

    def limits(self, max_steps, threshold):
        return max_steps or 50, 0.5

    def check_inputs(self, x):
        x = np.asarray(x, np.float32)
        if x.shape[1:] != (5,):
            raise RuntimeInputError(f"inputs have shape {list(x.shape)}, expected [batch >= 1, 5]")
        return x

    def initial_state(self, x):
        return [np.zeros_like(x)]

    def stops(self, signal, threshold):
        return signal <= threshold

    def call(self, graph, feeds):
        self.calls += 1
        time.sleep(self.delay)
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("Non-zero status code returned while running Reshape node")
        if graph == "encode":
            return [feeds["inputs"]]
        if graph == "step":
            z = feeds["z"] + 1
            return [z, (feeds["x"][:, 0] + 1 - z[:, 0]).clip(0)]
        return [np.repeat(feeds["z"][..., None], 2, -1)]


def test_a_failed_graph_call_fails_every_request_and_later_submits():
    server = Server(_FakeRunner(fail_after=6), slots=2, queue_size=4)  # type: ignore[arg-type]
    futs, refused = [], 0
    for i in range(40):
        try:
            futs.append(server.submit(np.full(5, i % 3, np.float32), timeout=5))
        except ServerFailed:
            refused += 1
    assert refused > 0, "submit must raise once the worker has failed, not block on a full queue"
    outcomes = [f.exception(timeout=5) for f in futs]  # every Future resolves: none waits forever
    failed = [e for e in outcomes if e is not None]
    assert failed and all(isinstance(e, ServerFailed) for e in failed)
    assert "Reshape node" in str(failed[0]) and "\n" not in str(failed[0])
    assert server.failure is failed[0] and server.pending == 0
    with pytest.raises(ServerFailed):
        server.submit(np.zeros(5, np.float32))
    assert server.close(timeout=5)


def test_stop_answers_nothing_more_and_answered_requests_are_not_kept():
    server = Server(_FakeRunner(delay=0.01), slots=2, queue_size=64)  # type: ignore[arg-type]
    futs = [server.submit(np.full(5, 8, np.float32)) for _ in range(40)]
    futs[0].result(timeout=30)
    t0 = time.monotonic()
    assert server.stop(timeout=1.0)
    assert time.monotonic() - t0 < 1.0
    done = [f for f in futs if f.exception(timeout=1) is None]
    stopped = [f for f in futs if f.exception(timeout=1) is not None]
    assert done and stopped and all(isinstance(f.exception(), ServerStopped) for f in stopped)
    assert server.pending == 0, "the server keeps no request once it is resolved"
    with pytest.raises(ServerStopped):
        server.submit(np.zeros(5, np.float32))
    # a server that ran to completion holds nothing either
    with Server(_FakeRunner(), slots=3, queue_size=8) as s2:  # type: ignore[arg-type]
        got = [s2.submit(np.full(5, i % 4, np.float32)) for i in range(30)]
    assert [f.result().steps for f in got] == [i % 4 + 1 for i in range(30)]
    assert s2.pending == 0


def test_serve_answers_around_bad_bytes_and_overlong_lines(trm_artefact, mixed_puzzles, tmp_path):
    """Under a strict UTF-8 decoder (a desktop or Jetson locale) a random-byte line killed the server; now every
    line is decoded on its own: invalid UTF-8 and a line over --max-line-bytes get error lines, the rest answers."""
    good = _lines(mixed_puzzles[:2]).splitlines()
    stream = b"\n".join([good[0], b"\xff\xfe\x82 not text", b"1" * 5000, good[1], b"", b"# comment", b"x"]) + b"\n"
    p = _serve(trm_artefact, "--max-line-bytes", "4096", env={"PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C.UTF-8"})
    out, err = p.communicate(stream, timeout=300)
    assert p.returncode == 2, err
    rows = {r["line"]: r for r in map(json.loads, out.decode().splitlines())}
    assert "not UTF-8 text (byte 0xff at offset 0)" in rows[2]["error"]
    assert "longer than 4096 bytes" in rows[3]["error"]
    assert "81 cells" in rows[7]["error"]
    assert "answer" in rows[1] and "answer" in rows[4] and sorted(rows) == [1, 2, 3, 4, 7]
    assert err.decode().strip() == ""


def test_serve_memory_is_bounded_by_the_line_cap(trm_artefact, mixed_puzzles, tmp_path):
    """A 100 MB line peaked at 915 MB (and 99 MB of U+3042 at 2.9 GB): the reader now holds at most the cap
    (1 MiB) of any line, so a 64 MB line costs what a short one does."""
    small, big = tmp_path / "small.txt", tmp_path / "big.txt"
    small.write_bytes(_lines(mixed_puzzles[:1]))
    with open(big, "wb") as f:
        f.write("\u3042".encode() * ((64 << 20) // 3))
        f.write(b"\n" + _lines(mixed_puzzles[:1]))
    cmd = [sys.executable, "-m", "edgekit.cli", "serve", str(trm_artefact)]
    rc0, base = _peak_rss_kb(cmd, small)
    rc1, peak = _peak_rss_kb(cmd, big)
    assert (rc0, rc1) == (0, 2)
    assert peak - base < 24 * 1024, f"peak RSS {peak / 1024:.0f} MB vs {base / 1024:.0f} MB for a short line"


_FAKE_SERVE = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from test_serving import _FakeRunner
import edgekit.cli.device as device
device.DeviceOptions.runner = lambda self, artefact, variant=None: _FakeRunner()
from edgekit.cli import main
sys.argv = ["edgekit", "serve", "unused", "--slots", "64", "--queue", "1024"]
main()
"""


def test_serve_keeps_no_answered_request(tmp_path):
    """Every Future (with its logits) used to be kept for the life of the process (~7 KB per answer): peak memory
    is now the same for 100,000 answered lines as for 10,000 (numpy stand-in graphs, so only serving is measured)."""
    peaks = []
    for n in (10_000, 100_000):
        path = tmp_path / f"{n}.txt"
        path.write_bytes(b"1 0 0 0 0\n3 1 1 1 1\n" * (n // 2))
        rc, kb = _peak_rss_kb([sys.executable, "-c", _FAKE_SERVE, str(Path(__file__).parent)], path, timeout=600)
        assert rc == 0
        peaks.append(kb)
    assert peaks[1] - peaks[0] < 16 * 1024, f"{peaks[0] / 1024:.0f} MB -> {peaks[1] / 1024:.0f} MB"


def test_serve_ends_with_one_line_when_a_graph_call_fails(trm_artefact, mixed_puzzles, tmp_path):
    """A step graph that fails at run time (here a Reshape that fits no batch; on a device, say, a CUDA OOM) killed
    the worker and the CLI then blocked forever on the full queue; now the process ends with one line, exit 2."""
    import hashlib
    import shutil

    import onnx
    from onnx import TensorProto, helper

    art = tmp_path / "broken"
    shutil.copytree(trm_artefact, art)
    m = onnx.load(str(art / "step.onnx"))
    last = m.graph.output[-1]
    m.graph.initializer.append(helper.make_tensor("bad_shape", TensorProto.INT64, [1], [3]))
    m.graph.node.append(helper.make_node("Reshape", [last.name, "bad_shape"], ["halt_reshaped"]))
    m.graph.output.remove(last)
    m.graph.output.append(helper.make_tensor_value_info("halt_reshaped", TensorProto.FLOAT, [3]))
    onnx.save(m, str(art / "step.onnx"))
    manifest = json.loads((art / "manifest.json").read_text())
    manifest["sha256"]["step"] = hashlib.sha256((art / "step.onnx").read_bytes()).hexdigest()
    manifest["bytes"]["step"] = (art / "step.onnx").stat().st_size
    (art / "manifest.json").write_text(json.dumps(manifest))
    p = _serve(art, "--slots", "2", "--queue", "4")
    t0 = time.monotonic()
    out, err = p.communicate(_lines(mixed_puzzles) * 10, timeout=120)
    assert p.returncode == 2
    lines = [ln for ln in err.decode().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "a graph call failed at run time" in lines[0], err.decode()
    assert "Traceback" not in err.decode() and out == b""
    assert time.monotonic() - t0 < 60


def test_serve_stops_quietly_when_stdout_closes(trm_artefact, mixed_puzzles):
    """`edgekit serve ... | head -1`: 399 BrokenPipeError tracebacks, the whole stream computed, exit 0. Now: no
    output on stderr, nothing more computed, exit 141 (as a tool stopped by SIGPIPE)."""
    p = _serve(trm_artefact, "--slots", "4")
    assert p.stdin is not None and p.stdout is not None and p.stderr is not None
    p.stdin.write(_lines(mixed_puzzles) * 20)
    p.stdin.close()
    assert json.loads(p.stdout.readline())["answer"]
    p.stdout.close()
    t0 = time.monotonic()
    assert p.wait(timeout=120) == 141
    assert p.stderr.read() == b""
    assert time.monotonic() - t0 < 30


@pytest.mark.parametrize(("sig", "code", "stdin_open"), [(signal.SIGTERM, 143, False), (signal.SIGINT, 130, True)])
def test_serve_stops_within_a_second_on_a_signal(trm_artefact, mixed_puzzles, sig, code, stdin_open):
    """SIGTERM while the queue drained aborted the interpreter under the worker thread (exit 134) or answered the
    whole queue first; now the worker stops before its next graph call, nothing more is answered, and the process
    exits 143 / 130 with one line. Both places the main thread can be: in the drain (stdin closed) and reading."""
    p = _serve(trm_artefact, "--slots", "4")
    assert p.stdin is not None and p.stdout is not None and p.stderr is not None
    p.stdin.write(_lines(mixed_puzzles) * 20)
    p.stdin.flush()
    if not stdin_open:
        p.stdin.close()
    assert json.loads(p.stdout.readline())["answer"]  # serving
    t0 = time.monotonic()
    p.send_signal(sig)
    rc = p.wait(timeout=30)
    elapsed = time.monotonic() - t0
    answered = 1 + len(p.stdout.read().splitlines())
    err = p.stderr.read().decode()
    assert rc == code, err
    assert elapsed < 1.5, f"{elapsed:.2f} s"
    assert answered < len(mixed_puzzles) * 20 / 2, "the queue was drained, not dropped"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"interrupted ({signal.Signals(sig).name})"), err
    if stdin_open:
        p.stdin.close()


def test_serving_docs_command(trm_artefact, root):
    """docs/serving.md's pipeline, with the device venv's edgekit where it exists (else this interpreter's)."""
    import re
    import shlex

    page = (root / "docs" / "serving.md").read_text()
    cmd = next(c for c in re.findall(r"^```bash\n(.*?)^```", page, re.S | re.M)[0].splitlines() if "serve" in c)
    assert re.match(DOCS_COMMANDS[0], cmd), cmd
    device = root / ".venv-device" / "bin" / "edgekit"
    tool = shlex.quote(str(device)) if device.exists() else f"{shlex.quote(sys.executable)} -m edgekit.cli"
    line = cmd.replace(".venv-device/bin/edgekit", tool).replace("artefacts/trm-sudoku", shlex.quote(str(trm_artefact)))
    p = subprocess.run(["bash", "-c", line], capture_output=True, text=True, cwd=root, timeout=300)
    assert p.returncode == 0, p.stderr
    rows = [json.loads(x) for x in p.stdout.splitlines()]
    puzzles = [x for x in (root / "examples" / "puzzles.txt").read_text().splitlines() if x.strip()]
    assert sorted(r["line"] for r in rows) == list(range(1, len(puzzles) + 1))
    assert all(len(r["answer"]) == 81 and r["steps"] >= 1 for r in rows)
