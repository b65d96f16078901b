"""A lazily created singleton without a lock: two threads can both create it."""

import threading


class Config:
    def __init__(self):
        self.values = {"mode": "fast"}


_instance = None


def get_config():
    global _instance
    if _instance is None:  # RACE-HERE
        _instance = Config()  # RACE-HERE
    return _instance  # RACE-HERE


threads = [threading.Thread(target=get_config) for _ in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
