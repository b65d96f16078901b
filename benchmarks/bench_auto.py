"""Is ``backend="auto"`` as good as the best fixed backend? All backends x workloads.

For each workload of ``workloads.py``: ``Executor(backend).map(fn, items)`` on serial,
threads (one per core, and the default count), processes (one per core) and auto,
each on a fresh executor (start-up counts, as in a program): the median of
``--repeat`` rounds (short workloads get more, up to 15, as many as a second of serial
runs takes). In each round every configuration runs once, the order rotating, so that
the machine's drift falls on all of them alike; the median, not the best, so that one
lucky run does not decide. Reports seconds, auto's choice, and the ratios the goals
are about:

- auto / best fixed backend  (goal: at most 1.10, or at most 3 ms more)
- auto / serial              (goal: never more than 5% (plus 3 ms) slower than serial)

Workloads marked ``+hog`` run with another program spinning on one core all along;
``slow_import`` runs in a fresh interpreter per run (its main module is slow to import).

``--plot FILE.png`` draws it: one group of bars per workload, one bar per configuration,
each the time relative to the best fixed backend (auto hatched), with the 1.10 goal line.
It needs matplotlib (the ``plot`` extra: pip install 'fermion[plot]').

Run:  python benchmarks/bench_auto.py [--repeat 3] [--only a,b] [--json FILE] [--markdown FILE]
                                      [--plot FILE.png]
      python benchmarks/bench_auto.py --quick   (a smoke test: seconds, numbers meaningless)
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import workloads

from fermion import Executor
from fermion._costs._platform import cpu_count, gil_enabled


def _configurations(cpus: int) -> list[tuple[str, str, int | None]]:
    """(label, backend, workers)."""
    return [
        ("serial", "serial", None),
        (f"threads x{cpus}", "threads", cpus),
        ("threads (default)", "threads", None),
        (f"processes x{cpus}", "processes", cpus),
        ("auto", "auto", None),
    ]


def _time(
    backend: str, workers: int | None, workload: workloads.Workload, items: list[Any]
) -> tuple[float, str]:
    if workload.script:
        seconds, choice_text = workloads.run_script(backend, workers, items)
        return seconds, choice_text if backend == "auto" else ""
    started = time.perf_counter()
    with Executor(backend, workers) as executor:
        for _ in executor.map(workload.fn, items):
            pass
    seconds = time.perf_counter() - started
    choice = getattr(executor.backend, "choice", None)
    if backend != "auto":
        return seconds, ""
    if choice is None:
        return seconds, "still measuring"
    text = f"{choice.backend} x{choice.workers}"
    if not choice.handed_over:
        text += " (ran here)"
    if choice.busy:
        text += " [busy]"
    return seconds, text


#: auto may take at most this much longer than the best fixed backend ...
GOAL = 1.10
#: ... or this many seconds longer (millisecond jobs) ...
SLACK = 0.003
#: ... and never more than this much longer than serial (plus ``SLACK``).
SERIAL_GOAL = 1.05


def meets_goals(auto: float, best: float, serial: float) -> bool:
    """The goals of issue 15: near the best fixed backend, never clearly behind serial."""
    near_best = auto <= GOAL * best or auto <= best + SLACK
    return near_best and auto <= SERIAL_GOAL * serial + SLACK


#: Short workloads get more rounds, up to this many, so that each configuration runs
#: for at least ``ROUND_SECONDS`` in all: 3 runs of a 30 ms job are mostly noise.
MAX_ROUNDS = 15
ROUND_SECONDS = 1.0


def _rounds(repeat: int, serial_seconds: float) -> int:
    """Rounds for a workload whose first serial run took ``serial_seconds``."""
    wanted = int(ROUND_SECONDS / max(serial_seconds, 1e-3)) + 1
    return max(repeat, min(MAX_ROUNDS, wanted))


def _timed_rounds(
    configurations: list[tuple[str, str, int | None]],
    workload: workloads.Workload,
    items: list[Any],
    repeat: int,
    extend: bool,
) -> tuple[dict[str, list[float]], list[str], int]:
    """Seconds of each configuration in each round, auto's choices, and the rounds run.

    At least ``repeat`` rounds; with ``extend``, as many more as a short workload needs
    (``_rounds``).

    The configurations take turns: each round runs every one of them once, starting one
    further along each time, so that the machine's drift (other programs, frequency
    changes) falls on all of them alike instead of deciding between neighbours.
    """
    times: dict[str, list[float]] = {label: [] for label, _, _ in configurations}
    choices: list[str] = []
    rounds = repeat
    done = 0
    while done < rounds:
        shift = done % len(configurations)
        for label, backend, count in configurations[shift:] + configurations[:shift]:
            seconds, choice = _time(backend, count, workload, items)
            times[label].append(seconds)
            if choice:
                choices.append(choice)
            if extend and done == 0 and backend == "serial":
                rounds = _rounds(repeat, seconds)
        done += 1
    return times, choices, rounds


def _choices_text(choices: list[str]) -> str:
    """auto's choice, or each choice with how often it was made if they differed."""
    counts = collections.Counter(choices)
    if len(counts) == 1:
        return choices[0]
    return ", ".join(f"{choice} ({n}/{len(choices)})" for choice, n in counts.most_common())


def run(quick: bool, repeat: int, only: set[str] | None) -> dict[str, Any]:
    cpus = cpu_count()
    rows = []
    for workload in workloads.WORKLOADS:
        if only and workload.name not in only:
            continue
        with workloads.prepared(workload, quick=quick) as items, workloads.cpu_hog(workload.hog):
            runs, choices, rounds = _timed_rounds(
                _configurations(cpus), workload, items, repeat, extend=not quick
            )
        times = {label: statistics.median(seconds) for label, seconds in runs.items()}
        fixed = {k: v for k, v in times.items() if k != "auto"}
        best_label = min(fixed, key=fixed.__getitem__)
        row = {
            "workload": workload.name,
            "items": len(items),
            "rounds": rounds,
            "suits": workload.suits,
            "seconds": times,
            "runs": runs,
            "best_fixed": best_label,
            "auto_chose": _choices_text(choices),
            "auto_vs_best": times["auto"] / fixed[best_label],
            "auto_vs_serial": times["auto"] / times["serial"],
        }
        row["ok"] = meets_goals(times["auto"], fixed[best_label], times["serial"])
        rows.append(row)
        print(_line(row), flush=True)
    return {
        "python": platform.python_version() + ("t" if not gil_enabled() else ""),
        "gil": gil_enabled(),
        "cpus": cpus,
        "quick": quick,
        "repeat": repeat,
        "rows": rows,
    }


def _line(row: dict[str, Any]) -> str:
    seconds = "  ".join(f"{k} {v:.3f}" for k, v in row["seconds"].items())
    return (
        f"{row['workload']:<11} {seconds}  | auto chose {row['auto_chose']}; "
        f"auto/best {row['auto_vs_best']:.2f}, auto/serial {row['auto_vs_serial']:.2f}"
        f" {'ok' if row['ok'] else 'MISSED'}"
    )


def markdown(report: dict[str, Any]) -> str:
    labels = list(report["rows"][0]["seconds"]) if report["rows"] else []
    head = (
        "| workload | items | rounds | "
        + " | ".join(labels)
        + " | auto chose | auto/best | auto/serial |"
    )
    lines = [
        f"Python {report['python']} ({'GIL' if report['gil'] else 'free-threaded'}), "
        f"{report['cpus']} cores; seconds, median of {report['repeat']} or more interleaved"
        " rounds (column rounds)" + (" (--quick: meaningless)" if report["quick"] else ""),
        "",
        head,
        "|" + "---|" * (len(labels) + 6),
    ]
    for row in report["rows"]:
        cells = " | ".join(f"{row['seconds'][k]:.3f}" for k in labels)
        lines.append(
            f"| {row['workload']} | {row['items']} | {row['rounds']} | {cells} | {row['auto_chose']} | "
            f"{row['auto_vs_best']:.2f} | {row['auto_vs_serial']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def figure(report: dict[str, Any]) -> Any:
    """The grouped bar chart of a report: time relative to the best fixed backend."""
    from fermion.measure._plots import grouped_bars_figure

    rows = report["rows"]
    labels = list(rows[0]["seconds"]) if rows else []
    series = {
        label: [row["seconds"][label] / row["seconds"][row["best_fixed"]] for row in rows]
        for label in labels
    }
    build = "GIL" if report["gil"] else "free-threaded"
    return grouped_bars_figure(
        [row["workload"] for row in rows],
        series,
        highlight="auto",
        goal=GOAL,
        goal_label=f"goal for auto ({GOAL:.2f})",
        ylabel="time / best fixed backend (log scale; lower is better)",
        log=True,
        title=(
            f"backend='auto' against fixed backends\nPython {report['python']} ({build}), "
            f"{report['cpus']} cores, median of {report['repeat']}+ interleaved rounds"
            + (" (--quick: meaningless)" if report["quick"] else "")
        ),
    )


def write_plot(report: dict[str, Any], path: str) -> None:
    """Write the chart as a PNG; needs matplotlib (the ``plot`` extra)."""
    from fermion.measure._plots import write_png

    write_png(figure(report), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run: a smoke test")
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds at least (the median is kept)"
    )
    parser.add_argument("--only", default="", help="comma-separated workload names")
    parser.add_argument("--json", dest="json_path", help="write the results as JSON")
    parser.add_argument("--markdown", dest="markdown_path", help="write the table as Markdown")
    parser.add_argument(
        "--plot", dest="plot_path", help="draw the results as a PNG (needs fermion[plot])"
    )
    args = parser.parse_args()
    if args.plot_path:  # fail before an hour of benchmarks, not after
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error(
                "--plot needs matplotlib, which is not installed; "
                "install the plot extra: pip install 'fermion[plot]'"
            )
    only = {name for name in args.only.split(",") if name} or None
    report = run(args.quick, 1 if args.quick else max(1, args.repeat), only)
    if args.json_path:
        with open(args.json_path, "w") as file:
            json.dump(report, file, indent=2)
    if args.markdown_path:
        with open(args.markdown_path, "w") as file:
            file.write(markdown(report))
    if args.plot_path:
        write_plot(report, args.plot_path)
    print()
    print(markdown(report))


if __name__ == "__main__":
    main()
