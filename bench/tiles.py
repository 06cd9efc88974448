"""Benchmark of tiled runs (runner/tiles.py): a 3840x2160 result from 333x250 inputs on this machine, and what
tiling costs in loss at 1024x768.

    python bench/tiles.py                       # about 30 minutes on 2 cores; prints Markdown tables
    python bench/tiles.py --vgg imagenet-vgg-verydeep-19.mat --content deadpool.jpg --style guernica.jpg
    python bench/tiles.py --precisions fp32 bf16 --skip-1024     # the 4K result in both precisions

- 4K: style_transfer.py as a user runs it, given only --width 3840 --height 2160 (the memory estimate makes it
  tile by itself) and L-BFGS: whole-process time, peak RSS, and the seam figures: the mean gradient magnitude of
  the result within 2 pixels of a tile's edge inside the image, and within 2 pixels of a seam (where one tile's
  pixels meet another's, midway through their overlap), each against the rest (1.0: they do not show).
- 1024x768: the same command untiled and with --tile 512; each final image scored as a whole (its total loss at
  1024x768, one forward pass), with the seam figures.
"""

import json
import os
import sys
import tempfile
import time

import numpy as np
import scipy.ndimage
from PIL import Image

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)), os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
import load_vgg  # noqa: E402
import style_transfer  # noqa: E402
from bench import HERE, default_inputs, parser_with_inputs, print_table, timed_run  # noqa: E402
from runner import tiles  # noqa: E402
from runner.images import ImageFiles  # noqa: E402

RUN_RECORD = os.path.join("checkpoints", "style_transfer", "run.json")
FINAL = os.path.join("outputs", "final.png")


def seam_figure(pixels, near):
    """Mean gradient magnitude (of the grey image) where `near` ([height, width]) is True, against elsewhere."""
    magnitude = np.hypot(*np.gradient(pixels.astype(np.float64).mean(axis=2)))
    return magnitude[near].mean() / magnitude[~near].mean()


def near_tile_edges(width, height, layout, band=2):
    """[height, width]: within `band` pixels of a tile's edge inside the image (where a tile's start picture
    changed from its own pixels to the coarse result's)."""
    near = np.zeros((height, width), bool)
    for tile in layout:
        for column in (tile.left, tile.left + tile.width):
            if 0 < column < width:
                near[tile.top:tile.top + tile.height, max(0, column - band):column + band] = True
        for row in (tile.top, tile.top + tile.height):
            if 0 < row < height:
                near[max(0, row - band):row + band, tile.left:tile.left + tile.width] = True
    return near


def near_seams(width, height, tile, overlap, band=2):
    """[height, width]: within `band` pixels of where one tile's pixels meet another's (tiles.owners)."""
    owner = tiles.owners(width, height, tile, overlap)
    meets = np.zeros((height, width), bool)  # both pixels of each pair of neighbours of different tiles
    across, down = owner[:, 1:] != owner[:, :-1], owner[1:] != owner[:-1]
    meets[:, 1:] |= across
    meets[:, :-1] |= across
    meets[1:] |= down
    meets[:-1] |= down
    return scipy.ndimage.binary_dilation(meets, iterations=band - 1) if band > 1 else meets


def whole_loss(folder, vgg, images):
    """The total loss of the run's final image as a whole, at its size."""
    files = ImageFiles(images[0], (images[1],), None, "noise")
    return float(style_transfer.losses_of_run(os.path.join(folder, RUN_RECORD), os.path.join(folder, FINAL),
                                              load_vgg.load_weights(vgg), files)["total_loss"])


def tiled_run(argv, folder):
    """(seconds, peak RSS bytes, the run's Problem record, the final image's pixels) of one run in `folder`."""
    started = time.perf_counter()
    lines, rss = timed_run(argv, folder)
    seconds = time.perf_counter() - started
    record = json.load(open(os.path.join(folder, RUN_RECORD)))
    return seconds, rss, record, np.asarray(Image.open(os.path.join(folder, FINAL)).convert("RGB")), list(lines)


def layout_of(record):
    return tiles.tile_layout(record["width"], record["height"], *record["tiles"]) if record.get("tiles") else []


def seam_figures(pixels, record):
    """{column: figure} of a result: the seam figure near its tiles' edges and near its seams (None untiled)."""
    if not record.get("tiles"):
        return {"seam figure, tile edges": None, "seam figure, seams": None}
    width, height = record["width"], record["height"]
    return {"seam figure, tile edges": seam_figure(pixels, near_tile_edges(width, height, layout_of(record))),
            "seam figure, seams": seam_figure(pixels, near_seams(width, height, *record["tiles"]))}


RUNS_1024 = (("1024x768 untiled", []), ("1024x768, --tile 512", ["--tile", "512"]))


def precision_rows(common, precision, args, vgg, inputs):
    """The table's rows of the runs in one precision: the 4K result, and 1024x768 untiled and in tiles."""
    rows = []
    if not args.skip_4k:
        with tempfile.TemporaryDirectory() as folder:
            seconds, rss, record, pixels, lines = tiled_run(
                [*common, "--width", "3840", "--height", "2160", "--iterations", str(args.iterations)], folder)
            layout = layout_of(record)
            rows.append({"run": "3840x2160, tiled by itself", "precision": precision,
                         "tiles": f"{len(layout)} of {record['tiles'][0]} px, overlap {record['tiles'][1]}",
                         "coarse": f"{record['scales'][0]:g}",
                         "steps": f"{record['scale_steps'][0]} + {record['tile_steps']} per tile",
                         "whole process (s)": seconds, "peak RSS (GB)": rss / 1e9,
                         **seam_figures(pixels, record), "total loss as a whole": None})
            if args.crop and precision == args.precisions[0]:
                corner = layout[1]
                Image.fromarray(pixels[corner.top + corner.height - 128:corner.top + corner.height + 128,
                                       corner.left - 128:corner.left + 128]).save(args.crop)
    for name, more in () if args.skip_1024 else RUNS_1024:
        with tempfile.TemporaryDirectory() as folder:
            seconds, rss, record, pixels, _ = tiled_run(
                [*common, "--width", "1024", "--height", "768", "--scales", "0.5", "1", "--scale-steps",
                 str(args.iterations // 2), "--iterations", str(args.iterations), *more], folder)
            layout = layout_of(record)
            rows.append({"run": name, "precision": precision, "tiles": f"{len(layout)}" if layout else "-",
                         "coarse": "0.5",
                         "steps": f"{args.iterations // 2} + {record.get('tile_steps') or args.iterations // 2}"
                                  + (" per tile" if layout else ""),
                         "whole process (s)": seconds, "peak RSS (GB)": rss / 1e9,
                         **seam_figures(pixels, record),
                         "total loss as a whole": whole_loss(folder, vgg, inputs)})
    return rows


def main():
    parser = parser_with_inputs(__doc__)
    parser.add_argument("--iterations", type=int, default=20, help="L-BFGS steps: half at the coarse scale, half "
                                                                     "per tile")
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32"],
                        help="the network's precisions to run each result in (--precision)")
    parser.add_argument("--skip-4k", action="store_true")
    parser.add_argument("--skip-1024", action="store_true")
    parser.add_argument("--crop", help="write a 256x256 crop of the 4K result across a tile corner here")
    args = parser.parse_args()
    cache = os.path.join(HERE, ".cache")
    vgg, images = default_inputs(cache)
    vgg = args.vgg or vgg
    inputs = []
    for path, name in ((args.content or images[0], "content"), (args.style or images[1], "style")):
        small = os.path.join(cache, f"{name}-333x250.png")  # the inputs at CS20's size, as the issue asks
        Image.open(path).convert("RGB").resize((333, 250), Image.Resampling.LANCZOS).save(small)
        inputs.append(small)
    common = ["--vgg", vgg, "--content", inputs[0], "--style", inputs[1], "--optimizer", "lbfgs", "--save-every",
              "100000", "--log-every", "5"]
    for precision in args.precisions:  # a table per precision, printed as it is done: a failed run loses no other
        print_table(precision_rows([*common, "--precision", precision], precision, args, vgg, inputs))


if __name__ == "__main__":
    main()
