"""Large outputs: the full-size image refined in overlapping tiles, after coarse scales that fit in memory.

A tiled image's plan (runner/stages.py) has two phases. Its coarse scales run on the whole image as usual; the
last one's result, upsampled to the output size, begins the assembled image. Then each tile is a stage of the tile
phase, at the tile's size: it starts from its crop of the assembled image, aims at its crop of the content image
and at the whole style's Gram matrices (scaled to the tile's positions; the style is passed through the network in
pieces), and, once finished, is placed back. What the stage adds to the model is its view (WithinSurroundings):
the network sees the tile within a margin of the assembled image around it (fixed, fed; past the image's border,
nothing), and sees the pixels of the tile that earlier tiles decided as they decided them (fixed too), and the
losses count the features of the tile's own pixels only, so its deep features see its neighbours as they would in
the whole image. All tiles are the same size, so one graph serves them all; their steps are the full-size steps
(--iterations minus the coarse scales' steps), each tile's in turn.

    plan = tiled_plan(problem, iterations, files, images, checkpoint_dir)   # problem.tiles: (tile size, overlap)
    layout = tile_layout(width, height, tile, overlap)     # Tiles covering the image, row by row

The assembled image is <checkpoint-dir>/assembled.npz (the image and which tiles it holds), replaced atomically
at each tile's end: a killed run resumes at its tile, from the tile's checkpoint and this file. Each pixel is
decided by one tile, the one whose centre is nearest (the seam between neighbours lies midway through their
overlap; `owners`). A tile sees the pixels earlier tiles decided fixed and fits its own to them; it is placed
over every pixel but those, the ones later tiles will decide included, as where they start (passing into the
coarse result toward its edges: `handover`). No pixel is a mean of two tiles: two tiles are two different
solutions of the style, and their mean matches neither's statistics (averaging overlapping tiles was tried: with
L-BFGS kept within 0..255 its result scored tens of times the untiled one's).
"""

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass

import numpy as np

import load_vgg
import utils
from runner import stages
from runner.stages import Extras, Phase, Plan, ScalePhase, Sight, Stage
from runner.tf_setup import tf
from utils import FixableError

ASSEMBLED = "assembled.npz"


def margin_for(tile):
    """The pixels of fixed surroundings a tile of `tile` pixels is seen with: a quarter of it, at most 64, in whole
    multiples of 16 (VGG's four poolings halve them exactly down to conv5_1)."""
    return 16 * max(1, min(64, tile // 4) // 16)


STYLE_PIECE = 1024  # pixels a side: the style passes through the network in pieces this large (less at the edges)


@dataclass(frozen=True)
class Tile:
    left: int
    top: int
    width: int
    height: int

    @property
    def region(self):
        """The tile's (rows, columns) slices of the whole image."""
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)


def tile_starts(length, tile, overlap):
    """Where tiles of `tile` pixels start along a side of `length`, evenly spread so that neighbours overlap by at
    least `overlap` (more where the side does not divide evenly) and the last ends at the side's end."""
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    return [round(index * (length - tile) / (count - 1)) for index in range(count)]


def tile_layout(width, height, tile, overlap):
    """The Tiles covering a width x height image, row by row; all of one size (tile, or the side if smaller)."""
    tile_width, tile_height = min(tile, width), min(tile, height)
    return [Tile(left, top, tile_width, tile_height) for top in tile_starts(height, tile_height, overlap)
            for left in tile_starts(width, tile_width, overlap)]


def pixels_seen(width, height, tile, overlap):
    """Pixels the network sees in one pass over the tiles of a width x height image: each within its margin."""
    layout = tile_layout(width, height, tile, overlap)
    seen = 2 * margin_for(max(layout[0].width, layout[0].height))
    return len(layout) * (layout[0].width + seen) * (layout[0].height + seen)


def seams(length, tile, overlap):
    """Where the tiles along a side of `length` hand over to the next: midway through each neighbours' overlap."""
    starts = tile_starts(length, tile, overlap)
    return [(before + after + tile) / 2 for before, after in zip(starts, starts[1:])]


def owners(width, height, tile, overlap, region=(slice(None), slice(None))):
    """[height, width] of a region of the image (all of it by default): the index (in tile_layout's order) of the
    tile that decides each pixel, the one whose seams enclose it."""
    def bands(length, size):
        return np.searchsorted(seams(length, size, overlap), np.arange(length) + 0.5)
    columns = bands(width, min(tile, width))
    rows = bands(height, min(tile, height))
    return rows[region[0], np.newaxis] * (columns.max() + 1) + columns[np.newaxis, region[1]]


def handover(tile, width, height, overlap):
    """[height, width]: how much of a placed tile the picture takes at each pixel, for the pixels later tiles will
    decide: 1 up to the seam, falling linearly to the tile's edges that face a neighbour, so that the next tile
    starts from a picture that passes smoothly from this tile into the coarse result (a step at the tile's edge
    would stay in the result as a faint seam: a tile's few steps do not undo it)."""
    def ramp(size, start, whole):
        handovers = seams(whole, size, overlap)
        index = tile_starts(whole, size, overlap).index(start)  # the seams before and after it: index - 1, index
        position = start + np.arange(size) + 0.5
        weight = np.ones(size)
        if index > 0:
            weight = np.minimum(weight, (position - start) / (handovers[index - 1] - start))
        if index < len(handovers):
            weight = np.minimum(weight, (start + size - position) / (start + size - handovers[index]))
        return weight
    return np.outer(ramp(tile.height, tile.top, height), ramp(tile.width, tile.left, width)).clip(0, 1)


def pieces(image, tile):
    """An image cut into pieces of at most tile x tile pixels, without overlap: a style image too large for the
    network at once gives its Gram matrices piece by piece (style_transfer.StyleTransfer.targets adds them up)."""
    rows = np.array_split(image, math.ceil(image.shape[0] / tile), axis=0)
    return [piece for row in rows for piece in np.array_split(row, math.ceil(image.shape[1] / tile), axis=1)]


class Assembly:
    """The whole image as far as it is refined, in the network's space [height, width, 3]: the last coarse scale's
    result upsampled, with each tile's pixels placed over it as the tile is done; `done`, the indices of the tiles
    placed."""

    def __init__(self, image, done):
        self.image, self.done = image, done

    @classmethod
    def starting_from(cls, base):
        return cls(base.astype(np.float32), [])

    def placed(self, tile, tile_image, decided, weight):
        """The tile's region with tile_image placed in it but where `decided` ([height, width], the pixels earlier
        tiles decided, which the tile saw fixed), taken in the share `weight` ([height, width], handover) of it."""
        region = self.image[tile.region]
        mixed = weight[..., np.newaxis] * tile_image + (1 - weight[..., np.newaxis]) * region
        return np.where(decided[..., np.newaxis], region, mixed).astype(np.float32)

    def place(self, tile, tile_image, decided, weight):
        self.image[tile.region] = self.placed(tile, tile_image, decided, weight)

    def save(self, path, key):
        """Write the assembly atomically, with `key`: what it was made from (assembly_key)."""
        try:
            with utils.atomic_output(path) as temporary, open(temporary, "wb") as file:
                np.savez(file, image=self.image, done=np.asarray(self.done, np.int64), key=np.asarray(key))
        except OSError as error:
            reason = error.strerror or utils.one_line(error)
            raise FixableError(f"could not write {path}, the image assembled from the tiles so far ({reason}); the "
                               f"tile's checkpoint is kept: free some space and run the same command to "
                               f"resume") from None

    @classmethod
    def load(cls, path, key, width, height, tile_count):
        """The assembly saved at `path`, checked: made from `key`, of the image's size, finite, its tiles' indices
        among the layout's; refused in one line otherwise (it holds tiles that cannot be recomputed)."""
        problem = None
        try:
            if os.path.lexists(path) and not os.path.isfile(path):  # a pipe there would be waited on for good
                raise ValueError("not a regular file")
            with np.load(path) as saved:
                assembly = cls(saved["image"], [int(index) for index in saved["done"]])
                saved_key = str(saved["key"])
        except FileNotFoundError:
            problem = "is missing"
        except KeyError:  # written by an earlier version of the tool (or not by it)
            problem = "was made for another run (another problem or tile layout)"
        except Exception as error:  # cut, bit-flipped, not an npz: numpy and zipfile raise many kinds
            problem = f"is damaged ({utils.one_line(error)})"
        else:
            if saved_key != key:
                problem = "was made for another run (another problem or tile layout)"
            elif assembly.image.shape != (height, width, 3):
                problem = f"holds an image of shape {assembly.image.shape} where {(height, width, 3)} belongs"
            elif not np.isfinite(assembly.image).all():
                problem = "holds NaN or infinite values"
            elif any(not 0 <= index < tile_count for index in assembly.done) or \
                    len(set(assembly.done)) != len(assembly.done):
                problem = "lists tiles the layout does not have"
        if problem:
            raise FixableError(f"{path}, the image assembled from the tiles so far, {problem}: run the same command "
                               f"with --restart to start over")
        return assembly


def assembly_key(problem):
    """What an assembled image is made from: the tiled problem (its images, weights, sizes, tiles and steps)."""
    return hashlib.sha256(json.dumps(problem.as_record(), sort_keys=True).encode()).hexdigest()


def past_the_border(image):
    """(the image with 0 past the picture's border, where it is NaN; 1 inside the border, 0 past it): surroundings
    that end at the whole image's edge."""
    inside = tf.math.is_finite(image[..., :1])
    return tf.where(tf.broadcast_to(inside, tf.shape(image)), image, tf.zeros_like(image)), tf.cast(inside, tf.float32)


class WithinSurroundings:
    """A tile's view, what it adds to the model (style_transfer.WholeImage is the view that adds nothing): the
    network sees the tile within `margin` pixels of fixed surroundings on each side, fed (NaN past the whole
    image's border, where the network holds its activations at 0, as SAME padding has them there), and the losses
    read the features of the tile's own positions. Where earlier tiles have decided the tile's pixels (fed as
    `fixed`, with the margin), the network sees theirs, not the variable's: the tile fits itself to them, and no
    pixel is the mean of two tiles' different textures."""

    name = "surroundings"

    def __init__(self, margin, width, height):
        self.margin, self.width, self.height = margin, width, height
        self.key = ("within surroundings", margin, width, height)

    def around(self, image):
        """The Sight of the image variable: the tile within its surroundings, the pixels earlier tiles decided in
        place of the variable's; the picture, the tile as seen (what the total variation reads: across the seam,
        the pixels decided, not the variable's own copy of them); fed, the surroundings and where they are seen."""
        margin, height, width = self.margin, self.height, self.width
        padding = [[0, 0], [margin, margin], [margin, margin], [0, 0]]
        surroundings = tf.placeholder(tf.float32, (1, height + 2 * margin, width + 2 * margin, 3), name="surroundings")
        fixed = tf.placeholder(tf.float32, (1, height + 2 * margin, width + 2 * margin, 1), name="fixed")
        filled, inside = past_the_border(surroundings)
        seen = filled * fixed + tf.pad(image, padding) * (1 - fixed)
        return Sight(seen=seen, inside=inside, picture=seen[:, margin:margin + height, margin:margin + width],
                     fed=[surroundings, fixed])

    def fixed(self, decided):
        """What `fixed` is fed for a tile whose pixels `decided` ([height, width]) earlier tiles decided: 1 there and
        in the margin, 0 where the network sees the variable."""
        margin = self.margin
        return np.pad(decided.astype(np.float32), margin, constant_values=1)[np.newaxis, ..., np.newaxis]

    def given(self):
        """(a placeholder for an image of the tile's size given with its surroundings (a content image's), what the
        network sees of it, where that is the picture)."""
        image = tf.placeholder(tf.float32, (1, self.height + 2 * self.margin, self.width + 2 * self.margin, 3))
        return (image, *past_the_border(image))

    def own(self, features, layer):
        """A layer's features of the tile's own positions, without those of its surroundings (a margin in whole
        positions down to conv5_1)."""
        height, width = load_vgg.layer_size(self.width, self.height, layer)
        margin = (load_vgg.layer_size(self.width + 2 * self.margin, self.height, layer)[1] - width) // 2
        return features[:, margin:margin + height, margin:margin + width, :]


def tiled_plan(problem, iterations, files, images, checkpoint_dir):
    """The plan of a tiled still image: its coarse scales (the problem's scales but the last), then its tiles."""
    coarse = stages.scale_stages(problem, iterations)[:-1]
    tile, overlap = problem.tiles
    layout = tile_layout(problem.width, problem.height, tile, overlap)
    end = coarse[-1].last_step
    tile_stages = [Stage(item.width, item.height, end + (number + 1) * problem.tile_steps)
                   for number, item in enumerate(layout)]
    output_size = (problem.width, problem.height)
    return Plan(ScalePhase(coarse, files, images, output_size, described_as="{} before the tiles",
                           step_images_at_stage_ends=True),  # a tiled image is large: a step image per stage
                TilePhase(tile_stages, layout, images, checkpoint_dir, overlap, assembly_key(problem)))


class TilePhase(Phase):
    """The tiles of a large image, each a stage (see the module's docstring)."""

    word = "Tile"

    def __init__(self, tile_stages, layout, images, checkpoint_dir, overlap, key):
        """images: at the output size (runner.images.Images); key: what the assembled image is made from."""
        self.stages, self.layout, self.overlap, self.key = tile_stages, layout, overlap, key
        self.width, self.height = layout[-1].left + layout[-1].width, layout[-1].top + layout[-1].height
        self.images = images
        side = max(layout[0].width, layout[0].height)
        self.view = WithinSurroundings(margin_for(side), layout[0].width, layout[0].height)
        self.path = os.path.join(checkpoint_dir, ASSEMBLED)
        self.styles = [[part for whole in style for part in pieces(whole, max(side, STYLE_PIECE))]
                       for style in images.styles]
        self.style_masks = [[part for whole, mask in zip(style, masks) for part in (
            pieces(mask, max(side, STYLE_PIECE)) if mask is not None else [None] * len(pieces(whole, max(
                side, STYLE_PIECE))))] for style, masks in zip(images.styles, images.masks())]  # cut as the styles
        self._assembly = None

    def describe(self, index):
        tile = self.layout[index]
        return f"Tile {index + 1}/{len(self.layout)}: {tile.width}x{tile.height} at ({tile.left}, {tile.top})"

    @property
    def assembly(self):
        if self._assembly is None:
            self._assembly = Assembly.load(self.path, self.key, self.width, self.height, len(self.layout))
        return self._assembly

    def images_at(self, index):
        content, regions = self.images.content, self.images.regions
        if content is not None:
            content = self.with_surroundings(lambda region: self.images.content[region], self.layout[index])
        if regions is not None:  # seen as the content is, in no region past the image's border
            regions = np.nan_to_num(self.with_surroundings(lambda region: self.images.regions[region],
                                                           self.layout[index]))
        return dataclasses.replace(self.images, content=content, styles=self.styles, start_style=None,
                                   regions=regions, style_masks=self.style_masks)

    def start_at(self, index, previous_image):
        return self.assembly.image[self.layout[index].region][np.newaxis]

    def extras_at(self, index):
        return Extras(view=self.view)

    def feeds_at(self, index):
        tile = self.layout[index]
        return {self.view.name: [self.with_surroundings(lambda region: self.assembly.image[region], tile)[np.newaxis],
                                 self.view.fixed(self.decided_before(index))]}

    def decided_before(self, index):
        """[height, width] of tile `index`: its pixels that earlier tiles decided (seen fixed, kept as they are)."""
        tile = self.layout[index]
        return owners(self.width, self.height, max(tile.width, tile.height), self.overlap, tile.region) < index

    def placing(self, index):
        """(tile `index`, the pixels of it earlier tiles decided, its handover): how it is placed in the assembly."""
        tile = self.layout[index]
        return tile, self.decided_before(index), handover(tile, self.width, self.height, self.overlap)

    def with_surroundings(self, region_of, tile):
        """The tile's region of a whole image with the view's margin around it, NaN past the image's border.
        region_of((rows, columns)): that region of the whole image (only what is needed of it is computed)."""
        margin = self.view.margin
        top, left = tile.top - margin, tile.left - margin
        bottom, right = tile.top + tile.height + margin, tile.left + tile.width + margin
        crop = region_of((slice(max(top, 0), min(bottom, self.height)), slice(max(left, 0), min(right, self.width))))
        return np.pad(crop, ((max(0, -top), max(0, bottom - self.height)), (max(0, -left), max(0, right - self.width)),
                             (0, 0)), constant_values=np.nan)

    def begin(self, previous_result):
        """The last coarse scale's result, upsampled, begins the assembled image."""
        self._assembly = Assembly.starting_from(utils.resized(previous_result[0], self.width, self.height))
        self._assembly.save(self.path, self.key)

    def stage_done(self, index, image):
        """A tile's result is placed (once): its pixels but those earlier tiles decided. It places the pixels later
        tiles will decide too, as where they start."""
        if index in self.assembly.done:
            return
        tile, decided, weight = self.placing(index)
        self.assembly.place(tile, image[0], decided, weight)
        self.assembly.done.append(index)
        self.assembly.save(self.path, self.key)

    def picture(self, index, image, content):
        """(the whole image as it stands with the tile's image in, the content image at that size)."""
        whole = self.assembly.image.copy()
        if index not in self.assembly.done:
            tile, decided, weight = self.placing(index)
            whole[tile.region] = self.assembly.placed(tile, image, decided, weight)
        return whole, self.images.content

    def writes_step_image(self, index, stage_end):
        """A full-size step image per tile, at its end, not per --save-every: 4K images are large."""
        return stage_end
