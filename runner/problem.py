"""Problem: what is optimised. A run's checkpoint folder records it (run.json); a resume must pose the same one.

Standard library only: the record is plain JSON, comparable field by field.
"""

import dataclasses
import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Problem:
    content: dict  # the content image's SHA-256 and size; None with --texture
    style: tuple  # each style image's SHA-256 and size; None for a region without style (--style none)
    style_blend_weights: tuple  # one per style image, summing to 1; or per style image, one per style layer
    style_scale: object  # style width / output width, each style keeping its aspect (a number for all, or a tuple
    #                      of one each); None: fitted as CS20
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
    frames: tuple = None  # a film's: the numbers of the frames stylised (first, last), counted from 1
    frame_steps: tuple = None  # a film's: (frame 1's steps, each later frame's)
    temporal_weight: float = None  # a film's: weight of the loss that keeps a frame on the previous one, warped
    tiles: tuple = None  # a tiled image's: (tile size, overlap) in pixels
    tile_steps: int = None  # a tiled image's: the steps of each tile
    style_loss: str = "gram"  # "gram" (CS20's), "mean-std" or "w2": which statistics of the style are matched
    average: float = None  # Adam's: the decay of the moving average of the steps' images that is saved; None: none
    adam_across_scales: str = "restart"  # "carry": Adam's moments go on to the next scale, resized with the image
    precision: str = "fp32"  # what the network computes in: "fp32" (CS20's) or "bf16" (load_vgg.PRECISIONS)
    color_control: str = None  # "luminance" or "match" (Gatys et al. 2017, §5); None: none
    content_mask: dict = None  # --content-mask's SHA-256 and size: the regions, each with its style image
    style_masks: tuple = None  # --style-mask's, one per style image (None: all of it)
    mask_propagation: str = None  # with masks: "simple" or "inside", how a mask reaches each layer

    def blends_by_layer(self):
        """Each style layer's blend of the style images (weights summing to 1, one per style image)."""
        if all(isinstance(weight, (int, float)) for weight in self.style_blend_weights):
            return [tuple(self.style_blend_weights)] * len(self.style_layers)
        return [tuple(weight / sum(column) for weight in column) for column in zip(*self.style_blend_weights)]

    def styled_regions(self):
        """With --content-mask, for each region (one per style image, in order) whether it has a style; else ()."""
        return tuple(style is not None for style in self.style) if self.content_mask else ()

    def at_size(self, width, height):
        """The same problem at another image size: one of its stages' (a scale, a tile)."""
        return dataclasses.replace(self, width=width, height=height)

    @classmethod
    def from_record(cls, record):
        """The Problem a run record holds (fields it lacks take their defaults; fields problems no longer have,
        an earlier version's `context`, are passed over)."""
        fields = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in record.items()
                      if key in fields})

    def as_record(self):
        return json.loads(json.dumps(asdict(self)))  # lists for tuples, as JSON gives them back

    def differences_from(self, record):
        """'field: recorded then, current now' for each field where a run record differs from this problem.

        A record written before a field existed (scales, say) counts as holding that field's default; a field a
        record holds that problems no longer have (an earlier version's `context`, always 0) is passed over.
        """
        defaults = {field.name: field.default for field in dataclasses.fields(self)
                    if field.default is not dataclasses.MISSING}
        recorded = {**json.loads(json.dumps(defaults)), **record}
        current = self.as_record()
        return [f"{key}: {recorded.get(key)} then, {current[key]} now"
                for key in current if recorded.get(key) != current[key]]

    def graph_key(self):
        """What the training graph depends on (beside what its stage adds, runner.stages.Extras): problems that
        differ only in what is fed to it (their images and their targets, the image's size, its start) share one:
        the scales of a run, the images of a data set."""
        record = {**self.as_record(), "styled_regions": self.styled_regions()}
        for fed in ("content", "style", "style_blend_weights", "style_scale", "width", "height", "init", "noise_ratio",
                    "seed", "scales", "scale_steps", "frames", "frame_steps", "tiles", "tile_steps", "content_mask",
                    "style_masks"):
            del record[fed]
        return json.dumps(record, sort_keys=True)
