"""Named shared-memory segments: naming, creating, mapping, unlinking and sweeping.

Every segment fermion creates is named ``fermion-<pid>-<token>-...`` after the process
(or pool) that owns it, so that a leftover can always be traced to its owner and swept
by prefix. The lifecycle rules that keep /dev/shm clean:

- the *sender* creates a segment, writes it, and hands its name over;
- the *receiver* maps it and, when it is the only receiver, unlinks it at once (on
  POSIX a segment stays mapped after ``shm_unlink``, so nothing is lost);
- a process unlinks every segment it created and still owns when it exits
  (``ledger``), and an owner of a prefix (a pool) sweeps that prefix when a worker
  dies, at shutdown and on Ctrl-C;
- SIGTERM, whose default action skips every exit hook, first runs the ledger's
  release (``install_sigterm_release``) and then ends the process as before; a process
  killed outright (SIGKILL) is swept by its pool's workers as they exit
  (``sweep`` of ``fermion-<its pid>``).

POSIX shared memory is used directly (``_posixshmem`` + ``mmap``) rather than through
``multiprocessing.shared_memory``: the latter registers every segment with
``multiprocessing``'s resource tracker, which warns about (and may unlink) segments
that another process legitimately owns. Where ``_posixshmem`` is missing (Windows),
``multiprocessing.shared_memory`` is the fallback (see ``posix_shm_available``).
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
import secrets
import signal
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

try:  # POSIX: Linux, macOS, the BSDs
    import _posixshmem
except ImportError:  # pragma: no cover - Windows
    _posixshmem = None

__all__ = [
    "NAME_PREFIX",
    "SHM_DIR",
    "Ledger",
    "SegmentNames",
    "create_and_write",
    "install_sigterm_release",
    "ledger",
    "list_segments",
    "map_segment",
    "names_starting_with",
    "new_prefix",
    "posix_shm_available",
    "process_prefix",
    "sweep",
    "sweep_head",
    "unlink_segment",
]

#: Every segment name starts with this; the test suite's leak check looks for it.
NAME_PREFIX = "fermion"
#: Where Linux shows POSIX shared memory as files.
SHM_DIR = "/dev/shm"

_IS_LINUX = sys.platform.startswith("linux")
#: Linux tmpfs accepts write(2) on a shared-memory fd, which copies straight into
#: the page cache without first zero-filling and faulting each page (about 1.7x
#: faster than mmap + memcpy for fresh segments). macOS does not support it.
_write_syscall_supported = _IS_LINUX
_MAP_POPULATE = getattr(mmap, "MAP_POPULATE", 0)
_MADV_HUGEPAGE: int | None = getattr(mmap, "MADV_HUGEPAGE", None)
_HUGE_PAGE = 2 << 20


def posix_shm_available() -> bool:
    """True where segments are POSIX shared memory that fermion manages itself."""
    return _posixshmem is not None


def new_prefix() -> str:
    """A fresh prefix owned by this process, e.g. ``fermion-4242-9f3a1c``.

    Used for each pool and for this process's own shared arrays; pid first, so a
    leftover names the process that made it.
    """
    return f"{NAME_PREFIX}-{os.getpid()}-{secrets.token_hex(3)}"


_process_prefix: tuple[int, str] | None = None
_process_prefix_lock = threading.Lock()


def process_prefix() -> str:
    """This process's prefix for shared arrays and values (a new one after fork)."""
    global _process_prefix
    with _process_prefix_lock:
        if _process_prefix is None or _process_prefix[0] != os.getpid():
            _process_prefix = (os.getpid(), new_prefix())
        return _process_prefix[1]


class SegmentNames:
    """Unique segment names under one prefix: ``<prefix>-<n>`` with n counting up."""

    def __init__(self, prefix: str) -> None:
        if not prefix.startswith(NAME_PREFIX):
            raise ValueError(
                f"segment prefix {prefix!r} does not start with {NAME_PREFIX!r}; "
                "fermion sweeps segments by that prefix, so every name must carry it"
            )
        self.prefix = prefix
        self._counter = itertools.count()
        self._lock = threading.Lock()  # itertools.count is not atomic on 3.13t

    def next(self) -> str:
        with self._lock:
            n = next(self._counter)
        return f"{self.prefix}-{n:x}"


class Ledger:
    """The segments this process created and still owns; unlinked at exit.

    A name leaves the ledger when it is unlinked or handed over to a receiver that
    will unlink it. Thread-safe.
    """

    def __init__(self) -> None:
        self._names: set[str] = set()
        self._prefixes: dict[str, int] = {}
        # Reentrant: a garbage collection inside a call may run a finalizer that
        # unlinks a segment (the argument copies return theirs from finalizers).
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._hooked = False
        self._released = False  # release_all ran: the process is ending

    def _reset_after_fork(self) -> None:
        # A forked child inherits the parent's ledger but owns none of it.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._names = set()
            self._prefixes = {}
            self._hooked = False
            self._released = False

    def add(self, name: str) -> None:
        """Own segment ``name``; once ``release_all`` has run, unlink it at once instead."""
        with self._lock:
            self._reset_after_fork()
            if self._released:
                unlink_segment(name)
                return
            self._names.add(name)
            self._hook_exit()

    @contextlib.contextmanager
    def creating(self, name: str) -> Iterator[None]:
        """Hold the ledger while segment ``name`` is created, with the name already in it.

        ``release_all`` (the SIGTERM handler, the exit hook) runs in another thread than
        the one creating a segment; holding the ledger keeps it from listing the name
        before the segment exists, and creation after it is refused, so no segment is
        made that nothing would unlink.
        """
        with self._lock:
            self._reset_after_fork()
            if self._released:
                raise RuntimeError(
                    f"shared-memory segment {name!r} was not created: this process is "
                    "ending and has already released its segments (SIGTERM or exit), "
                    "so nothing would unlink it"
                )
            self.add(name)
            try:
                yield
            except BaseException:
                self._names.discard(name)
                raise

    def discard(self, name: str) -> None:
        with self._lock:
            self._names.discard(name)

    def owned(self) -> set[str]:
        with self._lock:
            self._reset_after_fork()
            return set(self._names)

    def watch_prefix(self, prefix: str, *, whole_word: bool = True) -> None:
        """Sweep ``prefix`` at exit too (e.g. the prefix of this process's workers).

        ``whole_word=False`` matches every name that merely starts with ``prefix``.
        """
        head = prefix + "-" if whole_word else prefix
        with self._lock:
            self._reset_after_fork()
            self._prefixes[head] = self._prefixes.get(head, 0) + 1
            self._hook_exit()

    def _hook_exit(self) -> None:
        # Registered lazily (no import-time side effects). multiprocessing's exit
        # function runs both in the main process (via atexit) and in its children
        # (which leave through os._exit, skipping atexit), so it covers workers too.
        if not self._hooked:
            self._hooked = True
            from multiprocessing import util

            util.Finalize(None, self.release_all, exitpriority=-10)
        install_sigterm_release()

    def release_all(self) -> None:
        """Unlink every owned segment and sweep every watched prefix (exit hook)."""
        with self._lock:
            if self._pid != os.getpid():
                return
            self._released = True
            names, self._names = self._names, set()
            prefixes = list(self._prefixes)
            for name in names:
                unlink_segment(name)
        for head in prefixes:
            sweep_head(head)


#: The one ledger of this process.
ledger = Ledger()

_sigterm_pid: int | None = None  # the process whose SIGTERM handler is ours


def install_sigterm_release() -> None:
    """Make SIGTERM release this process's segments before it ends the process.

    Only where SIGTERM still has its default action (a handler the program set is
    left alone) and only from the main thread (the only one that may set handlers;
    a later call from it installs what an earlier call from another thread could
    not). The process still dies of SIGTERM, as it would have.
    """
    global _sigterm_pid
    pid = os.getpid()
    if _sigterm_pid == pid or threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _release_then_terminate)
    except (ValueError, OSError):  # no signals here (an embedded interpreter)
        pass
    _sigterm_pid = pid


def _release_then_terminate(signum: int, frame: Any) -> None:
    try:
        ledger.release_all()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _shm_path(name: str) -> str:
    return "/" + name


def _write_all(fd: int, chunks: Iterable[memoryview]) -> int:
    total = 0
    for chunk in chunks:
        view = chunk.cast("B") if chunk.format != "B" or chunk.ndim != 1 else chunk
        while view.nbytes:
            written = os.write(fd, view)
            total += written
            view = view[written:]
    return total


def advise_huge_pages(mm: mmap.mmap) -> None:
    """Ask for transparent huge pages on a mapping of at least 2 MiB.

    NumPy backs big private arrays with 2 MiB pages; shared memory with 4 KiB pages
    makes a memory-bound loop (a sum) ~1.5x slower through TLB misses. The kernel
    honours this where ``/sys/kernel/mm/transparent_hugepage/shmem_enabled`` is
    ``advise`` (or ``within_size``/``always``, which need no asking); where it is
    ``never`` (or THP is missing) it does nothing.
    """
    if _MADV_HUGEPAGE is None or len(mm) < _HUGE_PAGE:
        return
    with contextlib.suppress(OSError, ValueError):
        mm.madvise(_MADV_HUGEPAGE)


def _open_new(name: str, *, track: bool) -> int:
    """Create segment ``name`` (it must not exist) and return its descriptor; with
    ``track`` the name joins this process's ledger first, and leaves it if creation fails."""
    if _posixshmem is None:  # pragma: no cover - callers check the platform first
        raise RuntimeError("POSIX shared memory is not available on this platform")
    flags = os.O_CREAT | os.O_EXCL | os.O_RDWR
    if not track:
        return int(_posixshmem.shm_open(_shm_path(name), flags, mode=0o600))
    with ledger.creating(name):
        return int(_posixshmem.shm_open(_shm_path(name), flags, mode=0o600))


def create_and_write(
    name: str, chunks: Sequence[memoryview], *, track: bool = True, size: int | None = None
) -> int:
    """Create segment ``name`` holding the bytes of ``chunks`` (C-contiguous) back to back.

    ``size``: make the segment this large (zero-filled past the data; at least the
    data's size). Returns its size. With ``track`` the name joins this process's ledger, so it is
    unlinked at exit unless someone unlinks it or ``ledger.discard``\\ s it first.
    """
    data_size = sum(c.nbytes for c in chunks)
    size = max(data_size, size or 0)
    if size <= 0:
        raise ValueError(f"cannot create an empty shared-memory segment {name!r}")
    if _posixshmem is None:  # pragma: no cover - Windows
        raise RuntimeError(
            "create_and_write needs POSIX shared memory; on this platform fermion "
            "sends buffers through the pipe instead"
        )
    fd = _open_new(name, track=track)
    try:
        if _write_syscall_supported:
            written = _write_all(fd, chunks)
            if written != data_size:  # pragma: no cover - would be a kernel bug
                raise OSError(f"short write to shared-memory segment {name!r}")
            if size > data_size:
                os.ftruncate(fd, size)
        else:
            os.ftruncate(fd, size)
            with mmap.mmap(fd, size) as mm:
                offset = 0
                for chunk in chunks:
                    mm[offset : offset + chunk.nbytes] = chunk.cast("B")
                    offset += chunk.nbytes
    except BaseException:
        unlink_segment(name)
        raise
    finally:
        os.close(fd)
    return size


def create_empty(name: str, size: int, *, track: bool = True) -> tuple[mmap.mmap, int]:
    """Create a zero-filled segment ``name`` of ``size`` bytes, map it read-write.

    Returns the mapping and the still-open descriptor (callers that need no lock
    close it).
    """
    if size <= 0:
        raise ValueError(f"a shared-memory segment needs a positive size, not {size}")
    if _posixshmem is None:  # pragma: no cover - Windows
        raise NotImplementedError(
            "fermion's shared arrays and values need POSIX shared memory (Linux, macOS); "
            "they are not available on this platform yet: pass ordinary arrays instead"
        )
    fd = _open_new(name, track=track)
    try:
        os.ftruncate(fd, size)
        mm = mmap.mmap(fd, size)
        advise_huge_pages(mm)  # before the first touch allocates the pages
    except BaseException:
        os.close(fd)
        unlink_segment(name)
        raise
    return mm, fd


def map_segment(
    name: str, *, writable: bool, unlink: bool, keep_fd: bool = False, populate: bool = False
) -> tuple[mmap.mmap, int | None]:
    """Map an existing segment; with ``unlink`` remove its name right after mapping.

    ``populate``: fill the page tables now (Linux ``MAP_POPULATE``), one system call
    instead of one page fault per 4 KiB page on first touch.

    Raises FileNotFoundError (naming the segment and the likely cause) when it is
    gone. Returns the mapping and, with ``keep_fd``, the open descriptor.
    """
    if _posixshmem is None:  # pragma: no cover - Windows
        raise RuntimeError("map_segment needs POSIX shared memory")
    flags = os.O_RDWR if writable else os.O_RDONLY
    try:
        fd = _posixshmem.shm_open(_shm_path(name), flags, mode=0o600)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"shared-memory segment {name!r} no longer exists: its owner dropped or "
            "unlinked it before this process mapped it (keep the sending side's array "
            "alive until the receiver has it)"
        ) from None
    try:
        size = os.fstat(fd).st_size
        if populate and _MAP_POPULATE:
            flags = mmap.MAP_SHARED | _MAP_POPULATE
            prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
            mm = mmap.mmap(fd, size, flags=flags, prot=prot)
        else:  # (prot/flags and access exclude each other; access keeps read-only safe)
            access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
            mm = mmap.mmap(fd, size, access=access)
        advise_huge_pages(mm)
        if unlink:
            unlink_segment(name)
    except BaseException:
        os.close(fd)
        raise
    if keep_fd:
        return mm, fd
    os.close(fd)
    return mm, None


def unlink_segment(name: str) -> bool:
    """Remove the name of a segment (its memory lives on while mapped). True if it existed."""
    ledger.discard(name)
    if _posixshmem is None:  # pragma: no cover - Windows: freed with the last handle
        return False
    try:
        _posixshmem.shm_unlink(_shm_path(name))
    except FileNotFoundError:
        return False
    return True


def list_segments(prefix: str) -> list[str]:
    """Names of existing segments under ``prefix`` (Linux lists /dev/shm; elsewhere
    only the ones this process owns are known)."""
    return names_starting_with(prefix + "-")


def names_starting_with(head: str) -> list[str]:
    """Existing segment names that start with ``head`` (see ``list_segments``)."""
    if _IS_LINUX:
        try:
            return sorted(n for n in os.listdir(SHM_DIR) if n.startswith(head))
        except FileNotFoundError:  # pragma: no cover - no /dev/shm mounted
            pass
    return sorted(n for n in ledger.owned() if n.startswith(head))


def sweep(prefix: str) -> list[str]:
    """Unlink every segment under ``prefix``; returns the names it removed.

    E.g. ``sweep("fermion-4242")`` removes what a killed process 4242 left behind.
    On Linux this sees every process's segments; elsewhere only this process's own.
    """
    return sweep_head(prefix + "-")


def sweep_head(head: str) -> list[str]:
    """Unlink every segment whose name starts with ``head`` (no word boundary)."""
    if not head.startswith(NAME_PREFIX + "-"):
        raise ValueError(f"refusing to sweep {head!r}: fermion only sweeps its own names")
    removed = []
    for name in names_starting_with(head):
        if unlink_segment(name):
            removed.append(name)
    return removed


def segment_exists(name: str) -> bool:
    """Whether segment ``name`` still has a name (for tests and diagnostics)."""
    if _IS_LINUX:
        return os.path.exists(os.path.join(SHM_DIR, name))
    if _posixshmem is None:  # pragma: no cover
        return False
    try:
        fd = _posixshmem.shm_open(_shm_path(name), os.O_RDONLY, mode=0o600)
    except FileNotFoundError:
        return False
    os.close(fd)
    return True


def buffer_address(buffer: Any) -> int:
    """The address of the first byte of a writable or read-only buffer."""
    import numpy as np

    return int(np.frombuffer(buffer, dtype=np.uint8, count=1).__array_interface__["data"][0])
