"""The multi-object tracker (engine/tracking.py) on hand-made detection sequences, and track ids
applied to real results (hand-fused and from the engine)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from segmentation_ros.engine.labels import get_label_set
from segmentation_ros.engine.panoptic import decode_panoptic, encode_panoptic, fuse_panoptic
from segmentation_ros.engine.pipeline import panoptic_label_space
from segmentation_ros.engine.results import InstanceResult, PanopticResult, Segmentation
from segmentation_ros.engine.tracking import Tracker, TrackerConfig, apply_track_ids, box_iou

NS = 1_000_000_000


def box(cx: float, cy: float, w: float = 40.0, h: float = 40.0) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def step(
    tracker: Tracker,
    t_s: float,
    boxes: list[list[float]],
    scores: list[float] | None = None,
    classes: list[int] | None = None,
) -> list[int]:
    """One update at ``t_s`` seconds; returns the ids as a list (and checks what every update must)."""
    n = len(boxes)
    ids = tracker.update(
        round(t_s * NS),
        np.asarray(boxes, dtype=np.float64).reshape(n, 4),
        np.asarray(scores if scores is not None else [0.9] * n, dtype=np.float32),
        np.asarray(classes if classes is not None else [1] * n, dtype=np.int64),
    )
    assert ids.dtype == np.int64 and ids.shape == (n,)
    assert (ids >= 1).all() and np.unique(ids).size == n
    return ids.tolist()


# ---- identity over time ----------------------------------------------------------------------------------
def test_still_objects_keep_their_ids() -> None:
    tracker = Tracker()
    rng = np.random.default_rng(0)
    seen = []
    for k in range(60):
        jitter = rng.normal(0, 1.0, size=(2, 4))  # a detector's box noise, a pixel or so
        seen.append(
            step(tracker, k / 30, (np.array([box(100, 100), box(300, 200, 80, 60)]) + jitter).tolist())
        )
    assert seen == [[1, 2]] * 60
    (a, b) = tracker.tracks()
    assert (a.track_id, a.hits, b.track_id, b.hits) == (1, 60, 2, 60)
    assert a.age_s == pytest.approx(59 / 30, abs=1e-6) and a.since_seen_s == 0.0


def test_crossing_objects_keep_their_ids() -> None:
    """Two objects of one class cross at constant velocity. Just after they pass, each one's last box
    overlaps the other's new box more than its own (asserted below), so matching last boxes without
    motion would swap their ids; the constant-velocity prediction keeps them."""
    tracker = Tracker()
    swaps_without_motion = 0
    last = None
    for k in range(40):
        a = box(100 + 8 * k, 200)  # right at 240 px/s (8 px per frame at 30 Hz)
        b = box(408 - 8 * k, 202)  # left, 2 px lower: they pass each other between frames 19 and 20
        if last is not None:
            iou = box_iou(np.array(last), np.array([a, b]))
            swaps_without_motion += bool(iou[0, 1] > iou[0, 0] and iou[1, 0] > iou[1, 1])
        last = [a, b]
        assert step(tracker, k / 30, [a, b]) == [1, 2], f"frame {k}"
    assert swaps_without_motion > 0


def test_crossing_objects_in_either_detection_order() -> None:
    tracker = Tracker()
    for k in range(40):
        a, b = box(100 + 8 * k, 200), box(412 - 8 * k, 205)
        flip = k % 2 == 1
        ids = step(tracker, k / 30, [b, a] if flip else [a, b])
        assert (ids[::-1] if flip else ids) == [1, 2], f"frame {k}"


def _gap_sequence(gap_s: float, rate_hz: float, speed: float = 60.0) -> tuple[list[int], list[int]]:
    """One object moving at ``speed`` px/s, seen for 1 s, unseen for ``gap_s``, seen for 0.5 s:
    the ids before and after the gap."""
    tracker = Tracker(TrackerConfig(buffer_s=1.0))
    before, after = [], []
    dt = 1 / rate_hz
    for k in range(int(round((1.5 + gap_s) * rate_hz)) + 1):
        t = k * dt
        if t <= 1.0 + 1e-9:
            before += step(tracker, t, [box(100 + speed * t, 100, 60, 60)])
        elif t >= 1.0 + gap_s - 1e-9:
            after += step(tracker, t, [box(100 + speed * t, 100, 60, 60)])
        else:
            step(tracker, t, [])
    return before, after


@pytest.mark.parametrize("rate_hz", [5.0, 30.0])
def test_occlusion_shorter_than_the_buffer_keeps_the_id(rate_hz: float) -> None:
    before, after = _gap_sequence(0.6, rate_hz)
    assert set(before) == set(after) == {1}


@pytest.mark.parametrize("rate_hz", [5.0, 30.0])
def test_occlusion_longer_than_the_buffer_gets_a_new_id(rate_hz: float) -> None:
    """Header time, not frames: at 5 Hz a 1.4 s gap is 7 frames, at 30 Hz 42; both forget."""
    before, after = _gap_sequence(1.4, rate_hz)
    assert set(before) == {1} and set(after) == {2}


def test_the_buffer_is_header_time_to_the_nanosecond() -> None:
    buffer_ns = NS // 2
    for late, expected in ((0, 1), (1, 2)):
        tracker = Tracker(TrackerConfig(buffer_s=0.5))
        tracker.update(10 * NS, np.array([box(50, 50)]), np.array([0.9]), np.array([3]))
        ids = tracker.update(
            10 * NS + buffer_ns + late, np.array([box(50, 50)]), np.array([0.9]), np.array([3])
        )
        assert ids.tolist() == [expected]  # unseen for exactly buffer_s: kept; a nanosecond more: forgotten


def test_tracks_lists_the_live_tracks_by_id() -> None:
    tracker = Tracker(TrackerConfig(buffer_s=0.5))
    assert tracker.tracks() == []
    step(tracker, 0.0, [box(50, 50), box(200, 50)], classes=[1, 2])
    step(tracker, 0.3, [box(200, 50)], classes=[2])
    infos = tracker.tracks()
    assert [(i.track_id, i.class_id, i.hits) for i in infos] == [(1, 1, 1), (2, 2, 2)]
    assert infos[0].since_seen_s == pytest.approx(0.3) and infos[0].age_s == pytest.approx(0.3)
    step(tracker, 0.6, [box(200, 50)], classes=[2])  # track 1 now unseen for 0.6 s > buffer
    assert [i.track_id for i in tracker.tracks()] == [2]
    # A snapshot (what the node's diagnostics read from another thread) keeps its update's tracks
    # while the tracker updates the same tracks in place.
    snapshot = tracker.snapshot()
    before = snapshot.tracks()
    step(tracker, 0.7, [box(202, 51)], classes=[3])  # the class-change stage: same track, new class
    after = tracker.tracks()
    assert [(i.track_id, i.class_id, i.hits) for i in after] == [(2, 3, 4)]
    assert snapshot.tracks() == before and [(i.class_id, i.hits) for i in before] == [(2, 3)]
    assert Tracker(TrackerConfig()).snapshot().tracks() == []


def test_a_class_change_continues_a_track_only_at_high_overlap() -> None:
    """The detector changes its mind about an object's class: a detection of another class continues
    a track when their boxes overlap with IoU >= class_change_iou (0.4), and the track takes the new
    class; at less overlap, or with the stage off, it starts a new track."""
    tracker = Tracker()
    assert step(tracker, 0.0, [box(100, 100)], classes=[1]) == [1]
    assert step(tracker, 0.1, [box(100, 100)], classes=[1]) == [1]
    assert step(tracker, 0.2, [box(102, 100)], classes=[4]) == [1]  # IoU 0.9, other class
    assert [(i.track_id, i.class_id) for i in tracker.tracks()] == [(1, 4)]
    assert step(tracker, 0.3, [box(102, 100)], classes=[1]) == [1]  # and back
    shifted = box(121, 100)  # IoU 0.31 >= match_iou, < class_change_iou
    assert 0.3 <= box_iou(np.array([box(102, 100)]), np.array([shifted]))[0, 0] < 0.4
    assert step(tracker, 0.4, [shifted], classes=[4]) == [2]
    tracker = Tracker(TrackerConfig(class_change_iou=None, merge_iou=None))
    assert step(tracker, 0.0, [box(100, 100)], classes=[1]) == [1]
    assert step(tracker, 0.1, [box(100, 100)], classes=[4]) == [2]  # same box, other class
    assert step(tracker, 0.2, [box(100, 100)], classes=[1]) == [1]  # the class-1 track is still live
    assert [(i.track_id, i.class_id) for i in tracker.tracks()] == [(1, 1), (2, 4)]


def test_class_consistent_matching_comes_first() -> None:
    """A detection overlapping a track of its class (IoU 0.4) and one of another class (IoU 0.9)
    continues the one of its class; the other track is left for the class-change stage of a
    detection that needs it."""
    tracker = Tracker()
    assert step(tracker, 0.0, [box(117, 100), box(100, 100)], classes=[1, 2]) == [1, 2]
    assert step(tracker, 0.0, [box(102, 100)], classes=[1]) == [1]
    tracker = Tracker()
    assert step(tracker, 0.0, [box(117, 100), box(100, 100)], classes=[1, 2]) == [1, 2]
    assert step(tracker, 0.0, [box(102, 100), box(118, 100)], classes=[1, 1]) == [2, 1]


def test_a_small_fast_object_continues_by_centre_distance() -> None:
    """A 10x10 object that jumps 8 px (box IoU 0.11, below match_iou) keeps its id: its centre is
    0.8 box sizes from the track's. Too far (1.5 sizes), a much larger box (area x6) or another
    class starts a new track, and so does the jump with the stage off."""
    for jump, size, cls, config, expected in (
        (8, 10, 1, TrackerConfig(), 1),
        (15, 10, 1, TrackerConfig(), 2),
        (0, 25, 1, TrackerConfig(), 2),
        (8, 10, 2, TrackerConfig(), 2),
        (8, 10, 1, TrackerConfig(center_distance=None), 2),
    ):
        tracker = Tracker(config)
        assert step(tracker, 0.0, [box(100, 100, 10, 10)]) == [1]
        assert step(tracker, 0.1, [box(100, 100, 10, 10)]) == [1]
        moved = box(100 + jump, 100, size, size)
        assert box_iou(np.array([box(100, 100, 10, 10)]), np.array([moved]))[0, 0] < 0.3
        assert step(tracker, 0.2, [moved], classes=[cls]) == [expected], (jump, size, cls, config)


def test_the_centre_distance_stage_comes_after_overlap() -> None:
    """Two tracks near a detection: one overlaps it (IoU >= match_iou), the other's centre is
    nearer but its box overlaps less; overlap wins."""
    tracker = Tracker()
    # track 2: IoU 0.25 with the detection, centre 0.15 sizes away (track 1: IoU 0.6, 0.25 sizes)
    assert step(tracker, 0.0, [box(100, 100, 40, 40), box(104, 100, 20, 20)]) == [1, 2]
    assert step(tracker, 0.0, [box(110, 100, 40, 40)]) == [1]


def test_box_sizes_are_predicted_as_last_seen() -> None:
    """A box that grew for a few frames (an object coming out from behind the image border) and then
    went unseen is looked for at its last size: the size changes of detector boxes are mostly
    border cuts and mask noise, not motion to extrapolate. (Extrapolated at 100 px/s, the box would
    be 130 px after the 0.6 s gap, IoU 0.29 with the 70 px detection: a new id.)"""
    tracker = Tracker(TrackerConfig(center_distance=None))  # overlap alone
    for k, size in enumerate((40, 50, 60, 70)):
        assert step(tracker, k / 10, [box(100, 100, size, size)]) == [1]
    assert step(tracker, 0.9, [box(100, 100, 70, 70)]) == [1]


def test_a_clock_jump_backwards_resets_with_fresh_ids() -> None:
    tracker = Tracker()
    issued = set()
    for k in range(10):
        issued |= set(step(tracker, 100 + k / 10, [box(100, 100), box(300, 100)]))
    assert issued == {1, 2}
    assert step(tracker, 100.9, [box(100, 100), box(300, 100)]) == [1, 2]  # an equal stamp is fine
    ids = step(tracker, 3.0, [box(100, 100), box(300, 100)])  # e.g. a bag played again
    assert ids == [3, 4] and not issued & set(ids)
    assert [i.track_id for i in tracker.tracks()] == [3, 4]
    assert all(i.hits == 1 and i.age_s == 0.0 for i in tracker.tracks())


def test_reset_forgets_tracks_but_never_reuses_their_ids() -> None:
    tracker = Tracker()
    assert step(tracker, 1.0, [box(100, 100)]) == [1]
    tracker.reset()
    assert tracker.tracks() == []
    assert step(tracker, 1.1, [box(100, 100)]) == [2]


# ---- a moving camera and a hesitating detector ----------------------------------------------------------
def _panning(config: TrackerConfig) -> list[list[int]]:
    """The camera pans at a speed that grows by 2 px per frame (10 Hz): four objects in a row are
    seen in every frame; a fifth, in a row of its own, is seen once (frame 5), missed twice, and seen
    again 63 px further on, more than its 40 px size from where it was. Returns every frame's ids."""
    tracker = Tracker(config)
    seen, pan = [], 0.0
    for k in range(10):
        pan += 2.0 * k  # 0, 2, 6, 12, ... px to the left
        boxes = [box(100 + 120 * i - pan, 100) for i in range(4)]
        if k in (5, 8):
            boxes.append(box(400 - pan, 300))
        seen.append(step(tracker, k / 10, boxes))
    return seen


def test_camera_motion_carries_an_object_seen_once_across_a_gap() -> None:
    """Camera motion compensation: the median shift of the frame's matches moves every prediction,
    so the object seen once is looked for where the pan took it and keeps its id; without it, the
    object is looked for where it was (no velocity of its own yet) and gets a new id."""
    seen = _panning(TrackerConfig())
    assert all(ids[:4] == [1, 2, 3, 4] for ids in seen)
    assert seen[5][4] == 5 and seen[8][4] == 5
    seen = _panning(TrackerConfig(camera_motion=False))
    assert all(ids[:4] == [1, 2, 3, 4] for ids in seen)
    assert seen[5][4] == 5 and seen[8][4] == 6


def test_camera_motion_is_not_an_object_motion() -> None:
    """A track's velocity is its motion relative to the camera's image motion: after a pan at 100 px/s
    stops, a still object unseen for 0.5 s is looked for where it stopped (with the pan in its own
    velocity, it would be looked for 50 px further on, IoU 0, a new id). The camera's motion is
    forgotten with the last track."""
    tracker = Tracker()
    for k in range(10):  # four objects pan left at 10 px per frame
        step(tracker, k / 10, [box(200 + 100 * i - 10 * k, 100) for i in range(4)] + [box(300 - 10 * k, 300)])
    for k in range(10, 15):  # the pan stops; the fifth object is not seen
        assert step(tracker, k / 10, [box(200 + 100 * i - 90, 100) for i in range(4)]) == [1, 2, 3, 4]
    still = [box(200 + 100 * i - 90, 100) for i in range(4)]
    assert step(tracker, 1.5, [*still, box(210, 300)]) == [1, 2, 3, 4, 5]
    tracker = Tracker()  # the pan goes on, then nothing is seen for longer than the buffer
    for k in range(10):
        step(tracker, k / 10, [box(200 + 100 * i - 10 * k, 100) for i in range(4)])
    assert step(tracker, 3.0, [box(300, 300)]) == [5]  # every track forgotten, and the pan with them
    assert step(tracker, 3.5, [box(300, 300)]) == [5]  # (with the pan, looked for 50 px away: 6)


def test_a_class_change_continues_a_track_when_the_box_changes_with_the_class() -> None:
    """The demo detector's boxes for one object differ by class (each class's mask); a change of
    class with box IoU 0.53 (>= class_change_iou 0.4, < 0.6) continues the track."""
    tracker = Tracker()
    assert step(tracker, 0.0, [box(100, 100)], classes=[1]) == [1]
    reshaped = box(114, 100, 60, 36)
    assert 0.4 <= box_iou(np.array([box(100, 100)]), np.array([reshaped]))[0, 0] < 0.6
    assert step(tracker, 0.1, [reshaped], classes=[2]) == [1]
    assert [(i.track_id, i.class_id) for i in tracker.tracks()] == [(1, 2)]


def test_two_tracks_of_one_object_under_two_classes_merge() -> None:
    """The detector gives one object a box of a second class for a frame (both pass its per-class NMS,
    box IoU 0.67 < 1): two tracks. When the object is next seen under one class only, the other
    class's track would take turns with the first, the id flipping with the class; instead the two
    merge and the older track (more detections) keeps the id. Tracks of one class never merge
    (objects of one class do stand that close), nor do they with the merge off."""
    a, a2 = box(100, 100), box(104, 104)  # IoU 0.67

    def run(
        config: TrackerConfig, frames: list[list[list[float]]], classes: list[list[int]]
    ) -> list[list[int]]:
        tracker = Tracker(config)
        return [
            step(tracker, k / 10, b, classes=c) for k, (b, c) in enumerate(zip(frames, classes, strict=True))
        ]

    flips, classes = [[a], [a, a2], [a2], [a], [a2], [a]], [[1], [1, 2], [2], [1], [2], [1]]
    assert run(TrackerConfig(), flips, classes) == [[1], [1, 2], [1], [1], [1], [1]]
    off = TrackerConfig(merge_iou=None, class_change_iou=None)
    assert run(off, flips, classes) == [[1], [1, 2], [2], [1], [2], [1]]
    one_class = [[1], [1, 1], [1], [1, 1]]
    assert run(TrackerConfig(), [[a], [a, a2], [a2], [a, a2]], one_class) == [[1], [1, 2], [2], [1, 2]]


# ---- ids ----------------------------------------------------------------------------------------------------
def test_ids_wrap_at_max_id_skipping_live_tracks() -> None:
    tracker = Tracker(TrackerConfig(max_id=6, buffer_s=1.0))
    a, b, c, d = box(50, 50), box(150, 50), box(250, 50), box(350, 50)
    assert step(tracker, 0.0, [a, b, c, d]) == [1, 2, 3, 4]
    for k in range(1, 16):  # a and c stay; b and d are forgotten after 1 s
        assert step(tracker, k / 10, [a, c]) == [1, 3]
    e, f, g, h = box(50, 250), box(150, 250), box(250, 250), box(350, 250)
    # 5, 6, then wrap: 1 is live (a), 2 is free again (b was forgotten)
    assert step(tracker, 1.6, [a, c, e, f, g]) == [1, 3, 5, 6, 2]
    # the counter goes on at 3: live (c), 4 free (d was forgotten)
    assert step(tracker, 1.7, [a, c, e, f, g, h]) == [1, 3, 5, 6, 2, 4]


def test_when_every_id_is_taken_the_longest_unseen_track_gives_its_id_up() -> None:
    tracker = Tracker(TrackerConfig(max_id=3))
    a, b, c, d = box(50, 50), box(150, 50), box(250, 50), box(350, 50)
    assert step(tracker, 0.0, [a, b]) == [1, 2]
    assert step(tracker, 0.1, [a, c]) == [1, 3]  # b lost (live), seen at 0.0
    assert step(tracker, 0.2, [d]) == [2]  # a, c lost; b the longest unseen: its id goes to d
    assert [i.track_id for i in tracker.tracks()] == [1, 2, 3]
    with pytest.raises(ValueError, match="max_id"):
        step(tracker, 0.3, [a, c, d, box(450, 50)])  # four at once cannot have three ids


# ---- ByteTrack's two stages -------------------------------------------------------------------------
def test_a_low_score_detection_continues_a_track() -> None:
    tracker = Tracker()
    assert step(tracker, 0.0, [box(100, 100)], [0.9]) == [1]
    assert step(tracker, 0.1, [box(100, 100)], [0.8]) == [1]
    assert step(tracker, 0.2, [box(102, 100)], [0.2]) == [1]  # second stage: IoU 0.9 >= 0.5
    assert step(tracker, 0.3, [box(102, 100)], [0.3]) == [1]  # matched last update: still eligible


def test_a_low_score_detection_needs_the_higher_iou() -> None:
    tracker = Tracker()
    step(tracker, 0.0, [box(100, 100)], [0.9])
    step(tracker, 0.1, [box(100, 100)], [0.9])
    shifted = box(117, 100)  # IoU 23/57 = 0.40: enough for a high score, not for a low one
    assert 0.3 <= box_iou(np.array([box(100, 100)]), np.array([shifted]))[0, 0] < 0.5
    assert step(tracker, 0.2, [shifted], [0.2]) == [2]
    tracker = Tracker()
    step(tracker, 0.0, [box(100, 100)], [0.9])
    step(tracker, 0.1, [box(100, 100)], [0.9])
    assert step(tracker, 0.2, [shifted], [0.9]) == [1]


def test_a_low_score_detection_does_not_continue_a_lost_track() -> None:
    """The second stage only takes tracks matched in the previous update (ByteTrack's tracked, not
    lost, tracks); the first stage takes lost ones."""
    tracker = Tracker()
    step(tracker, 0.0, [box(100, 100)], [0.9])
    step(tracker, 0.1, [], [])
    assert step(tracker, 0.2, [box(100, 100)], [0.2]) == [2]
    tracker = Tracker()
    step(tracker, 0.0, [box(100, 100)], [0.9])
    step(tracker, 0.1, [], [])
    assert step(tracker, 0.2, [box(100, 100)], [0.9]) == [1]


def test_a_low_score_detection_does_not_steal_a_high_score_match() -> None:
    tracker = Tracker()
    step(tracker, 0.0, [box(100, 100)], [0.9])
    step(tracker, 0.1, [box(100, 100)], [0.9])
    high, low = box(110, 100), box(101, 100)  # IoU with the track 0.6 (high) and 0.95 (low)
    assert step(tracker, 0.2, [low, high], [0.3, 0.9]) == [2, 1]


def test_the_assignment_maximises_overlap_over_the_frame() -> None:
    """Matching the best pair first (track 1 with the middle detection, IoU 0.51) would leave track
    2 without a detection; the assignment (IoU 0.43 + 0.40 over the 0.3 threshold beats 0.51 alone)
    keeps both."""
    tracker = Tracker()
    assert step(tracker, 0.0, [box(100, 100), box(130, 100)]) == [1, 2]
    outer, middle = box(84, 100), box(113, 100)
    iou = box_iou(np.array([box(100, 100), box(130, 100)]), np.array([outer, middle]))
    assert iou[0, 1] == iou.max() and iou[1, 0] == 0.0 and (iou[[0, 1], [0, 1]] >= 0.3).all()
    assert step(tracker, 0.1, [outer, middle]) == [1, 2]


# ---- configuration -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "field, value",
    [
        ("high_score", float("nan")),
        ("high_score", "0.5"),
        ("match_iou", 0.0),
        ("match_iou", 1.5),
        ("low_match_iou", -0.1),
        ("class_change_iou", 0.0),
        ("class_change_iou", 1.1),
        ("center_distance", 0.0),
        ("center_distance", float("nan")),
        ("buffer_s", -1.0),
        ("buffer_s", float("inf")),
        ("max_id", 0),
        ("max_id", 2.5),
        ("max_id", True),
        ("max_id", 2**31),
        ("merge_iou", 0.0),
        ("merge_iou", 1.5),
        ("camera_motion", 1),
        ("camera_motion", None),
    ],
)
def test_config_validate_names_the_field(field: str, value: object) -> None:
    config = dataclasses.replace(TrackerConfig(), **{field: value})
    with pytest.raises(ValueError, match=field):
        config.validate()
    with pytest.raises(ValueError, match=field):
        Tracker(config)
    tracker = Tracker()
    with pytest.raises(ValueError, match=field):
        tracker.config = config
    assert tracker.config == TrackerConfig()


def test_a_new_config_applies_from_the_next_update() -> None:
    tracker = Tracker(TrackerConfig(buffer_s=1.0))
    assert TrackerConfig().validate() == TrackerConfig()
    step(tracker, 0.0, [box(100, 100)])
    assert step(tracker, 0.5, [box(100, 100)]) == [1]
    tracker.config = TrackerConfig(buffer_s=0.2)
    assert step(tracker, 1.0, [box(100, 100)]) == [2]  # 0.5 s unseen: kept before, forgotten now


def test_update_checks_its_inputs() -> None:
    tracker = Tracker()
    empty = tracker.update(0, np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64))
    assert empty.dtype == np.int64 and empty.shape == (0,)
    with pytest.raises(ValueError, match="boxes"):
        tracker.update(1, np.zeros((2, 3)), np.zeros(2), np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match="scores"):
        tracker.update(1, np.zeros((2, 4)), np.zeros(3), np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match="class_ids"):
        tracker.update(1, np.zeros((2, 4)), np.zeros(2), np.zeros(2, dtype=np.float32))
    with pytest.raises(ValueError, match="finite"):
        tracker.update(1, np.full((1, 4), np.nan), np.zeros(1), np.zeros(1, dtype=np.int64))
    with pytest.raises(TypeError, match="stamp_ns"):
        tracker.update(1.5, np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64))


# ---- apply_track_ids ---------------------------------------------------------------------------------------
H, W = 24, 32
DIVISOR = 1000


def _hand_fused() -> Segmentation:
    """Panoptic results built by the engine's own fusion and encoding: three shapes things (one
    covered enough to be dropped by fusion), road-like stuff on the bottom rows."""
    labels = get_label_set("shapes")  # 0 void, 1 ground and 2 sky stuff, 3 box, 4 sphere, 5 cylinder
    panoptic_labels, _, stuff_map = panoptic_label_space(labels, labels)
    masks = torch.zeros(4, H, W, dtype=torch.bool)
    masks[0, 2:10, 2:12] = True
    masks[1, 4:14, 8:20] = True  # partly under instance 0: keeps its unclaimed pixels
    masks[2, 12:20, 22:30] = True
    masks[3, 3:9, 3:11] = True  # inside instance 0: dropped by fusion
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    classes = torch.tensor([3, 4, 3, 5])
    semantic = torch.zeros(H, W, dtype=torch.int64)  # void, except ground on the bottom rows
    semantic[18:, :] = 1
    fusion = fuse_panoptic(semantic, masks, scores, classes, stuff_map, stuff_area_threshold=1)
    kept = fusion.kept
    assert kept.tolist() == [0, 1, 2]
    boxes = torch.tensor(
        [[2, 2, 12, 10], [8, 4, 20, 14], [22, 12, 30, 20], [3, 3, 11, 9]], dtype=torch.float32
    )
    n = kept.numel()
    fused_ids = torch.arange(1, n + 1)[:, None, None]
    instances = InstanceResult(
        ids=np.arange(1, n + 1, dtype=np.int32),
        class_ids=classes[kept].numpy().astype(np.int64),
        scores=scores[kept].numpy(),
        boxes=boxes[kept].numpy(),
        masks=fusion.instance_ids[None] == fused_ids,
        instance_ids=fusion.instance_ids.numpy().astype(np.uint16),
        label_set=labels,
    )
    panoptic = PanopticResult(
        segment_ids=fusion.segment_ids.numpy(),
        panoptic=encode_panoptic(fusion.segment_ids, fusion.segments, DIVISOR).numpy(),
        segments=fusion.segments,
        label_set=panoptic_labels,
        label_divisor=DIVISOR,
    )
    assert any(not s.isthing for s in panoptic.segments)  # stuff is there too
    return Segmentation(H, W, instances=instances, panoptic=panoptic, timings={"total_ms": 1.0})


def _assert_consistent(
    before: Segmentation, after: Segmentation, track_ids: np.ndarray, divisor: int
) -> None:
    inst, pan = after.instances, after.panoptic
    assert inst.ids.dtype == np.int32 and inst.ids.tolist() == list(track_ids)
    assert (
        inst.instance_ids.dtype == np.uint16
        and inst.instance_ids.shape == before.instances.instance_ids.shape
    )
    # the id map: each instance's pixels carry its track id, nothing else changed
    expected = np.zeros_like(before.instances.instance_ids)
    for old, new in zip(before.instances.ids, track_ids, strict=True):
        expected[before.instances.instance_ids == old] = new
    np.testing.assert_array_equal(inst.instance_ids, expected)
    assert set(np.unique(inst.instance_ids)) - {0} == set(inst.ids.tolist())
    np.testing.assert_array_equal(inst.class_ids, before.instances.class_ids)
    if pan is None:
        return
    assert pan.label_divisor == divisor
    np.testing.assert_array_equal(pan.segment_ids, before.panoptic.segment_ids)
    classes, instance_part = decode_panoptic(pan.panoptic, divisor)
    old_classes, _ = decode_panoptic(before.panoptic.panoptic, before.panoptic.label_divisor)
    np.testing.assert_array_equal(classes, old_classes)
    things = [s for s in pan.segments if s.isthing]
    assert [s.instance_id for s in things] == inst.ids.tolist()  # segments follow the instances
    thing_pixels = np.isin(pan.segment_ids, [s.id for s in things])
    np.testing.assert_array_equal(instance_part, np.where(thing_pixels, inst.instance_ids, 0))
    for s in pan.segments:
        inside = pan.segment_ids == s.id
        assert (pan.panoptic[inside] == s.class_id * divisor + s.instance_id).all()
    assert (pan.panoptic[pan.segment_ids == 0] == 0).all()
    assert [dataclasses.replace(s, instance_id=0) for s in pan.segments] == [
        dataclasses.replace(s, instance_id=0) for s in before.panoptic.segments
    ]


def test_apply_track_ids_keeps_the_id_map_ids_and_panoptic_consistent() -> None:
    seg = _hand_fused()
    snapshot = (seg.instances.ids.copy(), seg.instances.instance_ids.copy(), seg.panoptic.panoptic.copy())
    segments = list(seg.panoptic.segments)
    track_ids = np.array([42, 7, 999], dtype=np.int64)
    out = apply_track_ids(seg, track_ids)
    _assert_consistent(seg, out, track_ids, DIVISOR)
    assert out.timings == seg.timings and out.timings is not seg.timings
    # the input is left as it was
    np.testing.assert_array_equal(seg.instances.ids, snapshot[0])
    np.testing.assert_array_equal(seg.instances.instance_ids, snapshot[1])
    np.testing.assert_array_equal(seg.panoptic.panoptic, snapshot[2])
    assert seg.panoptic.segments == segments
    # a larger divisor re-encodes every pixel (stuff included) and lets larger ids fit
    track_ids = np.array([65535, 1, 1000])
    wide = apply_track_ids(seg, track_ids, label_divisor=65536)
    _assert_consistent(seg, wide, track_ids, 65536)
    # and applying twice composes
    again = apply_track_ids(out, np.array([3, 2, 1]))
    _assert_consistent(seg, again, np.array([3, 2, 1]), DIVISOR)


def test_apply_track_ids_refuses_ids_that_do_not_fit() -> None:
    seg = _hand_fused()
    with pytest.raises(ValueError, match="label_divisor 1000"):
        apply_track_ids(seg, np.array([1, 2, 1000]))
    with pytest.raises(ValueError, match="uint16"):
        apply_track_ids(seg, np.array([1, 2, 65536]), label_divisor=100_000)
    with pytest.raises(ValueError, match="overflow int32"):
        apply_track_ids(seg, np.array([1, 2, 3]), label_divisor=2**30)
    with pytest.raises(ValueError, match=">= 1"):
        apply_track_ids(seg, np.array([0, 2, 3]))
    with pytest.raises(ValueError, match="distinct"):
        apply_track_ids(seg, np.array([5, 2, 5]))
    with pytest.raises(ValueError, match="3 instances"):
        apply_track_ids(seg, np.array([1, 2]))
    # instances only (no panoptic): the divisor does not apply, the uint16 map still does
    only = dataclasses.replace(seg, panoptic=None)
    out = apply_track_ids(only, np.array([1000, 2000, 65535]))
    _assert_consistent(only, out, np.array([1000, 2000, 65535]), DIVISOR)
    with pytest.raises(ValueError, match="uint16"):
        apply_track_ids(only, np.array([1, 2, 70000]))
    empty = Segmentation(H, W)
    assert apply_track_ids(empty, np.zeros(0, dtype=np.int64)).instances is None
    with pytest.raises(ValueError, match="0 instances"):
        apply_track_ids(empty, np.array([1]))


def test_tracked_engine_results_stay_consistent() -> None:
    """The engine's own panoptic results (demo models, random weights, keep every detection) through
    the tracker over a few frames: ids persist on identical frames and every frame stays consistent."""
    from segmentation_ros.engine.pipeline import SegmentationEngine

    torch.manual_seed(0)
    engine = SegmentationEngine(
        task="panoptic",
        semantic_model="shapes_lraspp",
        instance_model="shapes_maskrcnn",
        semantic_weights="none",
        instance_weights="none",
        device="cpu",
        offline=True,
        score_threshold=0.0,
        mask_threshold=0.4,
        instance_min_size=0,
        max_detections=8,
        overlap_threshold=1.0,
        stuff_area_threshold=1,
    )
    try:
        frame = np.random.default_rng(0).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
        result = engine.segment(frame)
    finally:
        engine.close()
    assert result.instances is not None and len(result.instances) >= 2
    tracker = Tracker(TrackerConfig(high_score=0.0))
    inst = result.instances
    for k in range(3):
        ids = tracker.update(k * NS // 30, inst.boxes, inst.scores, inst.class_ids)
        np.testing.assert_array_equal(ids, np.arange(1, len(inst) + 1))  # the same frame: the same ids
        _assert_consistent(result, apply_track_ids(result, ids), ids, result.panoptic.label_divisor)
    shuffled = np.random.default_rng(1).permutation(np.arange(500, 500 + len(inst)))
    _assert_consistent(result, apply_track_ids(result, shuffled), shuffled, result.panoptic.label_divisor)
