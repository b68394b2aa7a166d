"""The hook through which a long read reports its progress, without the core drawing anything.

Loading ml-25m (25M rows, 678 MB) or reading as many rows from the ratings database takes long enough that the
trainer shows progress; the service and library callers want silence. So the readers take an optional
`ReadProgress` (a factory of meters) and report to it; `training.progress.reading_progress` is the
trainer's, a tqdm bar on a terminal or plain lines in a log. The meter's shape is tqdm's own (`update`,
`set_postfix_str`, `close`), so tqdm bars fit it as they are and the core needs neither tqdm nor the trainer.

A file is metered in bytes, read through `CountingReader`: the parser is fed by a file object that counts the
bytes and line breaks passing through, so the read itself stays one pass of pandas' (or pyarrow's) parser,
unchunked, and the total is exact from the start (the file's size), rather than a row total that would need a
pass of its own to know.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Protocol

import numpy as np

# Units a meter is opened with: bytes of a file (shown scaled, with a row count beside them), or rows.
BYTES = "B"
ROWS = "rows"
_NEWLINE = ord("\n")


class Meter(Protocol):
    """One long read's progress (tqdm's bar has this shape)."""

    def update(self, n: int = 1) -> object: ...

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> object: ...

    def close(self) -> None: ...


class ReadProgress(Protocol):
    """Opens a meter for one read: `desc` says what is read, `total` how much, in `unit` (BYTES or ROWS)."""

    def __call__(self, desc: str, total: int, unit: str) -> Meter: ...


def rows_text(rows: int) -> str:
    return f"{rows:,} rows"


class CountingReader(io.RawIOBase):
    """A binary file that reports the bytes read and the rows passed (line breaks less the header) to a meter.

    Parsers take it in place of the path; they read it in blocks of a few hundred kilobytes, so counting costs
    one Python call and one vectorised count per block (measured: 0.06 s of CPU over a plain read of a 671 MB,
    25M-row file). `finish(rows)` sets the exact row count the parse found, which the meter's last line shows;
    closing the reader closes the meter.
    """

    def __init__(self, path: Path, meter: Meter, *, header_lines: int = 0) -> None:
        super().__init__()
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115  (closed by close())
        self._meter = meter
        self._header_lines = header_lines
        self._lines = 0
        self._read = 0
        self._rows: int | None = None

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._read

    def read(self, size: int | None = -1) -> bytes:
        data = self._file.read(-1 if size is None else size) or b""
        self._count(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        data = self._file.read(len(view)) or b""
        view[: len(data)] = data
        self._count(data)
        return len(data)

    def _count(self, data: bytes) -> None:
        if not data:
            return
        self._read += len(data)
        # numpy's vectorised compare counts line breaks at ~9 GB/s, three times `bytes.count`'s speed.
        self._lines += int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == _NEWLINE))
        self._meter.set_postfix_str(rows_text(max(self._lines - self._header_lines, 0)), refresh=False)
        self._meter.update(len(data))

    def finish(self, rows: int) -> None:
        """The rows the parse found: what the last line says (line breaks miss an unterminated last line)."""
        self._rows = rows

    def close(self) -> None:
        if not self.closed:
            if self._rows is not None:
                self._meter.set_postfix_str(rows_text(self._rows), refresh=False)
            self._meter.close()
            self._file.close()
        super().close()


def open_counted(path: Path, desc: str, progress: ReadProgress, *, header_lines: int = 0) -> CountingReader:
    """`path` opened for a parser, its bytes and rows reported to a meter `progress` opens (desc, file size).

    Raises OSError when the file cannot be opened (the meter is then closed at once).
    """
    meter = progress(desc, path.stat().st_size, BYTES)
    try:
        return CountingReader(path, meter, header_lines=header_lines)
    except OSError:
        meter.close()
        raise
