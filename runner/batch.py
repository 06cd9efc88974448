"""Many items: split over shards, a manifest per shard, finished items skipped, a bad item failing alone.

    python style_transfer.py --content photos/ --shard 0/4     # or the index and count from the scheduler

Items (sorted by name) go to shards by position: item k to shard k mod COUNT. Without --shard, a Slurm job
array's task or a Kubernetes Indexed Job's pod says which shard this is: the index is SLURM_ARRAY_TASK_ID or
JOB_COMPLETION_INDEX, the count --shard-count (for a Slurm array of tasks 0 to N-1 with no step, N by default,
unless earlier runs in --output-dir split the data set into another number; any other array, one with a step or a
list or a resubmission of some tasks, needs --shard-count, so that the partition never depends on which tasks are
in a submission). Each shard appends one JSON line per finished
or failed item to <output-dir>/manifest-<INDEX>-of-<COUNT>.jsonl, with the item's folder and its output relative
to --output-dir; a finished item also gets a done record in its checkpoint folder (DONE_RECORD, a copy of its
line). A rerun, from any folder and under any shard count, skips the items done (by their done records, else by
any manifest's line; whose image is there), resumes an interrupted one from its checkpoint and retries failed
ones. Two workers never run one item at once: an item's checkpoint folder is locked while it runs, a worker that
finds it locked leaves it to the holder, and one that gets the lock reads the item's done record again. Summarise
a run's manifests with

    python -m runner.batch OUTPUT_DIR
"""

import argparse
import io
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field

from PIL import Image

import utils
from utils import FixableError, shown

# The run's own modules (run_folder, tfrecords) bring TensorFlow, which the summary command does not need:
# each function that runs items or writes results imports them itself.

MANIFEST = "manifest-{index}-of-{count}.jsonl"
ITEMS = "items-{index}-of-{count}.json"  # the names a shard was given, for the summary's "left"


@dataclass(frozen=True)
class Shard:
    index: int
    count: int
    # The count was taken from a Slurm array's size (no --shard-count): run_items checks it against earlier runs'.
    count_from_slurm: bool = field(default=False, compare=False)

    def __str__(self):
        return f"{self.index}-of-{self.count}"


@dataclass(frozen=True)
class ItemResult:
    """What a finished item's run reports to the manifest."""
    code: int  # 0, or 128 + the signal that stopped it
    output: str
    loss: float
    steps: int


def _whole_number(environ, name, default=None):
    """A scheduler's variable as a whole number; refuse one that is not."""
    text = environ.get(name)
    if text is None and default is not None:
        return default
    try:
        return int(text)
    except (TypeError, ValueError):
        raise FixableError(f"{name}={text!r} is not a whole number: run under the scheduler as it sets it, or pass "
                           f"--shard INDEX/COUNT") from None


def shard_from(given, shard_count, environ=os.environ):
    """The Shard this worker runs: --shard INDEX/COUNT, else a Slurm array task, else a Kubernetes Indexed Job's
    pod (with --shard-count), else the only one."""
    if given is not None:
        index, count = given
        source = "--shard"
    elif "SLURM_ARRAY_TASK_ID" in environ:
        index, source = _whole_number(environ, "SLURM_ARRAY_TASK_ID"), "SLURM_ARRAY_TASK_ID"
        count = shard_count
        if count is None:  # only an array of tasks 0 to N-1 with no step says N itself (and run_items checks it)
            first = _whole_number(environ, "SLURM_ARRAY_TASK_MIN", index)
            last = _whole_number(environ, "SLURM_ARRAY_TASK_MAX", index)
            count = _whole_number(environ, "SLURM_ARRAY_TASK_COUNT", 1)
            step = _whole_number(environ, "SLURM_ARRAY_TASK_STEP", 1)
            if first != 0 or last != count - 1 or step != 1:
                raise FixableError(f"this Slurm array's {count} tasks run from {first} to {last} (a step, a list, or "
                                   f"some tasks of a larger array): pass --shard-count with the number of shards the "
                                   f"data set is split into, so that task k runs shard k")
            return _existing(Shard(index, count, count_from_slurm=True), source)
    elif "JOB_COMPLETION_INDEX" in environ:
        if shard_count is None:
            raise FixableError("JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but --shard-count is not: "
                               "pass --shard-count with the Job's completions")
        index, count = _whole_number(environ, "JOB_COMPLETION_INDEX"), shard_count
        source = "JOB_COMPLETION_INDEX"
    else:
        return Shard(0, 1)
    return _existing(Shard(index, count), source)


def _existing(shard, source):
    if not 0 <= shard.index < shard.count:
        raise FixableError(f"shard {shard.index} of {shard.count} (from {source}) does not exist: the index runs from "
                           f"0 to {shard.count - 1}")
    return shard


def check_slurm_shard_count(output_dir, shard):
    """Refuse a shard count taken from a Slurm array's size when earlier runs in output_dir split the data set
    into another number of shards: `--array=0-1`, resubmitting two failed tasks of a 0-2 array, looks like a whole
    array of 2; it would split the data set anew, and each task run another shard than its number says."""
    if not shard.count_from_slurm:
        return
    earlier = set()
    for name in os.listdir(output_dir) if os.path.isdir(output_dir) else []:
        found = re.fullmatch(r"(?:items|manifest)-\d+-of-(\d+)\.jsonl?", name)
        if found and int(found.group(1)) != shard.count:
            earlier.add(int(found.group(1)))
    if earlier:
        counts = " and ".join(str(count) for count in sorted(earlier))
        raise FixableError(f"this Slurm array has {shard.count} tasks, but earlier runs in {output_dir} split the data "
                           f"set into {counts} shards: pass --shard-count {max(earlier)} (the earlier runs' count, "
                           f"for a resubmission of some of their tasks), or --shard-count {shard.count} to split it "
                           f"anew")


def output_path(output_dir, done):
    """Where a finished item's output (a Done's) is: relative to --output-dir (this version's lines), or as an
    earlier version recorded it (relative to the folder its worker ran in, or absolute); None where it is not
    there, or not whole: of another size than the one recorded (cut short; a stat, as the lookup is)."""
    recorded = done.output
    if not recorded:
        return None
    for path in (os.path.join(output_dir, recorded), recorded):
        if os.path.isfile(path):
            return path if done.bytes is None or os.path.getsize(path) == done.bytes else None
    return None


@dataclass(frozen=True)
class Done:
    """What is kept of a finished item: what the done-check and the results file need, not its whole line."""
    output: str  # its image, relative to --output-dir (or as an earlier version's manifest line recorded it)
    loss: float
    steps: int
    options: str = None  # the key of the options it was finished with (runner.inputs.options_key); None: not known
    source: str = None  # where the item it finished came from (an Item's source); None: not known
    bytes: int = None  # the size its image was written with; None: not known

    @classmethod
    def of(cls, entry):
        """The Done of a manifest line or done record that says the item is done, else None."""
        if not isinstance(entry, dict) or entry.get("status") != "done" or not isinstance(entry.get("output"), str):
            return None
        loss, steps = entry.get("loss"), entry.get("steps")
        options, source, size = entry.get("options"), entry.get("source"), entry.get("bytes")
        return cls(entry["output"], float(loss) if isinstance(loss, (int, float)) and math.isfinite(loss) else None,
                   steps if isinstance(steps, int) and 0 <= steps < 2 ** 62 else None,  # as a results record holds
                   options if isinstance(options, str) else None, source if isinstance(source, str) else None,
                   size if isinstance(size, int) else None)

    def counts_for(self, options, source):
        """True if it was finished with these options (a key) from this source (an item's): an item of the same
        name from another file (a.jpg where a.png was), or run with other options, is not finished. What is not
        known (an earlier version recorded no options) does not count against it."""
        return (self.options is None or options is None or self.options == options) and \
            (self.source is None or source is None or _same_place(self.source, source))


def _same_place(source, other):
    """True if two items' sources name the same place: a path as given (photos/a.png, ./photos/a.png), or a
    TFRecord file's and a record's index in it."""
    def normal(given):
        path, hash_sign, index = given.rpartition("#") if "#" in given else (given, "", "")
        return os.path.normpath(path) + hash_sign + index
    return normal(source) == normal(other)


def finished(output_dir, done, options, source):
    """`done` (a Done, or None) if the item was finished with these options from this source and its image is
    there, else None."""
    return done if done is not None and done.counts_for(options, source) and output_path(output_dir, done) else None


class Manifests:
    """The items that every shard's manifest in an output folder records as done, read once: of the names asked
    for (`wanted`, a set; None for all), each name's Done, if its newest line says done. options: the key of this
    run's options, sources: {name: the source of this run's item}: an item finished with other options, or from
    another source, is not finished for this run."""

    def __init__(self, output_dir, wanted=None, options=None, sources=None):
        self.output_dir, self.options, self.sources = output_dir, options, sources or {}
        self.done = {}  # item name -> its Done
        newest = {}  # item name -> the time and status of its newest line (_replaces)
        # A few names wanted (a shard's): a line that holds none of them, as JSON writes them, is not parsed.
        mentions = re.compile(b"|".join(re.escape(json.dumps(name).encode()) for name in sorted(wanted))).search \
            if wanted is not None and len(wanted) <= 1000 else None
        for path in sorted(_manifests(output_dir)):
            try:
                with open(path, "rb") as file:
                    # A line still being appended has no end yet: it is read the next time.
                    lines = (line.decode("utf-8", "replace") for line in file
                             if line.endswith(b"\n") and (mentions is None or mentions(line)))
                    for entry in _parsed(lines):
                        name = entry.get("name")
                        if isinstance(name, str) and (wanted is None or name in wanted) and \
                                _replaces(entry, newest.get(name)):
                            newest[name] = {"time": entry.get("time"), "status": entry.get("status")}
                            done = Done.of(entry)
                            if done is None:
                                self.done.pop(name, None)
                            else:
                                self.done[name] = done
            except OSError:
                continue

    def finished(self, name):
        """The item's Done if it was finished with this run's options from its source and its image is there, else
        None."""
        return finished(self.output_dir, self.done.get(name), self.options, self.sources.get(name))


DONE_RECORD = "done.json"  # in an item's checkpoint folder, once the item is done: its manifest line


def read_done_record(folder, name):
    """The Done that `folder` (an item's checkpoint folder) records for the item `name`, or None."""
    try:
        with open(os.path.join(folder, DONE_RECORD)) as file:
            entry = json.load(file)
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return Done.of(entry) if isinstance(entry, dict) and entry.get("name") == name else None


class DoneItems:
    """Which of a shard's items are finished, looked up item by item: each finished item has a done record in its
    checkpoint folder (DONE_RECORD, written under its lock as it finishes), whatever the shard count that ran it;
    for the items without one (finished by an earlier version, or under another --checkpoint-dir) the manifests
    are read, once. Under an item's lock only its own record is read: a worker's cost per item does not grow with
    the number of shards or items."""

    def __init__(self, output_dir, items, item_folder, restarting=False, options=None):
        """restarting (--restart): each done record's stamp is kept too, for redone_meanwhile (a stat an item,
        which a run that skips what is done does not pay). options: the key of this run's options
        (runner.inputs.options_key): an item finished with other options is not finished for this run."""
        self.output_dir, self.item_folder, self.options = output_dir, item_folder, options
        self.done = {}  # item name -> Done
        self.seen = {}  # restarting: item name -> its done record's (inode, time) as first read
        for item in items:
            done = read_done_record(item_folder(item), item.name)
            if done is not None:
                self.done[item.name] = done
                if restarting:
                    self.seen[item.name] = _stamp(os.path.join(item_folder(item), DONE_RECORD))
        without_record = {item.name for item in items} - set(self.done)
        if without_record:
            self.done.update(Manifests(output_dir, without_record).done)

    def finished(self, item):
        """The item's Done if it was finished with this run's options from its source and its image is there, else
        None."""
        return finished(self.output_dir, self.done.get(item.name), self.options, item.source)

    def finished_otherwise(self, item):
        """True if the item was finished, but with other options than this run's or from another source (so it
        runs again)."""
        done = self.done.get(item.name)
        return done is not None and not done.counts_for(self.options, item.source)

    def finished_meanwhile(self, item):
        """Under the item's lock: its Done if another worker finished it (with these options, from its source)
        since this one looked, else None."""
        done = finished(self.output_dir, read_done_record(self.item_folder(item), item.name), self.options,
                        item.source)
        if done is not None:
            self.done[item.name] = done
        return done

    def redone_meanwhile(self, item):
        """Under the item's lock, with --restart: True if another worker has done it again since this one looked
        (its done record is not the one first read): a restart redoes each item once."""
        stamp = _stamp(os.path.join(self.item_folder(item), DONE_RECORD))
        return stamp is not None and stamp != self.seen.get(item.name)

    def forget(self, item):
        """Under the item's lock: it is to be done again (--restart, or other options): its done record goes."""
        record = os.path.join(self.item_folder(item), DONE_RECORD)
        if os.path.isfile(record) and not os.path.islink(record):
            os.remove(record)
        self.done.pop(item.name, None)

    def record(self, item, entry):
        """Under the item's lock, after its manifest line: the item is done (its record, for every later look)."""
        utils.write_text_atomically(os.path.join(self.item_folder(item), DONE_RECORD), json.dumps(entry) + "\n")
        self.done[item.name] = Done.of(entry)


def _time_of(entry):
    """When a manifest line was written (its "time"), or None for a line of an earlier version, which has none."""
    written = entry.get("time")
    return float(written) if isinstance(written, (int, float)) else None


def _replaces(entry, kept):
    """True if the manifest line `entry` is newer news of its item than `kept` (the line kept so far, or None). The
    manifests are read in name order, not in time: lines carry when they were written. An earlier version's lines
    carry no time: they are older than any that do, and among them a done line stays (once done, it stayed done)."""
    if kept is None:
        return True
    written, kept_written = _time_of(entry), _time_of(kept)
    if kept_written is None:
        return written is not None or kept.get("status") != "done"
    return written is not None and written >= kept_written


def _stamp(path):
    """(inode, modification time) of a file, or None: a file written again (atomically: a new inode) differs."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_ino, found.st_mtime_ns


def _manifests(output_dir):
    names = os.listdir(output_dir) if os.path.isdir(output_dir) else []
    return [os.path.join(output_dir, name) for name in names if name.startswith("manifest-") and
            name.endswith(".jsonl") and os.path.isfile(os.path.join(output_dir, name))]  # (a folder of that name: none)


def _entries(path):
    with open(path, errors="replace") as file:
        yield from _parsed(file)


def _parsed(lines):
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:  # a line cut short by a crash mid-append: as if never written
            continue
        if isinstance(entry, dict):
            yield entry


def append_entry(path, entry):
    """Append one line to a manifest, on disk before this returns (a line under 4 kB is appended whole). A line
    that a full disk cut short is ended first: this one would otherwise join it, and be lost with it."""
    try:
        with open(path, "a+b") as file:
            ended = file.seek(0, os.SEEK_END) == 0 or (file.seek(-1, os.SEEK_END) >= 0 and file.read(1) == b"\n")
            file.write((b"" if ended else b"\n") + json.dumps(entry).encode() + b"\n")
            file.flush()
            os.fsync(file.fileno())
    except OSError as error:  # name the manifest: a write to an open file names none
        raise OSError(error.errno, error.strerror, path) from None


def run_items(items, shard, output_dir, run_item, item_folder, redo=False, options=None):
    """Run this shard's items with run_item(item) -> ItemResult; return (the exit code: 0, 2 if any item failed,
    or 128 + the signal that stopped the run; the DoneItems it found or finished, for write_results).
    item_folder(item): the item's checkpoint folder, locked while the item runs; whether the item is done is looked
    up again once the lock is held (its done record only), so no worker redoes an item another finished
    meanwhile. redo (--restart): the items done before run again, from the start. options: the key of the options
    (runner.inputs.options_key), recorded with each item done: an item finished with other options runs again, as
    a single image run again does (it resumes, or its run folder refuses a changed problem: --restart)."""
    from runner import run_folder
    from runner.run_folder import FolderInUse
    mine = items[shard.index::shard.count]
    os.makedirs(output_dir, exist_ok=True)
    utils.write_text_atomically(os.path.join(output_dir, ITEMS.format(index=shard.index, count=shard.count)),
                                json.dumps([item.name for item in mine]) + "\n")
    manifest = os.path.join(output_dir, MANIFEST.format(index=shard.index, count=shard.count))
    done = DoneItems(output_dir, mine, item_folder, restarting=redo, options=options)
    todo = mine if redo else [item for item in mine if not done.finished(item)]
    skipped = len(mine) - len(todo)
    otherwise = 0 if redo else sum(done.finished_otherwise(item) for item in todo)
    print(f"Shard {shard}: {len(mine)} of {len(items)} items; {skipped} finished before, skipped; {len(todo)} to run"
          f"{' (--restart runs them again)' if skipped else ''}"
          f"{f', {otherwise} of them finished before with other options' if otherwise else ''}", flush=True)
    counts = {"done": 0, "failed": 0, "left": 0}
    failures = []
    started = time.monotonic()

    def again(item):
        """Under its lock: a finished item is run again. Until it is done again, neither its done record nor its
        manifest line may say it is done: whatever a kill leaves of the new run (its final image, say) would be
        taken for the finished one. The record goes, then a line says it began again (the newest line counts)."""
        done.forget(item)
        append_entry(manifest, {"name": item.name, "folder": item.folder, "source": item.source, "status": "again",
                                "options": options, "time": round(time.time(), 3)})

    for number, item in enumerate(todo, start=1):
        print(f"== item {number}/{len(todo)}: {shown(item.name)} ({shown(item.source)})", flush=True)
        item_started = time.monotonic()
        entry = {"name": item.name, "folder": item.folder, "source": item.source, "output": None,
                 "status": "failed", "reason": None, "loss": None, "steps": None, "seconds": None, "options": options,
                 "time": None}
        try:
            with run_folder.locked(item_folder(item)):
                if redo and not done.redone_meanwhile(item):
                    again(item)
                elif done.finished_meanwhile(item):  # another worker finished it since this one started
                    print(f"item {shown(item.name)} was finished by another worker meanwhile", flush=True)
                    counts["left"] += 1
                    continue
                elif done.finished_otherwise(item):  # with other options, or another file of its name
                    again(item)
                if item.failure:
                    raise FixableError(item.failure)
                result = run_item(item)
                if result.code:  # a signal stopped it: saved, and resumed by the next run
                    return result.code, done
                entry.update(status="done", output=os.path.relpath(result.output, output_dir), loss=result.loss,
                             steps=result.steps, seconds=round(time.monotonic() - item_started, 3),
                             time=round(time.time(), 3), bytes=os.path.getsize(result.output))
                append_entry(manifest, entry)  # its line, then its record: a record means the line is there
                done.record(item, entry)
        except FolderInUse as error:  # another worker has it: leave it to that one
            print(f"item {shown(item.name)} left to the worker already on it ({error})", flush=True)
            counts["left"] += 1
            continue
        except (FixableError, OSError) as error:
            entry.update(status="failed", output=None, loss=None, steps=None, reason=utils.one_line(error, limit=500),
                         seconds=round(time.monotonic() - item_started, 3), time=round(time.time(), 3))
            print(f"item {shown(item.name)} failed: {entry['reason']}", flush=True)
            failures.append(entry)
            append_entry(manifest, entry)
        counts[entry["status"]] += 1
        finished = counts["done"] + counts["failed"]
        left = (time.monotonic() - started) / finished * (len(todo) - number)
        print(f"Shard {shard}: {finished}/{len(todo)} items ({counts['done']} done, {counts['failed']} failed), "
              f"about {left / 60:.1f} min left", flush=True)
    print(f"Shard {shard} finished: {counts['done']} done, {counts['failed']} failed, {counts['left']} left to "
          f"other workers, {len(mine) - len(todo)} skipped as done before; manifest {manifest}", flush=True)
    if failures:  # one line on stderr for them all
        first = failures[0]
        print(f"style_transfer.py: error: {len(failures)} of {len(todo)} items failed (first {shown(first['name'])}: "
              f"{first['reason']}); every reason is in {manifest}: mend them and run the same command to retry them",
              file=sys.stderr, flush=True)
    return 2 if failures else 0, done


def results_path(prefix, shard):
    return f"{prefix}-{shard.index}-of-{shard.count}.tfrecord"


def is_results_file(prefix, path):
    """Whether `path` is a results file of --output-tfrecord `prefix`, any shard's under any count: named so, and
    holding results (images the tool packed under such a name are input, not results)."""
    from runner import tfrecords
    folder, name = os.path.split(prefix)
    return os.path.realpath(os.path.dirname(path)) == os.path.realpath(folder or ".") and \
        re.fullmatch(re.escape(name) + r"-\d+-of-\d+\.tfrecord", os.path.basename(path)) is not None and \
        tfrecords.holds_only_results(path)


def check_results_file(prefix, shard):
    """Refuse, before any item runs, a results file that is not the tool's own results (runner.inputs checks its
    folder can be written): a user's file, or images the tool packed (`python -m runner.tfrecords` names its
    files as results are named)."""
    from runner import tfrecords
    path = results_path(prefix, shard)
    if os.path.lexists(path) and not tfrecords.holds_only_results(path):
        what = "holds images packed as input" if tfrecords.written_by_this_tool(path) else \
            "exists and was not written by style_transfer.py"
        raise FixableError(f"{path} {what}: the results would replace it; move it, or choose another "
                           f"--output-tfrecord")


def write_results(prefix, shard, output_dir, items, found_here=None, options=None):
    """This shard's finished items as PREFIX-<INDEX>-of-<COUNT>.tfrecord in the common layout (image/encoded PNG,
    image/filename = the item's name, its size, the final loss and steps), written whole each time: a record for
    every item of `items` (the shard's) that is done with these options (a key; not an earlier run's result with
    others), whichever shard count finished it: as this process's run_items found or finished it (found_here, its
    DoneItems), else as the manifests say (read only for the names it does not know)."""
    from runner import tfrecords
    entries = {item.name: done for item in items if found_here and (done := found_here.finished(item))}
    # What this run knows of is not looked up again; the others' sources, to check the manifests' lines against.
    unknown = {item.name: item.source for item in items if not found_here or item.name not in found_here.done}
    if unknown:
        manifests = Manifests(output_dir, set(unknown), options, unknown)
        entries.update({name: done for name in unknown if (done := manifests.finished(name))})
    records = []
    for name, done in sorted(entries.items()):
        image_path = output_path(output_dir, done)
        try:
            with Image.open(image_path) as opened:
                image = opened.copy()  # read whole here: a damaged image fails now, not while packed
        except Exception as error:  # Pillow raises many kinds for a damaged image: that item is left out, said
            print(f"warning: {image_path}, the image of item {shown(name)}, cannot be read ({utils.one_line(error)})"
                  f"; left out of the results: remove it and run the same command to write it again",
                  file=sys.stderr, flush=True)
            continue
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        records.append(tfrecords.common_example(name, buffer.getvalue(), "png", image.width, image.height,
                                                **{tfrecords.RESULTS_KEY: int(done.steps or 0)},
                                                # not known for an item resumed at its last step: left out
                                                **({} if done.loss is None else
                                                   {"style_transfer/loss": float(done.loss)})))
    path = results_path(prefix, shard)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tfrecords.write_records(path, records)
    print(f"Results of shard {shard}: {len(records)} records in {path}", flush=True)
    folder = os.path.dirname(prefix) or "."
    counted_otherwise = sorted(name for name in os.listdir(folder) if not name.endswith(f"-of-{shard.count}.tfrecord")
                               and is_results_file(prefix, os.path.join(folder, name)))
    if counted_otherwise:  # another shard count's: perhaps of an earlier run, which a reader of them all gets too
        print(f"warning: {len(counted_otherwise)} results files of another shard count are beside it "
              f"({', '.join(counted_otherwise[:3])}{' ...' if len(counted_otherwise) > 3 else ''}): a reader of "
              f"{os.path.basename(prefix)}-*.tfrecord gets their records too; remove them if they are an earlier "
              f"run's", file=sys.stderr, flush=True)
    return path


def summary(output_dir):
    """Per run (all shards' manifests in output_dir): items done, failed and left, and the seconds spent."""
    given = set()
    for name in os.listdir(output_dir):
        if name.startswith("items-") and name.endswith(".json"):
            try:
                with open(os.path.join(output_dir, name)) as file:
                    given |= {item for item in json.load(file) if isinstance(item, str)}
            except (OSError, ValueError, TypeError):  # damaged: its items still count where a manifest has them
                print(f"warning: {os.path.join(output_dir, name)} cannot be read; passed over", file=sys.stderr)
    last, seconds = {}, 0.0  # each item's newest line (_replaces)
    for path in sorted(_manifests(output_dir)):
        for entry in _entries(path):
            if not isinstance(entry.get("name"), str):
                continue
            if _replaces(entry, last.get(entry["name"])):
                last[entry["name"]] = entry
            seconds += entry.get("seconds") if isinstance(entry.get("seconds"), (int, float)) else 0.0
    done = sorted(name for name, entry in last.items() if entry.get("status") == "done")
    failed = sorted(name for name, entry in last.items() if entry.get("status") not in ("done", "again"))
    begun_again = [name for name, entry in last.items() if entry.get("status") == "again"]  # not finished since
    return {"items": len(given | set(last)), "done": len(done), "failed": len(failed),
            "left": len(given - set(last)) + len(begun_again), "seconds": round(seconds, 1),
            "failures": {name: last[name].get("reason") for name in failed}}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m runner.batch", description="Summarise a run's manifests.")
    parser.add_argument("output_dir", help="the --output-dir of the run")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.output_dir):
        print(f"runner.batch: error: {args.output_dir} is not a folder", file=sys.stderr)
        return 2
    report = summary(args.output_dir)
    print(f"{report['items']} items: {report['done']} done, {report['failed']} failed, {report['left']} left; "
          f"{report['seconds'] / 60:.1f} min of work")
    for name, reason in report["failures"].items():
        print(f"failed: {shown(name)}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
