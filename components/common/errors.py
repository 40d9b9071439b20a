"""The one exception type for bad input, so every stage reports it the same way.

A stage that finds something wrong with what it was given (a file, a field in it, a
flag) raises :class:`InputError`. The stage CLIs turn it into one ``ERROR <stage>: ...``
line and exit code 2 *before* any output is published; anything else is a bug and ends
with a traceback and exit code 1.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input, named by its source (file or URL) and the field inside it.

    Args:
        source: The file, URL or flag the bad value came from.
        field: The key, array or attribute inside ``source`` that is wrong (or ``""``).
        problem: What is wrong, with expected vs actual where that helps.
    """

    def __init__(self, source: str, field: str, problem: str) -> None:
        self.source = source
        self.field = field
        self.problem = problem
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {problem}")
