"""``fermion tour --quick`` end to end, and its HTML report rendered in headless Chromium."""

from __future__ import annotations

import html
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SECTION_KEYS = [
    "scaling",
    "gil",
    "overhead",
    "race",
    "atomic",
    "corruption",
    "mutex",
    "queue",
    "deadlock",
    "starvation",
    "killable",
    "sharing",
    "summary",
]
PLOTS = ["scaling.png", "starvation.png", "sharing.png"]
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
CHROMIUM_CANDIDATES = ["/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"]


@pytest.fixture(scope="module")
def quick_tour(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One quick tour for the module's tests: the report folder and the finished command."""
    out = tmp_path_factory.mktemp("tour") / "report"
    done = subprocess.run(
        [sys.executable, "-m", "fermion", "tour", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    return out, done


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_tour_writes_every_section(
    quick_tour: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, done = quick_tour
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for number in range(1, len(SECTION_KEYS) + 1):
        assert f"[{number}/{len(SECTION_KEYS)}]" in done.stdout  # progress: which step runs
    for name in ["index.html", "tour.json", "tour.txt", *(PLOTS if HAVE_MATPLOTLIB else [])]:
        assert (out / name).stat().st_size > 0, name
    page = (out / "index.html").read_text(encoding="utf-8")
    if not HAVE_MATPLOTLIB:  # the tour runs anyway and says which extra draws the plots
        assert not list(out.glob("*.png"))
        assert page.count("pip install &#x27;fermion[plot]&#x27;") == len(PLOTS)
    report = json.loads((out / "tour.json").read_text(encoding="utf-8"))
    assert [s["key"] for s in report["sections"]] == SECTION_KEYS
    for section in report["sections"]:
        assert section["ok"], section["failures"]
        assert f'<section id="{section["key"]}" data-ok="true">' in page
        for image in section["images"]:
            assert f'<img src="{image}"' in page
    data = {s["key"]: s["data"] for s in report["sections"]}
    # 1: both workloads on every backend, with the GIL load of the thread runs.
    backends = {(r["workload"], r["backend"]) for r in data["scaling"]["runs"]}
    assert backends == {(w, b) for w in ("cpu", "io") for b in ("serial", "threads", "processes")}
    # 2: the detector names the racing line of both unsafe programs, and not the locked one.
    programs = data["race"]["programs"]
    assert programs["unsafe_counter"]["race_lines"] == [12]
    assert programs["unsafe_call_counter"]["race_lines"] == [16]
    assert programs["locked_counter"]["race_lines"] == []
    assert programs["locked_counter"]["failures"] == 0
    # 3: the cycle of five philosophers, reported, and the ordered version clean.
    assert data["deadlock"]["deadlocks"] >= 1
    assert data["deadlock"]["cycle_threads"] == [f"philosopher-{i}" for i in range(5)]
    assert data["deadlock"]["fixed_findings"] == 0
    assert "waits for Lock#" in page
    # 4: the fair policy lets every write in.
    fair = next(p for p in data["starvation"]["policies"] if p["policy"] == "fair")
    assert fair["writes_done"] == len(fair["writer_waits"])
    assert "checker_findings" in data["starvation"]  # fermion check --starvation ran
    # 5 and 6: timings and advice for every case.
    assert len(data["sharing"]["runs"]) == 4
    assert data["summary"]["advice"]["I/O-bound (wait 50 ms)"]["backend"] == "threads"
    assert (out / "programs" / "philosophers.py").is_file()


def _text(section: dict[str, Any]) -> str:
    return "\n".join(section["text"])


def _sections(out: Path) -> dict[str, dict[str, Any]]:
    report = json.loads((out / "tour.json").read_text(encoding="utf-8"))
    return {s["key"]: s for s in report["sections"]}


#: A word of the lecture -> the section whose title must name it.
LECTURE = {
    "GIL": "gil",
    "threads vs processes": "scaling",
    "overhead of processes": "overhead",
    "mutex": "mutex",
    "semaphore": "mutex",
    "atomic": "atomic",
    "queue": "queue",
    "race": "race",
    "data corruption": "corruption",
    "deadlock": "deadlock",
    "starvation": "starvation",
    "killable processes": "killable",
    "sharing": "sharing",
}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_report_covers_the_whole_lecture(
    quick_tour: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, done = quick_tour
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    sections = _sections(out)
    page = (out / "index.html").read_text(encoding="utf-8")
    for word, key in LECTURE.items():
        assert word.lower() in sections[key]["title"].lower(), (word, sections[key]["title"])
        assert f'<section id="{key}"' in page
    for section in sections.values():  # every section ends with its exercise
        assert section["text"][-1].startswith("Exercise: "), section["key"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_each_section_s_numbers_come_from_the_run(
    quick_tour: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    out, done = quick_tour
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    s = _sections(out)
    # The code shown is the file written and run: every listing is in programs/.
    page = (out / "index.html").read_text(encoding="utf-8")
    listed = re.findall(r"<figcaption>programs/([\w.]+): the code this section ran", page)
    assert len(listed) == 7, listed
    for name in listed:
        assert html.escape((out / "programs" / name).read_text(encoding="utf-8")) in page
    # The race: the updates the text announces are the programs' own TIMES.
    race = s["race"]["data"]
    times = {
        int(m)
        for m in re.findall(
            r"^TIMES = ([\d_]+)$",
            "".join(p.read_text(encoding="utf-8") for p in (out / "programs").glob("*counter.py")),
            re.M,
        )
    }
    assert times == {race["times"]}
    assert f"{race['threads']} threads x {race['times']} updates" in _text(s["race"])
    # The switch interval: each measured delay is the one printed.
    gil = s["gil"]["data"]
    for delay in gil["delays"].values():
        assert f"{delay * 1e3:.2f} ms" in _text(s["gil"])
    assert f"every {gil['default_interval'] * 1e3:g} ms by default" in _text(s["gil"])
    # The overhead of processes.
    trips = s["overhead"]["data"]["round_trip"]
    assert f"{trips['processes'] * 1e6:.0f} µs against {trips['threads'] * 1e6:.0f} µs" in _text(
        s["overhead"]
    )
    # Atomic operations: append and AtomicInt never lose an update.
    atomic = s["atomic"]["data"]["results"]
    assert atomic["append_to_list"]["failures"] == atomic["add_atomic"]["failures"] == 0
    for result in atomic.values():
        assert f"{result['failures']}/{result['runs']}" in _text(s["atomic"])
    # Data corruption: the locked bank keeps its money and every audit sees it whole.
    bank = s["corruption"]["data"]
    assert bank["results"]["transfer_locked"]["total"] == bank["expected"]
    assert bank["results"]["transfer_locked"]["wrong_audits"] == 0
    assert bank["results"]["transfer_per_account"]["total"] == bank["expected"]
    for result in bank["results"].values():
        assert f"{result['wrong_audits']} of {result['audits']}" in _text(s["corruption"])
    # Mutex vs semaphore: only the owner may release an RLock; the checked lock lets
    # another thread release it, as threading.Lock does, and names both threads.
    mutex = s["mutex"]["data"]
    assert mutex["release_by_stranger"]["threading.RLock()"].startswith("RuntimeError")
    checked = mutex["release_by_stranger"]["fermion.sync.CheckedLock()"]
    assert checked.startswith("released it, and warned:")
    assert "'not-the-owner'" in checked and "MainThread" in checked
    assert mutex["release_by_stranger"]["threading.Lock()"] == "released it"
    assert mutex["release_by_stranger"]["threading.Semaphore(1)"] == "released it"
    assert [p["most_inside"] for p in mutex["permits"].values()] == [1, 2, 3]
    assert f"median {mutex['signal_latency'] * 1e6:.0f} µs later" in _text(s["mutex"])
    # The queue delivers every item once, and the bounded one stays within its bound.
    queue = s["queue"]["data"]
    assert all(r["complete"] for r in queue["results"].values())
    bounded = queue["results"][f"queue.Queue(maxsize={queue['bound']})"]
    assert bounded["fullest"] <= queue["bound"]
    assert f"never held more than {bounded['fullest']} items" in _text(s["queue"])
    # Killable: a process worker is replaced; a thread in C runs on past its timeout.
    runs = {(r["backend"], r["task"]): r for r in s["killable"]["data"]["runs"]}
    timeout = s["killable"]["data"]["timeout"]
    assert runs[("processes", "long_call_in_c")]["worker_replaced"]
    assert runs[("threads", "long_call_in_c")]["task_stopped"] > timeout * 2
    c_call = runs[("threads", "long_call_in_c")]
    assert f"stopped at {c_call['task_stopped']:.2f} s" in _text(s["killable"])
    # Every section measured the machine's load, and says so when it was busy.
    for section in s.values():
        assert section["load"] is not None
        if section["load"]["busy"]:
            assert section["busy_notice"].startswith("Busy machine: ")
            assert html.escape(section["busy_notice"]) in page
        else:
            assert section["busy_notice"] is None


def _chromium() -> str | None:
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def _chromium_command(browser: str, profile: Path, *args: str) -> list[str]:
    return [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        *args,
    ]


_PROBE = """<script>
window.addEventListener("load", function () {
  var sizes = Array.prototype.map.call(document.images, function (img) {
    return img.naturalWidth + "x" + img.naturalHeight;
  });
  document.body.setAttribute("data-images", sizes.join(","));
});
</script>
</body>"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_report_renders_its_images_in_headless_chromium(
    quick_tour: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip(
            "headless Chromium is not installed (Debian: apt-get install -y chromium); "
            "the screenshot test needs it"
        )
    if not HAVE_MATPLOTLIB:
        pytest.skip("matplotlib (the 'plot' extra) is not installed: the report has no images")
    out, done = quick_tour
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # A copy of the page beside the images, with a script that records each image's
    # decoded size: 0x0 for an image the browser could not load or decode.
    probe_page = out / "probe.html"
    probe_page.write_text(
        (out / "index.html").read_text(encoding="utf-8").replace("</body>", _PROBE),
        encoding="utf-8",
    )
    dom = subprocess.run(
        _chromium_command(browser, tmp_path / "profile", "--dump-dom", probe_page.as_uri()),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    found = re.search(r'data-images="([^"]*)"', dom.stdout)
    assert found, f"Chromium did not run the page's script: {dom.stderr[-2000:]}"
    sizes = [tuple(int(n) for n in s.split("x")) for s in found.group(1).split(",") if s]
    assert len(sizes) == len(PLOTS)
    assert all(width > 100 and height > 100 for width, height in sizes), sizes

    screenshot = out / "screenshot.png"
    shot = subprocess.run(
        _chromium_command(
            browser,
            tmp_path / "profile",
            f"--screenshot={screenshot}",
            "--window-size=1200,3000",
            (out / "index.html").as_uri(),
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert screenshot.is_file(), shot.stderr[-2000:]
    # The same page without its images must look different: the plots were drawn.
    bare_page = out / "bare.html"
    bare_page.write_text(
        re.sub(r"<img [^>]*>", "", (out / "index.html").read_text(encoding="utf-8")),
        encoding="utf-8",
    )
    bare = out / "bare.png"
    subprocess.run(
        _chromium_command(
            browser,
            tmp_path / "profile",
            f"--screenshot={bare}",
            "--window-size=1200,3000",
            bare_page.as_uri(),
        ),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert bare.is_file()
    image = pytest.importorskip("matplotlib.image")
    with_images, without = image.imread(screenshot), image.imread(bare)
    assert with_images.shape == without.shape
    differing = (abs(with_images - without).sum(axis=-1) > 0.1).mean()
    assert differing > 0.05, f"only {differing:.1%} of the screenshot changed with the images"
    if os.environ.get("FERMION_KEEP_SCREENSHOT"):
        shutil.copy(screenshot, os.environ["FERMION_KEEP_SCREENSHOT"])
