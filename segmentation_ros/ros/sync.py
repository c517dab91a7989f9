"""Pairing a camera's colour frames with its depth frames by header stamp (no rclpy: the live node
and the bag processor share it).

The rule is message_filters' ``ApproximateTime`` policy for two topics with a maximum interval
(``slop``), reduced to what a consumer that must never wait for depth needs:

- a colour frame stamped t is paired with the buffered depth frame whose stamp is nearest to t,
  if it lies within ``slop`` (``slop = 0``: exact stamps only, message_filters' ``TimeSynchronizer``);
  on a tie the earlier depth frame wins;
- a depth frame is used at most once; using it discards every older one (they can no longer be
  the nearest to a later colour frame), as the policy discards messages older than a published set;
- the buffer holds the newest ``capacity`` depth frames; a depth stamp earlier than the newest
  buffered one (a bag started again, a simulation reset) empties it first;
- a colour frame with no depth frame within ``slop`` is unmatched: its 2D outputs go out as
  always and the caller counts it (:attr:`StampMatcher.unmatched`). Nothing ever blocks on depth.

Offline, where waiting costs nothing, :meth:`StampMatcher.may_still_match` tells the bag processor
whether a depth frame that has not been read yet could still be the better match.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

__all__ = ["StampMatcher"]

T = TypeVar("T")


class StampMatcher(Generic[T]):
    """Depth frames of one camera, matched to colour frames by stamp (see the module docstring)."""

    def __init__(self, slop_ns: int, capacity: int = 16) -> None:
        if slop_ns < 0:
            raise ValueError(f"slop must be >= 0, got {slop_ns} ns")
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.slop_ns = int(slop_ns)
        self._buffer: deque[tuple[int, T]] = deque(maxlen=capacity)
        self.matched = 0
        self.unmatched = 0

    def __len__(self) -> int:
        return len(self._buffer)

    def add(self, stamp_ns: int, item: T) -> None:
        """Buffer a depth frame (in arrival order)."""
        if self._buffer and stamp_ns < self._buffer[-1][0]:
            self._buffer.clear()  # time went backwards: nothing buffered belongs to the new timeline
        self._buffer.append((int(stamp_ns), item))

    def clear(self) -> None:
        self._buffer.clear()

    def match(self, stamp_ns: int) -> T | None:
        """The depth frame for the colour frame stamped ``stamp_ns``, or None (counted unmatched)."""
        best = None
        for i, (stamp, _) in enumerate(self._buffer):
            gap = abs(stamp - stamp_ns)
            if gap <= self.slop_ns and (best is None or gap < best[0]):
                best = (gap, i)
        if best is None:
            self.unmatched += 1
            return None
        for _ in range(best[1]):
            self._buffer.popleft()
        self.matched += 1
        return self._buffer.popleft()[1]

    def may_still_match(self, stamp_ns: int) -> bool:
        """Whether a depth frame not yet added (stamps not older than the newest buffered one)
        could be a match for ``stamp_ns`` at least as near as any buffered one."""
        return not self._buffer or self._buffer[-1][0] < stamp_ns
