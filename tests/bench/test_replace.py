"""The replace benchmark keeps working: on a small data set, through the real service, every subscription moves
exactly once and the figure is printed (not timed here: a ratio on a few hundred rows means nothing).

It runs in a process of its own, like the other benchmarks: their portal app sets up app-wide extensions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_replace_benchmark_moves_each_subscription_once_and_prints_its_figure(tmp_path: Path) -> None:
    done = subprocess.run(  # noqa: S603 - the benchmark of this repository
        [sys.executable, "-m", "bench.replace", "--subscriptions", "300", "--customers", "30", "--rounds", "1",
         "--chunk", "70", "--database", f"sqlite:///{tmp_path / 'replace.sqlite3'}"],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode in (0, 1), done.stderr[-2000:]
    assert "NOT MOVED EXACTLY ONCE" not in done.stdout, done.stdout
    assert "replace of 300 subscriptions" in done.stdout and "every subscription moved" in done.stdout
    assert "30 customers emailed" in done.stdout
    assert ("MISSED" in done.stdout) == (done.returncode == 1)


def test_the_check_finds_a_subscription_not_moved(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from bench import replace\n"
        "database = sys.argv[1]\n"
        "replace.build(database, 20, 4)\n"
        "print(replace.check(database, 1, 20))\n")
    done = subprocess.run([sys.executable, "-c", script, f"sqlite:///{tmp_path / 'r.sqlite3'}"],  # noqa: S603 - this file's script
                          capture_output=True, text=True, timeout=120, check=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert "subscriptions on the target plan: 0, expected 20" in done.stdout.splitlines()[-1]
