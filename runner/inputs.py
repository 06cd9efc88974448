"""From the parsed options to typed jobs. Everything that can refuse a run does so here, before anything is written.

    make_job = JobMaker(args)
    job = make_job(item, own_folders)   # an item of runner.items: one content image

A Job carries what one run needs and nothing of argparse: its Problem (the run's identity), its Schedule (how
long, what is written), its Folders, its images read at the output size, the weights, and whether its
checkpoint folder holds a run to resume. With several items each gets subfolders named after it; the weights
are read once for all of them. Default files that are missing are downloaded here.
"""

import dataclasses
import math
import os
import re
from dataclasses import dataclass

import numpy as np

import load_vgg
import utils
from runner import run_folder, tf_setup, tiles, video
from runner.options import coarse_scale_steps, frame_steps, tile_overlap
from runner.problem import Problem
from runner.scales import StillPlan
from runner.scales import plan as scale_plan
from utils import FixableError

# Memory a run needs: a fixed part (TensorFlow, the weights as read and as graph constants) and a part per
# activation float of the network (its value, its gradient, the convolutions' scratch space). Measured here:
# 1.8 GB + 2.8 kB per pixel (about 4.7 bytes per activation float); the figures below leave a margin.
MEMORY_FIXED = 2.0e9
MEMORY_PER_ACTIVATION = 6
LARGEST_AUTOMATIC_TILE = 1024  # pixels a side: larger tiles gain little, and a tile is a unit of lost work
LARGEST_AUTOMATIC_COARSE = 1024  # the long side of the coarse scale added to a tiled run that gives none
MEMORY_PER_TILED_PIXEL = 64  # bytes per output pixel of a tiled run: content, styles, assembled image, as floats


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

    def for_item(self, name):
        """The folders of one of several items: a subfolder of each, named after the item; its final image is
        <output-dir>/<name>/ named as --output."""
        return Folders(os.path.join(self.checkpoint_dir, name), os.path.join(self.log_dir, name),
                       os.path.join(self.output_dir, name),
                       os.path.join(self.output_dir, name, os.path.basename(self.output)))


@dataclass(frozen=True)
class Schedule:
    """How long a run goes and what it writes: free to change when a run resumes."""
    iterations: int  # train up to this step
    save_every: int  # checkpoint and image cadence
    log_every: int  # summary and progress-line cadence
    keep: int  # checkpoints kept
    keep_best: bool
    preserve_colors: bool
    restart: bool


@dataclass(frozen=True)
class Images:
    """The images of one size, as float32 [height, width, 3] in 0..255."""
    content: np.ndarray  # fitted to the size; None with --texture
    styles: list  # each fitted to the size, or with --style-scale at its own aspect
    start_style: np.ndarray  # with --init style: the first style fitted to the size; else None


@dataclass(frozen=True)
class ImageFiles:
    """The image files of a run, read again at each size it is optimised at."""
    content: str  # None with --texture
    styles: tuple
    style_scale: float  # each style this many times the output's width, at its own aspect; None: fitted
    init: str

    def read_at(self, width, height):
        content = None if self.content is None else utils.load_image(self.content, width, height, "content image")
        styles = []
        for path in self.styles:
            style_width, style_height = width, height
            if self.style_scale is not None:
                original_width, original_height = utils.image_size(path, "style image")
                style_width = max(1, round(width * self.style_scale))
                style_height = max(1, round(style_width * original_height / original_width))
            styles.append(utils.load_image(path, style_width, style_height, "style image"))
        start_style = None
        if self.init == "style":
            start_style = styles[0] if self.style_scale is None else \
                utils.load_image(self.styles[0], width, height, "style image")
        return Images(content, styles, start_style)


@dataclass(frozen=True)
class Job:
    """One run: everything it needs, checked."""
    name: str  # the item's name, with several items; else None
    problem: Problem
    schedule: Schedule
    folders: Folders
    files: ImageFiles
    images: Images  # at the output size
    plan: object  # its stages: runner.scales.StillPlan, or a film's runner.video.FramePlan
    weights: load_vgg.VGGWeights
    resumable: bool  # the checkpoint folder holds a run of this problem to resume


class JobMaker:
    """Makes each item's Job from the options: `make_job(item, own_folders)`. The weights are read once."""

    def __init__(self, args):
        if args.texture and args.preserve_colors:
            raise FixableError("--preserve-colors needs a content image: drop it, or --texture")
        if args.texture and args.init in ("noise", "content"):
            raise FixableError(f"--init {args.init} needs a content image: with --texture use random or style")
        self.args = args
        self.schedule = Schedule(args.iterations, args.save_every, args.log_every, args.keep, args.keep_best,
                                 args.preserve_colors, args.restart)
        self.folders = Folders(args.checkpoint_dir, args.log_dir, args.output_dir, args.output)
        self.weights = None

    def __call__(self, item, own_folders):
        """The checked Job of one item (runner.items.Item); own_folders: in subfolders named after it."""
        folders = self.folders.for_item(item.name) if own_folders else self.folders
        job = prepare_job(self.args, item.image, item.name if own_folders else None, self.schedule, folders,
                          self.weights, film=item.video)
        self.weights = job.weights
        return job


def prepare_job(args, content_path, name, schedule, folders, weights=None, film=False):
    """Check everything one run needs and read its inputs; `weights` already read may be passed in.

    content_path: a file's path, ImageBytes (a TFRecord's record), or None with --texture; with film, a video
    file or a folder of frames.
    """
    if film:
        check_film_options(args)
    elif content_path is not None:
        utils.fetch_if_missing(content_path, "content image", "--content")
    content_layers, content_weight = ((), 0.0) if args.texture else (tuple(args.content_layers), args.content_weight)
    init = args.init or ("random" if args.texture else "noise")
    width, height = output_size(args, content_path, video.source_size if film else utils.image_size)
    style_counts = args.style_weight > 0 and any(args.style_layer_weights)
    if content_weight == 0 and args.tv_weight == 0 and not style_counts:
        raise FixableError("every loss weight is 0: nothing to optimise; raise --style-weight or --content-weight")
    deepest = load_vgg.deepest_layer_used(content_layers, args.style_layers)
    tiling = None if film else choose_tiling(args, width, height, deepest)
    if tiling is None:
        check_memory(width, height, deepest)
    for path in args.style:
        utils.fetch_if_missing(path, "style image", "--style")
    files = ImageFiles(None if film else content_path, tuple(args.style), args.style_scale, init)
    images = files.read_at(width, height)
    clip = video.read_clip(content_path, width, height, args.frames, args.fps) if film else None
    utils.fetch_if_missing(args.vgg, "VGG-19 weights", "--vgg")  # last: 535 MB, not for a run refused anyway
    weights = weights or load_vgg.load_weights(args.vgg, load_vgg.deepest_layer_used(content_layers,
                                                                                      args.style_layers))
    blends = args.style_blend_weights or [1.0] * len(args.style)
    identity = video.identity if film else utils.file_identity
    problem = Problem(
        content=None if content_path is None else identity(content_path),
        style=tuple(utils.file_identity(path) for path in args.style),
        style_blend_weights=tuple(blend / sum(blends) for blend in blends), style_scale=args.style_scale,
        weights=weights.fingerprint, width=width, height=height, pooling=args.pooling,
        content_layers=content_layers, style_layers=tuple(args.style_layers),
        style_layer_weights=tuple(args.style_layer_weights), content_weight=content_weight,
        style_weight=args.style_weight, tv_weight=args.tv_weight, init=init,
        noise_ratio=args.noise_ratio if init == "noise" else None, optimizer=args.optimizer,
        learning_rate=args.lr if args.optimizer == "adam" else None, seed=args.seed,
        scales=tiling.scales if tiling else tuple(args.scales),
        scale_steps=tiling.scale_steps if tiling else coarse_scale_steps(args),
        **(dict(frames=(clip.numbers[0], clip.numbers[-1]), frame_steps=frame_steps(args),
                temporal_weight=args.temporal_weight) if film else {}),
        **(dict(tiles=tiling.tiles, tile_steps=tiling.tile_steps) if tiling else {}))
    if film:
        plan = video.FramePlan(clip, video.FrameSteps(*frame_steps(args)), images, weights.mean_pixel, folders,
                               args.preserve_colors)
    elif tiling:
        coarse = scale_plan(problem, schedule.iterations)[:-1]
        plan = tiles.TilePlan(coarse, tiling.tile_steps, tiles.tile_layout(width, height, *tiling.tiles), files,
                              images, folders.checkpoint_dir, tiling.tiles[1])
    else:
        plan = StillPlan(scale_plan(problem, schedule.iterations), files, images)
    if film or tiling:  # the global step runs to the last frame's or tile's end
        schedule = dataclasses.replace(schedule, iterations=plan.stages[-1].last_step)
    resumable = not args.restart and run_folder.holds_run_of(folders.checkpoint_dir, problem)
    for folder in folders.all():
        check_writable_folder(folder)
    check_nothing_overwritten(folders, schedule, [path for path in (content_path, *args.style, args.vgg)
                                                  if isinstance(path, str)], plan.outputs())
    return Job(name, problem, schedule, folders, files, images, plan, weights, resumable)


def check_film_options(args):
    """Refuse what a film cannot do (yet): the options that belong to still images."""
    for given, option in ((args.texture, "--texture"), (args.keep_best, "--keep-best"), (args.tile, "--tile"),
                          (len(args.scales) > 1, "--scales (which --fast sets)" if args.fast else "--scales")):
        if given:
            raise FixableError(f"{option} is for still images, not films: drop it, or pass a still image")


def output_size(args, content_path, size_of=utils.image_size):
    """(width, height): as given; CS20's 333x250 if neither is; the content's (or with --texture the first
    style's) aspect ratio fills in one. size_of(path, what): the content's size (a film's: its frames')."""
    if args.width and args.height:
        return args.width, args.height
    if not args.width and not args.height:
        return 333, 250
    if content_path is None:
        utils.fetch_if_missing(args.style[0], "style image", "--style")
    shape_source = args.style[0] if content_path is None else content_path
    source_width, source_height = (utils.image_size(shape_source, "style image") if content_path is None
                                   else size_of(shape_source, "content image"))
    if args.width:
        return args.width, max(1, round(args.width * source_height / source_width))
    return max(1, round(args.height * source_width / source_height)), args.height


@dataclass(frozen=True)
class Tiling:
    """How a tiled run goes (the Problem's fields of the same names)."""
    scales: tuple  # the coarse scales, run on the whole image, and 1 (the tiles)
    scale_steps: tuple
    tiles: tuple  # (tile size, overlap)
    tile_steps: int  # each tile's


def choose_tiling(args, width, height, deepest):
    """The Tiling of a run with --tile, or of one whose whole image would not fit in memory (said on stdout; the
    tile size chosen among those that fit); None for a run of the whole image. A run given no coarse scale gets
    one, the largest half, quarter... that fits, at most LARGEST_AUTOMATIC_COARSE pixels long, for half of
    --iterations."""
    tile = args.tile
    if tile is None:
        if memory_fits(memory_needed(width, height, deepest)):
            return None
        fitting = [side for side in range(64, LARGEST_AUTOMATIC_TILE + 1, 64) if side >= 2 * (args.tile_overlap or 0)
                   and memory_fits(tiled_memory_needed(width, height, side, deepest))]
        # of the sizes that fit, the one whose tiles give the network the fewest pixels (overlaps and contexts too)
        tile = min(fitting, key=lambda side: (tiles.work(width, height, side, tile_overlap(args, side)), -side),
                   default=None)
        if tile is None:
            check_memory(width, height, deepest, tiled_memory_needed(width, height, 64, deepest),
                         " even in tiles")
    if args.keep_best:
        raise FixableError("--keep-best compares the whole image's losses, and a tiled run's are a tile's: drop it")
    if args.tile is None:
        print(f"--width {width} --height {height} does not fit in memory: refining it in tiles (as --tile {tile})",
              flush=True)
    check_memory(width, height, deepest, tiled_memory_needed(width, height, tile, deepest), f" in --tile {tile}")
    scales, steps = tuple(args.scales), coarse_scale_steps(args)
    if len(scales) == 1:
        scale = 0.5
        while scale > 1 / 64 and (max(width, height) * scale > LARGEST_AUTOMATIC_COARSE or
                                  not memory_fits(memory_needed(round(width * scale), round(height * scale), deepest))):
            scale /= 2
        scales, steps = (scale, 1.0), (max(1, args.iterations // 2),)
        if steps[0] >= args.iterations:
            raise FixableError(f"--iterations {args.iterations} leaves no step for the tiles: raise --iterations")
    coarse_width, coarse_height = round(width * scales[-2]), round(height * scales[-2])
    check_memory(coarse_width, coarse_height, deepest, memory_needed(coarse_width, coarse_height, deepest),
                 f" (--scales {scales[-2]:g})")
    return Tiling(scales, steps, (tile, tile_overlap(args, tile)), args.iterations - sum(steps))


def memory_needed(width, height, deepest):
    """Bytes a run of the whole width x height image needs (estimated)."""
    return MEMORY_FIXED + MEMORY_PER_ACTIVATION * load_vgg.activation_count(width, height, deepest)


def tiled_memory_needed(width, height, tile, deepest):
    """Bytes a tiled run needs: one tile's graph, and the whole image's arrays (content, styles, assembled image)."""
    seen = 2 * tiles.context_for(tile)  # the network sees a tile within its context
    return memory_needed(min(tile, width) + seen, min(tile, height) + seen, deepest) + \
        MEMORY_PER_TILED_PIXEL * width * height


def memory_available():
    """Bytes available to a run (on a GPU, the GPU's), or None where that cannot be told."""
    return tf_setup.gpu_free_memory() if tf_setup.ON_GPU else utils.available_memory()


def memory_fits(needed):
    available = memory_available()
    return available is None or needed <= available


def check_memory(width, height, deepest, needed=None, how=""):
    """Refuse a width x height run whose estimated memory (`needed`; by default the whole image's) exceeds what is
    available (on a GPU, the GPU's), and say what size would fit. how: how the run would go (" in --tile 512")."""
    needed = memory_needed(width, height, deepest) if needed is None else needed
    available = memory_available()
    if available is None or needed <= available:
        return
    scale = math.sqrt(max(available - MEMORY_FIXED, 0) / (needed - MEMORY_FIXED))
    fits = f"at most about {int(width * scale)}x{int(height * scale)}" if scale * min(width, height) >= 1 \
        else "no image at all"
    memory = "GPU memory" if tf_setup.ON_GPU else "memory"
    raise FixableError(f"--width {width} --height {height} needs about {needed / 1e9:.1f} GB of {memory}{how} and "
                       f"{available / 1e9:.1f} GB is available: {fits} fits")


def check_nothing_overwritten(folders, schedule, inputs, planned_elsewhere=()):
    """Refuse a run that would write over one of its inputs, or over a file this tool did not write.

    What a run writes: the final image (and with --keep-best the best one beside it), and step images
    <output-dir>/<step>.png for steps up to --iterations (which steps depends on the cadence, signals and
    L-BFGS's convergence, so every such name counts), and what the plan writes (a film's frames and video). An
    existing file of those names is replaced only if it carries the mark this tool writes into its images
    (utils.written_by_this_tool) and videos.
    """
    planned = [folders.output, *([folders.best_output] if schedule.keep_best else []), *planned_elsewhere]
    for name in sorted(os.listdir(folders.output_dir)) if os.path.isdir(folders.output_dir) else []:
        step = re.fullmatch(r"(\d+)\.png", name)
        if step and 1 <= int(step.group(1)) <= schedule.iterations:
            planned.append(os.path.join(folders.output_dir, name))
    inputs = {os.path.realpath(path): path for path in inputs}
    for path in planned:
        if os.path.realpath(path) in inputs:
            raise FixableError(f"{path} is the input {inputs[os.path.realpath(path)]}: the run would write over it; "
                               f"choose another --output or --output-dir")
        written_by_this_tool = video.written_by_this_tool if video.is_video_file(path) else utils.written_by_this_tool
        if os.path.lexists(path) and not written_by_this_tool(path):
            raise FixableError(f"{path} exists and was not written by style_transfer.py: the run would replace it; "
                               f"move it, or choose another --output or --output-dir")


def check_writable_folder(folder):
    """Refuse a folder that could not be created or written into, without creating anything yet."""
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise FixableError(f"cannot create folder {folder}: {existing} is a file; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise FixableError(f"cannot write into {existing} (for {folder}): choose another path or fix its permissions")
