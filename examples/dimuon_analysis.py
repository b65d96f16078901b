"""A collider-style analysis: the dimuon mass spectrum from ROOT files, in parallel.

Run it (needs the ``examples`` extra: ``pip install 'fermion[examples]'``, which is
uproot, awkward and matplotlib):

    python examples/dimuon_analysis.py                 # 8 files x 200 000 events
    python examples/dimuon_analysis.py --quick         # 2 files x 20 000 events
    python examples/dimuon_analysis.py --out results   # where files and plot go

1. Writes synthetic events to ROOT files with uproot, in parallel (one process per
   file): a TTree ``Events`` with jagged muon branches laid out as in CMS NanoAOD
   (``nMuon``, ``Muon_pt``, ``Muon_eta``, ``Muon_phi``, ``Muon_charge``). Each event
   holds a muon pair from a resonance (eta, omega, phi, J/psi, psi(2S), Upsilon, Z) or
   from the falling continuum, decayed and boosted, with 1.5 % mass resolution, plus
   now and then an extra muon.
2. Reads the files in parallel with ``fermion.Executor`` (serial, threads, processes),
   keeps events with exactly two muons of opposite charge, computes their invariant
   mass, fills a histogram per file, and merges the histograms of all workers (a sum:
   histograms are what travels, never events).
3. Saves the spectrum (``dimuon_mass.png``) and prints where the peaks came out.

Measured on the development machine (2 cores shared with seven other busy jobs, so
take the ratios loosely; Python 3.11, uproot 5.7.7, awkward 2.14,
``python examples/dimuon_analysis.py``)::

    wrote 8 files, 1600000 events, 48.1 MB in 7.6 s (processes)
    backend    workers   seconds  speedup  events/s
    serial           1      2.22    1.00x      719k
    threads          6      1.56    1.43x     1028k
    processes        2      5.80    0.38x      276k
    1472048 opposite-charge pairs of 1600000 events
    peaks: J/psi 3.103 GeV (3.097), Upsilon(1S) 9.506 GeV (9.460), Z 90.64 GeV (91.188)

Threads win here: decompression and the NumPy/awkward kernels release the GIL, and two
seconds of work do not pay for starting processes that must import uproot and awkward
first. Processes pay off with more files per worker (``--files 64``). The peaks sit
within one bin (1.6 % wide) of the true masses.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import fermion

MUON_MASS = 0.1056583755  # GeV
#: name -> (mass GeV, natural width GeV, share of events)
RESONANCES = {
    "eta": (0.547862, 0.0, 0.02),
    "omega": (0.78266, 0.00868, 0.03),
    "phi": (1.019461, 0.004249, 0.03),
    "J/psi": (3.0969, 0.0, 0.12),
    "psi(2S)": (3.686097, 0.0, 0.015),
    "Upsilon(1S)": (9.4603, 0.0, 0.04),
    "Upsilon(2S)": (10.02326, 0.0, 0.012),
    "Z": (91.1876, 2.4952, 0.10),
}
RESOLUTION = 0.015
BINS = np.geomspace(0.25, 150.0, 401)


def _parent_masses(rng: np.random.Generator, size: int) -> np.ndarray:
    shares = np.array([share for _, _, share in RESONANCES.values()])
    choice = rng.choice(len(shares) + 1, size=size, p=[*shares, 1.0 - shares.sum()])
    masses = 0.25 * (150.0 / 0.25) ** (rng.random(size) ** 1.6)  # falling continuum
    for index, (mass, width, _) in enumerate(RESONANCES.values()):
        chosen = choice == index
        count = int(chosen.sum())
        shape = rng.standard_cauchy(count) * width / 2 if width else np.zeros(count)
        masses[chosen] = mass + np.clip(shape, -10 * width, 10 * width)
    masses *= 1.0 + RESOLUTION * rng.standard_normal(size)
    return np.maximum(masses, 2 * MUON_MASS + 1e-3)


def _decay(rng: np.random.Generator, masses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two muons from parents of ``masses``: their lab momenta, shape (2, n, 3)."""
    n = masses.size
    pt = rng.exponential(8.0, n) + 0.5
    eta = rng.uniform(-2.4, 2.4, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    parent = np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)], axis=1)
    energy = np.sqrt((parent**2).sum(axis=1) + masses**2)
    # Each muon in the parent's rest frame: back to back, isotropic.
    p_star = np.sqrt(np.maximum(masses**2 / 4 - MUON_MASS**2, 0.0))
    cos_theta = rng.uniform(-1, 1, n)
    sin_theta = np.sqrt(1 - cos_theta**2)
    azimuth = rng.uniform(-np.pi, np.pi, n)
    direction = np.stack(
        [sin_theta * np.cos(azimuth), sin_theta * np.sin(azimuth), cos_theta], axis=1
    )
    beta = parent / energy[:, None]
    beta2 = (beta**2).sum(axis=1)
    gamma = 1.0 / np.sqrt(1.0 - beta2)
    muons = []
    for sign in (1.0, -1.0):
        p = sign * p_star[:, None] * direction
        e = np.sqrt(p_star**2 + MUON_MASS**2)
        bp = (beta * p).sum(axis=1)
        factor = np.where(beta2 > 0, (gamma - 1) * bp / np.where(beta2 > 0, beta2, 1), 0.0)
        muons.append(p + (factor + gamma * e)[:, None] * beta)
    return muons[0], muons[1]


def _kinematics(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pt = np.hypot(p[:, 0], p[:, 1])
    return pt, np.arcsinh(p[:, 2] / np.maximum(pt, 1e-9)), np.arctan2(p[:, 1], p[:, 0])


def write_events(path: str, events: int, seed: int) -> int:
    """Write ``events`` synthetic events to the ROOT file ``path``; returns its size."""
    import awkward as ak
    import uproot

    rng = np.random.default_rng(seed)
    first, second = _decay(rng, _parent_masses(rng, events))
    pt1, eta1, phi1 = _kinematics(first)
    pt2, eta2, phi2 = _kinematics(second)
    charge1 = rng.choice([-1, 1], events).astype(np.int32)
    extra = rng.random(events) < 0.08  # a third muon, from somewhere else
    count = 2 + extra.astype(np.int64)
    n_extra = int(extra.sum())
    pt3 = rng.exponential(5.0, n_extra) + 3.0
    eta3 = rng.uniform(-2.4, 2.4, n_extra)
    phi3 = rng.uniform(-np.pi, np.pi, n_extra)
    charge3 = rng.choice([-1, 1], n_extra).astype(np.int32)

    def jagged(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> ak.Array:
        flat = np.empty(int(count.sum()), dtype=np.result_type(a, c))
        starts = np.concatenate([[0], np.cumsum(count)[:-1]])
        flat[starts] = a
        flat[starts + 1] = b
        flat[starts[extra] + 2] = c
        return ak.unflatten(flat, count)

    muons = ak.zip(
        {
            "pt": jagged(pt1.astype(np.float32), pt2.astype(np.float32), pt3.astype(np.float32)),
            "eta": jagged(
                eta1.astype(np.float32), eta2.astype(np.float32), eta3.astype(np.float32)
            ),
            "phi": jagged(
                phi1.astype(np.float32), phi2.astype(np.float32), phi3.astype(np.float32)
            ),
            "charge": jagged(charge1, -charge1, charge3),
        }
    )
    with uproot.recreate(path) as file:
        # mktree makes a TTree (assigning a dict would make an RNTuple in uproot 5.7+).
        file.mktree("Events", {"Muon": muons.type}, title="synthetic dimuon events")
        file["Events"].extend({"Muon": muons})
    return Path(path).stat().st_size


def analyse_file(path: str) -> tuple[np.ndarray, int, int]:
    """Histogram the opposite-charge dimuon mass of one file: (counts, events, pairs)."""
    import awkward as ak
    import uproot

    with uproot.open(path) as file:
        muons = file["Events"].arrays(["Muon_pt", "Muon_eta", "Muon_phi", "Muon_charge"])
    two = (ak.num(muons["Muon_pt"]) == 2) & (ak.sum(muons["Muon_charge"], axis=1) == 0)
    pairs = muons[two]
    pt = ak.to_numpy(pairs["Muon_pt"]).astype(np.float64)  # regular now: shape (n, 2)
    eta = ak.to_numpy(pairs["Muon_eta"]).astype(np.float64)
    phi = ak.to_numpy(pairs["Muon_phi"]).astype(np.float64)
    # m^2 = 2 pt1 pt2 (cosh(d eta) - cos(d phi)), plus the muon masses' share.
    mass2 = (
        2 * pt[:, 0] * pt[:, 1] * (np.cosh(eta[:, 0] - eta[:, 1]) - np.cos(phi[:, 0] - phi[:, 1]))
    )
    mass = np.sqrt(mass2 + 2 * MUON_MASS**2)
    counts, _ = np.histogram(mass, bins=BINS)
    return counts, len(muons), len(mass)


def peak_mass(counts: np.ndarray, near: float) -> float:
    """The mass of the fullest bin within 8 % of ``near``."""
    centres = np.sqrt(BINS[:-1] * BINS[1:])
    window = (centres > near * 0.92) & (centres < near * 1.08)
    return float(centres[window][np.argmax(counts[window])])


def save_plot(counts: np.ndarray, path: Path, events: int) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 5.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    widths = np.diff(BINS)
    axes.stairs(counts / widths, BINS, fill=True, color="tab:blue", alpha=0.8)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlim(BINS[0], BINS[-1])
    axes.set_xlabel("dimuon mass [GeV]")
    axes.set_ylabel("events / GeV")
    axes.set_title(f"Opposite-charge dimuon mass, {events} synthetic events")
    density = counts / widths
    for name, (mass, _, _) in RESONANCES.items():
        if name == "Upsilon(2S)":
            continue
        index = min(int(np.searchsorted(BINS, mass)) - 1, len(counts) - 1)
        height = density[max(index - 2, 0) : index + 3].max()
        if height > 0:
            axes.annotate(
                name,
                (mass, height),
                xytext=(0, 6),
                textcoords="offset points",
                ha="center",
                fontsize=10,
            )
    axes.grid(True, which="major", alpha=0.3)
    figure.savefig(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--events", type=int, default=200_000, help="events per file")
    parser.add_argument("--workers", type=int, default=None, help="pool size (default: cores)")
    parser.add_argument("--out", default="dimuon-output", help="folder for the files and plot")
    parser.add_argument("--quick", action="store_true", help="2 files x 20 000 events")
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.events = 2, 20_000
    if args.files < 1 or args.events < 10:
        parser.error("--files must be at least 1 and --events at least 10")
    try:
        import awkward  # noqa: F401
        import uproot  # noqa: F401
    except ImportError as error:
        print(f"this example needs uproot and awkward ({error}); pip install 'fermion[examples]'")
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [str(out / f"dimuons_{i:03d}.root") for i in range(args.files)]

    started = time.perf_counter()
    with fermion.Executor("processes", args.workers) as executor:
        sizes = list(
            executor.map(
                write_events, paths, [args.events] * args.files, range(args.files), chunksize=1
            )
        )
    total = args.files * args.events
    print(
        f"wrote {args.files} files, {total} events, {sum(sizes) / 1e6:.1f} MB in "
        f"{time.perf_counter() - started:.1f} s (processes) to {out}"
    )

    print(f"{'backend':<10} {'workers':>7} {'seconds':>9} {'speedup':>8} {'events/s':>9}")
    baseline = None
    merged = np.zeros(len(BINS) - 1, dtype=np.int64)
    for backend in ("serial", "threads", "processes"):
        started = time.perf_counter()
        with fermion.Executor(backend, None if backend == "serial" else args.workers) as executor:
            merged = np.zeros(len(BINS) - 1, dtype=np.int64)
            events = pairs = 0
            for counts, file_events, file_pairs in executor.map(analyse_file, paths, chunksize=1):
                merged += counts  # merging histograms across workers: a sum
                events += file_events
                pairs += file_pairs
            used = executor.workers
        seconds = time.perf_counter() - started
        baseline = baseline or seconds
        print(
            f"{backend:<10} {used:>7} {seconds:>9.2f} {baseline / seconds:>7.2f}x "
            f"{events / seconds / 1e3:>8.0f}k"
        )
    print(f"{pairs} opposite-charge pairs of {events} events")
    peaks = ", ".join(
        f"{name} {peak_mass(merged, RESONANCES[name][0]):.4g} GeV ({RESONANCES[name][0]:.3f})"
        for name in ("J/psi", "Upsilon(1S)", "Z")
    )
    print(f"peaks: {peaks}")
    try:
        save_plot(merged, out / "dimuon_mass.png", events)
        print(f"plot: {out / 'dimuon_mass.png'}")
    except ImportError:
        print("plot skipped: matplotlib is not installed; pip install 'fermion[examples]'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
