"""The command line, run as a user runs it: ``python -m minialexnet ...`` in a subprocess."""

from __future__ import annotations

import subprocess
import sys


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "minialexnet", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    assert "summary" in result.stdout and "tour" in result.stdout


def test_summary_prints_the_total():
    # The paper variant's total from docs/facts.md's "Counts" table (the other variants'
    # totals are checked in-process by test_accounting.py, without a subprocess each).
    result = run_cli("summary", "--variant", "paper")
    assert result.returncode == 0, result.stderr
    total_line = next(line for line in result.stdout.splitlines() if line.startswith("total"))
    assert "60,965,224" in total_line


def test_summary_refuses_an_unknown_variant():
    result = run_cli("summary", "--variant", "tiny")
    assert result.returncode == 2
    assert "invalid choice: 'tiny'" in result.stderr


def test_tour_runs_every_check_and_passes():
    result = run_cli("tour")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert "All checks passed." in result.stdout
    assert "FAIL" not in result.stdout
    # Every check line says for how many entries the relative-error floor was used, and the
    # whole-network lines that their entries were drawn among the non-zero gradients.
    checks = [line for line in result.stdout.splitlines() if "max rel error" in line]
    assert checks and all("floor used for" in line for line in checks)
    (fc7,) = [line for line in checks if line.lstrip().startswith("fc7.W ")]
    assert "non-zero; floor used for" in fc7


def test_a_reader_that_goes_away_ends_the_command_without_a_traceback():
    # `summary | head -1`: the reader closes the pipe; here it is closed before the first write
    child = subprocess.Popen(
        [sys.executable, "-m", "minialexnet", "summary"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    child.stdout.close()
    stderr = child.stderr.read()
    assert child.wait(timeout=120) == 141  # 128 + SIGPIPE, what a shell reports for `cat | head`
    assert stderr == ""
