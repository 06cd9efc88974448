"""A run's folders: its record and checkpoints in --checkpoint-dir, its TensorBoard events in --log-dir.

    holds_run_of(checkpoint_dir, problem)   # before anything runs: resume (True), a new run (False), or refuse
    with locked(checkpoint_dir):            # one process at a time in a run folder
        found = newest_readable_checkpoint(checkpoint_dir)   # (path, step) to resume from, or None
        folder = RunFolder(checkpoint_dir, log_dir, saver, keep)   # saver = new_saver(), made with the graph
        step = folder.start_or_resume(sess, problem, global_step, first_step, found and found[0], restart, init)
        folder.save(sess, step)

Checkpoints are TensorFlow's own (`Saver`, without MetaGraphs: those would embed every weight constant). A save
writes the new checkpoint's files, then the `checkpoint` pointer file listing it after the newest --keep - 1
before it, then deletes the older ones (the tool's own rotation: by exact name, where TensorFlow's goes by glob
pattern). A crash mid-save leaves the previous pointer or the new one, each listing intact checkpoints; a
checkpoint that cannot be read is skipped for the one before it. Before each save the folder's saving record
(saving.json) names the checkpoint being written and those to be deleted, so that what a kill mid-save leaves of
them (files the pointer does not list, TensorFlow's temporaries) is known as the tool's own and removed by the
next run in the folder.

The tool deletes and replaces only what it can show it wrote: of the names TensorFlow's Saver writes
(`checkpoint`, ckpt-<step>.index, ckpt-<step>.data-*), the files of a checkpoint whose index holds its variable
(generated_image), or that its saving record names, beside its run record (run.json, a Problem). A folder where
the Saver would replace any other file of those names is refused, --restart or not; other files are never
touched (--restart says what it left).
It follows no symbolic link for a lock or a deletion: a link in the folder is left as it is, and said.
"""

import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
import re
import socket
import stat
import sys
import time
import uuid

import utils
from runner import tf_setup
from runner.tf_setup import tf
from utils import FixableError

RUN_RECORD = "run.json"  # what the run was made from: its Problem
BEST_RECORD = "best.json"  # with --keep-best: the lowest loss seen and its step
CHECKPOINT_PREFIX = "ckpt"  # checkpoints are ckpt-<step>.index and ckpt-<step>.data-*
EVENTS_PREFIX = "events.out.tfevents."
LOCK_FILE = "run.lock"  # held (flock) by the process running in the folder; names it
SAVING_RECORD = "saving.json"  # the checkpoints a save writes or deletes, named before it starts: what a kill
#                                mid-save leaves of them (a data file without its index, say) is then the tool's own


class FolderInUse(FixableError):
    """Another process holds the run folder's lock."""


def checkpoint_paths(checkpoint_dir):
    """The folder's checkpoints, oldest first (each a path prefix, ckpt-<step>): as its `checkpoint` pointer file
    lists them or, when that file is missing, empty or garbled, the ckpt-<step>.index files in the folder."""
    try:
        state = tf.train.get_checkpoint_state(checkpoint_dir)
    except (ValueError, OSError, tf.errors.OpError):  # an empty pointer file raises; a garbled one gives None
        state = None
    if state is not None and state.all_model_checkpoint_paths:
        return list(state.all_model_checkpoint_paths)
    found = sorted((int(name[len(CHECKPOINT_PREFIX) + 1:-len(".index")]), os.path.join(checkpoint_dir, name[:-6]))
                   for name in _names_in(checkpoint_dir) if re.fullmatch(rf"{CHECKPOINT_PREFIX}-\d+\.index", name))
    pointer = os.path.join(checkpoint_dir, "checkpoint")
    told = (os.path.realpath(pointer), os.path.getmtime(pointer) if os.path.exists(pointer) else None)
    if found and told not in _pointer_warned:
        _pointer_warned.add(told)
        print(f"warning: {pointer} cannot be read; using the checkpoint files found beside it", file=sys.stderr)
    return [path for _, path in found]


_pointer_warned = set()  # (pointer file, its time) told about: each unreadable pointer is told once


def _names_in(folder):
    try:
        return os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []


def step_of(checkpoint_path):
    """The step a checkpoint was saved at, from its name (ckpt-<step>)."""
    return int(checkpoint_path.rsplit("-", 1)[1])


def newest_readable_checkpoint(checkpoint_dir):
    """(path, step) of the newest checkpoint whose every tensor reads back, or None if the folder has none.

    Each newer one that cannot be read (cut short, bit-flipped: TensorFlow checks each tensor's checksum) is
    passed over with a warning; a folder none of whose checkpoints can be read is refused.
    """
    paths = checkpoint_paths(checkpoint_dir)
    for path in reversed(paths):
        try:
            reader = tf.train.load_checkpoint(path)
            for name in reader.get_variable_to_shape_map():
                reader.get_tensor(name)
            return path, int(reader.get_tensor("global_step"))
        except Exception as error:  # TensorFlow's reader raises many kinds for a damaged file
            print(f"warning: checkpoint {path} cannot be read ({_first_line(error)}); trying the one before",
                  file=sys.stderr)
    if paths:
        raise FixableError(f"no checkpoint in {checkpoint_dir} can be read: pass --restart to start over")
    return None


def _first_line(error):
    """An error's message without TensorFlow's appended op stack ("Detected at node ... defined at ...")."""
    return tf_setup.reason_of(error)


RECORD_FIELDS = ("style", "weights", "width", "height", "style_layers", "optimizer")  # in every version's run.json


def run_record(checkpoint_dir):
    """The folder's run record (a dict) if it is this tool's (a regular file holding a Problem), else None."""
    path = os.path.join(checkpoint_dir, RUN_RECORD)
    if os.path.islink(path) or not os.path.isfile(path):
        return None
    try:
        with open(path) as file:
            recorded = json.load(file)
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return recorded if isinstance(recorded, dict) and all(key in recorded for key in RECORD_FIELDS) else None


# The names TensorFlow's Saver writes, and so could replace: its pointer file `checkpoint`, and each checkpoint's
# ckpt-<step>.index and ckpt-<step>.data-<shard>-of-<shards>. Other names starting ckpt- are no checkpoint's.
CHECKPOINT_FILE = re.compile(rf"({CHECKPOINT_PREFIX}-\d+)\.(index|data-\d{{5}}-of-\d{{5}})")
# While it saves, TensorFlow writes each of those files under a temporary name and renames it when complete:
# ckpt-<step>.index.tempstate<random number>, and the same for a data file; checkpoint.tmp<uuid, 32 hex digits>.
TEMPORARY_CHECKPOINT_FILE = re.compile(rf"{CHECKPOINT_FILE.pattern}\.tempstate\d+")
TEMPORARY_POINTER_FILE = re.compile(r"checkpoint\.tmp[0-9a-f]{32}")


def _checkpoint_of(name):
    """The checkpoint (ckpt-<step>) whose file, or TensorFlow's temporary of it, is called `name`; or None."""
    match = CHECKPOINT_FILE.fullmatch(name) or TEMPORARY_CHECKPOINT_FILE.fullmatch(name)
    return match.group(1) if match else None


def _checkpoint_files(checkpoint_dir):
    """The names in the folder that the Saver writes (see CHECKPOINT_FILE)."""
    return sorted(name for name in _names_in(checkpoint_dir)
                  if name == "checkpoint" or CHECKPOINT_FILE.fullmatch(name))


def _variables_of(prefix):
    """The names of the variables a checkpoint holds, or None where its index cannot be read."""
    try:
        return {name for name, _ in tf.train.list_variables(prefix)}
    except Exception:  # TensorFlow's reader raises many kinds for a damaged or foreign file
        return None


def _pointed_to(checkpoint_dir):
    """The checkpoint prefixes (ckpt-12) the folder's `checkpoint` pointer file lists; none if it cannot be read."""
    try:
        state = tf.train.get_checkpoint_state(checkpoint_dir)
    except (ValueError, OSError, tf.errors.OpError):
        return set()
    return {os.path.basename(path) for path in state.all_model_checkpoint_paths} if state else set()


def _being_saved(checkpoint_dir):
    """The checkpoint prefixes (ckpt-20, ...) the folder's saving record names: the one a save is writing and those
    it may drop; empty if there is no record, or it is a link or not the tool's."""
    path = os.path.join(checkpoint_dir, SAVING_RECORD)
    if os.path.islink(path):
        return set()
    try:
        with open(path) as file:
            record = json.load(file)
        named = [record["saving"], *record.get("dropping", [])]  # records of earlier versions name no drops
    except (OSError, ValueError, UnicodeDecodeError, AttributeError, KeyError, TypeError):
        return set()
    well_formed = all(isinstance(prefix, str) and re.fullmatch(rf"{CHECKPOINT_PREFIX}-\d+", prefix)
                      for prefix in named)
    return set(named) if well_formed else set()


def own_checkpoint_files(checkpoint_dir):
    """(the Saver's files in the folder that the tool can show it wrote, those it cannot), each sorted.

    Its own: the files of a checkpoint whose index holds its variable (generated_image), or, with its run record
    there, whose index cannot be read but which its `checkpoint` pointer file lists (a damaged one of its own), or
    which its saving record names (a save a kill interrupted: the checkpoint it was writing, or those it was
    deleting); and that pointer file, with its run record there or beside a checkpoint of its own. Not its own: a
    link; a data file without such an index (another program's); an index of another program's variables."""
    names = [name for name in _checkpoint_files(checkpoint_dir)
             if not os.path.islink(os.path.join(checkpoint_dir, name))]
    recorded = run_record(checkpoint_dir) is not None
    listed = _pointed_to(checkpoint_dir) if recorded else set()
    own_prefixes = _being_saved(checkpoint_dir) if recorded else set()
    for name in names:
        match = CHECKPOINT_FILE.fullmatch(name)
        if match and match.group(2) == "index":
            variables = _variables_of(os.path.join(checkpoint_dir, match.group(1)))
            if variables is None and match.group(1) in listed or variables and "generated_image" in variables:
                own_prefixes.add(match.group(1))

    def is_ours(name):
        if name == "checkpoint":
            return recorded or bool(own_prefixes)
        return CHECKPOINT_FILE.fullmatch(name).group(1) in own_prefixes

    ours = [name for name in names if is_ours(name)]
    return ours, sorted(set(_checkpoint_files(checkpoint_dir)) - set(ours))


def foreign_checkpoint_files(checkpoint_dir):
    """The Saver's files in the folder that the tool cannot show it wrote (own_checkpoint_files), and a saving
    record that is not the tool's (a save would replace it)."""
    planted = os.path.lexists(os.path.join(checkpoint_dir, SAVING_RECORD)) and not _being_saved(checkpoint_dir)
    return own_checkpoint_files(checkpoint_dir)[1] + ([SAVING_RECORD] if planted else [])


def check_only_own_checkpoints(checkpoint_dir):
    """Refuse a checkpoint folder that holds checkpoint files the tool did not write: it would resume them,
    replace them, or (with --restart) delete them."""
    foreign = foreign_checkpoint_files(checkpoint_dir)
    if foreign:
        holder = _other_holder(checkpoint_dir)
        if holder:  # a run at work there, whose save may be half written: the folder's being in use is the reason
            raise _in_use(checkpoint_dir, holder)
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise FixableError(f"{checkpoint_dir} holds checkpoint files this tool did not write ({shown}: not of a "
                           f"checkpoint whose index holds its variables, beside its run record {RUN_RECORD}): move "
                           f"them, or choose another --checkpoint-dir")


def holds_run_of(checkpoint_dir, problem):
    """True if checkpoint_dir holds a run of this problem, False if no run; refuse a run of another, and a folder
    holding checkpoints that are not this tool's."""
    check_only_own_checkpoints(checkpoint_dir)
    if not checkpoint_paths(checkpoint_dir):
        return False
    recorded = run_record(checkpoint_dir)
    if recorded is None:
        raise FixableError(f"{checkpoint_dir} holds a checkpoint without a readable {RUN_RECORD}: pass --restart "
                           f"to replace it, or another --checkpoint-dir")
    differences = problem.differences_from(recorded)
    if differences:
        raise FixableError(f"{checkpoint_dir} holds a run of another problem ({'; '.join(differences)}): pass "
                         f"--restart to start over, or another --checkpoint-dir")
    return True


@contextlib.contextmanager
def locked(checkpoint_dir):
    """Hold the run folder's lock while a run works in it: a second process on the same folder is refused,
    naming the holder. The kernel drops the lock when its holder ends, however it ends (SIGKILL included).
    Within one process the lock may be taken again (an item's lock, then its run's)."""
    os.makedirs(checkpoint_dir, exist_ok=True)
    key = os.path.realpath(checkpoint_dir)
    if key in _held:
        yield
        return
    path = os.path.join(checkpoint_dir, LOCK_FILE)
    try:  # never through a link: what it points to would be truncated
        file = _lock_file(path, os.O_RDWR | os.O_CREAT, "r+")
    except OSError as error:
        if error.errno != errno.ELOOP:
            raise
        raise FixableError(f"{path} is a symbolic link, which this tool never makes: remove the link (what it points "
                           f"to is not touched), or choose another --checkpoint-dir") from None
    if file is None:
        raise FixableError(f"{path} is not a regular file: remove it, or choose another --checkpoint-dir")
    with file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            raise _in_use(checkpoint_dir, file.read().strip()) from None
        file.truncate(0)
        file.write(f"process {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        file.flush()
        _held.add(key)
        try:
            yield
        finally:
            _held.discard(key)
            file.truncate(0)


_held = set()  # the folders whose lock this process holds


def _lock_file(path, flags, mode):
    """The lock file opened (os.open's `flags`, as a file of `mode`), never through a link (OSError ELOOP), nor
    blocking on a FIFO planted under its name; None if it is not a regular file."""
    descriptor = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        return None
    return os.fdopen(descriptor, mode)


def _in_use(checkpoint_dir, holder):
    return FolderInUse(f"{checkpoint_dir} is in use by {holder or 'another process'}: wait for that run to end, or "
                       f"pass another --checkpoint-dir")


def _other_holder(checkpoint_dir):
    """Who holds the folder's lock (what its lock file says), if another process does; None otherwise. Only looks:
    the lock file is neither made nor followed through a link."""
    if os.path.realpath(checkpoint_dir) in _held:
        return None
    try:
        file = _lock_file(os.path.join(checkpoint_dir, LOCK_FILE), os.O_RDONLY, "r")
    except OSError:
        return None
    if file is None:
        return None
    with file:
        try:
            fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return file.read().strip() or "another process"
        except OSError:
            return None
        fcntl.flock(file, fcntl.LOCK_UN)
    return None


def image_mark(checkpoint_dir):
    """The mark (utils.mark_of) of the images and videos the run in checkpoint_dir writes: it names the folder by the
    id its run record keeps (a new folder, or one of an earlier version, has none: the plain mark)."""
    record = run_record(checkpoint_dir)
    folder_id = record.get("folder_id") if record else None
    return utils.mark_of(folder_id if isinstance(folder_id, str) else None)


def events_tag(checkpoint_dir):
    """What the names of the TensorBoard event files of the run in checkpoint_dir carry (from its run record, which
    names each run apart: RunFolder.record), or None where there is no run: a resume cuts, and a new run puts
    aside, only those, where runs of other folders may share --log-dir (its default is one folder for all).
    Event files of earlier versions, which carry none, are left as they are."""
    try:
        with open(os.path.join(checkpoint_dir, RUN_RECORD), "rb") as file:
            record = file.read()
    except OSError:
        return None
    if b'"run_id"' not in record:  # an earlier version's: the same problem's records are alike, the folders not
        record += os.path.realpath(checkpoint_dir).encode()
    return "run-" + hashlib.sha256(record).hexdigest()[:10]


def event_files(log_dir, tag):
    """The event files directly in log_dir of the run whose events_tag is `tag`, by name (listed, not globbed: [ in
    a name is no pattern); regular files only, and not a killed rewrite's temporary (utils.atomic_output's)."""
    paths = (os.path.join(log_dir, name) for name in _names_in(log_dir)
             if name.startswith(EVENTS_PREFIX) and f".{tag}." in name and not name.endswith(".tmp"))
    return sorted(path for path in paths if os.path.isfile(path) and not os.path.islink(path))


def truncate_events(log_dir, tag, last_step):
    """Drop the run's events after last_step (written before a crash) so a resumed run continues one curve. A file
    of which no event can be read is no event file (or holds none yet): it is left as it is."""
    for path in event_files(log_dir, tag):
        kept, dropped = [], False
        try:
            for event in tf.train.summary_iterator(path):
                if event.step > last_step:
                    dropped = True
                else:
                    kept.append(event)
        except tf.errors.DataLossError:  # a record cut short by the crash
            dropped = bool(kept)
        except tf.errors.NotFoundError:  # gone since it was listed
            continue
        if dropped:
            with utils.atomic_output(path) as temporary:
                with tf.io.TFRecordWriter(temporary) as writer:
                    for event in kept:
                        writer.write(event.SerializeToString())


def archive_events(log_dir, tag):
    """Move the event files of an earlier run of the same folder into a subfolder: TensorBoard shows it as a run of
    its own."""
    files = event_files(log_dir, tag)
    if files:
        archive = os.path.join(log_dir, time.strftime("replaced-%Y%m%d-%H%M%S"))
        os.makedirs(archive, exist_ok=True)
        for path in files:
            os.replace(path, os.path.join(archive, os.path.basename(path)))


def new_saver():
    """The Saver of the current graph (made before the graph is finalised; one Saver serves every run folder that
    graph is used for). It writes checkpoints only: RunFolder.save keeps the pointer file and deletes old ones."""
    return tf.train.Saver(save_relative_paths=True)


class RunFolder:
    """The checkpoint folder (restore, save, the run and best records) and the log folder of one run."""

    def __init__(self, checkpoint_dir, log_dir, saver, keep):
        self.checkpoint_dir, self.log_dir = checkpoint_dir, log_dir
        self.prefix = os.path.join(checkpoint_dir, CHECKPOINT_PREFIX)
        self.run_record = os.path.join(checkpoint_dir, RUN_RECORD)
        self.best_record = os.path.join(checkpoint_dir, BEST_RECORD)
        self.saver, self.keep = saver, keep
        self.events_tag = events_tag(checkpoint_dir)  # in the names of the run's event files; None: no run yet
        self.checkpoints = []  # the run's checkpoints the pointer file lists (ckpt-<step>), oldest first

    def start_or_resume(self, sess, problem, global_step, first_step, checkpoint, restart, initialize):
        """Restore `checkpoint` (a path from newest_readable_checkpoint), start a new run, or carry the run on at
        its next stage from first_step (initialize() sets the image to the previous stage's result, and Adam's
        state as the problem says: afresh, or carried over); return the step the loop starts from."""
        listed = [os.path.basename(path) for path in checkpoint_paths(self.checkpoint_dir)]
        self.remove_interrupted_save(set(listed))
        if checkpoint is not None:
            self.saver.restore(sess, checkpoint)
            self.checkpoints = listed[:listed.index(os.path.basename(checkpoint)) + 1]
            restored_step = int(sess.run(global_step))
            truncate_events(self.log_dir, self.events_tag, restored_step)
            print(f"Resuming from step {restored_step} (checkpoint in {self.checkpoint_dir})", flush=True)
            return restored_step
        initialize()  # the start image; at a later stage, Adam's state afresh or carried (--adam-across-scales)
        if first_step == 0:
            earlier = self.events_tag  # the run this one replaces, if any: its curves are put aside
            record = run_record(self.checkpoint_dir) or {}
            if restart:
                self.clear()
            self.record(problem, record.get("folder_id"))
            self.events_tag = events_tag(self.checkpoint_dir)
            if earlier is not None:
                archive_events(self.log_dir, earlier)
            print(f"Starting a new run in {self.checkpoint_dir}", flush=True)
        else:
            global_step.load(first_step, sess)
            self.checkpoints = listed
        return first_step

    def remove_interrupted_save(self, listed):
        """Remove what a save a kill interrupted left, then its saving record: of the checkpoints the record names,
        the files of those the pointer file does not list (`listed`: the names checkpoint_paths gives) and
        TensorFlow's temporaries; and the pointer file's temporary. What the pointer file lists stays, and
        temporaries of checkpoints the record does not name (not shown to be ours)."""
        named = _being_saved(self.checkpoint_dir)
        if not named or run_record(self.checkpoint_dir) is None:  # the record, beside the run's: not another's
            return
        for name in _names_in(self.checkpoint_dir):
            path = os.path.join(self.checkpoint_dir, name)
            if not os.path.isfile(path) or os.path.islink(path):
                continue
            checkpoint = _checkpoint_of(name)
            if TEMPORARY_POINTER_FILE.fullmatch(name) or checkpoint in named and (
                    checkpoint not in listed or TEMPORARY_CHECKPOINT_FILE.fullmatch(name)):
                os.remove(path)
        os.remove(os.path.join(self.checkpoint_dir, SAVING_RECORD))

    def clear(self):
        """Remove this tool's checkpoint files and records (for --restart), and say what was left: only files it
        can show it wrote go (own_checkpoint_files; check_only_own_checkpoints has refused a folder where the Saver
        would replace others); links stay."""
        if run_record(self.checkpoint_dir) is None:
            return
        ours = own_checkpoint_files(self.checkpoint_dir)[0] + [RUN_RECORD, BEST_RECORD] + \
            ([SAVING_RECORD] if _being_saved(self.checkpoint_dir) else [])
        for name in ours:
            path = os.path.join(self.checkpoint_dir, name)
            if os.path.isfile(path) and not os.path.islink(path):
                os.remove(path)
        kept = (LOCK_FILE, "flow", "assembled.npz", "frames.json")  # the tool's too: keyed and checked where read
        left = [name for name in _names_in(self.checkpoint_dir) if name not in kept]
        if left:
            print(f"--restart left {len(left)} entries in {self.checkpoint_dir} that are not this tool's checkpoints: "
                  f"{', '.join(sorted(left)[:5])}{' ...' if len(left) > 5 else ''}", flush=True)

    def record(self, problem, folder_id=None):
        """Start the folder's record of a new run (and forget an earlier run's best image). The record names the
        run apart from every other (run_id, which no Problem has): its event files carry a tag made from it. It
        names the folder too (folder_id: kept from the run this one replaces, else new): the images the folder's
        runs write carry it (image_mark), so that a run replaces the images of its folder's earlier runs, and never
        another folder's."""
        folder_id = folder_id if isinstance(folder_id, str) else uuid.uuid4().hex
        record = {**problem.as_record(), "run_id": uuid.uuid4().hex, "folder_id": folder_id}
        utils.write_text_atomically(self.run_record, json.dumps(record, indent=2) + "\n")
        if os.path.exists(self.best_record):
            os.remove(self.best_record)

    def image_mark(self):
        """The mark of the images and videos this run writes (image_mark), once start_or_resume has recorded it."""
        return image_mark(self.checkpoint_dir)

    def best(self):
        """(loss, step) of the best image this run has written, or (inf, None): none yet, or a record that cannot be
        trusted (damaged, a loss that is not a finite number), said in a warning; the best is then sought afresh."""
        try:
            with open(self.best_record) as file:
                record = json.load(file)
        except FileNotFoundError:
            return math.inf, None
        except (OSError, ValueError, UnicodeDecodeError) as error:
            return self._best_unreadable(utils.one_line(error))
        loss, step = record.get("loss") if isinstance(record, dict) else None, \
            record.get("step") if isinstance(record, dict) else None
        if not isinstance(loss, (int, float)) or isinstance(loss, bool) or not math.isfinite(loss) or \
                not isinstance(step, int) or isinstance(step, bool) or step < 0:
            return self._best_unreadable(f"it holds {utils.one_line(record, limit=80)}, not a finite loss and a step")
        return float(loss), step

    def _best_unreadable(self, reason):
        print(f"warning: {self.best_record} cannot be trusted ({reason}); the best image is sought afresh from here",
              file=sys.stderr)
        return math.inf, None

    def record_best(self, loss, step):
        utils.write_text_atomically(self.best_record, json.dumps({"loss": loss, "step": step}) + "\n")

    def latest_checkpoint(self):
        """The path of the newest checkpoint in the folder, or None."""
        paths = checkpoint_paths(self.checkpoint_dir)
        return paths[-1] if paths else None

    def save(self, sess, step):
        """Save a checkpoint of the variables at `step`, list it in the pointer file after the newest of those
        before it (--keep in all), and delete the others; return its path.

        The saving record names the new checkpoint and those to be deleted first, so that what a kill mid-save
        leaves of them is known as the tool's and removed by the next run (remove_interrupted_save). The deletion
        is the tool's own, by exact name: TensorFlow's rotation finds the files by a glob pattern, which reaches
        into other folders when a folder's name holds [ ] * or ?, and deletes a ckpt-<step>.meta it did not write."""
        name = f"{CHECKPOINT_PREFIX}-{step}"
        kept = [*(held for held in self.checkpoints if held != name), name]
        kept, dropped = kept[-self.keep:], kept[:-self.keep]
        saving = os.path.join(self.checkpoint_dir, SAVING_RECORD)
        utils.write_text_atomically(saving, json.dumps({"saving": name, "dropping": dropped}) + "\n")
        path = self.saver.save(sess, self.prefix, global_step=step, write_meta_graph=False, write_state=False)
        # The pointer file names checkpoints relative to its folder (given an absolute folder), so the folder can move.
        tf.train.update_checkpoint_state(os.path.abspath(self.checkpoint_dir), name, all_model_checkpoint_paths=kept)
        self.checkpoints = kept
        for file_name in _checkpoint_files(self.checkpoint_dir):
            path_of_file = os.path.join(self.checkpoint_dir, file_name)
            if _checkpoint_of(file_name) in dropped and not os.path.islink(path_of_file):
                os.remove(path_of_file)
        os.remove(saving)
        return path

    @contextlib.contextmanager
    def explaining_write_failure(self, step, what=None):
        """Turn a failed write (a full disk, say) into one line saying what is still intact."""
        try:
            yield
        except (OSError, tf.errors.OpError) as error:
            latest = self.latest_checkpoint()
            if latest is None or step_of(latest) != step:  # drop what the failed save left, and nothing else
                for name in _names_in(self.checkpoint_dir):
                    leftover = os.path.join(self.checkpoint_dir, name)
                    if _checkpoint_of(name) == f"{CHECKPOINT_PREFIX}-{step}" and os.path.isfile(leftover) and \
                            not os.path.islink(leftover):
                        os.remove(leftover)
            intact = f"checkpoint {latest} is intact" if latest else "no checkpoint was written"
            raise FixableError(f"could not write {what or f'the checkpoint and image of step {step}'} "
                               f"({_first_line(error)}); {intact}, and earlier images are unchanged: "
                               f"free some space and run the same command to resume") from None
