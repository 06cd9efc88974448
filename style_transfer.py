"""Neural style transfer (Gatys et al.) as in Stanford CS20 assignment 2, in TF1 graph mode.

    python style_transfer.py                    # CS20 defaults: deadpool.jpg in the style of guernica.jpg
    python style_transfer.py --iterations 500   # carries the run in checkpoints/style_transfer on to step 500

This file is the algorithm, top to bottom: the losses; the targets (the style's Gram matrices, computed once;
the content's features, fed); the model (StyleTransfer.build: create_input, load_vgg, losses, optimize,
create_summary), whose steps() yields a report per step; train(), the Session loop of one stage (a scale of an
image, a frame of a film); run(), over the stages of one item; main(), over the items. Around it: load_vgg.py
builds VGG-19 from its weights file; lbfgs.py drives scipy's L-BFGS-B one step at a time; runner/ manages runs
(options, inputs, the run folder with its checkpoints and events, what is written after each step, the stages:
a still image's coarse-to-fine scales, a film's frames, a large image's tiles); utils.py downloads and reads images.
"""

import math
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

import lbfgs
import load_vgg
from runner import batch, options, run_folder
from runner import scales as scale_plan
from runner.batch import ItemResult
from runner.graphs import Graphs
from runner.inputs import JobMaker
from runner.items import find_items
from runner.outputs import Outputs
from runner.signals import StopSignals
from runner.tf_setup import ONE_RUN_CONFIG, tf
from utils import FixableError

# ---------------------------------------------------------------------------------------------------
# 1. The losses, as CS20 defines them.

def gram_matrix(features):
    """Fᵀ F with F reshaped to (positions, channels): channel correlations, summed over positions."""
    return _gram(tf.reshape(features, [-1, features.shape[-1]]))


@tf.custom_gradient
def _gram(matrix):
    def gradient(upstream):  # d(FᵀF) = F (U + Uᵀ): one product, where TensorFlow's own gradient takes two
        return tf.matmul(matrix, upstream + tf.transpose(upstream))
    return tf.matmul(matrix, matrix, transpose_a=True), gradient


def content_loss(features, target):
    """sum((F - P)²) / (4 · size(P)), as CS20. target: an array, or a tensor (fed) of a known shape."""
    size = target.size if isinstance(target, np.ndarray) else target.shape.num_elements()
    return tf.reduce_sum(tf.square(features - target)) / (4.0 * size)


def temporal_loss(image, warped_previous, mask):
    """mean(mask · (x - warped)²) over pixels and channels (Ruder et al. 2016): a film's frame kept on the previous
    result, moved on by the optical flow, wherever that flow is reliable (mask 1)."""
    return tf.reduce_mean(mask * tf.square(image - warped_previous))


def style_layer_loss(features, target_gram):
    """sum((G - A)²) / (2 N M)² for one layer: N channels, M positions of its feature map."""
    _, height, width, channels = features.shape
    positions = int(height) * int(width)
    return tf.reduce_sum(tf.square(gram_matrix(features) - target_gram)) / (2.0 * int(channels) * positions) ** 2


# ---------------------------------------------------------------------------------------------------
# 2. The targets: the style's Gram matrices enter the training graph as constants; the content image's
#    features are fed to it, so that the images of one data set share one graph.

def compute_targets(weights, problem, style_images, content_image=None):
    """(the target Gram matrix of each style layer, the content image's features at each content layer), computed
    in a throwaway graph in one run (a run of a new graph costs a fraction of a second of set-up). content_image:
    None when the content comes later, fed (ContentFeatures); the features are then []. With several style images
    a layer's target is their blend; a Gram matrix is a sum over positions, so each is scaled to the positions the
    generated image has at that layer. A style image too large for the network comes in pieces (a list, from
    runner.tiles): its Gram matrices are the sums of its pieces', each piece passed through in a run of its own."""
    graph = tf.Graph()
    with graph.as_default():
        constants = load_vgg.weight_constants(weights)

        def grams_of(image):
            layers = load_vgg.vgg_net(image, constants, load_vgg.deepest_layer_used([], problem.style_layers),
                                      problem.pooling)
            return [gram_matrix(layers[load_vgg.feature_layer(name)]) for name in problem.style_layers]

        feeds, gram_ops, content_ops = {}, [], []
        for style_image in [image for image in style_images if not isinstance(image, list)]:
            style_input = tf.placeholder(tf.float32, (1, *style_image.shape))
            feeds[style_input] = [style_image - weights.mean_pixel]
            gram_ops.append(grams_of(style_input))
        piece_input = tf.placeholder(tf.float32, (1, None, None, 3))
        piece_grams = grams_of(piece_input) if len(gram_ops) < len(style_images) else None
        if content_image is not None and problem.content_layers:
            content_input = tf.placeholder(tf.float32, (1, *content_image.shape))
            feeds[content_input] = [content_image - weights.mean_pixel]
            layers = load_vgg.vgg_net(content_input, constants,
                                      load_vgg.deepest_layer_used(problem.content_layers, []), problem.pooling)
            content_ops = [layers[load_vgg.feature_layer(name)] for name in problem.content_layers]
        with tf.Session(graph=graph, config=ONE_RUN_CONFIG) as sess:
            whole_grams, content_features = sess.run([gram_ops, content_ops], feeds)
            whole_grams = iter(whole_grams)
            grams = [[sum(layer) for layer in zip(*[sess.run(piece_grams, {piece_input: [piece - weights.mean_pixel]})
                                                    for piece in image])]
                     if isinstance(image, list) else next(whole_grams) for image in style_images]
    style_grams = []
    for index, name in enumerate(problem.style_layers):
        layer = load_vgg.feature_layer(name)
        height, width = load_vgg.layer_size(problem.width, problem.height, layer)
        positions = [sum(math.prod(load_vgg.layer_size(piece.shape[1], piece.shape[0], layer))
                         for piece in (image if isinstance(image, list) else [image])) for image in style_images]
        style_grams.append(sum(blend * grams[style][index] * (height * width / positions[style])
                               for style, blend in enumerate(problem.style_blend_weights)))
    return style_grams, content_features


class ContentFeatures:
    """features(content_image): the content image's features at each content layer, for one image size; a
    graph and Session of their own, built once and run once per image."""

    def __init__(self, weights, problem):
        self.mean_pixel = weights.mean_pixel
        self.graph = tf.Graph()
        with self.graph.as_default():
            seen = 2 * problem.context  # a tile's content image comes with its context around it
            self.image = tf.placeholder(tf.float32, (1, problem.height + seen, problem.width + seen, 3))
            image, inside = load_vgg.past_the_border(self.image) if problem.context else (self.image, None)
            layers = load_vgg.vgg_net(image, load_vgg.weight_constants(weights),
                                      load_vgg.deepest_layer_used(problem.content_layers, []), problem.pooling, inside)
            self.features = [load_vgg.own_features(layers, name, problem) for name in problem.content_layers]
        self.graph.finalize()
        self.sess = tf.Session(graph=self.graph, config=ONE_RUN_CONFIG)

    def __call__(self, content_image):
        return self.sess.run(self.features, {self.image: [content_image - self.mean_pixel]})

    def close(self):
        self.sess.close()


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

    What changes from one image of a data set to the next is fed: the start image (`start_image`, when the
    variables are initialised with `initialize`) and the content features (`use_content`, fed every step).
    """

    def __init__(self, problem, weights, style_grams):
        self.problem = problem
        self.weights = weights
        self.style_grams = style_grams
        self.graph = tf.Graph()
        self.feeds = {}  # the content targets' values, fed with every step

    def build(self):
        with self.graph.as_default():
            self.create_input()
            self.load_vgg()
            self.losses()
            self.optimize()
            self.create_summary()
            self.initialize = tf.global_variables_initializer()  # the image from start_image; Adam's state
        return self

    def use_targets(self, content_features, temporal, surroundings=None):
        """What this image's losses compare with: its content features; a film's frame also (warped previous
        result, mask), from runner.video; a tile is seen within its surroundings, from runner.tiles."""
        self.feeds = dict(zip(self.content_targets, content_features))
        if temporal is not None:
            self.feeds.update(zip(self.temporal_targets, temporal))
        if surroundings is not None:
            self.feeds[self.surroundings] = surroundings

    def create_input(self):
        # The image lives in mean-subtracted space: the network's own input space.
        self.start_image = tf.placeholder(tf.float32, (1, self.problem.height, self.problem.width, 3),
                                          name="start_image")
        self.image = tf.Variable(self.start_image, name="generated_image")
        self.image_is_finite = tf.reduce_all(tf.math.is_finite(self.image))  # clipping would hide a NaN
        self.seen, self.inside = self.image, None  # what the network sees, and where that is the picture
        if self.problem.context:  # a tile's: seen within the assembled image around it (runner.tiles), fixed
            context, (height, width) = self.problem.context, self.image.shape[1:3]
            margin = [[0, 0], [context, context], [context, context], [0, 0]]
            self.surroundings = tf.placeholder(tf.float32, (1, height + 2 * context, width + 2 * context, 3),
                                               name="surroundings")
            outside = np.pad(np.zeros((1, height, width, 1), np.float32), margin, constant_values=1)
            surroundings, self.inside = load_vgg.past_the_border(self.surroundings)
            self.seen = surroundings * outside + tf.pad(self.image, margin)
        self.global_step = tf.train.get_or_create_global_step()
        if self.problem.temporal_weight is not None:  # a film's: the previous frame's result, warped; its mask
            self.temporal_targets = (tf.placeholder(tf.float32, self.image.shape, name="warped_previous"),
                                     tf.placeholder(tf.float32, (*self.image.shape[:3], 1), name="reliable"))

    def load_vgg(self):
        constants = load_vgg.weight_constants(self.weights)
        deepest = load_vgg.deepest_layer_used(self.problem.content_layers, self.problem.style_layers)
        self.layers = load_vgg.vgg_net(self.seen, constants, deepest, self.problem.pooling, self.inside)

    def losses(self):
        problem = self.problem
        with tf.name_scope("losses"):
            features = {name: load_vgg.own_features(self.layers, name, problem)
                        for name in (*problem.content_layers, *problem.style_layers)}
            self.content_targets = [tf.placeholder(tf.float32, features[name].shape, name=f"content_target_{name}")
                                    for name in problem.content_layers]
            self.content_loss = tf.add_n([tf.constant(0.0)] + [
                content_loss(features[name], target)
                for name, target in zip(problem.content_layers, self.content_targets)])
            self.style_layer_losses = {
                name: style_layer_loss(features[name], gram)
                for name, gram in zip(problem.style_layers, self.style_grams)}
            self.style_loss = tf.add_n([weight * self.style_layer_losses[name] for name, weight
                                        in zip(problem.style_layers, problem.style_layer_weights)])
            self.total_loss = problem.content_weight * self.content_loss + problem.style_weight * self.style_loss
            if problem.tv_weight:  # sum of |differences| between neighbouring pixels
                self.tv_loss = tf.reduce_sum(tf.image.total_variation(self.image))
                self.total_loss += problem.tv_weight * self.tv_loss
            if problem.temporal_weight is not None:  # a film's frame: stay on the previous result, moved on
                self.temporal_loss = temporal_loss(self.image, *self.temporal_targets)
                self.total_loss += problem.temporal_weight * self.temporal_loss

    def optimize(self):
        if self.problem.optimizer == "adam":
            # Adam updates the image in place; a report's losses belong to the image before the update, so a
            # copy of that is taken first (1 MB at 333x250, fetched only when a report asks for the image).
            self.image_before_step = tf.raw_ops.DeepCopy(x=self.image)
            self.optimizer = tf.train.AdamOptimizer(self.problem.learning_rate)
            with tf.control_dependencies([self.image_before_step]):
                self.train_op = self.optimizer.minimize(self.total_loss, global_step=self.global_step,
                                                        var_list=[self.image])
        else:  # scipy's L-BFGS-B drives: it feeds an image in and gets the loss and its gradient back
            self.gradient = tf.gradients(self.total_loss, [self.image])[0]
            self.count_step = tf.assign_add(self.global_step, 1)
            self.new_image = tf.placeholder(tf.float32, self.image.shape)
            self.set_image = tf.assign(self.image, self.new_image)

    def create_summary(self):
        self.loss_tensors = {"total_loss": self.total_loss, "style_loss": self.style_loss}
        if self.problem.content_layers:  # none with --texture
            self.loss_tensors["content_loss"] = self.content_loss
        if self.problem.tv_weight:
            self.loss_tensors["tv_loss"] = self.tv_loss
        if self.problem.temporal_weight is not None:
            self.loss_tensors["temporal_loss"] = self.temporal_loss
        self.loss_tensors.update({f"style_loss/{name}": loss for name, loss in self.style_layer_losses.items()})
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
        L-BFGS's memory from it."""
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

        return lbfgs.steps(evaluate, start, last_step - step)


def losses_of(image, problem, weights, images):
    """The losses of an image (in the network's space, [1, height, width, 3]) as a whole, at its size: how a
    result scores, however it was made (the benchmark compares a tiled result with an untiled one)."""
    grams, content_features = compute_targets(weights, problem, images.styles, images.content)
    model = StyleTransfer(problem, weights, grams).build()
    model.use_targets(content_features, None)
    with tf.Session(graph=model.graph, config=ONE_RUN_CONFIG) as sess:
        sess.run(model.initialize, {model.start_image: image})
        return sess.run(model.loss_tensors, model.feeds)


# ---------------------------------------------------------------------------------------------------
# 4. train(): one stage of one item in one Session; run(): its stages (runner.scales, video, tiles); main(): items.

def build_graph(problem, weights, images, fed):
    """(the model of a problem, built; content_features(image): the features to feed for a content image), for
    runner.graphs. fed: several content images will come, their features from ContentFeatures; else the one
    image's are computed with the style's Gram matrices (none with --texture)."""
    grams, features = compute_targets(weights, problem, images.styles, None if fed else images.content)
    model = StyleTransfer(problem, weights, grams).build()
    if fed and problem.content_layers:
        return model, ContentFeatures(weights, problem)
    return model, lambda image: features


def train(job, index, graphs, checkpoint, previous_image):
    """Optimise stage `index` of job's plan (a scale, a frame, a tile) up to its last step; return (exit code, its
    Outputs, the image reached). graphs: the Graphs of this process, shared by its images. checkpoint: the one
    this stage starts from, or None. previous_image: the previous stage's result (None at the first)."""
    stages, plan = job.plan.stages, job.plan
    stage, is_last = stages[index], index == len(stages) - 1
    problem = job.problem.at_size(stage.width, stage.height, stage.context)
    images = plan.images_at(index)
    model, saver, sess, content_features = graphs.get(problem, job.weights, images, plan.feeds_content)
    model.use_targets(content_features(images.content), plan.temporal_at(index), plan.surroundings_at(index))
    start_image = plan.start_at(index, previous_image)
    if start_image is None:
        start_image = initial_image(problem, images.content, images.start_style, job.weights.mean_pixel)
    first_step = scale_plan.first_step(stages, index)
    if len(stages) > 1 and checkpoint is None:
        print(f"{plan.describe(index)}, steps {first_step + 1} to {stage.last_step}", flush=True)

    folder = run_folder.RunFolder(job.folders.checkpoint_dir, job.folders.log_dir, saver)
    step = folder.start_or_resume(sess, job.problem, model.global_step, first_step, checkpoint, job.schedule.restart,
                                  initialize=lambda: sess.run(model.initialize, {model.start_image: start_image}))
    outputs = Outputs(sess, model, folder, job, stages, index, start_step=step, log_first=checkpoint is None,
                      content_image=images.content)
    with StopSignals() as stop:
        for report in model.steps(sess, stage.last_step, with_images=outputs.keep_best):
            outputs.after_step(report)
            if stop.received:
                outputs.stopped(stop.received)
                return 128 + stop.received, outputs, None
    if outputs.step < stage.last_step:
        print(f"L-BFGS converged at step {outputs.step}", flush=True)
    outputs.finish_scale()
    if is_last and outputs.keep_best:
        print(f"Best: loss {outputs.best_loss:.4g} at step {outputs.best_step}, image {job.folders.best_output}",
              flush=True)
    return 0, outputs, sess.run(model.image)


def run(job, graphs):
    """Train job's image to its last step, stage by stage; return an ItemResult (its code: 0, or 128 + a signal's
    number)."""
    stages = job.plan.stages
    with run_folder.locked(job.folders.checkpoint_dir):  # one process at a time in a run folder
        found = run_folder.newest_readable_checkpoint(job.folders.checkpoint_dir) if job.resumable else None
        checkpoint, restored_step = found or (None, None)
        first_index = scale_plan.index_at(stages, restored_step)  # the stage of that checkpoint's image
        for folder in job.folders.all():
            os.makedirs(folder, exist_ok=True)
        image = None  # the previous stage's result
        for index in range(first_index, len(stages)):
            code, outputs, image = train(job, index, graphs, checkpoint if index == first_index else None,
                                         previous_image=image)
            if code:
                return ItemResult(code, None, None, outputs.step)
            job.plan.finished(index, image)
        job.plan.finish()
    print(f"Done: step {outputs.step}; image {job.folders.output}; checkpoints in "
          f"{job.folders.checkpoint_dir}; TensorBoard: tensorboard --logdir {job.folders.log_dir}", flush=True)
    return ItemResult(0, job.folders.output, outputs.last_loss, outputs.step)


def main(argv=None):
    args = options.parse_args(argv)
    try:
        items = find_items(args.content, args.texture, args.video)
        shard = batch.shard_from(args.shard, args.shard_count)
        make_job = JobMaker(args)
        graphs = Graphs(args.keep, len(args.scales), len(items) > 1 or shard.count > 1, build_graph)
        try:
            if len(items) == 1 and shard.count == 1 and not args.output_tfrecord:  # one image: the folders as given
                if items[0].failure:
                    raise FixableError(items[0].failure)
                return run(make_job(items[0], own_folders=False), graphs).code
            code = batch.run_items(items, shard, args.output_dir,
                                   lambda item: run(make_job(item, own_folders=True), graphs),
                                   lambda item: make_job.folders.for_item(item.name).checkpoint_dir)
        finally:
            graphs.close()
        if args.output_tfrecord and code in (0, 2):
            batch.write_results(args.output_tfrecord, shard, args.output_dir)
        return code
    except FixableError as error:
        print(f"style_transfer.py: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a folder or file the run cannot write (a full disk, say) where none was expected
        print(f"style_transfer.py: error: cannot write {error.filename or 'a file'} ({error.strerror or error}): "
              f"free some space or fix the folder's permissions, and run the same command again", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("style_transfer.py: interrupted before the first step; nothing was saved", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
