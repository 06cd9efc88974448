"""The losses against an independent NumPy computation, and the shape of the training graph."""

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import load_vgg
import style_transfer
from runner.problem import Problem
from style_transfer import StyleTransfer


def numpy_gram(features):
    positions_by_channels = features.reshape(-1, features.shape[-1])
    return positions_by_channels.T @ positions_by_channels


def numpy_content_loss(features, target):
    return np.sum((features - target) ** 2) / (4 * target.size)


def numpy_style_layer_loss(features, target_gram):
    _, height, width, channels = features.shape
    return np.sum((numpy_gram(features) - target_gram) ** 2) / (2 * channels * height * width) ** 2


def evaluate(tensor):
    with tf.Session() as sess:
        return sess.run(tensor)


def test_gram_matrix_keeps_channels_apart():
    rng = np.random.default_rng(0)
    features = rng.standard_normal((1, 3, 5, 4))
    with tf.Graph().as_default():
        got = evaluate(style_transfer.gram_matrix(tf.constant(features)))
    np.testing.assert_allclose(got, numpy_gram(features), rtol=1e-10)
    # The channels-first reshape CS20 warns about would mix channels; make sure that differs here.
    wrong = features.reshape(4, -1) @ features.reshape(4, -1).T
    assert not np.allclose(got, wrong)


def test_style_loss_gradient_matches_numpy():
    # The Gram matrix has a gradient of its own (one product instead of two): check it against the formula
    # d/dF sum((FᵀF - A)²) = 4 F (FᵀF - A) (A symmetric), and against a finite difference.
    rng = np.random.default_rng(4)
    features = rng.standard_normal((1, 3, 4, 5))
    target = numpy_gram(rng.standard_normal((1, 3, 4, 5)))
    with tf.Graph().as_default():
        variable = tf.constant(features)
        loss = tf.reduce_sum(tf.square(style_transfer.gram_matrix(variable) - target))
        got = evaluate(tf.gradients(loss, variable)[0])
    matrix = features.reshape(-1, 5)
    np.testing.assert_allclose(got.reshape(-1, 5), 4 * matrix @ (matrix.T @ matrix - target), rtol=1e-9)

    def numpy_loss(values):
        return np.sum((numpy_gram(values) - target) ** 2)
    nudged = features.copy()
    nudged[0, 1, 2, 3] += 1e-6
    np.testing.assert_allclose(got[0, 1, 2, 3], (numpy_loss(nudged) - numpy_loss(features)) / 1e-6, rtol=1e-4)


def test_content_and_style_losses_match_numpy():
    rng = np.random.default_rng(1)
    features, target = rng.standard_normal((2, 1, 6, 7, 5))
    target_gram = numpy_gram(rng.standard_normal((1, 6, 7, 5)))
    with tf.Graph().as_default():
        content = evaluate(style_transfer.content_loss(tf.constant(features), tf.constant(target)))
        style = evaluate(style_transfer.style_layer_loss(tf.constant(features), target_gram))
    np.testing.assert_allclose(content, numpy_content_loss(features, target), rtol=1e-10)
    np.testing.assert_allclose(style, numpy_style_layer_loss(features, target_gram), rtol=1e-10)


def small_problem(**changes):
    fields = dict(content={}, style=({},), style_blend_weights=(1.0,), style_scale=None, weights="", width=40,
                  height=32, pooling="avg", content_layers=("conv4_2",),
                  style_layers=("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"),
                  style_layer_weights=(0.5, 1.0, 1.5, 3.0, 4.0), content_weight=0.01, style_weight=1.0,
                  tv_weight=0.5, init="noise", noise_ratio=0.6, optimizer="adam", learning_rate=2.0, seed=0)
    fields.update(changes)
    return Problem(**fields)


def built(problem, weights, content, style):
    """The model built for problem, its content features fed, and its start image."""
    grams, model_content_features = style_transfer.compute_targets(weights, problem, [[style]], content)
    model = StyleTransfer(problem, weights, style_transfer.problem_losses(problem, grams)).build()
    model.content_features, model.style_grams = model_content_features, grams
    model.use_targets({"content_loss": model.content_features})
    return model, style_transfer.initial_image(problem, content, style, weights.mean_pixel)


@pytest.fixture(scope="module")
def built_model(vgg19_mat):
    rng = np.random.default_rng(5)
    content, style = rng.uniform(0, 255, (2, 32, 40, 3)).astype(np.float32)
    weights = load_vgg.load_weights(vgg19_mat[0], "relu5_1")
    model, start = built(small_problem(), weights, content, style)
    return model, content, weights, start


def test_the_generated_image_is_the_only_trainable_variable(built_model):
    model = built_model[0]
    trainable = model.graph.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES)
    assert trainable == [model.image]
    assert model.image.shape.as_list() == [1, 32, 40, 3]


def test_initial_image_mixes_noise_and_content_in_mean_subtracted_space(built_model):
    model, content, weights, start = built_model
    start = start[0]
    # 0.6 × noise in [-20, 20] + 0.4 × (content - mean): within 12 of 0.4 × (content - mean).
    assert np.abs(start - 0.4 * (content - weights.mean_pixel)).max() <= 12.0 + 1e-3
    again = style_transfer.initial_image(model.problem, content, content, weights.mean_pixel)
    np.testing.assert_array_equal(again[0], start)  # seeded


def test_the_other_starting_images(built_model):
    model, content, weights, _ = built_model
    style = content[::-1]
    start = {init: style_transfer.initial_image(small_problem(init=init, noise_ratio=1.0 if init == "noise" else None),
                                                content, style, weights.mean_pixel)[0]
             for init in ("content", "style", "random", "noise")}
    np.testing.assert_allclose(start["content"], content - weights.mean_pixel, rtol=1e-6)
    np.testing.assert_allclose(start["style"], style - weights.mean_pixel, rtol=1e-6)
    assert np.abs(start["random"]).max() <= 20 and start["random"].std() > 5
    np.testing.assert_allclose(start["noise"], start["random"], rtol=1e-6)  # all noise at --noise-ratio 1


def test_graph_losses_match_numpy_on_the_graph_features(built_model):
    model, _, _, start = built_model
    problem = model.problem
    feature_names = [load_vgg.feature_layer(name) for name in [*problem.content_layers, *problem.style_layers]]
    with model.graph.as_default(), tf.Session() as sess:
        sess.run(model.initialize, {model.start_image: start})
        features, losses, image = sess.run([{name: model.layers[name] for name in feature_names}, model.loss_tensors,
                                            model.image], model.feeds)

    content = numpy_content_loss(features["relu4_2"].astype(np.float64), model.content_features[0])
    layer_losses = [numpy_style_layer_loss(features[load_vgg.feature_layer(name)].astype(np.float64), gram)
                    for name, gram in zip(problem.style_layers, model.style_grams)]
    style = sum(weight * loss for weight, loss in zip(problem.style_layer_weights, layer_losses))
    np.testing.assert_allclose(losses["content_loss"], content, rtol=1e-4)
    np.testing.assert_allclose(losses["style_loss/conv3_1"], layer_losses[2], rtol=1e-3)
    np.testing.assert_allclose(losses["style_loss"], style, rtol=1e-3)
    image = image[0].astype(np.float64)
    total_variation = np.abs(np.diff(image, axis=0)).sum() + np.abs(np.diff(image, axis=1)).sum()
    np.testing.assert_allclose(losses["tv_loss"], total_variation, rtol=1e-4)
    np.testing.assert_allclose(losses["total_loss"], 0.01 * content + style + 0.5 * total_variation, rtol=1e-3)


def test_several_content_layers_add_their_losses(vgg19_mat):
    rng = np.random.default_rng(6)
    content, style = rng.uniform(0, 255, (2, 32, 40, 3)).astype(np.float32)
    problem = small_problem(content_layers=("conv2_1", "conv4_2"), tv_weight=0.0)
    weights = load_vgg.load_weights(vgg19_mat[0], "relu5_1")
    model, start = built(problem, weights, content, style)
    with model.graph.as_default(), tf.Session() as sess:
        sess.run(model.initialize, {model.start_image: start})
        features, loss = sess.run([[model.layers["relu2_1"], model.layers["relu4_2"]],
                                   model.loss_tensors["content_loss"]], model.feeds)
    expected = sum(numpy_content_loss(feature.astype(np.float64), target)
                   for feature, target in zip(features, model.content_features))
    np.testing.assert_allclose(loss, expected, rtol=1e-4)


def test_content_features_fed_later_match_those_computed_with_the_targets(built_model):
    """A data set's images get their content features from a graph of their own (ContentFeatures); one image
    gets them with the style's Gram matrices: the two agree."""
    model, content, weights, _ = built_model
    later = style_transfer.ContentFeatures(weights, model.problem, model.view)
    with later.sess:
        fed = later(content)
    for computed_later, computed_with_targets in zip(fed, model.content_features):
        np.testing.assert_allclose(computed_later, computed_with_targets, rtol=1e-5, atol=1e-3)


def test_a_built_graph_is_freed_once_nothing_holds_it(vgg19_mat):
    """A process that builds many graphs (a data set of many sizes, the tests) keeps none it no longer uses: the
    Gram matrix's gradient, and the graph written to TensorBoard, must not hold their graph for ever."""
    import gc
    import weakref

    from runner.outputs import graph_without_weights

    rng = np.random.default_rng(6)
    content, style = rng.uniform(0, 255, (2, 32, 40, 3)).astype(np.float32)
    weights = load_vgg.load_weights(vgg19_mat[0], "relu5_1")
    model, _ = built(small_problem(), weights, content, style)
    with model.graph.as_default():
        assert tf.gradients(model.total_loss, [model.image])[0] is not None  # the Gram gradient made here too
    graph_without_weights(model.graph)
    graph = weakref.ref(model.graph)
    del model
    gc.collect()
    assert graph() is None
