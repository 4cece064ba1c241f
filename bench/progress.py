"""What a run prints while it works: log lines and progress, through one writer.

With progress on (stderr is a terminal, or ``--progress``) long loops draw tqdm bars and log lines
go through ``tqdm.write``, which lifts the bars out of the way, so a line is never glued onto a
bar. With progress off (a log file, CI) there are no bars: each step of a long loop prints one
plain line with its count and the time so far.
"""

from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm


class Log:
    """The run's one writer to stderr.

    Parameters
    ----------
    progress : bool
        Draw bars (True) or print plain step lines (False).
    stream : file, optional
        Where to write (default: ``sys.stderr`` at call time).
    """

    def __init__(self, progress: bool, stream=None):
        self.progress = bool(progress)
        self._stream = stream

    @property
    def stream(self):
        return self._stream or sys.stderr

    def say(self, msg: str) -> None:
        """One log line (``[mfsoftmax] msg``)."""
        text = f"[mfsoftmax] {msg}"
        if self.progress:
            tqdm.write(text, file=self.stream)
            self.stream.flush()
        else:
            print(text, file=self.stream, flush=True)

    def task(self, desc: str, total: int) -> Task:
        """A counter for a loop of ``total`` steps; call ``step(label)`` after each."""
        return Task(self, desc, total)

    def steps(self, items, desc: str, label=None, plain: bool = False):
        """Iterate ``items`` with a bar (progress on), or with a plain line after each item when
        ``plain`` (progress off). ``label(item)`` names the item shown next to the count."""
        items = list(items)
        task = Task(self, desc, len(items), plain=plain)
        try:
            for item in items:
                task.show(label(item) if label else "")
                yield item
                task.step(label(item) if label else "")
        finally:
            task.close()


class Task:
    """Progress of one loop: a tqdm bar, or plain ``desc: i/n label (t s)`` lines."""

    def __init__(self, log: Log, desc: str, total: int, plain: bool = True):
        self.log, self.desc, self.total, self.plain = log, desc, int(total), plain
        self.done = 0
        self.t0 = time.perf_counter()
        self.bar = None
        if log.progress:
            self.bar = tqdm(total=self.total, desc=desc, file=log.stream, leave=False,
                            dynamic_ncols=True)

    def show(self, label: str) -> None:
        """Name the step now running (bar only)."""
        if self.bar is not None and label:
            self.bar.set_postfix_str(str(label))

    def step(self, label: str = "") -> None:
        """One step done."""
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.plain:
            what = f" {label}" if label else ""
            self.log.say(f"  {self.desc}: {self.done}/{self.total}{what} "
                         f"({time.perf_counter() - self.t0:.0f} s)")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
