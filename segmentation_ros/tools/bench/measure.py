"""Measuring: a variant (one step over a case's frames) warmed up, then timed interleaved with the
others, with its latency percentiles and peak GPU and host memory."""

from __future__ import annotations

import gc
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from segmentation_ros.tools.bench.workloads import BenchOptions


@dataclass
class _Variant:
    name: str
    step: Callable[[], int | None]  # one step over the case's frames; returns detections or None
    frames: int
    models: list[torch.nn.Module] = field(default_factory=list)  # for the weights' memory


#: ``iters=0``: steps per timed run chosen so that the slowest variant's run lasts about this long.
AUTO_RUN_S = 0.5
AUTO_MAX_ITERS = 10


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_host_peak() -> bool:
    """Reset the kernel's resident-set high-water mark (Linux >= 4.0); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _host_peak_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _module_bytes(modules: Sequence[torch.nn.Module]) -> int:
    return sum(t.numel() * t.element_size() for m in modules for t in (*m.parameters(), *m.buffers()))


class _Memory:
    """Peak memory of one variant: GPU = its models' weights + the most it allocated on top of what
    was allocated before it ran (other live models do not count); host = the process's peak RSS."""

    def __init__(self, device: torch.device):
        self.device = device
        self.gpu_peak = 0
        self.host_peak = 0

    def run(self, fn: Callable[[], None]) -> None:
        _sync(self.device)
        if self.device.type == "cuda":
            before = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        host_reset = _reset_host_peak()
        fn()
        _sync(self.device)
        if self.device.type == "cuda":
            self.gpu_peak = max(self.gpu_peak, torch.cuda.max_memory_allocated(self.device) - before)
        self.host_peak = max(self.host_peak, _host_peak_bytes()) if host_reset else _host_peak_bytes()


def _measure(
    variants: list[_Variant], options: BenchOptions, device: torch.device
) -> dict[str, dict[str, Any]]:
    """Warm each variant up, then time them interleaved (the order rotating from run to run) so that
    a change of load on a shared machine hits every variant alike."""
    memory = {v.name: _Memory(device) for v in variants}
    steps: dict[str, list[float]] = {v.name: [] for v in variants}
    runs: dict[str, list[float]] = {v.name: [] for v in variants}
    detections: dict[str, list[float]] = {v.name: [] for v in variants}
    slowest = 0.0
    for v in variants:

        def warm(v: _Variant = v) -> None:
            nonlocal slowest
            for _ in range(options.warmup):
                t0 = time.perf_counter()
                v.step()
                _sync(device)
            if options.warmup:
                slowest = max(slowest, time.perf_counter() - t0)

        memory[v.name].run(warm)
    iters = options.iters
    if not iters:  # auto: a timed run of the slowest variant lasts about AUTO_RUN_S
        iters = max(1, min(AUTO_MAX_ITERS, round(AUTO_RUN_S / slowest))) if slowest else 1
    for r in range(options.repeats):
        for v in variants[r % len(variants) :] + variants[: r % len(variants)]:
            gc.collect()

            def timed(v: _Variant = v) -> None:
                start = time.perf_counter()
                for _ in range(iters):
                    t0 = time.perf_counter()
                    found = v.step()
                    _sync(device)
                    steps[v.name].append(time.perf_counter() - t0)
                    if found is not None:
                        detections[v.name].append(found / v.frames)
                runs[v.name].append((time.perf_counter() - start) / iters)

            memory[v.name].run(timed)
    out = {}
    for v in variants:
        step_s = float(np.median(runs[v.name]))
        lat = np.asarray(steps[v.name]) * 1e3
        out[v.name] = {
            "frames_per_step": v.frames,
            "iters": iters,
            "step_ms": round(step_s * 1e3, 3),
            "throughput_fps": round(v.frames / step_s, 2),
            "latency_ms": {
                "p50": round(float(np.percentile(lat, 50)), 3),
                "p99": round(float(np.percentile(lat, 99)), 3),
                "samples": int(lat.size),
            },
            "peak_gpu_mb": round((memory[v.name].gpu_peak + _module_bytes(v.models)) / 2**20, 1)
            if device.type == "cuda"
            else None,
            "peak_host_mb": round(memory[v.name].host_peak / 2**20, 1),
            "detections_per_frame": round(float(np.mean(detections[v.name])), 2)
            if detections[v.name]
            else None,
        }
    return out
