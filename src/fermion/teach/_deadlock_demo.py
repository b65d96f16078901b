"""``fermion demo deadlock``: the dining philosophers, hanging and then reported.

First the program runs under plain threading in a child process: every philosopher
takes the left fork, waits for the right one, and nothing moves until the demo kills
it. Then ``fermion check`` runs the same unmodified program and reports the cycle:
which philosopher holds which fork, taken where, and waits for which, where.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import click

from fermion.check._cli import run_checked

__all__ = ["PHILOSOPHERS", "deadlock_demo"]

PHILOSOPHERS = '''\
"""Five philosophers, five forks: each takes the left fork, then the right one."""
import threading

N = 5
forks = [threading.Lock() for _ in range(N)]
all_seated = threading.Barrier(N)


def philosopher(i):
    left, right = forks[i], forks[(i + 1) % N]
    with left:
        all_seated.wait()  # everyone holds a left fork: the classic bad moment
        with right:
            print(f"philosopher {i} eats")


threads = [threading.Thread(target=philosopher, args=(i,), name=f"philosopher-{i}") for i in range(N)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("everyone ate")
'''


@click.command("deadlock")
@click.option(
    "--hang-seconds",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="How long to let the unchecked program hang before killing it.",
)
def deadlock_demo(hang_seconds: float) -> None:
    """The dining philosophers: a hang under plain threading, a report under checks."""
    with tempfile.TemporaryDirectory(prefix="fermion-demo-") as folder:
        script = os.path.join(folder, "philosophers.py")
        with open(script, "w", encoding="utf-8") as stream:
            stream.write(PHILOSOPHERS)
        click.secho("1. Plain threading:", bold=True)
        click.echo(f"   python {os.path.basename(script)}  (killed after {hang_seconds:g} s)")
        try:
            subprocess.run([sys.executable, script], timeout=hang_seconds, check=False)
            click.echo("   ...it finished: this time the scheduler was kind.")
        except subprocess.TimeoutExpired:
            click.echo(
                f"   ...no output after {hang_seconds:g} s: each philosopher holds one fork and "
                "waits for the next. It would hang forever."
            )
        click.echo()
        click.secho("2. The same program under fermion check:", bold=True)
        report = run_checked([script], ["deadlocks", "lock-order"], timeout=30)
        click.echo(report.to_text())
