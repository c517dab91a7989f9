"""Seeded synthetic camera frames of a Gazebo-style world, with exact ground truth.

The world is Gazebo's primitive shapes (box, sphere, cylinder) standing on an infinite ground
plane under a sky. Frames are rendered by per-pixel ray casting through a pinhole camera (numpy,
vectorised per object inside its projected bounding rectangle) with a z-buffer, so perspective,
the horizon line and occlusion are geometrically exact, and the label maps are exact at pixel
centres. A large share of the objects stand in tight clusters of one class (often with one size
and colour), so same-class objects touching and hiding each other are common; objects are also
cut by the image border.

Appearance is randomised in everything a user's world may change, so that models trained here
do not learn our look (all drawn from the frame's seeded random stream, so reproducible):

- sky: families ``clear`` (blue, sometimes a warm glow to one side), ``overcast`` (grey) and
  ``dusk`` (orange-red horizon, dark blue-violet zenith); gradient from horizon to zenith, tinted
  towards a random azimuth, clouds or none;
- ground, textured in world coordinates: ``grass`` (green noise), ``asphalt``, ``concrete``
  (Gazebo's grey plane), ``sand``, ``tiles`` (grey or coloured); noise at three scales; 15 % of the
  objects take a colour close to the ground's;
- light: sun elevation 10-75 degrees and any azimuth, intensity, colour temperature 3000-8000 K,
  ambient level tinted by the sky; sun shadows; Lambert/Blinn shading; haze;
- objects: colours drawn independently of the class (any hue, some grey), a third textured
  (stripes, 3-D checker or blotches in a second random colour), sizes and aspect ratios per
  class (boxes of any proportions);
- camera: field of view 50-90 degrees, height, pitch; exposure, white balance, gamma, vignetting,
  blur, noise, and JPEG artefacts on 40 % of the frames (quality 30-90).

The ``ood`` split (out of distribution) holds back part of the appearance: its sky is ``tinted``
(hues no other split uses: green to teal, purple to pink) and its ground a ``checker`` of two
random colours or ``patches`` (large blotches of two colours, often green). ``train``, ``val`` and
``test`` never show those, so evaluating on ``ood`` measures how a model copes with a world that
looks unlike anything it was trained on. The families are in ``World.sky_family`` and
``World.ground_family``.

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
- ``sampling``: random worlds, cameras and sensors, :data:`SPLITS` and :data:`HELD_OUT_SPLITS`,
  the appearance families, :func:`generate_scene`,
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
from segmentation_ros.tools.synthetic.sampling import (
    HELD_OUT_SPLITS,
    SPLITS,
    generate_scene,
    generate_scenes,
    generate_sequence,
    parse_synthetic_spec,
)
from segmentation_ros.tools.synthetic.sampling import MIN_SPEC_SIZE as MIN_SPEC_SIZE  # not in __all__
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
    "HELD_OUT_SPLITS",
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
