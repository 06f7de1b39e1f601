"""Progress of long stages: plain periodic lines when output is not a terminal, rich bars on one,
nothing from library calls."""

from __future__ import annotations

import io
import time

from edgekit import progress


def test_plain_lines_name_the_stage_its_count_and_time_left():
    out = io.StringIO()
    with progress.reporting(progress.PlainReporter(out, every=0.0)), progress.task("validating onnx (float32)", 4) as t:
        for _ in range(4):
            time.sleep(0.01)
            t.advance()
    lines = out.getvalue().splitlines()
    assert lines[0] == "  … validating onnx (float32): started (4 to do)"
    assert any("2/4 (50%)" in ln and "/s" in ln and "left" in ln for ln in lines)
    assert lines[-1].startswith("  … validating onnx (float32): done in ")


def test_library_calls_print_nothing(capsys):
    with progress.task("anything", 3) as t:
        t.advance(3)
    assert capsys.readouterr() == ("", "")


def test_terminals_get_rich_bars_and_other_streams_plain_lines():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(progress.for_stream(io.StringIO()), progress.PlainReporter)
    assert isinstance(progress.for_stream(io.StringIO(), quiet=True), progress.Reporter)
    from rich.console import Console

    r = progress.for_stream(Tty(), Console(file=Tty(), force_terminal=True))
    try:
        assert isinstance(r, progress.RichReporter)
    finally:
        r.close()


def test_bench_progress_in_a_ci_log(trm_artefact):
    """`edgekit bench` with stdout not a terminal: a plain line when each measurement starts and ends."""
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "edgekit.cli", "bench", str(trm_artefact), "--n", "8", "--batch", "8", "--repeats", "1"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("  … ")]
    assert lines[0] == "  … bench float32 host: started" and lines[-1].startswith("  … bench float32 host: done in ")
    js = subprocess.run(
        [sys.executable, "-m", "edgekit.cli", "bench", str(trm_artefact), "--n", "8", "--batch", "8", "--json"],
        capture_output=True,
        text=True,
    )
    assert js.returncode == 0 and js.stdout.lstrip().startswith("{")  # --json: nothing but the JSON on stdout
