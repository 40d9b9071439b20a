"""Checkpoints: host copies, the background writer, what resumes, and what is refused (no training)."""

import threading

import numpy as np
import pytest
import torch
from clpipe.components.common.errors import InputError
from clpipe.components.coteach import checkpoint, recipes


class NotTensors:
    """An object torch.load(weights_only=True) must refuse: unpickling it would call print()."""

    def __reduce__(self):
        return (print, ("this ran while loading",))


def _saved(obj) -> bytes:
    return checkpoint.checkpoint_bytes(obj)


def test_to_host_copies_so_later_updates_do_not_leak_into_a_snapshot():
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters())
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    state = checkpoint.to_host({"model": net.state_dict(), "opt": opt.state_dict(), "n": [1, (2.0, 3)]})
    before = state["model"]["weight"].clone(), state["opt"]["state"][0]["exp_avg"].clone()
    opt.step()  # changes parameters and moments in place
    assert torch.equal(state["model"]["weight"], before[0])
    assert torch.equal(state["opt"]["state"][0]["exp_avg"], before[1])
    assert not torch.equal(net.weight.detach(), before[0])
    assert state["n"] == [1, (2.0, 3)] and isinstance(state["n"][1], tuple)


def test_background_writer_keeps_the_order_and_runs_off_the_calling_thread():
    done, threads = [], set()

    def write(item):
        threads.add(threading.current_thread().name)
        done.append(item)

    with checkpoint.BackgroundWriter() as writer:
        for i in range(20):
            writer.submit(write, i)
    assert done == list(range(20))
    assert threads and threading.current_thread().name not in threads


def test_background_writer_raises_a_failed_write_in_the_loop():
    def fail():
        raise PermissionError("read-only bucket")

    writer = checkpoint.BackgroundWriter()
    writer.submit(fail)
    with pytest.raises(PermissionError, match="read-only bucket"):
        writer.close()


def test_checkpoint_every_is_not_a_resume_setting_but_eval_every_is():
    kwargs = {"seed": 1, "num_classes": 2, "given_labels": np.array([0, 1]), "keep": None, "true_labels": None,
              "weights": None, "train_images": np.zeros((2, 32, 32, 3), np.uint8),
              "test_images": np.zeros((1, 32, 32, 3), np.uint8), "test_labels": np.array([0]), "test_exact": None,
              "normalisation": None, "device": torch.device("cpu")}
    base = checkpoint.run_settings(recipes.resolve_recipe("fast"), **kwargs)
    other_cadence = checkpoint.run_settings(recipes.resolve_recipe("fast", checkpoint_every=3), **kwargs)
    checkpoint.check_resume(base, other_cadence, "c.pt")  # accepted
    with pytest.raises(InputError, match="recipe.eval_every"):
        checkpoint.check_resume(base, checkpoint.run_settings(recipes.resolve_recipe("fast", eval_every=3),
                                                              **kwargs), "c.pt")


@pytest.mark.parametrize("data, expected", [
    (_saved({"format": checkpoint.CHECKPOINT_FORMAT, "payload": NotTensors()}),
     "c.pt: not a clpipe checkpoint: it holds Python objects other than tensors and plain values"),
    (_saved({"format": checkpoint.CHECKPOINT_FORMAT, "x": torch.ones(3)})[:100],
     "c.pt: not a clpipe checkpoint: not a readable torch.save file"),
    (b"PK\x03\x04 not really a zip", "c.pt: not a clpipe checkpoint: not a readable torch.save file"),
    (_saved([1, 2, 3]), "c.pt: format: not a clpipe checkpoint (no 'format' entry)"),
    (_saved({"format": 1}), "c.pt: format: a clpipe coteach checkpoint of format 1; this version resumes format 2"),
])
def test_a_foreign_checkpoint_is_refused_in_one_line_without_torchs_advice(data, expected, capsys):
    with pytest.raises(InputError) as e:
        checkpoint.load_checkpoint(data, "c.pt")
    message = str(e.value)
    assert message.startswith(expected)
    assert "\n" not in message and "weights_only" not in message
    assert "this ran while loading" not in capsys.readouterr().out  # nothing was unpickled


def test_is_due_counts_from_the_first_trained_epoch_and_always_includes_the_last():
    fast = recipes.resolve_recipe("fast")  # epochs 0..29
    assert [e for e in recipes.trained_epochs(fast) if recipes.is_due(fast, e, fast.eval_every)] == [9, 19, 29]
    feb = recipes.resolve_recipe("feb2020", epochs=8)  # epochs 1..7
    assert [e for e in recipes.trained_epochs(feb) if recipes.is_due(feb, e, 3)] == [3, 6, 7]
    assert [e for e in recipes.trained_epochs(feb) if recipes.is_due(feb, e, 1)] == list(range(1, 8))
