"""What a run writes as it goes. The training loop hands over a report after each step; this decides and writes.

- At the log cadence (every --log-every steps, step 1, the first step of a new stage, a stage's last step):
  the loss summaries (already fetched with the step) and a progress line.
- At the save cadence (every --save-every steps, a stage's last step, and when a signal stops the run): the
  image as <output-dir>/<step>.png (where the plan says so: a tiled image's only at a tile's end) and in
  TensorBoard, then a checkpoint. The image is the picture the stage is part of, as the plan gives it (with
  tiles: the assembled image).
- With --keep-best, the lowest-loss image seen, as <output>-best.png with its loss in best.json.
- At the end, the final image.
"""

import errno
import json
import math
import os
import signal
import weakref

import numpy as np

import utils
from runner import stages
from runner.tf_setup import tf
from utils import FixableError


class Outputs:
    """The writes of one stage of one run (each stage gets a new Outputs, whether or not it shares a graph)."""

    def __init__(self, sess, model, run_folder, job, index, start_step, log_first, content_image):
        """index: the stage's in job.plan; start_step: the global step the loop starts from; log_first: log the
        first step taken here (a new stage's); content_image: at this stage's size, for --preserve-colors."""
        self.sess, self.model, self.run_folder, self.job = sess, model, run_folder, job
        self.schedule, self.folders, self.plan = job.schedule, job.folders, job.plan
        self.stages, self.index, self.stage = job.plan.stages, index, job.plan.stages[index]
        self.content_image = content_image
        self.mark = run_folder.image_mark()  # in every image written: which run folder's run wrote it
        self.step = self.saved_step = self.image_step = start_step
        self.last_loss = None  # the total loss of the last step taken here
        self.first_logged = start_step + 1 if log_first else 1
        self.keep_best = self.schedule.keep_best and index == len(self.stages) - 1  # other sizes' do not compare
        self.best_loss, self.best_step = run_folder.best()
        self.best_image = None  # a better image than the one at best_output, not yet written
        self.timings = []  # seconds per step in this process
        self.saved = None  # (checkpoint, image) last written
        # An event file per stage: one named only by the second it was opened in would replace the previous
        # stage's when stages are short (a film's frames); the stage number keeps them in order for TensorBoard.
        self.writer = tf.summary.FileWriter(self.folders.log_dir,
                                            filename_suffix=f".{run_folder.events_tag}.{os.getpid()}.{index + 1:05d}")
        if start_step == 0:  # the graph and the configuration, once per run
            self.writer.add_graph(None, graph_def=graph_without_weights(model.graph))
            self.writer.add_summary(text_summary("configuration", job.problem.as_record()), 0)

    def after_step(self, report):
        loss = float(report.losses["total_loss"])
        if not math.isfinite(loss):  # before anything of this step is written
            raise self.diverged(report.step, f"its loss is {loss}")
        self.step, self.last_loss = report.step, loss
        self.timings.append(report.seconds)
        if self.keep_best:
            self.consider_best(report)
        if report.step % self.schedule.log_every == 0 or report.step in (1, self.first_logged, self.stage.last_step):
            self.log(report)
        if report.step % self.schedule.save_every == 0 or report.step == self.stage.last_step:
            self.save(stage_end=report.step == self.stage.last_step)

    def consider_best(self, report):
        """--keep-best: remember the report's image if its loss is the lowest yet."""
        loss = float(report.losses["total_loss"])
        if loss < self.best_loss:
            self.best_loss, self.best_step, self.best_image = loss, report.step, report.image

    def log(self, report):
        self.writer.add_summary(report.summary, report.step)
        recent = self.timings[1:][-self.schedule.log_every:] or self.timings  # the process's first step warms up
        seconds_per_step = sum(recent) / len(recent)
        line = progress_line(report, self.schedule.iterations, seconds_per_step,
                             stages.steps_left(self.stages, self.index, report.step))
        if self.keep_best:
            best = tf.Summary(value=[tf.Summary.Value(tag="best_total_loss", simple_value=self.best_loss)])
            self.writer.add_summary(best, report.step)
            line += f"  best {self.best_loss:.4g} (step {self.best_step})"
        print(line, flush=True)

    def save(self, stage_end=False):
        """The image as <output-dir>/<step>.png (where the plan says so) and in TensorBoard, then the checkpoint.
        stage_end: the stage's last save."""
        step = self.step
        image_path = os.path.join(self.folders.output_dir, f"{step}.png")
        image, finite = self.sess.run([self.model.output_image, self.model.image_is_finite])
        if not finite:
            raise self.diverged(step, "its image holds NaN or infinite values")
        pixels = self.whole_pixels(image[0])
        with self.run_folder.explaining_write_failure(step):
            if self.plan.writes_step_image(self.index, stage_end):
                utils.save_image(image_path, pixels, self.mark)
                self.image_step = step
            else:
                image_path = self.saved[1] if self.saved else None
            self.writer.add_summary(image_summary(pixels), step)
            self.flush_events()  # events up to this step are on disk before the checkpoint that says we got here
            self.write_best()
            self.saved = self.run_folder.save(self.sess, step), image_path
        self.saved_step = step

    def diverged(self, step, what):
        """The error that stops a run whose step `step` went non-finite: nothing of that step is saved."""
        latest = self.run_folder.latest_checkpoint()
        kept = f"checkpoint {latest}, the last good one, is kept" if latest else "no checkpoint was written"
        change = f"lower --lr (now {self.job.problem.learning_rate:g})" if self.job.problem.optimizer == "adam" \
            else "lower the loss weights"
        return FixableError(f"step {step} diverged ({what}); nothing of it was saved, and {kept}: {change} and start "
                            f"over with --restart, or use another --checkpoint-dir")

    def write_best(self):
        if self.best_image is not None:
            pixels = np.clip(self.best_image[0] + self.model.weights.mean_pixel, 0, 255)
            utils.save_image(self.folders.best_output, self.as_saved(pixels), self.mark)
            self.run_folder.record_best(self.best_loss, self.best_step)
            self.best_image = None

    def flush_events(self):
        """Write the queued events to disk. TensorFlow's writer reports a failed write (a full disk) as what its
        status maps to (IndexError for "File too large"): made the OSError it is, naming the file."""
        try:
            self.writer.flush()
        except Exception as error:
            raise OSError(errno.EIO, utils.one_line(error), self.folders.log_dir) from None

    def stopped(self, signal_number):
        """A signal stopped the run: save where it is, and say where that is."""
        if self.saved_step != self.step:
            self.save()
        self.writer.close()
        checkpoint, image = self.saved
        image = f", image {image}" if image else ""
        print(f"Stopped by {signal.Signals(signal_number).name} at step {self.step}: checkpoint {checkpoint}"
              f"{image}. Run the same command to resume.", flush=True)

    def finish_stage(self):
        """Save the stage's last step (if the steps ended early), and after the last stage the final image."""
        if self.saved_step != self.step or self.image_step != self.step:
            self.save(stage_end=True)
        self.writer.close()
        if self.index == len(self.stages) - 1:
            with self.run_folder.explaining_write_failure(self.step, what=f"the final image {self.folders.output}"):
                utils.save_image(self.folders.output, self.whole_pixels(self.sess.run(self.model.output_image)[0]),
                                 self.mark)
                self.write_best()

    def whole_pixels(self, image):
        """The picture the stage's image (in the network's space) is part of, as saved: pixels in 0..255, with the
        content's colours under --preserve-colors."""
        image, content = self.plan.picture(self.index, image, self.content_image)
        return self.as_saved(np.clip(image + self.model.weights.mean_pixel, 0, 255), content)

    def as_saved(self, pixels, content=None):
        """The image as saved: with the content's colours under --preserve-colors."""
        content = self.content_image if content is None else content
        return utils.with_colors_of(pixels, content) if self.schedule.preserve_colors else pixels


def progress_line(report, last_step, seconds_per_step, steps_left):
    """steps_left: the steps still to take, counted in steps of the current size."""
    losses = "  ".join(f"{name.replace('_loss', '')} {value:.4g}" for name, value in report.losses.items()
                       if "/" not in name)  # the total and each loss piece's, not their parts (style_loss/conv1_1)
    left = format_duration(seconds_per_step * steps_left)
    step = f"{report.step:>{len(str(last_step))}}/{last_step}"
    return f"step {step}  {losses}  {seconds_per_step:.3f} s/step  {left} left"


def format_duration(seconds):
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


# The images of a data set share a graph: it is serialised once (0.1 s at 333x250), and forgotten with the graph.
_GRAPHS_WITHOUT_WEIGHTS = weakref.WeakKeyDictionary()


def graph_without_weights(graph):
    """The GraphDef with large constants' values dropped: TensorBoard shows the structure, not 80 MB."""
    if graph not in _GRAPHS_WITHOUT_WEIGHTS:
        graph_def = graph.as_graph_def(add_shapes=True)
        for node in graph_def.node:
            if node.op == "Const" and len(node.attr["value"].tensor.tensor_content) > 1024:
                node.attr["value"].tensor.ClearField("tensor_content")
        _GRAPHS_WITHOUT_WEIGHTS[graph] = graph_def
    return _GRAPHS_WITHOUT_WEIGHTS[graph]


def image_summary(pixels, longest=2048):
    """The image as TensorBoard shows it ("generated"), at most `longest` pixels on the long side."""
    encoded, (width, height) = utils.png_bytes(pixels, longest)
    image = tf.Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=encoded)
    return tf.Summary(value=[tf.Summary.Value(tag="generated/image", image=image)])


def text_summary(tag, record):
    """A JSON record as a TensorBoard text summary (shown as a code block)."""
    text = "```\n" + json.dumps(record, indent=2) + "\n```"
    metadata = tf.SummaryMetadata(plugin_data=tf.SummaryMetadata.PluginData(plugin_name="text"))
    return tf.Summary(value=[tf.Summary.Value(tag=tag, metadata=metadata, tensor=tf.make_tensor_proto(text))])
