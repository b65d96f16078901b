"""A module attribute initialised lazily by whichever thread asks first, with no lock.

Written from StackStorm orquesta's fix (https://github.com/StackStorm/orquesta/pull/211,
"it is possible race can occur between multiple threads when initializing the vars")
and swarm's report (https://github.com/swarm-ai-research/swarm/issues/274, "lazy-loaded
global class references ... have no threading lock"): two threads find
``settings._config`` unset, and both build and store it.
"""

import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import _lazy_settings as settings

sys.path.pop(0)
settings._config = None  # a fresh start (the module may be imported already)


def get_config() -> dict[str, object]:
    if settings._config is None:  # RACE-HERE
        settings._config = settings.load()  # RACE-HERE
    return settings._config  # RACE-HERE


start = threading.Barrier(2)


def worker() -> None:
    start.wait()
    get_config()


threads = [threading.Thread(target=worker) for _ in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
