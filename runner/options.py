"""The command line: every option, its default and its help, in one place; argparse only, no files read.

parse_args returns the options checked against each other (a bad value is one line on stderr, exit code 2).
runner.inputs turns them into typed work and jobs; nothing past that reads or changes the options. An option whose
default depends on what else is given (a film's --frame-steps, say) defaults to None here, so that runner.inputs
can tell it was given, and the helpers at the end of this file give its value.
"""

import argparse
import math
import os

DEFAULT_SCALE_STEPS = 100  # steps at each scale before the last
# --fast: L-BFGS coarse to fine. bench/bench.py --optimizers: below the loss of CS20's 300 Adam steps at 333x250 and
# 1024x768, in 0.136 and 0.062 of their time. Evaluations at an eighth of the size cost almost nothing and leave
# the full size fewer to do: 7 there, where three scales needed 10 (and passed the goal at 1024 wide by 1.4%).
FAST = {"optimizer": "lbfgs", "scales": [0.125, 0.25, 0.5, 1.0], "scale_steps": [20], "iterations": 67}
DEFAULT_TILE_OVERLAP = 64
DEFAULT_TEMPORAL_WEIGHT = 1e3  # bench/bench.py --video: a tenth of frame-by-frame flicker, at no extra time


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
frame_rate = _checked(_finite_number, lambda value: 0.1 <= value <= 1000, "from 0.1 to 1000 frames a second "
                      "(what the video encoder takes)")
non_negative_float = _checked(_finite_number, lambda value: value >= 0, "0 or more")
fraction = _checked(_finite_number, lambda value: 0 <= value <= 1, "between 0 and 1")


def blend_weights(text):
    """A --style-blend-weights entry: a weight, or a comma-separated weight per style layer (a tuple)."""
    values = tuple(non_negative_float(part) for part in text.split(","))
    return values[0] if len(values) == 1 and "," not in text else values


def shard_spec(text):
    """--shard INDEX/COUNT, as (index, count)."""
    index, _, count = text.partition("/")
    try:
        index, count = int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not INDEX/COUNT, e.g. 0/4") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"{text}: INDEX must run from 0 to COUNT - 1")
    return index, count


def checkpoint_folder(text):
    """--checkpoint-dir: a folder whose name TensorFlow will not read as a pattern (it finds a checkpoint's files by
    glob, so ck/run[1] would read, and could not resume from, ck/run1's)."""
    if any(character in text for character in "*?[]"):
        raise argparse.ArgumentTypeError(f"{text!r}: TensorFlow reads a checkpoint folder's name as a pattern, so "
                                         f"it may not hold * ? [ or ]; choose another name")
    return text


def frame_range(text):
    """--frames A:B (frame numbers counted from 1, both kept; A: or :B leave one end open), as (A, B or None)."""
    first, colon, last = text.partition(":")
    try:
        first, last = int(first or 1), int(last) if last else None
    except ValueError:
        first = None
    if not colon or first is None or first < 1 or (last is not None and last < first):
        raise argparse.ArgumentTypeError(f"{text!r} is not FIRST:LAST, frame numbers from 1 (e.g. 1:48, 100:)")
    return first, last


def as_command_line(settings):
    """{"scale_steps": [20], ...} as "--scale-steps 20 ..."."""
    return " ".join(f"--{name.replace('_', '-')} " + " ".join(map(str, value if isinstance(value, list) else [value]))
                    for name, value in settings.items())


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
                       help="content image; or several: image files, folders of them, text files listing image "
                            "paths, TFRecord files or globs (data-*.tfrecord); each item gets its own subfolder of "
                            "--checkpoint-dir, --log-dir and --output-dir, named after it")
    files.add_argument("--style", nargs="+", default=[os.path.join("styles", "guernica.jpg")],
                       help="style image, or several to blend; with --content-mask, one per region (`none` for a "
                            "region that keeps the content)")
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
    problem.add_argument("--style-blend-weights", nargs="+", type=blend_weights,
                         help="with several styles: one weight each, normalised to sum 1 (default: equal); or one "
                              "comma-separated list each, a weight per style layer (e.g. 1,1,0,0,0 0,0,1,1,1: the fine "
                              "scales from the first style, the coarse from the second)")
    problem.add_argument("--style-scale", nargs="+", type=positive_float,
                         help="keep each style image's own aspect and make it this many times the output's width: one "
                              "value for all, or one per style (default: fit it to the output size, as CS20)")
    problem.add_argument("--color-control", choices=["luminance", "match"],
                         help="keep the content's colours (Gatys et al. 2017): luminance, transfer the style in "
                              "luminance only and put the content's colours back; match, recolour the style images "
                              "with the content's colours first")
    problem.add_argument("--content-mask", metavar="MASK",
                         help="regions of the output, one per grey level (or palette colour) of this image, darkest "
                              "first: region i takes the style of the i-th --style (a folder: a mask per item, named "
                              "as its content image)")
    problem.add_argument("--style-mask", nargs="+", metavar="MASK",
                         help="for each --style, the part of it its statistics come from: white takes, black does "
                              "not (`all` for the whole image)")
    problem.add_argument("--mask-propagation", choices=["simple", "inside"],
                         help="how a mask reaches each layer: simple, pooled as the image is; inside, eroded so "
                              "that a position counts for a region only where all it sees lies inside it "
                              "(default: simple)")
    problem.add_argument("--content-weight", type=non_negative_float, default=0.01, help="weight of the content loss")
    problem.add_argument("--style-weight", type=non_negative_float, default=1.0, help="weight of the style loss")
    problem.add_argument("--tv-weight", type=non_negative_float, default=0.0,
                         help="weight of a total-variation loss, which smooths the result (CS20: none)")
    problem.add_argument("--style-loss", choices=["gram", "mean-std", "w2"], default="gram",
                         help="what the style losses match at each style layer: the Gram matrices (CS20), the "
                              "channels' means and standard deviations, or the features' mean and covariance "
                              "(the 2-Wasserstein distance between Gaussians)")
    problem.add_argument("--pooling", choices=["avg", "max"], default="avg", help="VGG's pooling")
    problem.add_argument("--init", choices=["noise", "content", "style", "random"],
                         help="the starting image: noise mixed into the content (the default, as CS20), the "
                              "content, the style, or noise alone (the default with --texture)")
    problem.add_argument("--noise-ratio", type=fraction, default=0.6,
                         help="with --init noise: the share of noise (uniform in [-20, 20]) in the mix")
    problem.add_argument("--texture", action="store_true",
                         help="texture synthesis: no content image, only the style, from noise")
    problem.add_argument("--fast", action="store_true",
                         help=f"the quickest route the benchmark knows to the CS20 defaults' loss: "
                              f"{as_command_line(FAST)}, and --precision bf16 where the processor has it "
                              f"(options given explicitly win)")
    problem.add_argument("--optimizer", choices=["adam", "lbfgs"], default="adam",
                         help="adam, as CS20; or scipy's L-BFGS-B (one step = one loss-and-gradient evaluation)")
    problem.add_argument("--lr", type=positive_float, default=2.0, help="Adam's learning rate")
    problem.add_argument("--adam-across-scales", choices=["restart", "carry"], default="restart",
                         help="with Adam and --scales: start Adam afresh at each scale, or carry its moments (resized "
                              "with the image) and its bias correction on to the next")
    problem.add_argument("--average", type=_checked(_finite_number, lambda value: 0 < value < 1, "between 0 and 1"),
                         metavar="DECAY",
                         help="with Adam: save and show an exponential moving average of the steps' images (e.g. "
                              "0.99), which is steadier than the last step's; kept in the checkpoints")
    problem.add_argument("--scales", nargs="+", type=positive_float, default=[1.0],
                         help="optimise coarse to fine: at these fractions of the output size in turn (e.g. 0.25 "
                              "0.5 1, rising, ending at 1), each result upsampled to start the next")
    problem.add_argument("--scale-steps", nargs="+", type=positive_int,
                         help="with --scales: the steps at each scale but the last, one number for all or one "
                              "per scale (default: 100); the last scale takes the steps left up to --iterations")
    problem.add_argument("--precision", choices=["fp32", "bf16"],
                         help="what the network computes in: fp32 (CS20), or bfloat16, about twice as fast where the "
                              "processor has it (avx512_bf16 or AMX; a GPU from Ampere on) and much slower where it "
                              "does not; the image, Gram matrices, losses and optimiser stay fp32 (default: fp32; "
                              "with --fast, bf16 where the processor has it)")
    problem.add_argument("--seed", type=non_negative_int, default=0, help="seed of the initial noise")

    schedule = parser.add_argument_group("how long, and what is written (may change when resuming)")
    schedule.add_argument("--iterations", type=positive_int, default=300, help="train up to this step")
    schedule.add_argument("--save-every", type=positive_int, default=20, help="checkpoint and image every N steps")
    schedule.add_argument("--log-every", type=positive_int, default=10,
                          help="summaries and a progress line every N steps")
    schedule.add_argument("--keep", type=positive_int, default=3, help="how many checkpoints to keep")
    schedule.add_argument("--checkpoint-dir", type=checkpoint_folder, default=os.path.join("checkpoints",
                                                                                          "style_transfer"),
                          help="checkpoints and the run record")
    schedule.add_argument("--log-dir", default=os.path.join("graphs", "style_transfer"), help="TensorBoard logs")
    schedule.add_argument("--output-dir", default="outputs", help="the image at each checkpoint, as STEP.png")
    schedule.add_argument("--output", help="the final image (default: final.png in --output-dir)")
    schedule.add_argument("--preserve-colors", action="store_true",
                          help="save images with the content's colours: the result's luminance, the content's chroma")
    schedule.add_argument("--keep-best", action="store_true",
                          help="also write the lowest-loss image seen, as <output>-best.png (Adam's loss can rise "
                               "again late in a run)")
    many = parser.add_argument_group("many items (see runner/batch.py)")
    many.add_argument("--shard", type=shard_spec,
                      help="INDEX/COUNT: run items INDEX, INDEX+COUNT, ... of the sorted items (default: from a Slurm "
                           "job array, or JOB_COMPLETION_INDEX with --shard-count, else all)")
    many.add_argument("--shard-count", type=positive_int,
                      help="with a Kubernetes Indexed Job: the number of shards (the Job's completions)")
    many.add_argument("--output-tfrecord", metavar="PREFIX",
                      help="also write the finished items as PREFIX-<INDEX>-of-<COUNT>.tfrecord (image/encoded PNG, "
                           "image/filename, ...)")
    film = parser.add_argument_group("films (see runner/video.py)")
    film.add_argument("--video", action="store_true",
                      help="--content folders are films, one frame per image file (a video file is always a film)")
    film.add_argument("--fps", type=frame_rate,
                      help="a folder's frame rate (default 25; a video file keeps its own)")
    film.add_argument("--frames", type=frame_range, metavar="FIRST:LAST",
                      help="stylise only these frames, numbered from 1 (e.g. 1:48)")
    film.add_argument("--frame-steps", type=positive_int,
                      help="steps of each frame after the first, which starts from the previous one warped "
                           "(default: half of --iterations, which frame 1 takes)")
    film.add_argument("--temporal-weight", type=non_negative_float,
                      help="weight of the temporal loss, which keeps each frame where the previous one moved to "
                           f"(default: {DEFAULT_TEMPORAL_WEIGHT:g})")
    large = parser.add_argument_group("large images (see runner/tiles.py)")
    large.add_argument("--tile", type=_checked(_whole_number, lambda value: value >= 32, "at least 32"),
                       metavar="SIZE",
                       help="refine the full-size image in overlapping tiles of SIZE x SIZE pixels, after --scales "
                            "(default: only when the whole image would not fit in memory; the tile size is then "
                            "chosen, and a coarse scale added if --scales gives none)")
    large.add_argument("--tile-overlap", type=positive_int,
                       help="pixels by which neighbouring tiles overlap: a tile sees there what its neighbour decided, "
                            "up to the seam midway "
                            f"(default: {DEFAULT_TILE_OVERLAP}, or a quarter of the tile if that is less)")
    schedule.add_argument("--restart", action="store_true",
                          help="start over, replacing the checkpoint in --checkpoint-dir")
    args = parser.parse_args(argv)
    if args.fast:  # new defaults; what the user gave explicitly still wins
        parser.set_defaults(**FAST)
        args = parser.parse_args(argv)
    check_styles(parser, args)
    if args.scales[-1] != 1 or any(low >= high for low, high in zip(args.scales, args.scales[1:])):
        parser.error(f"--scales {' '.join(map(str, args.scales))}: give fractions of the output size that rise "
                     f"and end at 1, e.g. 0.25 0.5 1")
    coarse_scales = len(args.scales) - 1
    if args.scale_steps is not None and not coarse_scales:
        parser.error("--scale-steps needs several --scales (e.g. --scales 0.25 0.5 1)")
    if args.scale_steps is not None and len(args.scale_steps) not in (1, coarse_scales):
        parser.error(f"--scale-steps has {len(args.scale_steps)} values for {coarse_scales} scales before the last: "
                     f"give one for all, or one each")
    if sum(coarse_scale_steps(args)) >= args.iterations:
        parser.error(f"--iterations {args.iterations} leaves no step for the last scale, which starts after step "
                     f"{sum(coarse_scale_steps(args))}: raise --iterations or lower --scale-steps")
    if args.tile is not None and args.tile_overlap and args.tile_overlap * 2 > args.tile:
        parser.error(f"--tile-overlap {args.tile_overlap} is more than half of --tile {args.tile}: lower it, or "
                     f"raise --tile")
    if args.average is not None and args.optimizer != "adam":
        parser.error("--average DECAY averages Adam's steps: with --optimizer lbfgs (or --fast) drop it")
    if args.adam_across_scales == "carry" and (args.optimizer != "adam" or len(args.scales) == 1):
        parser.error("--adam-across-scales carry carries Adam's state from one of several --scales to the next: "
                     "give --scales (and Adam), or drop it")
    if args.average is not None and args.keep_best:
        parser.error("--keep-best keeps the step with the lowest loss, and --average saves an average of the steps: "
                     "drop one")
    if len(args.style_layer_weights) != len(args.style_layers):
        parser.error(f"--style-layer-weights has {len(args.style_layer_weights)} values for "
                     f"{len(args.style_layers)} --style-layers")
    return args


def check_styles(parser, args):
    """The style options against each other: blends, scales, `none`, masks."""
    styles, layers = len(args.style), len(args.style_layers)
    blends = args.style_blend_weights
    if blends is not None:
        if len(blends) != styles:
            parser.error(f"--style-blend-weights has {len(blends)} values for {styles} --style")
        per_layer = [isinstance(entry, tuple) for entry in blends]
        if any(per_layer) and not all(per_layer):
            parser.error("--style-blend-weights: give a weight per style, or a list per style, not both")
        if all(per_layer) and any(len(entry) != layers for entry in blends):
            parser.error(f"--style-blend-weights: each list needs a weight per style layer ({layers})")
        columns = zip(*blends) if all(per_layer) else [blends]
        if any(sum(column) == 0 for column in columns):
            parser.error("--style-blend-weights are all 0 (at some layer): give at least one style some weight")
    if args.style_scale is not None and len(args.style_scale) not in (1, styles):
        parser.error(f"--style-scale has {len(args.style_scale)} values for {styles} --style: give one for all, or "
                     f"one each")
    unstyled = [style for style in args.style if style == "none"]
    if unstyled and not args.content_mask:
        parser.error("--style none is for a region of --content-mask without style: give a --content-mask, or "
                     "drop `none`")
    if len(unstyled) == styles:
        parser.error("every --style is none: give at least one style image")
    if args.style_mask is not None and len(args.style_mask) != styles:
        parser.error(f"--style-mask has {len(args.style_mask)} masks for {styles} --style: give one each (`all` for "
                     f"the whole image)")
    if args.style_mask is not None and any(style == "none" and mask != "all"
                                           for style, mask in zip(args.style, args.style_mask)):
        parser.error("--style-mask: a style `none` has no image to mask: give it `all`")
    if args.content_mask and blends is not None:
        parser.error("with --content-mask each region takes its own style image: drop --style-blend-weights")
    if args.mask_propagation and not (args.content_mask or args.style_mask):
        parser.error("--mask-propagation is for masks: give --content-mask or --style-mask, or drop it")
    if args.color_control and args.texture:
        parser.error(f"--color-control {args.color_control} takes the content's colours: drop it, or --texture")
    if args.init == "style" and args.style[0] == "none":
        parser.error("--init style starts from the first style image, and the first --style is none: put a style "
                     "image first, or choose another --init")


def frame_steps(args):
    """(frame 1's steps, each later frame's) of a film."""
    return args.iterations, args.frame_steps or max(1, args.iterations // 2)


def temporal_weight(args):
    """--temporal-weight, or its default (given only with a film: a still image refuses it)."""
    return DEFAULT_TEMPORAL_WEIGHT if args.temporal_weight is None else args.temporal_weight


def tile_overlap(args, tile):
    """--tile-overlap, or its default for tiles of `tile` pixels."""
    return args.tile_overlap or min(DEFAULT_TILE_OVERLAP, tile // 4)


def coarse_scale_steps(args):
    """--scale-steps as one step count per scale before the last (100 each when not given)."""
    steps = args.scale_steps or [DEFAULT_SCALE_STEPS]
    coarse_scales = len(args.scales) - 1
    return tuple(steps * coarse_scales if len(steps) == 1 else steps)
