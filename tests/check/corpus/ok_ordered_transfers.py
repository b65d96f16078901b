"""Transfers lock both accounts in a global order (by id): same allocation site, no inversion."""

import threading


class Account:
    def __init__(self, ident: int, balance: int) -> None:
        self.ident = ident
        self.balance = balance
        self.lock = threading.Lock()


def transfer(src: Account, dst: Account, amount: int) -> None:
    first, second = sorted((src, dst), key=lambda acc: acc.ident)
    with first.lock, second.lock:
        src.balance -= amount
        dst.balance += amount


accounts = [Account(i, 100) for i in range(4)]


def shuffle(k: int) -> None:
    for n in range(100):
        transfer(accounts[(k + n) % 4], accounts[(k + n + 1) % 4], 1)
        transfer(accounts[(k + n + 1) % 4], accounts[(k + n) % 4], 1)


threads = [threading.Thread(target=shuffle, args=(k,)) for k in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert sum(a.balance for a in accounts) == 400
