"""The stacked pair computes what two separate networks compute: forward, loss, selections,
gradients, BatchNorm statistics and the Adam step (equal up to float rounding; see coteach/pair.py)."""

import copy

import pytest
import torch
from clpipe.components.coteach import method, pair
from clpipe.components.coteach.model import build_pair

#: Tolerance relative to a tensor's largest value: the grouped convolution sums in another order than two
#: single ones (measured: 2.4e-7 on logits of magnitude 1.2, i.e. 2 ulp).
SCALE_TOL = 1e-5
#: Gradients sum over batch x pixels (65,536 terms here) in a thread-count-dependent order: measured up to
#: 2.7e-5 of the largest gradient with 2 threads (0 with 1); a wrong gradient is off by order 1.
GRAD_TOL = 1e-4
CPU = torch.device("cpu")


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to float rounding: every difference below SCALE_TOL of the tensor's largest magnitude."""
    return bool((a - b).abs().max() <= SCALE_TOL * a.abs().max() + 1e-30)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (64,), generator=g)
    weights = torch.rand(10, generator=g) + 0.5
    return x, y, weights


def test_one_step_of_the_stacked_pair_equals_two_separate_networks(batch):
    x, y, weights = batch
    nets = build_pair(10, width=8, dropout=0.0, seed=3)  # no dropout: its random numbers differ by design
    stacked = pair.StackedPair(copy.deepcopy(nets))
    for net in nets:
        net.train()
    stacked.train()

    # forward
    logits = nets[0](x), nets[1](x)
    stacked_logits = stacked(x)
    for a, b in zip(logits, stacked_logits, strict=True):
        assert close(a, b) and not torch.equal(a, torch.zeros_like(a))
    # the exchanged loss and each network's small-loss selection
    separate = method.coteaching_loss(*logits, y, 0.25, weights=weights)
    together = method.coteaching_loss(*stacked_logits, y, 0.25, weights=weights)
    assert close(separate[0], together[0]) and close(separate[1], together[1])
    assert torch.equal(separate[2], together[2]) and torch.equal(separate[3], together[3])
    # gradients: each stack gets its own network's gradient only. Compared at the scale of the network's largest
    # gradient: the conv biases feed BatchNorm, so their true gradient is 0 and both sides hold ~1e-9 noise.
    optimizers = method.adam_pair(nets, 1e-3, CPU)
    for opt, loss in zip(optimizers, separate[:2], strict=True):
        opt.zero_grad()
        loss.backward()
    stacked_opt = pair.stacked_adam(stacked, 1e-3, CPU)
    stacked_opt.zero_grad()
    (together[0] + together[1]).backward()
    for i, net in enumerate(nets):
        scale = max(p.grad.abs().max() for p in net.parameters())
        for name, stack in stacked.params.items():
            difference = (stack.grad[i] - net.get_parameter(name).grad).abs().max()
            assert difference <= GRAD_TOL * scale, (name, i)
    # the Adam step: given the same gradients, one Adam over the stacks updates exactly as two Adams
    for name, stack in stacked.params.items():
        stack.grad = torch.stack([net.get_parameter(name).grad for net in nets])
    for opt in optimizers:
        opt.step()
    stacked_opt.step()
    for name, stack in stacked.params.items():
        for i, net in enumerate(nets):
            assert torch.equal(stack[i], net.get_parameter(name).detach()), (name, i)
    # BatchNorm statistics (updated by the forward pass), and the way back into two networks
    unstacked = build_pair(10, width=8, dropout=0.0, seed=99)
    stacked.unstack_into(unstacked)
    for net, other in zip(nets, unstacked, strict=True):
        for (name, a), (_, b) in zip(net.state_dict().items(), other.state_dict().items(), strict=True):
            assert close(a.float(), b.float()), name
    assert stacked.buffers["bn1.num_batches_tracked"].tolist() == [1, 1]


def test_a_stacked_step_trains_both_networks_like_the_loop(batch):
    x, y, weights = batch
    nets = build_pair(10, width=8, dropout=0.0, seed=5)
    stacked = pair.StackedPair(copy.deepcopy(nets)).train()
    optimizer = pair.stacked_adam(stacked, 1e-3, CPU)
    loss1, loss2 = pair.stacked_step(stacked, optimizer, x, y, forget_rate=0.2, weights=weights,
                                     double_normalise=True, precision="fp32")
    logits = nets[0].train()(x), nets[1].train()(x)
    expected = method.coteaching_loss(*logits, y, 0.2, weights=weights, double_normalise=True)
    assert close(loss1, expected[0].detach()) and close(loss2, expected[1].detach())
    moved = [not torch.equal(stack[i], net.get_parameter(name).detach())
             for name, stack in stacked.params.items() for i, net in enumerate(nets)]
    assert all(moved)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_stacked_pair_under_autocast_matches_two_autocast_networks(batch, dtype):
    """Autocast does not reach inside vmap (on the H200, 2026-11-29: "Input type (c10::Half) and bias type
    (float) should be the same"); the pair casts as autocast would. Checked with the CPU's autocast: the
    logits come out in the low dtype, match two separate networks run under the same autocast to that
    dtype's rounding, and the gradients land on the fp32 stacks."""
    x, y, weights = batch
    nets = build_pair(10, width=8, dropout=0.0, seed=7)
    stacked = pair.StackedPair(copy.deepcopy(nets)).train()
    with torch.autocast("cpu", dtype=dtype):
        logits = nets[0].train()(x), nets[1].train()(x)
        stacked_logits = stacked(x)
    for a, b in zip(logits, stacked_logits, strict=True):
        assert b.dtype == a.dtype == dtype
        # a few units in the last place of the low dtype (8 or 11 bits of mantissa), at the logits' scale
        assert (a.float() - b.float()).abs().max() <= 0.05 * a.float().abs().max()
    loss1, loss2, *_ = method.coteaching_loss(*(t.float() for t in stacked_logits), y, 0.25, weights=weights)
    (loss1 + loss2).backward()
    for stack in stacked.params.values():
        assert stack.dtype == torch.float32 and stack.grad is not None and stack.grad.dtype == torch.float32
        assert torch.isfinite(stack.grad).all()
    # without an autocast the pair stays in fp32
    assert stacked(x)[0].dtype == torch.float32
