"""The coarse-to-fine plan: the sizes a run optimises at, in order, and the step at which each ends.

With --scales 0.25 0.5 1, --scale-steps 100 and --iterations 300: steps 1-100 at a quarter of the output
size, 101-200 at half, 201-300 at full size. One scale (the default) is the plain run. Standard library only.
"""

import itertools
from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    """One size the image is optimised at, and the step at which that ends."""
    width: int
    height: int
    last_step: int


def plan(problem, iterations):
    """The run's Scales in order: problem.scales of its size, each for its scale_steps; the last to iterations."""
    ends = [*itertools.accumulate(problem.scale_steps), iterations]
    return [Scale(max(1, round(problem.width * scale)), max(1, round(problem.height * scale)), end)
            for scale, end in zip(problem.scales, ends)]


def first_step(scales, index):
    """The global step scales[index] starts after: 0 for the first scale."""
    return scales[index - 1].last_step if index else 0


def index_at(scales, step):
    """The index of the scale that the step after `step` (a checkpoint's) runs at; 0 for a new run."""
    if step is None:
        return 0
    return next((index for index, scale in enumerate(scales) if step <= scale.last_step), len(scales) - 1)


def steps_left(scales, index, step):
    """The steps after `step` to the end, in steps of scales[index]: a step's time goes with its pixels."""
    here = scales[index]
    later = sum((scale.last_step - before.last_step) * scale.width * scale.height / (here.width * here.height)
                for before, scale in zip(scales[index:], scales[index + 1:]))
    return here.last_step - step + later
