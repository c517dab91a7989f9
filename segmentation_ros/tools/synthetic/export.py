"""Writing synthetic frames out: a COCO instance + COCO panoptic dataset, a side-by-side preview
picture, and a rosbag2 camera recording.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from segmentation_ros.engine.imageio import atomic_write_bytes, write_png
from segmentation_ros.engine.labels import get_label_set
from segmentation_ros.engine.panoptic import id_to_rgb
from segmentation_ros.engine.results import Segmentation
from segmentation_ros.tools.synthetic.sampling import generate_scenes
from segmentation_ros.tools.synthetic.world import Scene, _labels, shapes_categories

# --------------------------------------------------------------------------------------------
# COCO export


def _rle_stats(mask: np.ndarray) -> tuple[dict[str, Any], int, list[float]]:
    """COCO RLE (counts as str), area and [x, y, w, h] bbox of a (H, W) bool mask."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    area = int(mask_utils.area(rle))
    bbox = [float(b) for b in mask_utils.toBbox(rle)]
    rle["counts"] = rle["counts"].decode("ascii")
    return rle, area, bbox


@dataclass(frozen=True)
class CocoDataset:
    """Paths of a dataset written by :func:`to_coco`."""

    root: Path
    images_dir: Path
    instances_json: Path
    panoptic_json: Path
    panoptic_dir: Path
    num_images: int


def to_coco(
    scenes: Iterable[Scene],
    out_dir: str | os.PathLike[str],
    *,
    info: Mapping[str, Any] | None = None,
) -> CocoDataset:
    """Write scenes as a COCO instance + COCO panoptic dataset.

    Layout: ``images/NNNNNN.png`` (RGB), ``annotations/instances.json`` (RLE masks, category ids
    are the shapes thing ids), ``annotations/panoptic.json`` and ``annotations/panoptic/NNNNNN.png``
    (segment id = the scene's panoptic label ``class_id * label_divisor + instance_id``, so stuff
    segments are ``class_id * label_divisor``; 0 is void). Image ids count from 1 in order.
    Every file is written under a temporary name and renamed into place.

    Args:
        scenes: frames to write (consumed once, streamed).
        out_dir: dataset root; created if missing.
        info: extra fields for the JSON ``info`` block.

    Returns:
        the written paths.
    """
    root = Path(out_dir)
    images_dir = root / "images"
    annotations_dir = root / "annotations"
    panoptic_dir = annotations_dir / "panoptic"
    for directory in (images_dir, panoptic_dir):
        directory.mkdir(parents=True, exist_ok=True)
    images: list[dict[str, Any]] = []
    instance_annotations: list[dict[str, Any]] = []
    panoptic_annotations: list[dict[str, Any]] = []
    categories = shapes_categories()
    isthing = {c["id"]: bool(c["isthing"]) for c in categories}
    void_id = _labels().void_id

    for image_id, scene in enumerate(scenes, start=1):
        height, width = scene.semantic.shape
        stem = f"{image_id:06d}"
        write_png(images_dir / f"{stem}.png", scene.image)
        images.append({"id": image_id, "file_name": f"{stem}.png", "width": width, "height": height})
        for instance_id, class_id in enumerate(scene.instance_class_ids.tolist(), start=1):
            rle, area, bbox = _rle_stats(scene.instances == instance_id)
            instance_annotations.append(
                {
                    "id": len(instance_annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(class_id),
                    "segmentation": rle,
                    "area": area,
                    "bbox": bbox,
                    "iscrowd": 0,
                }
            )
        segments = []
        for segment_id in np.unique(scene.panoptic).tolist():
            class_id = segment_id // scene.label_divisor
            if class_id == void_id:
                continue
            if class_id not in isthing:
                raise ValueError(f"panoptic label {segment_id}: class {class_id} not in the shapes label set")
            _, area, bbox = _rle_stats(scene.panoptic == segment_id)
            segments.append(
                {"id": segment_id, "category_id": class_id, "iscrowd": 0, "bbox": bbox, "area": area}
            )
        write_png(panoptic_dir / f"{stem}.png", id_to_rgb(scene.panoptic))
        panoptic_annotations.append(
            {"image_id": image_id, "file_name": f"{stem}.png", "segments_info": segments}
        )

    info_block = {"description": "segmentation_ros synthetic Gazebo shapes", "version": "1.0", **(info or {})}
    things = [{k: c[k] for k in ("id", "name", "supercategory")} for c in categories if c["isthing"]]
    instances_json = annotations_dir / "instances.json"
    panoptic_json = annotations_dir / "panoptic.json"
    common = {"info": info_block, "licenses": [], "images": images}
    atomic_write_bytes(
        instances_json,
        json.dumps({**common, "annotations": instance_annotations, "categories": things}).encode(),
    )
    atomic_write_bytes(
        panoptic_json,
        json.dumps({**common, "annotations": panoptic_annotations, "categories": categories}).encode(),
    )
    return CocoDataset(root, images_dir, instances_json, panoptic_json, panoptic_dir, len(images))


def write_dataset(
    out_dir: str | os.PathLike[str],
    n: int,
    seed: int,
    width: int = 320,
    height: int = 240,
    *,
    split: str = "train",
    **kwargs: Any,
) -> CocoDataset:
    """Generate ``n`` frames (:func:`generate_scenes`; ``kwargs`` go to :func:`generate_scene`)
    and write them with :func:`to_coco`. The generator settings are recorded in ``info``."""
    scenes = generate_scenes(n, seed, width, height, split=split, **kwargs)
    info = {
        "generator": "segmentation_ros.tools.synthetic",
        "seed": int(seed),
        "split": split,
        "width": width,
        "height": height,
    }
    return to_coco(scenes, out_dir, info=info)


# --------------------------------------------------------------------------------------------
# Preview


def true_segmentation(scene: Scene, bleed_px: int = 0) -> Segmentation:
    """The scene's ground truth as the engine's result: its instances (ids 1..N, their classes,
    scores 0.9 down to 0.5) and its semantic labels; with ``bleed_px``, every instance mask grown by
    that many pixels onto pixels of no instance (the ground or sky behind it), as predicted masks
    bleed at their edges. For measuring what comes after the engine (depth fusion, tracking)."""
    import cv2
    import torch

    from segmentation_ros.engine.results import InstanceResult, SemanticResult

    n = scene.num_instances
    ids = np.arange(1, n + 1, dtype=np.int32)
    id_map = scene.instances.copy()
    if bleed_px:
        kernel = np.ones((2 * bleed_px + 1,) * 2, np.uint8)
        for k in ids:
            grown = cv2.dilate((scene.instances == k).astype(np.uint8), kernel) > 0
            id_map[grown & (id_map == 0)] = k
    labels = get_label_set("shapes")
    instances = InstanceResult(
        ids=ids,
        class_ids=scene.instance_class_ids.astype(np.int64),
        scores=np.linspace(0.9, 0.5, n, dtype=np.float32),
        boxes=np.zeros((n, 4), np.float32),
        masks=torch.from_numpy(id_map[None] == ids[:, None, None]),
        instance_ids=id_map,
        label_set=labels,
    )
    semantic = SemanticResult(scene.semantic, np.zeros_like(scene.semantic), labels)
    return Segmentation(*scene.semantic.shape, semantic=semantic, instances=instances)


def visible_points(scene: Scene, instance: int) -> np.ndarray:
    """(P, 3) float64 exact optical-frame points [m] of an instance's visible pixels."""
    k = scene.intrinsics
    v, u = np.nonzero((scene.instances == instance) & np.isfinite(scene.depth))
    z = scene.depth[v, u].astype(np.float64)
    return np.stack([(u - k.cx) / k.fx * z, (v - k.cy) / k.fy * z, z], 1)


def render_preview(scene: Scene) -> np.ndarray:
    """Side-by-side picture of a scene for eyeballing: image | semantic | instances.

    Returns:
        (H, 3 W, 3) uint8 RGB; semantic in the label set's colours, instances in distinct colours.
    """
    from segmentation_ros.engine.visualize import colorize_instances, colorize_labels

    semantic = colorize_labels(scene.semantic, get_label_set("shapes"))
    return np.concatenate([scene.image, semantic, colorize_instances(scene.instances)], axis=1)


def write_sequence_bag(
    path: str | os.PathLike[str],
    scenes: Iterable[Scene],
    *,
    namespace: str = "/camera",
    frame_id: str = "camera_optical_frame",
    distro: str = "humble",
    storage: str = "mcap",
    overwrite: bool = False,
    depth: bool = True,
) -> Path:
    """Record scenes as a rosbag2 RGB-D camera: ``<namespace>/image_raw`` (rgb8),
    ``<namespace>/camera_info`` and, with ``depth``, ``<namespace>/depth/image`` (32FC1 metres along
    the optical axis, NaN where nothing is hit: the sky), aligned to the colour image and with its
    stamp, as an ``aligned_depth_to_color`` topic is.

    Receive times equal the frames' stamps, so the bag plays as a live camera (``ros2 bag play``).
    Written atomically, in the metadata version that ``distro``'s rosbag2 reads, like every bag of
    this package (:func:`~segmentation_ros.ros.bag.atomic_bag`, :func:`~segmentation_ros.ros.bag.bag_version`).

    Args:
        path: the bag directory to create.
        scenes: frames with ``stamp_ns`` and ``intrinsics`` (e.g. :func:`generate_sequence`).
        namespace: camera namespace of the two topics.
        frame_id: header frame id.
        distro: message definitions to record ("humble", "jazzy", "kilted").
        storage: "mcap" or "sqlite3".
        overwrite: replace an existing bag (only once the new one is complete).
        depth: also record the aligned depth image.

    Returns:
        the bag directory.

    Raises:
        ValueError: an unknown ``distro`` or ``storage``.
        FileExistsError: ``path`` exists and not ``overwrite``.
        BagError: ``path`` cannot be created (a file in the way, a read-only directory).
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    from segmentation_ros.ros.bag import bag_qos, bag_version
    from segmentation_ros.ros.bag_output import atomic_bag
    from segmentation_ros.ros.conversions import numpy_to_image
    from segmentation_ros.ros.messages import RosbagsFactory, make_header

    factory = RosbagsFactory(distro)
    store = factory.typestore
    dst = Path(path)
    if dst.exists() and not overwrite:
        raise FileExistsError(f"bag {dst} exists; remove it or pass overwrite=True")
    plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
    if storage not in plugins:
        raise ValueError(f"storage must be one of {tuple(plugins)}, got {storage!r}")
    plugin = plugins[storage]
    image_topic, info_topic = f"{namespace}/image_raw", f"{namespace}/camera_info"
    with atomic_bag(dst, overwrite) as tmp:
        writer = Writer(tmp, version=bag_version(distro), storage_plugin=plugin)
        with writer:
            qos = [bag_qos(10, latched=False)]
            image_conn = writer.add_connection(image_topic, "sensor_msgs/msg/Image", typestore=store, offered_qos_profiles=qos)
            info_conn = writer.add_connection(
                info_topic, "sensor_msgs/msg/CameraInfo", typestore=store, offered_qos_profiles=qos
            )
            depth_conn = None
            if depth:
                depth_conn = writer.add_connection(
                    f"{namespace}/depth/image", "sensor_msgs/msg/Image", typestore=store, offered_qos_profiles=qos
                )
            for scene in scenes:
                header = make_header(factory, scene.stamp_ns, frame_id)
                k = scene.intrinsics
                info = factory.new(
                    "sensor_msgs/msg/CameraInfo",
                    header=header,
                    height=k.height,
                    width=k.width,
                    distortion_model="plumb_bob",
                    d=[0.0] * 5,
                    k=list(k.k),
                    r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                    p=list(k.p),
                )
                image = numpy_to_image(scene.image, "rgb8", header, factory)
                writer.write(info_conn, scene.stamp_ns, factory.serialize(info, "sensor_msgs/msg/CameraInfo"))
                writer.write(image_conn, scene.stamp_ns, factory.serialize(image, "sensor_msgs/msg/Image"))
                if depth_conn is not None:
                    meters = np.where(np.isfinite(scene.depth), scene.depth, np.nan).astype(np.float32)
                    msg = numpy_to_image(meters, "32FC1", header, factory)
                    writer.write(depth_conn, scene.stamp_ns, factory.serialize(msg, "sensor_msgs/msg/Image"))
    return dst
