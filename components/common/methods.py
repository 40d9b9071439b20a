"""Method ids, shared by every stage that names a confident-learning method.

The ids are the seed's mask folder names (``train_pruned_<id>``); ``none`` is the
no-pruning run (plain Co-Teaching on all noisy labels, the paper's Co-Teaching row).
Order = the rows of the paper's Table 2.
"""

from __future__ import annotations

from collections.abc import Mapping

#: The five confident-learning methods and their rows in the paper's Table 2.
PAPER_NAMES: Mapping[str, str] = {
    "argmax": "CL: C_confusion",
    "conf_joint_only": "CL: C_{ỹ,y*}",
    "cl_pbc": "CL: PBC",
    "cl_pbnr": "CL: PBNR",
    "cl_both": "CL: C+NR",
}
CL_METHODS: tuple[str, ...] = tuple(PAPER_NAMES)
#: Co-Teaching without a mask.
NO_PRUNING = "none"
#: Everything Co-Teaching can be run with, named as in the report.
RUN_NAMES: Mapping[str, str] = {**PAPER_NAMES, NO_PRUNING: "Co-Teaching (no pruning)"}
RUN_METHODS: tuple[str, ...] = tuple(RUN_NAMES)
