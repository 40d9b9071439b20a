"""The committed pipelines/clpipe_pipeline.yaml is what the code compiles to today.

Compared as parsed YAML: the compiler's header comment lists default values in an
arbitrary order (protobuf map order), everything else is deterministic.
"""

import difflib

import yaml
from clpipe.pipelines.compile import GOLDEN, REGENERATE


def test_committed_pipeline_yaml_is_current(ir):
    with open(GOLDEN) as f:
        committed = list(yaml.safe_load_all(f))
    if committed != ir:
        diff = difflib.unified_diff(
            yaml.safe_dump_all(committed).splitlines(),
            yaml.safe_dump_all(ir).splitlines(),
            "committed",
            "compiled now",
            lineterm="",
            n=2,
        )
        raise AssertionError(
            f"{GOLDEN} is stale; regenerate it with\n    {REGENERATE}\nand commit it.\n\n"
            + "\n".join(list(diff)[:80])
        )
