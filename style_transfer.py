"""Neural style transfer (Gatys et al.) as in Stanford CS20 assignment 2, in TF1 graph mode.

    python style_transfer.py                    # CS20 defaults: deadpool.jpg in the style of guernica.jpg
    python style_transfer.py --iterations 500   # carries the run in checkpoints/style_transfer on to step 500

This file is the algorithm, top to bottom: the losses, each a small piece the model sums; the targets (the style's
statistics and the content's features, computed by the model's own network and fed to the losses); the model
(StyleTransfer.build: create_input, load_vgg, create_targets, losses, optimize, create_summary), one graph for
images of any size, whose steps() yields a report per step; train(), the Session loop of
one stage; run(), over the stages of one item; run_work(), over the items; main(). Around it: load_vgg.py builds
VGG-19 from its weights file; lbfgs.py drives scipy's L-BFGS-B one step at a time; runner/ manages runs (options,
inputs, the run folder with its checkpoints and events, what is written after each step, the signals that stop it,
and the plans whose stages a run goes through, runner/stages.py); utils.py downloads and reads images.

How a stage adds to the model, without the model knowing what kind of stage it is: its plan gives `Extras`
(runner/stages.py): more loss pieces, and a view, what the network sees around the image; the plans' modules
define their own. A loss piece has a `name` (its TensorBoard tag and the
key its fed values come under), a `weight`, the `layers` it reads, a `key` (what the graph depends on), and
`build(image, features)`, which returns (its loss tensor, the placeholders it is fed each step, more curves). A
view has a `name` (the key its fed values come under), a `key`, `around(image)`, which gives a Sight (what the
network sees, where that is the picture, the picture as the pixel losses read it, the view's placeholders),
`given()`, the same for an image fed (a content image), and `own(features, layer)`, the image's own positions.
"""

import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

import lbfgs
import load_vgg
from runner import batch, controls, options, run_folder, stages
from runner.batch import ItemResult
from runner.graphs import Graphs
from runner.inputs import prepare_work
from runner.outputs import Outputs
from runner.problem import Problem
from runner.signals import Stopped, StopSignals
from runner.stages import Sight
from runner.tf_setup import ONE_RUN_CONFIG, tf
from utils import FixableError

# ---------------------------------------------------------------------------------------------------
# 1. The losses, as CS20 defines them, and the pieces that the model sums.

def gram_matrix(features):
    """Fᵀ F with F reshaped to (positions, channels): channel correlations, summed over positions."""
    matrix = tf.reshape(features, [-1, features.shape[-1]])
    with tf.get_default_graph().gradient_override_map({"MatMul": "SymmetricGram"}):
        return tf.matmul(matrix, matrix, transpose_a=True)


@tf.RegisterGradient("SymmetricGram")
def _gram_gradient(op, upstream):
    """d(FᵀF) = F (U + Uᵀ): one product, where TensorFlow's own gradient of a product takes two. Registered once
    by name (a gradient made per graph, as tf.custom_gradient makes one, stays registered and keeps its graph
    alive: a data set's process grew by every graph it built)."""
    matrix = op.inputs[0]  # both of the product's inputs: the gradient of the one stands for both
    return tf.matmul(matrix, upstream + tf.transpose(upstream)), None


def content_loss(features, target):
    """sum((F - P)²) / (4 · size(P)), as CS20; target: fed, of the features' shape."""
    return tf.reduce_sum(tf.square(features - target)) / (4.0 * tf.cast(tf.size(target), target.dtype))


def positions_of(features):
    """M, the positions of a layer's feature map (height × width), as the graph runs: one graph serves every size."""
    shape = tf.shape(features)
    return tf.cast(shape[1] * shape[2], features.dtype)


class Features(dict):
    """What a loss piece reads: {layer name: the image's own features there}, and follow(map), which takes a map
    at the resolution the network sees (a mask of regions, [1, height, width, channels]) through the network's
    layers as the image goes: {layer name: the map there, at the image's own positions}."""

    def __init__(self, features, follow):
        super().__init__(features)
        self.follow = follow


class ContentLoss:
    """The content loss summed over the content layers; their targets (the content image's features) are fed."""

    name = "content_loss"

    def __init__(self, layers, weight):
        self.layers, self.weight = tuple(layers), weight
        self.key = ("content", self.layers, weight)

    def build(self, image, features):
        targets = [tf.placeholder(tf.float32, features[name].shape, name=f"content_target_{name}")
                   for name in self.layers]
        loss = tf.add_n([content_loss(features[name], target) for name, target in zip(self.layers, targets)])
        return loss, targets, {}


@dataclass
class StyleStatistics:
    """What one style layer's features add up to over each style image (all of its pieces), each position weighted
    by where the style is taken from (1 everywhere without a --style-mask): what every style loss takes its
    targets from. Sums over positions add up over pieces, whatever their sizes."""
    grams: list  # Σ w f fᵀ, [channels, channels], one per style image
    sums: list  # Σ w f, [channels]
    positions: list  # Σ w: how many positions were summed (weighted)


def blended_moments(statistics, blends):
    """(mean, second moment E[f fᵀ]) of a layer's features over the style images blended: a feature drawn from
    style i with probability blend i. float64."""
    mean = sum(blend * np.float64(total) / count for blend, total, count
               in zip(blends, statistics.sums, statistics.positions) if blend)
    second = sum(blend * np.float64(gram) / count for blend, gram, count
                 in zip(blends, statistics.grams, statistics.positions) if blend)
    return mean, second


def weighted_sums(features, guidance=None):
    """(Σ g² f fᵀ [channels, channels], Σ g² f [channels], Σ g²) over a layer's positions, g a region's guidance
    there ([1, height, width, 1]; None: 1 everywhere, Σ g² then the positions): sums, which add up over the pieces
    of an image."""
    if guidance is None:
        return gram_matrix(features), tf.reduce_sum(features, axis=[0, 1, 2]), positions_of(features)
    weight = tf.square(guidance)
    return gram_matrix(features * guidance), tf.reduce_sum(features * weight, axis=[0, 1, 2]), tf.reduce_sum(weight)


def weighted_moments(features, guidance=None):
    """(second moment E[f fᵀ], mean E[f], weight Σ g²) of a layer's features over its positions, each weighted by
    g² (weighted_sums). A region without a position at this layer has moments 0."""
    second, total, count = weighted_sums(features, guidance)
    return tf.math.divide_no_nan(second, count), tf.math.divide_no_nan(total, count), count


class StyleLoss:
    """CS20's style loss: the weighted sum of the style layers' losses against the style's Gram matrices. The
    other style losses share its shape and differ in the statistics they match (`kind`).

    Each layer's loss compares the generated image's moments at that layer (its second moment E[f fᵀ], and its
    mean) with the style's, through `statistic_loss`; the style's are fed, each stage its own (the style image is
    fitted to each stage's size), as the placeholders `target_placeholders` makes and in the order `fed_values`
    gives them. With regions (--content-mask), each region r is matched to its own style image's statistics,
    the generated image's moments weighted by the region's guidance at that layer (Gatys et al. 2017, §4: guided
    Gram matrices), each region counting for its share of the positions; `styled` says which regions have a
    style (a region without one keeps the content)."""

    name = "style_loss"
    kind = "gram"

    def __init__(self, layers, layer_weights, weight, styled=()):
        self.layers, self.layer_weights, self.weight, self.styled = tuple(layers), layer_weights, weight, styled
        self.key = (self.kind, self.layers, tuple(layer_weights), weight, tuple(styled))

    @staticmethod
    def target_placeholders(channels):
        return [tf.placeholder(tf.float32, (channels, channels), name="second_moment")]

    @staticmethod
    def layer_targets(mean, second):
        """One layer's targets from the style's mean and second moment (NumPy, float64)."""
        return [second.astype(np.float32)]

    @staticmethod
    def statistic_loss(second, mean, target_second):
        """sum((G - A)²) / (2 N M)², with G and A the Gram matrices over M positions: the second moments'
        squared difference over (2 N)², the CS20 layer loss whatever the positions."""
        channels = int(second.shape[-1])
        return tf.reduce_sum(tf.square(second - target_second)) / (2.0 * channels) ** 2

    def fed_values(self, problem, statistics, regions):
        """The values of the placeholders `build` makes, in their order. statistics: the style's, a StyleStatistics
        per layer; regions: with --content-mask, its regions [height, width, regions] as the network sees them."""
        if not self.styled:
            return [value for layer, blends in zip(statistics, problem.blends_by_layer())
                    for value in self.layer_targets(*blended_moments(layer, blends))]
        alone = [tuple(1.0 if other == region else 0.0 for other in range(len(self.styled)))
                 for region in range(len(self.styled))]
        return [regions[np.newaxis]] + [value for layer in statistics for region, styled in enumerate(self.styled)
                                        if styled for value in self.layer_targets(*blended_moments(layer,
                                                                                                     alone[region]))]

    def build(self, image, features):
        fed, per_layer, per_region = [], {}, {}
        guidance = None
        if self.styled:
            regions = tf.placeholder(tf.float32, (1, None, None, len(self.styled)), name="regions")
            fed.append(regions)
            guidance = features.follow(regions)
        for name, layer_weight in zip(self.layers, self.layer_weights):
            layer = features[name]
            losses = []
            for region, styled in enumerate(self.styled or (True,)):
                if not styled:
                    continue
                region_guidance = None if guidance is None else guidance[name][..., region:region + 1]
                second, mean, count = weighted_moments(layer, region_guidance)
                targets = self.target_placeholders(int(layer.shape[-1]))
                fed += targets
                share = 1.0 if region_guidance is None else count / positions_of(layer)
                losses.append(share * self.statistic_loss(second, mean, *targets))
                per_region.setdefault(region, []).append(layer_weight * losses[-1])
            per_layer[name] = tf.add_n(losses)
        loss = tf.add_n([weight * per_layer[name] for name, weight in zip(self.layers, self.layer_weights)])
        curves = {f"style_loss/{name}": layer_loss for name, layer_loss in per_layer.items()}
        if self.styled:
            curves.update({f"style_loss/region_{region + 1}": tf.add_n(losses) for region, losses in
                           per_region.items()})
        return loss, fed, curves


def covariance_of(second, mean):
    """The covariance from the second moment and the mean (TensorFlow or NumPy)."""
    return second - mean[:, None] * mean[None, :]


class MeanStdStyleLoss(StyleLoss):
    """--style-loss mean-std: per layer, the squared differences of the features' channel means and standard
    deviations from the style's (the statistics AdaIN matches)."""

    kind = "mean-std"

    @staticmethod
    def target_placeholders(channels):
        return [tf.placeholder(tf.float32, (channels,), name="mean"),
                tf.placeholder(tf.float32, (channels,), name="deviation")]

    @staticmethod
    def layer_targets(mean, second):
        variance = np.maximum(np.diag(covariance_of(second, mean)), 0)
        return [mean.astype(np.float32), np.sqrt(variance + VARIANCE_FLOOR).astype(np.float32)]

    @staticmethod
    def statistic_loss(second, mean, style_mean, style_deviation):
        deviation = tf.sqrt(tf.maximum(tf.linalg.diag_part(covariance_of(second, mean)), 0.0) + VARIANCE_FLOOR)
        return tf.reduce_sum(tf.square(mean - style_mean)) + tf.reduce_sum(tf.square(deviation - style_deviation))


class WassersteinStyleLoss(StyleLoss):
    """--style-loss w2: per layer, the squared 2-Wasserstein distance between Gaussians fitted to the generated and
    the style features: ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₂^½ Σ₁ Σ₂^½)^½). The style's Σ₂^½ is computed once (NumPy);
    the square root of the generated side by Newton–Schulz iterations, whose gradient is finite even where the
    matrix is singular (a layer's dead channels)."""

    kind = "w2"

    @staticmethod
    def target_placeholders(channels):
        return [tf.placeholder(tf.float32, (channels,), name="mean"),
                tf.placeholder(tf.float32, (channels, channels), name="covariance_root"),
                tf.placeholder(tf.float32, (), name="covariance_trace")]

    @staticmethod
    def layer_targets(mean, second):
        covariance = covariance_of(second, mean)
        return [np.float32(target) for target in (mean, controls.symmetric_root(covariance, floor=0),
                                                  np.trace(covariance))]

    @staticmethod
    def statistic_loss(second, mean, style_mean, style_root, style_trace):
        covariance = covariance_of(second, mean)
        inner = style_root @ covariance @ style_root
        return (tf.reduce_sum(tf.square(mean - style_mean)) + tf.linalg.trace(covariance) + style_trace
                - 2.0 * tf.linalg.trace(newton_schulz_square_root(0.5 * (inner + tf.transpose(inner)))))


STYLE_LOSSES = {loss.kind: loss for loss in (StyleLoss, MeanStdStyleLoss, WassersteinStyleLoss)}  # --style-loss
VARIANCE_FLOOR = 1e-5  # added to variances under a square root: a dead channel's is 0
NEWTON_SCHULZ_STEPS = 20


def newton_schulz_square_root(matrix, steps=NEWTON_SCHULZ_STEPS):
    """The square root of a symmetric positive semi-definite matrix by the coupled Newton–Schulz iteration (only
    matrix products, so its gradient is finite everywhere): the matrix scaled to Frobenius norm 1, Y → Y(3I − ZY)/2
    and Z → (3I − ZY)Z/2 from Y = the matrix, Z = I; Y tends to its square root, scaled back."""
    norm = tf.sqrt(tf.reduce_sum(tf.square(matrix)) + 1e-24)  # never 0, nor its gradient infinite (an empty region)
    identity = tf.eye(tf.shape(matrix)[0], dtype=matrix.dtype)
    root, inverse_root = matrix / norm, identity
    for _ in range(steps):
        step = 0.5 * (3.0 * identity - inverse_root @ root)
        root, inverse_root = root @ step, step @ inverse_root
    return root * tf.sqrt(norm)


class TotalVariationLoss:
    """Sum of |differences| between neighbouring pixels: smooths the result (CS20 has none)."""

    name, layers = "tv_loss", ()

    def __init__(self, weight):
        self.weight, self.key = weight, ("tv", weight)

    def build(self, image, features):
        return tf.reduce_sum(tf.image.total_variation(image)), [], {}


def problem_losses(problem):
    """The loss pieces every stage of a problem has, in the order they add up: content (none with --texture),
    style (of the problem's kind; by region with --content-mask), and total variation when it has a weight."""
    terms = [ContentLoss(problem.content_layers, problem.content_weight)] if problem.content_layers else []
    terms.append(STYLE_LOSSES[problem.style_loss](problem.style_layers, problem.style_layer_weights,
                                                  problem.style_weight, problem.styled_regions()))
    if problem.tv_weight:
        terms.append(TotalVariationLoss(problem.tv_weight))
    return terms


class WholeImage:
    """The view of a stage that adds none: the network sees the image alone."""

    name, key = "image", ("whole image",)

    def around(self, image):
        """The network sees the image alone, the picture everywhere."""
        return Sight(seen=image, inside=None, picture=image, fed=[])

    def given(self):
        """(a placeholder for an image given whole, of any size, what the network sees of it, where that is the
        picture)."""
        image = tf.placeholder(tf.float32, (1, None, None, 3))
        return image, image, None

    def own(self, features, layer):
        """A layer's features of the image's own positions."""
        return features


class LuminanceOnly:
    """--color-control luminance (Gatys et al. 2017, §5.1): the network sees the luminance of what another view
    shows it, in all three channels, so that the style acts on luminance alone (the style images are given as
    their luminance; the saved images take the content's colours back). What the network sees past a picture's
    border stays 0, as the other view has it."""

    def __init__(self, inner, mean_pixel):
        self.inner, self.mean_pixel = inner, mean_pixel
        self.name, self.key = inner.name, ("luminance", inner.key)

    def luminance(self, seen, inside):
        """RGB (mean-subtracted) to its luminance in three channels (mean-subtracted), 0 where inside is 0."""
        pixels = seen + self.mean_pixel
        grey = tf.reduce_sum(pixels * controls.LUMA.astype(np.float32), axis=-1, keepdims=True) - self.mean_pixel
        return grey if inside is None else grey * inside

    def around(self, image):
        sight = self.inner.around(image)
        return sight._replace(seen=self.luminance(sight.seen, sight.inside))

    def given(self):
        image, seen, inside = self.inner.given()
        return image, self.luminance(seen, inside), inside

    def own(self, features, layer):
        return self.inner.own(features, layer)


def problem_view(problem, view, mean_pixel):
    """What the network sees for a problem, given what a stage shows it (`view`; None: the image alone)."""
    view = view or WholeImage()
    return LuminanceOnly(view, mean_pixel) if problem.color_control == "luminance" else view


# ---------------------------------------------------------------------------------------------------
# 2. The targets: the style's statistics at each style layer (gathered over the pieces of each style image) and
#    the content image's features at each content layer, computed by the model's own network
#    (StyleTransfer.create_targets) and fed to the losses: one graph serves every size, every image of a data set.

def statistics_of(found, layer_count):
    """Each style layer's StyleStatistics from what the network found: per style image, per piece, per layer,
    (weighted Gram matrix, sum, weight). A piece's sums over positions add up with the others'."""
    return [StyleStatistics(grams=[sum(part[layer][0] for part in style) for style in found],
                            sums=[sum(part[layer][1] for part in style) for style in found],
                            positions=[sum(float(part[layer][2]) for part in style) for style in found])
            for layer in range(layer_count)]


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


# ---------------------------------------------------------------------------------------------------
# 3. The model: one trainable variable, the generated image, and the losses that shape it.

@dataclass
class StepReport:
    step: int  # the global step after this step's update
    losses: dict  # name -> loss of the image this step started from
    summary: bytes  # the serialized loss summaries of this step
    seconds: float  # wall time of the step
    image: np.ndarray = None  # the image the losses belong to (mean-subtracted), when asked for


class StyleTransfer:
    """The training graph, built in CS20's stages; steps() optimises it and reports each step.

    problem: what is optimised (its layers, weights, pooling, optimiser, precision; not its size: the graph takes
    images of any size, and the stages of a run and the images of a data set share it); terms: the loss pieces to
    sum (problem_losses, and what the stage adds); view: what the network sees of the image (WholeImage, or what the
    stage gives). What changes from one stage or image to the next is fed: the start image (`start(sess, image)`),
    and each piece's values (`use_targets`, fed every step), the content's and the style's among them
    (`targets(sess, images)`, computed by the same network).
    """

    def __init__(self, problem, weights, terms, view=None):
        self.problem = problem
        self.weights = weights
        self.terms = terms
        self.view = view or WholeImage()
        self.graph = tf.Graph()
        self.fed = {}  # piece name -> its placeholders
        self.feeds = {}  # placeholder -> value, fed with every step
        self.style_statistics = {}  # the style images' bytes -> their statistics: a style read at one size once

    def build(self):
        with self.graph.as_default():
            self.create_input()
            self.load_vgg()
            self.create_targets()
            self.losses()
            self.optimize()
            self.create_summary()
            # The image first: Adam's moments (and the average) take their shape from it, whatever size it has now.
            self.initialize = [tf.variables_initializer([self.image]), tf.variables_initializer(
                [variable for variable in tf.global_variables() if variable is not self.image])]
        return self

    def use_targets(self, values):
        """What this image's pieces are fed: {piece name: its values}, e.g. "content_loss": the content features."""
        self.feeds = {placeholder: value for name, placeholders in self.fed.items() if placeholders
                      for placeholder, value in zip(placeholders, values[name])}

    def start(self, sess, start_image):
        """Initialise the variables for a new stage: the image from start_image (mean-subtracted, of the stage's
        size), Adam's state afresh."""
        for initializer in self.initialize:
            sess.run(initializer, {self.start_image: start_image})

    def create_input(self):
        # The image lives in mean-subtracted space: the network's own input space. Its size is the stage's: set
        # when it is initialised, not when the graph is built.
        self.start_image = tf.placeholder(tf.float32, (1, None, None, 3), name="start_image")
        self.image = tf.Variable(self.start_image, validate_shape=False, name="generated_image")
        self.output_image = self.image  # what is saved and shown: the image, or (--average) the average of its steps
        self.pixels = tf.identity(self.image)  # the image as the losses read it: [1, height, width, 3]
        self.pixels.set_shape(self.start_image.shape)
        sight = self.view.around(self.pixels)
        self.seen, self.inside, self.picture, self.fed[self.view.name] = sight
        self.global_step = tf.train.get_or_create_global_step()

    def load_vgg(self):
        self.constants = load_vgg.weight_constants(self.weights, self.problem.precision)
        deepest = load_vgg.deepest_layer_used([name for term in self.terms for name in term.layers], [])
        self.layers = load_vgg.vgg_net(self.seen, self.constants, deepest, self.problem.pooling, self.inside)

    def follow(self, seen_map, names):
        """A map at the resolution the network sees, at each of the layers `names`, at the image's own positions."""
        deepest = load_vgg.deepest_layer_used([], list(names))
        maps = load_vgg.guidance(seen_map, deepest, self.problem.mask_propagation)
        return {name: self.view.own(maps[load_vgg.feature_layer(name)], load_vgg.feature_layer(name))
                for name in names}

    def create_targets(self):
        """The network again, on the images the targets come from (sharing the weights): a style image, or a piece
        of one, for its statistics at each style layer (weighted by where the style is taken from: its
        --style-mask, or 1 everywhere); and a content image, seen as the view sees the generated one, for its
        features at each content layer."""
        problem = self.problem
        with tf.name_scope("targets"):
            self.style_piece = tf.placeholder(tf.float32, (1, None, None, 3), name="style_piece")
            self.style_mask = tf.placeholder(tf.float32, (1, None, None, 1), name="style_mask")
            deepest = load_vgg.deepest_layer_used([], problem.style_layers)
            layers = load_vgg.vgg_net(self.style_piece, self.constants, deepest, problem.pooling)
            masks = load_vgg.guidance(self.style_mask, deepest, problem.mask_propagation)
            self.piece_sums = [weighted_sums(layers[name], masks[name])
                               for name in (load_vgg.feature_layer(name) for name in problem.style_layers)]
            self.content_features = []
            if problem.content_layers:
                self.content_input, seen, inside = self.view.given()
                layers = load_vgg.vgg_net(seen, self.constants, load_vgg.deepest_layer_used(problem.content_layers, []),
                                          problem.pooling, inside)
                self.content_features = [self.view.own(layers[load_vgg.feature_layer(name)],
                                                       load_vgg.feature_layer(name)) for name in problem.content_layers]

    def targets(self, sess, images, problem):
        """{piece name: its fed values} for the images of a stage (runner.images.Images, 0..255) of `problem`: the
        content image's features, and the targets of the problem's style loss, from the style's statistics gathered
        over each style image's pieces (computed once for the same style images) and blended as the problem says."""
        mean = self.weights.mean_pixel
        pieces = [list(zip(style, masks)) for style, masks in zip(images.styles, images.masks())]
        key = tuple((part.shape, hashlib.sha256(np.ascontiguousarray(part)).digest(),
                     None if mask is None else hashlib.sha256(np.ascontiguousarray(mask)).digest())
                    for style in pieces for part, mask in style)
        if key not in self.style_statistics:
            found = [[sess.run(self.piece_sums, {self.style_piece: [part - mean], self.style_mask: [
                np.ones((*part.shape[:2], 1), np.float32) if mask is None else mask[..., np.newaxis]]})
                for part, mask in style] for style in pieces]
            self.style_statistics[key] = statistics_of(found, len(self.problem.style_layers))
        for layer, statistics in zip(self.problem.style_layers, self.style_statistics[key]):
            for index, positions in enumerate(statistics.positions):
                if images.styles[index] and positions == 0:  # its --style-mask keeps nothing the layer sees
                    raise FixableError(f"the --style-mask of style {index + 1} keeps nothing of it at {layer}: "
                                       f"widen its white part, or use --mask-propagation simple")
        style_loss = next(term for term in self.terms if term.name == StyleLoss.name)
        targets = {StyleLoss.name: style_loss.fed_values(problem, self.style_statistics[key], images.regions)}
        if self.content_features:
            targets[ContentLoss.name] = sess.run(self.content_features, {self.content_input: [images.content - mean]})
        return targets

    def losses(self):
        with tf.name_scope("losses"):
            names = {name for term in self.terms for name in term.layers}
            features = Features({name: self.view.own(self.layers[load_vgg.feature_layer(name)],
                                                     load_vgg.feature_layer(name)) for name in names},
                                follow=lambda seen_map: self.follow(seen_map, names))
            self.loss_tensors, self.curves = {}, {}
            for term in self.terms:
                self.loss_tensors[term.name], self.fed[term.name], curves = term.build(self.picture, features)
                self.curves.update(curves)
            weighted = [term.weight * self.loss_tensors[term.name] for term in self.terms]
            self.total_loss = weighted[0]
            for loss in weighted[1:]:
                self.total_loss += loss

    def optimize(self):
        if self.problem.optimizer == "adam":
            # Adam updates the image in place; a report's losses belong to the image before the update, so a
            # copy of that is taken first (1 MB at 333x250, fetched only when a report asks for the image).
            self.image_before_step = tf.raw_ops.DeepCopy(x=self.image)
            self.optimizer = tf.train.AdamOptimizer(self.problem.learning_rate)
            with tf.control_dependencies([self.image_before_step]):
                self.train_op = self.optimizer.minimize(self.total_loss, global_step=self.global_step,
                                                        var_list=[self.image])
            # Adam's state, to be carried to the next scale (--adam-across-scales carry): its moments, image-shaped,
            # and its powers of beta1 and beta2 (the bias correction, going on where it was)
            self.adam_moments = [self.optimizer.get_slot(self.image, name) for name in ("m", "v")]
            self.adam_powers = [variable for variable in tf.global_variables()
                                if variable.op.name in ("beta1_power", "beta2_power")]
            self.adam_feeds = [tf.placeholder(tf.float32, variable.shape) for variable in self.adam_moments +
                               self.adam_powers]
            self.set_adam_state = tf.group([tf.assign(variable, value) for variable, value in
                                            zip(self.adam_moments + self.adam_powers, self.adam_feeds)])
            if self.problem.average:  # --average: an exponential moving average of the steps' images, kept in
                # the checkpoints with the image (so a resume goes on exactly), is the image saved and shown
                self.output_image = tf.Variable(self.start_image, trainable=False, validate_shape=False,
                                                name="average_image")
                with tf.control_dependencies([self.train_op]):
                    decay = self.problem.average
                    self.train_op = tf.assign(self.output_image, decay * self.output_image + (1 - decay) * self.image)
        else:  # scipy's L-BFGS-B drives: it feeds an image in and gets the loss and its gradient back
            self.gradient = tf.gradients(self.total_loss, [self.image])[0]
            self.count_step = tf.assign_add(self.global_step, 1)
            self.new_image = tf.placeholder(tf.float32, self.image.shape)
            self.set_image = tf.assign(self.image, self.new_image)

        self.image_is_finite = tf.reduce_all(tf.math.is_finite(self.output_image))  # clipping would hide a NaN

    def create_summary(self):
        self.loss_tensors = {"total_loss": self.total_loss, **self.loss_tensors, **self.curves}
        self.loss_summary = tf.summary.merge([tf.summary.scalar(name, loss)
                                              for name, loss in self.loss_tensors.items()])

    def steps(self, sess, last_step, with_images=False):
        """Take steps until the global step is last_step, yielding a StepReport after each.

        The loss summaries come from the same sess.run as the step itself: no second forward pass. Every step
        fetches the same tensors: each distinct set of fetches gets its own executor in TensorFlow, with its
        own copy of the weights (measured: +180 MB). with_images: each report carries its image too.
        """
        fetches = {"losses": self.loss_tensors, "summary": self.loss_summary}
        if self.problem.optimizer == "adam":
            if with_images:
                fetches["image"] = self.image_before_step
            return self._adam_steps(sess, last_step, fetches)
        return self._lbfgs_steps(sess, last_step, fetches, with_images)

    def _adam_steps(self, sess, last_step, fetches):
        step = int(sess.run(self.global_step))
        while step < last_step:
            step += 1  # what train_op makes the global step (read in the same run, it could be either value)
            started = time.perf_counter()
            result = sess.run({"train": self.train_op, **fetches}, self.feeds)
            yield StepReport(step, result["losses"], result["summary"], time.perf_counter() - started,
                             result.get("image"))

    def _lbfgs_steps(self, sess, last_step, fetches, with_images):
        """One step is one loss-and-gradient evaluation of the image L-BFGS asks for. The image variable holds
        the best image evaluated so far, which is what checkpoints and outputs save; a resumed run restarts
        L-BFGS's memory from it. Its pixels are kept within 0..255 (the image is mean-subtracted): what L-BFGS
        optimises is what is saved, where outside them it would optimise values the saved file clips."""
        step = int(sess.run(self.global_step))
        best_loss, start = math.inf, sess.run(self.image)

        def evaluate(flat_image):
            nonlocal step, best_loss
            step += 1
            image = flat_image.reshape(start.shape).astype(np.float32)
            started = time.perf_counter()
            result = sess.run({"gradient": self.gradient, "count": self.count_step, **fetches},
                              {**self.feeds, self.image: image})
            loss = float(result["losses"]["total_loss"])
            if loss < best_loss:
                best_loss = loss
                sess.run(self.set_image, {self.new_image: image})
            report = StepReport(step, result["losses"], result["summary"], time.perf_counter() - started,
                                image if with_images else None)
            return loss, result["gradient"], report

        low = -np.asarray(self.weights.mean_pixel, np.float64)
        return lbfgs.steps(evaluate, start, last_step - step, bounds=(low, low + 255))


def losses_of(image, problem, weights, images):
    """The losses of an image (in the network's space, [1, height, width, 3]) as a whole, at its size: how a
    result scores, however it was made (the benchmark compares results made in parts with whole ones)."""
    model = build_graph(problem, weights, stages.Extras())
    with tf.Session(graph=model.graph, config=ONE_RUN_CONFIG) as sess:
        model.use_targets(model.targets(sess, images, problem))
        model.start(sess, image)
        return sess.run(model.loss_tensors, model.feeds)


def losses_of_run(run_record, image_path, weights, files):
    """The losses of a run's image file (its final image, say) as a whole, scored on the problem its run record
    (run.json) holds at the image's own size, by the float32 network whatever the run computed in (so that runs
    in either precision compare); files: its runner.images.ImageFiles."""
    with Image.open(image_path) as saved:
        pixels = np.asarray(saved.convert("RGB"), np.float32)
    height, width = pixels.shape[:2]
    with open(run_record) as file:
        problem = dataclasses.replace(Problem.from_record(json.load(file)), precision="fp32").at_size(width, height)
    return losses_of((pixels - weights.mean_pixel)[np.newaxis], problem, weights, files.read_at(width, height))


# ---------------------------------------------------------------------------------------------------
# 4. train(): one stage of one item in one Session; run(): its stages (runner.stages); run_work(): the items.

def build_graph(problem, weights, extras):
    """The model of a stage, built, for runner.graphs. extras: what the stage adds (runner.stages.Extras)."""
    return StyleTransfer(problem, weights, [*problem_losses(problem), *extras.terms],
                         problem_view(problem, extras.view, weights.mean_pixel)).build()


def train(job, index, graphs, checkpoint, previous, stop):
    """Optimise stage `index` of job's plan up to its last step; return (exit code, its Outputs, the stage's
    result: (the image reached, Adam's state or None)). graphs: the Graphs of this process, shared by its images.
    checkpoint: the one this stage starts from, or None. previous: the previous stage's result (None at the
    first)."""
    previous_image, previous_state = previous or (None, None)
    plan = job.plan
    stage = plan.stages[index]
    problem = job.problem.at_size(stage.width, stage.height)
    images = plan.images_at(index)
    model, saver, sess = graphs.get(problem, job.weights, plan.extras_at(index))
    model.use_targets({**model.targets(sess, images, problem), **plan.feeds_at(index)})
    start_image = plan.start_at(index, previous_image)
    if start_image is None:
        start_image = initial_image(problem, images.content, images.start_style, job.weights.mean_pixel)
    first_step = stages.first_step(plan.stages, index)
    if len(plan.stages) > 1 and checkpoint is None:
        print(f"{plan.describe(index)}, steps {first_step + 1} to {stage.last_step}", flush=True)

    def initialize():
        model.start(sess, start_image)
        if problem.adam_across_scales == "carry" and previous_state is not None:  # the moments brought to this size
            moments = [plan.carried(index, moment) for moment in previous_state[:2]]
            if moments[0] is not None:
                moments[1] = np.maximum(moments[1], 0)  # a second moment, resized, stays non-negative
                sess.run(model.set_adam_state, dict(zip(model.adam_feeds, [*moments, *previous_state[2:]])))

    folder = run_folder.RunFolder(job.folders.checkpoint_dir, job.folders.log_dir, saver, job.schedule.keep)
    step = folder.start_or_resume(sess, job.problem, model.global_step, first_step, checkpoint, job.schedule.restart,
                                  initialize=initialize)
    outputs = Outputs(sess, model, folder, job, index, start_step=step, log_first=checkpoint is None,
                      content_image=images.content)
    with stop.between_steps():  # a signal now stops the loop after its step, which saves first
        for report in model.steps(sess, stage.last_step, with_images=outputs.keep_best):
            outputs.after_step(report)
            if stop.received:
                break
    if stop.received:
        outputs.stopped(stop.received)
        return 128 + stop.received, outputs, None
    if outputs.step < stage.last_step:
        print(f"L-BFGS converged at step {outputs.step}", flush=True)
    outputs.finish_stage()
    if index == len(plan.stages) - 1 and outputs.keep_best:
        print(f"Best: loss {outputs.best_loss:.4g} at step {outputs.best_step}, image {job.folders.best_output}",
              flush=True)
    state = sess.run(model.adam_moments + model.adam_powers) if problem.optimizer == "adam" else None
    return 0, outputs, (sess.run(model.output_image), state)


def run(job, graphs, stop):
    """Train job's image to its last step, stage by stage; return an ItemResult (its code: 0, or 128 + a signal's
    number)."""
    plan = job.plan
    graphs.make_room_for(plan.graph_count)
    with run_folder.locked(job.folders.checkpoint_dir):  # one process at a time in a run folder
        found = run_folder.newest_readable_checkpoint(job.folders.checkpoint_dir) if job.resumable else None
        checkpoint, restored_step = found or (None, None)
        first_index = stages.index_at(plan.stages, restored_step)  # the stage of that checkpoint's image
        for folder in job.folders.all():
            os.makedirs(folder, exist_ok=True)
        result = None  # the previous stage's: (its image, Adam's state)
        for index in range(first_index, len(plan.stages)):
            code, outputs, result = train(job, index, graphs, checkpoint if index == first_index else None, result,
                                          stop)
            if code:
                return ItemResult(code, None, None, outputs.step)
            plan.stage_done(index, result[0])
        plan.run_done()
    print(f"Done: step {outputs.step}; image {job.folders.output}; checkpoints in "
          f"{job.folders.checkpoint_dir}; TensorBoard: tensorboard --logdir {job.folders.log_dir}", flush=True)
    return ItemResult(0, job.folders.output, outputs.last_loss, outputs.step)


def main(argv=None):
    args = options.parse_args(argv)
    with StopSignals() as stop:  # Ctrl-C and SIGTERM, from here to the end (runner/signals.py)
        try:
            return run_work(prepare_work(args), stop)  # the options, as typed objects: nothing below reads them
        except FixableError as error:
            print(f"style_transfer.py: error: {error}", file=sys.stderr)
            return 2
        except OSError as error:  # a folder or file the run cannot write (a full disk, say) where none was expected
            print(f"style_transfer.py: error: cannot write {error.filename or 'a file'} ({error.strerror or error}): "
                  f"free some space or fix the folder's permissions, and run the same command again", file=sys.stderr)
            return 2
        except Stopped as stopped:  # between steps the loop saves and stops itself; this is before a stage or between
            print(f"style_transfer.py: interrupted ({stopped}); what was saved before (checkpoints, finished stages "
                  f"and items) is kept: run the same command to go on", file=sys.stderr)
            return 128 + stopped.number


def run_work(work, stop):
    """Run this process's items (one image, or its shard of a data set); return the exit code."""
    graphs = Graphs(build_graph, several_items=work.several_items)
    try:
        if not work.several_items:  # one image: the folders as given
            return run(work.make_job(work.items[0], own_folders=False), graphs, stop).code
        code, done = batch.run_items(work.items, work.shard, work.output_dir,
                                     lambda item: run(work.make_job(item, own_folders=True), graphs, stop),
                                     lambda item: work.make_job.folders.for_item(item.folder).checkpoint_dir,
                                     redo=work.restart, options=work.options)
    finally:
        graphs.close()
    if work.output_tfrecord and code in (0, 2):
        batch.write_results(work.output_tfrecord, work.shard, work.output_dir,
                            work.items[work.shard.index::work.shard.count], done,
                            work.options)
    return code


if __name__ == "__main__":
    sys.exit(main())
