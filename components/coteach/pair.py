"""Both Co-Teaching networks as one computation: a candidate for GPU speed, not yet used by the loop.

Co-Teaching runs two networks of the same shape on the same batch. :class:`StackedPair` stacks
their parameters and buffers (``torch.func.stack_module_state``) and runs them with one
``torch.vmap`` over ``functional_call``: each convolution becomes one grouped convolution
for both networks, each elementwise op one kernel, so a step launches half the kernels, and
one Adam updates both stacks (Adam is elementwise, so this is the two official Adams'
update). BatchNorm running statistics are stacked buffers, updated in place per network.

What it computes equals two separate networks up to float rounding, not bit for bit: the
grouped convolution sums in another order (relative differences of about 1e-7 in the
logits on the CPU; ``tests/coteach/test_pair.py`` checks forward, loss, selections,
gradients and the Adam step). Dropout draws one mask per network
(``randomness="different"``), from other random numbers than two separate calls.

Mixed precision: autocast does not reach the operations inside ``vmap`` (they see the
tensors as they come, so fp16 inputs met fp32 convolution weights: "Input type (c10::Half)
and bias type (float) should be the same", eager and compiled, on the H200 on 2026-11-29;
fp32 inputs silently stayed fp32). The forward therefore does autocast's work itself when
an autocast is active on the input's device: the input and the convolution and linear
weights are cast to its dtype before ``vmap`` (differentiable casts of the fp32 leaves, so
gradients and Adam stay fp32), and BatchNorm normalises in fp32 and returns the input's
dtype, as autocast's mixed BatchNorm kernel does (the batching rule of BatchNorm refuses
bf16 inputs with fp32 running statistics).

It enters the loop only if ``benchmarks/bench_coteach.py --pair stacked`` measures it faster
than the two networks one after the other on the GPU (eager and compiled); until then the loop
keeps the official order, net 1 then net 2.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from ..common import training
from . import method

#: Modules whose weights autocast casts to its lower precision (of those the CNN has).
AUTOCAST_MODULES = (nn.Conv2d, nn.Linear)


class _Fp32BatchNorm2d(nn.BatchNorm2d):
    """BatchNorm that normalises in fp32 and returns its input's dtype (autocast's mixed kernel)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The dtype of the autocast active on ``device``'s type, or None when none is."""
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return None


class StackedPair:
    """Two networks of one architecture run as one vmapped computation.

    Args:
        nets: The two networks (their current weights and buffers are copied into the stacks).
    """

    def __init__(self, nets: tuple[nn.Module, nn.Module]) -> None:
        self.template = copy.deepcopy(nets[0]).to("meta")
        for module in self.template.modules():
            if type(module) is nn.BatchNorm2d:
                module.__class__ = _Fp32BatchNorm2d  # same state, fp32 arithmetic (see the module docstring)
        #: Names of the parameters that autocast would run in its lower precision.
        self.autocast_params = frozenset(
            f"{name}.{p}" if name else p
            for name, module in self.template.named_modules() if isinstance(module, AUTOCAST_MODULES)
            for p, _ in module.named_parameters(recurse=False)
        )
        self.params, self.buffers = stack_module_state(list(nets))
        self._run = self._forward

    def compile(self) -> StackedPair:
        """Runs the stacked forward (and its backward) through ``torch.compile`` from now on."""
        self._run = torch.compile(self._forward)
        return self

    def parameters(self) -> list[torch.Tensor]:
        """The stacked parameters, (2, ...) leaves: what one optimiser updates."""
        return list(self.params.values())

    def train(self, mode: bool = True) -> StackedPair:
        self.template.train(mode)
        return self

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, 32, 32) images -> net 1's and net 2's (B, K) logits (in the autocast dtype, if one is active)."""
        return self._run(x, autocast_dtype(x.device))

    def _forward(self, x: torch.Tensor, dtype: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor]:
        params = self.params
        if dtype is not None:  # autocast's casts, done here because it does not reach inside vmap
            params = {k: v.to(dtype) if k in self.autocast_params else v for k, v in params.items()}
            x = x.to(dtype)

        def one(params, buffers, images):
            return functional_call(self.template, (params, buffers), (images,))

        logits = vmap(one, in_dims=(0, 0, None), randomness="different")(params, self.buffers, x)
        return logits[0], logits[1]

    def unstack_into(self, nets: tuple[nn.Module, nn.Module]) -> None:
        """Copies the stacks back into two ordinary networks (for state dicts and checkpoints)."""
        for i, net in enumerate(nets):
            net.load_state_dict({k: v[i] for k, v in {**self.params, **self.buffers}.items()})


def stacked_adam(pair: StackedPair, lr: float, device: torch.device) -> torch.optim.Adam:
    """One Adam over both stacks (fused on CUDA, as :func:`.method.adam_pair`)."""
    fused = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.Adam(pair.parameters(), lr=lr, **fused)


def stacked_step(pair: StackedPair, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, *,
                 forget_rate: float, weights: torch.Tensor | None, double_normalise: bool,
                 precision: str = "bf16") -> tuple[torch.Tensor, torch.Tensor]:
    """One Co-Teaching step of both networks: the exchanged small-loss losses, one backward, one Adam step.

    The sum ``loss1 + loss2`` has net 1's loss as the only term that depends on net 1's stack
    (and likewise net 2), so its gradient is each network's own, as in the official loop.
    """
    with training.autocast(x.device, precision):
        logits1, logits2 = pair(x)
    loss1, loss2, _, _ = method.coteaching_loss(logits1, logits2, y, forget_rate, weights=weights,
                                                double_normalise=double_normalise)
    optimizer.zero_grad(set_to_none=True)
    (loss1 + loss2).backward()
    optimizer.step()
    return loss1.detach(), loss2.detach()
