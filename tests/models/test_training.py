"""The deep-supervision trainer follows the reference loop: slots persist until they halt."""

import torch

from edgekit.models.act import build_act_model
from edgekit.models.config import ACTConfig
from edgekit.tasks import sudoku
from edgekit.training.act import TrainSettings, train_act


def test_trainer_runs_lowers_loss_and_returns_ema_copy():
    torch.manual_seed(0)
    cfg = ACTConfig(
        family="hrm",
        seq_len=81,
        vocab_size=11,
        puzzle_emb_ndim=32,
        H_cycles=1,
        L_cycles=1,
        H_layers=1,
        L_layers=1,
        hidden_size=32,
        expansion=2,
        num_heads=2,
        halt_max_steps=4,
        forward_dtype="float32",
    )
    model = build_act_model(cfg)
    pool = sudoku.SudokuPool.generate(4, seed=1)
    calls = []

    def sampler(n, rng):
        calls.append(n)
        return pool.sample(n, (34, 40), rng)

    before = {k: v.clone() for k, v in model.state_dict().items()}
    ema, log = train_act(
        model,
        sampler,
        TrainSettings(steps=20, batch_size=8, lr=3e-3, warmup=1, log_every=10, ema=0.9),
        log=lambda s: None,
    )
    assert log.steps_done == 20 and len(log.rows) == 2
    assert log.rows[-1]["loss"] < log.rows[0]["loss"] + 0.5
    assert calls[0] == 8 and sum(calls) > 8  # refills happen only for halted slots
    assert max(calls[1:]) <= 8
    assert not torch.equal(before["lm_head.weight"], model.state_dict()["lm_head.weight"])
    assert not torch.equal(ema.lm_head.weight, model.lm_head.weight)  # EMA is a separate, smoothed copy
