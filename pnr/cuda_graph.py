"""Replay a no-grad GPU function from captured CUDA graphs, one per input signature.

Why: the built-in prior's forward is ~400 small kernels at batch 8 of 64 px; on an H100 launching them
costs ~100x what running them does (docs/speed.md). A CUDA graph launches them all at once. Replay runs
the same kernels on the same inputs, so results equal eager ones (checked by bench/edit_speed.py).

Use only for functions that (a) take and return CUDA tensors, (b) run without grad, (c) never sync with
the host or branch on tensor values, and (d) read module weights that are updated in place, not
reallocated (call `clear()` after `.to()` / `load_state_dict` that replaces storage).
Set PNR_NO_CUDA_GRAPHS=1 to run everything eagerly.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch
from torch import Tensor

from pnr.env import env_flag


def enabled() -> bool:
    return not env_flag("PNR_NO_CUDA_GRAPHS")


class GraphCache:
    """fn(*tensors) -> tensor, captured once per (shape, dtype, device) of the inputs, LRU of `max_graphs`."""

    def __init__(self, fn: Callable[..., Tensor], max_graphs: int = 4, warmup: int = 2):
        self.fn, self.max_graphs, self.warmup = fn, max_graphs, warmup
        self._graphs: OrderedDict = OrderedDict()  # key -> (static inputs, static output, graph)

    def clear(self) -> None:
        self._graphs.clear()

    def __len__(self) -> int:
        return len(self._graphs)

    def __call__(self, *args: Tensor) -> Tensor:
        key = tuple((tuple(a.shape), a.dtype, a.device) for a in args)
        entry = self._graphs.get(key)
        if entry is None:
            entry = self._capture(args)
            self._graphs[key] = entry
            while len(self._graphs) > self.max_graphs:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(key)
        static_in, static_out, graph = entry
        for s, a in zip(static_in, args):
            s.copy_(a)
        graph.replay()
        return static_out.clone()

    def _capture(self, args: tuple[Tensor, ...]):
        static_in = [a.detach().clone() for a in args]
        side = torch.cuda.Stream(device=args[0].device)
        side.wait_stream(torch.cuda.current_stream(args[0].device))
        with torch.no_grad(), torch.cuda.stream(side):  # warm-up: cuDNN/cuBLAS choose their kernels here
            for _ in range(self.warmup):
                self.fn(*static_in)
        torch.cuda.current_stream(args[0].device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph):
            static_out = self.fn(*static_in)
        return static_in, static_out, graph
