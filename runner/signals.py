"""Ctrl-C (SIGINT) and SIGTERM, from the start of a run to its end.

While a stage's steps run, a signal is a flag the loop reads after each step, so that it saves where it is first.
Anywhere else (reading inputs, building a graph, between stages or items) it stops the run at once, as `Stopped`:
what was saved before stays, and the same command goes on from it. Either way the exit code is 128 + its number
(130 for Ctrl-C, 143 for SIGTERM), whenever it came.

    with StopSignals() as stop:
        ...                                   # a signal here raises Stopped
        with stop.between_steps():
            for report in steps: ...          # here it sets stop.received; the loop saves and stops
"""

import contextlib
import signal


class Stopped(BaseException):
    """A signal stopped the run outside a stage's steps. A BaseException, as KeyboardInterrupt is: a handler of
    errors (`except Exception`, as around reading an image) does not take it for the item's failure."""

    def __init__(self, number):
        super().__init__(signal.Signals(number).name)
        self.number = number


class StopSignals:
    """`with StopSignals() as stop:` handles SIGINT and SIGTERM; `stop.received` is the signal's number once one
    came, else None."""

    def __enter__(self):
        self.received = None
        self.deferred = False
        self.previous = {number: signal.signal(number, self.handle) for number in (signal.SIGINT, signal.SIGTERM)}
        return self

    def handle(self, number, frame):
        self.received = number
        if not self.deferred:
            raise Stopped(number)

    @contextlib.contextmanager
    def between_steps(self):
        """Within: a signal only sets `received`, for the loop to read after the step it interrupted."""
        self.deferred = True
        try:
            yield self
        finally:
            self.deferred = False

    def __exit__(self, *error):
        for number, handler in self.previous.items():
            signal.signal(number, handler)
        return False
