"""How much memory a run needs, and the tiles that make a run fit: the estimate that guards every size.

    check_memory(width, height, deepest, precision)   # refuse (one line) a whole-image run that would not fit
    tiling = choose_tiling(width, height, deepest, precision, tile, overlap_for, scales, scale_steps, iterations)

`precision` is the network's (load_vgg.PRECISIONS): its activations take half the bytes in bf16.
"""

import math
from dataclasses import dataclass

import load_vgg
import utils
from runner import tf_setup, tiles
from utils import FixableError

# Memory a run needs: a fixed part (TensorFlow, the weights as read and as graph constants) and a part per
# activation of the network (its value, its gradient, the convolutions' scratch space, the statistics' float32
# products). Measured here: 1.8 GB + 2.8 kB per pixel in fp32 (about 4.7 bytes per activation); at 2048x1152 (peak
# RSS of a 2-step L-BFGS run, less 1.5 GB) 4.6 bytes per activation in fp32 and 3.9 in bf16: bf16 saves little at
# large sizes, where the float32 statistics of the style's layers weigh most (an estimate of 4 in bf16 let a
# 3840x2160 run go untiled, and the kernel killed it at 22.7 GB). The figures below leave a margin of a third.
MEMORY_FIXED = 2.0e9
MEMORY_PER_ACTIVATION = {"fp32": 6, "bf16": 5.2}
LARGEST_AUTOMATIC_TILE = 1024  # pixels a side: larger tiles gain little, and a tile is a unit of lost work
LARGEST_AUTOMATIC_COARSE = 1024  # the long side of the coarse scale added to a tiled run that gives none
MEMORY_PER_TILED_PIXEL = 64  # bytes per output pixel of a tiled run: content, styles, assembled image, as floats


@dataclass(frozen=True)
class Tiling:
    """How a tiled run goes (the Problem's fields of the same names)."""
    scales: tuple  # the coarse scales, run on the whole image, and 1 (the tiles)
    scale_steps: tuple
    tiles: tuple  # (tile size, overlap)
    tile_steps: int  # each tile's
    automatic: bool  # chosen because the whole image would not fit (no --tile given)


def choose_tiling(width, height, deepest, precision, tile, overlap_for, scales, scale_steps, iterations):
    """The Tiling of a run with --tile `tile`, or of one whose whole image would not fit in memory (the tile size
    chosen among those that fit); None for a run of the whole image. overlap_for(tile): the overlap
    of tiles of that size. A run given no coarse scale gets one, the largest half, quarter... that fits, at most
    LARGEST_AUTOMATIC_COARSE pixels long, for half of the iterations."""
    given = tile
    if tile is None:
        if memory_fits(memory_needed(width, height, deepest, precision)):
            return None
        fitting = [side for side in range(64, LARGEST_AUTOMATIC_TILE + 1, 64) if side >= 2 * overlap_for(side)
                   and memory_fits(tiled_memory_needed(width, height, side, deepest, precision))]
        # of the sizes that fit, the one whose tiles give the network the fewest pixels (overlaps and surroundings too)
        tile = min(fitting, key=lambda side: (tiles.pixels_seen(width, height, side, overlap_for(side)), -side),
                   default=None)
        if tile is None:
            check_memory(width, height, deepest, precision, tiled_memory_needed(width, height, 64, deepest, precision),
                         " even in tiles")
    check_memory(width, height, deepest, precision, tiled_memory_needed(width, height, tile, deepest, precision),
                 f" in --tile {tile}")
    if len(scales) == 1:
        scale = 0.5
        while scale > 1 / 64 and (max(width, height) * scale > LARGEST_AUTOMATIC_COARSE or
                                  not memory_fits(memory_needed(round(width * scale), round(height * scale), deepest,
                                                                precision))):
            scale /= 2
        scales, scale_steps = (scale, 1.0), (max(1, iterations // 2),)
        if scale_steps[0] >= iterations:
            raise FixableError(f"--iterations {iterations} leaves no step for the tiles: raise --iterations")
    coarse_width, coarse_height = round(width * scales[-2]), round(height * scales[-2])
    check_memory(coarse_width, coarse_height, deepest, precision,
                 memory_needed(coarse_width, coarse_height, deepest, precision), f" (--scales {scales[-2]:g})")
    return Tiling(tuple(scales), tuple(scale_steps), (tile, overlap_for(tile)), iterations - sum(scale_steps),
                  automatic=given is None)


def memory_needed(width, height, deepest, precision="fp32"):
    """Bytes a run of the whole width x height image needs (estimated)."""
    return MEMORY_FIXED + MEMORY_PER_ACTIVATION[precision] * load_vgg.activation_count(width, height, deepest)


def tiled_memory_needed(width, height, tile, deepest, precision="fp32"):
    """Bytes a tiled run needs: one tile's graph, and the whole image's arrays (content, styles, assembled image)."""
    seen = 2 * tiles.margin_for(tile)  # the network sees a tile within its surroundings
    return memory_needed(min(tile, width) + seen, min(tile, height) + seen, deepest, precision) + \
        MEMORY_PER_TILED_PIXEL * width * height


def memory_available():
    """Bytes available to a run (on a GPU, the GPU's), or None where that cannot be told."""
    return tf_setup.gpu_free_memory() if tf_setup.ON_GPU else utils.available_memory()


def memory_fits(needed):
    available = memory_available()
    return available is None or needed <= available


def check_memory(width, height, deepest, precision="fp32", needed=None, how=""):
    """Refuse a width x height run whose estimated memory (`needed`; by default the whole image's) exceeds what is
    available (on a GPU, the GPU's), and say what size would fit. how: how the run would go (" in --tile 512")."""
    needed = memory_needed(width, height, deepest, precision) if needed is None else needed
    available = memory_available()
    if available is None or needed <= available:
        return
    scale = math.sqrt(max(available - MEMORY_FIXED, 0) / (needed - MEMORY_FIXED))
    fits = f"at most about {int(width * scale)}x{int(height * scale)}" if scale * min(width, height) >= 1 \
        else "no image at all"
    memory = "GPU memory" if tf_setup.ON_GPU else "memory"
    raise FixableError(f"--width {width} --height {height} needs about {needed / 1e9:.1f} GB of {memory}{how} and "
                       f"{available / 1e9:.1f} GB is available: {fits} fits")
