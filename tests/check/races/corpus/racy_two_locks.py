"""Two different locks guard one variable: they exclude nothing."""

import threading

lock_a = threading.Lock()
lock_b = threading.Lock()


class Account:
    def __init__(self):
        self.balance = 100


account = Account()


def deposit(n):
    for _ in range(n):
        with lock_a:
            account.balance += 1  # RACE-HERE


def withdraw(n):
    for _ in range(n):
        with lock_b:
            account.balance -= 1  # RACE-HERE


threads = [
    threading.Thread(target=deposit, args=(50,)),
    threading.Thread(target=withdraw, args=(50,)),
]
for t in threads:
    t.start()
for t in threads:
    t.join()
