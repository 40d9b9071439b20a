"""Class probabilities of images under an exported model: the training preprocessing, then softmax.

Vocabulary: a model of K classes at resolution R (:class:`~..common.model_files.ModelCard`); M
images; probabilities (M, K) float32, rows summing to 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..common.model_files import ModelCard


def normalise(pixels: np.ndarray, card: ModelCard):
    """(B, R, R, 3) uint8 -> (B, 3, R, R) float32 tensor, ``(x / 255 - mean) / std``."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(card.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(card.std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean) / std


def predict_proba(network, card: ModelCard, pixels: np.ndarray, *, batch_size: int, device: str) -> np.ndarray:
    """(M, K) softmax probabilities of the (M, R, R, 3) uint8 images."""
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(pixels), batch_size):
            x = normalise(pixels[start:start + batch_size], card).to(device)
            out.append(torch.softmax(network(x).float(), dim=1).cpu())
    return torch.cat(out).numpy()


def top_k(probs: np.ndarray, classes: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
    """Per image, the ``k`` most probable (class name, probability), most probable first (ties: lower index)."""
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [[(classes[j], float(p[j])) for j in row] for p, row in zip(probs, order)]
