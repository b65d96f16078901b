"""Confirms the races ``pytest --fermion-races --fermion-threads 4`` reports in cachetools
8.0.2's ``_descriptor.py``:

* ``_MethodDescriptor.__get_unbound`` builds the class-access callable lazily ("created
  once and shared by all class accesses") with no lock, so threads reading
  ``Cls.method`` for the first time at once can each get an object of their own;
* ``_Unbound.__pop_receiver`` stores ``""`` as the receiver's name before it works the
  name out, with no lock, so a thread calling ``Cls.method(self=obj)`` meanwhile pops
  ``""`` from the keywords and gets ``TypeError: Cannot call @cachedmethod through the
  class without an instance`` for a call that is right.

    PYTHONPATH=<cachetools sdist>/src python tests/real_suites/confirm_cachetools_descriptor.py

Prints how many fresh classes gave two different class-access objects, and how many
right calls raised that TypeError.
"""

from __future__ import annotations

import sys
import threading

import cachetools

THREADS, CLASSES = 8, 400


def fresh_class() -> type:
    class Box:
        def __init__(self) -> None:
            self.cache: dict[object, object] = {}

        @cachetools.cachedmethod(lambda self: self.cache)
        def double(self, x: int) -> int:
            return 2 * x

    return Box


def work(
    barrier: threading.Barrier, box: type, got: list[object], errors: list[str], index: int
) -> None:
    barrier.wait(30)
    unbound = got[index] = box.double  # the first class access, in every thread at once
    try:
        unbound(self=box(), x=1)  # the first keyword call, in every thread at once
    except TypeError as exc:
        errors.append(str(exc))


def main() -> None:
    split = 0
    errors: list[str] = []  # list.append: atomic, no lock needed
    for _ in range(CLASSES):
        box = fresh_class()
        got: list[object] = [None] * THREADS
        barrier = threading.Barrier(THREADS)
        threads = [
            threading.Thread(target=work, args=(barrier, box, got, errors, t))
            for t in range(THREADS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        split += len({id(u) for u in got}) > 1
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    print(
        f"Python {sys.version.split()[0]} (GIL {'on' if gil else 'off'}), cachetools "
        f"{cachetools.__version__}: {split} of {CLASSES} classes gave two different "
        f"class-access objects; {len(errors)} of {CLASSES * THREADS} right keyword calls "
        f"raised TypeError{': ' + repr(errors[0]) if errors else ''}"
    )


if __name__ == "__main__":
    main()
