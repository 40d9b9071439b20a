"""The committed pipelines/clpipe_pipeline.yaml is what the code compiles to today, byte for byte,
and compiling is byte-reproducible across interpreters (so regenerating it gives no spurious diff)."""

import difflib
import subprocess
import sys

from clpipe.pipelines.compile import GOLDEN, REGENERATE


def test_committed_pipeline_yaml_is_current(tmp_path):
    from clpipe.pipelines.compile import compile_pipeline

    compile_pipeline(str(tmp_path / "now.yaml"))
    committed, now = GOLDEN.read_text(), (tmp_path / "now.yaml").read_text()
    if committed != now:
        diff = difflib.unified_diff(
            committed.splitlines(), now.splitlines(), "committed", "compiled now", lineterm="", n=2
        )
        raise AssertionError(
            f"{GOLDEN} is stale; regenerate it with\n    {REGENERATE}\nand commit it.\n\n"
            + "\n".join(list(diff)[:80])
        )


def test_compile_is_byte_reproducible_across_interpreters(tmp_path):
    """kfp 2.17.3 alone prints the defaults in the header in a per-interpreter order (three
    compiles, three files); two fresh interpreters must write the same bytes."""
    outputs = [tmp_path / f"run{i}.yaml" for i in range(2)]
    for out in outputs:
        subprocess.run(
            [sys.executable, "-m", "clpipe", "compile", "-o", str(out)], check=True, capture_output=True
        )
    assert outputs[0].read_bytes() == outputs[1].read_bytes() == GOLDEN.read_bytes()
