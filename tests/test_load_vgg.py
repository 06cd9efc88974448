"""load_vgg: both MatConvNet layouts, refusal of other files, and the network checked against NumPy."""

import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import load_vgg
import matconvnet
from utils import FixableError


def test_current_layout_loads_every_conv_layer_as_written(vgg19_mat):
    path, written = vgg19_mat
    weights = load_vgg.load_weights(path, "pool5")
    assert list(weights.kernels) == [name for name in load_vgg.VGG19_LAYERS if name.startswith("conv")]
    for name, (kernel, bias) in weights.kernels.items():
        # Kept in MatConvNet's [height, width, in, out] order: no transpose.
        np.testing.assert_array_equal(kernel, written[name][0])
        np.testing.assert_array_equal(bias, written[name][1])
    np.testing.assert_allclose(weights.mean_pixel, matconvnet.MEAN_PIXEL)


def test_older_layout_gives_the_same_weights_and_mean(tmp_path, vgg19_mat):
    path, written = vgg19_mat
    old_path = str(tmp_path / "beta16.mat")
    matconvnet.write_vgg_mat(old_path, layout="beta16", weights=written)
    old = load_vgg.load_weights(old_path, "relu4_2")
    new = load_vgg.load_weights(path, "relu4_2")
    assert list(old.kernels) == list(new.kernels) and list(old.kernels)[-1] == "conv4_2"
    np.testing.assert_allclose(old.mean_pixel, matconvnet.MEAN_PIXEL, rtol=1e-6)
    assert old.fingerprint == new.fingerprint  # the same network, whatever the layout


def test_vgg16_is_refused_at_its_first_differing_layer(tmp_path):
    path = str(tmp_path / "vgg16.mat")
    matconvnet.write_vgg_mat(path, blocks=matconvnet.VGG16_BLOCKS)
    with pytest.raises(FixableError, match=r"layer 16 is 'pool3' where VGG-19 has 'conv3_4'"):
        load_vgg.load_weights(path, "pool5")


def test_a_kernel_of_the_wrong_shape_is_refused(tmp_path):
    specs = matconvnet.layer_specs()
    specs[5] = ("conv2_1", "conv", (3, 3, 64, 96))
    path = str(tmp_path / "odd.mat")
    matconvnet.write_vgg_mat(path, specs=specs)
    with pytest.raises(FixableError, match=r"conv2_1 has kernel \(3, 3, 64, 96\).*\(3, 3, 64, 128\)"):
        load_vgg.load_weights(path, "conv5_1")


@pytest.mark.parametrize("content", [b"", b"this is not a mat file\n" * 10, "truncated"])
def test_unreadable_files_are_refused(tmp_path, vgg19_mat, content):
    path = tmp_path / "weights.mat"
    if content == "truncated":
        content = open(vgg19_mat[0], "rb").read()[:3_000_000]
    path.write_bytes(content)
    with pytest.raises(FixableError, match="weights.mat"):
        load_vgg.load_weights(str(path), "conv5_1")


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(FixableError, match="not found"):
        load_vgg.load_weights(str(tmp_path / "nothing.mat"))


def numpy_conv_same(image, kernel, bias):
    """Correlation with SAME padding, written out: out[y, x, o] = Σ in[y+dy-1, x+dx-1, i] W[dy, dx, i, o] + b."""
    height, width, _ = image.shape
    padded = np.pad(image, ((1, 1), (1, 1), (0, 0)))
    out = np.zeros((height, width, kernel.shape[-1]))
    for dy in range(3):
        for dx in range(3):
            out += padded[dy:dy + height, dx:dx + width, :] @ kernel[dy, dx]
    return out + bias


def test_network_matches_a_numpy_forward_pass(vgg19_mat):
    _, written = vgg19_mat
    weights = load_vgg.load_weights(vgg19_mat[0], "relu2_1")
    rng = np.random.default_rng(0)
    image = rng.uniform(-100, 100, (10, 14, 3))
    with tf.Graph().as_default(), tf.Session() as sess:
        constants = load_vgg.weight_constants(weights)
        layers = load_vgg.vgg_net(tf.constant(image[None], tf.float32), constants, "relu2_1")
        assert list(layers)[-1] == "relu2_1"
        got = sess.run(layers)

    relu1_1 = np.maximum(numpy_conv_same(image, *written["conv1_1"]), 0)
    relu1_2 = np.maximum(numpy_conv_same(relu1_1, *written["conv1_2"]), 0)
    pool1 = relu1_2.reshape(5, 2, 7, 2, 64).mean(axis=(1, 3))  # 2x2 average, stride 2
    relu2_1 = np.maximum(numpy_conv_same(pool1, *written["conv2_1"]), 0)
    for name, expected in [("relu1_1", relu1_1), ("pool1", pool1), ("relu2_1", relu2_1)]:
        np.testing.assert_allclose(got[name][0], expected, rtol=1e-4, atol=1e-3 * np.abs(expected).max())


def test_max_pooling_is_available(vgg19_mat):
    weights = load_vgg.load_weights(vgg19_mat[0], "pool1")
    image = np.random.default_rng(1).uniform(-100, 100, (1, 4, 6, 3))
    with tf.Graph().as_default(), tf.Session() as sess:
        constants = load_vgg.weight_constants(weights)
        layers = sess.run(load_vgg.vgg_net(tf.constant(image, tf.float32), constants, "pool1", pooling="max"))
    expected = layers["relu1_2"][0].reshape(2, 2, 3, 2, 64).max(axis=(1, 3))
    np.testing.assert_allclose(layers["pool1"][0], expected, rtol=1e-6)


def test_feature_layer_reads_conv_layers_after_their_relu():
    assert load_vgg.feature_layer("conv4_2") == "relu4_2"
    assert load_vgg.feature_layer("pool3") == "pool3"
    with pytest.raises(FixableError, match="unknown VGG-19 layer 'conv6_1'"):
        load_vgg.feature_layer("conv6_1")


def test_the_conv_weights_are_cached_until_the_file_changes(tmp_path, vgg19_mat, monkeypatch):
    monkeypatch.setenv("STYLE_TRANSFER_CACHE", str(tmp_path / "cache"))
    path = str(tmp_path / "vgg19.mat")
    with open(vgg19_mat[0], "rb") as source, open(path, "wb") as copy:
        copy.write(source.read())
    first = load_vgg.load_weights(path, "relu5_1")
    assert len(os.listdir(tmp_path / "cache")) == 1

    # Same size and modification time, other bytes: only a cache hit can still load it.
    status = os.stat(path)
    with open(path, "r+b") as file:
        file.write(b"\0" * 4096)
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    cached = load_vgg.load_weights(path, "relu5_1")
    assert cached.fingerprint == first.fingerprint and list(cached.kernels) == list(first.kernels)
    np.testing.assert_array_equal(cached.kernels["conv3_2"][0], first.kernels["conv3_2"][0])

    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))  # the file changed: read it again
    with pytest.raises(FixableError, match="not a readable MATLAB .mat file"):
        load_vgg.load_weights(path, "relu5_1")


def test_keras_h5_gives_the_same_rgb_network_as_the_mat(tmp_path, vgg19_mat):
    from keras_weights import write_keras_vgg_h5

    path, written = vgg19_mat
    h5_path = str(tmp_path / "weights.mat")  # a misleading name: the format is told from the content
    write_keras_vgg_h5(h5_path, written)
    from_h5, from_mat = load_vgg.load_weights(h5_path, "pool5"), load_vgg.load_weights(path, "pool5")
    for name, (kernel, bias) in from_mat.kernels.items():
        np.testing.assert_array_equal(from_h5.kernels[name][0], kernel)
        np.testing.assert_array_equal(from_h5.kernels[name][1], bias)
    np.testing.assert_allclose(from_h5.mean_pixel, [123.68, 116.779, 103.939], rtol=1e-6)


def test_keras_vgg16_h5_is_refused(tmp_path):
    from keras_weights import write_keras_vgg_h5

    specs = matconvnet.layer_specs(matconvnet.VGG16_BLOCKS)
    path = str(tmp_path / "vgg16.h5")
    write_keras_vgg_h5(path, matconvnet.random_weights(specs), blocks=matconvnet.VGG16_BLOCKS)
    with pytest.raises(FixableError, match="has no layer block3_conv4"):
        load_vgg.load_weights(path, "pool5")


def test_a_truncated_h5_is_refused(tmp_path, vgg19_mat):
    from keras_weights import write_keras_vgg_h5

    path = tmp_path / "cut.h5"
    write_keras_vgg_h5(str(path), vgg19_mat[1])
    path.write_bytes(path.read_bytes()[:1_000_000])
    with pytest.raises(FixableError, match="not a readable Keras weights file"):
        load_vgg.load_weights(str(path), "pool5")
