"""A run's plan: the stages it optimises in turn, each at one size up to one global step, grouped in phases.

A plan is a sequence of phases, each of one kind of stage. A still image's plan is one phase, its coarse-to-fine
scales (ScalePhase, here): with --scales 0.25 0.5 1, --scale-steps 100 and --iterations 300, steps 1-100 at a
quarter of the output size, 101-200 at half, 201-300 at full size. A film's plan is its frames
(runner.video.FramePhase); a tiled image's, its coarse scales and then its tiles (runner.tiles.TilePhase), the
tiles beginning from the last scale's result. style_transfer.py and runner.outputs ask the Plan, by a stage's index
in the whole run; the Plan asks the phase that stage is in, by its index within the phase:

    plan.stages                    # a Stage per stage: its size and the global step at which it ends
    plan.describe(index)           # the stage in the progress lines: "Scale 2/3: 666x500"
    plan.images_at(index)          # the content and style images for that stage (runner.images.Images)
    plan.start_at(index, image)    # its start image, or None for the usual one (style_transfer.initial_image)
    plan.carried(index, array)     # the previous stage's Adam moments brought to this one, or None
    plan.extras_at(index)          # Extras: what the stage adds to the model (loss pieces, a view)
    plan.feeds_at(index)           # {piece name: the values its placeholders are fed}, for those extras
    plan.picture(index, image, content)       # the picture a stage's image is part of, and its content image
    plan.writes_step_image(index, stage_end)  # whether a save writes <output-dir>/<step>.png
    plan.stage_done(index, image)  # a stage's result (the next phase begins from its phase's last)
    plan.run_done()                # after the last stage
    plan.outputs()                 # the files the plan writes itself (refused up front if a user's file is there)
    plan.graph_count               # how many graphs its stages need (one a phase: the model takes any size)
"""

import itertools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

import utils


@dataclass(frozen=True)
class Stage:
    """One stage: the size the image is optimised at, and the global step at which that ends."""
    width: int
    height: int
    last_step: int


@dataclass(frozen=True)
class Extras:
    """What a stage adds to the model, as data (style_transfer.py's docstring gives the protocol): loss pieces beyond
    the problem's own, and the view, what the network sees around the image (None: the image alone)."""
    terms: tuple = ()
    view: object = None

    @property
    def key(self):
        """What a graph built with these extras depends on."""
        return tuple(term.key for term in self.terms), self.view.key if self.view else None


class Sight(NamedTuple):
    """What a view (Extras.view) makes of the image variable, in the model's graph: its `around(image)`."""
    seen: object  # what the network sees: the image, within what the view adds
    inside: object  # 1 where that is the picture, 0 past its border (None: everywhere)
    picture: object  # the picture at the image's own positions, as the pixel losses read it (total variation)
    fed: list  # the view's placeholders, fed (plan.feeds_at) under its name


def first_step(stages, index):
    """The global step stages[index] starts after: 0 for the first stage."""
    return stages[index - 1].last_step if index else 0


def index_at(stages, step):
    """The index of the stage that the step after `step` (a checkpoint's) runs at; 0 for a new run."""
    if step is None:
        return 0
    return next((index for index, stage in enumerate(stages) if step <= stage.last_step), len(stages) - 1)


def steps_left(stages, index, step):
    """The steps after `step` to the end, in steps of stages[index]: a step's time goes with its pixels."""
    here = stages[index]
    later = sum((stage.last_step - before.last_step) * stage.width * stage.height / (here.width * here.height)
                for before, stage in zip(stages[index:], stages[index + 1:]))
    return here.last_step - step + later


class Phase:
    """What every phase answers, with the answers of one that adds nothing (see the module's docstring); a
    phase's `stages` are its own, and it is asked by the index of a stage within them."""

    word = "Stage"

    def describe(self, index):
        stage = self.stages[index]
        return f"{self.word} {index + 1}/{len(self.stages)}: {stage.width}x{stage.height}"

    def start_at(self, index, previous_image):
        return None

    def carried(self, index, array):
        """The previous stage's image-shaped array (Adam's moments) brought to this stage, or None where the phase
        starts each stage afresh."""
        return None

    def extras_at(self, index):
        return Extras()

    def feeds_at(self, index):
        return {}

    def picture(self, index, image, content):
        """(the picture the stage's image is part of, in the network's space; the content image at its size)."""
        return image, content

    def writes_step_image(self, index, stage_end):
        return True

    def begin(self, previous_result):
        """The previous phase's last result, as this phase begins (not called again when a run resumes here)."""

    def stage_done(self, index, image):
        pass

    def run_done(self):
        pass

    def outputs(self):
        return []


class Plan:
    """A run's phases in order, asked by the index of a stage in the whole run (see the module's docstring)."""

    def __init__(self, *phases):
        self.phases = phases
        self.stages = [stage for phase in phases for stage in phase.stages]
        self.graph_count = len(phases)  # a phase's stages share its graph (their extras' key is one)

    def _at(self, index):
        """(the phase that stage `index` is in, the stage's index within it)."""
        for phase in self.phases:
            if index < len(phase.stages):
                return phase, index
            index -= len(phase.stages)
        raise IndexError(index)

    def describe(self, index):
        phase, local = self._at(index)
        return phase.describe(local)

    def images_at(self, index):
        phase, local = self._at(index)
        return phase.images_at(local)

    def start_at(self, index, previous_image):
        phase, local = self._at(index)
        return phase.start_at(local, previous_image)

    def carried(self, index, array):
        phase, local = self._at(index)
        return phase.carried(local, array) if local else None  # a phase's first stage starts afresh

    def extras_at(self, index):
        phase, local = self._at(index)
        return phase.extras_at(local)

    def feeds_at(self, index):
        phase, local = self._at(index)
        return phase.feeds_at(local)

    def picture(self, index, image, content):
        phase, local = self._at(index)
        return phase.picture(local, image, content)

    def writes_step_image(self, index, stage_end):
        phase, local = self._at(index)
        return phase.writes_step_image(local, stage_end)

    def stage_done(self, index, image):
        phase, local = self._at(index)
        phase.stage_done(local, image)
        following = self.phases.index(phase) + 1
        if local == len(phase.stages) - 1 and following < len(self.phases):
            self.phases[following].begin(image)

    def run_done(self):
        for phase in self.phases:
            phase.run_done()

    def outputs(self):
        return [path for phase in self.phases for path in phase.outputs()]


def scale_stages(problem, iterations):
    """The Stages of problem.scales of its size, each for its scale_steps; the last one to `iterations`."""
    ends = [*itertools.accumulate(problem.scale_steps), iterations]
    return [Stage(max(1, round(problem.width * scale)), max(1, round(problem.height * scale)), end)
            for scale, end in zip(problem.scales, ends)]


class ScalePhase(Phase):
    """A still image's scales. The images are read again at each coarse scale's size, and each scale starts from
    the previous one's result, upsampled."""

    word = "Scale"

    def __init__(self, stages, files, images, output_size, described_as="{}", step_images_at_stage_ends=False):
        """files: the run's runner.images.ImageFiles; images: read at output_size (width, height); described_as:
        how the progress lines name a scale ("{} before the tiles" for a tiled image's); step_images_at_stage_ends:
        a save writes <output-dir>/<step>.png only at a scale's end (a tiled image's, as its tiles do)."""
        self.stages, self.files, self.images, self.output_size = stages, files, images, output_size
        self.described_as, self.step_images_at_stage_ends = described_as, step_images_at_stage_ends

    def describe(self, index):
        number, size = super().describe(index).split(": ")
        return f"{self.described_as.format(number)}: {size}"

    def writes_step_image(self, index, stage_end):
        return stage_end or not self.step_images_at_stage_ends

    def images_at(self, index):
        stage = self.stages[index]
        if (stage.width, stage.height) == self.output_size:
            return self.images
        return self.files.read_at(stage.width, stage.height)

    def start_at(self, index, previous_image):
        if previous_image is None:
            return None
        return utils.resized(previous_image[0], self.stages[index].width, self.stages[index].height)[np.newaxis]

    def carried(self, index, array):
        return self.start_at(index, array)  # resized as the image is


def still_plan(problem, iterations, files, images):
    """The plan of a still image: its scales."""
    return Plan(ScalePhase(scale_stages(problem, iterations), files, images, (problem.width, problem.height)))
