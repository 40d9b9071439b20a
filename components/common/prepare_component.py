"""KFP component of ``clpipe data prepare``: the pipeline's first task when the dataset needs packing.

Why it lives here and not in a stage folder: preparing is not a stage of the benchmark (it has
no place in the paper's procedure, and its command is ``clpipe data prepare``, not a stage
command); it turns a user's images into the dataset form every stage opens with
``datasets.open_split``. Its logic is :mod:`.prepare`, in ``components/common/`` because every
stage reads what it writes, and a stage never imports another stage; the component sits next to
it for the same reason, and only the pipeline imports it.

It runs on the **GPU image** (placed as a CPU task, no accelerator requested): the ``auto``
format packs a split larger than memory into litdata shards, and litdata needs torch, which
only the GPU image has.
"""

from kfp.dsl import Dataset, Output

from .kfp_component import stage_component


@stage_component("gpu")
def prepare_dataset(dataset: str, resolution: int, prepared: Output[Dataset]) -> str:
    """The dataset at its training resolution, in the form the trainers read (clpipe data prepare).

    resolution 0 = the images' own size. Returns the output's URI: the dataset every later task
    reads.
    """
    from clpipe.components.common.cli import call_stage
    from clpipe.components.common.prepare import prepare

    call_stage("data prepare", prepare, dataset=dataset, resolution=resolution or None, out=prepared.path)
    return prepared.uri
