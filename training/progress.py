"""Progress of long steps (downloads, loading ratings, Gibbs sweeps, Keras epochs): a bar on a terminal, lines
in a log file.

One place decides between the two, so every long step behaves alike: on a terminal a tqdm bar (rate and time
left); when the stream is a file or a pipe (`make train > log`, a container's log) tqdm's carriage returns and
Keras's ANSI-coloured bars would turn into noise, so it writes one plain line every `interval` seconds and a
last line when the step ends, formatted by tqdm (`format_meter`) rather than by hand.

Loading reports through `movierec.data.progress.ReadProgress` (the core may not import the trainer):
`reading_progress` is the trainer's implementation of it, built on `progress`.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any, Protocol, TextIO

from tqdm import tqdm

from movierec.data.progress import BYTES, ReadProgress

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


def epoch_lines(interval: float = LINE_INTERVAL, stream: TextIO | None = None) -> Any:
    """A Keras callback for log files (`fit(verbose=2)`): Keras writes one line per epoch, which at ml-25m size
    is minutes of silence, so this adds a `Lines` line every `interval` seconds within each epoch (steps done,
    rate, time left). Keras is imported here, not at module load, so the data and store paths stay light."""
    import keras

    out = stream if stream is not None else sys.stdout  # beside Keras's own epoch lines

    class EpochLines(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.lines: Lines | None = None

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            desc = f"epoch {epoch + 1}/{self.params.get('epochs', '?')}"
            steps = self.params.get("steps")
            self.lines = Lines(steps, desc, "steps", unit_scale=False, stream=out, interval=interval)

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            if self.lines is not None:
                self.lines.update(1)

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.lines = None  # Keras writes the epoch's own line: no final line here

    return EpochLines()


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
        self.postfix = ""
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

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        """Text shown after the rate (e.g. a row count), as tqdm's bar shows it; the next line carries it."""
        self.postfix = s

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
        # Scaled units read `47.7MB/250MB`, counted ones `3/20 sweeps`, scaled words `1.20M/25.0M rows`.
        word = not self.unit_scale or self.unit.startswith(" ")  # written once, after the numbers
        each = "" if word else self.unit
        size = "{n_fmt}" + each + ("/{total_fmt}" + each if self.total else "")
        size += " " + self.unit.strip() if word else ""
        if self.total:
            fmt = "{desc}: " + size + " ({percentage:.0f}%), {rate_fmt}, {remaining} left{postfix}"
        else:
            fmt = "{desc}: " + size + ", {rate_fmt}, {elapsed} elapsed{postfix}"
        return tqdm.format_meter(
            self.n,
            self.total,
            elapsed,
            prefix=self.desc,
            unit=self.unit,
            unit_scale=self.unit_scale,
            bar_format=fmt,
            postfix=self.postfix or None,
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

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
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


def reading_progress(
    enabled: bool = True, *, stream: TextIO | None = None, interval: float = LINE_INTERVAL
) -> ReadProgress | None:
    """What `load_ratings(progress=...)`, `read_training_data(progress=...)` and import-db report to.

    A file's read is metered in bytes (scaled, with rate and time left) and shows the rows read beside them; a
    database's in rows. None when not `enabled`: the readers then take their unmetered path.
    """
    if not enabled:
        return None

    def open_meter(desc: str, total: int, unit: str) -> tqdm[None] | Lines | _Off:
        # Scaled either way: `130MB/678MB, 150MB/s` and `1.20M/25.0M rows, 400k rows/s`.
        shown = unit if unit == BYTES else f" {unit}"
        return progress(desc, total, unit=shown, unit_scale=True, stream=stream, interval=interval)

    return open_meter
