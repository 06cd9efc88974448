"""The typed objects a run is made of, once the options are read (runner.inputs makes them): nothing past
input preparation reads the options themselves.

    Job(problem, schedule, folders, plan, weights, resumable)   # one item's run
"""

import os
from dataclasses import dataclass

import load_vgg
from runner.problem import Problem


@dataclass(frozen=True)
class Folders:
    """Where one run writes: checkpoints and records, TensorBoard logs, step images, the final image."""
    checkpoint_dir: str
    log_dir: str
    output_dir: str
    output: str

    def all(self):
        return self.checkpoint_dir, self.log_dir, self.output_dir, os.path.dirname(self.output) or "."

    @property
    def best_output(self):
        """With --keep-best: the lowest-loss image, beside the final one (outputs/final-best.png)."""
        stem, extension = os.path.splitext(self.output)
        return f"{stem}-best{extension}"

    def for_item(self, folder):
        """The folders of one of several items: a subfolder of each, `folder` (runner.items.folder_name); its final
        image is <output-dir>/<folder>/ named as --output."""
        return Folders(os.path.join(self.checkpoint_dir, folder), os.path.join(self.log_dir, folder),
                       os.path.join(self.output_dir, folder),
                       os.path.join(self.output_dir, folder, os.path.basename(self.output)))


@dataclass(frozen=True)
class Schedule:
    """How long a run goes and what it writes: free to change when a run resumes."""
    iterations: int  # train up to this step (a film's or a tiled image's: its plan's last stage's end)
    save_every: int  # checkpoint and image cadence
    log_every: int  # summary and progress-line cadence
    keep: int  # checkpoints kept
    keep_best: bool
    preserve_colors: bool
    restart: bool


@dataclass(frozen=True)
class Job:
    """One run: everything it needs, checked."""
    problem: Problem
    schedule: Schedule
    folders: Folders
    plan: object  # runner.stages.Plan: its stages, in phases
    weights: load_vgg.VGGWeights
    resumable: bool  # the checkpoint folder holds a run of this problem to resume
