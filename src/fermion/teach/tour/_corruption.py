"""Section: data corruption beyond lost counts. Money moves between bank accounts: the
invariant (the total) spans two fields, so it can be torn even when every single
update is safe. Three versions of the transfer, each run from four threads while an
auditor sums the accounts: no lock (money is created and destroyed), a lock per
account (the total ends right, but the auditor sees money in flight), and one lock
around the whole transfer (always right).
"""

from __future__ import annotations

import sys
from typing import Any

from fermion.teach.tour._programs import load_program
from fermion.teach.tour._section import SectionResult, TourContext

__all__ = ["PROGRAM", "run"]

KEY = "corruption"
TITLE = "Data corruption: an invariant torn between two accounts"
EXERCISE = "Make transfer_per_account safe without one global lock: take both accounts' locks, lower index first. Why the order? (See the deadlock section.)"

PROGRAM = '''"""Bank transfers from four threads while an auditor checks the total."""

import random
import threading

ACCOUNTS = 10
START = 1000  # in every account: the bank holds ACCOUNTS * START in all


def fee(amount):
    return amount  # a call between read and write, as real code has (a log, a check)


def transfer_unlocked(bank, locks, bank_lock, i, j, amount):
    source, target = bank[i], bank[j]
    bank[i] = source - fee(amount)
    bank[j] = target + amount


def transfer_per_account(bank, locks, bank_lock, i, j, amount):
    with locks[i]:
        bank[i] -= fee(amount)
    with locks[j]:  # between the two: the money is in neither account
        bank[j] += amount


def transfer_locked(bank, locks, bank_lock, i, j, amount):
    with bank_lock:
        bank[i] -= fee(amount)
        bank[j] += amount


def audit(bank, locks, bank_lock, transfer):
    """The total as an auditor sees it, taking the locks the transfer uses."""
    if transfer is transfer_locked:
        with bank_lock:
            return sum(bank)
    if transfer is transfer_per_account:
        for lock in locks:  # every account's lock, in one order
            lock.acquire()
        try:
            return sum(bank)
        finally:
            for lock in locks:
                lock.release()
    return sum(bank)


def run_bank(transfer, transfers, threads=4, seed=1):
    """(final total, audits, audits that saw a wrong total)."""
    bank = [START] * ACCOUNTS
    locks = [threading.Lock() for _ in range(ACCOUNTS)]
    bank_lock = threading.Lock()
    done = threading.Event()
    start = threading.Barrier(threads + 1)
    audits = []

    def clerk(n):
        rng = random.Random(seed + n)
        start.wait(timeout=30)
        for _ in range(transfers):
            i = rng.randrange(ACCOUNTS)
            j = (i + rng.randrange(1, ACCOUNTS)) % ACCOUNTS  # never the same account
            transfer(bank, locks, bank_lock, i, j, rng.randrange(1, 10))

    def auditor():
        start.wait(timeout=30)
        while not done.is_set():
            audits.append(audit(bank, locks, bank_lock, transfer))

    clerks = [threading.Thread(target=clerk, args=(n,)) for n in range(threads)]
    watcher = threading.Thread(target=auditor)
    for thread in [*clerks, watcher]:
        thread.start()
    for thread in clerks:
        thread.join()
    done.set()
    watcher.join()
    wrong = sum(1 for total in audits if total != ACCOUNTS * START)
    return sum(bank), len(audits), wrong


if __name__ == "__main__":
    import sys

    sys.setswitchinterval(1e-6)  # switch threads as often as possible (the tour does too)
    for transfer in (transfer_unlocked, transfer_per_account, transfer_locked):
        total, audits, wrong = run_bank(transfer, 20_000)
        print(f"{transfer.__name__}: total {total} of {ACCOUNTS * START}; "
              f"{wrong} of {audits} audits saw a wrong total")
'''

VERSIONS = {
    "transfer_unlocked": "no lock",
    "transfer_per_account": "a lock per account",
    "transfer_locked": "one lock for the transfer",
}


def run(ctx: TourContext, section: SectionResult) -> None:
    """Run each transfer version from four threads beside an auditor."""
    transfers = 5_000 if ctx.quick else 20_000
    program = load_program(ctx.out / "programs", "bank_transfers", PROGRAM)
    expected = program["ACCOUNTS"] * program["START"]
    section.code(PROGRAM, program["__file__"])
    section.say(
        f"Four clerk threads make {transfers} transfers each between {program['ACCOUNTS']} "
        f"accounts holding {expected} in all; an auditor thread sums the accounts meanwhile "
        "(switch interval 1 µs, so threads switch as often as they can):"
    )
    rows = [
        f"{'version':<28} {'final total':>11} {'money created (+) / lost (-)':>29} "
        f"{'audits that saw a wrong total':>30}"
    ]
    results: dict[str, Any] = {}
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for name, label in VERSIONS.items():
            ctx.progress(f"{name}: {label}")
            try:
                total, audits, wrong = program["run_bank"](program[name], transfers)
            except Exception as error:
                section.fail(f"the bank with {label}", error)
                continue
            results[name] = {"total": total, "audits": audits, "wrong_audits": wrong}
            rows.append(
                f"{label:<28} {total:>11} {total - expected:>+29} {f'{wrong} of {audits}':>30}"
            )
    finally:
        sys.setswitchinterval(previous)
    section.show("\n".join(rows))
    section.data.update({"transfers": transfers, "expected": expected, "results": results})
    unlocked = results.get("transfer_unlocked")
    per_account = results.get("transfer_per_account")
    locked = results.get("transfer_locked")
    parts = []
    if unlocked is not None:
        change = unlocked["total"] - expected
        parts.append(
            f"Without a lock the bank ended with {unlocked['total']} instead of {expected}: "
            + (
                f"{abs(change)} {'created' if change > 0 else 'destroyed'} by transfers that "
                "read a balance, lost the thread, and wrote back a stale one."
                if change
                else "no money went astray this time, which proves nothing (no lock, no promise)."
            )
        )
    if per_account is not None:
        parts.append(
            f"With a lock per account every balance update is safe and the total ends "
            f"{'right' if per_account['total'] == expected else 'WRONG'} ({per_account['total']}), "
            f"yet {per_account['wrong_audits']} of {per_account['audits']} audits saw a wrong "
            "total: the invariant lives between two accounts, and no single account's lock "
            "protects it."
        )
    if locked is not None:
        parts.append(
            f"One lock around the whole transfer (and the audit): total {locked['total']}, "
            f"{locked['wrong_audits']} of {locked['audits']} audits wrong."
        )
    for text in parts:
        section.say(text)
