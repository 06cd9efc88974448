"""scipy's L-BFGS-B as a generator of steps, one loss-and-gradient evaluation each; nothing here knows TensorFlow.

    for report in lbfgs.steps(evaluate, start, max_steps, bounds=(low, high)):
        ...   # evaluate(x) -> (loss, gradient, report) has run for this step; leave the loop to stop early

scipy.optimize.minimize runs its own loop and calls the objective back, while a training loop wants to take a
step, look at it (print, save, stop on a signal) and then ask for the next. So minimize runs in a worker thread
that waits before each evaluation until the consumer asks for one, and hands each evaluation's report over.
The generator ends when L-BFGS converges, after max_steps evaluations, or when the consumer stops asking;
an exception raised by `evaluate` reaches the consumer.
"""

import queue
import threading

import numpy as np
import scipy.optimize


class _Stop(Exception):
    """Raised inside scipy's loop to end it: out of steps, or the consumer stopped."""


def steps(evaluate, start, max_steps, bounds=None):
    """Minimise with L-BFGS-B from `start`, one evaluation per step; yield each evaluation's report.

    evaluate(x) gets a float64 vector shaped like start.ravel() and returns (loss, gradient, report).
    bounds: (low, high), each a number or an array shaped like start: x stays within them (L-BFGS-B's "B").
    """
    if bounds is not None:
        bounds = scipy.optimize.Bounds(*(np.broadcast_to(bound, np.shape(start)).ravel() for bound in bounds))
    handover, go_on = queue.Queue(), queue.Queue()  # reports to the consumer; "go" or "stop" to the worker
    taken = 0

    def objective(x):
        nonlocal taken
        if taken >= max_steps or go_on.get() == "stop":
            raise _Stop
        taken += 1
        loss, gradient, report = evaluate(x)
        handover.put(report)
        return loss, np.asarray(gradient, dtype=np.float64).ravel()

    def optimize():
        try:
            # scipy's own limits sit one past ours: _Stop ends the run at exactly max_steps evaluations.
            scipy.optimize.minimize(objective, np.asarray(start, dtype=np.float64).ravel(), jac=True,
                                    method="L-BFGS-B", bounds=bounds,
                                    options={"maxfun": max_steps + 1, "maxiter": max_steps + 1})
        except _Stop:
            pass
        except BaseException as error:  # handed to the consumer, who raises it
            handover.put(error)
        handover.put(None)  # done: converged, or out of steps

    worker = threading.Thread(target=optimize, daemon=True)
    worker.start()
    try:
        while True:
            go_on.put("go")
            report = handover.get()
            if report is None:
                return
            if isinstance(report, BaseException):
                raise report
            yield report
    finally:  # the consumer stopped early (a signal) or we are done: let the worker finish
        if worker.is_alive():
            go_on.put("stop")
            worker.join()
