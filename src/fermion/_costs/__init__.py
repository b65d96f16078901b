"""What work costs and what the machine offers: the layer below the executors.

The platform (cores this process may use, whether a GIL runs), the clocks (a thread's
wait for a core), the cost of sending objects to another process, the GIL probe, the
machine's load from other programs, and the cost model that turns measurements into
a choice of backend. ``fermion.executors`` (the ``auto`` backend) and
``fermion.measure`` (``profile``, ``advise``, ``bench``) both build on it; nothing here
imports either, so imports point one way: measure -> executors -> _costs.
"""
