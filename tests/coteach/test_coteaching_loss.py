"""Small-loss selection and the exchange: net 1 learns from net 2's picks and vice versa."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from clpipe.components.coteach import method


def official_loss_coteaching(y_1, y_2, t, forget_rate, class_weights=None):
    """The official loss (confidentlearning_and_coteaching/loss.py), rewritten for current torch."""
    loss_1 = F.cross_entropy(y_1, t, reduction="none", weight=class_weights)
    ind_1_sorted = np.argsort(loss_1.detach().numpy(), kind="stable")
    loss_2 = F.cross_entropy(y_2, t, reduction="none", weight=class_weights)
    ind_2_sorted = np.argsort(loss_2.detach().numpy(), kind="stable")
    num_remember = int((1 - forget_rate) * len(loss_1))
    ind_1_update = torch.from_numpy(ind_1_sorted[:num_remember])
    ind_2_update = torch.from_numpy(ind_2_sorted[:num_remember])
    loss_1_update = F.cross_entropy(y_1[ind_2_update], t[ind_2_update], weight=class_weights)
    loss_2_update = F.cross_entropy(y_2[ind_1_update], t[ind_1_update], weight=class_weights)
    return torch.sum(loss_1_update) / num_remember, torch.sum(loss_2_update) / num_remember


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    logits1 = torch.randn(32, 10, generator=g) * 3
    logits2 = torch.randn(32, 10, generator=g) * 3
    targets = torch.randint(0, 10, (32,), generator=g)
    return logits1, logits2, targets


def test_num_remember():
    assert method.num_remember(128, 0.2) == 102  # int(0.8 * 128) = int(102.4)
    assert method.num_remember(128, 0.0) == 128
    assert method.num_remember(128, 0.2 / 9) == 125
    assert method.num_remember(4, 0.9) == 1  # never an empty selection


def test_select_small_loss_picks_the_smallest():
    loss = torch.tensor([0.5, 0.1, 0.9, 0.3, 0.2])
    assert method.select_small_loss(loss, 3).tolist() == [1, 4, 3]


def test_each_net_is_updated_on_the_peers_selection(batch):
    logits1, logits2, targets = (t.clone() for t in batch)
    logits1.requires_grad_(True)
    logits2.requires_grad_(True)
    loss1, loss2, picked_by_1, picked_by_2 = method.coteaching_loss(logits1, logits2, targets, 0.25)
    assert len(picked_by_1) == len(picked_by_2) == 24
    assert set(picked_by_1.tolist()) != set(picked_by_2.tolist())  # the exchange is visible
    # Each net picks its own smallest losses ...
    own1 = F.cross_entropy(logits1.detach(), targets, reduction="none")
    assert set(picked_by_1.tolist()) == set(torch.argsort(own1)[:24].tolist())
    # ... and is trained on the other net's picks: gradients only on those rows, none across nets.
    loss1.backward()
    assert logits2.grad is None
    rows_with_grad = set(torch.nonzero(logits1.grad.abs().sum(1) > 0).flatten().tolist())
    assert rows_with_grad == set(picked_by_2.tolist())
    loss2.backward()
    assert set(torch.nonzero(logits2.grad.abs().sum(1) > 0).flatten().tolist()) == set(picked_by_1.tolist())
    # Value: mean CE of net 1 on net 2's picks, divided once more by num_remember (official).
    expected = F.cross_entropy(logits1.detach()[picked_by_2], targets[picked_by_2]) / 24
    torch.testing.assert_close(loss1.detach(), expected)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("forget_rate", [0.0, 0.2, 0.2 / 9, 0.5])
def test_matches_the_official_loss(batch, weighted, forget_rate):
    logits1, logits2, targets = batch
    w = torch.linspace(0.5, 2.0, 10) if weighted else None
    ours = method.coteaching_loss(logits1, logits2, targets, forget_rate, weights=w)
    theirs = official_loss_coteaching(logits1, logits2, targets, forget_rate, class_weights=w)
    torch.testing.assert_close(ours[0], theirs[0])
    torch.testing.assert_close(ours[1], theirs[1])


def test_weights_change_the_ranking(batch):
    logits1, logits2, targets = batch
    w = torch.ones(10)
    w[targets[0]] = 100.0  # the rows of this class rank last
    _, _, picked, _ = method.coteaching_loss(logits1, logits2, targets, 0.5, weights=w)
    assert not set(torch.nonzero(targets == targets[0]).flatten().tolist()) & set(picked.tolist())


def test_without_double_normalisation_the_loss_is_the_weighted_mean(batch):
    logits1, logits2, targets = batch
    w = torch.linspace(0.5, 2.0, 10)
    loss1, _, _, picked_by_2 = method.coteaching_loss(logits1, logits2, targets, 0.2, weights=w,
                                                     double_normalise=False)
    expected = F.cross_entropy(logits1[picked_by_2], targets[picked_by_2], weight=w)
    torch.testing.assert_close(loss1, expected)
