"""The early-2021 mode: its counting rules on small cases, and the published seed masks.

Bit-for-bit reference: ``published_mask_facts.json`` holds the sha256 of every keep-mask the
2021 code makes from the published float16 inputs (see its ``about`` for how it was run).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from clpipe.components.make_masks.compat2021 import (
    MIN_NUM_PER_CLASS,
    confident_joint_2021,
    prune_by_class_2021,
    prune_by_noise_rate_2021,
    prune_counts_2021,
    round_preserving_sum,
)
from clpipe.components.make_masks.logic import ALL_METHODS, COMPAT_2021, make_masks

from .conftest import CONDITIONS, FACTS, noisy_dataset

FACTS_DATA = json.loads(FACTS.read_text())
LOG_ENTRIES = FACTS_DATA["seed_training_logs"]["entries"]


def _sha(keep: np.ndarray) -> str:
    return hashlib.sha256(np.packbits(keep).tobytes()).hexdigest()


# --- the counting rules (notes §3 item 2) ------------------------------------------------

def _two_classes(class0_self_confidence: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Class 0 rows with the given p_0, then 10 confident class-1 rows."""
    p0 = np.array(class0_self_confidence + [0.05] * 10, dtype=np.float32)
    labels = np.array([0] * len(class0_self_confidence) + [1] * 10)
    return labels, np.stack([p0, 1 - p0], axis=1)


def test_pbc_does_not_flag_ties_at_the_cut_off():
    labels, probs = _two_classes([0.1, 0.1, 0.1, 0.2, 0.6, 0.7, 0.8, 0.9, 0.9, 0.9])
    prune_counts = np.array([[8, 0], [2, 10]])  # remove 2 of class 0
    assert not prune_by_class_2021(labels, probs, prune_counts).any()  # cut = 0.1, none strictly below

    labels, probs = _two_classes([0.1, 0.15, 0.2, 0.2, 0.6, 0.7, 0.8, 0.9, 0.9, 0.9])
    assert np.flatnonzero(prune_by_class_2021(labels, probs, prune_counts)).tolist() == [0, 1]


def test_pbnr_flags_every_tie_at_the_cut_off():
    labels, probs = _two_classes([0.1, 0.1, 0.1, 0.2, 0.6, 0.7, 0.8, 0.9, 0.9, 0.9])
    prune_counts = np.array([[8, 0], [2, 10]])  # P[1][0] = 2: two class-0 rows look like class 1
    flagged = prune_by_noise_rate_2021(labels, probs, prune_counts)
    assert np.flatnonzero(flagged).tolist() == [0, 1, 2]  # margins 0.8, 0.8, 0.8: all three tie at the cut


def test_classes_at_the_minimum_size_are_never_pruned():
    labels, probs = _two_classes([0.1] * MIN_NUM_PER_CLASS)
    prune_counts = np.array([[3, 0], [2, 10]])
    assert not prune_by_class_2021(labels, probs, prune_counts).any()
    assert not prune_by_noise_rate_2021(labels, probs, prune_counts).any()


def test_prune_counts_keep_at_least_five_per_class():
    joint = np.array([[2, 1, 3], [0, 50, 4], [0, 6, 40]])  # C[s][y]; given class 0 keeps only 2
    # P[y][s] = C.T; column 0 is [2, 1, 3]: diagonal raised to 5, 1.5 taken off each noise cell
    counts = prune_counts_2021(joint)
    assert counts[:, 0].tolist() == [5, 0, 1]  # max(1 - 1.5, 0) = 0, int(3 - 1.5) = 1
    assert counts[:, 1:].tolist() == joint.T[:, 1:].tolist()


def test_round_preserving_sum_breaks_ties_like_2021_numpy():
    # short: 4.5 and 4.5 both round to 4 (half to even); the +1 goes to the later of the tie
    assert round_preserving_sum(np.array([4.5, 4.5, 1.0])).tolist() == [4, 5, 1]
    assert round_preserving_sum(np.array([0.4, 0.4, 0.2])).tolist() == [0, 1, 0]
    # over: the -1 goes to the smallest rounding loss, the earlier of a tie
    assert round_preserving_sum(np.array([1.6, 1.6, 1.8])).tolist() == [1, 2, 2]


def test_confident_joint_rows_sum_to_label_counts():
    _, noisy, _, probs = noisy_dataset(3)
    joint, off_diagonal = confident_joint_2021(noisy, probs)
    assert joint.sum(axis=1).tolist() == np.bincount(noisy).tolist()
    assert np.all(np.diff(off_diagonal) > 0)


# --- the published seed masks ---------------------------------------------------------------

@pytest.mark.parametrize("condition", CONDITIONS)
def test_2021_mode_reproduces_the_reference_masks_bit_for_bit(published, condition):
    labels, pred_probs = published(condition)
    masks = make_masks(labels, pred_probs, compat=COMPAT_2021)
    expected = FACTS_DATA["reference_2021"]["masks"][condition]
    got = {m: {"kept": int(masks[m].sum()), "sha256_packbits": _sha(masks[m])} for m in ALL_METHODS}
    assert got == expected


@pytest.mark.parametrize("condition", CONDITIONS)
def test_2021_argmax_mask_is_plain_argmax_on_float16(published, condition):
    """README: the published argmax masks are argmax(pyx) == label (but for 2 rows of 0.4/0.6)."""
    labels, pred_probs = published(condition)
    keep = make_masks(labels, pred_probs, methods=["argmax"], compat=COMPAT_2021)["argmax"]
    assert np.array_equal(keep, pred_probs.argmax(axis=1) == labels)


def test_seed_training_logs_match_only_the_recorded_conditions(published):
    """The seed's ResNet-50 logs print the size of the masked training set they used.

    Only 3 of the 27 logged sizes equal what the published float16 inputs give, in any
    semantics: the argmax counts differ too, and argmax has no rule to choose. Those logs
    date from 2019 and were trained on masks from older, pre-float16 probabilities (the
    fixture records both numbers). This pins down exactly which ones agree, so a change in
    any of them is noticed.
    """
    agree = set()
    for entry in LOG_ENTRIES:
        labels, pred_probs = published(entry["condition"])
        kept = int(make_masks(labels, pred_probs, methods=[entry["method"]], compat=COMPAT_2021)[entry["method"]].sum())
        assert kept == entry["clpipe_2021_kept"], entry
        if kept == entry["train_size"]:
            agree.add(f"{entry['condition']} {entry['method']}")
    assert agree == {"0.2/0.2 cl_pbnr", "0.2/0.4 argmax", "0.4/0.2 argmax"}
