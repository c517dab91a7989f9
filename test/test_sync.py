"""Colour/depth pairing by stamp (ros/sync.py), ApproximateTime-style with a slop."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmentation_ros.ros.sync import StampMatcher

MS = 1_000_000


def test_exact_and_approximate():
    exact = StampMatcher(0)
    exact.add(100 * MS, "d100")
    assert exact.match(101 * MS) is None and exact.unmatched == 1
    assert exact.match(100 * MS) == "d100" and exact.matched == 1
    approx = StampMatcher(5 * MS)
    for t in (90, 100, 110):
        approx.add(t * MS, f"d{t}")
    assert approx.match(103 * MS) == "d100"  # nearest within the slop
    assert len(approx) == 1  # d90 is older than the match: discarded; d100 used once
    assert approx.match(100 * MS) is None
    assert approx.match(106 * MS) == "d110"


def test_tie_goes_to_the_earlier_frame_and_time_going_back_resets():
    m = StampMatcher(10 * MS)
    m.add(95 * MS, "early")
    m.add(105 * MS, "late")
    assert m.match(100 * MS) == "early"
    m.add(50 * MS, "after a reset")  # older than the newest buffered: a new timeline
    assert len(m) == 1 and m.match(105 * MS) is None and m.match(52 * MS) == "after a reset"


def test_may_still_match_and_capacity():
    m = StampMatcher(5 * MS, capacity=3)
    assert m.may_still_match(100 * MS)
    m.add(98 * MS, "a")
    assert m.may_still_match(100 * MS)  # a frame at 100 may still come
    m.add(101 * MS, "b")
    assert not m.may_still_match(100 * MS)
    for t in (102, 103, 104):
        m.add(t * MS, t)
    assert len(m) == 3 and m.match(96 * MS) is None  # 98 and 101 were pushed out
    with pytest.raises(ValueError, match="slop"):
        StampMatcher(-1)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    depth=st.lists(st.integers(0, 1000), max_size=12).map(sorted),
    colour=st.integers(0, 1000),
    slop=st.integers(0, 50),
)
def test_match_is_the_nearest_within_the_slop(depth, colour, slop):
    m = StampMatcher(slop, capacity=32)
    for t in depth:
        m.add(t, t)
    got = m.match(colour)
    near = [t for t in depth if abs(t - colour) <= slop]
    if not near:
        assert got is None
    else:
        best = min(abs(t - colour) for t in near)
        assert got == min(t for t in near if abs(t - colour) == best)
