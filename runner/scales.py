"""The coarse-to-fine plan: the sizes a run optimises at, in order, and the step at which each ends.

With --scales 0.25 0.5 1, --scale-steps 100 and --iterations 300: steps 1-100 at a quarter of the output
size, 101-200 at half, 201-300 at full size. One scale (the default) is the plain run.

A run goes through stages: a still image's are its scales (StillPlan, here), a film's its frames
(runner.video.FramePlan), a tiled image's its coarse scales and then its tiles (runner.tiles.TilePlan). The
plans answer the same questions, which is all style_transfer.py and runner.outputs ask:

    plan.stages                  # a Scale per stage: its size and the global step at which it ends
    plan.describe(index)         # the stage in the progress lines: "Scale 2/3: 666x500"
    plan.images_at(index)        # the content and style images at that stage's size (runner.inputs.Images)
    plan.start_at(index, image)  # the stage's start image, or None for the usual one (style_transfer.initial_image)
    plan.temporal_at(index)      # what a temporal loss compares with, or None
    plan.surroundings_at(index)  # a tile's: the fixed image around it (Scale.context pixels wide), or None
    plan.whole(index, image, content)  # the picture a stage's image is part of, and its content image
    plan.finished(index, image)  # a stage's result; plan.finish(): the run's
    plan.outputs()               # the files the plan writes itself
    plan.feeds_content           # its stages share graphs, each feeding its own content image's features
"""

import itertools
from dataclasses import dataclass

import numpy as np

import utils


@dataclass(frozen=True)
class Scale:
    """One size the image is optimised at, and the step at which that ends."""
    width: int
    height: int
    last_step: int
    context: int = 0  # a tile's: pixels of the assembled image around it that the network sees, fixed


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


class StagePlan:
    """What every plan answers, with the answers of a plan that does nothing special (see the module's docstring)."""

    stage_word = "Stage"
    saves_images_at_stage_ends = False  # True: step images only at each stage's end, not every --save-every
    feeds_content = False  # True: the stages share a graph, each feeding its content image's features

    def describe(self, index):
        stage = self.stages[index]
        return f"{self.stage_word} {index + 1}/{len(self.stages)}: {stage.width}x{stage.height}"

    def start_at(self, index, previous_image):
        return None

    def temporal_at(self, index):
        return None

    def surroundings_at(self, index):
        return None

    def whole(self, index, image, content):
        """(the picture the stage's image is part of, in the network's space; the content image at its size)."""
        return image, content

    def finished(self, index, image):
        pass

    def finish(self):
        pass

    def outputs(self):
        return []


class StillPlan(StagePlan):
    """The stages of a still image: its scales. The images are read again at each coarse scale's size, and each
    scale starts from the previous one's result, upsampled."""

    stage_word = "Scale"

    def __init__(self, stages, files, images):
        """files: the run's runner.inputs.ImageFiles; images: read at the output size (the last stage's)."""
        self.stages, self.files, self.images = stages, files, images

    def images_at(self, index):
        stage = self.stages[index]
        return self.images if index == len(self.stages) - 1 else self.files.read_at(stage.width, stage.height)

    def start_at(self, index, previous_image):
        if previous_image is None:
            return None
        return utils.resized(previous_image[0], self.stages[index].width, self.stages[index].height)[np.newaxis]
