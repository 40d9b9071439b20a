"""The 9-layer CNN: shapes, the official layer layout, dropout that stays on at evaluation."""

import pytest
import torch
from clpipe.components.coteach.model import CoTeachingCNN, build_pair


def test_output_shape_and_narrow_width():
    net = CoTeachingCNN(10, width=8)
    assert net(torch.rand(4, 3, 32, 32)).shape == (4, 10)
    assert net.c7.out_channels == 32 and net.c9.out_channels == 8 and net.l_c1.in_features == 8


def test_paper_width_matches_the_official_layout():
    net = CoTeachingCNN(10)  # width 128
    convs = [(m.in_channels, m.out_channels, m.padding) for m in (net.c1, net.c2, net.c3, net.c4, net.c5,
                                                                   net.c6, net.c7, net.c8, net.c9)]
    assert convs == [(3, 128, (1, 1)), (128, 128, (1, 1)), (128, 128, (1, 1)), (128, 256, (1, 1)),
                     (256, 256, (1, 1)), (256, 256, (1, 1)), (256, 512, (0, 0)), (512, 256, (0, 0)),
                     (256, 128, (0, 0))]
    # bhanML/Co-teaching model.py: 3x3 convs with biases + 9 BatchNorms (weight, bias) + Linear(128, 10)
    # = 4,429,184 + 4,096 + 1,290.
    assert sum(p.numel() for p in net.parameters()) == 4_434_570
    assert {n.split(".")[0] for n, _ in net.named_parameters()} == {
        *(f"c{i}" for i in range(1, 10)), *(f"bn{i}" for i in range(1, 10)), "l_c1"}


def test_spatial_sizes_8_6_4_2():
    net = CoTeachingCNN(10, width=8).eval()
    sizes = []
    for name in ("c7", "c8", "c9"):
        getattr(net, name).register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1]))
    net(torch.rand(1, 3, 32, 32))
    assert sizes == [6, 4, 2]


def test_dropout_stays_active_at_eval_like_the_official_code():
    torch.manual_seed(0)
    net = CoTeachingCNN(10, width=8).eval()
    x = torch.rand(16, 3, 32, 32)
    with torch.no_grad():
        assert not torch.equal(net(x), net(x))  # random even in eval(): F.dropout2d without a training flag
        net.dropout_at_eval = False
        assert torch.equal(net(x), net(x))


def test_eval_uses_batchnorm_running_statistics():
    net = CoTeachingCNN(10, width=8, dropout_at_eval=False).eval()
    x = torch.rand(8, 3, 32, 32)
    with torch.no_grad():
        whole = net(x)
        one_by_one = torch.cat([net(x[i : i + 1]) for i in range(8)])
    torch.testing.assert_close(whole, one_by_one)


def test_pair_is_two_different_nets_repeatable_per_seed():
    a1, a2 = build_pair(10, width=8, seed=3)
    b1, _ = build_pair(10, width=8, seed=3)
    c1, _ = build_pair(10, width=8, seed=4)
    assert torch.equal(a1.c1.weight, b1.c1.weight)
    assert not torch.equal(a1.c1.weight, a2.c1.weight)
    assert not torch.equal(a1.c1.weight, c1.c1.weight)


def test_pair_does_not_touch_the_global_rng():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    build_pair(10, width=8, seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_width_must_be_positive():
    with pytest.raises(ValueError):
        CoTeachingCNN(10, width=0)
