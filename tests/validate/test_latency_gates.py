"""Latency gates that hold on a busy machine: float32 and each variant timed in turn within each round, the speed-up
the median of per-round ratios with a distribution-free 95 % interval, and a gate whose interval straddles its limit
says that this many rounds cannot decide it. Timing is simulated with a clock the stand-in runners advance, so the
tests assert the protocol, not this machine's speed."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from edgekit.runtime import latency as latency_module
from edgekit.runtime.gate_eval import evaluate_gates, median_interval, straddles, undecided_note
from edgekit.runtime.latency import interleaved_latency


def _coverage(n: int, k: int) -> float:
    """P(k-th smallest <= median <= k-th largest) for n values of a continuous distribution."""
    below = sum(math.comb(n, j) for j in range(k)) / 2**n
    return 1 - 2 * below


@pytest.mark.parametrize("n", [6, 7, 9, 11, 15, 20, 30, 51])
def test_median_interval_is_the_narrowest_order_statistics_pair_with_95_percent_coverage(n):
    values = list(np.random.default_rng(n).permutation(np.arange(1.0, n + 1)))
    lo, hi = median_interval(values)
    k = int(lo)  # values are 1..n, so the interval's ends are their ranks
    assert hi == n + 1 - k, "symmetric ranks"
    assert _coverage(n, k) >= 0.95
    assert _coverage(n, k + 1) < 0.95, "one rank further in would cover less than 95 %"


def test_median_interval_below_six_values_is_the_whole_range():
    assert median_interval([3.0, 1.0, 2.0, 5.0, 4.0]) == (1.0, 5.0)
    assert median_interval([2.0]) == (2.0, 2.0)
    assert (median_interval([1.0] * 9)) == (1.0, 1.0)
    assert median_interval([1, 2, 3, 4, 5, 6, 7, 8, 9]) == (2, 8)  # the textbook pair for 9 rounds


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class _Runner:
    """A stand-in runner: each solve costs `cost` per example, times the machine's load in the current round."""

    takes_puzzle_ids = False

    def __init__(self, name: str, cost: float, clock: _Clock, load: list[float], calls: list[str]) -> None:
        self.name, self.cost, self.clock, self.load, self.calls = name, cost, clock, load, calls
        self.passes = 0

    def solve(self, x: np.ndarray, puzzle_ids=None) -> None:
        assert puzzle_ids is None
        self.calls.append(self.name)
        rnd = sum(1 for c in self.calls if c == "float32") - 1  # float32 opens every round
        self.clock.t += self.cost * len(x) * self.load[rnd]


def _measure(monkeypatch, load: list[float], rounds: int, costs: dict[str, float], batch: int = 8):
    clock, calls = _Clock(), []
    monkeypatch.setattr(latency_module.time, "perf_counter", clock)
    runners = {name: _Runner(name, c, clock, load, calls) for name, c in costs.items()}
    x = np.zeros((8, 3), np.int64)
    return interleaved_latency(runners, x, None, batch, rounds), calls


def test_rounds_interleave_the_variants_and_the_ratio_cancels_load_that_comes_and_goes(monkeypatch):
    rounds = 9
    # an idle machine, then rounds where something else takes the CPU (3x and 5x slower for both variants)
    load = [1.0, 1.0, 3.0, 1.0, 5.0, 1.0, 3.0, 1.0, 5.0, 1.0]
    lat, calls = _measure(monkeypatch, load, rounds, {"float32": 0.002, "int8": 0.001})
    # ABAB: float32 and int8 take turns, one warm-up round and 9 timed ones
    assert calls == ["float32", "int8"] * (rounds + 1)
    f, q = lat["float32"], lat["int8"]
    assert f["rounds"] == q["rounds"] == rounds and "speedup_vs_float32" not in f
    assert q["speedup_vs_float32"] == 2.0 and q["speedup_interval"] == [2.0, 2.0]
    # the times themselves carry the load: their median is an idle round's, their interval reaches the loaded ones
    assert f["ms_per_puzzle"] == 2.0 and f["interval"] == [2.0, 10.0]
    assert q["ms_per_puzzle"] == 1.0 and q["interval"] == [1.0, 5.0]


def test_a_load_that_hits_one_variant_more_widens_the_interval_and_the_gate_says_it_cannot_decide(monkeypatch):
    rounds = 9
    clock, calls = _Clock(), []
    monkeypatch.setattr(latency_module.time, "perf_counter", clock)
    # the variant's passes are hit by bursts of load that float32's happen to miss: per-round ratios 2.0 or 1.0
    hits = [False, True, False, True, False, True, False, True, False, False]

    class Bursty(_Runner):
        def solve(self, x, puzzle_ids=None):
            rnd = sum(1 for c in self.calls if c == "float32") - 1
            self.calls.append(self.name)
            self.clock.t += self.cost * len(x) * (2.0 if hits[rnd] else 1.0)

    runners = {
        "float32": _Runner("float32", 0.002, clock, [1.0] * 10, calls),
        "int8": Bursty("int8", 0.001, clock, [], calls),
    }
    lat = interleaved_latency(runners, np.zeros((8, 3), np.int64), None, 8, rounds)
    q = lat["int8"]
    assert q["speedup_interval"] == [1.0, 2.0] and q["speedup_vs_float32"] == 2.0
    entry = {"name": "onnx (int8, step graph, host loop)", "metrics": {"exact_full": 1.0}, "latency": q}
    ref = {"name": "pytorch", "metrics": {"exact_full": 1.0}}

    class G:
        min_exact = max_exact_drop = max_exact_halted_drop = min_argmax_agreement = None
        min_halting_agreement = max_residual = max_size_mb = None
        max_latency_ms = 0.75
        min_speedup_vs_float32 = 1.5

    gates = {g["name"]: g for g in evaluate_gates(G(), ref, entry)}
    sp = gates["min_speedup_vs_float32"]
    assert sp["passed"] and sp["interval"] == [1.0, 2.0] and sp["rounds"] == rounds and sp["kind"] == "budget"
    assert straddles(sp)
    assert undecided_note(sp, 256).startswith(f"{rounds} rounds cannot decide this limit")
    ms = gates["max_latency_ms"]  # 1.0 ms median, interval [1.0, 2.0]: above 0.75 whatever the load did
    assert not ms["passed"] and not straddles(ms) and undecided_note(ms) is None


def test_the_printout_and_the_report_say_rounds_for_a_latency_gate(tmp_path: Path):
    from edgekit.cli.results_view import print_results
    from edgekit.validate.report import report_markdown

    gate = {
        "name": "min_speedup_vs_float32",
        "variant": "onnx (int8, step graph, host loop)",
        "value": 1.52,
        "limit": 1.5,
        "passed": True,
        "against": "onnx float32",
        "kind": "budget",
        "interval": [1.31, 1.7],
        "rounds": 9,
    }
    entry = {"name": "onnx (int8, step graph, host loop)", "metrics": {"exact_full": 0.9, "exact_halted": 0.9}}
    res = {"recipe": "r", "target": "x86-cpu", "data": "the first 64 examples", "variants": [entry]}
    res |= {"gates": [gate], "passed": True, "reference": "pytorch"}
    out = io.StringIO()
    print_results(Console(file=out, width=80, color_system=None), res, tmp_path)
    text = " ".join(out.getvalue().split())  # 80 columns wrap the note
    assert "9 rounds cannot decide this limit" in text and "64 examples cannot" not in text
    assert "raise validate.latency_rounds" in text
    md = report_markdown(res, None, [])
    assert "9 rounds cannot decide this limit" in md


def test_latency_rounds_is_a_bounded_recipe_key():
    from pydantic import ValidationError

    from edgekit.schema import ValidateSection

    assert ValidateSection().latency_rounds == 9
    with pytest.raises(ValidationError):
        ValidateSection(latency_rounds=0)
