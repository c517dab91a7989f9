"""Seeded synthetic camera frames of a Gazebo-style world, with exact ground truth.

The world is Gazebo's primitive shapes (box, sphere, cylinder) standing on an infinite ground
plane under a sky. Frames are rendered by per-pixel ray casting through a pinhole camera (numpy,
vectorised per object inside its projected bounding rectangle) with a z-buffer, so perspective,
the horizon line and occlusion are geometrically exact, and the label maps are exact at pixel
centres. Object colours are drawn independently of the class; objects are Lambert/Blinn shaded
by a sun that also casts shadows on the ground; the ground is textured in world coordinates and
the sky has a gradient and clouds; the sensor adds vignetting, blur and noise. A large share of
the objects stand in tight clusters of one class (often with one size and colour), so same-class
objects touching and hiding each other are common.

Label ids are those of ``config/labels/shapes.yaml`` (0 unlabeled/void, 1 ground, 2 sky, 3 box,
4 sphere, 5 cylinder). Pixels of objects that are visible on fewer than ``min_instance_area``
pixels are void (0) in every map, so they are neither an instance nor mislabeled as stuff.

Frames:

- :func:`generate_scene` / :func:`generate_scenes`: independent frames (random camera, world,
  light and sensor per frame) for training and evaluation; ``split`` keeps sets disjoint.
- :func:`generate_sequence`: a camera driving smoothly through one static world, with per-frame
  timestamps and poses, for bag recordings.
- :func:`to_coco` / :func:`write_dataset`: COCO instance and COCO panoptic export.

Frames: world frame z up, ground at z = 0. Camera optical frame as in ROS (x right, y down,
z forward). Pixel (u, v) has its centre at integer coordinates (column u, row v).

Submodules:

- ``world``: the scene description: the shapes label set (:func:`shapes_categories`), the camera
  (:class:`CameraIntrinsics`, :class:`CameraPose`), :class:`Primitive`, :class:`World` and the
  rendered frame :class:`Scene`.
- ``raycast``: :func:`render`: ray casting, shadows, shading, ground and sky, the sensor.
- ``sampling``: random worlds, cameras and sensors, :data:`SPLITS`, :func:`generate_scene`,
  :func:`generate_scenes`, :func:`generate_sequence` and :func:`parse_synthetic_spec`.
- ``export``: :class:`CocoDataset`, :func:`to_coco`, :func:`write_dataset`,
  :func:`render_preview` and :func:`write_sequence_bag`.
"""

from __future__ import annotations

from segmentation_ros.tools.synthetic.export import (
    CocoDataset,
    render_preview,
    to_coco,
    true_segmentation,
    visible_points,
    write_dataset,
    write_sequence_bag,
)
from segmentation_ros.tools.synthetic.raycast import render
from segmentation_ros.tools.synthetic.sampling import MIN_SPEC_SIZE as MIN_SPEC_SIZE  # not in __all__
from segmentation_ros.tools.synthetic.sampling import (
    SPLITS,
    generate_scene,
    generate_scenes,
    generate_sequence,
    parse_synthetic_spec,
)
from segmentation_ros.tools.synthetic.world import (
    CameraIntrinsics,
    CameraPose,
    Primitive,
    Scene,
    World,
    shapes_categories,
)

__all__ = [
    "CameraIntrinsics",
    "CameraPose",
    "CocoDataset",
    "Primitive",
    "SPLITS",
    "Scene",
    "World",
    "generate_scene",
    "generate_scenes",
    "generate_sequence",
    "parse_synthetic_spec",
    "render",
    "render_preview",
    "shapes_categories",
    "to_coco",
    "true_segmentation",
    "visible_points",
    "write_dataset",
    "write_sequence_bag",
]
