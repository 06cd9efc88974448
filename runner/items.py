"""The items a run stylises: each content image, however --content gave it.

--content takes image files, folders of them, text files listing image paths (one a line; blank lines and
lines starting with # are skipped; relative paths are taken from the list's folder), and TFRecord files or
globs of them (`data-*.tfrecord`, either layout: runner.tfrecords). A video file is one item, a film
(runner.video); so is a folder of frames, with --video. Each item gets a stable name: the image's
file name without its extension, a record's image/filename or image/source_id (without folders and extension),
else <file stem>-<record index>. Items of one name are told apart by more of the name they were given: cats/1.jpg
and dogs/1.jpg are named so, a.png and a.jpg so. Items are sorted by name. A record that cannot be read or has
an unknown layout becomes an item that fails alone, with its reason; the others go on.

A name can be anything a record holds ('..', '', a NUL byte, the name of a file the tool writes): each item's
outputs go in a folder named by folder_name(), its name where that is a plain file name the tool never writes
itself, else the name made safe and made unique by a hash of the whole name (the manifest says which is whose).
"""

import dataclasses
import glob
import hashlib
import os
import re
import sys
from dataclasses import dataclass

import utils
from runner import tfrecords
from runner.video import is_video_file
from utils import FixableError, shown

TFRECORD_EXTENSIONS = (".tfrecord", ".tfrecords")
LIST_EXTENSIONS = (".txt", ".lst")

PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# Names of what the tool writes directly in its folders (manifests, item lists, checkpoints, events, records):
TOOL_NAMES = re.compile(r"(manifest-|items-|ckpt-|events\.out\.tfevents\.|replaced-)|"
                        r"(checkpoint|flow|frames|run\.json|run\.lock|best\.json|assembled\.npz)$", re.IGNORECASE)
# ...and the extensions of the files it writes there (a single image's run writes outputs/final.png, 12.png):
TOOL_EXTENSIONS = {*utils.IMAGE_EXTENSIONS, ".json", ".jsonl", ".npz", ".mp4", ".tfrecord", ".tmp", ".lock", ".part"}


def folder_name(name):
    """The folder of an item's outputs (under each of --checkpoint-dir, --log-dir and --output-dir): its name if
    that is a plain file name (letters, digits, '.', '_', '-'; at most 100) that the tool never writes itself;
    else the name with every other character as '_', cut to 60 ('_' before a leading '.' or a tool's prefix), and a
    hash of the whole name, so that it is unique and the same in every run."""
    if PLAIN_NAME.fullmatch(name) and not TOOL_NAMES.match(name) and not name.endswith(".") and \
            ("." not in name or "." + name.rsplit(".", 1)[1].lower() not in TOOL_EXTENSIONS):  # (its extension)
        return name
    safe = re.sub(r"^\.", "_", re.sub(r"[^A-Za-z0-9._-]", "_", name))[:60] or "item"
    safe = f"_{safe}" if TOOL_NAMES.match(safe) else safe  # no folder starts as the tool's files do
    return f"{safe}-{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}"


@dataclass(frozen=True, slots=True)  # slots: a million of them are held while a data set is listed
class Item:
    name: str  # its line in the manifest
    source: str  # where it came from: a path, or "<TFRecord file>#<record index>"
    image: object  # a path, or ImageBytes; None for texture synthesis
    failure: str = None  # why it cannot be run at all (a damaged record), or None
    video: bool = False  # a film: `image` is a video file or a folder of frames
    file: str = None  # the file (or a film's folder) it is read from: an input that nothing may write over
    given: str = None  # the name its input gave it, where that says more: a file's path, a record's image/filename

    @property
    def folder(self):
        """Its outputs' subfolder (folder_name)."""
        return folder_name(self.name)


class EmptyInput(FixableError):
    """An input of --content that gives no item: a folder without images, a list without paths, a TFRecord file
    without records. Among others that give items it is passed over with a warning; alone, it is refused."""

    def __init__(self, what, fix):
        super().__init__(f"{what}: {fix}")
        self.what = what


def find_items(content, texture=False, video_folders=False, is_result=lambda path: False):
    """The items of --content (a list of paths and patterns), sorted by name; one nameless item with --texture.
    video_folders: a folder is a film's frames, not a folder of content images. is_result(path): whether a file a
    pattern matched is a result this run writes (a shard's results file): those are not content."""
    if texture:
        return [Item(None, "(texture)", None)]
    found, empty = [], []
    with utils.garbage_collection_paused():
        for given in _inputs(content, is_result):
            try:
                found += _items_of(given, video_folders)
            except EmptyInput as error:
                empty.append(error)
    if not found:
        raise empty[0]
    for error in empty:
        print(f"warning: {error.what}; passed over, the other inputs run", file=sys.stderr, flush=True)
    found = _told_apart(found)
    folders = {}
    for item in found:  # distinct names have distinct folders, save a hash's coincidence: refused, not mixed
        other = folders.setdefault(item.folder, item.name)
        if other != item.name:
            raise FixableError(f"the content images named {shown(other)} and {shown(item.name)} would share the "
                               f"folder {item.folder}: rename one")
    return found


def _told_apart(found):
    """The items sorted by name, each name made unique: the items of a name that several share (cats/1.jpg and
    dogs/1.jpg, a.png and a.jpg) are named instead by as much of the name their input gave them as tells them
    apart (_name_at), step by step. Every worker lists the same items, so each names them alike: the names, and
    the shards cut from their order, do not depend on a worker."""
    found.sort(key=lambda item: item.name)
    if all(before.name != after.name for before, after in zip(found, found[1:])):
        return found  # the usual case, in one pass
    at = [[item, 0] for item in found]  # each item, and how far its name has gone (_name_at's level)
    while True:
        clashing = sorted({index for before in range(len(at) - 1) if at[before][0].name == at[before + 1][0].name
                           for index in (before, before + 1)})
        if not clashing:
            return [item for item, _ in at]
        renamed = False
        for index in clashing:
            item, level = at[index]
            name = _name_at(item, level + 1)
            if name is not None:
                at[index] = [dataclasses.replace(item, name=name), level + 1]
                renamed = True
        if not renamed:  # the same file twice, say: nothing tells them apart
            raise FixableError(f"several content images are named {shown(at[clashing[0]][0].name)}, and nothing in "
                               f"the names they were given tells them apart: their outputs would mix; rename one, or "
                               f"give it once")
        at.sort(key=lambda pair: pair[0].name)


def _name_at(item, level):
    """An item's name at a level of telling it apart: at 0 its name (the file name without its extension); at k the
    last k parts of the name its input gave it ('1.jpg' at 1, 'cats/1.jpg' at 2); past all of them, that name and
    where it is ('1.jpg in data-0.tfrecord#3'); past that, None."""
    given = item.given or item.name
    parts = given.split("/")
    if level == 0:
        return item.name
    if level <= len(parts):
        return "/".join(parts[-level:])
    where = item.source if item.file is None or item.source == item.file else \
        f"{item.file}#{item.source.rsplit('#', 1)[-1]}"
    return f"{given} in {where}" if level == len(parts) + 1 and where != given else None


def _inputs(content, is_result):
    """The paths --content names, each pattern (data-*.tfrecord) replaced by the files it matches, sorted, but for
    results: another shard may have written its own where the pattern finds it, and the shards must see alike."""
    for given in content:
        if not os.path.exists(given) and glob.has_magic(given):
            matches = sorted(glob.glob(given))
            if not matches:
                raise FixableError(f"--content {given} matches no file: check the pattern")
            content = [path for path in matches if not is_result(path)]
            if not content:
                raise FixableError(f"--content {given} matches only results of --output-tfrecord "
                                   f"({', '.join(matches[:2])}{' ...' if len(matches) > 2 else ''}): give the "
                                   f"content's own files")
            yield from content
        else:
            yield given


def _items_of(given, video_folders):
    if video_folders and os.path.isdir(given) or is_video_file(given):
        return [Item(short_name(os.path.normpath(given)), given, given, video=True, file=given, given=given)]
    if os.path.isdir(given):
        paths = utils.image_files(given)
        if not paths:
            raise EmptyInput(f"content folder {given} holds no image files", "pass images or another folder")
        return [_file_item(path) for path in paths]
    extension = os.path.splitext(given)[1].lower()
    if extension in TFRECORD_EXTENSIONS:
        return _record_items(given)
    if extension in LIST_EXTENSIONS:
        return _listed_items(given)
    return [_file_item(given)]


def _file_item(path):
    return Item(short_name(path), path, path, file=path, given=path)


def short_name(given):
    """An item's name from the name its input gave it: the file name without its folders and extension."""
    base = given.rpartition("/")[2]  # os.path.splitext(os.path.basename(given))[0], in a third of the time
    return base[:base.rindex(".")] if "." in base.lstrip(".") else base


def _listed_items(path):
    try:
        with open(path) as file:
            lines = [line.strip() for line in file]
    except (OSError, UnicodeDecodeError) as error:
        raise FixableError(f"content list {path} cannot be read ({error}): pass a text file of image paths") from None
    folder = os.path.dirname(path)
    listed = [_file_item(os.path.join(folder, line)) for line in lines if line and not line.startswith("#")]
    if not listed:
        raise EmptyInput(f"content list {path} lists no image", "add image paths, one a line, or leave it out")
    return listed


def _record_items(path):
    """The records of a TFRecord file as items (from its Listing); a record that cannot be used becomes a failed
    item."""
    if not os.path.isfile(path):
        raise FixableError(f"TFRecord file {path} not found: check the path")
    listed = tfrecords.listing(path)
    base, stem = os.path.basename(path), os.path.basename(path).split(".")[0]
    items = []
    for index, (offset, length, given) in enumerate(zip(listed.offsets, listed.lengths, listed.names)):
        if given is None:
            items.append(Item(f"{stem}-{index}", f"{base}#{index}", None, listed.failures[index], file=path))
        else:  # its image is read, by offset, and decoded when the item runs
            items.append(Item(short_name(given), f"{base}#{index}",
                              tfrecords.RecordImage(path, index, offset, length, listed.stamp), file=path, given=given))
    if listed.damaged:  # the records from here on cannot be found: one failed item says so
        index = len(items)
        items.append(Item(f"{stem}-{index}", f"{base}#{index}", None, listed.damaged, file=path))
    if not items:
        raise EmptyInput(f"TFRecord file {path} holds no records", "write it again, or leave it out of --content")
    return items
