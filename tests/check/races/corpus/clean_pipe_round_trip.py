"""A task registered by one thread, sent to a worker process through a pipe, and
completed by another thread when the worker's answer comes back through another pipe
(a process pool's bookkeeping, as pebble's): the round trip orders the registration
before the completion, with no lock."""

import multiprocessing
import threading


def echo(requests, answers):
    while (message := requests.recv()) is not None:
        answers.send(message)


class Task:
    def __init__(self, number):
        self.number = number
        self.result = None


tasks = {}
context = multiprocessing.get_context("fork")
to_worker, requests = context.Pipe()
answers, from_worker = context.Pipe()
worker = context.Process(target=echo, args=(requests, answers))
worker.start()


def schedule():
    for number in range(20):
        tasks[number] = Task(number)
        to_worker.send(number)
    to_worker.send(None)


def complete():
    for _ in range(20):
        task = tasks[from_worker.recv()]
        task.result = task.number * 2


threads = [threading.Thread(target=schedule), threading.Thread(target=complete)]
for t in threads:
    t.start()
for t in threads:
    t.join()
worker.join()
assert [tasks[n].result for n in range(20)] == [n * 2 for n in range(20)]
