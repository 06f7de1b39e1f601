"""edgekit.runtime runs with numpy + onnxruntime only, and checks what it is given."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import TORCH_BLOCKER

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
