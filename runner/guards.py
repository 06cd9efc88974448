"""The rules that keep a run from losing anything: it writes over none of its inputs and no file this tool did
not write, and only into folders it can create and write. Each refuses in one line before anything is written.

    check_writable_folder(folder)
    check_outputs_apart(folders, schedule, content, planned_elsewhere)
    check_nothing_overwritten(folders, schedule, inputs, planned_elsewhere)
    check_not_an_input(path, inputs, option)

An input is a file (an image, a record file, a video, the weights) or a folder (a film's frames): an output is an
input if it is the same file, however either is named (links, relative paths), or lies in an input folder.
"""

import fnmatch
import glob
import os
import re

import utils
from runner import batch, run_folder, tiles, video
from utils import FixableError

# What a run keeps in its checkpoint folder: an output of those names there would replace them.
RECORD_NAMES = {run_folder.RUN_RECORD, run_folder.BEST_RECORD, run_folder.SAVING_RECORD, run_folder.LOCK_FILE,
                "checkpoint", batch.DONE_RECORD, video.FRAMES_RECORD, tiles.ASSEMBLED, "flow"}


def input_that_is(path, inputs):
    """The input (as given) that writing `path` would write over or into, or None."""
    real = os.path.realpath(path)
    for given in inputs:
        input_path = os.path.realpath(given)
        if real == input_path or (os.path.isdir(input_path) and real.startswith(input_path.rstrip(os.sep) + os.sep)):
            return given
    return None


def check_not_an_input(path, inputs, option):
    """Refuse an output path that is one of the inputs, or lies in an input folder."""
    given = input_that_is(path, inputs)
    if given is not None:
        raise FixableError(f"{path} is the input {given}: the run would write over it; choose another {option}")


def check_outputs_apart(folders, schedule, content, planned_elsewhere=()):
    """Refuse outputs that would harm the run or the next one, before the run starts: a final image (--output, and
    its -best twin) that cannot be written as an image this tool knows for its own (a video's name included: a
    film's still goes beside its video, runner.inputs), or that is also a step image or a film's frame; an image
    where --content would find it (directly in a content folder, or matching a content pattern: the next run would
    style its results); an output named as one of the run folder's records."""
    finals = [folders.output, *([folders.best_output] if schedule.keep_best else [])]
    stem, extension = os.path.splitext(os.path.basename(folders.output))
    if not stem or os.path.isdir(folders.output):
        raise FixableError(f"--output {folders.output!r} names no file: give the final image's file name, e.g. "
                           f"outputs/final.png")
    marked = utils.marked_image_extensions()
    if video.is_video_file(folders.output):
        raise FixableError(f"--output {folders.output} is a video's name, and this run makes a still image: use one "
                           f"of {', '.join(sorted(marked))}")
    if extension.lower() in utils.IMAGE_EXTENSIONS and extension.lower() not in marked:
        raise FixableError(f"--output {folders.output}: a {extension} file cannot carry the mark by which this tool "
                           f"knows its own images again; use one of {', '.join(sorted(marked))}")
    elsewhere = {os.path.realpath(path): path for path in planned_elsewhere}  # a film's frames and video
    for path in finals:
        step = re.fullmatch(r"(\d+)\.png", os.path.basename(path))  # <output-dir>/<step>.png, up to --iterations
        if step and 1 <= int(step.group(1)) <= schedule.iterations and \
                os.path.realpath(os.path.dirname(path)) == os.path.realpath(folders.output_dir):
            raise FixableError(f"--output {path} is also where the run writes step {int(step.group(1))}'s image: "
                               f"choose another --output or --output-dir")
        if os.path.realpath(path) in elsewhere:
            raise FixableError(f"--output {path} is also where the run writes {elsewhere[os.path.realpath(path)]}: "
                               f"choose another --output or --output-dir")
    written = [*finals, os.path.join(folders.output_dir, "1.png"), *planned_elsewhere]  # step images: one folder
    for given in content:
        pattern = not os.path.exists(given) and glob.has_magic(given)
        for path in written:
            found = _matches(path, given) if pattern else \
                os.path.isdir(given) and os.path.realpath(os.path.dirname(path)) == os.path.realpath(given)
            if found:
                raise FixableError(f"{path} would be written where --content {given} finds its images, and be styled "
                                   f"as one by the next run: choose another --output or --output-dir")
    for path in written:
        name = os.path.basename(path)
        if os.path.realpath(os.path.dirname(path)) == os.path.realpath(folders.checkpoint_dir) and \
                (name in RECORD_NAMES or run_folder.CHECKPOINT_FILE.fullmatch(name)):
            raise FixableError(f"{path} is the name of one of the run's records in {folders.checkpoint_dir}: choose "
                               f"another --output or --output-dir")


def _matches(path, pattern):
    """Whether glob would find `path` with `pattern`: part by part, so that * does not reach across folders."""
    path_parts, pattern_parts = os.path.abspath(path).split(os.sep), os.path.abspath(pattern).split(os.sep)
    return len(path_parts) == len(pattern_parts) and all(
        fnmatch.fnmatchcase(part, pattern_part) for part, pattern_part in zip(path_parts, pattern_parts))


def check_nothing_overwritten(folders, schedule, inputs, planned_elsewhere=()):
    """Refuse a run that would write over one of its inputs, or over a file this tool did not write.

    What a run writes: the final image (and with --keep-best the best one beside it), and step images
    <output-dir>/<step>.png for steps up to --iterations (which steps depends on the cadence, signals and
    L-BFGS's convergence, so every such name counts), and what the plan writes (a film's frames and video). An
    existing file of those names is replaced only if it carries the mark this tool writes into its images and
    videos, and only the mark of this run's folder (run_folder.image_mark) or an earlier version's (naming none).
    """
    planned = [folders.output, *([folders.best_output] if schedule.keep_best else []), *planned_elsewhere]
    ours = run_folder.image_mark(folders.checkpoint_dir)
    for name in sorted(os.listdir(folders.output_dir)) if os.path.isdir(folders.output_dir) else []:
        step = re.fullmatch(r"(\d+)\.png", name)
        if step and 1 <= int(step.group(1)) <= schedule.iterations:
            planned.append(os.path.join(folders.output_dir, name))
    for path in planned:
        given = input_that_is(path, inputs)
        if given is not None:
            where = "is the input" if os.path.realpath(path) == os.path.realpath(given) else "is in the input folder"
            raise FixableError(f"{path} {where} {given}: the run would write over it; choose another --output or "
                               f"--output-dir")
        if not os.path.lexists(path):
            continue
        mark = (video.mark_in if video.is_video_file(path) else utils.mark_in)(path)
        if mark is None:
            raise FixableError(f"{path} exists and was not written by style_transfer.py: the run would replace it; "
                               f"move it, or choose another --output or --output-dir")
        if not utils.may_replace(mark, ours):
            raise FixableError(f"{path} was written by another run (of another --checkpoint-dir, or of one since "
                               f"deleted): this run would replace it; move it, or choose another --output or "
                               f"--output-dir")


def check_writable_folder(folder):
    """Refuse a folder that could not be created or written into, without creating anything yet."""
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise FixableError(f"cannot create folder {folder}: {existing} is a file; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise FixableError(f"cannot write into {existing} (for {folder}): choose another path or fix its permissions")
