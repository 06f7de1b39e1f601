"""Execution providers: registration order and options, the TensorRT cache folder, optimization profiles, the check
that a session got what was asked (no silent fallback), and the CUDA provider's device-resident step loop.

This machine has the CPU onnxruntime only. Where a test needs onnxruntime to *offer* CUDA or TensorRT it replaces
`get_available_providers` (said so in the test); the device step loop runs against a fake session whose OrtValues
live in numpy arrays and count the copies between "device" and host — a model of onnxruntime's API, not a GPU run.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from edgekit.runtime import device_step, providers
from edgekit.runtime.providers import (
    CPU,
    CUDA,
    TENSORRT,
    ProviderError,
    ProviderSettings,
    check_session,
    options_for_graph,
    prepare_cache,
    resolve,
)
from edgekit.runtime.stepper import PlainStep

HAVE = set(ort.get_available_providers())
needs_cpu_only = pytest.mark.skipif(
    bool({CUDA, TENSORRT} & HAVE), reason="this onnxruntime offers a GPU provider; the refusal cannot be shown here"
)


@pytest.fixture
def offers_gpu(monkeypatch):
    """Pretend the installed onnxruntime offers TensorRT and CUDA (option building only; no session is made)."""
    monkeypatch.setattr(providers.ort, "get_available_providers", lambda: [TENSORRT, CUDA, CPU])


# -- resolve --------------------------------------------------------------------------------------------------------


@needs_cpu_only
@pytest.mark.parametrize("name", ["cuda", "tensorrt", CUDA])
def test_missing_gpu_provider_is_one_line(name):
    with pytest.raises(ProviderError) as e:
        resolve([name])
    msg = str(e.value)
    assert "\n" not in msg and "onnxruntime-gpu" in msg and "--allow-fallback" in msg and "not in this" in msg


@needs_cpu_only
def test_allow_fallback_keeps_the_missing_provider_for_the_check(tmp_path):
    names, opts = resolve(["tensorrt"], ProviderSettings(cache_dir=tmp_path / "c", allow_fallback=True))
    assert names == [TENSORRT, CUDA, CPU] and opts == [{}, {}, {}]
    assert not (tmp_path / "c").exists(), "no cache folder for a provider that is not there"


def test_tensorrt_registers_tensorrt_cuda_cpu_in_that_order(offers_gpu, tmp_path):
    s = ProviderSettings(device_id=1, fp16=True, cache_dir=tmp_path / "root", artefact_key="k", tf32=False)
    names, opts = resolve(["tensorrt"], s)
    assert names == [TENSORRT, CUDA, CPU]
    cache = str(tmp_path / "root" / "trt-ep" / "k")
    assert opts[0] == {
        "device_id": 1,
        "trt_fp16_enable": True,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": cache,
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": cache,
    }
    assert opts[1] == {"device_id": 1, "use_tf32": 0} and opts[2] == {}
    assert resolve(["cpu", "tensorrt"], s)[0] == [TENSORRT, CUDA, CPU]  # CPU last: it would take every node
    assert resolve(["cuda", "tensorrt"], s)[0] == [CUDA, TENSORRT, CPU]  # the user's order, CUDA not twice
    assert resolve(["cuda"], ProviderSettings())[1][0] == {"device_id": 0}  # tf32 None: onnxruntime's default
    assert resolve(["cuda"], ProviderSettings(tf32=True))[1][0] == {"device_id": 0, "use_tf32": 1}
    with pytest.raises(ProviderError, match="unknown execution provider 'tpu'"):
        resolve(["tpu"])
    assert resolve(None) == ([CPU], [{}])


# -- the TensorRT cache folder ----------------------------------------------------------------------------------


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def test_cache_folders_are_created_0700_with_parents(tmp_path):
    old = os.umask(0)  # the mode must not depend on the user's umask
    try:
        folder = prepare_cache(ProviderSettings(cache_dir=tmp_path / "a" / "b", artefact_key="abc"))
    finally:
        os.umask(old)
    assert folder == tmp_path / "a" / "b" / "trt-ep" / "abc" and folder.is_dir()
    for p in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "trt-ep", folder):
        assert _mode(p) == 0o700, (p, oct(_mode(p)))
    assert prepare_cache(ProviderSettings(cache_dir=tmp_path / "a" / "b", artefact_key="abc")) == folder  # again


def test_cache_root_is_edgekit_cache_else_home(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "env"))
    assert prepare_cache(ProviderSettings(artefact_key="k")) == tmp_path / "env" / "trt-ep" / "k"
    monkeypatch.delenv("EDGEKIT_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    home = tmp_path / "home" / ".cache" / "edgekit" / "trt-ep" / "k"
    assert prepare_cache(ProviderSettings(artefact_key="k")) == home
    assert _mode(tmp_path / "home" / ".cache") == 0o700  # missing parents too
    # --cache-dir wins over the environment
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "env"))
    got = prepare_cache(ProviderSettings(cache_dir=tmp_path / "cli", artefact_key="k"))
    assert got == tmp_path / "cli" / "trt-ep" / "k"


def _refused(settings: ProviderSettings, match: str) -> str:
    with pytest.raises(ProviderError, match=match) as e:
        prepare_cache(settings)
    assert "\n" not in str(e.value) and "--cache-dir" in str(e.value)
    return str(e.value)


def test_cache_folder_others_could_write_is_refused(tmp_path):
    s = ProviderSettings(cache_dir=tmp_path / "root", artefact_key="k")
    folder = prepare_cache(s)
    folder.parent.chmod(0o777)
    msg = _refused(s, "writable by group or others")
    assert str(folder.parent) in msg and "chmod 700" in msg
    folder.parent.chmod(0o775)
    _refused(s, "writable by group or others")
    folder.parent.chmod(0o755)  # readable by others is fine: only writing matters
    assert prepare_cache(s) == folder


def test_symlinked_cache_folder_is_refused(tmp_path):
    s = ProviderSettings(cache_dir=tmp_path / "root", artefact_key="k")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (tmp_path / "root" / "trt-ep").mkdir(parents=True)
    (tmp_path / "root" / "trt-ep" / "k").symlink_to(elsewhere)
    _refused(s, "is a symbolic link")
    assert not list(elsewhere.iterdir())
    # the root itself as a symlink
    (tmp_path / "link").symlink_to(tmp_path / "root")
    _refused(ProviderSettings(cache_dir=tmp_path / "link", artefact_key="k2"), "is a symbolic link")


def test_cache_folder_of_another_user_is_refused(tmp_path, monkeypatch):
    s = ProviderSettings(cache_dir=tmp_path / "root", artefact_key="k")
    prepare_cache(s)
    me = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: me + 1)  # we cannot chown here: pretend to be another user
    _refused(s, "owned by another user")


def test_uncreatable_cache_folder_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    _refused(ProviderSettings(cache_dir=tmp_path / "file" / "sub"), "cannot create the TensorRT engine cache folder")


def test_tensorrt_provider_refuses_an_unsafe_cache_before_any_session(offers_gpu, tmp_path):
    bad = tmp_path / "root"
    bad.mkdir(mode=0o777)
    bad.chmod(0o777)
    with pytest.raises(ProviderError, match="writable by group or others"):
        resolve(["tensorrt"], ProviderSettings(cache_dir=bad))


# -- optimization profiles ----------------------------------------------------------------------------------------


def test_options_for_graph_profile_strings():
    names = [TENSORRT, CUDA, CPU]
    opts: list[dict[str, Any]] = [{"device_id": 0}, {"device_id": 0}, {}]
    inputs: dict[str, list[Any]] = {
        "z_H": ["batch", 81, 512],
        "x": ["N", 81, 512],
        "step_count": [None, 1],  # unknown (not named) batch dimension: dynamic too
        "max_steps": [],  # a scalar: nothing to profile
        "table": [4, 2],  # a fixed batch: nothing to profile
    }
    out = options_for_graph(names, opts, inputs, 16)
    assert out[0]["trt_profile_min_shapes"] == "z_H:1x81x512,x:1x81x512,step_count:1x1"
    assert out[0]["trt_profile_opt_shapes"] == "z_H:16x81x512,x:16x81x512,step_count:16x1"
    assert out[0]["trt_profile_max_shapes"] == "z_H:16x81x512,x:16x81x512,step_count:16x1"
    assert out[1:] == opts[1:] and out[0]["device_id"] == 0
    assert "trt_profile_min_shapes" not in opts[0], "the caller's options are not modified"
    # other providers: unchanged copies
    plain = options_for_graph([CUDA, CPU], [{"device_id": 0}, {}], inputs, 16)
    assert plain == [{"device_id": 0}, {}]
    assert options_for_graph(names, opts, {"s": [1, 4]}, 8)[0] == {"device_id": 0}  # nothing dynamic


def test_options_for_graph_refusals():
    names, opts = [TENSORRT, CPU], [{}, {}]
    with pytest.raises(ProviderError, match="dynamic non-batch dimension"):
        options_for_graph(names, opts, {"x": ["batch", "seq"]}, 4)
    with pytest.raises(ProviderError, match="largest batch"):
        options_for_graph(names, opts, {"x": ["batch", 3]}, 0)
    with pytest.raises(ProviderError, match="cannot be written"):
        options_for_graph(names, opts, {"a:b": ["batch", 3]}, 4)


# -- what a session got -------------------------------------------------------------------------------------------


class FakeSession:
    """Stands in for an InferenceSession that onnxruntime created with fewer providers than asked."""

    def __init__(self, got: list[str]) -> None:
        self._got = got

    def get_providers(self) -> list[str]:
        return self._got


@needs_cpu_only
def test_check_session_missing_provider_is_an_error_or_a_warning():
    s = ProviderSettings()
    with pytest.raises(ProviderError) as e:
        check_session(FakeSession([CPU]), [CUDA, CPU], s)
    msg = str(e.value)
    assert "\n" not in msg and "'cuda'" in msg and "not in this onnxruntime" in msg and "--allow-fallback" in msg
    with pytest.raises(ProviderError, match="'tensorrt'"):
        check_session(FakeSession([CUDA, CPU]), [TENSORRT, CUDA, CPU], s)
    w = check_session(FakeSession([CPU]), [TENSORRT, CUDA, CPU], ProviderSettings(allow_fallback=True))
    assert len(w) == 2 and all(line.startswith("warning: ") and "\n" not in line for line in w)
    assert "'tensorrt'" in w[0] and "running on cpu" in w[0]
    assert check_session(FakeSession([CUDA, CPU]), ["cuda"], s) == []  # short names work too
    assert check_session(FakeSession([CPU]), [CPU], s) == []


@needs_cpu_only
def test_a_real_session_without_the_provider_is_caught(tmp_path):
    """The path a CPU-only machine takes for `--provider cuda --allow-fallback`: onnxruntime makes a CPU session
    (it only warns about the unknown provider) and the check turns that into the warning line, or the error."""
    names, opts = resolve(["cuda"], ProviderSettings(allow_fallback=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # onnxruntime's "not in available provider names"
        sess = ort.InferenceSession(providers.probe_model(), providers=names, provider_options=opts)
    assert sess.get_providers() == [CPU]
    (w,) = check_session(sess, names, ProviderSettings(allow_fallback=True))
    assert "'cuda' did not start" in w
    with pytest.raises(ProviderError, match="did not start"):
        check_session(sess, names, ProviderSettings())


def test_check_session_reports_a_refused_cache_as_the_reason(offers_gpu, tmp_path):
    bad = tmp_path / "root"
    bad.mkdir()
    bad.chmod(0o777)
    with pytest.raises(ProviderError, match="writable by group or others"):
        check_session(FakeSession([CUDA, CPU]), [TENSORRT, CUDA, CPU], ProviderSettings(cache_dir=bad))


def test_probe_model_is_valid_onnx_and_runs():
    onnx = pytest.importorskip("onnx")
    model = onnx.load_from_string(providers.probe_model())
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node] == ["Identity"]
    p = providers.probe(CPU)
    assert p.ok and p.got == [CPU] and p.reason == ""


def test_probe_reports_onnxruntimes_own_reason():
    """A provider that cannot take the node with CPU fallback off: onnxruntime's exception is the reason."""
    if "AzureExecutionProvider" not in HAVE:
        pytest.skip("this onnxruntime has no Azure provider to probe")
    p = providers.probe("AzureExecutionProvider", strict=True)
    assert not p.ok and "fallback to CPU EP has been explicitly disabled" in p.reason
    missing = providers.probe("NoSuchExecutionProvider")
    assert not missing.ok and "not in this onnxruntime" in missing.reason


def test_log_capture_and_reason_line():
    with providers._captured_output() as log:
        os.write(2, b"[W:onnxruntime:Default, x.cc:1 F] noise\n")
        os.write(
            2,
            b"[E:onnxruntime:Default, provider_bridge_ort.cc:2 Get] Failed to load library "
            b"libonnxruntime_providers_cuda.so with error: libcudnn.so.9: cannot open shared object file\n",
        )
        os.write(1, b"EP Error printed by the Python fallback\n")
    assert len(log) == 3
    why = providers._reason(log, None)
    assert why.startswith("Failed to load library libonnxruntime_providers_cuda.so") and "libcudnn.so.9" in why
    assert providers._reason([], RuntimeError("boom\nsecond line")) == "boom second line"
    assert providers._reason(["harmless"], None) == "onnxruntime dropped it without saying why"


# -- the device-resident step loop (fake session: a model of onnxruntime's API) -----------------------------------


class Transfers:
    def __init__(self) -> None:
        self.to_device = 0  # bytes
        self.to_host = 0


class FakeOrtValue:
    """An OrtValue whose "device" memory is a numpy array; copies across the host/device line are counted."""

    log = Transfers()

    def __init__(self, data: np.ndarray, device: str) -> None:
        self.data, self.device = data, device

    @classmethod
    def ortvalue_from_shape_and_type(cls, shape: list[int], element_type: Any, device: str, device_id: int) -> Any:
        assert device == "cuda" and device_id == 3
        return cls(np.full(shape, np.nan, element_type), device)

    @classmethod
    def ortvalue_from_numpy(cls, a: np.ndarray, device: str = "cpu", device_id: int = 0) -> Any:
        assert device == "cpu"
        return cls(a, "cpu")  # onnxruntime wraps host arrays without a copy

    def update_inplace(self, a: np.ndarray) -> None:
        assert a.shape == self.data.shape and a.dtype == self.data.dtype and a.flags.c_contiguous
        self.data[...] = a
        self.log.to_device += a.nbytes

    def numpy(self) -> np.ndarray:
        self.log.to_host += self.data.nbytes
        return self.data.copy()


class FakeBinding:
    def __init__(self) -> None:
        self.inputs: dict[str, FakeOrtValue] = {}
        self.outputs: dict[str, FakeOrtValue] = {}

    def bind_ortvalue_input(self, name: str, v: FakeOrtValue) -> None:
        self.inputs[name] = v

    def bind_ortvalue_output(self, name: str, v: FakeOrtValue) -> None:
        self.outputs[name] = v


def _step_fn(z: np.ndarray, h: np.ndarray, x: np.ndarray) -> list[np.ndarray]:
    """A small recursion: two states, a halting logit per sample."""
    z2 = np.tanh(0.9 * z + 0.1 * h + x)
    h2 = 0.5 * h + z2
    return [z2, h2, z2.mean(axis=(1, 2)) * 3.0 + h2[:, 0, 0]]


class FakeCudaSession:
    """Runs `_step_fn` on bound buffers; outputs bound to host memory count as copies to the host, the way
    onnxruntime copies a device result into a preallocated CPU output."""

    def __init__(self) -> None:
        arg = SimpleNamespace
        self.inputs = [arg(name="z"), arg(name="h"), arg(name="x")]
        self.outputs = [
            arg(name="z_out", type="tensor(float)", shape=["batch", 3, 2]),
            arg(name="h_out", type="tensor(float)", shape=["batch", 3, 2]),
            arg(name="halt", type="tensor(float)", shape=["batch"]),
        ]
        self.runs = 0

    def get_providers(self) -> list[str]:
        return [CUDA, CPU]

    def get_provider_options(self) -> dict[str, dict[str, str]]:
        return {CUDA: {"device_id": "3"}, CPU: {}}

    def get_inputs(self) -> list[Any]:
        return self.inputs

    def get_outputs(self) -> list[Any]:
        return self.outputs

    def io_binding(self) -> FakeBinding:
        return FakeBinding()

    def run_with_iobinding(self, io: FakeBinding) -> None:
        self.runs += 1
        for name in ("z", "h", "x"):
            assert io.inputs[name].device == "cuda", "inputs stay on the device"
        out = _step_fn(io.inputs["z"].data, io.inputs["h"].data, io.inputs["x"].data)
        for name, v in zip(["z_out", "h_out", "halt"], out):
            dst = io.outputs[name]
            assert dst.data.shape == v.shape
            dst.data[...] = v
            if dst.device == "cpu":
                FakeOrtValue.log.to_host += v.nbytes


@pytest.fixture
def fake_ort(monkeypatch):
    FakeOrtValue.log = Transfers()
    monkeypatch.setattr(device_step, "ort", SimpleNamespace(OrtValue=FakeOrtValue))
    return FakeOrtValue.log


def _solve(stepper: Any, n: int, cap: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The compacted host loop's use of a stepper (as in the runtime): step, read the state of the samples that
    stop, compact the rest."""
    idx = np.arange(n)
    steps, final = np.zeros(n, np.int64), [np.zeros((n, 3, 2), np.float32) for _ in range(2)]
    for t in range(1, cap + 1):
        stop = stepper.step() > 2.0
        every = t == cap or stop.all()
        if stop.any() or every:
            rows = idx if every else idx[stop]
            for f, s in zip(final, stepper.state):
                f[rows] = s if every else s[stop]
            steps[rows] = t
        if every:
            break
        if stop.any():
            idx = idx[~stop]
            stepper.compact(~stop)
    return steps, final


def _batch(n: int, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 0.6, (n, 3, 2)).astype(np.float32)
    return x, [np.zeros((n, 3, 2), np.float32), np.zeros((1, 3, 2), np.float32)]  # the second broadcasts


def test_device_step_matches_the_plain_loop_and_keeps_the_state_on_the_device(fake_ort):
    n, cap = 12, 10
    x, init = _batch(n)
    sess = FakeCudaSession()
    dev = device_step.DeviceBoundStep.for_session(sess, lambda io, n: sess.run_with_iobinding(io), ["z", "h"], x, init)
    assert dev is not None and dev.session is sess and dev.device_id == 3
    plain_state = [np.ascontiguousarray(np.broadcast_to(s, (n, 3, 2))) for s in init]

    def call(graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return _step_fn(feeds["z"], feeds["h"], feeds["x"])

    want_steps, want = _solve(PlainStep(call, ["z", "h"], plain_state, x), n, cap)
    loaded = fake_ort.to_device
    assert loaded == x.nbytes + 2 * n * 6 * 4  # x and both states, once

    # one step: only the halting signal crosses to the host, nothing goes to the device
    before = (fake_ort.to_device, fake_ort.to_host)
    sig = dev.step()
    assert sig.shape == (n,) and sig.dtype == np.float32
    assert (fake_ort.to_device, fake_ort.to_host) == (before[0], before[1] + n * 4)
    dev.load(x, init)  # same batch size: buffers reused, state and x uploaded again
    assert fake_ort.to_device == 2 * loaded

    got_steps, got = _solve(dev, n, cap)
    assert len(set(want_steps.tolist())) > 1, "the test batch must halt at different steps"
    np.testing.assert_array_equal(got_steps, want_steps)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=0, atol=0)


def test_device_step_copies_state_only_on_read_and_compaction(fake_ort):
    n = 8
    x, init = _batch(n, seed=1)
    sess = FakeCudaSession()
    dev = device_step.DeviceBoundStep.for_session(sess, lambda io, n: sess.run_with_iobinding(io), ["z", "h"], x, init)
    assert dev is not None
    for _ in range(5):
        dev.step()
    state_bytes = 2 * n * 6 * 4
    assert fake_ort.to_host == 5 * n * 4  # five signals, no state
    host = dev.state
    assert fake_ort.to_host == 5 * n * 4 + state_bytes
    assert dev.state is host and fake_ort.to_host == 5 * n * 4 + state_bytes  # read twice, copied once
    keep = np.array([True, False, True, True, False, False, True, False])
    up = fake_ort.to_device
    dev.compact(keep)
    assert dev.n == 4 and fake_ort.to_device - up == 4 * 6 * 4 * 3  # survivors' states and x, uploaded once
    for a, b in zip(dev.state, host):
        np.testing.assert_array_equal(a, b[keep])
    dev.step()
    assert dev.step().shape == (4,)


def test_device_step_declines_what_it_cannot_bind(fake_ort):
    x, init = _batch(2)
    sess = FakeCudaSession()
    run = lambda io, n: None  # noqa: E731
    cpu = FakeCudaSession()
    cpu.get_providers = lambda: [CPU]  # type: ignore[method-assign]
    assert device_step.DeviceBoundStep.for_session(cpu, run, ["z", "h"], x, init) is None
    assert device_step.DeviceBoundStep.for_session(sess, run, ["z"], x, init[:1]) is None  # outputs != states + 1
    half = [s.astype(np.float16) for s in init]
    assert device_step.DeviceBoundStep.for_session(sess, run, ["z", "h"], x, half) is None  # dtype mismatch
    sess.outputs[-1].shape = ["batch", "k"]
    assert device_step.DeviceBoundStep.for_session(sess, run, ["z", "h"], x, init) is None  # signal tail not fixed
