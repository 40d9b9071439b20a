"""What a command printed on stderr besides its log lines (the error contract allows log lines beside the ERROR)."""

import re

#: A record of components/common/cli.py's LOG_FORMAT.
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")


def not_logs(err: str) -> list[str]:
    """The lines of ``err`` that are not log records."""
    return [line for line in err.strip().splitlines() if not LOG_LINE.match(line)]
