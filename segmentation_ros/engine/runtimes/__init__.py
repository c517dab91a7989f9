"""Inference runtimes for the engine's fixed-shape network parts (no ROS here).

The engine (:mod:`segmentation_ros.engine.pipeline`) splits every model into a fixed-shape network
part (a whole semantic network to its logits; Mask R-CNN's backbone, FPN and RPN head) and the
data-dependent rest (proposals, ROI heads, thresholds, mask paste, fusion), which always runs in
torch. ``EngineConfig.runtime`` chooses what runs the fixed-shape part:

- ``"torch"``: PyTorch eager, replayed as CUDA graphs on CUDA (:mod:`..cuda_graphs`).
- ``"onnxruntime"``: exported to ONNX with torch's exporter on first use per model, weights and
  input size, cached on disk, and run by an ONNX Runtime session with the TensorRT, CUDA or CPU
  execution provider (:mod:`.onnx`; needs ``pip install 'segmentation-ros[onnx]'``).
"""

from __future__ import annotations

__all__ = ["RUNTIMES"]

#: The values of ``EngineConfig.runtime`` (and of the node's ``runtime`` parameter).
RUNTIMES = ("torch", "onnxruntime")
