"""Downloads, image I/O and small file helpers for style_transfer.py.

Nothing here imports TensorFlow (Keras, for a download, only when one is needed).
"""

import contextlib
import functools
import gc
import hashlib
import io
import os
import re
import socket
import sys
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps


class FixableError(Exception):
    """A problem the user has to fix (bad input, a full disk): the command line prints it on one line, exits 2."""


def shown(name):
    """A name as a message shows it: as it is, or quoted, its control characters escaped, where it is empty, has
    spaces at its ends or a character that is not printable (a NUL byte, a newline)."""
    return name if name and name.isprintable() and name.strip() == name else repr(name)


def one_line(error, limit=200):
    """An exception's message on one line, at most `limit` characters (its type's name if it has none)."""
    return " ".join(str(error).split())[:limit] or type(error).__name__


# ---------------------------------------------------------------------------------------------------
# Downloads of the default files: where each comes from, its size and its checksum.

@dataclass(frozen=True)
class Download:
    url: str
    size: int  # bytes
    file_hash: str  # SHA-256 or MD5, hex
    hash_algorithm: str


_CS20_RAW = ("https://raw.githubusercontent.com/chiphuyen/stanford-tensorflow-tutorials/"
             "51e53daaa2a32cfe7a1966f060b28dbbd081791c/2017/assignments/style_transfer/")

VGG_WEIGHTS_URL = "https://www.vlfeat.org/matconvnet/models/imagenet-vgg-verydeep-19.mat"

# The default paths of style_transfer.py's options, fetched on first use when missing.
DEFAULT_DOWNLOADS = {
    "imagenet-vgg-verydeep-19.mat": Download(
        VGG_WEIGHTS_URL,
        534_904_783, "106118b7cf60435e6d8e04f6a6dc3657", "md5"),
    os.path.join("content", "deadpool.jpg"): Download(
        _CS20_RAW + "content/deadpool.jpg",
        107_019, "e90c012cd116bc0eb60b5e75972ee40704da27427a4e0cdd958316fc560a3708", "sha256"),
    os.path.join("styles", "guernica.jpg"): Download(
        _CS20_RAW + "styles/guernica.jpg",
        101_146, "f736f97bd182b78bf1b6a129c4b79390bbbba5b3f83a40c43414bf25e049984b", "sha256"),
}


def fetch_if_missing(path, what, option):
    """Make sure `path` exists: download it if it is one of the default files, else refuse.

    The download goes to `<path>.part`, is checked against its size and checksum, and only then is
    renamed to `path`, so an interrupted or corrupted download never leaves a file that looks complete.
    """
    if isinstance(path, ImageBytes) or os.path.exists(path):
        return
    source = DEFAULT_DOWNLOADS.get(os.path.normpath(path))
    if source is None:
        raise FixableError(f"{what} {path} not found: pass an existing file with {option}")
    folder = os.path.dirname(os.path.abspath(path))
    created_folder = not os.path.isdir(folder)
    os.makedirs(folder, exist_ok=True)
    partial = os.path.basename(path) + ".part"
    print(f"Downloading {what} {path} ({source.size / 1e6:.1f} MB) from {source.url}", flush=True)
    try:
        from keras.utils import get_file  # imported only here: Keras takes a while to import

        downloaded = get_file(partial, source.url, file_hash=source.file_hash, hash_algorithm=source.hash_algorithm,
                              cache_dir=folder, cache_subdir="", force_download=True)
        if os.path.getsize(downloaded) != source.size:
            raise ValueError(f"got {os.path.getsize(downloaded)} bytes, expected {source.size}")
        os.replace(downloaded, path)
    except BaseException as error:  # a stop signal too: what was half fetched goes, then the signal goes on
        leftover = os.path.join(folder, partial)
        if os.path.exists(leftover):
            os.remove(leftover)
        if created_folder and not os.listdir(folder):
            os.rmdir(folder)
        if not isinstance(error, Exception):
            raise
        reason = one_line(error, limit=300)
        raise FixableError(f"could not download {what} {path} from {source.url} ({reason}): fetch it by hand "
                         f"(expected {source.size} bytes, {source.hash_algorithm} {source.file_hash}) "
                         f"or pass another file with {option}") from None


# ---------------------------------------------------------------------------------------------------
# Images.

class ImageBytes:
    """An encoded image (JPEG, PNG, ...) that is not a file of its own, such as a TFRecord's record; read like a
    file. `data` is its bytes (runner.tfrecords.RecordImage reads them only when asked); `label` says where it came
    from, for messages: "data-0.tfrecord, record 3"."""

    __slots__ = ("label", "_data")

    def __init__(self, label, data):
        self.label, self._data = label, data

    @property
    def data(self):
        return self._data

    def __str__(self):
        return self.label

    def __eq__(self, other):
        return isinstance(other, ImageBytes) and other.label == self.label

    def __hash__(self):
        return hash(self.label)


def read_upright_image(path, what):
    """The decoded image at `path` (a file's path, or ImageBytes), turned upright as its EXIF orientation says;
    refuse what Pillow cannot read."""
    if not isinstance(path, ImageBytes) and os.path.isdir(path):
        raise FixableError(f"{what} {path} is a folder, not an image file")
    if not isinstance(path, ImageBytes) and not os.path.exists(path):
        raise FixableError(f"{what} {path} not found: check the path")
    if not isinstance(path, ImageBytes) and not os.path.isfile(path):  # a pipe would wait for a writer for good
        raise FixableError(f"{what} {path} is not a regular file (a pipe or a device): use an image file")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(path.data) if isinstance(path, ImageBytes) else path) as image:
                image.load()
                upright = ImageOps.exif_transpose(image)
    except Image.UnidentifiedImageError:  # its message names the file, or an in-memory buffer's repr
        raise FixableError(f"{what} {path} is not a readable image (not a format Pillow knows): use an intact JPEG "
                           f"or PNG file") from None
    except Exception as error:  # Pillow raises many kinds for a truncated, corrupt or foreign file
        reason = one_line(error)
        raise FixableError(f"{what} {path} is not a readable image ({reason}): use an intact JPEG or PNG "
                           f"file") from None
    if any(issubclass(warning.category, Image.DecompressionBombWarning) for warning in caught) and \
            path not in _large_images_told:  # Pillow's own two-line warning, said once in our words
        _large_images_told.add(path)
        print(f"warning: {what} {path} is {upright.width}x{upright.height}, "
              f"{upright.width * upright.height / 1e6:.1f} megapixels: reading it takes time and memory",
              file=sys.stderr)
    return upright


_large_images_told = set()  # the paths warned about, so each is told once


IMAGE_EXTENSIONS = frozenset(Image.registered_extensions())  # ".png", ".jpg", ...: what Pillow reads


def image_files(folder):
    """The paths of the image files (by extension, as Pillow knows them) directly in `folder`, sorted by name."""
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder))
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS]


def image_size(path, what="image"):
    """(width, height) of the image at `path` as it is shown (upright)."""
    return read_upright_image(path, what).size


def load_image(path, width, height, what="image"):
    """An RGB image as float32 [height, width, 3] in 0..255, fitted (cropped and resized) as CS20 does (rgb_image
    says how any image becomes RGB)."""
    return np.asarray(fitted(rgb_image(path, what), width, height), dtype=np.float32)


def rgb_image(path, what="image"):
    """The image at `path` as an 8-bit RGB Pillow image: upright as the camera's EXIF orientation says;
    transparency composited on white; greyscale, palette, CMYK and 16-bit images converted."""
    image = read_upright_image(path, what)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
    elif image.mode.startswith("I"):  # 16- or 32-bit greyscale: 0..65535 to 0..255
        image = Image.fromarray((np.asarray(image, dtype=np.float64) / 257).clip(0, 255).astype(np.uint8))
    return image.convert("RGB")


def fitted(image, width, height, resample=Image.Resampling.LANCZOS):
    """A Pillow image cropped to width:height about its centre and resized to width x height, as CS20 fits its
    images (a still's content and styles, a film's frames; masks to the nearest pixel)."""
    return ImageOps.fit(image, (width, height), resample)


def _as_image(pixels):
    """Float RGB pixels in 0..255 as an 8-bit Pillow image (rounded, clipped)."""
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


def resized(image, width, height):
    """A float [height, width, channels] array resized to width x height, channel by channel (bicubic)."""
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(channel, dtype=np.float32), mode="F")
                                .resize((width, height), Image.Resampling.BICUBIC))
                     for channel in np.moveaxis(image, -1, 0)], axis=-1)


def with_colors_of(pixels, colors):
    """The luminance of `pixels` with the chroma of `colors` (both RGB 0..255, same size), through YCbCr."""
    luminance = _as_image(pixels).convert("YCbCr").getchannel("Y")
    _, blue, red = _as_image(colors).convert("YCbCr").split()
    return np.asarray(Image.merge("YCbCr", (luminance, blue, red)).convert("RGB"), dtype=np.float32)


# Every image this tool writes names it as its software (EXIF tag 0x0131, which PNG, JPEG, WebP and TIFF keep):
# the tool replaces an existing file only if it carries this mark, so it never writes over a user's own file. The
# mark also names the run folder (--checkpoint-dir) whose run wrote it, by the id its run record keeps, so that a run
# never replaces another run's images either (two runs sharing an --output-dir). Earlier versions named no folder.
SOFTWARE_TAG = 0x0131
WRITTEN_BY = "style_transfer.py (neural style transfer, CS20)"


def mark_of(folder_id):
    """The mark of what the run folder with this id writes (None: a folder of an earlier version, which has none)."""
    return WRITTEN_BY if folder_id is None else f"{WRITTEN_BY}; run folder {folder_id}"


def is_mark(text):
    """True for the mark of this tool: of any run folder, or of an earlier version (no run folder named)."""
    return text == WRITTEN_BY or text.startswith(f"{WRITTEN_BY}; run folder ")


def save_image(path, pixels, mark):
    """Write float RGB pixels in 0..255 as an 8-bit image, atomically (a crash leaves the old file), with `mark`
    (mark_of: which run folder's run wrote it)."""
    check_still_ours(path, mark, mark_in)
    image = _as_image(pixels)
    exif = Image.Exif()
    exif[SOFTWARE_TAG] = mark
    with atomic_output(path) as temporary:
        image.save(temporary, format=Image.registered_extensions().get(os.path.splitext(path)[1].lower(), "PNG"),
                   exif=exif)


def may_replace(found, mark):
    """True if a run whose mark is `mark` may replace a file carrying `found` (a mark, or None): its own run
    folder's, or an earlier version's (which named no run folder)."""
    return found in (WRITTEN_BY, mark)


def check_still_ours(path, mark, read_mark):
    """Refuse to replace a file at `path` that may_replace refuses (read_mark(path) gives its mark). Checked
    before the run starts (runner.guards), this is checked again as each file is replaced: two runs started
    together into one --output-dir both passed the first check, and the later one replaced the other's images."""
    if os.path.lexists(path) and not may_replace(read_mark(path), mark):
        raise FixableError(f"{path} was written meanwhile by another run (or is no longer this tool's): this run "
                           f"stops rather than replace it; give each run its own --output-dir")


def png_bytes(pixels, longest):
    """Float RGB pixels in 0..255 as PNG bytes, shrunk to at most `longest` pixels on the long side."""
    image = _as_image(pixels)
    image.thumbnail((longest, longest), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue(), image.size


@functools.lru_cache(maxsize=None)
def marked_image_extensions():
    """The extensions whose images save_image writes with its mark and Pillow reads it back from (.png, .jpg,
    .webp, .tif, ...; not .gif or .bmp): found by trying each format once."""
    found = set()
    for extension, format_name in Image.registered_extensions().items():
        if format_name not in Image.SAVE:
            continue
        mark, buffer = Image.Exif(), io.BytesIO()
        mark[SOFTWARE_TAG] = WRITTEN_BY
        try:
            with warnings.catch_warnings():  # a format Pillow means to drop says so as it saves and reads
                warnings.simplefilter("ignore")
                Image.new("RGB", (2, 2)).save(buffer, format=format_name, exif=mark)
                buffer.seek(0)
                with Image.open(buffer) as image:
                    if image.getexif().get(SOFTWARE_TAG) == WRITTEN_BY:
                        found.add(extension)
        except Exception:  # Pillow raises many kinds for a format that cannot hold this
            continue
    return frozenset(found)


def mark_in(path):
    """The mark save_image wrote into the image at `path` (mark_of's, or an earlier version's), or None: not an image
    this tool wrote, or not a regular file (a pipe would be waited on)."""
    if not os.path.isfile(path):
        return None
    try:
        with Image.open(path) as image:
            found = image.getexif().get(SOFTWARE_TAG)
    except Exception:  # not an image Pillow reads: not ours
        return None
    return found if isinstance(found, str) and is_mark(found) else None


# ---------------------------------------------------------------------------------------------------
# Files and streams.

@contextlib.contextmanager
def quiet_stderr():
    """Send file descriptor 2 to /dev/null for a while (C++ libraries write there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def garbage_collection_paused():
    """Python's cyclic garbage collector off for a while: listing a million items makes millions of objects, none
    in a cycle, and the collector, run again and again as they come, would take as long as making them."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _process_is_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def temporary_name(path):
    """Where atomic_output writes `path` first: <path>.<host>.<pid>.tmp, naming the process's host as well as the
    process, since workers on several machines may write into one shared folder."""
    return f"{path}.{socket.gethostname()}.{os.getpid()}.tmp"


def remove_stale_temporaries(path):
    """Remove what an earlier, killed process of this tool on this host left of writing `path`: its temporary
    (temporary_name), when that process is gone (a kill skips atomic_output's clean-up). Another host's
    temporaries are left alone: whether their process lives cannot be seen from here. A link of that name is not
    followed, only removed."""
    folder, name = os.path.split(path)
    try:
        names = os.listdir(folder or ".")
    except OSError:
        return
    for candidate in names:
        match = re.fullmatch(re.escape(f"{name}.{socket.gethostname()}.") + r"(\d+)\.tmp", candidate)
        if match and int(match.group(1)) != os.getpid() and not _process_is_alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(folder, candidate))


@contextlib.contextmanager
def atomic_output(path):
    """`with atomic_output(path) as temporary:` write to `temporary`; only on success does it become `path`.

    A crash or a full disk midway leaves the earlier `path` as it was; what a killed process left is removed the
    next time the same file is written. A write that fails raises OSError naming `path` (a write to an open file
    names none, and the temporary's name would mean nothing to the user), so every message can say which file.
    """
    remove_stale_temporaries(path)
    temporary = temporary_name(path)
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as error:
        if error.filename not in (None, temporary):  # another file's failure (an input's, say): its own name
            raise
        raise OSError(error.errno, error.strerror or one_line(error), path) from None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def available_memory():
    """Bytes of memory this process can still use (Linux: MemAvailable, within a cgroup's limit), or None."""
    try:
        with open("/proc/meminfo") as file:
            available = next(int(line.split()[1]) * 1024 for line in file if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return None
    try:
        with open("/sys/fs/cgroup/memory.max") as limit, open("/sys/fs/cgroup/memory.current") as current:
            available = min(available, int(limit.read()) - int(current.read()))
    except (OSError, ValueError):  # no cgroup v2 limit ("max") or none readable
        pass
    return available


def write_text_atomically(path, text):
    with atomic_output(path) as temporary:
        with open(temporary, "w") as file:
            file.write(text)


def file_identity(path):
    """{'sha256', 'bytes'} of a file (or ImageBytes): what a run was made from, whatever the file is called."""
    if isinstance(path, ImageBytes):
        return {"sha256": hashlib.sha256(path.data).hexdigest(), "bytes": len(path.data)}
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return {"sha256": digest.hexdigest(), "bytes": os.path.getsize(path)}
