"""Multi-object tracking: instance ids that persist from frame to frame.

:class:`Tracker` follows ByteTrack (Y. Zhang et al., "ByteTrack: Multi-Object Tracking by
Associating Every Detection Box", ECCV 2022) with box IoU as the main cue, plus explicit steps for
what a camera on a moving robot and a multi-class detector do to detections (camera motion
compensation from the boxes, a class change at high overlap, a small object moving further than its
size, one object tracked under two class names), and :func:`apply_track_ids` relabels one frame's
:class:`~segmentation_ros.engine.results.Segmentation` with the ids it returns. Nothing here knows
ROS; it needs numpy and scipy.

The algorithm, per :meth:`Tracker.update` (one camera frame, its header stamp and its detections):

1. **Time.** Every duration is header time (``stamp_ns``), never a frame count, so the same
   sequence tracks alike at 5 Hz and at 30 Hz, live or from a bag. A stamp older than the last
   update (a bag replayed again, a clock jump, a simulation reset) first resets the tracker: every
   track is forgotten. An equal stamp is allowed (dt = 0). Tracks not seen for longer than
   ``buffer_s`` are forgotten (ByteTrack's ``track_buffer``, in seconds instead of frames).
2. **Prediction.** Each track keeps its last observed box as centre and size, and a
   constant-velocity estimate of its centre (pixels per second of header time) *relative to the
   camera's image motion* (step 3). The velocity is measured between a track's last two
   observations, less the camera's image shift between them, and smoothed exponentially with a
   time constant of :data:`VELOCITY_TIME_CONSTANT_S` (the weight of a new measurement is
   ``1 - exp(-dt / tau)``, so the smoothing does not depend on the frame rate either); a track's
   first velocity is its first measurement, and until then it moves with the camera's image
   motion only. Every track's centre is predicted to the new stamp before matching: its own
   velocity times the time since it was seen, plus the camera's image shift since then (predicted
   with the camera's image velocity, see step 3). Its size is predicted as last observed (sizes no
   smaller than :data:`MIN_PREDICTED_SIZE` pixels): the size changes of detector boxes are mostly
   boxes cut by the image border and mask noise, which extrapolated make the predicted box miss
   the next detection (measured on ``segmentation-ros eval --task tracking``: fewer id switches
   without).
3. **First association.** All tracks against the detections scoring at least ``high_score``. The
   affinity is box IoU between predicted track boxes and detections, zero across classes (in this
   stage a detection never continues a track of another class). The assignment maximises the summed
   ``IoU - match_iou`` over pairs with ``IoU >= match_iou`` (``scipy.optimize.linear_sum_assignment``),
   which is what ByteTrack's ``lapjv`` with ``cost_limit = 1 - match_iou`` on the cost ``1 - IoU``
   computes.
   **Camera motion compensation** (``camera_motion``; BoT-SORT's CMC, N. Aharon et al. 2022, but
   from the boxes instead of the image): when this stage matched at least
   :data:`CAMERA_MOTION_MIN_MATCHES` detections, the median of their centres' displacements from
   their predictions is the frame's unexplained image shift (a robot turning or pitching moves
   every object in the image alike); it is added to the camera's image shift, every prediction
   is moved by it, and this stage runs again for the tracks and detections it left over. The
   camera's image velocity (pixels per second) is smoothed like the tracks', kept while fewer
   matches give no estimate, and forgotten with the last track. Objects seen once, or lost for a
   while, are thus looked for where the camera's motion took them, not where they were.
4. **Second association.** The tracks left over that were matched (or started) in the previous
   update against the remaining, low-scoring detections, with ``IoU >= low_match_iou``. A
   low-scoring detection thus continues a track the object's high-scoring detections had kept,
   through motion blur or partial occlusion, but never takes a track from a high-scoring one.
5. **Class change** (``class_change_iou``, None: off). The tracks left over against the
   high-scoring detections left over, *whatever their classes*, with ``IoU >= class_change_iou``
   (0.4: more than the first stage asks for; the demo model's boxes of one object differ by class,
   each from its own mask, so a stricter gate misses most changes). A detector that hesitates between two
   classes for one object (the demo model does, frame to frame) would otherwise give the object a
   new id at every change of mind; the track takes the detection's class. Matching stays
   class-consistent first: a detection continues a track of another class only when no track of
   its own class took it in the stages before, and only at this overlap.
6. **Centre distance** (``center_distance``, None: off). The tracks left over against the
   high-scoring detections left over of their class, by the distance between the predicted centre
   and the detection's centre in units of the larger box's size (the square root of its area):
   pairs at most ``center_distance`` apart whose areas differ by at most
   :data:`CENTER_GATE_AREA_RATIO`, assigned to the least summed distance. Box IoU is a poor cue for
   small objects: when the camera turns, a 10-pixel box moves by its own width between frames and
   no longer overlaps its prediction, although its centre is right next to it. Coming last, it only
   takes what overlap could not match.
7. **Merge** (``merge_iou``, None: off). A track left unmatched whose predicted box overlaps a
   detection matched to a track *of another class* with IoU >= ``merge_iou`` (0.5) is that
   object under another class name: once a hesitating detector has given one object two tracks
   (the demo model often gives one object boxes of two classes in one frame, which per-class NMS
   keeps), they would otherwise take turns, the id flipping with the class. The two become one:
   the track with more detections keeps its id and takes the detection, the other is forgotten.
   Tracks of one class are never merged (objects of one class do stand that close).
8. **New tracks.** Every detection still unmatched, whatever its score, starts a new track. This
   departs from ByteTrack, which drops unmatched low-scoring detections: here every published
   detection needs an id. Ids come from a counter 1..``max_id`` that wraps to 1 and skips the ids
   of live tracks, so an id is never 0 and never shared by two live tracks; when every id is taken,
   the tracks unseen for longest (not the frame's) give theirs up. :meth:`Tracker.reset` forgets
   the tracks but the counter keeps counting: a forgotten id comes back only after a wrap.

The defaults of steps 3, 5 and 7 were chosen on the generator's ``val`` drives (36 drives of 30
frames, the demo instance model; IDF1 over detected objects 85.9 % without them, 90.9 % with) and
are reported on ``test`` drives (README, Tracking).

Cost: at 100 tracks and 100 detections an update is a few 100x100 numpy operations and at most five
assignments over the rows and columns that have a candidate pair (none when every candidate pair
is unambiguous): about a millisecond (``segmentation-ros bench`` measures it with
:func:`apply_track_ids` at 640x480, the ``tracking`` line).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from segmentation_ros.engine.panoptic import Segment
from segmentation_ros.engine.results import Segmentation

__all__ = ["TrackerConfig", "TrackInfo", "TrackSnapshot", "Tracker", "apply_track_ids", "box_iou"]

#: Time constant of the velocity smoothing (seconds of header time).
VELOCITY_TIME_CONSTANT_S = 0.2
#: The centre-distance stage pairs boxes whose areas differ by at most this factor.
CENTER_GATE_AREA_RATIO = 4.0
#: Predicted box widths and heights are at least this many pixels.
MIN_PREDICTED_SIZE = 1.0
#: Camera motion compensation needs at least this many first-stage matches (their median shift).
CAMERA_MOTION_MIN_MATCHES = 3

_UINT16_MAX = 65535
#: A track's state: one entry per track in each of these arrays (Tracker attributes).
_TRACK_ARRAYS = (
    "_ids",
    "_classes",
    "_state",
    "_velocity",
    "_has_velocity",
    "_first_ns",
    "_seen_ns",
    "_hits",
    "_matched",
    "_offset_seen",
)
_INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class TrackerConfig:
    """The tracker's settings (see the module docstring for what each one does)."""

    high_score: float = 0.5  # ByteTrack's first stage: detections scoring at least this
    match_iou: float = 0.3  # minimum box IoU for a first-stage match
    low_match_iou: float = 0.5  # minimum box IoU for a second-stage match (low-score detections)
    class_change_iou: float | None = 0.4  # a high-scoring detection of another class continues a
    # track at this box IoU or more, after the class-consistent stages (None: never)
    center_distance: float | None = 1.0  # a high-scoring detection continues a track of its class
    # whose predicted centre is this many box sizes away or less, after overlap (None: never)
    merge_iou: float | None = 0.5  # an unmatched track overlapping a detection matched to a track of
    # another class this much (predicted box IoU) is merged into it (None: never)
    camera_motion: bool = True  # compensate the camera's image motion (median shift of the matches)
    buffer_s: float = 1.0  # a track not seen for longer than this much header time is forgotten
    max_id: int = 65535  # track ids are 1..max_id; they wrap, skipping ids of live tracks

    def validate(self) -> TrackerConfig:
        """Return self; raise ValueError naming the field of a bad value."""

        def number(name: str) -> float:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}")
            return float(value)

        number("high_score")
        for name in ("match_iou", "low_match_iou"):
            if not 0.0 < number(name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)!r}")
        if self.class_change_iou is not None and not 0.0 < number("class_change_iou") <= 1.0:
            raise ValueError(f"class_change_iou must be None or in (0, 1], got {self.class_change_iou!r}")
        if self.center_distance is not None and not number("center_distance") > 0.0:
            raise ValueError(f"center_distance must be None or > 0, got {self.center_distance!r}")
        if self.merge_iou is not None and not 0.0 < number("merge_iou") <= 1.0:
            raise ValueError(f"merge_iou must be None or in (0, 1], got {self.merge_iou!r}")
        if not isinstance(self.camera_motion, (bool, np.bool_)):
            raise ValueError(f"camera_motion must be True or False, got {self.camera_motion!r}")
        if number("buffer_s") < 0.0:
            raise ValueError(f"buffer_s must be >= 0, got {self.buffer_s!r}")
        max_id = self.max_id
        if isinstance(max_id, bool) or not isinstance(max_id, (int, np.integer)):
            raise ValueError(f"max_id must be an integer, got {max_id!r}")
        if not 1 <= max_id <= _INT32_MAX:
            raise ValueError(f"max_id must be in [1, {_INT32_MAX}], got {max_id!r}")
        return self


@dataclass(frozen=True)
class TrackInfo:
    """A live track, as of the last update.

    Attributes:
        track_id: its id (1..max_id).
        class_id: the class of its detections.
        age_s: header time from its first detection to the last update.
        hits: detections it has had.
        since_seen_s: header time from its last detection to the last update (0: seen then).
    """

    track_id: int
    class_id: int
    age_s: float
    hits: int
    since_seen_s: float


@dataclass(frozen=True, eq=False)
class TrackSnapshot:
    """The live tracks as of one update, in copies of the tracker's arrays: cheap to take after
    every frame (a few small array copies), read later from another thread while the tracker goes
    on (:meth:`tracks` builds the :class:`TrackInfo` records then)."""

    last_ns: int | None
    ids: np.ndarray
    classes: np.ndarray
    first_ns: np.ndarray
    seen_ns: np.ndarray
    hits: np.ndarray

    def tracks(self) -> list[TrackInfo]:
        """The live tracks, by id."""
        if self.last_ns is None:
            return []
        return [
            TrackInfo(
                track_id=int(self.ids[k]),
                class_id=int(self.classes[k]),
                age_s=(self.last_ns - int(self.first_ns[k])) / 1e9,
                hits=int(self.hits[k]),
                since_seen_s=(self.last_ns - int(self.seen_ns[k])) / 1e9,
            )
            for k in np.argsort(self.ids, kind="stable")
        ]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(M, N) IoU of ``x1, y1, x2, y2`` boxes (M, 4) and (N, 4); 0 where the union is empty."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    np.clip(w, 0, None, out=w)
    np.clip(h, 0, None, out=h)
    inter = w * h
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _to_xyxy(cxcywh: np.ndarray) -> np.ndarray:
    half = cxcywh[:, 2:] / 2
    return np.concatenate([cxcywh[:, :2] - half, cxcywh[:, :2] + half], axis=1)


def _to_cxcywh(xyxy: np.ndarray) -> np.ndarray:
    size = xyxy[:, 2:] - xyxy[:, :2]
    return np.concatenate([xyxy[:, :2] + size / 2, size], axis=1)


def _associate(iou: np.ndarray, valid: np.ndarray, min_iou: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the pairs matched: the maximum of the summed ``IoU - min_iou`` over the
    ``valid`` pairs (ByteTrack's lapjv with a cost limit)."""
    rows = np.flatnonzero(valid.any(axis=1))
    if rows.size == 0:
        return rows, rows
    cols = np.flatnonzero(valid.any(axis=0))
    sub = valid[np.ix_(rows, cols)]
    if (sub.sum(axis=0) == 1).all() and (sub.sum(axis=1) == 1).all():
        r, c = np.nonzero(sub)  # every candidate pair is the only one of its row and column
        return rows[r], cols[c]
    gain = np.where(sub, iou[np.ix_(rows, cols)] - min_iou, 0.0)
    r, c = linear_sum_assignment(gain, maximize=True)
    keep = sub[r, c]
    return rows[r[keep]], cols[c[keep]]


def _center_gate(
    tracks: np.ndarray, detections: np.ndarray, max_distance: float
) -> tuple[np.ndarray, np.ndarray]:
    """(T, D) centre distances of ``cx, cy, w, h`` boxes in units of the larger box's size (the
    square root of its area), and the pairs that may match: distance <= ``max_distance`` and areas
    within a factor of :data:`CENTER_GATE_AREA_RATIO` of each other."""
    area_t = tracks[:, 2] * tracks[:, 3]
    area_d = np.maximum(detections[:, 2] * detections[:, 3], 1e-9)
    scale = np.sqrt(np.maximum(np.maximum(area_t[:, None], area_d[None, :]), 1.0))
    distance = (
        np.hypot(tracks[:, None, 0] - detections[None, :, 0], tracks[:, None, 1] - detections[None, :, 1])
        / scale
    )
    ratio = area_t[:, None] / area_d[None, :]
    valid = (
        (distance <= max_distance) & (ratio <= CENTER_GATE_AREA_RATIO) & (ratio >= 1 / CENTER_GATE_AREA_RATIO)
    )
    return distance, valid


class Tracker:
    """ByteTrack-style multi-object tracker over header time (see the module docstring).

    Attributes:
        config: the settings; a new one (validated when set) applies from the next update.
    """

    def __init__(self, config: TrackerConfig = TrackerConfig()) -> None:
        self.config = config
        self._next_id = 1
        self.reset()

    @property
    def config(self) -> TrackerConfig:
        return self._config

    @config.setter
    def config(self, config: TrackerConfig) -> None:
        if not isinstance(config, TrackerConfig):
            raise TypeError(f"config must be a TrackerConfig, got {type(config).__name__}")
        self._config = config.validate()

    def reset(self) -> None:
        """Forget every track. The id counter keeps counting (no id of a forgotten track is
        reused before the counter wraps)."""
        self._last_ns: int | None = None
        self._ids = np.zeros(0, dtype=np.int64)
        self._classes = np.zeros(0, dtype=np.int64)
        self._state = np.zeros((0, 4), dtype=np.float64)  # last observed cx, cy, w, h
        self._velocity = np.zeros((0, 2), dtype=np.float64)  # d(cx, cy)/dt, pixels per second
        self._has_velocity = np.zeros(0, dtype=bool)  # measured at least once
        self._first_ns = np.zeros(0, dtype=np.int64)
        self._seen_ns = np.zeros(0, dtype=np.int64)
        self._hits = np.zeros(0, dtype=np.int64)
        self._matched = np.zeros(0, dtype=bool)  # matched or started in the last update
        self._offset_seen = np.zeros((0, 2), dtype=np.float64)  # the camera's image shift when last seen
        self._offset = np.zeros(2)  # the camera's image shift at the last update (pixels, cumulative)
        self._camera_velocity = np.zeros(2)  # d(offset)/dt, pixels per second

    def tracks(self) -> list[TrackInfo]:
        """The live tracks (seen within ``buffer_s`` of the last update), by id."""
        return self.snapshot().tracks()

    def snapshot(self) -> TrackSnapshot:
        """The live tracks as of the last update, unaffected by later updates."""
        return TrackSnapshot(
            self._last_ns,
            self._ids.copy(),
            self._classes.copy(),
            self._first_ns.copy(),
            self._seen_ns.copy(),
            self._hits.copy(),
        )

    def update(
        self, stamp_ns: int, boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray
    ) -> np.ndarray:
        """Track one frame's detections.

        Args:
            stamp_ns: the frame's header stamp, nanoseconds.
            boxes: (N, 4) ``x1, y1, x2, y2``.
            scores: (N,) detection scores.
            class_ids: (N,) integer class ids.

        Returns:
            (N,) int64 track ids, >= 1 and distinct, in the detections' order.
        """
        if isinstance(stamp_ns, (bool, np.bool_)) or not isinstance(stamp_ns, (int, np.integer)):
            raise TypeError(f"stamp_ns must be an integer (nanoseconds), got {stamp_ns!r}")
        stamp = int(stamp_ns)
        det_boxes = np.asarray(boxes, dtype=np.float64)
        if det_boxes.ndim == 1 and det_boxes.size == 0:
            det_boxes = det_boxes.reshape(0, 4)
        det_scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        det_classes = np.asarray(class_ids)
        n = det_boxes.shape[0] if det_boxes.ndim == 2 else -1
        if det_boxes.ndim != 2 or det_boxes.shape[1] != 4:
            raise ValueError(f"boxes must be (N, 4), got shape {det_boxes.shape}")
        if det_scores.shape != (n,) or det_classes.shape != (n,):
            raise ValueError(
                f"scores and class_ids must be ({n},) like boxes, got {det_scores.shape} and {det_classes.shape}"
            )
        if n and det_classes.dtype.kind not in "iu":
            raise ValueError(f"class_ids must be integers, got {det_classes.dtype}")
        det_classes = det_classes.astype(np.int64, copy=False)
        if not np.isfinite(det_boxes).all():
            raise ValueError("boxes must be finite")
        cfg = self._config

        if self._last_ns is not None and stamp < self._last_ns:
            self.reset()  # time went backwards: nothing known is valid any more
        # Forget the tracks unseen for longer than the buffer.
        alive = (stamp - self._seen_ns) <= round(cfg.buffer_s * 1e9)
        if not alive.all():
            self._keep(alive)
            if not alive.any():  # nothing seen for buffer_s: the camera's motion is no longer known
                self._camera_velocity = np.zeros(2)

        # Predict every track to this stamp: its own motion and the camera's since it was seen.
        dt_frame = 0.0 if self._last_ns is None else (stamp - self._last_ns) / 1e9
        offset = self._offset + self._camera_velocity * dt_frame
        dt_s = (stamp - self._seen_ns) / 1e9
        predicted = self._state.copy()  # sizes stay as last observed
        predicted[:, :2] += self._velocity * dt_s[:, None] + (offset - self._offset_seen)
        np.maximum(predicted[:, 2:], MIN_PREDICTED_SIZE, out=predicted[:, 2:])
        iou = box_iou(_to_xyxy(predicted), det_boxes)
        same_class = self._classes[:, None] == det_classes[None, :]
        high = det_scores >= cfg.high_score

        track_of = np.full(n, -1, dtype=np.int64)  # detection -> track row, -1: none (yet)
        free = np.ones(self._ids.size, dtype=bool)  # tracks not matched yet in this update

        def match(tracks: np.ndarray, detections: np.ndarray, min_iou: float, class_consistent: bool) -> None:
            """Assign the ``tracks`` rows still free to the ``detections`` still unmatched by IoU."""
            t = np.flatnonzero(free & tracks)
            d = np.flatnonzero(detections & (track_of < 0))
            if t.size == 0 or d.size == 0:
                return
            sub_iou = iou[np.ix_(t, d)]
            valid = sub_iou >= min_iou
            if class_consistent:
                valid &= same_class[np.ix_(t, d)]
            r, c = _associate(sub_iou, valid, min_iou)
            track_of[d[c]] = t[r]
            free[t[r]] = False

        every = np.ones_like(free)
        match(every, high, cfg.match_iou, True)
        if cfg.camera_motion:
            matched = np.flatnonzero(track_of >= 0)
            if matched.size >= CAMERA_MOTION_MIN_MATCHES:
                centres = (det_boxes[matched, :2] + det_boxes[matched, 2:]) / 2
                shift = np.median(centres - predicted[track_of[matched], :2], axis=0)
                offset = offset + shift
                predicted[:, :2] += shift
                if free.any():
                    iou[free] = box_iou(_to_xyxy(predicted[free]), det_boxes)  # (the others are matched)
                    match(every, high, cfg.match_iou, True)
        match(self._matched, ~high, cfg.low_match_iou, True)
        if cfg.class_change_iou is not None:
            match(every, high, cfg.class_change_iou, False)
        if cfg.center_distance is not None:
            t, d = np.flatnonzero(free), np.flatnonzero(high & (track_of < 0))
            if t.size and d.size:
                distance, near = _center_gate(predicted[t], _to_cxcywh(det_boxes[d]), cfg.center_distance)
                r, c = _associate(-distance, near & same_class[np.ix_(t, d)], -cfg.center_distance)
                track_of[d[c]] = t[r]
                free[t[r]] = False
        if cfg.merge_iou is not None:
            track_of, free = self._merge(track_of, free, iou, det_classes, cfg.merge_iou)
        if dt_frame > 0:
            weight = -math.expm1(-dt_frame / VELOCITY_TIME_CONSTANT_S)
            self._camera_velocity += weight * ((offset - self._offset) / dt_frame - self._camera_velocity)
        self._offset = offset

        out = np.empty(n, dtype=np.int64)
        matched_dets = np.flatnonzero(track_of >= 0)
        rows = track_of[matched_dets]
        if rows.size:
            self._observe(rows, _to_cxcywh(det_boxes[matched_dets]), stamp)
            self._classes[rows] = det_classes[matched_dets]  # (changes in the class-change stage)
            out[matched_dets] = self._ids[rows]
        self._matched = ~free
        new_dets = np.flatnonzero(track_of < 0)
        if new_dets.size:  # (may forget lost tracks to free ids: rows are stale from here)
            out[new_dets] = self._start(det_classes[new_dets], _to_cxcywh(det_boxes[new_dets]), stamp)
        self._last_ns = stamp
        return out

    # -- internals -----------------------------------------------------------------------------------
    def _keep(self, keep: np.ndarray) -> None:
        for name in _TRACK_ARRAYS:
            setattr(self, name, getattr(self, name)[keep])

    def _merge(
        self, track_of: np.ndarray, free: np.ndarray, iou: np.ndarray, classes: np.ndarray, min_iou: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Step 7: unmatched tracks on a detection matched to a track of another class (predicted box
        IoU >= ``min_iou``) merge with that track; of the two, the one with more hits keeps the
        detection. Forgets the others; returns ``track_of`` and ``free`` over the remaining rows."""
        detections = np.flatnonzero(track_of >= 0)
        unmatched = np.flatnonzero(free)
        if detections.size == 0 or unmatched.size == 0:
            return track_of, free
        pairs = (iou[np.ix_(unmatched, detections)] >= min_iou) & (
            self._classes[unmatched, None] != classes[None, detections]
        )
        if not pairs.any():
            return track_of, free
        forget = np.zeros(free.size, dtype=bool)
        for a, b in zip(*np.nonzero(pairs), strict=True):  # (rarely more than one pair)
            row, det = unmatched[a], detections[b]
            other = track_of[det]
            if forget[row] or forget[other] or not free[row]:
                continue
            if self._hits[row] > self._hits[other]:  # the older track takes the detection
                track_of[det], forget[other] = row, True
                free[row] = False
            else:
                forget[row] = True
        keep = ~forget
        new_row = np.cumsum(keep) - 1
        self._keep(keep)
        return np.where(track_of >= 0, new_row[track_of], -1), free[keep]

    def _observe(self, rows: np.ndarray, observed: np.ndarray, stamp: int) -> None:
        """Matched tracks: new box, velocity relative to the camera from the last two observations
        (smoothed), hits."""
        dt_s = (stamp - self._seen_ns[rows]) / 1e9
        moved = dt_s > 0  # an equal stamp measures no velocity
        if moved.any():
            r, dt = rows[moved], dt_s[moved]
            camera = self._offset - self._offset_seen[r]  # the camera's image shift in between
            measured = (observed[moved, :2] - self._state[r, :2] - camera) / dt[:, None]
            weight = np.where(self._has_velocity[r], -np.expm1(-dt / VELOCITY_TIME_CONSTANT_S), 1.0)
            self._velocity[r] += weight[:, None] * (measured - self._velocity[r])
            self._has_velocity[r] = True
        self._state[rows] = observed
        self._offset_seen[rows] = self._offset
        self._seen_ns[rows] = stamp
        self._hits[rows] += 1

    def _start(self, classes: np.ndarray, state: np.ndarray, stamp: int) -> np.ndarray:
        """New tracks for these detections; returns their ids."""
        count = classes.size
        ids = self._allocate(count)
        self._ids = np.concatenate([self._ids, ids])
        self._classes = np.concatenate([self._classes, classes])
        self._state = np.concatenate([self._state, state])
        self._velocity = np.concatenate([self._velocity, np.zeros((count, 2))])
        self._has_velocity = np.concatenate([self._has_velocity, np.zeros(count, dtype=bool)])
        self._first_ns = np.concatenate([self._first_ns, np.full(count, stamp, dtype=np.int64)])
        self._seen_ns = np.concatenate([self._seen_ns, np.full(count, stamp, dtype=np.int64)])
        self._hits = np.concatenate([self._hits, np.ones(count, dtype=np.int64)])
        self._matched = np.concatenate([self._matched, np.ones(count, dtype=bool)])
        self._offset_seen = np.concatenate([self._offset_seen, np.tile(self._offset, (count, 1))])
        return ids

    def _allocate(self, count: int) -> np.ndarray:
        """``count`` ids from the counter, skipping the live tracks' ids; when too few are left,
        the tracks unseen for longest (none matched in this update) give theirs up."""
        max_id = self._config.max_id
        shortfall = count - (max_id - self._ids.size)
        if shortfall > 0:
            lost = np.flatnonzero(~self._matched)
            if lost.size < shortfall:
                raise ValueError(
                    f"max_id {max_id} is too small: {count} new tracks and {self._ids.size - lost.size} "
                    f"tracks matched in this frame need more ids"
                )
            oldest = lost[np.argsort(self._seen_ns[lost], kind="stable")[:shortfall]]
            keep = np.ones(self._ids.size, dtype=bool)
            keep[oldest] = False
            self._keep(keep)
        used = set(self._ids.tolist())
        out = np.empty(count, dtype=np.int64)
        candidate = self._next_id
        for k in range(count):
            if candidate > max_id:
                candidate = 1
            while candidate in used:
                candidate = candidate + 1 if candidate < max_id else 1
            out[k] = candidate
            used.add(candidate)
            candidate += 1
        self._next_id = candidate
        return out


def apply_track_ids(
    segmentation: Segmentation, track_ids: np.ndarray, label_divisor: int | None = None
) -> Segmentation:
    """One frame's results with its instances renumbered to track ids.

    Returns a new :class:`Segmentation` (the input is not modified; arrays that do not change are
    shared): ``instances.ids`` are ``track_ids`` (int32, in the instances' order), the
    ``instances.instance_ids`` map carries the same ids (a lookup table over the old ids), and the
    panoptic result, if any, encodes ``class_id * label_divisor + track_id`` on thing pixels
    (``class_id * label_divisor`` on stuff, 0 on void) with its thing segments' ``instance_id``
    updated. Map pixels whose id is not one of ``instances.ids`` become 0.

    Args:
        segmentation: the frame's results; without instances ``track_ids`` must be empty.
        track_ids: (N,) distinct ids >= 1, one per instance.
        label_divisor: the panoptic encoding's divisor; None keeps the result's own.

    Raises:
        ValueError: a length mismatch, an id < 1, repeated ids, an id above 65535 (the id map is
            uint16), an id not below the label divisor, an encoding that overflows int32, or
            panoptic things that are not the instances.
    """
    track_ids = np.asarray(track_ids).reshape(-1)
    if track_ids.size and track_ids.dtype.kind not in "iu":
        raise ValueError(f"track ids must be integers, got {track_ids.dtype}")
    track_ids = track_ids.astype(np.int64, copy=False)
    instances = segmentation.instances
    n = 0 if instances is None else len(instances)
    if track_ids.size != n:
        raise ValueError(f"{track_ids.size} track ids for {n} instances")
    if n:
        if track_ids.min() < 1:
            raise ValueError(f"track ids must be >= 1, got {int(track_ids.min())}")
        if track_ids.max() > _UINT16_MAX:
            raise ValueError(f"track id {int(track_ids.max())} does not fit the uint16 instance id map")
        if np.unique(track_ids).size != n:
            raise ValueError("track ids must be distinct within a frame")
    pan = segmentation.panoptic
    divisor = label_divisor if label_divisor is not None else (pan.label_divisor if pan is not None else None)
    if divisor is not None:
        if isinstance(divisor, bool) or not isinstance(divisor, (int, np.integer)) or divisor < 1:
            raise ValueError(f"label_divisor must be a positive integer, got {divisor!r}")
        divisor = int(divisor)
        if pan is not None and n and track_ids.max() >= divisor:
            raise ValueError(f"track id {int(track_ids.max())} does not fit label_divisor {divisor}")

    out = dataclasses.replace(segmentation, timings=dict(segmentation.timings))
    new_of: dict[int, int] = {}  # old instance id -> track id
    if instances is not None:
        old_ids = np.asarray(instances.ids, dtype=np.int64)
        if n and (old_ids.min() < 1 or old_ids.max() > _UINT16_MAX):
            raise ValueError("instance ids must be in 1..65535")
        new_of = dict(zip(old_ids.tolist(), track_ids.tolist(), strict=True))
        id_map = instances.instance_ids
        # a table over the map dtype's whole range (no pass over the map to find its largest id)
        small = id_map.dtype in (np.uint8, np.uint16)
        size = 2 ** (8 * id_map.dtype.itemsize) if small else int(id_map.max(initial=0)) + 1
        old_to_new = np.zeros(max(size, int(old_ids.max(initial=0)) + 1), dtype=np.uint16)
        old_to_new[old_ids] = track_ids
        out.instances = dataclasses.replace(
            instances,
            ids=track_ids.astype(np.int32),
            instance_ids=np.take(old_to_new, id_map),  # np.take: about twice as fast as indexing
        )
    if pan is not None:
        assert divisor is not None
        segments = []
        codes = [0] * (len(pan.segments) + 1)  # segment id -> panoptic code
        for s in pan.segments:
            if not 0 < s.id < len(codes):
                raise ValueError(f"panoptic segment ids must be 1..{len(pan.segments)}, got {s.id}")
            if s.isthing:
                new = new_of.get(s.instance_id)
                if new is None:
                    raise ValueError(
                        f"panoptic segment {s.id}: instance {s.instance_id} is not one of the instances"
                    )
                s = Segment(s.id, s.class_id, s.isthing, s.area, s.bbox, s.score, new)
            codes[s.id] = s.class_id * divisor + s.instance_id
            segments.append(s)
        if max(codes) > _INT32_MAX:
            raise ValueError(f"class ids times label_divisor {divisor} overflow int32")
        out.panoptic = dataclasses.replace(
            pan,
            panoptic=np.take(np.array(codes, dtype=np.int32), pan.segment_ids),
            segments=segments,
            label_divisor=divisor,
        )
    return out
