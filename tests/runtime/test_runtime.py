"""edgekit.runtime runs with numpy + onnxruntime only, and checks what it is given."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from bound_loop import runs_bound_like_plain, sudoku_mix
from import_blocker import TORCH_BLOCKER

from edgekit.runtime import Runner
from edgekit.runtime.runner import RuntimeInputError


def test_runtime_imports_and_runs_without_torch(trm_artefact, root):
    code = TORCH_BLOCKER + textwrap.dedent(f"""
        sys.path.insert(0, {str(root)!r})
        import numpy as np
        from edgekit.runtime import Runner
        r = Runner({str(trm_artefact)!r})
        x = np.ones((2, 81), dtype=np.int64)
        out = r.run(x, steps=2)
        assert "torch" not in sys.modules
        print(out.preds[-1].shape, len(out.halt))
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "(2, 81) 2" in p.stdout


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.ones((2, 80), dtype=np.int64), "expected [batch >= 1, 81]"),
        (np.ones((2, 81), dtype=np.float32), "expected integer token ids"),
        (np.full((1, 81), 11, dtype=np.int64), "token ids must lie in [0, 10]"),
        (np.full((1, 81), -1, dtype=np.int64), "token ids must lie in [0, 10]"),
    ],
)
def test_runtime_rejects_bad_inputs(trm_artefact, bad, message):
    with pytest.raises(RuntimeInputError) as e:
        Runner(trm_artefact).run(bad, steps=1)
    assert message in str(e.value)


def test_runtime_single_puzzle_without_batch_axis(trm_artefact):
    out = Runner(trm_artefact).run(np.ones(81, dtype=np.int64), steps=1)
    assert out.preds[0].shape == (1, 81)


def test_io_bound_host_loop_answers_bit_for_bit_as_the_plain_one(trm_artefact):
    x = sudoku_mix(24)
    assert len(set(Runner(trm_artefact).solve(x).steps.tolist())) > 1  # samples leave the batch at several steps
    runs_bound_like_plain(trm_artefact, "float32", x)


def test_bound_buffers_are_not_shared_by_concurrent_solves(trm_artefact):
    """Two threads solving on one Runner: each answer is the one a lone solve gives."""
    from concurrent.futures import ThreadPoolExecutor

    r = Runner(trm_artefact)
    x = sudoku_mix(16)
    want = [r.solve(x[i : i + 4]).logits for i in range(0, 16, 4)]
    with ThreadPoolExecutor(2) as pool:
        for _ in range(3):
            got = list(pool.map(lambda i: r.solve(x[i : i + 4]).logits, range(0, 16, 4)))
            assert all(np.array_equal(g, w) for g, w in zip(got, want))
