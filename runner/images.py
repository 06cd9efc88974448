"""The images of a run: its content and style files, read and fitted at each size it is optimised at.

    files = ImageFiles(content, styles, style_scale, init)
    images = files.read_at(width, height)     # Images: float32 [height, width, 3] in 0..255

A style image is held as a list of pieces: one piece, the whole image, unless a plan cuts a style too large for
the network at once (runner.tiles); its statistics are gathered over all of them (style_transfer.StyleTransfer.targets).
"""

from dataclasses import dataclass

import numpy as np

import utils


@dataclass(frozen=True)
class Images:
    """The images of one size, as float32 [height, width, 3] in 0..255."""
    content: np.ndarray  # fitted to the size; None with --texture
    styles: list  # each style image as a list of pieces: fitted to the size, or with --style-scale at its aspect
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
            styles.append([utils.load_image(path, style_width, style_height, "style image")])
        start_style = None
        if self.init == "style":
            start_style = styles[0][0] if self.style_scale is None else \
                utils.load_image(self.styles[0], width, height, "style image")
        return Images(content, styles, start_style)
