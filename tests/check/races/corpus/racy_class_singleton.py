"""A class-level lazy instance: ``cls._instance`` checked and set without a lock."""

import threading


class Registry:
    _instance = None

    @classmethod
    def instance(cls):
        if cls._instance is None:  # RACE-HERE
            cls._instance = cls()  # RACE-HERE
        return cls._instance  # RACE-HERE


threads = [threading.Thread(target=Registry.instance) for _ in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
