"""The images of a run: its content and style files, read and fitted at each size it is optimised at.

    files = ImageFiles(content, styles, style_scale, init, color_control, content_mask, style_masks, region_values)
    images = files.read_at(width, height)     # Images: float32 [height, width, 3] in 0..255, regions, masks

A style image is held as a list of pieces: one piece, the whole image, unless a plan cuts a style too large for
the network at once (runner.tiles); its statistics are gathered over all of them (style_transfer.StyleTransfer.targets).
"""

import dataclasses
from dataclasses import dataclass

import numpy as np

import utils
from runner import controls


@dataclass(frozen=True)
class Images:
    """The images of one size, as float32 [height, width, 3] in 0..255."""
    content: np.ndarray  # fitted to the size; None with --texture
    styles: list  # each style image as a list of pieces: fitted to the size, or with --style-scale at its aspect;
    #               a style `none` (a region without style) has none
    start_style: np.ndarray  # with --init style: the first style fitted to the size; else None
    regions: np.ndarray = None  # --content-mask: [height, width, regions], 1 in a region, 0 elsewhere; else None
    style_masks: list = None  # each style piece's --style-mask weights [height, width] (None: all of it), as styles

    def masks(self):
        """Each style image's pieces' masks, as `styles` has the pieces (None where a piece has none)."""
        return self.style_masks or [[None] * len(style) for style in self.styles]


@dataclass(frozen=True)
class ImageFiles:
    """The image files of a run, read again at each size it is optimised at."""
    content: str  # None with --texture
    styles: tuple  # a path each; None for a region without style (--style none)
    style_scale: object  # each style this many times the output's width, at its own aspect (a number for all, or
    #                      one each); None: fitted to the output, as CS20
    init: str
    color_control: str = None  # "match", "luminance" or None
    content_mask: str = None  # --content-mask's path, or None
    style_masks: tuple = None  # --style-mask's: a path (or None: all of it) for each style, or None
    region_values: tuple = None  # --content-mask's values at the output size (controls.region_values); None: those
    #                              at the size read

    def read_at(self, width, height):
        content = None if self.content is None else utils.load_image(self.content, width, height, "content image")
        styles, style_masks = [], []
        for index, path in enumerate(self.styles):
            if path is None:
                styles.append([]), style_masks.append([])
                continue
            style_width, style_height = self.style_size(index, width, height)
            styles.append([utils.load_image(path, style_width, style_height, "style image")])
            mask = self.style_masks[index] if self.style_masks else None
            style_masks.append([None if mask is None else controls.weights_of(mask, style_width, style_height)])
        start_style = None
        if self.init == "style":
            start_style = styles[0][0] if self.style_size(0, width, height) == (width, height) else \
                utils.load_image(self.styles[0], width, height, "style image")
        regions = None
        if self.content_mask is not None:
            mask = controls.mask_values(self.content_mask, width, height, "--content-mask")
            regions = controls.regions_of(mask, self.region_values or controls.region_values(mask, self.content_mask))
        images = Images(content, styles, start_style, regions, style_masks)
        return with_color_control(images, self.color_control, content) if content is not None else images

    def style_size(self, index, width, height):
        """(width, height) style image `index` is read at for an output of width x height."""
        scale = self.style_scale[index] if isinstance(self.style_scale, tuple) else self.style_scale
        if scale is None:
            return width, height
        original_width, original_height = utils.image_size(self.styles[index], "style image")
        style_width = max(1, round(width * scale))
        return style_width, max(1, round(style_width * original_height / original_width))


def with_color_control(images, control, content):
    """The images with the style's colours under --color-control (runner.controls): "match", the style images
    recoloured as the content (or a film's frames, `content` a stack of them); "luminance", the style images'
    luminance matched to the content's, in three channels. (The content is kept as it is: what the network sees of
    it under "luminance" is its luminance, and the saved images take its colours.)"""
    recolour = {"match": controls.matched_colors, "luminance": controls.matched_luminance}.get(control)
    if recolour is None:
        return images
    return dataclasses.replace(images, styles=[[recolour(piece, content) for piece in style]
                                               for style in images.styles],
                               start_style=None if images.start_style is None else recolour(images.start_style,
                                                                                            content))
