"""VGG-19 from MatConvNet's `imagenet-vgg-verydeep-19.mat` (or Keras' notop .h5), as a TF1 graph of constants.

Two steps, kept apart so the file is read once however many graphs need the network:

    weights = load_weights(path, deepest_layer)   # read and check the .mat (NumPy only)
    layers = vgg_net(image, weight_constants(weights), deepest_layer)  # conv/relu/avg-pool ops on `image`

The network computes in the precision of its constants: float32 (CS20's), or bfloat16 (`weight_constants(weights,
"bf16")`), where the convolutions run at twice the speed on processors that have it (avx512_bf16, AMX, GPUs from
Ampere on) and the constants hold half the bytes. Whatever it computes in, its input and the layers it returns
are float32, so the Gram matrices and losses built on them sum in float32.

As in CS20, a layer named `convX_Y` in a loss means that conv layer *after its ReLU*
(`feature_layer` maps the one to the other); `reluX_Y` and `poolX` may be named directly.

The .mat comes in two layouts: the current one (`layers` and `meta`) and the older
"beta16" one (`layers` and a top-level `normalization`). Both are read by field name, never by
field position, and every layer up to the deepest one used is checked against VGG-19's names and
kernel shapes, so that a file of another network is refused with the first layer that does not fit.

Keras' `vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5` holds the same (original Caffe) conv weights in
80 MB, for BGR input: its first kernel's input channels are reversed here so that every file takes RGB.
Which format a file is in is told from its first bytes, not its name.
"""

import hashlib
import os
import sys
from dataclasses import dataclass

import numpy as np
import scipy.io

import utils
from runner.tf_setup import tf  # TensorFlow as the tool sets it up
from utils import FixableError, atomic_output

WEIGHTS_URL = utils.VGG_WEIGHTS_URL
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
KERAS_MEAN_PIXEL_RGB = (123.68, 116.779, 103.939)  # Keras' VGG-19 subtracts these, in BGR order

# VGG-19's layers up to pool5, in the order (and at the index) they stand in the .mat's `layers` cell.
# The fully connected layers after pool5 (480 of the file's 535 MB) are never read.
VGG19_LAYERS = (
    "conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1",
    "conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2",
    "conv3_1", "relu3_1", "conv3_2", "relu3_2", "conv3_3", "relu3_3", "conv3_4", "relu3_4", "pool3",
    "conv4_1", "relu4_1", "conv4_2", "relu4_2", "conv4_3", "relu4_3", "conv4_4", "relu4_4", "pool4",
    "conv5_1", "relu5_1", "conv5_2", "relu5_2", "conv5_3", "relu5_3", "conv5_4", "relu5_4", "pool5",
)

# Output channels of each block's convolutions: conv3_2 has 256, conv4_1 has 512, ...
BLOCK_CHANNELS = {"1": 64, "2": 128, "3": 256, "4": 512, "5": 512}


def layers_up_to(layer):
    """The table's layers from the input up to and including `layer`, in order."""
    return VGG19_LAYERS[:VGG19_LAYERS.index(layer) + 1]


def deepest_layer_used(content_layers, style_layers):
    """The deepest layer the losses read (names as in a loss, convX_Y meaning after its ReLU): the network is
    built up to it and no further."""
    used = [feature_layer(name) for name in [*content_layers, *style_layers]]
    return max(used, key=VGG19_LAYERS.index)


def layer_kind(name):
    """'conv', 'relu' or 'pool': the table's names start with their kind."""
    return name[:4]


def kernel_shape(name):
    """VGG-19's [height, width, in, out] kernel shape for a conv layer of the table."""
    index = VGG19_LAYERS.index(name)
    previous_convs = [n for n in VGG19_LAYERS[:index] if layer_kind(n) == "conv"]
    channels_in = BLOCK_CHANNELS[previous_convs[-1][4]] if previous_convs else 3
    return (3, 3, channels_in, BLOCK_CHANNELS[name[4]])


def feature_layer(name):
    """The table name of the tensor a loss reads for `name`: a conv layer is read after its ReLU."""
    if name not in VGG19_LAYERS:
        raise FixableError(f"unknown VGG-19 layer {name!r}: use one of {', '.join(VGG19_LAYERS)}")
    return name.replace("conv", "relu") if layer_kind(name) == "conv" else name


def layer_size(width, height, layer):
    """(height, width) of a layer's feature map for a width x height input: SAME pooling halves, rounding up."""
    for name in layers_up_to(layer):
        if layer_kind(name) == "pool":
            width, height = -(-width // 2), -(-height // 2)
    return height, width


def activation_count(width, height, deepest_layer):
    """How many floats the layers up to deepest_layer produce for one width x height image."""
    count = 0
    channels = 3
    for name in layers_up_to(deepest_layer):
        if layer_kind(name) == "conv":
            channels = kernel_shape(name)[-1]
        layer_height, layer_width = layer_size(width, height, name)
        count += layer_height * layer_width * channels
    return count


@dataclass
class VGGWeights:
    """The conv kernels and biases up to one layer, the mean pixel, and a fingerprint of them all."""
    kernels: dict  # conv layer name -> (W [height, width, in, out] float32, b [out] float32)
    mean_pixel: np.ndarray  # RGB, to subtract from 0..255 input
    fingerprint: str  # SHA-256 of every conv layer to pool5 and the mean: the network's identity, whatever
    #                   the file is called or whichever layout it has


def _field(struct, name):
    """A field of a MATLAB struct as loadmat returns it, or None if the struct has no such field."""
    if name not in (struct.dtype.names or ()):
        return None
    return struct[name]


def _text(value):
    """A MATLAB char array (as loadmat returns it) as a Python str."""
    return str(np.asarray(value).squeeze())


def _mean_pixel(mat, path):
    """The RGB mean pixel from the file's own metadata, in either layout."""
    if "meta" in mat:  # current layout: meta.normalization.averageImage is 1x1x3
        normalization = _field(mat["meta"][0, 0], "normalization")
    else:  # older layout: normalization.averageImage is a whole 224x224x3 mean image
        normalization = mat.get("normalization")
    average = None if normalization is None else _field(normalization[0, 0], "averageImage")
    if average is None:
        raise FixableError(f"{path}: no mean pixel (normalization.averageImage) found: "
                         f"not MatConvNet's VGG-19; get {WEIGHTS_URL}")
    average = np.asarray(average, dtype=np.float64)
    return average.reshape(-1, 3).mean(axis=0).astype(np.float32)


def load_weights(path, deepest_layer="pool5"):
    """The checked conv weights of the file at `path` up to `deepest_layer`, from the cache if it has them."""
    weights = _read_cache(path) or _read_and_cache(path)
    used = layers_up_to(deepest_layer)
    return VGGWeights({name: weights.kernels[name] for name in used if name in weights.kernels},
                      weights.mean_pixel, weights.fingerprint)


def _read_mat(path):
    """Read and check every conv layer up to pool5 of the .mat at `path`."""
    try:
        mat = scipy.io.loadmat(path, variable_names=("layers", "meta", "normalization"))
    except FileNotFoundError:
        raise FixableError(f"weights file {path} not found: get {WEIGHTS_URL} or pass --vgg PATH") from None
    except Exception as error:  # scipy raises many kinds for a truncated or foreign file
        raise FixableError(f"weights file {path} is not a readable MATLAB .mat file ({error}): "
                         f"download it again from {WEIGHTS_URL}") from None
    if "layers" not in mat:
        raise FixableError(f"{path} has no 'layers': not MatConvNet's VGG-19; get {WEIGHTS_URL}")
    layers = np.asarray(mat["layers"]).reshape(-1)
    if len(layers) < len(VGG19_LAYERS):
        raise FixableError(f"{path} has {len(layers)} layers, VGG-19 has {len(VGG19_LAYERS)} up to pool5: "
                         f"not VGG-19 weights; get {WEIGHTS_URL}")

    kernels = {}
    for index, name in enumerate(VGG19_LAYERS):
        layer = np.asarray(layers[index]).reshape(-1)[0]
        found = _text(_field(layer, "name")) if _field(layer, "name") is not None else "(no name)"
        if found != name:
            raise FixableError(f"{path}: layer {index} is {found!r} where VGG-19 has {name!r}: "
                             f"not VGG-19 weights; get {WEIGHTS_URL}")
        if layer_kind(name) != "conv":
            continue
        arrays = _field(layer, "weights")
        if arrays is None or np.asarray(arrays).size < 2:
            raise FixableError(f"{path}: layer {name} has no kernel and bias: not VGG-19 weights; get {WEIGHTS_URL}")
        kernels[name] = _checked_kernel(path, name, *np.asarray(arrays).reshape(-1)[:2])
    return _with_fingerprint(kernels, _mean_pixel(mat, path))


def _read_keras_h5(path):
    """Read and check the conv layers of Keras' VGG-19 notop weights (HDF5; one group per layer)."""
    import h5py  # comes with TensorFlow's Keras; only this format needs it

    kernels = {}
    try:
        with h5py.File(path, "r") as file:
            for name in (name for name in VGG19_LAYERS if layer_kind(name) == "conv"):
                keras_name = f"block{name[4]}_conv{name[6]}"  # conv3_2 is Keras' block3_conv2
                if keras_name not in file:
                    raise FixableError(f"{path} has no layer {keras_name} (VGG-19's {name}): not Keras' VGG-19 "
                                     f"weights; get {WEIGHTS_URL}")
                group = file[keras_name]
                names = [item.decode() if isinstance(item, bytes) else item for item in group.attrs["weight_names"]]
                kernels[name] = _checked_kernel(path, name, group[names[0]][()], group[names[1]][()])
    except FixableError:
        raise
    except Exception as error:  # h5py raises many kinds for a truncated or foreign file
        raise FixableError(f"weights file {path} is not a readable Keras weights file ({error}): "
                         f"download it again, or use {WEIGHTS_URL}") from None
    kernel, bias = kernels["conv1_1"]
    kernels["conv1_1"] = (np.ascontiguousarray(kernel[:, :, ::-1, :]), bias)  # BGR input channels to RGB
    return _with_fingerprint(kernels, np.array(KERAS_MEAN_PIXEL_RGB, dtype=np.float32))


def _checked_kernel(path, name, kernel, bias):
    """(kernel, bias) as float32, refused unless they have VGG-19's shapes for this layer and finite values."""
    kernel, bias = np.asarray(kernel, dtype=np.float32), np.asarray(bias, dtype=np.float32).reshape(-1)
    expected = kernel_shape(name)
    if kernel.shape != expected or bias.shape != expected[-1:]:
        raise FixableError(f"{path}: layer {name} has kernel {kernel.shape} and bias {bias.shape} where "
                           f"VGG-19 has {expected} and ({expected[-1]},): not VGG-19 weights; get {WEIGHTS_URL}")
    if not (np.isfinite(kernel).all() and np.isfinite(bias).all()):
        raise FixableError(f"{path}: layer {name} has NaN or infinite weights: the file is damaged; download it "
                           f"again from {WEIGHTS_URL}")
    return kernel, bias


def _with_fingerprint(kernels, mean_pixel):
    digest = hashlib.sha256(mean_pixel.tobytes())
    for name, (kernel, bias) in kernels.items():
        digest.update(name.encode())
        digest.update(kernel.tobytes())
        digest.update(bias.tobytes())
    return VGGWeights(kernels, mean_pixel, digest.hexdigest())


# The cache: the real .mat is 535 MB, 480 of them fully connected layers nothing here uses, and reading it
# takes seconds and its size in memory. After the first read, the checked conv weights (80 MB) are kept in
# one .npz per weights file, valid while the file's size and modification time are unchanged.

def _cache_file(path):
    folder = os.environ.get("STYLE_TRANSFER_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                                     "style_transfer")
    name = hashlib.sha256(os.path.realpath(path).encode()).hexdigest()[:24]
    return os.path.join(folder, f"vgg19-{name}.npz")


def _file_stamp(path):
    status = os.stat(path)
    return f"{status.st_size}:{status.st_mtime_ns}"


def _read_cache(path):
    """The weights cached for this very file (same size and modification time), or None.

    Never trusted blindly: each layer's shape and values are checked as the file's were, and the fingerprint
    written with them (a SHA-256 of them all) must match them. A damaged cache is read past with a warning.
    """
    cache = _cache_file(path)
    if not os.path.exists(cache):
        return None
    try:
        with np.load(cache) as cached:
            if str(cached["stamp"]) != _file_stamp(path):
                return None
            kernels = {name: _checked_kernel(cache, name, cached[f"{name}/kernel"], cached[f"{name}/bias"])
                       for name in VGG19_LAYERS if layer_kind(name) == "conv"}
            weights = _with_fingerprint(kernels, np.asarray(cached["mean_pixel"], dtype=np.float32).reshape(3))
            if weights.fingerprint != str(cached["fingerprint"]):
                raise ValueError("its checksum does not match its contents")
            return weights
    except Exception as error:  # truncated, bit-flipped, foreign: numpy and zipfile raise many kinds
        print(f"warning: the weights cache {cache} is damaged ({utils.one_line(error)}); reading {path} again",
              file=sys.stderr)
        return None


def _read_file(path):
    """Read and check a weights file, MatConvNet's .mat or Keras' .h5, told apart by its first bytes."""
    try:
        with open(path, "rb") as file:
            signature = file.read(len(HDF5_SIGNATURE))
    except FileNotFoundError:
        raise FixableError(f"weights file {path} not found: get {WEIGHTS_URL} or pass --vgg PATH") from None
    except OSError as error:
        raise FixableError(f"weights file {path} cannot be read ({error.strerror}): pass another --vgg") from None
    return _read_keras_h5(path) if signature == HDF5_SIGNATURE else _read_mat(path)


def _read_and_cache(path):
    weights = _read_file(path)
    arrays = {f"{name}/{part}": array for name, pair in weights.kernels.items()
              for part, array in zip(("kernel", "bias"), pair)}
    try:
        os.makedirs(os.path.dirname(_cache_file(path)), exist_ok=True)
        with atomic_output(_cache_file(path)) as temporary, open(temporary, "wb") as file:
            np.savez(file, stamp=_file_stamp(path), mean_pixel=weights.mean_pixel,
                     fingerprint=weights.fingerprint, **arrays)
    except OSError:  # a cache we cannot write only costs time
        pass
    return weights


PRECISIONS = {"fp32": tf.float32, "bf16": tf.bfloat16}  # --precision: what the network computes in


def weight_constants(weights, precision="fp32"):
    """Every kernel and bias as a tf.constant of the current graph: {conv layer name: (kernel, bias)}, in the
    precision's type (bfloat16 rounded from the file's float32, to the nearest).

    Kept in MatConvNet's own [height, width, in, out] order, which is TensorFlow's (no transpose).
    Networks built on several inputs of one graph share them.
    """
    numpy_type = PRECISIONS[precision].as_numpy_dtype
    constants = {}
    for name, (kernel, bias) in weights.kernels.items():
        with tf.name_scope(name):
            constants[name] = (tf.constant(kernel.astype(numpy_type), name="weights"),
                               tf.constant(bias.astype(numpy_type), name="bias"))
    return constants


def vgg_net(image, constants, deepest_layer, pooling="avg", inside=None):
    """VGG-19 on `image` (NHWC float32, RGB minus the mean pixel) up to `deepest_layer`: {layer name: float32 tensor}.

    Conv: stride 1, SAME padding, plus bias. Pooling: 2x2, stride 2, average by default, as Gatys et al.
    recommend for image generation ("max" is VGG's own). `constants` comes from weight_constants; the layers are
    computed in their type, each layer handed back as float32 (a cast the graph runs only where a loss reads it).
    inside: [1, height, width, 1], 1 where `image` shows the picture and 0 past its border (an image seen within
    a margin of other pixels that ends there); the activations past the border are held at 0 after every conv, as SAME
    padding has them at the picture's own border, and the average pools count the picture's part of a window.
    """
    compute_type = next(iter(constants.values()))[0].dtype
    layers = {}
    net = tf.cast(image, compute_type)
    inside = None if inside is None else tf.cast(inside, compute_type)
    for name in layers_up_to(deepest_layer):
        with tf.name_scope(name):
            kind = layer_kind(name)
            if kind == "conv":
                kernel, bias = constants[name]
                net = tf.nn.bias_add(tf.nn.conv2d(net, kernel, strides=1, padding="SAME"), bias)
                net = net if inside is None else net * inside
            elif kind == "relu":
                net = tf.nn.relu(net)
            else:
                pool = tf.nn.avg_pool2d if pooling == "avg" else tf.nn.max_pool2d
                net = pool(net, ksize=2, strides=2, padding="SAME")
                if inside is not None:  # an average over the picture's part of the window, as SAME pooling takes
                    if pooling == "avg":
                        net = tf.math.divide_no_nan(net, tf.nn.avg_pool2d(inside, ksize=2, strides=2, padding="SAME"))
                    inside = tf.nn.max_pool2d(inside, ksize=2, strides=2, padding="SAME")
        layers[name] = tf.cast(net, tf.float32)  # in float32 already: the tensor itself
    return layers


def guidance(seen_map, deepest_layer, propagation="simple"):
    """A map at the network's input resolution ([1, height, width, channels]: a mask, 1 where a region is) at each
    layer up to deepest_layer, as the network's geometry takes it there: {layer name: the map at that layer}.

    "simple" (or None): each pool averages it as it does the image (Gatys et al. 2017's guidance channels, down-
    sampled). "inside": each conv erodes it by its 3x3 window and each pool keeps the least of its 2x2 window, so
    that a position counts for a region only where all it sees lies inside the region (the paper's eroded variant).
    """
    maps, current = {}, seen_map
    for name in layers_up_to(deepest_layer):
        kind = layer_kind(name)
        if kind == "conv" and propagation == "inside":
            current = -tf.nn.max_pool2d(-current, ksize=3, strides=1, padding="SAME")
        elif kind == "pool":
            current = (-tf.nn.max_pool2d(-current, ksize=2, strides=2, padding="SAME") if propagation == "inside"
                       else tf.nn.avg_pool2d(current, ksize=2, strides=2, padding="SAME"))
        maps[name] = current
    return maps
