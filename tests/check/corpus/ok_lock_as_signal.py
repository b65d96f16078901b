"""threading.Lock used as a one-shot signal, released by another thread (legal)."""

import threading

signal = threading.Lock()
signal.acquire()


def opener() -> None:
    signal.release()


t = threading.Thread(target=opener)
t.start()
signal.acquire()
signal.release()
t.join()
