"""The fix of racy_lazy_module_attribute.py: the lazy initialisation under one lock.

(https://github.com/StackStorm/orquesta/pull/211: "Acquire a lock before initializing
global vars to ensure thread safety".)
"""

import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import _lazy_settings as settings

sys.path.pop(0)
settings._config = None
init_lock = threading.Lock()


def get_config() -> dict[str, object]:
    with init_lock:
        if settings._config is None:
            settings._config = settings.load()
        return settings._config


start = threading.Barrier(2)


def worker() -> None:
    start.wait()
    get_config()


threads = [threading.Thread(target=worker) for _ in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
