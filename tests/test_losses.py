"""The losses against an independent NumPy computation, and the shape of the training graph."""

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import load_vgg
import style_transfer
from runner.images import Images
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
        # CS20's layer loss, through the moments the style losses compare: the style's Gram matrix per position
        second, mean, count = style_transfer.weighted_moments(tf.constant(features))
        style = evaluate(style_transfer.StyleLoss.statistic_loss(second, mean, target_gram / (6 * 7)))
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
    """The model built for problem, its start image, and its images (content and one style image, whole)."""
    model = StyleTransfer(problem, weights, style_transfer.problem_losses(problem)).build()
    images = Images(content, [[style]], None)
    return model, style_transfer.initial_image(problem, content, style, weights.mean_pixel), images


def started(model, sess, start, images):
    """Feed the model the targets it computes for `images` and start it from `start`; return those targets."""
    targets = model.targets(sess, images, model.problem)
    model.use_targets(targets)
    model.start(sess, start)
    return targets


def targets_of(weights, problem, styles, content=None, style_masks=None):
    """The targets a model of `problem` computes: {piece name: its fed values}. styles: each a list of pieces."""
    model = StyleTransfer(problem, weights, style_transfer.problem_losses(problem)).build()
    with tf.Session(graph=model.graph) as sess:
        return model.targets(sess, Images(content, styles, None, style_masks=style_masks), problem)


@pytest.fixture(scope="module")
def built_model(vgg19_mat):
    rng = np.random.default_rng(5)
    content, style = rng.uniform(0, 255, (2, 32, 40, 3)).astype(np.float32)
    weights = load_vgg.load_weights(vgg19_mat[0], "relu5_1")
    model, start, images = built(small_problem(), weights, content, style)
    return model, content, weights, start, images


def test_the_generated_image_is_the_only_trainable_variable_and_takes_the_stages_size(built_model):
    model, _, _, start, images = built_model
    trainable = model.graph.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES)
    assert trainable == [model.image]
    with tf.Session(graph=model.graph) as sess:
        for height, width in ((32, 40), (24, 56)):  # one graph, any size: the image and Adam's moments follow
            model.start(sess, np.zeros((1, height, width, 3), np.float32))
            assert sess.run(model.image).shape == (1, height, width, 3)
            assert [sess.run(moment).shape for moment in model.adam_moments] == [(1, height, width, 3)] * 2


def test_initial_image_mixes_noise_and_content_in_mean_subtracted_space(built_model):
    model, content, weights, start, _ = built_model
    start = start[0]
    # 0.6 × noise in [-20, 20] + 0.4 × (content - mean): within 12 of 0.4 × (content - mean).
    assert np.abs(start - 0.4 * (content - weights.mean_pixel)).max() <= 12.0 + 1e-3
    again = style_transfer.initial_image(model.problem, content, content, weights.mean_pixel)
    np.testing.assert_array_equal(again[0], start)  # seeded


def test_the_other_starting_images(built_model):
    model, content, weights, _, _ = built_model
    style = content[::-1]
    start = {init: style_transfer.initial_image(small_problem(init=init, noise_ratio=1.0 if init == "noise" else None),
                                                content, style, weights.mean_pixel)[0]
             for init in ("content", "style", "random", "noise")}
    np.testing.assert_allclose(start["content"], content - weights.mean_pixel, rtol=1e-6)
    np.testing.assert_allclose(start["style"], style - weights.mean_pixel, rtol=1e-6)
    assert np.abs(start["random"]).max() <= 20 and start["random"].std() > 5
    np.testing.assert_allclose(start["noise"], start["random"], rtol=1e-6)  # all noise at --noise-ratio 1


def test_graph_losses_match_numpy_on_the_graph_features(built_model):
    model, _, _, start, images = built_model
    problem = model.problem
    feature_names = [load_vgg.feature_layer(name) for name in [*problem.content_layers, *problem.style_layers]]
    with model.graph.as_default(), tf.Session() as sess:
        targets = started(model, sess, start, images)
        features, losses, image = sess.run([{name: model.layers[name] for name in feature_names}, model.loss_tensors,
                                            model.image], model.feeds)

    content = numpy_content_loss(features["relu4_2"].astype(np.float64), targets["content_loss"][0])
    # the style's target Gram matrices: its second moments, times the positions of the generated image's layer
    grams = [second * np.prod(features[load_vgg.feature_layer(name)].shape[1:3])
             for name, second in zip(problem.style_layers, targets["style_loss"])]
    layer_losses = [numpy_style_layer_loss(features[load_vgg.feature_layer(name)].astype(np.float64), gram)
                    for name, gram in zip(problem.style_layers, grams)]
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
    model, start, images = built(problem, weights, content, style)
    with model.graph.as_default(), tf.Session() as sess:
        targets = started(model, sess, start, images)
        features, loss = sess.run([[model.layers["relu2_1"], model.layers["relu4_2"]],
                                   model.loss_tensors["content_loss"]], model.feeds)
    expected = sum(numpy_content_loss(feature.astype(np.float64), target)
                   for feature, target in zip(features, targets["content_loss"]))
    np.testing.assert_allclose(loss, expected, rtol=1e-4)


def test_the_content_target_is_what_the_network_sees_of_the_content(built_model):
    """The targets' path through the network (the content image fed) and the training path (the image variable)
    agree: started from the content itself, the content loss is 0, and the style loss is 0 from the style."""
    model, content, weights, _, images = built_model
    with tf.Session(graph=model.graph) as sess:
        started(model, sess, (content - weights.mean_pixel)[np.newaxis], images)
        assert sess.run(model.loss_tensors["content_loss"], model.feeds) <= 1e-9
        from_content = sess.run(model.loss_tensors["style_loss"], model.feeds)
        model.start(sess, (images.styles[0][0] - weights.mean_pixel)[np.newaxis])
        from_style = sess.run(model.loss_tensors["style_loss"], model.feeds)
    assert from_content > 1.0 and from_style <= 1e-6 * from_content


def test_a_built_graph_is_freed_once_nothing_holds_it(vgg19_mat):
    """A process that builds many graphs (a data set of many sizes, the tests) keeps none it no longer uses: the
    Gram matrix's gradient, and the graph written to TensorBoard, must not hold their graph for ever."""
    import gc
    import weakref

    from runner.outputs import graph_without_weights

    rng = np.random.default_rng(6)
    content, style = rng.uniform(0, 255, (2, 32, 40, 3)).astype(np.float32)
    weights = load_vgg.load_weights(vgg19_mat[0], "relu5_1")
    model, _, _ = built(small_problem(), weights, content, style)
    with model.graph.as_default():
        assert tf.gradients(model.total_loss, [model.image])[0] is not None  # the Gram gradient made here too
    graph_without_weights(model.graph)
    graph = weakref.ref(model.graph)
    del model
    gc.collect()
    assert graph() is None
