"""Films: a video file or a folder of frames in; stylised frames and a video out, without flicker.

A film is one run whose plan (runner/stages.py) is one phase, its frames, as a still image's is its scales.
Frame 1 is stylised as a still image in --iterations steps; every later frame takes --frame-steps more,
starting from the previous stylised frame warped by the optical flow, with a temporal loss that keeps it there
wherever the flow is reliable (Ruder et al. 2016; runner/flow.py). The temporal loss is what a film adds to the
model: a loss piece (TemporalLoss, here) fed each frame's warped previous result and reliability mask. One global
step runs across the frames, so TensorBoard shows one curve per loss and a checkpoint says which frame a killed
run was on; a frame, once finished, is on disk and never redone.

    clip = read_clip(source, width, height, numbers, fps)     # the frames, fitted to the output size
    plan = film_plan(clip, identity(source), steps, temporal_weight, images, mean_pixel, folders, preserve_colors)
    # its phase (FramePhase): the frame as the content image; frame 1 starts as a still image does, a later one
    # from the previous result warped; each frame is fed (warped previous, mask) for the temporal loss; a frame's
    # result is written as <output-dir>/frames/<number>.png, and at the end the video: <output> as .mp4, at the
    # source's frame rate, with its sound

Flow is computed once per pair of frames and cached in <checkpoint-dir>/flow/, each file named by the film it was
computed from (its identity and size) and the frame's number, and checked when read: one that is damaged or of
another shape is computed again, with a warning. A written frame, which the next frame (and a resume) starts
from, is recorded by its SHA-256 in <checkpoint-dir>/frames.json and checked when read: one that another run
wrote over is refused in one line. Decoding and encoding use the ffmpeg that the imageio-ffmpeg
wheel ships; a folder of frames is read with Pillow.
"""

import dataclasses
import errno
import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass

import imageio_ffmpeg
import numpy as np
from PIL import Image

import utils
from runner import flow, run_folder
from runner.stages import Extras, Phase, Plan, Stage
from runner.tf_setup import tf
from utils import FixableError

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
# In --checkpoint-dir: {film key: {frame number: SHA-256 of the frame file this run wrote}}. A frame starts from
# the previous frame's file, so that file is the run's state: it is checked against this record when read.
FRAMES_RECORD = "frames.json"


def is_video_file(path):
    return isinstance(path, str) and os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


@dataclass(frozen=True)
class Clip:
    """The frames to stylise, at the output size."""
    source: str  # a video file, or a folder of frames
    frames: list  # uint8 [height, width, 3], in source order
    numbers: list  # each frame's number in the source, counted from 1
    fps: float
    sound: bool  # the source is a video file with a sound track, used whole: the output gets it


def source_size(source):
    """(width, height) of the film's frames, read without decoding them all."""
    if os.path.isdir(source):
        return utils.image_size(_frame_files(source)[0], "frame")
    reader, meta = _open(source)
    reader.close()  # ends the ffmpeg process, having read no frame
    return meta["size"]


def identity(source):
    """What a film is made of, whatever it is called: a video file's SHA-256, or its frames' (runner.problem)."""
    if not os.path.isdir(source):
        return utils.file_identity(source)
    files = [utils.file_identity(path) for path in _frame_files(source)]
    return {"sha256": hashlib.sha256(json.dumps(files).encode()).hexdigest(), "frames": len(files)}


def _frame_files(folder):
    """The image files of a folder of frames, in natural order (frame2 before frame10)."""
    paths = utils.image_files(folder)
    if not paths:
        raise FixableError(f"frame folder {folder} holds no image files: pass a folder of frames")
    return sorted(paths, key=lambda path: [int(part) if part.isdigit() else part
                                           for part in re.split(r"(\d+)", os.path.basename(path))])


def _open(path):
    """(frame generator, its metadata) of a video file; refuse what ffmpeg cannot read."""
    if not os.path.isfile(path):
        raise FixableError(f"video {path} not found: check the path")
    try:
        frames = imageio_ffmpeg.read_frames(_for_ffmpeg(path))
        return frames, next(frames)
    except (OSError, RuntimeError, StopIteration) as error:
        raise FixableError(f"video {path} cannot be read ({_reason(error)}): pass a video file that ffmpeg "
                           f"plays, or a folder of frames with --video") from None


def _reason(error):
    """ffmpeg's own last words on a file it could not read, without the path it repeats."""
    text = str(error)
    if "=== stderr ===" in text:
        lines = [line.strip() for line in text.split("=== stderr ===")[-1].splitlines() if line.strip()]
        text = lines[-1].rsplit(": ", 1)[-1] if lines else text
    return utils.one_line(text)


def read_clip(source, width, height, numbers=None, fps=None):
    """The film at `source` (a video file, or a folder of frames), each frame fitted to width x height as a still
    content image is. numbers: (first, last) frame numbers to keep, counted from 1; None for all. fps: a folder's
    frame rate (a video file's own is used)."""
    first, last = numbers or (1, None)
    frames, kept, seen = [], [], 0  # seen: the frames of the film read past, up to `last`
    if os.path.isdir(source):
        files = _frame_files(source)
        sizes = {_stored_size(path) for path in files} - {None}
        if len(sizes) > 1:
            raise FixableError(f"the frames in {source} are of {len(sizes)} different sizes: make them one size")
        seen = len(files)
        for number, path in enumerate(files, start=1):
            if first <= number <= (last or number):
                frames.append(utils.load_image(path, width, height, "frame").astype(np.uint8))
                kept.append(number)
        sound, rate = False, fps
    else:
        reader, meta = _open(source)
        source_width, source_height = meta["size"]
        try:
            for number, data in enumerate(reader, start=1):
                if last is not None and number > last:
                    break
                seen = number
                if number >= first:
                    pixels = np.frombuffer(data, np.uint8).reshape(source_height, source_width, 3)
                    frames.append(np.asarray(utils.fitted(Image.fromarray(pixels), width, height)))
                    kept.append(number)
        except (OSError, RuntimeError) as error:
            raise FixableError(f"video {source} cannot be decoded ({_reason(error)}): re-encode it, or "
                               f"pass a folder of frames with --video") from None
        finally:
            reader.close()
        told = round((meta.get("duration") or 0) * (meta.get("fps") or 0))  # the container's length, in frames
        if last is None and seen < 0.9 * told - 1:  # ffmpeg stops at a damaged part, and its complaint is not seen
            print(f"warning: video {source} gave {seen} frames where its length says {told}: it may be damaged or "
                  f"cut short; the film is stylised as {seen} frames (re-encode it to have them all)",
                  file=sys.stderr, flush=True)
        sound = bool(meta.get("audio_codec")) and numbers is None
        rate = meta.get("fps") or fps  # a video file keeps its own rate; --fps is for folders
    if not kept:
        where = f"frames {first}:{last or ''} of " if numbers else ""
        raise FixableError(f"{where}{source} holds no frame: check --frames, or pass a film with frames")
    if last is not None and kept[-1] < last:
        raise FixableError(f"--frames {first}:{last} asks for frames past the end of {source}, which has {seen}: "
                           f"give a range within 1:{seen}")
    return Clip(source, frames, kept, float(rate or 25.0), sound)  # a folder without --fps: 25


def _stored_size(path):
    """A frame file's size from its header alone (the frames are decoded once, when they are fitted)."""
    try:
        with Image.open(path) as image:
            return image.size
    except Exception:  # Pillow raises many kinds for a damaged file: utils.load_image says which, in one line
        return None


def video_output(output):
    """The video's path: --output with .mp4 for its extension (outputs/final.png: outputs/final.mp4)."""
    return os.path.splitext(output)[0] + ".mp4"


def mark_in(path):
    """The mark write_video put in the video's comment (utils.mark_of's, or an earlier version's), or None: not a
    video this tool wrote, or not a regular file (ffmpeg would wait on a pipe). The tool replaces only a video that
    carries its run's mark."""
    if not os.path.isfile(path):
        return None
    try:
        probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", _for_ffmpeg(path)],
                               capture_output=True,
                               text=True, errors="replace", timeout=60)
    except subprocess.TimeoutExpired:
        return None
    for line in probe.stderr.splitlines():
        name, _, value = line.strip().partition(":")
        if name.strip() == "comment" and utils.is_mark(value.strip()):
            return value.strip()
    return None


def _for_ffmpeg(path):
    """A path as ffmpeg reads it for a file, whatever its name: a relative name could start with - (an option) or
    hold a colon before any slash (a protocol, clip:one.mp4)."""
    return os.path.abspath(path)


def write_video(path, frames, fps, mark, sound_from=None):
    """Encode frames (uint8 [height, width, 3]) as H.264 MP4, atomically, with `mark` (utils.mark_of) for its
    comment; sound_from: a file whose sound to add. The video replaces one at `path` only once it can be read back
    with its mark: ffmpeg's failure to finish it (a full disk) is not reported by its writer."""
    utils.check_still_ours(path, mark, mark_in)
    height, width = frames[0].shape[:2]
    with utils.atomic_output(path) as temporary:
        writer = imageio_ffmpeg.write_frames(
            _for_ffmpeg(temporary), (width, height), fps=fps, quality=8, macro_block_size=1,
            audio_path=sound_from and _for_ffmpeg(sound_from),
            output_params=["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-metadata", f"comment={mark}",
                           "-f", "mp4", *(["-shortest"] if sound_from else [])])
        writer.send(None)  # starts ffmpeg
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
        writer.close()
        if mark_in(temporary) != mark:
            raise OSError(errno.EIO, "ffmpeg did not finish the video (is the disk full?)", path)


@dataclass(frozen=True)
class FrameSteps:
    first: int  # frame 1's steps (--iterations)
    later: int  # each later frame's (--frame-steps)


class TemporalLoss:
    """A film's loss piece (style_transfer.py's docstring gives the protocol): mean(mask · (x - warped)²) over
    pixels and channels (Ruder et al. 2016), keeping a frame on the previous result, moved on by the optical flow,
    wherever that flow is reliable (mask 1). Fed, each frame: the warped previous result and the mask."""

    name, layers = "temporal_loss", ()

    def __init__(self, weight):
        self.weight, self.key = weight, ("temporal", weight)

    def build(self, image, features):
        warped_previous = tf.placeholder(tf.float32, image.shape, name="warped_previous")
        reliable = tf.placeholder(tf.float32, (*image.shape[:3], 1), name="reliable")
        return tf.reduce_mean(reliable * tf.square(image - warped_previous)), [warped_previous, reliable], {}


def film_plan(clip, identity, steps, temporal_weight, images, mean_pixel, folders, preserve_colors):
    """The plan of a film: its frames. identity: what the film is made of (video.identity), for its flow cache."""
    height, width = clip.frames[0].shape[:2]
    film_key = hashlib.sha256(json.dumps([identity, width, height], sort_keys=True).encode()).hexdigest()[:16]
    return Plan(FramePhase(clip, film_key, steps, TemporalLoss(temporal_weight), images, mean_pixel, folders,
                           preserve_colors))


class FramePhase(Phase):
    """The stages of a film: one per frame, all at the output size (see the module's docstring)."""

    word = "Frame"

    def __init__(self, clip, film_key, steps, temporal_loss, images, mean_pixel, folders, preserve_colors):
        """film_key: names its flow files; images: the style images (runner.images.Images) at the output size;
        folders: the run's Folders."""
        self.clip, self.film_key, self.images, self.mean_pixel = clip, film_key, images, mean_pixel
        self.temporal_loss, self.preserve_colors = temporal_loss, preserve_colors
        height, width = clip.frames[0].shape[:2]
        self.stages = [Stage(width, height, steps.first + index * steps.later) for index in range(len(clip.frames))]
        self.frame_dir = os.path.join(folders.output_dir, "frames")
        self.flow_dir = os.path.join(folders.checkpoint_dir, "flow")
        self.frames_record = os.path.join(folders.checkpoint_dir, FRAMES_RECORD)
        self.video = video_output(folders.output)
        self.checkpoint_dir = folders.checkpoint_dir  # names the run in the marks of its frames and video
        self._temporal = {}  # index -> (warped previous result, mask), for the frame being worked on

    def outputs(self):
        """Every file the plan writes: refused up front if one exists that the tool did not write."""
        return [self.frame_path(index) for index in range(len(self.stages))] + [self.video]

    def frame_path(self, index):
        return os.path.join(self.frame_dir, f"{self.clip.numbers[index]:05d}.png")

    def images_at(self, index):
        return dataclasses.replace(self.images, content=self.clip.frames[index].astype(np.float32))

    def start_at(self, index, previous_image):
        """Frame 1 starts as a still image does (None); a later frame from the previous result, warped. That
        result is read back from its file, so that a resumed run starts where an uninterrupted one does."""
        return None if index == 0 else self.temporal_at(index)[0]

    def extras_at(self, index):
        return Extras(terms=(self.temporal_loss,))

    def feeds_at(self, index):
        return {self.temporal_loss.name: self.temporal_at(index)}

    def temporal_at(self, index):
        """(warped previous result, mask): [1, height, width, 3] in the network's space, [1, height, width, 1].
        Frame 1 has no previous frame: its mask is all zero, and so is its temporal loss."""
        if index not in self._temporal:
            height, width = self.clip.frames[0].shape[:2]
            if index == 0:
                warped, mask = np.zeros((height, width, 3), np.float32), np.zeros((height, width), np.float32)
            else:
                backward, mask = self.flow_at(index)
                previous = utils.load_image(self.written_frame(index - 1), width, height, "stylised frame")
                warped = flow.warp(previous, backward) - self.mean_pixel
            self._temporal = {index: (warped[np.newaxis].astype(np.float32), mask[np.newaxis, ..., np.newaxis])}
        return self._temporal[index]

    def flow_at(self, index):
        """(backward flow, reliability mask) from frame index to the one before, cached on disk."""
        path = os.path.join(self.flow_dir, f"{self.film_key}-{self.clip.numbers[index]:05d}.npz")
        height, width = self.clip.frames[0].shape[:2]
        if os.path.exists(path):
            try:
                with np.load(path) as cached:
                    backward, mask = cached["backward"], cached["mask"]
                if backward.shape != (height, width, 2) or mask.shape != (height, width) or \
                        not np.isfinite(backward).all() or not np.isin(mask, (0, 1)).all():
                    raise ValueError(f"it holds flow of shape {backward.shape} and a mask of shape {mask.shape}, "
                                     f"not all finite 0/1")
                return backward, mask
            except Exception as error:  # cut, bit-flipped, another shape: numpy and zipfile raise many kinds
                print(f"warning: the flow cache {path} is damaged ({utils.one_line(error)}); computing it again",
                      file=sys.stderr)
        frame, previous = self.clip.frames[index], self.clip.frames[index - 1]
        backward, forward = flow.flow(frame, previous), flow.flow(previous, frame)
        mask = flow.reliability(backward, forward)
        os.makedirs(self.flow_dir, exist_ok=True)
        with utils.atomic_output(path) as temporary, open(temporary, "wb") as file:
            np.savez(file, backward=backward, mask=mask)
        return backward, mask

    def written_frame(self, index, taken_as="where the next frame starts from", written=None):
        """The path of a frame this run wrote, checked against its record: the next frame starts from it, and the
        video is made of them; another film's frame there (another run's, with the same --output-dir) must not be
        taken for it. written: the record as read already (_written()), where every frame is checked."""
        written = self._written() if written is None else written
        path, recorded = self.frame_path(index), written.get(str(self.clip.numbers[index]))
        try:
            found = utils.file_identity(path)["sha256"]
        except OSError:
            found = None
        if recorded is None or found != recorded:
            what = "is not there" if found is None else "is not the frame this run wrote" if recorded else \
                "was not recorded by this run (a run folder of an earlier version?)"
            raise FixableError(f"{path}, {taken_as}, {what}: pass --restart to stylise the film again, and give "
                               f"each film its own --output-dir")
        return path

    def _written(self):
        """{frame number: the SHA-256 of its written file} of this run (FRAMES_RECORD); {} if none can be read (nor
        what is not a regular file: a pipe would be waited on)."""
        if not os.path.isfile(self.frames_record):
            return {}
        try:
            with open(self.frames_record) as file:
                record = json.load(file)
        except (OSError, ValueError, UnicodeDecodeError):
            return {}
        written = record.get(self.film_key) if isinstance(record, dict) else None
        return written if isinstance(written, dict) else {}

    def stage_done(self, index, image):
        """Write the frame's result (image: [1, height, width, 3] in the network's space), and record it (frame 1
        begins the record afresh: a new run)."""
        pixels = np.clip(image[0] + self.mean_pixel, 0, 255)
        if self.preserve_colors:
            pixels = utils.with_colors_of(pixels, self.clip.frames[index])
        os.makedirs(self.frame_dir, exist_ok=True)
        path = self.frame_path(index)
        utils.save_image(path, pixels, run_folder.image_mark(self.checkpoint_dir))
        written = {} if index == 0 else self._written()
        written[str(self.clip.numbers[index])] = utils.file_identity(path)["sha256"]
        utils.write_text_atomically(self.frames_record, json.dumps({self.film_key: written}) + "\n")

    def run_done(self):
        """The video of every stylised frame, at the source's frame rate, with its sound when it has one."""
        written = self._written()  # read once, not once a frame
        frames = [np.asarray(Image.open(self.written_frame(index, "one of the video's frames", written)).convert("RGB"))
                  for index in range(len(self.stages))]
        write_video(self.video, frames, self.clip.fps, run_folder.image_mark(self.checkpoint_dir),
                    self.clip.source if self.clip.sound else None)
        print(f"Video: {self.video} ({len(frames)} frames at {self.clip.fps:g} fps); frames in {self.frame_dir}",
              flush=True)
