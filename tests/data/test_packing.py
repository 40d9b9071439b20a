"""clpipe data pack/unpack: a real CIFAR-10 subset survives chunking bit for bit; damage is refused."""

import numpy as np
import pytest

from clpipe import cli as clpipe_cli
from tests.conftest import CIFAR10


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A small dataset folder in the shared form: *_train.npz and *_test.npz (real CIFAR-10 rows)."""
    folder = tmp_path_factory.mktemp("src")
    test = np.load(CIFAR10 / "cifar10_test.npz")
    np.savez_compressed(folder / "mini_train.npz", images=test["images"][200:1200], labels=test["labels"][200:1200])
    np.savez_compressed(folder / "mini_test.npz", images=test["images"][:200], labels=test["labels"][:200],
                        exact=test["exact"][:200])
    return folder


@pytest.fixture(scope="module")
def packed(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("packed")
    assert clpipe_cli.main(["data", "pack", "--dataset", str(source), "--out", str(out), "--chunk-mib", "1"]) == 0
    return out


def unpack(packed, out, *chunk_dirs) -> int:
    dirs = [str(d) for d in chunk_dirs] or [str(packed)]
    return clpipe_cli.main(["data", "unpack", "--manifest", str(packed / "manifest.json"), "--chunks", *dirs,
                            "--out", str(out)])


def test_round_trip_is_bit_exact_and_chunks_respect_the_limit(source, packed, tmp_path):
    chunks = sorted(packed.glob("chunk-*.bin"))
    assert len(chunks) >= 2 and all(c.stat().st_size <= 2**20 for c in chunks)
    assert unpack(packed, tmp_path / "out") == 0
    for name in ("mini_train.npz", "mini_test.npz"):
        original, back = np.load(source / name), np.load(tmp_path / "out" / name)
        assert sorted(original.files) == sorted(back.files)
        for key in original.files:
            np.testing.assert_array_equal(back[key], original[key])
            assert back[key].dtype == original[key].dtype


def test_chunks_may_arrive_in_different_folders(packed, tmp_path):
    first, rest = tmp_path / "a", tmp_path / "b"
    first.mkdir(), rest.mkdir()
    for i, chunk in enumerate(sorted(packed.glob("chunk-*.bin"))):
        ((first if i == 0 else rest) / chunk.name).write_bytes(chunk.read_bytes())
    assert unpack(packed, tmp_path / "out", first, rest) == 0


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "missing"])
def test_a_damaged_or_missing_chunk_is_refused(packed, tmp_path, capsys, damage):
    copy = tmp_path / "chunks"
    copy.mkdir()
    for chunk in packed.glob("chunk-*.bin"):
        (copy / chunk.name).write_bytes(chunk.read_bytes())
    victim = copy / "chunk-001.bin"
    data = bytearray(victim.read_bytes())
    if damage == "flip a byte":
        data[100] ^= 1
        victim.write_bytes(bytes(data))
    elif damage == "truncate":
        victim.write_bytes(bytes(data[:-10]))
    else:
        victim.unlink()
    assert unpack(packed, tmp_path / "out", copy) == 2
    assert "ERROR data unpack: " in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_missing_manifest_is_one_error_line(tmp_path, capsys):
    code = clpipe_cli.main(["data", "unpack", "--manifest", str(tmp_path / "nope.json"), "--chunks", str(tmp_path),
                            "--out", str(tmp_path / "out")])
    assert code == 2 and "not a readable manifest" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
