"""Section 4: starvation. A reader-writer lock that always lets readers in
(``fermion.sync.RWLock(policy="readers")``) starves a writer while readers keep
overlapping; the fair policy (first come, first served) lets the writer in after the
readers already inside. Measured: how long the writer waited for each write, and how
long readers waited.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from fermion.sync import RWLock
from fermion.teach.tour._programs import RWLOCK_STARVATION, run_check, write_program
from fermion.teach.tour._section import SectionResult, TourContext

__all__ = ["PolicyRun", "measure_policy", "run"]

KEY = "starvation"
TITLE = "Starvation: a readers-first RWLock vs the fair policy"
EXERCISE = (
    'In rwlock_starvation.py, change RWLock("readers") to RWLock("fair") and run it again: '
    "how long does the writer wait now, and what do the readers pay for it?"
)


@dataclass(frozen=True)
class PolicyRun:
    """What one policy did: the writer's waits (seconds; None for a write that gave
    up at ``give_up``), readers' mean and longest wait, and reads done."""

    policy: str
    writer_waits: tuple[float | None, ...]
    give_up: float
    reader_mean_wait: float
    reader_max_wait: float
    reads: int

    @property
    def writes_done(self) -> int:
        return sum(1 for w in self.writer_waits if w is not None)

    @property
    def longest_writer_wait(self) -> float:
        """The longest wait, counting a write that gave up as ``give_up``."""
        return max((self.give_up if w is None else w for w in self.writer_waits), default=0.0)


def measure_policy(
    policy: str,
    *,
    readers: int = 4,
    hold: float = 0.002,
    writes: int = 3,
    give_up: float = 1.0,
) -> PolicyRun:
    """``readers`` threads read in a loop, each holding the lock ``hold`` seconds, so
    reads overlap; one writer tries ``writes`` times, giving up after ``give_up`` s."""
    lock = RWLock(policy)
    stop = threading.Event()
    all_reading = threading.Barrier(readers + 1)
    reader_waits: list[list[float]] = [[] for _ in range(readers)]
    errors: list[BaseException] = []

    def reader(waits: list[float]) -> None:
        try:
            all_reading.wait(timeout=10)
            while not stop.is_set():
                asked = time.perf_counter()
                with lock.read():
                    waits.append(time.perf_counter() - asked)
                    time.sleep(hold)
        except BaseException as error:  # reported by the caller
            errors.append(error)
            stop.set()

    threads = [
        threading.Thread(target=reader, args=(w,), name=f"tour-reader-{i}", daemon=True)
        for i, w in enumerate(reader_waits)
    ]
    writer_waits: list[float | None] = []
    for thread in threads:
        thread.start()
    try:
        all_reading.wait(timeout=10)
        time.sleep(hold * 5)  # let the reads overlap
        for _ in range(writes):
            asked = time.perf_counter()
            if lock.acquire_write(timeout=give_up):
                writer_waits.append(time.perf_counter() - asked)
                time.sleep(hold / 2)
                lock.release_write()
            else:
                writer_waits.append(None)
            time.sleep(hold * 5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    if errors:
        raise errors[0]
    every = [w for waits in reader_waits for w in waits]
    return PolicyRun(
        policy,
        tuple(writer_waits),
        give_up,
        statistics.fmean(every) if every else 0.0,
        max(every, default=0.0),
        len(every),
    )


def _ms(seconds: float | None, give_up: float) -> str:
    return f"gave up at {give_up:g} s" if seconds is None else f"{seconds * 1e3:.1f} ms"


def _draw(runs: list[PolicyRun]) -> Callable[[Any], None]:
    def draw(figure: Any) -> None:
        axes = figure.subplots()
        names = [r.policy for r in runs]
        writer = [r.longest_writer_wait * 1e3 for r in runs]
        reader = [max(r.reader_mean_wait * 1e3, 1e-3) for r in runs]
        positions = range(len(runs))
        axes.bar(
            [p - 0.2 for p in positions],
            writer,
            width=0.4,
            label="writer: longest wait",
            color="tab:red",
        )
        axes.bar(
            [p + 0.2 for p in positions],
            reader,
            width=0.4,
            label="readers: mean wait",
            color="tab:blue",
        )
        for p, r in zip(positions, runs, strict=False):
            if r.writes_done < len(r.writer_waits):
                axes.annotate(
                    "starved\n(gave up)",
                    (p - 0.2, r.longest_writer_wait * 1e3),
                    ha="center",
                    va="bottom",
                    fontsize=9,
                )
        axes.set_yscale("log")
        axes.set_ylim(top=max(writer + reader) * 8)
        axes.set_xticks(list(positions))
        axes.set_xticklabels([f'RWLock(policy="{n}")' for n in names])
        axes.set_ylabel("milliseconds (log scale)")
        axes.set_title("How long the writer and the readers waited")
        axes.grid(True, axis="y", alpha=0.3)
        axes.legend()

    return draw


def _check_starvation(ctx: TourContext, section: SectionResult) -> None:
    """Run a program whose writer starves for 1.6 s under ``fermion check --starvation``
    and show the checker's verdict."""
    script = write_program(ctx.out / "programs", "rwlock_starvation", RWLOCK_STARVATION)
    ctx.progress(f"fermion check --starvation {script.name}")
    try:
        report, _ = run_check(ctx.python, ["--starvation"], script, timeout=30)
    except Exception as error:
        section.fail("the starvation check", error)
        return
    starving = [f for f in report.get("findings", []) if f.get("kind") == "starvation"]
    section.data["checker_findings"] = len(starving)
    if starving:
        section.say(
            f"`fermion check --starvation {script.name}` (a writer kept out for 1.6 s) reports:"
        )
        section.show(str(starving[0].get("message", "")).replace(str(script.parent) + "/", ""))
    else:
        section.note(
            f"`fermion check --starvation {script.name}` (a writer kept out for 1.6 s by "
            "overlapping readers) reported no starvation: this version of the checker does "
            "not see a writer starved by a readers-first RWLock; the wait times above do."
        )


def run(ctx: TourContext, section: SectionResult) -> None:
    """Measure the writer's waits under the readers-first, fair and writers-first policies."""
    readers, writes, give_up = (4, 2, 0.4) if ctx.quick else (4, 3, 1.0)
    section.say(
        f"{readers} reader threads read in a loop, each holding the read lock 2 ms, so there "
        f"is always a reader inside; one writer asks {writes} times for the write lock and "
        f"gives up after {give_up:g} s."
    )
    runs: list[PolicyRun] = []
    for policy in ("readers", "fair", "writers"):
        ctx.progress(f'RWLock(policy="{policy}")')
        try:
            runs.append(measure_policy(policy, readers=readers, writes=writes, give_up=give_up))
        except Exception as error:
            section.fail(f'the run with RWLock(policy="{policy}")', error)
    if not runs:
        return
    rows = [
        f"{'policy':<9} {'writes done':>11}  {'writer waits':<50} {'readers mean / max wait':<24} reads"
    ]
    for r in runs:
        waits = ", ".join(_ms(w, r.give_up) for w in r.writer_waits)
        rows.append(
            f"{r.policy:<9} {r.writes_done:>5} of {len(r.writer_waits):<3}  {waits:<50} "
            f"{r.reader_mean_wait * 1e3:.2f} / {r.reader_max_wait * 1e3:.1f} ms{'':<6} {r.reads}"
        )
    section.show("\n".join(rows))
    section.data["policies"] = [
        {**asdict(r), "writes_done": r.writes_done, "longest_writer_wait": r.longest_writer_wait}
        for r in runs
    ]
    by_policy = {r.policy: r for r in runs}
    readers_first, fair = by_policy.get("readers"), by_policy.get("fair")
    if readers_first is not None and fair is not None:
        starved = readers_first.writes_done < len(readers_first.writer_waits)
        verdict = (
            "the writer starved: readers kept overlapping, so the lock was never free of readers"
            if starved
            else f"the writer got in this time, after up to {readers_first.longest_writer_wait * 1e3:.0f} ms"
        )
        section.say(
            f'With policy="readers", {verdict}. With policy="fair", the writer waited at most '
            f"{fair.longest_writer_wait * 1e3:.1f} ms: readers that come after it wait behind it, "
            f"so readers wait a little longer on average ({fair.reader_mean_wait * 1e3:.2f} ms "
            f"instead of {readers_first.reader_mean_wait * 1e3:.2f} ms)."
        )
    _check_starvation(ctx, section)
    ctx.save_plot(
        section,
        "starvation.png",
        "The writer's longest wait and the readers' mean wait under each policy (log scale).",
        _draw(runs),
    )
