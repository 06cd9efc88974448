"""Writes MatConvNet-format VGG .mat files for the tests: real layer names, structure and shapes, random weights.

Two layouts, as MatConvNet published them:
- "current": top-level `layers` (1×43 cell) and `meta` (meta.normalization.averageImage is 1×1×3);
  conv structs with fields name, type, weights, size, pad, stride, precious, dilate, opts.
- "beta16": top-level `layers` and `normalization` (averageImage is a whole 224×224×3 image);
  conv structs whose first field is weights.

The fully connected layers fc6, fc7 and fc8 keep their names and types but get small kernels
(the loader never reads them; their real 480 MB would only slow the tests down).
"""

import numpy as np
import scipy.io

MEAN_PIXEL = np.array([123.68, 116.779, 103.939], dtype=np.float32)

VGG19_BLOCKS = (2, 2, 4, 4, 4)  # convolutions per block
VGG16_BLOCKS = (2, 2, 3, 3, 3)
CHANNELS = (64, 128, 256, 512, 512)


def _struct(**fields):
    """A 1×1 MATLAB struct with these fields, in this order."""
    struct = np.empty((1, 1), dtype=[(name, object) for name in fields])
    for name, value in fields.items():
        struct[0, 0][name] = value
    return struct


def _cell(*items):
    cell = np.empty((1, len(items)), dtype=object)
    for index, item in enumerate(items):
        cell[0, index] = item
    return cell


def layer_specs(blocks=VGG19_BLOCKS, real_fc=False):
    """(name, type, kernel shape or None) of every layer, up to prob.

    real_fc: give fc6-fc8 their real shapes (a file as large as the real one, 535 MB, for benchmarks).
    """
    specs, channels_in = [], 3
    for block, (count, channels) in enumerate(zip(blocks, CHANNELS), start=1):
        for index in range(1, count + 1):
            specs.append((f"conv{block}_{index}", "conv", (3, 3, channels_in, channels)))
            specs.append((f"relu{block}_{index}", "relu", None))
            channels_in = channels
        specs.append((f"pool{block}", "pool", None))
    fc6, fc7, fc8 = ((7, 7, 512, 4096), (1, 1, 4096, 4096), (1, 1, 4096, 1000)) if real_fc else \
        ((1, 1, 512, 8), (1, 1, 8, 8), (1, 1, 8, 10))  # real names and types, small kernels: never read
    specs += [("fc6", "conv", fc6), ("relu6", "relu", None), ("fc7", "conv", fc7),
              ("relu7", "relu", None), ("fc8", "conv", fc8), ("prob", "softmax", None)]
    return specs


def random_weights(specs, seed=0):
    """He-initialised kernels (activations keep their scale through the layers) and small biases."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, kind, shape in specs:
        if kind == "conv":
            kernel = rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / np.prod(shape[:3])))
            weights[name] = (kernel, rng.uniform(-0.1, 0.1, shape[-1]).astype(np.float32))
    return weights


def write_vgg_mat(path, layout="current", blocks=VGG19_BLOCKS, seed=0, weights=None, specs=None):
    """Write a VGG .mat at path; return {conv name: (W, b)} as written."""
    specs = specs or layer_specs(blocks)
    weights = weights or random_weights(specs, seed)
    layers = []
    for name, kind, shape in specs:
        if kind == "conv":
            kernel, bias = weights[name]
            if layout == "current":
                layers.append(_struct(name=name, type=kind, weights=_cell(kernel, bias.reshape(1, -1)),
                                      size=np.array(shape, dtype=float).reshape(1, 4), pad=np.ones((1, 4)),
                                      stride=np.ones((1, 2)), precious=False, dilate=1.0, opts=_cell()))
            else:
                layers.append(_struct(weights=_cell(kernel, bias.reshape(-1, 1)), pad=np.ones((1, 4)), type=kind,
                                      name=name, stride=np.ones((1, 2))))
        elif kind == "pool":
            layers.append(_struct(name=name, type=kind, method="max", pool=np.full((1, 2), 2.0),
                                  stride=np.full((1, 2), 2.0), pad=np.zeros((1, 4))))
        else:
            layers.append(_struct(name=name, type=kind))
    contents = {"layers": _cell(*layers)}
    if layout == "current":
        normalization = _struct(averageImage=MEAN_PIXEL.reshape(1, 1, 3), imageSize=np.array([[224, 224, 3]]))
        contents["meta"] = _struct(normalization=normalization, classes=_struct(name=_cell("a", "b")))
    else:
        mean_image = np.broadcast_to(MEAN_PIXEL, (224, 224, 3)).astype(np.float32)
        contents["normalization"] = _struct(averageImage=mean_image, keepAspect=True)
        contents["classes"] = _struct(name=_cell("a", "b"))
    scipy.io.savemat(path, contents)
    return weights
