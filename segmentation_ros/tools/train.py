"""``segmentation-ros train``: fine-tune a registered architecture on synthetic frames or a COCO set.

Semantic models learn per-pixel cross-entropy on the semantic map (void ignored), on inputs
normalised exactly as :class:`~segmentation_ros.engine.pipeline.SegmentationEngine` feeds them. Instance
models are torchvision Mask R-CNNs trained in their own training mode, with boxes, labels and
masks taken from the instance map.

Data:

- ``synthetic[:WxH]``: an endless, seeded stream from :func:`segmentation_ros.tools.synthetic.generate_scene`
  (split ``train``); sample ``k`` of the run is frame ``k``, so a resumed run sees exactly the
  frames the uninterrupted run would have.
- a COCO directory as written by :func:`segmentation_ros.tools.synthetic.write_dataset`, read by
  the evaluation's :class:`~segmentation_ros.tools.evaluate.CocoReader`: ``annotations/panoptic.json``
  with its PNGs in ``annotations/panoptic/`` (semantic models; instance models without
  ``annotations/instances.json``), ``annotations/instances.json`` (instance models), images under
  ``images/``. Category ids are the model's label ids (matched by name first). Epochs are
  reshuffled from the seed.

Output directory: ``checkpoint.pt`` (model, optimizer, scheduler, step, RNG state; what
``--resume`` continues from), ``<model>.pt`` (the weights alone, floats stored as fp16, loadable
by :func:`~segmentation_ros.engine.registry.build_model`), ``log.jsonl`` (one line of losses per step).
``--resume`` refuses, naming the file, a checkpoint of another model, one without its label set or
training state, or one whose parts do not fit this run (see :func:`_load_training_state`); empty
``--weights`` (an unset shell variable) is an error before anything runs, not random weights.
"""

from __future__ import annotations

import json
import logging
import math
import reprlib
import time
from collections.abc import Iterator
from copy import deepcopy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, IterableDataset

from segmentation_ros.engine.config import (  # what the engine normalises semantic inputs with
    IMAGENET_MEAN,
    IMAGENET_STD,
)
from segmentation_ros.engine.labels import LabelSet, get_label_set
from segmentation_ros.engine.models.shapes import (
    TRAIN_SIZE as DEFAULT_SYNTHETIC_SIZE,  # the demo models' training frames
)
from segmentation_ros.engine.registry import ModelEntry, get_model_entry
from segmentation_ros.engine.weights import (
    Checkpoint,
    WeightsError,
    apply_state_dict,
    check_state_dict,
    is_random_init,
    read_checkpoint,
)
from segmentation_ros.tools.synthetic import parse_synthetic_spec

__all__ = [
    "TrainConfig",
    "train",
    "parse_data_spec",
    "semantic_batch",
    "instance_targets",
    "export_weights",
    "CHECKPOINT_NAME",
    "LOG_NAME",
]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "log.jsonl"


@dataclass
class TrainConfig:
    """One training run. See ``segmentation-ros train --help`` for each field."""

    model: str
    data: str
    out: str
    weights: str | None = None
    labels: str | None = None
    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    clip_grad_norm: float = 10.0
    checkpoint_every: int = 200
    device: str = "cpu"
    workers: int = 0
    resume: bool = False
    seed: int = 0
    progress: bool = True

    def validate(self) -> TrainConfig:
        for name in ("steps", "batch_size", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "workers", "seed"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        is_random_init(self.weights, subject="--weights")  # '' (an unset variable) is an error, not random
        parse_data_spec(self.data)
        return self


# ---- data -----------------------------------------------------------------------------------------
def parse_data_spec(spec: str) -> tuple[str, Any]:
    """``"synthetic"`` / ``"synthetic:WxH"`` -> ("synthetic", (W, H)) (the rules of
    :func:`~segmentation_ros.tools.synthetic.parse_synthetic_spec`); a directory -> ("coco", Path)."""
    size = parse_synthetic_spec(spec, DEFAULT_SYNTHETIC_SIZE)
    if size is not None:
        return "synthetic", size
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise ValueError(f"--data {spec!r}: expected 'synthetic[:WxH]' or a COCO dataset directory")
    return "coco", path


@dataclass
class Sample:
    """One training frame: (H, W, 3) uint8 RGB, (H, W) int64 semantic ids, instance masks/classes."""

    image: np.ndarray
    semantic: np.ndarray | None = None
    masks: np.ndarray | None = None  # (N, H, W) bool
    classes: np.ndarray | None = None  # (N,) int64 label ids


def _synthetic_sample(index: int, seed: int, size: tuple[int, int]) -> Sample:
    from segmentation_ros.tools.synthetic import generate_scene

    scene = generate_scene(seed, size[0], size[1], split="train", index=index)
    ids = np.arange(1, scene.num_instances + 1, dtype=scene.instances.dtype)
    return Sample(
        image=scene.image,
        semantic=scene.semantic.astype(np.int64),
        masks=scene.instances[None] == ids[:, None, None],
        classes=scene.instance_class_ids.astype(np.int64),
    )


class _CocoSource:
    """Frames of a COCO instance or COCO panoptic dataset directory, as :class:`Sample`.

    Read through the evaluation's :class:`~segmentation_ros.tools.evaluate.CocoReader` (its layout,
    image order, checks and errors). Category ids become ``labels``' ids (matched by name, else by
    id); void pixels become ``labels``' void id, or -100 (the loss's ignore index) without one;
    crowd regions (``iscrowd``) and empty masks are no instances. Semantic training needs
    ``panoptic.json``; instance training reads ``instances.json`` or, without it, the thing segments
    of ``panoptic.json``.
    """

    def __init__(self, root: Path, task: str, labels: LabelSet):
        from segmentation_ros.tools.evaluate import CocoReader

        self.reader = reader = CocoReader(root)
        self.task = task
        if task == "semantic" and not reader.has_panoptic:
            raise ValueError(f"--data {root}: semantic training needs {reader.panoptic_json} (COCO panoptic)")
        source = reader.panoptic_json if reader.has_panoptic else reader.instances_json  # of the categories
        if not len(reader):
            raise ValueError(f"{source}: no images")
        self.void_id = labels.void_id if labels.void_id is not None else -100  # the loss's ignore index
        self.class_ids: dict[int, int] = {}  # the dataset's category ids -> label ids
        for cat in reader.label_set.classes:
            if cat.id == reader.label_set.void_id:
                continue
            named = labels.by_name(cat.name)
            if named is not None:
                self.class_ids[cat.id] = named.id
            elif cat.id in labels:
                self.class_ids[cat.id] = cat.id
            else:
                raise ValueError(f"{source}: category {cat.id} {cat.name!r} is not in label set {labels.name!r}")

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, i: int) -> Sample:
        from pycocotools import mask as mask_utils

        from segmentation_ros.tools.evaluate import to_rle

        sample = self.reader[i]
        image = sample.image
        height, width = image.shape[:2]
        if self.task == "semantic":
            if sample.semantic is None:  # no panoptic annotation of this image: all void
                return Sample(image=image, semantic=np.full((height, width), self.void_id, dtype=np.int64))
            found, inverse = np.unique(sample.semantic, return_inverse=True)
            lut = np.asarray([self.class_ids.get(c, self.void_id) for c in found.tolist()], dtype=np.int64)
            return Sample(image=image, semantic=lut[inverse].reshape(height, width))
        masks, classes = [], []
        for a in sample.instances or []:
            if a.get("iscrowd", 0):
                continue
            category = int(a["category_id"])
            if category not in self.class_ids:
                raise ValueError(
                    f"{self.reader.instances_json}: an annotation of {sample.name} has category_id "
                    f"{category}, which the categories do not list"
                )
            mask = mask_utils.decode(to_rle(a["segmentation"], height, width)).astype(bool)
            if mask.any():
                masks.append(mask)
                classes.append(self.class_ids[category])
        return Sample(
            image=image,
            masks=np.stack(masks) if masks else np.zeros((0, height, width), dtype=bool),
            classes=np.asarray(classes, dtype=np.int64),
        )


class _BatchStream(IterableDataset):
    """Batches ``start, start + 1, ...``; batch ``s`` holds samples ``s * B .. s * B + B - 1``.

    Worker ``k`` of ``K`` makes the batches with ``s % K == k``; the DataLoader takes them round
    robin, so the order (and a resumed run's data) does not depend on the number of workers.
    """

    def __init__(
        self, data: str, task: str, labels: LabelSet, batch_size: int, seed: int, start: int, stop: int
    ):
        self.kind, self.arg = parse_data_spec(data)
        self.task, self.labels = task, labels
        self.batch_size, self.seed, self.start, self.stop = batch_size, seed, start, stop
        self._coco: _CocoSource | None = None

    def _sample(self, index: int) -> Sample:
        if self.kind == "synthetic":
            return _synthetic_sample(index, self.seed, self.arg)
        if self._coco is None:
            self._coco = _CocoSource(self.arg, self.task, self.labels)
        n = len(self._coco)
        epoch, position = divmod(index, n)
        order = np.random.default_rng([self.seed, epoch]).permutation(n)
        return self._coco[int(order[position])]

    def __iter__(self) -> Iterator[list[Sample]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for step in range(self.start + worker, self.stop, workers):
            first = step * self.batch_size
            yield [self._sample(first + i) for i in range(self.batch_size)]


def _as_is(batch: list[Sample]) -> list[Sample]:
    return batch


def semantic_batch(samples: list[Sample], void_id: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples -> images (B, 3, H, W) float32 normalised as the engine does, labels (B, H, W) int64.

    Frames of different sizes are padded to the largest; padding is void (ignored).
    """
    height = max(s.image.shape[0] for s in samples)
    width = max(s.image.shape[1] for s in samples)
    images = torch.zeros(len(samples), 3, height, width)
    labels = torch.full(
        (len(samples), height, width), -100 if void_id is None else void_id, dtype=torch.int64
    )
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    for i, s in enumerate(samples):
        h, w = s.image.shape[:2]
        images[i, :, :h, :w] = (torch.from_numpy(s.image).permute(2, 0, 1).float() / 255.0 - mean) / std
        assert s.semantic is not None
        labels[i, :h, :w] = torch.from_numpy(s.semantic)
    return images, labels


def instance_targets(samples: list[Sample]) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Samples -> Mask R-CNN training inputs: images (3, H, W) float32 in [0, 1] and targets with
    ``boxes`` (N, 4) float32 x0 y0 x1 y1 (pixel edges), ``labels`` (N,) int64, ``masks`` (N, H, W) uint8."""
    images, targets = [], []
    for s in samples:
        assert s.masks is not None and s.classes is not None
        images.append(torch.from_numpy(s.image).permute(2, 0, 1).float() / 255.0)
        masks = torch.from_numpy(s.masks)
        boxes = torch.zeros(masks.shape[0], 4)
        if masks.shape[0]:
            cols, rows = masks.any(1), masks.any(2)  # (N, W), (N, H)
            arange_w = torch.arange(masks.shape[2])
            arange_h = torch.arange(masks.shape[1])
            boxes[:, 0] = torch.where(cols, arange_w, masks.shape[2]).amin(1)
            boxes[:, 2] = torch.where(cols, arange_w, -1).amax(1) + 1
            boxes[:, 1] = torch.where(rows, arange_h, masks.shape[1]).amin(1)
            boxes[:, 3] = torch.where(rows, arange_h, -1).amax(1) + 1
        targets.append(
            {"boxes": boxes, "labels": torch.from_numpy(s.classes), "masks": masks.to(torch.uint8)}
        )
    return images, targets


# ---- model, optimiser, checkpoints ----------------------------------------------------------------
def _build(entry: ModelEntry, weights: str | None, labels: LabelSet) -> tuple[torch.nn.Module, str]:
    """The architecture for ``labels``, initialised from ``weights`` where shapes fit."""
    from segmentation_ros.engine.weights import load_weights

    module = entry.builder(labels.num_classes)
    state, _, source, _ = load_weights(entry, weights)
    if state is None:  # weights "none" (or None, "random")
        return module, source
    own = module.state_dict()
    fitting = {k.removeprefix("module."): v for k, v in state.items()}
    skipped = sorted(k for k, v in fitting.items() if k not in own or own[k].shape != v.shape)
    fitting = {k: v for k, v in fitting.items() if k not in skipped}
    if not fitting:
        raise ValueError(
            f"--weights {source}: none of its {len(state)} tensors fit model {entry.name!r} (no parameter "
            f"name with the same shape); is it a checkpoint of another architecture?"
        )
    missing = module.load_state_dict(fitting, strict=False).missing_keys
    if skipped or missing:
        log.info("from %s: %d tensors left at random init (class heads or new layers)", source, len(missing))
    return module, source


def _lr_lambda(warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _rng_state(device: torch.device) -> dict[str, Any]:
    # The data are drawn per sample index; only torch's streams (Mask R-CNN's sampling) carry over:
    # the CPU one, and on CUDA each GPU's (where the sampling ops then run).
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if device.type == "cuda" and cuda is not None:
        if len(cuda) != torch.cuda.device_count():
            log.warning(
                "--resume: the checkpoint has the RNG state of %d GPUs, this machine has %d; "
                "the run continues, but not bit-identically",
                len(cuda),
                torch.cuda.device_count(),
            )
        for index, gpu_state in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(gpu_state, index)


def export_weights(
    module: torch.nn.Module, path: str | Path, *, arch: str, labels: LabelSet, half: bool = True, **meta: Any
) -> Path:
    """Write deployable weights (no optimizer): floating tensors as fp16 when ``half``.

    Loading casts them back: ``load_state_dict`` copies into the module's fp32 parameters.
    """
    from segmentation_ros.engine.weights import save_checkpoint

    copy = deepcopy(module).cpu()
    return save_checkpoint(
        path,
        copy.half() if half else copy,
        arch=arch,
        labels=labels,
        dtype="float16" if half else "float32",
        **meta,
    )


def _save_training_state(
    out: Path,
    module: torch.nn.Module,
    optimizer: Any,
    scheduler: Any,
    step: int,
    cfg: TrainConfig,
    entry: ModelEntry,
    labels: LabelSet,
    device: torch.device,
    **meta: Any,
) -> Path:
    from segmentation_ros.engine.weights import save_checkpoint

    return save_checkpoint(
        out / CHECKPOINT_NAME,
        module,
        arch=entry.name,
        labels=labels,
        step=step,
        config=asdict(cfg),
        optimizer=optimizer.state_dict(),
        scheduler=scheduler.state_dict(),
        rng=_rng_state(device),
        **meta,
    )


def _load_training_state(path: Path, entry: ModelEntry) -> Checkpoint:
    """``path`` (``checkpoint.pt``) read and checked for resuming a run of ``entry``.

    Besides what :func:`~segmentation_ros.engine.weights.read_checkpoint` checks, a training
    checkpoint must be of this model, carry its label set and have the training state in ``meta``
    (``step``, ``optimizer``, ``scheduler``, ``rng``) with the types :func:`_save_training_state`
    writes; the model's tensors are checked against the architecture (on the meta device) first.

    Raises:
        ValueError: the checkpoint is of another model.
        WeightsError: anything else, naming the file.
    """
    checkpoint = read_checkpoint(path)
    if checkpoint.arch != entry.name:
        raise ValueError(f"--resume: {path} is a {checkpoint.arch!r} run, not {entry.name!r}")
    if checkpoint.labels is None:
        raise WeightsError(f"--resume: {path} has no 'labels' (its label set): not a checkpoint of this command")
    meta = checkpoint.meta
    for key, kind in (("step", int), ("optimizer", dict), ("scheduler", dict), ("rng", dict)):
        value = meta.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise WeightsError(
                f"--resume: {path}: meta {key!r} is {reprlib.repr(value)}, expected a {kind.__name__} "
                f"(not a checkpoint of this command?)"
            )
    if meta["step"] < 0:
        raise WeightsError(f"--resume: {path}: meta 'step' is {meta['step']}, expected >= 0")
    elapsed = meta.get("elapsed_s", 0.0)
    if isinstance(elapsed, bool) or not isinstance(elapsed, (int, float)) or not 0 <= elapsed < math.inf:
        raise WeightsError(f"--resume: {path}: meta 'elapsed_s' is {reprlib.repr(elapsed)}, expected seconds >= 0")
    if not isinstance(meta.get("init", ""), str):
        raise WeightsError(f"--resume: {path}: meta 'init' is {reprlib.repr(meta['init'])}, expected a string")
    rng = meta["rng"].get("torch")
    if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8 or rng.ndim != 1:
        raise WeightsError(f"--resume: {path}: meta 'rng' has no 'torch' state (a 1-D uint8 tensor)")
    check_state_dict(entry, checkpoint.state, labels=checkpoint.labels, source=f"--resume {path}")
    return checkpoint


def _alike(value: Any, reference: Any) -> bool:
    """Whether ``value`` has ``reference``'s type (any finite real for a number), lists, tuples and
    dicts item by item (a dict's keys of another torch version are harmless: not compared)."""
    if isinstance(reference, dict):
        return isinstance(value, dict) and all(_alike(value[k], reference[k]) for k in reference.keys() & value.keys())
    if isinstance(reference, (list, tuple)):
        return (
            type(value) is type(reference)
            and len(value) == len(reference)
            and all(_alike(v, r) for v, r in zip(value, reference, strict=True))
        )
    if isinstance(reference, (int, float)) and not isinstance(reference, bool):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return type(value) is type(reference)


def _restore_training_state(
    checkpoint: Checkpoint, optimizer: Any, scheduler: Any, device: torch.device
) -> None:
    """Load the optimizer, scheduler and RNG state of a checked checkpoint into this run's.

    Raises:
        WeightsError: naming the file, when a state does not fit this run's (its keys, types or
            tensor shapes): it would otherwise fail later, inside the training loop.
    """
    meta, path = checkpoint.meta, checkpoint.path
    # Values of the wrong type or length would only fail inside the training loop.
    if not _alike(meta["scheduler"], scheduler.state_dict()):
        raise WeightsError(f"--resume: {path}: the scheduler state does not fit this run's")
    groups = meta["optimizer"].get("param_groups")
    expected_groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.state_dict()["param_groups"]]
    if not isinstance(groups, list) or not _alike(groups, expected_groups):
        raise WeightsError(f"--resume: {path}: the optimizer's parameter groups do not fit this run's")
    try:
        optimizer.load_state_dict(meta["optimizer"])
        scheduler.load_state_dict(meta["scheduler"])
        _set_rng_state(meta["rng"], device)
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"--resume: {path}: the optimizer or RNG state does not fit this run: {exc!r}") from exc
    for group in optimizer.param_groups:
        for param in group["params"]:
            for name, value in optimizer.state.get(param, {}).items():
                if not isinstance(value, torch.Tensor) or (value.ndim and value.shape != param.shape):
                    raise WeightsError(
                        f"--resume: {path}: optimizer state {name!r} is {reprlib.repr(value)} for a "
                        f"parameter of shape {tuple(param.shape)}"
                    )


# ---- the loop -------------------------------------------------------------------------------------
def _loss(
    entry: ModelEntry, module: torch.nn.Module, batch: list[Sample], device: torch.device, ignore: int
) -> dict[str, torch.Tensor]:
    if entry.task == "semantic":
        images, labels = semantic_batch(batch, None if ignore == -100 else ignore)
        logits = module(images.to(device))["out"]
        return {"loss_ce": F.cross_entropy(logits, labels.to(device), ignore_index=ignore)}
    images, targets = instance_targets(batch)
    images = [im.to(device) for im in images]
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
    return module(images, targets)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) a training run; return a summary (steps, final loss, paths, seconds)."""
    from segmentation_ros.engine.config import resolve_device

    cfg.validate()
    entry = get_model_entry(cfg.model)
    labels = get_label_set(cfg.labels or entry.labels)
    kind, _ = parse_data_spec(cfg.data)
    if kind == "synthetic":
        shapes = get_label_set("shapes")
        if labels.num_classes < shapes.num_classes:
            raise ValueError(
                f"synthetic frames use label set 'shapes' ({shapes.num_classes} classes); {labels.name!r} has {labels.num_classes}"
            )
    device = resolve_device(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / CHECKPOINT_NAME

    torch.manual_seed(cfg.seed)
    resumed: Checkpoint | None = None
    if cfg.resume and checkpoint.is_file():
        resumed = _load_training_state(checkpoint, entry)
        assert resumed.labels is not None  # checked by _load_training_state
        labels = resumed.labels
        module, source = entry.builder(labels.num_classes), f"resumed from {checkpoint}"
        apply_state_dict(module, resumed.state, entry=entry, labels=labels, source=f"--resume {checkpoint}")
    else:
        if cfg.resume:
            log.info("--resume: no %s yet, starting a new run", checkpoint)
        module, source = _build(entry, cfg.weights, labels)
    module.to(device).train()

    params = [p for p in module.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]  # biases and norm scales
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg.warmup_steps, cfg.steps))
    start, elapsed = 0, 0.0  # elapsed: training seconds before this process, carried over resumes
    if resumed is not None:
        meta = resumed.meta
        elapsed = float(meta.get("elapsed_s", 0.0))
        source = meta.get("init", source)
        _restore_training_state(resumed, optimizer, scheduler, device)
        start = meta["step"]
        if start >= cfg.steps:
            log.info("%s is at step %d of %d: nothing to do", checkpoint, start, cfg.steps)

    ignore = labels.void_id if labels.void_id is not None else -100
    stream = _BatchStream(cfg.data, entry.task, labels, cfg.batch_size, cfg.seed, start, cfg.steps)
    loader = DataLoader(
        stream,
        batch_size=None,
        num_workers=cfg.workers,
        collate_fn=_as_is,
        prefetch_factor=2 if cfg.workers else None,
        # Its own generator: making the iterator draws a base seed, which from torch's global RNG
        # would consume the state a resumed run just restored (Mask R-CNN samples from it).
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    log_file = (out / LOG_NAME).open("a")
    run_meta = {
        "data": cfg.data,
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "init": source,
    }
    started = time.monotonic() - elapsed
    step, loss_value = start, float("nan")
    from tqdm import tqdm

    bar = tqdm(
        total=cfg.steps,
        initial=start,
        desc=f"train {entry.name}",
        unit="step",
        disable=not cfg.progress,
        dynamic_ncols=True,
    )
    try:
        for batch in loader:
            losses = _loss(entry, module, batch, device, ignore)
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise RuntimeError(
                    f"step {step}: loss is {float(loss)} ({ {k: float(v) for k, v in losses.items()} })"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad_norm)
            lr = optimizer.param_groups[0]["lr"]  # this step's rate (scheduler.step sets the next one's)
            optimizer.step()
            scheduler.step()
            step += 1
            loss_value = float(loss.detach())
            record = {
                "step": step,
                "loss": round(loss_value, 5),
                **{k: round(float(v.detach()), 5) for k, v in losses.items()},
            }
            record["lr"] = lr
            record["time_s"] = round(time.monotonic() - started, 2)
            log_file.write(json.dumps(record) + "\n")
            log_file.flush()
            bar.set_postfix(loss=f"{loss_value:.4f}")
            bar.update(1)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                _save_training_state(
                    out,
                    module,
                    optimizer,
                    scheduler,
                    step,
                    cfg,
                    entry,
                    labels,
                    device,
                    init=source,
                    elapsed_s=round(time.monotonic() - started, 2),
                )
    finally:
        bar.close()
        log_file.close()
    module.eval()
    seconds = round(time.monotonic() - started, 1)
    final = export_weights(
        module,
        out / f"{entry.name}.pt",
        arch=entry.name,
        labels=labels,
        step=step,
        train_s=seconds,
        **run_meta,
    )
    return {
        "model": entry.name,
        "steps": step,
        "loss": loss_value,
        "checkpoint": str(checkpoint),
        "weights": str(final),
        "seconds": seconds,
    }
