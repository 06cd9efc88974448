"""TFRecord files of images in the two layouts people publish: read with tf.data, written with TFRecordWriter.

- CS20's (lecture 8): `image` (the raw uint8 pixels as bytes), `shape` (the array's shape as int32 bytes), `label`.
- The common one (tensorflow/models' image_to_tfexample): `image/encoded` (JPEG or PNG bytes), `image/format`,
  optional `image/filename` or `image/source_id`, `image/height`, `image/width`.

A data set is listed without holding its images: a first pass reads each record once, in batches, for its name
and where it lies in the file (its offset follows from the lengths of the records before it: 16 bytes of framing
and its own length each); a record's bytes are read again, by offset, only when its item runs (RecordImage).

Packing a folder of images into shards, in either layout:

    python -m runner.tfrecords photos/ data --layout common --shards 4   # data-0-of-4.tfrecord ... data-3-of-4
"""

import argparse
import errno
import hashlib
import io
import json
import os
import sys
from dataclasses import dataclass

import numpy as np
from PIL import Image

import utils
from runner import tf_setup
from runner.tf_setup import tf
from utils import FixableError, ImageBytes

CS20_KEYS = ("image", "shape")
COMMON_KEYS = ("image/encoded",)


@dataclass(frozen=True)
class ImageRecord:
    """One record of a TFRecord file: its name (for outputs and manifests) and its image."""
    name: str
    source: str  # "data-0-of-4.tfrecord#3": the file and the record's index in it
    image: ImageBytes


READ_BATCH = 1024  # records per run of the reading graph: one Session run per record would cost more than reading
FRAMING = 16  # bytes around each record: its length (8), the length's checksum (4), the data's checksum (4)


def listed_records(path):
    """(index, offset, serialized record) for each record of a TFRecord file, read with tf.data.TFRecordDataset
    (which checks each record's checksums) in batches; offset: where the record's framing starts in the file.

    A damaged record (cut short, bad checksum) raises FixableError naming its index: the records after it cannot
    be found, since a TFRecord file has no index of its own.
    """
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(0)  # op determinism (tf_setup) wants a seed for the iterator's ops, though none is random
        dataset = tf.data.TFRecordDataset(path)
        # A batch stops short at a damaged record (its error comes with the next): records before it still count.
        next_batch = tf.data.make_one_shot_iterator(dataset.batch(READ_BATCH)).get_next()
        next_record = tf.data.make_one_shot_iterator(dataset).get_next()
        with tf.Session(graph=graph) as sess:
            index, offset = 0, 0
            while True:
                try:
                    batch = sess.run(next_batch)
                except tf.errors.OutOfRangeError:
                    return
                except tf.errors.OpError:  # somewhere in this batch: read on record by record to say where
                    for _ in range(index):
                        sess.run(next_record)
                    batch = []
                    while True:
                        try:
                            batch.append(sess.run(next_record))
                        except tf.errors.OutOfRangeError:
                            break
                        except tf.errors.OpError as error:
                            for serialized in batch:
                                yield index, offset, serialized
                                index, offset = index + 1, offset + FRAMING + len(serialized)
                            raise FixableError(f"{path}: record {index} and any after it cannot be read "
                                               f"({tf_setup.reason_of(error)}): write the file again") from None
                for serialized in batch:
                    yield index, offset, serialized
                    index, offset = index + 1, offset + FRAMING + len(serialized)


def serialized_records(path):
    """(index, serialized record) for each record of a TFRecord file (see listed_records)."""
    for index, _, serialized in listed_records(path):
        yield index, serialized


def file_stamp(path):
    status = os.stat(path)
    return status.st_size, status.st_mtime_ns


@dataclass
class Listing:
    """What listing a TFRecord file finds, record by record: where each lies, and its name or why it cannot be
    used; `damaged`: why the records after the last one listed cannot be read (None if the file is whole)."""
    stamp: tuple  # the file's (size, mtime_ns) when listed
    offsets: list  # where each record's framing starts
    lengths: list  # each record's length
    names: list  # each record's name as it gives it (record_name), or None where it cannot be used
    failures: dict  # record index -> why it cannot be used
    damaged: str = None


def listing(path):
    """The Listing of a TFRecord file: kept in the cache folder after a first reading, and read from there while
    the file keeps its size and time (a million records' listing loads in a second or two, against the tens a
    reading takes). A listing that cannot be cached, or whose cache is damaged, is read from the file."""
    stamp = file_stamp(path)
    cache = _listing_cache(path)
    found = _read_listing(cache, stamp)
    if found is not None:
        return found
    found = Listing(stamp, [], [], [], {})
    try:
        for index, offset, serialized in listed_records(path):
            found.offsets.append(offset)
            found.lengths.append(len(serialized))
            try:  # the name only: the image is read and decoded when its item runs
                found.names.append(record_name(path, index, serialized))
            except FixableError as error:
                found.names.append(None)
                found.failures[index] = str(error)
    except FixableError as error:  # the file itself is damaged from this record on: listed again each time
        found.damaged = str(error)
        return found
    if file_stamp(path) == stamp:  # not cached if the file changed while it was read
        _write_listing(cache, found)
    return found


LISTING_VERSION = 1


def _listing_cache(path):
    """The cache file of a TFRecord file's listing: named by the file's whole path, in the folder the weights' cache
    is in ($STYLE_TRANSFER_CACHE, else ~/.cache/style_transfer)."""
    folder = os.environ.get("STYLE_TRANSFER_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                                     "style_transfer")
    key = hashlib.sha256(os.path.realpath(path).encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return os.path.join(folder, f"tfrecord-listing-{key}.npz")


def _joined(texts):
    """Strings as one UTF-8 array and the end of each in it (np.savez keeps no list of strings without pickle)."""
    encoded = [text.encode("utf-8", "surrogatepass") for text in texts]
    return np.frombuffer(b"".join(encoded), np.uint8), np.cumsum([len(data) for data in encoded], dtype=np.int64)


def _split(data, ends):
    whole = data.tobytes()
    starts = [0, *ends[:-1].tolist()]
    return [whole[start:end].decode("utf-8", "surrogatepass") for start, end in zip(starts, ends.tolist())]


def _write_listing(cache, found):
    names, ends = _joined(name or "" for name in found.names)
    try:
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        with utils.atomic_output(cache) as temporary, open(temporary, "wb") as file:
            np.savez(file, version=LISTING_VERSION, stamp=np.asarray(found.stamp, np.int64),
                     offsets=np.asarray(found.offsets, np.int64), lengths=np.asarray(found.lengths, np.int64),
                     names=names, name_ends=ends,
                     failures=np.frombuffer(json.dumps(found.failures).encode(), np.uint8))
    except OSError:  # a cache that cannot be written (a read-only home, a full disk): the next run lists again
        pass


def _read_listing(cache, stamp):
    """The cached Listing if it is there, whole, and of the file as it is now (its size and time); else None."""
    if not os.path.isfile(cache):
        return None
    try:
        with np.load(cache, allow_pickle=False) as saved:
            if int(saved["version"]) != LISTING_VERSION or tuple(saved["stamp"].tolist()) != stamp:
                return None
            offsets, lengths, ends = saved["offsets"], saved["lengths"], saved["name_ends"]
            names = _split(saved["names"], ends)
            failures = {int(index): reason for index, reason in json.loads(saved["failures"].tobytes()).items()}
        if not len(offsets) == len(lengths) == len(names) or (offsets < 0).any() or (lengths < 0).any():
            raise ValueError("its arrays do not agree")
    except Exception as error:  # cut, bit-flipped: numpy, zipfile and json raise many kinds
        print(f"warning: the listing cache {cache} is damaged ({utils.one_line(error)}); listing the file again",
              file=sys.stderr)
        return None
    return Listing(stamp, offsets.tolist(), lengths.tolist(),
                   [None if index in failures else name for index, name in enumerate(names)], failures)


class RecordImage(ImageBytes):
    """A record's image, read from its file when asked for (its bytes are not held while items wait): by offset,
    refused if the file changed since it was listed."""

    __slots__ = ("path", "index", "offset", "length", "stamp")

    def __init__(self, path, index, offset, length, stamp):  # (ImageBytes' label and bytes: made when asked for)
        self.path, self.index, self.offset, self.length, self.stamp = path, index, offset, length, stamp

    @property
    def label(self):
        return f"{self.path}, record {self.index}"

    @property
    def data(self):
        try:
            if file_stamp(self.path) != self.stamp:
                raise FixableError(f"{self.path} changed since its records were listed: run the same command again")
            with open(self.path, "rb") as file:
                file.seek(self.offset + 12)  # past the record's length and its checksum
                serialized = file.read(self.length)
        except OSError as error:
            raise FixableError(f"{self.path} cannot be read ({error.strerror or error}): check the file") from None
        return image_record(self.path, self.index, serialized).image.data


def _bytes(path, index, features, key):
    """A record's bytes feature; refuse one of another type, or empty."""
    values = features[key].bytes_list.value
    if not values or not values[0]:
        kind = features[key].WhichOneof("kind")
        what = "empty" if kind in (None, "bytes_list") else f"a {kind.replace('_list', '')} list, not bytes"
        raise FixableError(f"{path}: record {index}'s {key} is {what}: write the file again")
    return values[0]


def _cs20_pixels(path, index, features):
    """The pixels of a record in CS20's layout, checked: `shape` is (height, width) or (height, width, 1, 3 or
    4 channels) as int32, every size positive, and `image` holds exactly that many bytes."""
    shape_bytes, pixels = _bytes(path, index, features, "shape"), _bytes(path, index, features, "image")
    shape = np.frombuffer(shape_bytes, dtype=np.int32) if len(shape_bytes) % 4 == 0 else None
    if shape is None or shape.size not in (2, 3) or (shape <= 0).any() or \
            (shape.size == 3 and shape[2] not in (1, 3, 4)):
        what = f"{len(shape_bytes)} bytes" if shape is None else shape.tolist()
        raise FixableError(f"{path}: record {index}'s shape {what} is not (height, width) or (height, width, 1, 3 or "
                           f"4 channels) as int32: write the file again")
    if int(np.prod(shape, dtype=np.int64)) != len(pixels):
        raise FixableError(f"{path}: record {index} has {len(pixels)} pixel bytes for shape {shape.tolist()}: "
                           f"write the file again")
    return np.frombuffer(pixels, dtype=np.uint8).reshape(shape)


def _features(path, index, serialized):
    try:
        return tf.train.Example.FromString(serialized).features.feature
    except Exception as error:  # not a tf.train.Example at all
        raise FixableError(f"{path}: record {index} is not a tf.train.Example ({utils.one_line(error)})") from None


def record_name(path, index, serialized):
    """A record's name as it gives it: its image/filename or image/source_id (with any folders and extension) in the
    common layout, else <file stem>-<index>; refuse a record of neither layout. The image is not decoded."""
    features = _features(path, index, serialized)
    keys = set(features.keys())
    if set(COMMON_KEYS) <= keys:
        named = [features[key].bytes_list.value[0].decode("utf-8", "replace")
                 for key in ("image/filename", "image/source_id") if key in keys and features[key].bytes_list.value]
        if named:
            return named[0]
    elif not set(CS20_KEYS) <= keys:
        raise FixableError(f"{path}: record {index} has the features {', '.join(sorted(keys)) or 'none'}: not a "
                           f"known image layout (CS20's image and shape, or image/encoded)")
    return f"{os.path.basename(path).split('.')[0]}-{index}"


def image_record(path, index, serialized):
    """The ImageRecord of one serialized tf.train.Example, in either layout; refuse an unknown layout."""
    source = f"{os.path.basename(path)}#{index}"
    features = _features(path, index, serialized)
    keys = set(features.keys())
    name = record_name(path, index, serialized)
    if set(COMMON_KEYS) <= keys:
        data = _bytes(path, index, features, "image/encoded")
    elif set(CS20_KEYS) <= keys:
        pixels = _cs20_pixels(path, index, features)
        buffer = io.BytesIO()
        Image.fromarray(pixels[..., 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels).save(buffer, "PNG")
        data = buffer.getvalue()
    return ImageRecord(name, source, ImageBytes(f"{path}, record {index}", data))


def example(features):
    """A serialized tf.train.Example from {key: bytes, str or int}."""
    def feature(value):
        if isinstance(value, int):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        if isinstance(value, float):
            return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
        # A file name that is not UTF-8 (Python holds its odd bytes as surrogates) is written as the bytes it was.
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode("utf-8", "surrogateescape")
                                                                     if isinstance(value, str) else value]))
    return tf.train.Example(features=tf.train.Features(
        feature={key: feature(value) for key, value in features.items()})).SerializeToString()


def common_example(name, encoded, image_format, width, height, **extra):
    """A record in the common layout."""
    return example({"image/encoded": encoded, "image/format": image_format, "image/filename": name,
                    "image/height": height, "image/width": width, **extra})


# A record the tool wrote carries one of these: its results' steps (style_transfer.py --output-tfrecord), or the
# packer's mark (python -m runner.tfrecords).
RESULTS_KEY, PACKED_KEY = "style_transfer/steps", "style_transfer/written_by"


def written_by_this_tool(path):
    """True if the TFRecord file at `path` holds nothing, or only records this tool wrote (RESULTS_KEY or
    PACKED_KEY): a file the tool may replace. Never what is not a regular file (a pipe would be waited on)."""
    if not os.path.isfile(path):
        return False
    try:
        for _, serialized in serialized_records(path):
            features = tf.train.Example.FromString(serialized).features.feature
            if RESULTS_KEY not in features and PACKED_KEY not in features:
                return False
    except Exception:  # damaged, or not a TFRecord file at all: not the tool's
        return False
    return True


def holds_only_results(path):
    """True if the TFRecord file at `path` holds nothing, or only results this tool wrote (RESULTS_KEY): not
    images it packed (input for a run, which results never replace). Never what is not a regular file."""
    if not os.path.isfile(path):
        return False
    try:
        return all(RESULTS_KEY in tf.train.Example.FromString(serialized).features.feature
                   for _, serialized in serialized_records(path))
    except Exception:  # damaged, or not a TFRecord file at all: not results
        return False


def write_records(path, records):
    """Write serialized records as a TFRecord file, atomically (a crash leaves any earlier file as it was). A write
    that fails (a full disk) raises OSError naming `path`, as a failed write of Python's own would."""
    temporary = None
    try:
        with utils.atomic_output(path) as temporary, tf.io.TFRecordWriter(temporary) as writer:
            for record in records:
                writer.write(record)
    except tf.errors.OpError as error:  # TensorFlow's writer raises its own kind: "<temporary>; File too large"
        reason = tf_setup.reason_of(error).replace(f"{temporary}; ", "")
        raise OSError(_errno_of(reason), reason, path) from None


def _errno_of(strerror):
    """The errno whose message TensorFlow passed on ("No space left on device": ENOSPC), else EIO."""
    return next((number for number in errno.errorcode if os.strerror(number) == strerror), errno.EIO)


def pack(folder, prefix, layout, shards):
    """Pack the images of a folder (by name) into `shards` TFRecord files PREFIX-<i>-of-<shards>.tfrecord,
    image k in shard k mod shards; return their paths. Never more shards than images: a shard without a record
    would be an empty file, which a data set can do without."""
    if not os.path.isdir(folder):
        raise FixableError(f"{folder} is not a folder: pass a folder of images")
    images = utils.image_files(folder)
    if not images:
        raise FixableError(f"{folder} holds no image files: nothing to pack")
    if shards > len(images):
        print(f"{len(images)} images: packed into {len(images)} shards, not {shards} (a shard holds one or more)",
              flush=True)
        shards = len(images)
    paths = [f"{prefix}-{shard}-of-{shards}.tfrecord" for shard in range(shards)]
    for path in paths:  # all checked before any is written
        if os.path.lexists(path) and not written_by_this_tool(path):
            raise FixableError(f"{path} exists and was not written by this tool: packing would replace it; move it, "
                               f"or choose another PREFIX")
    os.makedirs(os.path.dirname(prefix) or ".", exist_ok=True)
    mark = {PACKED_KEY: utils.WRITTEN_BY}
    for shard in range(shards):
        records = []
        for path in images[shard::shards]:
            name = os.path.basename(path)
            try:
                with Image.open(path) as image:
                    pixels = np.asarray(image.convert("RGB")) if layout == "cs20" else None
                    width, height, image_format = image.width, image.height, (image.format or "png").lower()
            except Exception as error:  # Pillow raises many kinds for a damaged file
                raise FixableError(f"{path} is not a readable image ({utils.one_line(error)}): mend it or move it out "
                                   f"of {folder}") from None
            if layout == "cs20":
                records.append(example({"image": pixels.tobytes(), "shape": np.array(pixels.shape, np.int32).tobytes(),
                                        "label": name, **mark}))
            else:
                with open(path, "rb") as file:
                    records.append(common_example(name, file.read(), image_format, width, height, **mark))
        write_records(paths[shard], records)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m runner.tfrecords",
                                     description="Pack a folder of images into TFRecord shards.")
    parser.add_argument("folder", help="the folder of images")
    parser.add_argument("prefix", help="the shards are written as PREFIX-<i>-of-<shards>.tfrecord")
    parser.add_argument("--layout", choices=["common", "cs20"], default="common",
                        help="common: image/encoded (the file's own bytes), image/filename, ...; cs20: raw pixels")
    parser.add_argument("--shards", type=int, default=1,
                        help="how many files to spread the images over (at most one per image)")
    args = parser.parse_args(argv)
    try:
        for path in pack(args.folder, args.prefix, args.layout, max(1, args.shards)):
            print(path)
    except FixableError as error:
        print(f"runner.tfrecords: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"runner.tfrecords: error: cannot write {error.filename or args.prefix} ({error.strerror or error}): "
              f"free some space or choose another PREFIX", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
