"""Progress of long steps (downloads, Gibbs sweeps, Keras epochs): a bar on a terminal, lines in a log file.

One place decides between the two, so every long step behaves alike: on a terminal a tqdm bar (rate and time
left); when the stream is a file or a pipe (`make train > log`, a container's log) tqdm's carriage returns and
Keras's ANSI-coloured bars would turn into noise, so it writes one plain line every `interval` seconds and a
last line when the step ends, formatted by tqdm (`format_meter`) rather than by hand.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Protocol, TextIO

from tqdm import tqdm

# Seconds between two lines when the output is not a terminal.
LINE_INTERVAL = 30.0


class Progress(Protocol):
    """What a long step reports to: a tqdm bar, plain lines, or nothing."""

    def update(self, n: int = 1) -> object: ...

    def close(self) -> None: ...


def is_terminal(stream: TextIO) -> bool:
    """Whether `stream` is an interactive terminal (a closed or replaced stream counts as not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def keras_verbose(quiet: bool = False) -> int:
    """Keras's `fit(verbose=...)`: its progress bar on a terminal, one line per epoch otherwise (or when quiet).

    Keras draws its bar on standard output with ANSI colours and carriage returns, which a log file keeps.
    """
    return 2 if quiet or not is_terminal(sys.stdout) else 1


class Lines:
    """The non-terminal form of a bar: a plain line (no carriage return, no escape) every `interval` seconds."""

    def __init__(
        self,
        total: float | None,
        desc: str,
        unit: str,
        *,
        unit_scale: bool,
        stream: TextIO,
        interval: float,
    ) -> None:
        self.total, self.desc, self.unit, self.unit_scale = total, desc, unit, unit_scale
        self.stream, self.interval = stream, interval
        self.n = 0
        self._started = self._last = time.monotonic()
        self._written_at_n: int | None = None
        self._closed = False

    def __enter__(self) -> Lines:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._write(now)

    def close(self) -> None:
        """Write the final line (unless nothing changed since the last one) once."""
        if self._closed:
            return
        self._closed = True
        if self._written_at_n != self.n:
            self._write(time.monotonic())

    def line(self, now: float | None = None) -> str:
        """The current state as one line, e.g. `downloading ml-25m: 47.7MB/250MB (19%), 5.00MB/s, 00:40 left`."""
        elapsed = (now if now is not None else time.monotonic()) - self._started
        # Scaled units read `47.7MB/250MB`; counted ones `3/20 sweeps`.
        done = "{n_fmt}" + self.unit if self.unit_scale else "{n_fmt}"
        if self.total:
            size = done + ("/{total_fmt}" + self.unit if self.unit_scale else "/{total_fmt} " + self.unit)
            fmt = "{desc}: " + size + " ({percentage:.0f}%), {rate_fmt}, {remaining} left"
        else:
            size = done if self.unit_scale else done + " " + self.unit
            fmt = "{desc}: " + size + ", {rate_fmt}, {elapsed} elapsed"
        return tqdm.format_meter(
            self.n,
            self.total,
            elapsed,
            prefix=self.desc,
            unit=self.unit,
            unit_scale=self.unit_scale,
            bar_format=fmt,
        )

    def _write(self, now: float) -> None:
        self._written_at_n = self.n
        self.stream.write(self.line(now) + "\n")
        self.stream.flush()


class _Off:
    """Reports nothing (verbose 0)."""

    def __enter__(self) -> _Off:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        return None

    def close(self) -> None:
        return None


def progress(
    desc: str,
    total: float | None = None,
    *,
    unit: str = "it",
    unit_scale: bool = False,
    enabled: bool = True,
    stream: TextIO | None = None,
    interval: float = LINE_INTERVAL,
) -> tqdm[None] | Lines | _Off:
    """A progress reporter for one long step, written to `stream` (standard error by default).

    A tqdm bar when the stream is a terminal, `Lines` otherwise, nothing when not `enabled`. Use it as a
    context manager (or call `close()`), and `update(n)` as work is done.
    """
    if not enabled:
        return _Off()
    out = stream if stream is not None else sys.stderr
    if is_terminal(out):
        return tqdm(
            total=total, desc=desc, unit=unit, unit_scale=unit_scale, file=out, dynamic_ncols=True, leave=True
        )
    return Lines(total, desc, unit, unit_scale=unit_scale, stream=out, interval=interval)
