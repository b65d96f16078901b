"""The lock-order graph (as Linux lockdep): A→B when B is taken while A is held.

A cycle (A→B here, B→A there) is a deadlock waiting for the right interleaving,
reported even if this run never hung. Nodes are any hashable keys: the checker feeds
one graph with lock instances and one with allocation sites. Pure: no threads, no
locks of its own (the caller serialises :meth:`LockOrderGraph.add`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field

from fermion.sync._registry import Site

__all__ = ["LockOrderGraph", "OrderEdge"]


@dataclass(frozen=True)
class OrderEdge:
    """*second* was taken while *first* was held, first seen in *thread*."""

    first: Hashable
    second: Hashable
    first_label: str
    second_label: str
    first_site: Site
    second_site: Site
    thread: str
    stack: tuple[Site, ...] = field(default=(), compare=False)


class LockOrderGraph:
    """Edges between locks, and the cycles new edges close (each cycle reported once)."""

    def __init__(self) -> None:
        self._edges: dict[Hashable, dict[Hashable, OrderEdge]] = {}
        self._reported: set[frozenset[Hashable]] = set()

    def has_edge(self, first: Hashable, second: Hashable) -> bool:
        return second in self._edges.get(first, {})

    def __len__(self) -> int:
        return sum(len(targets) for targets in self._edges.values())

    def add(self, edge: OrderEdge) -> list[OrderEdge] | None:
        """Record *edge*; return the cycle it closes (starting with it), if new."""
        if edge.first == edge.second or self.has_edge(edge.first, edge.second):
            return None
        self._edges.setdefault(edge.first, {})[edge.second] = edge
        back = self._path(edge.second, edge.first)
        if back is None:
            return None
        cycle = [edge, *back]
        nodes = frozenset(e.first for e in cycle)
        if nodes in self._reported:
            return None
        self._reported.add(nodes)
        return cycle

    def mark_reported(self, nodes: frozenset[Hashable]) -> None:
        """Treat the cycle through *nodes* as already reported."""
        self._reported.add(nodes)

    def _path(self, source: Hashable, target: Hashable) -> list[OrderEdge] | None:
        """The shortest chain of edges from *source* to *target* (breadth-first)."""
        previous: dict[Hashable, OrderEdge] = {}
        queue = deque([source])
        seen = {source}
        while queue:
            node = queue.popleft()
            if node == target:
                chain: list[OrderEdge] = []
                while node != source:
                    edge = previous[node]
                    chain.append(edge)
                    node = edge.first
                return chain[::-1]
            for nxt, edge in self._edges.get(node, {}).items():
                if nxt not in seen:
                    seen.add(nxt)
                    previous[nxt] = edge
                    queue.append(nxt)
        return None
