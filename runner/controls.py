"""What the controls of Gatys et al. 2017 ("Controlling Perceptual Factors in Neural Style Transfer") do to a run's
images, in NumPy: the style's colours (§5) and the regions of the content (§4).

    matched_colors(style, content)      # --color-control match: the style recoloured with the content's colours
    luminance(pixels)                   # Y of RGB, as Pillow's YCbCr has it
    matched_luminance(style, content)   # --color-control luminance: the style's luminance, with the content's
                                        # mean and spread, in all three channels
    values = region_values(mask_values(path, w, h), path)   # --content-mask's values at the output size,
    regions_of(mask_values(path, w2, h2), values)           # one channel a region (darkest first), at any size
    weights_of(path, w, h)              # --style-mask: where a style image's statistics are taken from

The images are float32 RGB in 0..255; results are not clipped to 0..255 (the network takes any floats, and
clipping would undo the match).
"""

import numpy as np
from PIL import Image

import utils
from utils import FixableError

LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, Pillow's YCbCr (and YIQ's Y): the paper's luminance


def colour_moments(pixels):
    """(mean [3], covariance [3, 3]) of an image's (or a stack of images') colours, float64."""
    colours = np.asarray(pixels, np.float64).reshape(-1, 3)
    return colours.mean(axis=0), np.cov(colours, rowvar=False, bias=True)


def symmetric_root(matrix, inverse=False, floor=1e-6):
    """The symmetric (inverse) square root of a symmetric positive semi-definite matrix (NumPy, float64), its
    eigenvalues floored at `floor` times the largest: an inverse root must not blow up on a flat channel (a
    greyscale image's covariance is singular); a root alone takes floor 0 (rounding's slightly negative ones, 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    values = np.maximum(values, floor * max(values.max(), 1e-12))
    return (vectors * values ** (-0.5 if inverse else 0.5)) @ vectors.T


def matched_colors(style, content):
    """The style image with its colours moved to the content's: the linear map x -> A (x - mean_s) + mean_c with
    A Σ_s Aᵀ = Σ_c, in its symmetric form A = Σ_s^-½ (Σ_s^½ Σ_c Σ_s^½)^½ Σ_s^-½ (the Monge–Kantorovich map).

    Every form of A (Cholesky, PCA, symmetric) matches the mean and the covariance; they differ in how they turn
    the colours on the way. The symmetric one is the optimal transport between the two Gaussians: of all maps that
    match them it moves the colours least, and, unlike Cholesky's, it does not depend on the channels' order.
    content: an image or a stack of them (a film's frames), whose colours together are matched."""
    style_mean, style_covariance = colour_moments(style)
    content_mean, content_covariance = colour_moments(content)
    root, inverse_root = symmetric_root(style_covariance), symmetric_root(style_covariance, inverse=True)
    transfer = inverse_root @ symmetric_root(root @ content_covariance @ root) @ inverse_root
    recoloured = (np.asarray(style, np.float64).reshape(-1, 3) - style_mean) @ transfer.T + content_mean
    return recoloured.reshape(np.shape(style)).astype(np.float32)


def luminance(pixels):
    """The luminance Y of RGB pixels [..., 3] (0..255): [...]."""
    return np.asarray(pixels, np.float64) @ LUMA


def matched_luminance(style, content):
    """The style's luminance with the content's mean and standard deviation (the paper's luminance matching, which
    keeps the style's shading but in the content's range), in all three channels: a grey image the network sees
    as it sees the generated image's luminance."""
    style_luminance, content_luminance = luminance(style), luminance(content)
    spread = content_luminance.std() / max(style_luminance.std(), 1e-6)
    matched = (style_luminance - style_luminance.mean()) * spread + content_luminance.mean()
    return np.repeat(matched[..., np.newaxis], 3, axis=-1).astype(np.float32)


def mask_values(path, width, height, what):
    """A mask image's values, fitted to width x height as an image is (cropped about its centre) but resized to the
    nearest pixel, so that no value between two regions' appears: float64 [height, width]. A grey image's value is
    its grey level; a colour (or palette) image's, its colour ordered by its luminance, darkest first."""
    fitted = np.asarray(utils.fitted(utils.rgb_image(path, what), width, height, Image.Resampling.NEAREST),
                        np.float64)
    packed = fitted[..., 0] * 65536 + fitted[..., 1] * 256 + fitted[..., 2]
    return np.rint(luminance(fitted) * 4) * 2 ** 24 + packed  # by luminance (to a quarter level), then by colour


def weights_of(path, width, height, what="--style-mask"):
    """A style mask as weights in 0..1 (its grey level over 255: white takes the style, black does not), fitted
    to width x height as the style image is."""
    grey = utils.rgb_image(path, what).convert("L")
    weights = np.asarray(utils.fitted(grey, width, height, Image.Resampling.NEAREST), np.float32) / 255
    if not weights.any():
        raise FixableError(f"{what} {path} keeps nothing of its style at {width}x{height} (black all over): paint "
                           f"white where the style's statistics are to come from")
    return weights


def region_values(mask, path, what="--content-mask"):
    """The values of a mask (float [height, width], as mask_values gives it) in order, darkest first: its regions,
    found once at the output size, so that a region too small to show at a coarser size keeps its place (an empty
    channel) and every region its style. Refused if it has one value only (nothing to tell apart)."""
    values = np.unique(mask)
    if len(values) < 2:
        raise FixableError(f"{what} {path} has one value only ({values[0]:g}): draw the regions in different grey "
                           f"levels (or palette colours)")
    return tuple(values)


def regions_of(mask, values):
    """The regions of a mask (float [height, width], its grey or palette values): [height, width, regions], one
    channel a region of `values` (region_values), 1 inside it and 0 elsewhere."""
    return (mask[..., np.newaxis] == np.asarray(values)).astype(np.float32)
