"""Large outputs: the full-size image refined in overlapping tiles, after coarse scales that fit in memory.

A still image's run goes through stages (runner/scales.py). With tiles, the coarse scales run on the whole
image as usual; the last one's result, upsampled to the output size, starts the assembled image. Then each
tile is a stage of its own, at the tile's size: it starts from its crop of the assembled image, aims at its
crop of the content image and at the whole style's Gram matrices (scaled to the tile's positions), and, once
finished, is blended back in with a feathered weight. The network sees the tile within a margin of the
assembled image around it (fixed, fed; past the image's border, nothing), and its losses count the features of
the tile's own pixels only: its deep features see its neighbours, as they would in the whole image. All tiles are
the same size, so one graph serves them all; its steps are the full-size steps (--iterations minus the coarse
scales' steps), each tile's in turn.

    layout = tile_layout(width, height, tile, overlap)     # Tiles covering the image, row by row
    plan = TilePlan(coarse_stages, tile_steps, layout, files, images, checkpoint_dir, overlap)
    plan.images_at(index)        # a tile's: its content crop (with the margin), and each style image in pieces
    plan.start_at(index, image)  # a tile's: its crop of the assembled image
    plan.surroundings_at(index)  # a tile's: the assembled image around it, the margin wide
    plan.finished(index, image)  # the last coarse scale: starts the assembled image; a tile: blends it in
    plan.whole(index, image, c)  # what a step image shows: the assembled image with the tile blended in

The assembled image is <checkpoint-dir>/assembled.npz (the tiles' weighted mean and the weight summed at each
pixel so far, the upsampled coarse result, and which tiles it holds), replaced atomically at each tile's end: a
killed run resumes at its tile, from the tile's checkpoint and this file. Blending: the result at a pixel is the
weighted mean of the tiles covering it, each tile's weight ramping up from its edges that face a neighbour over
--tile-overlap pixels; until every tile is in, the picture passes from the tiles into the coarse result where
their weights sum to less than 1, so that each tile starts from a picture without a step at the refined edge.
"""

import dataclasses
import math
import os
from dataclasses import dataclass

import numpy as np

import utils
from runner.scales import Scale, StillPlan
from utils import FixableError

ASSEMBLED = "assembled.npz"
def context_for(tile):
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


def work(width, height, tile, overlap):
    """Pixels the network sees in one pass over the tiles of a width x height image: each within its context."""
    layout = tile_layout(width, height, tile, overlap)
    seen = 2 * context_for(max(layout[0].width, layout[0].height))
    return len(layout) * (layout[0].width + seen) * (layout[0].height + seen)


def feather(tile, width, height, overlap):
    """A tile's blending weight [height, width]: 1 inside, falling linearly to 1/overlap toward each edge that faces
    a neighbouring tile (not the image's own border), so that the blend passes smoothly from tile to tile."""
    def ramp(size, start, whole):
        position = np.arange(size) + 0.5
        rising = np.minimum(1.0, position / overlap) if start > 0 else np.ones(size)
        falling = np.minimum(1.0, position[::-1] / overlap) if start + size < whole else np.ones(size)
        return rising * falling
    return np.outer(ramp(tile.height, tile.top, height), ramp(tile.width, tile.left, width)).astype(np.float32)


def pieces(image, tile):
    """An image cut into pieces of at most tile x tile pixels, without overlap: a style image too large for the
    network at once gives its Gram matrices piece by piece (style_transfer.compute_targets adds them up)."""
    rows = np.array_split(image, math.ceil(image.shape[0] / tile), axis=0)
    return [piece for row in rows for piece in np.array_split(row, math.ceil(image.shape[1] / tile), axis=1)]


class Assembly:
    """The whole image as far as it is refined, in the network's space [height, width, 3]: `tiles`, the weighted
    mean of the tiles blended in so far; `weight`, their weights summed at each pixel (0 where none is yet);
    `base`, the last coarse scale's result upsampled; `done`, the indices of the tiles blended in."""

    def __init__(self, tiles, weight, base, done):
        self.tiles, self.weight, self.base, self.done = tiles, weight, base, done

    @classmethod
    def starting_from(cls, base):
        base = base.astype(np.float32)
        return cls(base.copy(), np.zeros(base.shape[:2], np.float32), base, [])

    def blended(self, tile, tile_image, tile_weight):
        """(tiles, weight) of the tile's region with tile_image blended in: the running weighted mean."""
        rows, columns = tile.region
        weight = self.weight[rows, columns, np.newaxis]
        total = weight + tile_weight[..., np.newaxis]
        return (self.tiles[rows, columns] * weight + tile_image * tile_weight[..., np.newaxis]) / total, total[..., 0]

    def blend(self, tile, tile_image, tile_weight):
        rows, columns = tile.region
        self.tiles[rows, columns], self.weight[rows, columns] = self.blended(tile, tile_image, tile_weight)

    def picture(self, region=(slice(None), slice(None)), tiles=None, weight=None):
        """The image as it stands (of a region; or with tiles and weight given for it): the tiles' mean, passing
        into the base where their weights sum to less than 1, at the edges of what is refined so far, so that the
        next tile starts from a picture without a step in it. Once every tile is in, the weights sum to at least
        1 everywhere (neighbours' ramps cross within their overlap) and the picture is the tiles' mean alone."""
        tiles = self.tiles[region] if tiles is None else tiles
        cover = np.minimum(self.weight[region] if weight is None else weight, 1)[..., np.newaxis]
        return cover * tiles + (1 - cover) * self.base[region]

    def save(self, path):
        with utils.atomic_output(path) as temporary, open(temporary, "wb") as file:
            np.savez(file, tiles=self.tiles, weight=self.weight, base=self.base,
                     done=np.asarray(self.done, np.int64))

    @classmethod
    def load(cls, path):
        try:
            with np.load(path) as saved:
                return cls(saved["tiles"], saved["weight"], saved["base"], [int(index) for index in saved["done"]])
        except (OSError, ValueError, KeyError):
            raise FixableError(f"{path}, the image assembled from the tiles so far, is missing or damaged: run the "
                               f"same command with --restart to start over") from None


class TilePlan(StillPlan):
    """The stages of a tiled still image: its coarse scales (as StillPlan's), then one per tile."""

    saves_images_at_stage_ends = True  # a full-size step image per tile, not per --save-every: 4K images are large
    feeds_content = True  # the tiles share one graph

    def __init__(self, coarse_stages, tile_steps, layout, files, images, checkpoint_dir, overlap):
        """coarse_stages: the Scales before full size; images: at the output size (runner.inputs.Images)."""
        self.coarse, self.layout, self.overlap = len(coarse_stages), layout, overlap
        self.width, self.height = layout[-1].left + layout[-1].width, layout[-1].top + layout[-1].height
        self.context = context_for(max(layout[0].width, layout[0].height))
        end = coarse_stages[-1].last_step
        tiles = [Scale(tile.width, tile.height, end + (number + 1) * tile_steps, self.context)
                 for number, tile in enumerate(layout)]
        super().__init__([*coarse_stages, *tiles], files, images)
        self.path = os.path.join(checkpoint_dir, ASSEMBLED)
        self.styles = [pieces(style, max(layout[0].width, layout[0].height, STYLE_PIECE)) for style in images.styles]
        self._assembly = None

    def tile_at(self, index):
        return self.layout[index - self.coarse] if index >= self.coarse else None

    def describe(self, index):
        tile = self.tile_at(index)
        if tile is None:
            return f"Scale {index + 1}/{self.coarse} before the tiles: {self.stages[index].width}x" \
                   f"{self.stages[index].height}"
        return (f"Tile {index - self.coarse + 1}/{len(self.layout)}: {tile.width}x{tile.height} at ({tile.left}, "
                f"{tile.top})")

    @property
    def assembly(self):
        if self._assembly is None:
            self._assembly = Assembly.load(self.path)
        return self._assembly

    def images_at(self, index):
        tile = self.tile_at(index)
        if tile is None:
            return self.files.read_at(self.stages[index].width, self.stages[index].height)
        content = None if self.images.content is None else self.around(lambda region: self.images.content[region], tile)
        return dataclasses.replace(self.images, content=content, styles=self.styles, start_style=None)

    def start_at(self, index, previous_image):
        tile = self.tile_at(index)
        if tile is None:
            return super().start_at(index, previous_image)
        return self.assembly.picture(tile.region)[np.newaxis]

    def surroundings_at(self, index):
        tile = self.tile_at(index)
        return None if tile is None else self.around(self.assembly.picture, tile)[np.newaxis]

    def around(self, region_of, tile):
        """The tile's region of a whole image with self.context pixels around it, NaN past the image's border
        (where the network holds its activations at 0, as SAME padding has them at the whole image's border).
        region_of((rows, columns)): that region of the whole image (only what is needed of it is computed)."""
        top, left = tile.top - self.context, tile.left - self.context
        bottom, right = tile.top + tile.height + self.context, tile.left + tile.width + self.context
        crop = region_of((slice(max(top, 0), min(bottom, self.height)), slice(max(left, 0), min(right, self.width))))
        return np.pad(crop, ((max(0, -top), max(0, bottom - self.height)), (max(0, -left), max(0, right - self.width)),
                             (0, 0)), constant_values=np.nan)

    def finished(self, index, image):
        """The last coarse scale's result starts the assembled image; a tile's is blended in (once)."""
        if index == self.coarse - 1:
            self._assembly = Assembly.starting_from(utils.resized(image[0], self.width, self.height))
        elif index >= self.coarse and index - self.coarse not in self.assembly.done:
            tile = self.tile_at(index)
            self.assembly.blend(tile, image[0], feather(tile, self.width, self.height, self.overlap))
            self.assembly.done.append(index - self.coarse)
        else:
            return
        self.assembly.save(self.path)

    def whole(self, index, image, content):
        """(the whole image as it stands with the stage's image in, the content image at that size)."""
        tile = self.tile_at(index)
        if tile is None:
            return image, content
        whole = self.assembly.picture()
        if index - self.coarse not in self.assembly.done:
            blended = self.assembly.blended(tile, image, feather(tile, self.width, self.height, self.overlap))
            whole[tile.region] = self.assembly.picture(tile.region, *blended)
        return whole, self.images.content
