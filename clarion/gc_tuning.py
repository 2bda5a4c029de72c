"""The garbage collector's settings for long-running Clarion processes.

CPython frees most objects by reference counting; its cyclic collector additionally walks
every tracked container object of a generation, and a full collection walks them all.
Once a process has started, most of those objects are the imported modules and the
structures FastAPI, SQLAlchemy, pydantic and our services built: hundreds of thousands of
objects that live as long as the process and that no collection will ever free. Walking
them made each full collection of ``clarion serve`` take ~130 ms during a broadcast
(measured with ``gc.callbacks`` in bench S3: 8 full collections, 1.05 s of a quick run),
a stall for every request and frame in flight.

``settle()`` moves everything alive at the end of start-up into the permanent generation
(``gc.freeze()``), which collections skip, and raises the youngest generation's threshold
so that the short-lived objects of a burst (the frames of a broadcast queued for thousands
of sockets, a page of deliveries) are mostly freed by reference counting before a
collection can promote them towards the old generation.
"""

from __future__ import annotations

import gc

# Allocations minus deallocations of tracked objects between young collections (CPython's
# default is 700). A collection of the young generation costs in proportion to what is in
# it, so fewer of them at this size cost about the same in total and promote far less.
YOUNG_THRESHOLD = 20_000


def settle() -> None:
    """Call once, after the process has started (services up, app built)."""
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
