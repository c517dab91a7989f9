"""Small demo models for the synthetic shapes world, trained from scratch on CPU.

Two registry entries (label set ``shapes``), whose weights ship in ``models/``:

- ``shapes_lraspp`` (semantic): torchvision LR-ASPP on a MobileNetV3-Small, with the low-level
  branch taken at output stride 4 instead of 8 so that the edges of small objects stay sharp.
  Small rather than Large: about a third of the cost per step, so it sees three times as many
  frames in the same CPU time, which matters more from scratch than the extra capacity.
- ``shapes_maskrcnn`` (instance): torchvision Mask R-CNN on a MobileNetV3-Large FPN (strides 4 to
  32 plus a pooled level), with slim heads (64-channel FPN and mask head, 256-d box head) and
  anchors of 8 to 128 px for objects in frames of a few hundred pixels across.

Both use ordinary (trainable) batch norm rather than torchvision's frozen one, because nothing
here starts from ImageNet statistics. ``models/README.md`` is the model card: how the weights were
trained and what they reach.
"""

from __future__ import annotations

from functools import partial

from torch import nn
from torchvision.models import mobilenet_v3_large, mobilenet_v3_small
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.segmentation.lraspp import LRASPP

from segmentation_ros.engine.registry import register_model

__all__ = ["shapes_lraspp", "shapes_maskrcnn", "TRAIN_SIZE", "FPN_CHANNELS", "ANCHOR_SIZES"]

#: (width, height) of the frames the shipped weights were trained on.
TRAIN_SIZE = (224, 168)
FPN_CHANNELS = 64
BOX_REPRESENTATION = 256
MASK_CHANNELS = 64
#: Anchor size per pyramid level (strides 4, 8, 16, 32 and the pooled 64).
ANCHOR_SIZES = ((8,), (16,), (32,), (64,), (128,))
ASPECT_RATIOS = (0.5, 1.0, 2.0)
# torchvision's MobileNetV3 uses momentum 0.01, tuned for fine-tuning from ImageNet statistics;
# from scratch the running statistics must keep up with weights that change fast.
_NORM = partial(nn.BatchNorm2d, eps=0.001, momentum=0.1)


def _stage_indices(features: nn.Sequential) -> list[int]:
    """Indices of the first block of each stride (as torchvision's extractors find them)."""
    return [0] + [i for i, b in enumerate(features) if getattr(b, "_is_cn", False)] + [len(features) - 1]


@register_model(
    "shapes_lraspp",
    task="semantic",
    labels="shapes",
    default_weights="shapes_lraspp.pt",
    description="LR-ASPP MobileNetV3-Small (stride-4 skip), trained from scratch on synthetic shapes",
    input_size=TRAIN_SIZE[1],  # objects look as large as in training: mIoU 0.58 -> 0.72 at 640x480
)
def shapes_lraspp(num_classes: int) -> nn.Module:
    """LR-ASPP MobileNetV3-Small, random init; returns ``{"out": (B, num_classes, H, W) logits}``."""
    features = mobilenet_v3_small(weights=None, dilated=True, norm_layer=_NORM).features
    stages = _stage_indices(features)
    low, high = stages[1], stages[-1]  # output stride 4 (16 channels) and 16 (576 channels)
    backbone = IntermediateLayerGetter(features, return_layers={str(low): "low", str(high): "high"})
    return LRASPP(
        backbone, features[low].out_channels, features[high].out_channels, num_classes, inter_channels=128
    )


@register_model(
    "shapes_maskrcnn",
    task="instance",
    labels="shapes",
    default_weights="shapes_maskrcnn.pt",
    description="Mask R-CNN MobileNetV3-Large FPN (slim heads), trained from scratch on synthetic shapes",
)
def shapes_maskrcnn(num_classes: int) -> nn.Module:
    """Mask R-CNN with a MobileNetV3-Large FPN backbone, random init, sized for ``TRAIN_SIZE``."""
    features = mobilenet_v3_large(weights=None, norm_layer=_NORM).features
    stages = _stage_indices(features)
    levels = [stages[1], stages[2], stages[3], stages[5]]  # strides 4, 8, 16, 32
    backbone = BackboneWithFPN(
        features,
        return_layers={str(i): str(k) for k, i in enumerate(levels)},
        in_channels_list=[features[i].out_channels for i in levels],
        out_channels=FPN_CHANNELS,
    )
    anchors = AnchorGenerator(ANCHOR_SIZES, (ASPECT_RATIOS,) * len(ANCHOR_SIZES))
    short, long = min(TRAIN_SIZE), max(TRAIN_SIZE)
    model = MaskRCNN(
        backbone,
        num_classes=None,
        min_size=short,
        max_size=long,
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_train=1000,
        rpn_pre_nms_top_n_test=500,
        rpn_post_nms_top_n_train=500,
        rpn_post_nms_top_n_test=300,
        box_head=TwoMLPHead(FPN_CHANNELS * 7 * 7, BOX_REPRESENTATION),
        box_predictor=FastRCNNPredictor(BOX_REPRESENTATION, num_classes),
        box_batch_size_per_image=256,
        mask_head=MaskRCNNHeads(FPN_CHANNELS, (MASK_CHANNELS,) * 4, 1),
        mask_predictor=MaskRCNNPredictor(MASK_CHANNELS, MASK_CHANNELS, num_classes),
    )
    return model
