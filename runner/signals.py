"""Ctrl-C (SIGINT) and SIGTERM turned into a flag the training loop reads between steps, so it can save first."""

import signal


class StopSignals:
    """`with StopSignals() as stop:` ... `stop.received` is the signal's number once one came, else None."""

    def __enter__(self):
        self.received = None
        self.previous = {number: signal.signal(number, self.handle) for number in (signal.SIGINT, signal.SIGTERM)}
        return self

    def handle(self, number, frame):
        self.received = number

    def __exit__(self, *error):
        for number, handler in self.previous.items():
            signal.signal(number, handler)
        return False
