"""Neural style transfer (Gatys et al.) as in Stanford CS20 assignment 2, in TF1 graph mode.

    python style_transfer.py                    # CS20 defaults: deadpool.jpg in the style of guernica.jpg
    python style_transfer.py --iterations 500   # carries the run in checkpoints/style_transfer on to step 500

How it runs, top to bottom:
  1. parse_args: every option and its default, in one place.
  2. prepare: fetch missing default files, read and check the images and the weights, compare the run with the
     one in the checkpoint folder. Everything that can refuse the run does so here, before anything is written.
  3. style_targets: the content image's features and the style image's Gram matrices, computed once; they
     enter the training graph as constants.
  4. StyleTransfer.build: the training graph, in the CS20 stages create_input, load_vgg, losses, optimize,
     create_summary. Its only trainable variable is the generated image.
  5. run: restore the latest checkpoint or start afresh, then StyleTransfer.train yields each step; saving
     checkpoints and images, writing summaries and printing progress hang off that loop. With --scales,
     run_scale does 3 to 5 for each size in turn, each starting from the previous size's result.
"""

import argparse
import contextlib
import copy
import dataclasses
import glob
import itertools
import json
import math
import os
import queue
import re
import shutil
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass

import numpy as np
import scipy.optimize
from PIL import Image

import utils
from utils import UsageError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ log lines (errors reach us as exceptions)
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # oneDNN convolutions: off by default on some CPUs, ~30% faster
with utils.quiet_stderr():  # ...and the GPU-probe lines it prints at import, before any log level applies
    import tensorflow as tf2
    import tensorflow.compat.v1 as tf

import load_vgg

tf.get_logger().setLevel("ERROR")  # the compat.v1 deprecation notices are not for our users
tf.disable_v2_behavior()
tf2.config.experimental.enable_op_determinism()  # the same steps give the same image: resume is exact

RUN_RECORD = "run.json"  # beside the checkpoints: what the run was made from
BEST_RECORD = "best.json"  # beside the checkpoints, with --keep-best: the lowest loss seen and its step

# Memory a run needs: a fixed part (TensorFlow, the weights as read and as graph constants) and a part per
# activation float of the network (its value, its gradient, the convolutions' scratch space). Measured here:
# 1.8 GB + 2.8 kB per pixel (about 4.7 bytes per activation float); the figures below leave a margin.
MEMORY_FIXED = 2.0e9
MEMORY_PER_ACTIVATION = 6

# One op at a time, each on every core: the convolutions are large enough to use them all, and running two
# at once only makes them fight over the cores (measured: 0.80 against 0.84 s/step at 333x250 on 2 cores).
SESSION_CONFIG = tf.ConfigProto(inter_op_parallelism_threads=1)
# Graph optimisation: each pass copies the graph, weight constants included, so only the passes that make the
# steps faster run, once (measured at 333x250: the same s/step, about 200 MB less peak memory). The remapper
# fuses conv + bias + ReLU for oneDNN, and dependency optimisation lets it (without: 0.65 -> 1.0 s/step).
_rewrite = SESSION_CONFIG.graph_options.rewrite_options
_rewrite.meta_optimizer_iterations = _rewrite.ONE
for _pass in ("arithmetic_optimization", "layout_optimizer", "loop_optimization", "shape_optimization",
              "function_optimization", "debug_stripper"):
    setattr(_rewrite, _pass, _rewrite.OFF)
_rewrite.memory_optimization = _rewrite.NO_MEM_OPT
# The targets are computed in one run: graph optimisation would cost more than it saves there.
ONE_RUN_CONFIG = tf.ConfigProto(inter_op_parallelism_threads=1)
ONE_RUN_CONFIG.graph_options.rewrite_options.disable_meta_optimizer = True


# ---------------------------------------------------------------------------------------------------
# 1. Options.

def _whole_number(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _finite_number(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number")
    return value


def _checked(parse, is_valid, requirement):
    """An argparse type: `parse` the text, then refuse a value that is not `is_valid`, saying the requirement."""
    def convert(text):
        value = parse(text)
        if not is_valid(value):
            raise argparse.ArgumentTypeError(f"{text} must be {requirement}")
        return value
    return convert


positive_int = _checked(_whole_number, lambda value: value >= 1, "at least 1")
non_negative_int = _checked(_whole_number, lambda value: value >= 0, "0 or more")
positive_float = _checked(_finite_number, lambda value: value > 0, "greater than 0")
non_negative_float = _checked(_finite_number, lambda value: value >= 0, "0 or more")
fraction = _checked(_finite_number, lambda value: 0 <= value <= 1, "between 0 and 1")


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each default, except where there is none to show (None, or off for a flag)."""

    def _get_help_string(self, action):
        return action.help if action.default in (None, False) else super()._get_help_string(action)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad option is one line on stderr (not the usage block) and exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def parse_args(argv=None):
    parser = OneLineParser(
        prog="style_transfer.py",
        description="Neural style transfer (Gatys et al.) as in Stanford CS20 assignment 2. "
                    "Resumes from the latest checkpoint in --checkpoint-dir.",
        formatter_class=DefaultsHelpFormatter)
    files = parser.add_argument_group("images and weights (the defaults are downloaded on first use)")
    files.add_argument("--content", nargs="+", default=[os.path.join("content", "deadpool.jpg")],
                       help="content image; or several, or folders of them: each gets its own subfolder of "
                            "--checkpoint-dir, --log-dir and --output-dir, named after the image")
    files.add_argument("--style", nargs="+", default=[os.path.join("styles", "guernica.jpg")],
                       help="style image, or several to blend")
    files.add_argument("--vgg", default="imagenet-vgg-verydeep-19.mat",
                       help="VGG-19 weights: MatConvNet's .mat, or Keras' vgg19 notop .h5")

    problem = parser.add_argument_group("what is optimised (a checkpoint resumes only the same problem)")
    problem.add_argument("--width", type=positive_int,
                         help="output width in pixels (CS20: 333 by 250; give only one of --width and --height "
                              "and the other follows the content image's aspect ratio)")
    problem.add_argument("--height", type=positive_int, help="output height in pixels")
    problem.add_argument("--content-layers", "--content-layer", nargs="+", default=["conv4_2"],
                         help="layers whose features the result keeps (their content losses add up)")
    problem.add_argument("--style-layers", nargs="+", default=["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"],
                         help="layers whose Gram matrices carry the style")
    problem.add_argument("--style-layer-weights", nargs="+", type=non_negative_float,
                         default=[0.5, 1.0, 1.5, 3.0, 4.0], help="one weight per style layer")
    problem.add_argument("--style-blend-weights", nargs="+", type=non_negative_float,
                         help="with several styles: one weight each, normalised to sum 1 (default: equal)")
    problem.add_argument("--style-scale", type=positive_float,
                         help="keep each style image's own aspect and make it this many times the output's width "
                              "(default: fit it to the output size, as CS20)")
    problem.add_argument("--content-weight", type=non_negative_float, default=0.01, help="weight of the content loss")
    problem.add_argument("--style-weight", type=non_negative_float, default=1.0, help="weight of the style loss")
    problem.add_argument("--tv-weight", type=non_negative_float, default=0.0,
                         help="weight of a total-variation loss, which smooths the result (CS20: none)")
    problem.add_argument("--pooling", choices=["avg", "max"], default="avg", help="VGG's pooling")
    problem.add_argument("--init", choices=["noise", "content", "style", "random"],
                         help="the starting image: noise mixed into the content (the default, as CS20), the "
                              "content, the style, or noise alone (the default with --texture)")
    problem.add_argument("--noise-ratio", type=fraction, default=0.6,
                         help="with --init noise: the share of noise (uniform in [-20, 20]) in the mix")
    problem.add_argument("--texture", action="store_true",
                         help="texture synthesis: no content image, only the style, from noise")
    problem.add_argument("--optimizer", choices=["adam", "lbfgs"], default="adam",
                         help="adam, as CS20; or scipy's L-BFGS-B (one step = one loss-and-gradient evaluation)")
    problem.add_argument("--lr", type=positive_float, default=2.0, help="Adam's learning rate")
    problem.add_argument("--scales", nargs="+", type=positive_float, default=[1.0],
                         help="optimise coarse to fine: at these fractions of the output size in turn (e.g. 0.25 "
                              "0.5 1, rising, ending at 1), each result upsampled to start the next")
    problem.add_argument("--scale-steps", nargs="+", type=positive_int,
                         help="with --scales: the steps at each scale but the last, one number for all or one "
                              "per scale (default: 100); the last scale takes the steps left up to --iterations")
    problem.add_argument("--seed", type=non_negative_int, default=0, help="seed of the initial noise")

    schedule = parser.add_argument_group("how long, and what is written (may change when resuming)")
    schedule.add_argument("--iterations", type=positive_int, default=300, help="train up to this step")
    schedule.add_argument("--save-every", type=positive_int, default=20, help="checkpoint and image every N steps")
    schedule.add_argument("--log-every", type=positive_int, default=10,
                          help="summaries and a progress line every N steps")
    schedule.add_argument("--keep", type=positive_int, default=3, help="how many checkpoints to keep")
    schedule.add_argument("--checkpoint-dir", default=os.path.join("checkpoints", "style_transfer"),
                          help="checkpoints and the run record")
    schedule.add_argument("--log-dir", default=os.path.join("graphs", "style_transfer"), help="TensorBoard logs")
    schedule.add_argument("--output-dir", default="outputs", help="the image at each checkpoint, as STEP.png")
    schedule.add_argument("--output", default=os.path.join("outputs", "final.png"), help="the final image")
    schedule.add_argument("--preserve-colors", action="store_true",
                          help="save images with the content's colours: the result's luminance, the content's chroma")
    schedule.add_argument("--keep-best", action="store_true",
                          help="also write the lowest-loss image seen, as <output>-best.png (Adam's loss can rise "
                               "again late in a run)")
    schedule.add_argument("--restart", action="store_true",
                          help="start over, replacing the checkpoint in --checkpoint-dir")
    args = parser.parse_args(argv)
    if args.style_blend_weights is not None and len(args.style_blend_weights) != len(args.style):
        parser.error(f"--style-blend-weights has {len(args.style_blend_weights)} values for {len(args.style)} --style")
    if args.style_blend_weights is not None and sum(args.style_blend_weights) == 0:
        parser.error("--style-blend-weights are all 0: give at least one style some weight")
    if args.scales[-1] != 1 or any(low >= high for low, high in zip(args.scales, args.scales[1:])):
        parser.error(f"--scales {' '.join(map(str, args.scales))}: give fractions of the output size that rise "
                     f"and end at 1, e.g. 0.25 0.5 1")
    coarse_scales = len(args.scales) - 1
    if args.scale_steps is not None and not coarse_scales:
        parser.error("--scale-steps needs several --scales (e.g. --scales 0.25 0.5 1)")
    if args.scale_steps is not None and len(args.scale_steps) not in (1, coarse_scales):
        parser.error(f"--scale-steps has {len(args.scale_steps)} values for {coarse_scales} scales before the last: "
                     f"give one for all, or one each")
    steps = args.scale_steps or [100]
    args.scale_steps = steps * coarse_scales if len(steps) == 1 else steps
    if sum(args.scale_steps) >= args.iterations:
        parser.error(f"--iterations {args.iterations} leaves no step for the last scale, which starts after step "
                     f"{sum(args.scale_steps)}: raise --iterations or lower --scale-steps")
    if len(args.style_layer_weights) != len(args.style_layers):
        parser.error(f"--style-layer-weights has {len(args.style_layer_weights)} values for "
                     f"{len(args.style_layers)} --style-layers")
    return args


# ---------------------------------------------------------------------------------------------------
# 2. Prepare: everything that can refuse the run, before anything is written.

@dataclass(frozen=True)
class Problem:
    """What is optimised. The checkpoint folder records it; a resume must pose the same problem."""
    content: dict  # the content image's SHA-256 and size; None with --texture
    style: tuple  # each style image's SHA-256 and size
    style_blend_weights: tuple  # one per style image, summing to 1
    style_scale: float  # style width / output width, each style keeping its aspect; None: fitted as CS20
    weights: str  # fingerprint of the VGG-19 weights used
    width: int
    height: int
    pooling: str
    content_layers: tuple  # empty with --texture
    style_layers: tuple
    style_layer_weights: tuple
    content_weight: float
    style_weight: float
    tv_weight: float
    init: str
    noise_ratio: float
    optimizer: str  # "adam" or "lbfgs"
    learning_rate: float  # Adam's; None for L-BFGS
    seed: int
    scales: tuple = (1.0,)  # fractions of the output size, optimised in turn
    scale_steps: tuple = ()  # steps at each scale but the last

    def at_size(self, width, height):
        """The same problem at another image size (one of its scales)."""
        return dataclasses.replace(self, width=width, height=height)

    def as_record(self):
        return json.loads(json.dumps(asdict(self)))  # lists for tuples, as JSON gives them back

    @classmethod
    def defaults_record(cls):
        """The fields that have defaults (those added later, such as scales), as as_record gives them."""
        return json.loads(json.dumps({field.name: field.default for field in dataclasses.fields(cls)
                                      if field.default is not dataclasses.MISSING}))


@dataclass
class Job:
    problem: Problem
    weights: load_vgg.VGGWeights
    content_image: np.ndarray  # [height, width, 3], 0..255; None with --texture
    style_images: list  # each [its height, its width, 3], 0..255
    resume: bool  # the checkpoint folder holds this problem's run


def content_files(args):
    """--content as image files: files as given, folders expanded to the images in them, by name."""
    extensions = set(Image.registered_extensions())
    files = []
    for path in args.content:
        if not os.path.isdir(path):
            files.append(path)
            continue
        found = sorted(os.path.join(path, name) for name in os.listdir(path)
                       if os.path.splitext(name)[1].lower() in extensions)
        if not found:
            raise UsageError(f"content folder {path} holds no image files: pass images or another folder")
        files += found
    return files


def prepare_all(args):
    """A (Job, its own options) pair per content image, every one checked before any runs.

    One content image uses the folders as given; several each get a subfolder named after the image.
    """
    files = [None] if args.texture else content_files(args)
    if len(files) == 1:
        args.content = files[0]
        return [(prepare(args), args)]
    names = [os.path.splitext(os.path.basename(path))[0] for path in files]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise UsageError(f"several content images are named {twice[0]}: their outputs would mix; rename one")
    jobs, weights = [], None
    for path, name in zip(files, names):
        own = copy.copy(args)
        own.content = path
        own.checkpoint_dir = os.path.join(args.checkpoint_dir, name)
        own.log_dir = os.path.join(args.log_dir, name)
        own.output_dir = os.path.join(args.output_dir, name)
        own.output = os.path.join(os.path.dirname(args.output), name, os.path.basename(args.output))
        job = prepare(own, weights)
        weights = job.weights  # read once, shared by all
        jobs.append((job, own))
    return jobs


def prepare(args, weights=None):
    """Check everything one run needs and read its inputs; `weights` already read may be passed in."""
    settle_options(args)
    style_counts = args.style_weight > 0 and any(args.style_layer_weights)
    if args.content_weight == 0 and args.tv_weight == 0 and not style_counts:
        raise UsageError("every loss weight is 0: nothing to optimise; raise --style-weight or --content-weight")
    check_memory(args)
    for path in args.style:
        utils.fetch_if_missing(path, "style image", "--style")
    content_image, style_images = input_images(args, args.width, args.height)
    utils.fetch_if_missing(args.vgg, "VGG-19 weights", "--vgg")  # last: 535 MB, not for a run refused anyway
    weights = weights or load_vgg.load_weights(args.vgg, deepest_layer(args.content_layers, args.style_layers))
    blends = args.style_blend_weights or [1.0] * len(args.style)
    problem = Problem(
        content=None if args.texture else utils.file_identity(args.content),
        style=tuple(utils.file_identity(path) for path in args.style),
        style_blend_weights=tuple(blend / sum(blends) for blend in blends), style_scale=args.style_scale,
        weights=weights.fingerprint, width=args.width, height=args.height, pooling=args.pooling,
        content_layers=tuple(args.content_layers), style_layers=tuple(args.style_layers),
        style_layer_weights=tuple(args.style_layer_weights), content_weight=args.content_weight,
        style_weight=args.style_weight, tv_weight=args.tv_weight, init=args.init,
        noise_ratio=args.noise_ratio if args.init == "noise" else None, optimizer=args.optimizer,
        learning_rate=args.lr if args.optimizer == "adam" else None, seed=args.seed,
        scales=tuple(args.scales), scale_steps=tuple(args.scale_steps))
    resume = not args.restart and check_resumable(args.checkpoint_dir, problem)
    for folder in output_folders(args):
        check_writable_folder(folder)
    return Job(problem, weights, content_image, style_images, resume)


def settle_options(args):
    """Fill in the options that follow from others: the output size, the start, what --texture switches off."""
    if args.texture:
        if args.preserve_colors:
            raise UsageError("--preserve-colors needs a content image: drop it, or --texture")
        if args.init in ("noise", "content"):
            raise UsageError(f"--init {args.init} needs a content image: with --texture use random or style")
        args.content, args.content_layers, args.content_weight = None, [], 0.0  # no content image is read
    else:
        utils.fetch_if_missing(args.content, "content image", "--content")
    args.init = args.init or ("random" if args.texture else "noise")
    args.width, args.height = output_size(args)


def output_size(args):
    """(width, height): as given; CS20's 333x250 if neither is; the content's (or with --texture the first
    style's) aspect ratio fills in one."""
    if args.width and args.height:
        return args.width, args.height
    if not args.width and not args.height:
        return 333, 250
    if args.texture:
        utils.fetch_if_missing(args.style[0], "style image", "--style")
    shape_source = args.style[0] if args.texture else args.content
    source_width, source_height = utils.image_size(shape_source, "style image" if args.texture else "content image")
    if args.width:
        return args.width, max(1, round(args.width * source_height / source_width))
    return max(1, round(args.height * source_width / source_height)), args.height


def input_images(args, width, height):
    """(content, [style, ...]) as float32 [height, width, 3] in 0..255, for an output of width x height.

    The content is fitted to that size (None with --texture); each style too (CS20), or with --style-scale
    made that many times its width at its own aspect.
    """
    content = None if args.texture else utils.load_image(args.content, width, height, "content image")
    styles = []
    for path in args.style:
        style_width, style_height = width, height
        if args.style_scale is not None:
            original_width, original_height = utils.image_size(path, "style image")
            style_width = max(1, round(width * args.style_scale))
            style_height = max(1, round(style_width * original_height / original_width))
        styles.append(utils.load_image(path, style_width, style_height, "style image"))
    return content, styles


def check_memory(args):
    """Refuse a size whose estimated memory exceeds what is available, and say what size would fit."""
    available = utils.available_memory()
    deepest = deepest_layer(args.content_layers, args.style_layers)
    per_image = MEMORY_PER_ACTIVATION * load_vgg.activation_count(args.width, args.height, deepest)
    if available is None or MEMORY_FIXED + per_image <= available:
        return
    scale = math.sqrt(max(available - MEMORY_FIXED, 0) / per_image)
    fits = f"at most about {int(args.width * scale)}x{int(args.height * scale)}" if scale * min(
        args.width, args.height) >= 1 else "no image at all"
    raise UsageError(f"--width {args.width} --height {args.height} needs about "
                     f"{(MEMORY_FIXED + per_image) / 1e9:.1f} GB of memory and {available / 1e9:.1f} GB is available: "
                     f"{fits} fits")


def output_folders(args):
    return args.checkpoint_dir, args.log_dir, args.output_dir, os.path.dirname(args.output) or "."


def check_resumable(checkpoint_dir, problem):
    """True if checkpoint_dir holds a run of this problem, False if no run; refuse a run of another."""
    if tf.train.get_checkpoint_state(checkpoint_dir) is None:
        return False
    try:
        with open(os.path.join(checkpoint_dir, RUN_RECORD)) as file:
            recorded = json.load(file)
    except (OSError, ValueError):
        raise UsageError(f"{checkpoint_dir} holds a checkpoint without a readable {RUN_RECORD}: pass --restart "
                         f"to replace it, or another --checkpoint-dir") from None
    current = problem.as_record()
    recorded = {**Problem.defaults_record(), **recorded}  # a record from before a field existed has its default
    differences = [key for key in current if recorded.get(key) != current[key]]
    if differences:
        described = "; ".join(f"{key}: {recorded.get(key)} then, {current[key]} now" for key in differences)
        raise UsageError(f"{checkpoint_dir} holds a run of another problem ({described}): pass --restart to "
                         f"start over, or another --checkpoint-dir")
    return True


def check_writable_folder(folder):
    """Refuse a folder that could not be created or written into, without creating anything yet."""
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(f"cannot create folder {folder}: {existing} is a file; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write into {existing} (for {folder}): choose another path or fix its permissions")


# ---------------------------------------------------------------------------------------------------
# 3 and 4. The losses and the graph.

def gram_matrix(features):
    """Fᵀ F with F reshaped to (positions, channels): channel correlations, summed over positions."""
    return _gram(tf.reshape(features, [-1, features.shape[-1]]))


@tf.custom_gradient
def _gram(matrix):
    def gradient(upstream):  # d(FᵀF) = F (U + Uᵀ): one product, where TensorFlow's own gradient takes two
        return tf.matmul(matrix, upstream + tf.transpose(upstream))
    return tf.matmul(matrix, matrix, transpose_a=True), gradient


def content_loss(features, target):
    """sum((F - P)²) / (4 · size(P)), as CS20."""
    return tf.reduce_sum(tf.square(features - target)) / (4.0 * target.size)


def style_layer_loss(features, target_gram):
    """sum((G - A)²) / (2 N M)² for one layer: N channels, M positions of its feature map."""
    _, height, width, channels = features.shape
    positions = int(height) * int(width)
    return tf.reduce_sum(tf.square(gram_matrix(features) - target_gram)) / (2.0 * int(channels) * positions) ** 2


def deepest_layer(content_layers, style_layers):
    """The deepest network layer the losses read: the network is built up to it and no further."""
    used = [load_vgg.feature_layer(name) for name in [*content_layers, *style_layers]]
    return max(used, key=load_vgg.VGG19_LAYERS.index)


@dataclass
class Targets:
    content_features: list  # the content image's features, per content layer (none with --texture)
    style_grams: list  # Gram matrix of the style image, per style layer


def style_targets(weights, problem, content_image, style_images, style_grams=None):
    """What the losses compare against, computed once in a throwaway graph.

    One network on each image, sharing the weight constants, evaluated in a single run: each distinct
    run of a new graph costs TensorFlow most of a second of set-up. With several style images, the target
    Gram matrix of a layer is their blend; a Gram matrix is a sum over positions, so each is first scaled
    to the number of positions the generated image has at that layer (1 when the style is fitted to it).
    style_grams: Gram targets computed before for the same style, size and layers (then only the content
    features are computed).
    """
    graph = tf.Graph()
    with graph.as_default():
        constants = load_vgg.weight_constants(weights)
        feeds, content_ops = {}, []  # no content features with --texture
        if content_image is not None:
            content_input = tf.placeholder(tf.float32, (1, *content_image.shape))
            feeds[content_input] = [content_image - weights.mean_pixel]
            layers = load_vgg.vgg_net(content_input, constants, deepest_layer(problem.content_layers, []),
                                      problem.pooling)
            content_ops = [layers[load_vgg.feature_layer(name)] for name in problem.content_layers]
        gram_ops = []  # per style image, per style layer: (Gram, its positions)
        for style_image in style_images if style_grams is None else []:
            style_input = tf.placeholder(tf.float32, (1, *style_image.shape))
            feeds[style_input] = [style_image - weights.mean_pixel]
            layers = load_vgg.vgg_net(style_input, constants, deepest_layer([], problem.style_layers),
                                      problem.pooling)
            features = [layers[load_vgg.feature_layer(name)] for name in problem.style_layers]
            gram_ops.append([(gram_matrix(layer), int(layer.shape[1]) * int(layer.shape[2])) for layer in features])
        with tf.Session(graph=graph, config=ONE_RUN_CONFIG) as sess:
            gram_fetches = [[gram for gram, _ in ops] for ops in gram_ops]
            content_features, grams = sess.run([content_ops, gram_fetches], feeds)
    if style_grams is None:
        style_grams = []
        for index, name in enumerate(problem.style_layers):
            height, width = load_vgg.layer_size(problem.width, problem.height, load_vgg.feature_layer(name))
            style_grams.append(sum(blend * grams[style][index] * (height * width / gram_ops[style][index][1])
                                   for style, blend in enumerate(problem.style_blend_weights)))
    return Targets(content_features, style_grams)


def style_key(problem):
    """What the style Gram targets depend on: runs that agree on it share them."""
    return json.dumps([problem.style, problem.style_blend_weights, problem.style_scale, problem.width,
                       problem.height, problem.pooling, problem.style_layers, problem.weights])


def initial_image(problem, content_image, style_image, mean_pixel):
    """The starting image in mean-subtracted space. CS20's: 0.6 × uniform noise in [-20, 20] + 0.4 × content.

    style_image: the first style image fitted to the output size (for --init style; else unused).
    """
    noise = np.random.default_rng(problem.seed).uniform(-20, 20, (problem.height, problem.width, 3))
    start = {"noise": lambda: problem.noise_ratio * noise + (1 - problem.noise_ratio) * (content_image - mean_pixel),
             "content": lambda: content_image - mean_pixel,
             "style": lambda: style_image - mean_pixel,
             "random": lambda: noise}[problem.init]()
    return start.astype(np.float32)[np.newaxis]


@dataclass
class StepReport:
    step: int  # the global step after this step's update
    losses: dict  # name -> loss of the image this step started from
    summary: bytes  # serialized loss summaries, on log steps only (else None)
    seconds: float  # wall time of the step
    image: np.ndarray = None  # the image the losses belong to (mean-subtracted), when asked for


class StyleTransfer:
    """The training graph: one trainable variable, the generated image, and the losses that shape it."""

    def __init__(self, problem, weights, targets, start_image):
        self.problem = problem
        self.weights = weights
        self.targets = targets
        self.start_image = start_image
        self.graph = tf.Graph()

    def build(self):
        with self.graph.as_default():
            self.create_input()
            self.load_vgg()
            self.losses()
            self.optimize()
            self.create_summary()
        return self

    def create_input(self):
        # The image lives in mean-subtracted space: the network's own input space.
        self.image = tf.get_variable("generated_image", initializer=self.start_image, trainable=True)
        self.pixels = tf.clip_by_value(self.image + self.weights.mean_pixel, 0.0, 255.0, name="pixels")
        self.global_step = tf.train.get_or_create_global_step()

    def load_vgg(self):
        constants = load_vgg.weight_constants(self.weights)
        deepest = deepest_layer(self.problem.content_layers, self.problem.style_layers)
        self.layers = load_vgg.vgg_net(self.image, constants, deepest, self.problem.pooling)

    def losses(self):
        problem = self.problem
        with tf.name_scope("losses"):
            self.content_loss = tf.add_n([tf.constant(0.0)] + [
                content_loss(self.layers[load_vgg.feature_layer(name)], target)
                for name, target in zip(problem.content_layers, self.targets.content_features)])
            self.style_layer_losses = {
                name: style_layer_loss(self.layers[load_vgg.feature_layer(name)], gram)
                for name, gram in zip(problem.style_layers, self.targets.style_grams)}
            self.style_loss = tf.add_n([weight * self.style_layer_losses[name] for name, weight
                                        in zip(problem.style_layers, problem.style_layer_weights)])
            self.total_loss = problem.content_weight * self.content_loss + problem.style_weight * self.style_loss
            if problem.tv_weight:  # sum of |differences| between neighbouring pixels
                self.tv_loss = tf.reduce_sum(tf.image.total_variation(self.image))
                self.total_loss += problem.tv_weight * self.tv_loss

    def optimize(self):
        if self.problem.optimizer == "adam":
            # A copy of the image the losses are computed on, taken before Adam updates it in place: 1 MB a
            # step at 333x250, fetched only with --keep-best.
            self.image_before_step = tf.raw_ops.DeepCopy(x=self.image)
            self.optimizer = tf.train.AdamOptimizer(self.problem.learning_rate)
            with tf.control_dependencies([self.image_before_step]):
                self.train_op = self.optimizer.minimize(self.total_loss, global_step=self.global_step,
                                                        var_list=[self.image])
        else:  # scipy's L-BFGS-B drives: it feeds an image in and gets the loss and its gradient back
            self.gradient = tf.gradients(self.total_loss, [self.image])[0]
            self.count_step = tf.assign_add(self.global_step, 1)
            self.new_image = tf.placeholder(tf.float32, self.image.shape)
            self.set_image = tf.assign(self.image, self.new_image)

    def create_summary(self):
        self.loss_tensors = {"total_loss": self.total_loss, "style_loss": self.style_loss}
        if self.problem.content is not None:
            self.loss_tensors["content_loss"] = self.content_loss
        if self.problem.tv_weight:
            self.loss_tensors["tv_loss"] = self.tv_loss
        self.loss_tensors.update({f"style_loss/{name}": loss for name, loss in self.style_layer_losses.items()})
        self.loss_summary = tf.summary.merge([tf.summary.scalar(name, loss)
                                              for name, loss in self.loss_tensors.items()])
        self.image_summary = tf.summary.image("generated", tf.cast(tf.round(self.pixels), tf.uint8))
        record = json.dumps(self.problem.as_record(), indent=2)
        self.config_summary = tf.summary.text("configuration", tf.constant("```\n" + record + "\n```"))

    def train(self, sess, last_step, log_every, with_images=False, log_first=False):
        """Take steps until the global step is last_step, yielding a StepReport after each.

        Loss summaries come with every log_every-th step, step 1, the last, and with log_first the first one
        taken here; from the same sess.run as the step itself: no second forward pass.
        with_images: each report carries the image its losses belong to.
        """
        first = int(sess.run(self.global_step)) + 1 if log_first else 1
        steps = self._adam_steps if self.problem.optimizer == "adam" else self._lbfgs_steps
        return steps(sess, last_step, lambda step: step % log_every == 0 or step in (1, first, last_step), with_images)

    def _fetches(self, with_image=False):
        # The same fetches every step, summaries included (microseconds): each distinct set of fetches gets
        # its own executor in TensorFlow, with its own copy of the weights (measured: +180 MB).
        fetches = {"losses": self.loss_tensors, "summary": self.loss_summary}
        if with_image:
            fetches["image"] = self.image_before_step
        return fetches

    def _adam_steps(self, sess, last_step, is_log_step, with_images):
        step = int(sess.run(self.global_step))
        while step < last_step:
            step += 1  # what train_op makes the global step (read in the same run, it could be either value)
            started = time.perf_counter()
            result = sess.run({"train": self.train_op, **self._fetches(with_images)})
            yield StepReport(step, result["losses"], result["summary"] if is_log_step(step) else None,
                             time.perf_counter() - started, result.get("image"))

    def _lbfgs_steps(self, sess, last_step, is_log_step, with_images):
        """scipy's L-BFGS-B, one loss-and-gradient evaluation per step, as a generator of StepReports.

        scipy's minimize runs its own loop and calls us back, so it runs in a worker thread that hands each
        step's report over and waits until the consumer asks for the next one. The image variable always
        holds the best image evaluated so far, which is what checkpoints and outputs save. A resumed run
        restarts L-BFGS's memory from that image.
        """
        step = int(sess.run(self.global_step))
        best = {"loss": math.inf, "image": sess.run(self.image)}
        handover, go_on = queue.Queue(), queue.Queue()  # reports to the consumer; "go" or "stop" to the worker

        def loss_and_gradient(flat_image):
            nonlocal step
            if step >= last_step or go_on.get() == "stop":
                raise _StopOptimizer
            step += 1
            image = flat_image.reshape(best["image"].shape).astype(np.float32)
            started = time.perf_counter()
            result = sess.run({"gradient": self.gradient, "count": self.count_step, **self._fetches()},
                              {self.image: image})
            loss = float(result["losses"]["total_loss"])
            if loss < best["loss"]:
                best.update(loss=loss, image=image)
                sess.run(self.set_image, {self.new_image: image})
            summary = result["summary"] if is_log_step(step) else None
            handover.put(StepReport(step, result["losses"], summary, time.perf_counter() - started,
                                    image if with_images else None))
            return loss, result["gradient"].ravel().astype(np.float64)

        def optimize():
            try:
                scipy.optimize.minimize(loss_and_gradient, best["image"].ravel().astype(np.float64), jac=True,
                                        method="L-BFGS-B", options={"maxfun": last_step - step + 1,
                                                                    "maxiter": last_step - step + 1})
            except _StopOptimizer:
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


class _StopOptimizer(Exception):
    """Raised inside scipy's loop to end it: out of steps, or the consumer stopped."""


def graph_without_weights(graph):
    """The GraphDef with large constants' values dropped: TensorBoard shows the structure, not 80 MB."""
    graph_def = graph.as_graph_def(add_shapes=True)
    for node in graph_def.node:
        if node.op == "Const" and len(node.attr["value"].tensor.tensor_content) > 1024:
            node.attr["value"].tensor.ClearField("tensor_content")
    return graph_def


# ---------------------------------------------------------------------------------------------------
# 5. Run: restore or start, then the loop with its checkpoints, images, summaries and progress.

class StopSignals:
    """Turns SIGINT and SIGTERM into a flag the loop reads between steps."""

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


class Checkpoints:
    """The checkpoint folder: a Saver without MetaGraphs, restore with fallback, and the run record."""

    def __init__(self, folder, keep):
        self.folder = folder
        self.prefix = os.path.join(folder, "ckpt")
        self.saver = tf.train.Saver(max_to_keep=keep, save_relative_paths=True)

    def restore(self, sess):
        """Restore the latest readable checkpoint; return its step, or None if there is none."""
        state = tf.train.get_checkpoint_state(self.folder)
        paths = list(state.all_model_checkpoint_paths) if state else []
        for index in reversed(range(len(paths))):
            try:
                self.saver.restore(sess, paths[index])
            except (tf.errors.OpError, ValueError) as error:
                reason = " ".join(str(error).split())[:200]
                print(f"warning: checkpoint {paths[index]} cannot be read ({reason}); trying the one before",
                      file=sys.stderr)
                continue
            self.saver.recover_last_checkpoints(paths[:index + 1])
            return int(sess.run(tf.train.get_global_step()))
        if paths:
            raise UsageError(f"no checkpoint in {self.folder} can be read: pass --restart to start over")
        return None

    def carry_on(self):
        """Go on rotating the checkpoints already in the folder (a new scale's Saver starts knowing none)."""
        state = tf.train.get_checkpoint_state(self.folder)
        self.saver.recover_last_checkpoints(list(state.all_model_checkpoint_paths) if state else [])

    def clear(self):
        """Remove this tool's checkpoint files (for --restart)."""
        for path in glob.glob(self.prefix + "-*") + [os.path.join(self.folder, name)
                                                    for name in ("checkpoint", RUN_RECORD, BEST_RECORD)]:
            if os.path.exists(path):
                os.remove(path)

    def record(self, problem):
        """Start the folder's record of a new run (and forget an earlier run's best image)."""
        utils.write_text_atomically(os.path.join(self.folder, RUN_RECORD),
                                    json.dumps(problem.as_record(), indent=2) + "\n")
        if os.path.exists(os.path.join(self.folder, BEST_RECORD)):
            os.remove(os.path.join(self.folder, BEST_RECORD))

    def best(self):
        """(loss, step) of the best image this run has written, or (inf, None)."""
        try:
            with open(os.path.join(self.folder, BEST_RECORD)) as file:
                record = json.load(file)
            return float(record["loss"]), int(record["step"])
        except (OSError, ValueError, KeyError, TypeError):
            return math.inf, None

    def record_best(self, loss, step):
        utils.write_text_atomically(os.path.join(self.folder, BEST_RECORD),
                                    json.dumps({"loss": loss, "step": step}) + "\n")

    def save(self, sess, step):
        return self.saver.save(sess, self.prefix, global_step=step, write_meta_graph=False)

    @contextlib.contextmanager
    def saving(self, step, what=None):
        """Turn a failed write (a full disk, say) into one line saying what is still intact."""
        try:
            yield
        except (OSError, tf.errors.OpError) as error:
            latest = tf.train.latest_checkpoint(self.folder)
            if latest is None or not latest.endswith(f"-{step}"):  # drop what the failed save left
                for leftover in glob.glob(f"{self.prefix}-{step}.*") + glob.glob(f"{self.prefix}-{step}_temp*"):
                    shutil.rmtree(leftover) if os.path.isdir(leftover) else os.remove(leftover)
            reason = getattr(error, "strerror", None) or getattr(error, "message", None) or str(error)
            intact = f"checkpoint {latest} is intact" if latest else "no checkpoint was written"
            raise UsageError(f"could not write {what or f'the checkpoint and image of step {step}'} "
                             f"({' '.join(str(reason).split())[:200]}); {intact}, and earlier images are unchanged: "
                             f"free some space and run the same command to resume") from None


def event_files(log_dir):
    return sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*")))


def truncate_events(log_dir, last_step):
    """Drop events after last_step (written before a crash) so a resumed run continues one curve."""
    for path in event_files(log_dir):
        kept, dropped = [], False
        try:
            for event in tf.train.summary_iterator(path):
                if event.step > last_step:
                    dropped = True
                else:
                    kept.append(event)
        except tf.errors.DataLossError:  # a record cut short by the crash
            dropped = True
        if dropped:
            with utils.atomic_output(path) as temporary:
                with tf.io.TFRecordWriter(temporary) as writer:
                    for event in kept:
                        writer.write(event.SerializeToString())


def archive_events(log_dir):
    """Move an earlier run's event files into a subfolder: TensorBoard shows it as a run of its own."""
    files = event_files(log_dir)
    if files:
        archive = os.path.join(log_dir, time.strftime("replaced-%Y%m%d-%H%M%S"))
        os.makedirs(archive, exist_ok=True)
        for path in files:
            os.replace(path, os.path.join(archive, os.path.basename(path)))


def format_duration(seconds):
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def progress_line(report, last_step, seconds_per_step, steps_left):
    """steps_left: the steps still to take, counted in steps of the current size."""
    losses = "  ".join(f"{name.replace('_loss', '')} {report.losses[name]:.4g}"
                       for name in ("total_loss", "content_loss", "style_loss", "tv_loss") if name in report.losses)
    left = format_duration(seconds_per_step * steps_left)
    step = f"{report.step:>{len(str(last_step))}}/{last_step}"
    return f"step {step}  {losses}  {seconds_per_step:.3f} s/step  {left} left"


def steps_left(scales, index, step):
    """The steps after `step` to --iterations, in steps of scales[index]: a step's time goes with its pixels."""
    here = scales[index]
    later = sum((scale.last_step - before.last_step) * scale.width * scale.height / (here.width * here.height)
                for before, scale in zip(scales[index:], scales[index + 1:]))
    return here.last_step - step + later


def start_or_resume(sess, checkpoints, model, job, args, first_step, resume):
    """Restore the run in the checkpoint folder, start a new one there, or carry it on at its next scale from
    first_step (the image is the previous scale's, upsampled); return the step the loop starts from."""
    restored_step = checkpoints.restore(sess) if resume else None
    if restored_step is not None:
        truncate_events(args.log_dir, restored_step)
        print(f"Resuming from step {restored_step} (checkpoint in {args.checkpoint_dir})", flush=True)
        return restored_step
    sess.run(tf.global_variables_initializer())  # at a new scale, Adam's moments too start afresh
    if first_step == 0:
        if args.restart:
            checkpoints.clear()
        checkpoints.record(job.problem)
        archive_events(args.log_dir)
        print(f"Starting a new run in {args.checkpoint_dir}", flush=True)
    else:
        model.global_step.load(first_step, sess)
        checkpoints.carry_on()
    return first_step


class Outputs:
    """What a run writes: summaries, checkpoints and images. The training loop reports; this writes."""

    def __init__(self, sess, model, checkpoints, args, fresh, content_image, keep_best):
        self.sess, self.model, self.checkpoints, self.args = sess, model, checkpoints, args
        self.keep_best = keep_best  # --keep-best, at the output size (losses at other scales do not compare)
        self.content_image = content_image  # for --preserve-colors
        self.writer = tf.summary.FileWriter(args.log_dir)
        if fresh:  # the graph and the configuration, once per run
            self.writer.add_graph(None, graph_def=graph_without_weights(model.graph))
            self.writer.add_summary(sess.run(model.config_summary), 0)
        stem, extension = os.path.splitext(args.output)
        self.best_path = f"{stem}-best{extension}"  # --keep-best
        self.best_loss, self.best_step = checkpoints.best()
        self.best_image = None  # a better image than the one at best_path, not yet written

    def consider(self, report):
        """--keep-best: remember the report's image if its loss is the lowest yet."""
        loss = float(report.losses["total_loss"])
        if loss < self.best_loss:
            self.best_loss, self.best_step, self.best_image = loss, report.step, report.image

    def log(self, report, line):
        self.writer.add_summary(report.summary, report.step)
        if self.keep_best:
            best = tf.Summary(value=[tf.Summary.Value(tag="best_total_loss", simple_value=self.best_loss)])
            self.writer.add_summary(best, report.step)
            line += f"  best {self.best_loss:.4g} (step {self.best_step})"
        print(line, flush=True)

    def write_best(self):
        if self.best_image is not None:
            pixels = np.clip(self.best_image[0] + self.model.weights.mean_pixel, 0, 255)
            utils.save_image(self.best_path, self.shown(pixels))
            self.checkpoints.record_best(self.best_loss, self.best_step)
            self.best_image = None

    def save(self, step):
        """The image as <output-dir>/<step>.png and in TensorBoard, then the checkpoint; return both paths."""
        image_path = os.path.join(self.args.output_dir, f"{step}.png")
        with self.checkpoints.saving(step):
            pixels, image_summary = self.sess.run([self.model.pixels, self.model.image_summary])
            utils.save_image(image_path, self.shown(pixels[0]))
            self.writer.add_summary(image_summary, step)
            self.writer.flush()  # events up to this step are on disk before the checkpoint that says we got here
            self.write_best()
            return self.checkpoints.save(self.sess, step), image_path

    def finish(self, step):
        self.writer.close()
        with self.checkpoints.saving(step, what=f"the final image {self.args.output}"):
            utils.save_image(self.args.output, self.shown(self.sess.run(self.model.pixels)[0]))
            self.write_best()

    def shown(self, pixels):
        """The image as saved: with the content's colours under --preserve-colors."""
        return utils.with_colors_of(pixels, self.content_image) if self.args.preserve_colors else pixels


@dataclass(frozen=True)
class Scale:
    """One size the image is optimised at, and the step at which that ends."""
    width: int
    height: int
    last_step: int


def scales_of(problem, iterations):
    """The run's sizes in order: --scales of the output size, each for its --scale-steps; the last to iterations."""
    ends = [*itertools.accumulate(problem.scale_steps), iterations]
    return [Scale(max(1, round(problem.width * scale)), max(1, round(problem.height * scale)), end)
            for scale, end in zip(problem.scales, ends)]


def checkpoint_step(checkpoint_dir):
    """The step of the latest checkpoint in checkpoint_dir (from its name, ckpt-<step>), or None."""
    state = tf.train.get_checkpoint_state(checkpoint_dir)
    found = re.search(r"-(\d+)$", state.model_checkpoint_path) if state else None
    return int(found.group(1)) if found else None


def run(job, args, style_grams=None):
    """Train to args.iterations, scale by scale; return the exit code (0, or 128 + the signal that stopped it).

    style_grams: {style_key: Gram targets} shared by the runs of one process; filled in here.
    """
    style_grams = {} if style_grams is None else style_grams
    scales = scales_of(job.problem, args.iterations)
    restored_step = checkpoint_step(args.checkpoint_dir) if job.resume else None
    first = 0 if restored_step is None else next(
        (index for index, scale in enumerate(scales) if restored_step <= scale.last_step), len(scales) - 1)
    for folder in output_folders(args):
        os.makedirs(folder, exist_ok=True)
    image = None  # the previous scale's result
    for index in range(first, len(scales)):
        resume = restored_step is not None and index == first
        code, step, image, outputs = run_scale(job, args, scales, index, style_grams, resume, previous_image=image)
        if code:
            return code
    if args.keep_best:
        print(f"Best: loss {outputs.best_loss:.4g} at step {outputs.best_step}, image {outputs.best_path}", flush=True)
    print(f"Done: step {step}; image {args.output}; checkpoints in {args.checkpoint_dir}; "
          f"TensorBoard: tensorboard --logdir {args.log_dir}", flush=True)
    return 0


def run_scale(job, args, scales, index, style_grams, resume, previous_image):
    """Optimise at scales[index] up to its last step; return (exit code, step, image reached, its Outputs)."""
    scale, is_last = scales[index], index == len(scales) - 1
    problem = job.problem.at_size(scale.width, scale.height)
    content_image, style_images = (job.content_image, job.style_images) if is_last else \
        input_images(args, scale.width, scale.height)
    key = style_key(problem)
    targets = style_targets(job.weights, problem, content_image, style_images, style_grams.get(key))
    style_grams[key] = targets.style_grams
    if previous_image is None:
        fitted_style = utils.load_image(args.style[0], scale.width, scale.height, "style image") \
            if problem.init == "style" else None
        start_image = initial_image(problem, content_image, fitted_style, job.weights.mean_pixel)
    else:
        start_image = utils.resized(previous_image[0], scale.width, scale.height)[np.newaxis]
    model = StyleTransfer(problem, job.weights, targets, start_image).build()
    first_step = scales[index - 1].last_step if index else 0
    if len(scales) > 1 and not resume:
        print(f"Scale {index + 1}/{len(scales)}: {scale.width}x{scale.height}, steps {first_step + 1} to "
              f"{scale.last_step}", flush=True)

    with model.graph.as_default(), tf.Session(graph=model.graph, config=SESSION_CONFIG) as sess:
        checkpoints = Checkpoints(args.checkpoint_dir, args.keep)
        step = saved_step = start_or_resume(sess, checkpoints, model, job, args, first_step, resume)
        model.graph.finalize()  # nothing below may grow the graph
        outputs = Outputs(sess, model, checkpoints, args, fresh=step == 0, content_image=content_image,
                          keep_best=args.keep_best and is_last)
        timings = []  # seconds per step in this process
        with StopSignals() as stop:
            for report in model.train(sess, scale.last_step, args.log_every, with_images=outputs.keep_best,
                                      log_first=not resume):  # where a new scale starts
                step = report.step
                timings.append(report.seconds)
                if outputs.keep_best:
                    outputs.consider(report)
                if report.summary is not None:
                    recent = timings[1:][-args.log_every:] or timings  # the process's first step warms up
                    outputs.log(report, progress_line(report, args.iterations, sum(recent) / len(recent),
                                                      steps_left(scales, index, step)))
                if step % args.save_every == 0 or step == scale.last_step or stop.received:
                    checkpoint_path, image_path = outputs.save(step)
                    saved_step = step
                if stop.received:
                    outputs.writer.close()
                    print(f"Stopped by {signal.Signals(stop.received).name} at step {step}: checkpoint "
                          f"{checkpoint_path}, image {image_path}. Run the same command to resume.", flush=True)
                    return 128 + stop.received, step, None, outputs
        if step != saved_step:  # L-BFGS converged before the scale's last step
            print(f"L-BFGS converged at step {step}", flush=True)
            outputs.save(step)
        if is_last:
            outputs.finish(step)
        else:
            outputs.writer.close()
        return 0, step, sess.run(model.image), outputs


def main(argv=None):
    args = parse_args(argv)
    try:
        jobs = prepare_all(args)
        style_grams = {}
        for job, job_args in jobs:
            if len(jobs) > 1:
                print(f"== {job_args.content}: images in {job_args.output_dir}", flush=True)
            code = run(job, job_args, style_grams)
            if code:
                return code
        return 0
    except UsageError as error:
        print(f"style_transfer.py: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("style_transfer.py: interrupted before the first step; nothing was saved", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
