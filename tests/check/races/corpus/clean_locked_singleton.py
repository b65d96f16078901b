"""A lazy singleton created under a lock, read under the same lock."""

import threading

_lock = threading.Lock()
_instance = None


def get_instance():
    global _instance
    with _lock:
        if _instance is None:
            _instance = object()
        return _instance


threads = [threading.Thread(target=get_instance) for _ in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
