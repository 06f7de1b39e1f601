import pytest
import torch

from edgekit.errors import CheckpointError
from edgekit.models.config import DEQConfig, SolverConfig
from edgekit.models.deq import build_deq, from_torchdeq, solver_from_torchdeq


def _model(solver=SolverConfig()):
    torch.manual_seed(0)
    m = build_deq(DEQConfig(in_features=16, hidden_size=32, num_classes=4, solver=solver))
    with torch.no_grad():
        m.f.W.weight.mul_(0.9 / torch.linalg.matrix_norm(m.f.W.weight, ord=2))
    return m.eval()


def test_fixed_point_and_anderson_reach_the_same_fixed_point():
    m = _model()
    x = torch.rand(8, 16)
    fp = m.solve(x, SolverConfig(name="fixed_point", max_iter=300, tol=1e-6))
    aa = m.solve(x, SolverConfig(name="anderson", max_iter=300, tol=1e-6))
    assert fp.converged.all() and aa.converged.all()
    assert torch.allclose(fp.z, aa.z, atol=1e-4)
    assert aa.iterations.float().mean() < fp.iterations.float().mean()
    # z* really is a fixed point of f
    inj = m.encode(x)
    assert float((m.f(fp.z, inj) - fp.z).detach().norm(dim=1).max()) < 1e-4


def test_damping_and_iteration_cap():
    m = _model()
    x = torch.rand(4, 16)
    r = m.solve(x, SolverConfig(name="fixed_point", max_iter=3, tol=0.0, damping=0.5))
    assert not r.converged.any() and (r.iterations == 3).all() and len(r.trace) == 3


def test_torchdeq_module_settings_are_read_from_the_built_module():
    torchdeq = pytest.importorskip("torchdeq", reason="torchdeq is not installed (pip install edgekit[deq])")
    deq = torchdeq.get_deq(f_solver="anderson", f_max_iter=30, f_tol=1e-4, f_stop_mode="rel", eval_f_max_iter=20)
    s = solver_from_torchdeq(deq, {"m": 4})
    assert (s.name, s.max_iter, s.tol, s.stop_mode, s.anderson_m) == ("anderson", 20, 1e-4, "rel", 4)
    deq2 = torchdeq.get_deq(f_solver="fixed_point_iter", f_max_iter=12, eval_factor=2.0)
    assert solver_from_torchdeq(deq2).max_iter == 24  # eval_factor resolved by torchdeq
    m = _model()
    wrapped = from_torchdeq(deq, m.f, m.encoder, m.head, 32)
    assert wrapped.solve(torch.rand(2, 16)).z.shape == (2, 32)
    with pytest.raises(CheckpointError, match="broyden"):
        solver_from_torchdeq(torchdeq.get_deq(f_solver="broyden"))
