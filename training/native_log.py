"""TensorFlow's native start-up lines, printed once instead of twice.

TensorFlow's two native libraries (`libtensorflow_framework` and `_pywrap_tensorflow_internal`) each link their
own copy of absl logging, so importing the backend prints absl's "All log messages before absl::InitializeLog()"
preamble and the oneDNN notice twice, seconds apart; `TF_CPP_MIN_LOG_LEVEL` does not reach these lines
(TensorFlow 2.21). While the backend loads, file descriptor 2 (where native code writes) is sent to a temporary
file; afterwards its lines are written back to it, a line that repeats an earlier one (timestamps aside) once.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress

# absl's prefix: severity, date, time, thread id, source location; what follows `] ` is the message.
_ABSL_PREFIX = re.compile(rb"^[IWEF]\d{4} [\d:.]+\s+\d+ (?P<where>[^\]\s]+)\] ")


def distinct_lines(data: bytes) -> bytes:
    """`data` without lines that repeat an earlier line; absl lines compare by source location and message."""
    seen: set[bytes] = set()
    kept: list[bytes] = []
    for line in data.splitlines(keepends=True):
        match = _ABSL_PREFIX.match(line)
        key = match.group("where") + line[match.end() :] if match else line
        if key.strip() and key in seen:
            continue
        seen.add(key)
        kept.append(line)
    return b"".join(kept)


@contextmanager
def once_native_startup_lines() -> Iterator[None]:
    """Hold back what is written to file descriptor 2 inside the block, then write it back without repeats."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable descriptor 2: nothing to tidy
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            with suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            os.write(2, distinct_lines(held.read()))
