"""From the parsed options to typed work. Everything that can refuse a run does so here, before anything is written,
and this is the last place the options are read: past it, runs work from Jobs and the Work they belong to.

    work = prepare_work(args)                    # the items, this process's shard, how each becomes a Job
    job = work.make_job(item, own_folders)       # an item of runner.items: one content image, or a film

Making a Job reads as: check that the options apply to the item, read its inputs, make the Problem (the run's
identity), and ask the factory of its kind of plan (runner.stages, runner.video, runner.tiles). With several
items each gets subfolders named after it; the weights are read once for all of them. Default files that are
missing are downloaded here.
"""

import dataclasses
import functools
import hashlib
import json
import os
import sys
from dataclasses import dataclass

import numpy as np

import load_vgg
import utils
from runner import batch, controls, guards, memory, run_folder, stages, tf_setup, tiles, video
from runner.images import ImageFiles, with_color_control
from runner.items import find_items
from runner.job import Folders, Job, Schedule
from runner.options import coarse_scale_steps, frame_steps, temporal_weight, tile_overlap
from runner.problem import Problem
from utils import FixableError


@dataclass(frozen=True)
class Work:
    """What this process runs: its items, its shard of them, and how each item becomes a Job."""
    items: list  # runner.items.Item, sorted by name
    shard: batch.Shard
    make_job: "JobMaker"
    output_dir: str  # where a data set's manifests go
    output_tfrecord: str  # --output-tfrecord's prefix, or None
    several_items: bool  # a data set: each item in subfolders of its own, a manifest per shard
    restart: bool  # --restart: a data set's items done before run again too
    options: str  # a data set's: the key of the options its items are done with (options_key); else None


def prepare_work(args):
    items = find_items(args.content, args.texture, args.video, is_result=lambda path: bool(
        args.output_tfrecord) and batch.is_results_file(args.output_tfrecord, path))
    if all(item.video for item in items) or not any(item.video for item in items):  # once, not item by item
        check_options_apply(args, items[0].video)
    shard = batch.shard_from(args.shard, args.shard_count)
    batch.check_slurm_shard_count(args.output_dir, shard)
    several = len(items) > 1 or shard.count > 1 or bool(args.output_tfrecord)
    if several:  # once, up front, rather than item by item
        for folder in (args.checkpoint_dir, args.log_dir, args.output_dir):
            guards.check_writable_folder(folder)
        for path in args.style:  # before options_key reads them
            if path != "none":
                utils.fetch_if_missing(path, "style image", "--style")
    if args.output_tfrecord:
        results = batch.results_path(args.output_tfrecord, shard)
        guards.check_not_an_input(results, [item.file for item in items if item.file], "--output-tfrecord")
        guards.check_writable_folder(os.path.dirname(results) or ".")
        batch.check_results_file(args.output_tfrecord, shard)
    return Work(items, shard, JobMaker(args), args.output_dir, args.output_tfrecord, several, args.restart,
                options_key(args) if several else None)


# The options that change no item's result: which items there are and which of them this process runs, where files
# go, how often a run saves and logs, how many checkpoints it keeps, --restart. Every other option counts.
NOT_IN_A_RESULT = frozenset({"content", "shard", "shard_count", "checkpoint_dir", "log_dir", "output_dir", "output",
                             "output_tfrecord", "save_every", "log_every", "keep", "restart"})
FILE_OPTIONS = ("style", "content_mask", "style_mask", "vgg")  # counted by what they name, not how it is spelt


def options_key(args):
    """A key of the options a data set's items are done with: every option that can change an item's result, the
    files by what they hold (the style and mask images' contents; the weights by their file's name and size, not
    read: 535 MB), however their paths are spelt. An item finished with another key is not skipped: it runs again,
    and resumes or is refused as a single image run again is (runner.run_folder.holds_run_of). It reads no item,
    so it costs nothing per item: a --content-mask folder (a mask per item) counts by its name alone."""
    counted = {name: value for name, value in vars(args).items() if name not in NOT_IN_A_RESULT | set(FILE_OPTIONS)}
    for name in FILE_OPTIONS:
        given = getattr(args, name)
        counted[name] = [_file_key(path, read=name != "vgg")
                         for path in (given if isinstance(given, (list, tuple)) else [given])]
    return hashlib.sha256(json.dumps(counted, sort_keys=True, default=repr).encode()).hexdigest()[:16]


def _file_key(path, read):
    """What options_key counts of a file option's value: a file's contents (or name and size: read=False), a
    folder's name; a word (none, all) or nothing as it is."""
    if isinstance(path, str) and os.path.isfile(path):
        return utils.file_identity(path)["sha256"] if read else [os.path.basename(path), os.path.getsize(path)]
    if isinstance(path, str) and os.path.isdir(path):
        return os.path.basename(os.path.normpath(os.path.abspath(path)))
    return path


class JobMaker:
    """Makes each item's Job from the options: `make_job(item, own_folders)`. The weights are read once."""

    def __init__(self, args):
        if args.texture and args.preserve_colors:
            raise FixableError("--preserve-colors needs a content image: drop it, or --texture")
        if args.texture and args.init in ("noise", "content"):
            raise FixableError(f"--init {args.init} needs a content image: with --texture use random or style")
        self.args = args
        self.precision = precision(args)
        self.schedule = Schedule(args.iterations, args.save_every, args.log_every, args.keep, args.keep_best,
                                 args.preserve_colors or args.color_control == "luminance", args.restart)
        self.folders = Folders(args.checkpoint_dir, args.log_dir, args.output_dir,
                               os.path.join(args.output_dir, "final.png") if args.output is None else args.output)
        self.weights = None

    def __call__(self, item, own_folders):
        """The checked Job of one item (runner.items.Item); own_folders: in subfolders named after it."""
        if item.failure:
            raise FixableError(item.failure)
        folders = self.folders.for_item(item.folder) if own_folders else self.folders
        job = prepare_job(self.args, item, self.schedule, folders, self.weights, self.precision)
        if job.problem.tiles is None and self.args.tile_overlap is not None and not own_folders:  # (a data set's
            # items that are tiled take it, the others pass it by)
            raise FixableError(f"--tile-overlap is for tiled images, and --width {job.problem.width} --height "
                               f"{job.problem.height} fits whole: drop it, or give --tile")
        self.weights = job.weights
        return job


def prepare_job(args, item, schedule, folders, weights=None, precision="fp32"):
    """Check everything one item's run needs and read its inputs; `weights` already read may be passed in;
    precision: what the network computes in (see precision())."""
    film, content_path = item.video, item.image  # a path, ImageBytes (a record), None with --texture; or a film
    check_options_apply(args, film)
    if film and video.is_video_file(folders.output):  # --output film.mp4: the video there, its last frame beside it
        folders = dataclasses.replace(folders, output=os.path.splitext(folders.output)[0] + ".png")
    if not film and content_path is not None:
        utils.fetch_if_missing(content_path, "content image", "--content")
    content_layers, content_weight = ((), 0.0) if args.texture else (tuple(args.content_layers), args.content_weight)
    style_counts = args.style_weight > 0 and any(args.style_layer_weights)
    if content_weight == 0 and args.tv_weight == 0 and not style_counts:
        raise FixableError("every loss weight is 0: nothing to optimise; raise --style-weight or --content-weight")
    width, height = output_size(args, content_path, video.source_size if film else content_size)
    deepest = load_vgg.deepest_layer_used(content_layers, args.style_layers)
    tiling = None if film else choose_tiling(args, width, height, deepest, precision)
    if tiling is None:
        memory.check_memory(width, height, deepest, precision)

    styles = tuple(None if path == "none" else path for path in args.style)  # none: a region without style
    for path in styles:
        if path is not None:
            utils.fetch_if_missing(path, "style image", "--style")
    content_mask = mask_for(args.content_mask, item)
    style_masks = None if args.style_mask is None else tuple(None if mask == "all" else mask
                                                              for mask in args.style_mask)
    init = args.init or ("random" if args.texture else "noise")
    region_values = None if content_mask is None else controls.region_values(
        controls.mask_values(content_mask, width, height, "--content-mask"), content_mask)
    if region_values is not None and len(region_values) != len(styles):
        raise FixableError(f"--content-mask {content_mask} has {len(region_values)} regions (grey levels) for "
                           f"{len(styles)} --style: give a style (or none) for each region, darkest first, or draw "
                           f"the mask with as many levels (a JPEG's noise makes many: save masks as PNG)")
    files = ImageFiles(None if film else content_path, styles, style_scale(args), init, args.color_control,
                       content_mask, style_masks, region_values)
    images = files.read_at(width, height)
    clip = video.read_clip(content_path, width, height, args.frames, args.fps) if film else None
    if film:  # a film's style takes the colours of all its frames
        images = with_color_control(images, args.color_control, np.stack(clip.frames))
    utils.fetch_if_missing(args.vgg, "VGG-19 weights", "--vgg")  # last: 535 MB, not for a run refused anyway
    weights = weights or load_vgg.load_weights(args.vgg, deepest)

    blends = args.style_blend_weights or [1.0] * len(styles)
    masks = [mask for mask in (content_mask, *(style_masks or ())) if mask is not None]
    problem = Problem(
        content=None if content_path is None else (video.identity if film else utils.file_identity)(content_path),
        style=tuple(None if path is None else utils.file_identity(path) for path in styles),
        style_blend_weights=tuple(blends) if isinstance(blends[0], tuple) else tuple(blend / sum(blends)
                                                                                   for blend in blends),
        style_scale=style_scale(args), color_control=args.color_control,
        content_mask=None if content_mask is None else utils.file_identity(content_mask),
        style_masks=None if style_masks is None else tuple(None if mask is None else utils.file_identity(mask)
                                                           for mask in style_masks),
        mask_propagation=(args.mask_propagation or "simple") if masks else None,
        weights=weights.fingerprint, width=width, height=height, pooling=args.pooling,
        content_layers=content_layers, style_layers=tuple(args.style_layers),
        style_layer_weights=tuple(args.style_layer_weights), content_weight=content_weight,
        style_weight=args.style_weight, tv_weight=args.tv_weight, init=init, style_loss=args.style_loss,
        noise_ratio=args.noise_ratio if init == "noise" else None, optimizer=args.optimizer,
        learning_rate=args.lr if args.optimizer == "adam" else None, seed=args.seed, average=args.average,
        adam_across_scales=args.adam_across_scales, precision=precision,
        scales=tiling.scales if tiling else tuple(args.scales),
        scale_steps=tiling.scale_steps if tiling else coarse_scale_steps(args),
        **(dict(frames=(clip.numbers[0], clip.numbers[-1]), frame_steps=frame_steps(args),
                temporal_weight=temporal_weight(args)) if film else {}),
        **(dict(tiles=tiling.tiles, tile_steps=tiling.tile_steps) if tiling else {}))

    if film:
        plan = video.film_plan(clip, problem.content, video.FrameSteps(*frame_steps(args)), problem.temporal_weight,
                               images, weights.mean_pixel, folders, schedule.preserve_colors)
    elif tiling:
        plan = tiles.tiled_plan(problem, schedule.iterations, files, images, folders.checkpoint_dir)
    else:
        plan = stages.still_plan(problem, schedule.iterations, files, images)
    schedule = dataclasses.replace(schedule, iterations=plan.stages[-1].last_step)  # a film's or tiles': their end
    run_folder.check_only_own_checkpoints(folders.checkpoint_dir)  # --restart or not: others' are never touched
    resumable = not args.restart and run_folder.holds_run_of(folders.checkpoint_dir, problem)
    for folder in folders.all():
        guards.check_writable_folder(folder)
    guards.check_nothing_overwritten(folders, schedule, [path for path in (content_path, *styles, *masks, args.vgg)
                                                         if isinstance(path, str)], plan.outputs())
    guards.check_outputs_apart(folders, schedule, [] if args.texture else args.content, plan.outputs())
    return Job(problem, schedule, folders, plan, weights, resumable)


def style_scale(args):
    """--style-scale as the Problem holds it: None, a number for every style, or a tuple of one each."""
    if args.style_scale is None or len(args.style_scale) == 1:
        return None if args.style_scale is None else args.style_scale[0]
    return tuple(args.style_scale)


def mask_for(given, item):
    """The --content-mask of an item: the file given, or, given a folder, the image in it named as the item's
    content (its file name without extension, or the item's name), refused in one line if there is none, or more
    than one (a.png and a.jpg)."""
    if given is None or not os.path.isdir(given):
        return given
    stem = os.path.splitext(os.path.basename(item.image))[0] if isinstance(item.image, str) else item.name
    found = masks_by_name(given).get(stem, [])
    if not found:
        raise FixableError(f"--content-mask folder {given} has no mask named {utils.shown(stem)} (for the content "
                           f"image {utils.shown(str(item.image))}): add one, named as the content image")
    if len(found) > 1:
        raise FixableError(f"--content-mask folder {given} has {len(found)} masks named {utils.shown(stem)} "
                           f"({', '.join(os.path.basename(path) for path in found)}): keep one of them")
    return found[0]


@functools.lru_cache(maxsize=None)
def masks_by_name(folder):
    """{file name without extension: [paths]} of the images in a --content-mask folder: listed once, not per item."""
    found = {}
    for path in utils.image_files(folder):
        found.setdefault(os.path.splitext(os.path.basename(path))[0], []).append(path)
    return found


def precision(args):
    """--precision; without it fp32, CS20's, except that --fast takes bf16 where this machine computes it natively.
    bf16 asked for where it is emulated runs, after a warning: it is slower there, not wrong."""
    native = tf_setup.native_bfloat16()
    if args.precision == "bf16" and not native:
        print("warning: --precision bf16 on a processor without native bfloat16 (no avx512_bf16 or amx_bf16; a GPU "
              "before Ampere): the steps will be several times slower than with fp32", file=sys.stderr, flush=True)
    return args.precision or ("bf16" if args.fast and native else "fp32")


FILM_ONLY = (("frames", "--frames"), ("frame_steps", "--frame-steps"), ("fps", "--fps"),
             ("temporal_weight", "--temporal-weight"))


def check_options_apply(args, film):
    """Refuse an option that does not apply to the item: a still image's options with a film, a film's with a
    still image. (A film cannot be tiled or stylised coarse to fine yet.)"""
    if film:
        for given, option in ((args.texture, "--texture"), (args.keep_best, "--keep-best"),
                              (args.tile is not None, "--tile"), (args.tile_overlap is not None, "--tile-overlap"),
                              (len(args.scales) > 1, "--scales (which --fast sets)" if args.fast else "--scales")):
            if given:
                raise FixableError(f"{option} is for still images, not films: drop it, or pass a still image")
        return
    for name, option in FILM_ONLY:
        if getattr(args, name) is not None:
            raise FixableError(f"{option} is for films, not still images: drop it, or pass a video file (or a "
                               f"folder of frames with --video)")


def choose_tiling(args, width, height, deepest, precision):
    """The run's runner.memory.Tiling (with --tile, or when the whole image would not fit), or None."""
    tiling = memory.choose_tiling(width, height, deepest, precision, args.tile, lambda tile: tile_overlap(args, tile),
                                  tuple(args.scales), coarse_scale_steps(args), args.iterations)
    if tiling and args.keep_best:
        raise FixableError("--keep-best compares the whole image's losses, and a tiled run's are a tile's: drop it")
    if tiling and tiling.automatic:
        print(f"--width {width} --height {height} does not fit in memory: refining it in tiles (as --tile "
              f"{tiling.tiles[0]})", flush=True)
    return tiling


def content_size(path):
    return utils.image_size(path, "content image")


def output_size(args, content_path, size_of=content_size):
    """(width, height): as given; CS20's 333x250 if neither is; the content's (or with --texture the first
    style's) aspect ratio fills in one. size_of(path): the content's size (a film's: its frames')."""
    if args.width and args.height:
        return args.width, args.height
    if not args.width and not args.height:
        return 333, 250
    if content_path is None:
        utils.fetch_if_missing(args.style[0], "style image", "--style")
    shape_source = args.style[0] if content_path is None else content_path
    source_width, source_height = (utils.image_size(shape_source, "style image") if content_path is None
                                   else size_of(shape_source))
    if args.width:
        return args.width, max(1, round(args.width * source_height / source_width))
    return max(1, round(args.height * source_width / source_height)), args.height
