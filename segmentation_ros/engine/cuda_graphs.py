"""CUDA graphs for the fixed-shape parts of a model (whole semantic networks, detection backbones).

At camera rates the GPU work of these networks is well under a millisecond; launching their
hundreds of kernels one by one from Python costs more. A CUDA graph records the launches once per
input shape and replays them with one call. Outputs live in the graph's static memory and are
overwritten by the next replay, so a caller must use them before calling again (the engine does:
it reduces them to new tensors within the same step).

Capture can fail for modules that sync or allocate on the host; then the runner says so once in
the log and runs the module eagerly from then on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["GraphedCallable"]

log = logging.getLogger(__name__)


class GraphedCallable:
    """Run ``fn(x)`` through a CUDA graph captured per input shape, dtype and memory format.

    Args:
        fn: a function of one CUDA tensor returning a tensor or a (nested) dict/list/tuple of
            tensors, with no host syncs and no data-dependent shapes.
        autocast_dtype: capture under ``torch.autocast`` with this dtype (None: no autocast). The
            cast weights are baked into the graph, so autocast's weight cache is disabled.
        warmup: eager runs on a side stream before capture (cudnn benchmark picks kernels there).
        max_graphs: shapes kept; beyond that, further shapes run eagerly.
    """

    def __init__(
        self,
        fn: Callable[[torch.Tensor], Any],
        *,
        autocast_dtype: torch.dtype | None = None,
        warmup: int = 3,
        max_graphs: int = 8,
    ):
        self.fn = fn
        self.autocast_dtype = autocast_dtype
        self.warmup = warmup
        self.max_graphs = max_graphs
        self._graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, Any]] = {}
        self.failed = False

    def _run(self, x: torch.Tensor) -> Any:
        if self.autocast_dtype is None:
            return self.fn(x)
        with torch.autocast("cuda", dtype=self.autocast_dtype, cache_enabled=False):
            return self.fn(x)

    def __call__(self, x: torch.Tensor) -> Any:
        if self.failed or x.device.type != "cuda":
            return self._run(x)
        channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        key = (tuple(x.shape), x.dtype, channels_last)
        entry = self._graphs.get(key)
        if entry is None:
            if len(self._graphs) >= self.max_graphs:
                return self._run(x)
            try:
                entry = self._capture(x, channels_last)
            except Exception as exc:  # capture is an optimisation: never let it break inference
                self.failed = True
                log.warning("CUDA graph capture failed (%s); running eagerly from now on", exc)
                torch.cuda.synchronize(x.device)
                return self._run(x)
            self._graphs[key] = entry
        graph, static_input, static_output = entry
        static_input.copy_(x)
        graph.replay()
        return static_output

    def _capture(self, x: torch.Tensor, channels_last: bool) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, Any]:
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        static_input = torch.empty_like(x, memory_format=memory_format).copy_(x)
        side = torch.cuda.Stream(device=x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self._run(static_input)
        torch.cuda.current_stream(x.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):  # its own memory pool: graphs of other shapes never alias it
            static_output = self._run(static_input)
        return graph, static_input, static_output

    def reset(self) -> None:
        """Drop every captured graph and its memory."""
        self._graphs.clear()
