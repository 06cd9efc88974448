"""A run's folders: its record and checkpoints in --checkpoint-dir, its TensorBoard events in --log-dir.

    holds_run_of(checkpoint_dir, problem)   # before anything runs: resume (True), a new run (False), or refuse
    folder = RunFolder(checkpoint_dir, log_dir, keep)   # in the training graph: its Saver needs the variables
    step = folder.start_or_resume(sess, problem, global_step, first_step, restore, restart)
    folder.save(sess, step)

Checkpoints are TensorFlow's own (`Saver`, without MetaGraphs: those would embed every weight constant).
TensorFlow writes a checkpoint's files before it replaces the `checkpoint` pointer file, so a crash mid-save
leaves the previous pointer; a checkpoint that cannot be read is skipped for the one before it.
"""

import contextlib
import json
import math
import os
import shutil
import sys
import time

import utils
from runner.tf_setup import tf
from utils import FixableError

RUN_RECORD = "run.json"  # what the run was made from: its Problem
BEST_RECORD = "best.json"  # with --keep-best: the lowest loss seen and its step
CHECKPOINT_PREFIX = "ckpt"  # checkpoints are ckpt-<step>.index and ckpt-<step>.data-*
EVENTS_PREFIX = "events.out.tfevents."


def checkpoint_paths(checkpoint_dir):
    """The checkpoints the folder's pointer file lists, oldest first (each a path prefix, ckpt-<step>)."""
    state = tf.train.get_checkpoint_state(checkpoint_dir)
    return list(state.all_model_checkpoint_paths) if state else []


def step_of(checkpoint_path):
    """The step a checkpoint was saved at, from its name (ckpt-<step>)."""
    return int(checkpoint_path.rsplit("-", 1)[1])


def latest_step(checkpoint_dir):
    """The step of the latest checkpoint in checkpoint_dir, or None."""
    paths = checkpoint_paths(checkpoint_dir)
    return step_of(paths[-1]) if paths else None


def holds_run_of(checkpoint_dir, problem):
    """True if checkpoint_dir holds a run of this problem, False if no run; refuse a run of another."""
    if not checkpoint_paths(checkpoint_dir):
        return False
    try:
        with open(os.path.join(checkpoint_dir, RUN_RECORD)) as file:
            recorded = json.load(file)
    except (OSError, ValueError):
        raise FixableError(f"{checkpoint_dir} holds a checkpoint without a readable {RUN_RECORD}: pass --restart "
                         f"to replace it, or another --checkpoint-dir") from None
    differences = problem.differences_from(recorded)
    if differences:
        raise FixableError(f"{checkpoint_dir} holds a run of another problem ({'; '.join(differences)}): pass "
                         f"--restart to start over, or another --checkpoint-dir")
    return True


def event_files(log_dir):
    """The TensorBoard event files directly in log_dir, by name (listed, not globbed: [ in a name is no pattern)."""
    try:
        names = os.listdir(log_dir)
    except FileNotFoundError:
        return []
    return sorted(os.path.join(log_dir, name) for name in names if name.startswith(EVENTS_PREFIX))


def truncate_events(log_dir, last_step):
    """Drop events after last_step (written before a crash) so a resumed run continues one curve."""
    for path in event_files(log_dir):
        kept, dropped = [], False
        try:
            for event in tf.train.summary_iterator(path):
                if event.step > last_step:
                    dropped = True
                else:
                    kept.append(event)
        except tf.errors.DataLossError:  # a record cut short by the crash
            dropped = True
        if dropped:
            with utils.atomic_output(path) as temporary:
                with tf.io.TFRecordWriter(temporary) as writer:
                    for event in kept:
                        writer.write(event.SerializeToString())


def archive_events(log_dir):
    """Move an earlier run's event files into a subfolder: TensorBoard shows it as a run of its own."""
    files = event_files(log_dir)
    if files:
        archive = os.path.join(log_dir, time.strftime("replaced-%Y%m%d-%H%M%S"))
        os.makedirs(archive, exist_ok=True)
        for path in files:
            os.replace(path, os.path.join(archive, os.path.basename(path)))


class RunFolder:
    """The checkpoint folder (a Saver, restore with fallback, the run and best records) and the log folder."""

    def __init__(self, checkpoint_dir, log_dir, keep):
        self.checkpoint_dir, self.log_dir = checkpoint_dir, log_dir
        self.prefix = os.path.join(checkpoint_dir, CHECKPOINT_PREFIX)
        self.run_record = os.path.join(checkpoint_dir, RUN_RECORD)
        self.best_record = os.path.join(checkpoint_dir, BEST_RECORD)
        self.saver = tf.train.Saver(max_to_keep=keep, save_relative_paths=True)

    def start_or_resume(self, sess, problem, global_step, first_step, restore, restart):
        """Restore the run in the folder, start a new one, or carry it on at its next scale from first_step
        (the graph's start image is then the previous scale's result); return the step the loop starts from."""
        restored_step = self.restore(sess) if restore else None
        if restored_step is not None:
            truncate_events(self.log_dir, restored_step)
            print(f"Resuming from step {restored_step} (checkpoint in {self.checkpoint_dir})", flush=True)
            return restored_step
        sess.run(tf.global_variables_initializer())  # at a new scale, Adam's moments too start afresh
        if first_step == 0:
            if restart:
                self.clear()
            self.record(problem)
            archive_events(self.log_dir)
            print(f"Starting a new run in {self.checkpoint_dir}", flush=True)
        else:
            global_step.load(first_step, sess)
            self.saver.recover_last_checkpoints(checkpoint_paths(self.checkpoint_dir))  # keep rotating them
        return first_step

    def restore(self, sess):
        """Restore the latest readable checkpoint; return its step, or None if there is none."""
        paths = checkpoint_paths(self.checkpoint_dir)
        for index in reversed(range(len(paths))):
            try:
                self.saver.restore(sess, paths[index])
            except (tf.errors.OpError, ValueError) as error:
                print(f"warning: checkpoint {paths[index]} cannot be read ({utils.one_line(error)}); trying the "
                      f"one before", file=sys.stderr)
                continue
            self.saver.recover_last_checkpoints(paths[:index + 1])
            return int(sess.run(tf.train.get_global_step()))
        if paths:
            raise FixableError(f"no checkpoint in {self.checkpoint_dir} can be read: pass --restart to start over")
        return None

    def clear(self):
        """Remove this tool's checkpoint files and records (for --restart)."""
        names = [name for name in os.listdir(self.checkpoint_dir) if name.startswith(CHECKPOINT_PREFIX + "-")]
        for path in [*(os.path.join(self.checkpoint_dir, name) for name in names),
                     os.path.join(self.checkpoint_dir, "checkpoint"), self.run_record, self.best_record]:
            if os.path.exists(path):
                os.remove(path)

    def record(self, problem):
        """Start the folder's record of a new run (and forget an earlier run's best image)."""
        utils.write_text_atomically(self.run_record, json.dumps(problem.as_record(), indent=2) + "\n")
        if os.path.exists(self.best_record):
            os.remove(self.best_record)

    def best(self):
        """(loss, step) of the best image this run has written, or (inf, None)."""
        try:
            with open(self.best_record) as file:
                record = json.load(file)
            return float(record["loss"]), int(record["step"])
        except (OSError, ValueError, KeyError, TypeError):
            return math.inf, None

    def record_best(self, loss, step):
        utils.write_text_atomically(self.best_record, json.dumps({"loss": loss, "step": step}) + "\n")

    def save(self, sess, step):
        """Save a checkpoint of the variables at `step`; return its path."""
        return self.saver.save(sess, self.prefix, global_step=step, write_meta_graph=False)

    @contextlib.contextmanager
    def explaining_write_failure(self, step, what=None):
        """Turn a failed write (a full disk, say) into one line saying what is still intact."""
        try:
            yield
        except (OSError, tf.errors.OpError) as error:
            latest = tf.train.latest_checkpoint(self.checkpoint_dir)
            if latest is None or step_of(latest) != step:  # drop what the failed save left
                for name in os.listdir(self.checkpoint_dir):
                    if name.startswith(f"{CHECKPOINT_PREFIX}-{step}.") or \
                            name.startswith(f"{CHECKPOINT_PREFIX}-{step}_temp"):
                        leftover = os.path.join(self.checkpoint_dir, name)
                        shutil.rmtree(leftover) if os.path.isdir(leftover) else os.remove(leftover)
            reason = getattr(error, "strerror", None) or getattr(error, "message", None) or str(error)
            intact = f"checkpoint {latest} is intact" if latest else "no checkpoint was written"
            raise FixableError(f"could not write {what or f'the checkpoint and image of step {step}'} "
                             f"({utils.one_line(reason)}); {intact}, and earlier images are unchanged: "
                             f"free some space and run the same command to resume") from None
