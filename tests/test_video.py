"""Films (runner/video.py, runner/flow.py): flow, reliability, warping and the flicker figure checked against
motion made here with NumPy; clips written and read back with the ffmpeg of the imageio-ffmpeg wheel; whole
runs on a small clip (frames, video, TensorBoard, resume after SIGKILL, bad input)."""

import glob
import json
import os
import subprocess
import sys

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

import utils
from conftest import SCRIPT, run_script
from runner import flow, video
from test_run import read_pixels, scalar_series, straight_and_killed
from utils import FixableError


def scene(height, width, seed=0):
    """A textured scene, larger than the frames cut from it, so that moving the cut moves the picture."""
    noise = np.random.default_rng(seed).uniform(0, 255, (height, width, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 2) * 3 - 255, 0, 255)


def panning_frames(count, height=32, width=40, step=(2, 1), seed=0):
    """Frames of a camera panning over the scene by `step` = (x, y) pixels per frame: each frame's content
    moves by (-x, -y)."""
    big = scene(height + 8 + count * step[1], width + 8 + count * step[0], seed)
    return [big[4 + index * step[1]:4 + index * step[1] + height, 4 + index * step[0]:4 + index * step[0] + width]
            for index in range(count)]


def write_frames(folder, frames):
    folder.mkdir(parents=True, exist_ok=True)
    for number, frame in enumerate(frames, start=1):
        Image.fromarray(frame.astype(np.uint8)).save(folder / f"frame{number}.png")
    return str(folder)


# --- flow, reliability, warp, flicker ---------------------------------------------------------------

def test_flow_finds_a_known_pan_and_warping_by_it_gives_the_next_frame():
    previous, current = panning_frames(2, 64, 80, step=(3, 2))
    backward = flow.flow(current, previous)  # current(p) = previous(p + (3, 2))
    inner = (slice(8, -8), slice(8, -8))
    assert np.allclose(backward[inner].mean(axis=(0, 1)), (3, 2), atol=0.1)
    warped = flow.warp(previous, backward)
    assert np.abs(warped - current)[inner].mean() < 1.0 < np.abs(previous - current)[inner].mean()


def test_warp_by_a_whole_pixel_shift_is_a_numpy_shift():
    image = np.random.default_rng(1).uniform(0, 255, (10, 12, 3)).astype(np.float32)
    shift = np.zeros((10, 12, 2), np.float32)
    shift[..., 0], shift[..., 1] = 2, 1
    warped = flow.warp(image, shift)
    assert np.allclose(warped[:-1, :-2], image[1:, 2:])


def test_reliability_is_zero_where_the_flows_disagree_and_at_motion_edges():
    height, width = 20, 30
    backward = np.zeros((height, width, 2), np.float32)
    backward[..., 0] = 2.0
    forward = -backward.copy()
    assert flow.reliability(backward, forward).min() == 1.0  # a consistent pan: reliable everywhere

    disoccluded = forward.copy()
    disoccluded[5:10, 7:12] = 0.0  # what the backward flow leads to does not come back
    mask = flow.reliability(backward, disoccluded)
    assert mask[5:10, 5:10].max() == 0.0 and mask[15:, 20:].min() == 1.0

    edge = backward.copy()
    edge[:, 15:, 0] = 8.0  # half the picture moves faster: a motion boundary at column 15
    mask = flow.reliability(edge, -edge)
    assert mask[:, 14:16].max() == 0.0 and mask[:, :10].min() == 1.0


def test_flicker_is_the_masked_mean_absolute_difference():
    stylised = np.full((4, 4, 3), 10.0)
    mask = np.zeros((4, 4), np.float32)
    mask[:2] = 1.0
    assert flow.flicker(stylised, stylised, mask) == 0.0
    assert flow.flicker(stylised, stylised - 5.0, mask) == pytest.approx(2.5)


# --- reading and writing clips ------------------------------------------------------------------------

def test_a_video_written_is_read_back_frame_by_frame_with_its_rate_and_range(tmp_path):
    frames = [np.full((30, 41, 3), 30 * index, np.uint8) for index in range(5)]  # odd width: padded to even
    path = str(tmp_path / "clip.mp4")
    video.write_video(path, frames, 12.0, utils.mark_of("0123abcd"))
    assert video.mark_in(path) == utils.mark_of("0123abcd")  # its run's mark, read back from the container
    clip = video.read_clip(path, 41, 30)
    assert clip.numbers == [1, 2, 3, 4, 5] and clip.fps == 12.0 and not clip.sound
    assert [round(float(frame.mean()) / 30) for frame in clip.frames] == [0, 1, 2, 3, 4]
    assert video.read_clip(path, 20, 15, numbers=(2, 3)).numbers == [2, 3]
    assert video.read_clip(path, 20, 15, fps=30.0).fps == 12.0  # --fps is a folder's; a video keeps its own
    with pytest.raises(FixableError, match="holds no frame"):
        video.read_clip(path, 20, 15, numbers=(9, None))


VIDEO_ON_A_FULL_DISK = """
import resource, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from runner import video
resource.setrlimit(resource.RLIMIT_FSIZE, (2000, resource.RLIM_INFINITY))  # ffmpeg, its child, inherits it
frames = [np.random.default_rng(index).integers(0, 255, (64, 96, 3), dtype=np.uint8) for index in range(8)]
try:
    video.write_video(sys.argv[2], frames, 10.0, "style_transfer.py (neural style transfer, CS20)")
except OSError as error:
    print("refused:", error)
"""


@pytest.mark.slow
def test_a_video_ffmpeg_could_not_finish_does_not_replace_the_good_one(tmp_path):
    """On a full disk ffmpeg fails to write the video's end; its writer does not say so: the tool reported the
    video made, and a good one was replaced by a file no player opens (and the next run refused as not its own)."""
    path = str(tmp_path / "film.mp4")
    video.write_video(path, [np.zeros((64, 96, 3), np.uint8)] * 3, 10.0, utils.WRITTEN_BY)
    good = open(path, "rb").read()
    done = subprocess.run([sys.executable, "-c", VIDEO_ON_A_FULL_DISK, os.path.dirname(SCRIPT), path],
                          capture_output=True, text=True, timeout=120)
    assert "refused: " in done.stdout and "did not finish the video" in done.stdout, (done.stdout, done.stderr)
    assert open(path, "rb").read() == good and sorted(os.listdir(tmp_path)) == ["film.mp4"]


def test_a_video_named_like_an_option_or_a_protocol_is_written_and_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("-film.mp4", "clip:one.mp4"):
        video.write_video(name, [np.full((16, 16, 3), 80, np.uint8)] * 3, 10.0, utils.mark_of("abc"))
        assert video.mark_in(name) == utils.mark_of("abc") and video.read_clip(name, 16, 16).numbers == [1, 2, 3]


def test_an_image_or_video_another_run_wrote_meanwhile_is_not_replaced(tmp_path):
    """Two runs started together into one --output-dir both passed the check made before they start: the later
    one replaced the other's images. Each file is checked again as it is replaced."""
    image, film = str(tmp_path / "final.png"), str(tmp_path / "final.mp4")
    utils.save_image(image, np.zeros((8, 8, 3)), utils.mark_of("theirs"))
    video.write_video(film, [np.zeros((16, 16, 3), np.uint8)] * 2, 10.0, utils.mark_of("theirs"))
    before = open(image, "rb").read(), open(film, "rb").read()
    with pytest.raises(FixableError, match="written meanwhile by another run"):
        utils.save_image(image, np.ones((8, 8, 3)), utils.mark_of("ours"))
    with pytest.raises(FixableError, match="written meanwhile by another run"):
        video.write_video(film, [np.ones((16, 16, 3), np.uint8)] * 2, 10.0, utils.mark_of("ours"))
    assert (open(image, "rb").read(), open(film, "rb").read()) == before
    utils.save_image(image, np.ones((8, 8, 3)), utils.mark_of("theirs"))  # its own run replaces it


def test_a_damaged_or_piped_frames_record_reads_as_none(tmp_path):
    """frames.json holding null for the film (a traceback), or a named pipe there (waited on for good)."""
    import types
    record = tmp_path / "frames.json"
    record.write_text(json.dumps({"film": None}))
    phase = types.SimpleNamespace(frames_record=str(record), film_key="film")
    assert video.FramePhase._written(phase) == {}
    record.unlink()
    os.mkfifo(record)
    assert video.FramePhase._written(phase) == {}


def test_sound_is_kept_when_the_source_has_it(tmp_path):
    silent = str(tmp_path / "silent.mp4")
    video.write_video(silent, [np.zeros((16, 16, 3), np.uint8)] * 10, 10.0, utils.WRITTEN_BY)
    with_sound = str(tmp_path / "sound.mp4")
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    os.system(f"{ffmpeg} -loglevel error -f lavfi -i sine=duration=1 -i {silent} -c:v copy -shortest {with_sound}")
    clip = video.read_clip(with_sound, 16, 16)
    assert clip.sound
    out = str(tmp_path / "out.mp4")
    video.write_video(out, clip.frames, clip.fps, utils.WRITTEN_BY, sound_from=with_sound)
    assert video._open(out)[1].get("audio_codec")


def test_a_folder_of_frames_is_read_in_natural_order_and_must_be_one_size(tmp_path):
    frames = [np.full((12, 16, 3), 20 * index, np.uint8) for index in range(11)]
    folder = write_frames(tmp_path / "film", frames)  # frame1 ... frame11: frame10 after frame9
    clip = video.read_clip(folder, 16, 12, fps=8.0)
    assert [int(frame.mean()) for frame in clip.frames] == [20 * index for index in range(11)] and clip.fps == 8.0
    Image.new("RGB", (20, 12)).save(tmp_path / "film" / "frame12.png")
    with pytest.raises(FixableError, match="different sizes"):
        video.read_clip(folder, 16, 12)


def test_what_is_not_a_video_is_refused_in_one_line(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a film")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    for path in (fake, empty, tmp_path / "missing.mp4"):
        with pytest.raises(FixableError) as refused:
            video.read_clip(str(path), 16, 12)
        assert str(path) in str(refused.value) and "\n" not in str(refused.value)


# --- whole runs ----------------------------------------------------------------------------------------

@pytest.fixture
def film(tmp_path):
    return write_frames(tmp_path / "film", panning_frames(4))


def film_args(vgg19_mat, images, film, *more):
    return ["--vgg", vgg19_mat[0], "--content", film, "--video", "--style", images["style"], "--width", "40",
            "--height", "32", "--optimizer", "lbfgs", "--iterations", "8", "--frame-steps", "4", "--fps", "12",
            "--log-every", "1", "--save-every", "2", *more]


@pytest.mark.slow
def test_a_film_gives_its_frames_a_video_and_one_step_count(tmp_path, vgg19_mat, images, film):
    code, out, err = run_script(film_args(vgg19_mat, images, film), cwd=tmp_path)
    assert code == 0, err
    frames = sorted(os.listdir(tmp_path / "outputs" / "frames"))
    assert frames == ["00001.png", "00002.png", "00003.png", "00004.png"]
    clip = video.read_clip(str(tmp_path / "outputs" / "final.mp4"), 40, 32)
    assert len(clip.frames) == 4 and clip.fps == 12.0
    last = read_pixels(tmp_path / "outputs" / "frames" / "00004.png")
    grey = np.array([0.299, 0.587, 0.114])  # H.264 keeps brightness well, colour at half resolution
    assert np.abs((clip.frames[3] - last) @ grey).mean() < 4

    temporal = dict(scalar_series(str(tmp_path / "graphs" / "style_transfer"), "temporal_loss"))
    assert sorted(temporal) == list(range(1, 21))  # 8 + 3 x 4 steps, one count across the frames
    assert all(temporal[step] == 0.0 for step in range(1, 9))  # frame 1 has no previous frame
    # A later frame starts on the warped previous result (temporal loss 0), and moves off it as its style settles.
    assert all(temporal[first] == 0.0 < max(temporal[step] for step in range(first + 1, first + 4))
               for first in (9, 13, 17))
    assert len(glob.glob(str(tmp_path / "checkpoints" / "style_transfer" / "flow" / "*.npz"))) == 3

    code, out, err = run_script(film_args(vgg19_mat, images, film), cwd=tmp_path)  # again: nothing left to do
    assert code == 0 and "Resuming from step 20" in out and "Frame" not in out, err


@pytest.mark.slow
def test_the_temporal_loss_steadies_the_film(tmp_path, vgg19_mat, images, film):
    """The film stylised with a strong temporal loss flickers less than with none (same start, same steps). The
    test weights' style loss is large: a weight of 1e4 is what balances it here."""
    figures = {}
    for weight in ("0", "1e4"):
        folder = tmp_path / weight
        folder.mkdir()
        code, _, err = run_script(film_args(vgg19_mat, images, film, "--temporal-weight", weight, "--frame-steps",
                                            "12"), cwd=folder)
        assert code == 0, err
        stylised = [read_pixels(path) for path in sorted(glob.glob(str(folder / "outputs" / "frames" / "*.png")))]
        content = video.read_clip(film, 40, 32).frames
        total = 0.0
        for index in range(1, len(stylised)):
            backward = flow.flow(content[index], content[index - 1])
            mask = flow.reliability(backward, flow.flow(content[index - 1], content[index]))
            total += flow.flicker(stylised[index], flow.warp(stylised[index - 1], backward), mask)
        figures[weight] = total
    assert figures["1e4"] < 0.3 * figures["0"], figures


@pytest.mark.slow
def test_sigkill_mid_film_then_the_same_command_gives_the_same_frames(tmp_path, vgg19_mat, images, film):
    # Adam: its state is in the checkpoint, so a resumed frame goes on exactly (L-BFGS restarts its memory).
    args = film_args(vgg19_mat, images, film, "--save-every", "1", "--frame-steps", "10", "--optimizer", "adam")
    straight, interrupted, out = straight_and_killed(args, tmp_path, "outputs/22.png")  # in frame 3
    assert "Resuming from step" in out and "Frame 1/" not in out and "Frame 2/" not in out
    for number in range(1, 5):
        name = f"outputs/frames/{number:05d}.png"
        assert np.abs(read_pixels(straight / name) - read_pixels(interrupted / name)).max() <= 1, name


@pytest.mark.slow
@pytest.mark.parametrize("case, message", [
    ("not a video", "cannot be read"),
    ("frames out of range", "holds no frame"),
    ("frames of two sizes", "different sizes"),
    ("a damaged frame", "frame2.png is not a readable image"),
    ("keep-best", "--keep-best is for still images"),
    ("a video of the user's in the way", "was not written by style_transfer.py"),
])
def test_bad_film_input_is_refused_in_one_line_and_nothing_is_written(tmp_path, vgg19_mat, images, film, case,
                                                                        message):
    args = film_args(vgg19_mat, images, film)
    (tmp_path / "outputs").mkdir()
    if case == "not a video":
        fake = tmp_path / "holiday.mp4"
        fake.write_text("not a film")
        args[args.index(film)] = str(fake)
    elif case == "frames out of range":
        args += ["--frames", "7:9"]
    elif case == "frames of two sizes":
        Image.new("RGB", (50, 40)).save(os.path.join(film, "frame5.png"))
    elif case == "a damaged frame":
        with open(os.path.join(film, "frame2.png"), "r+b") as frame:
            frame.truncate(60)
    elif case == "keep-best":
        args.append("--keep-best")
    else:
        video.write_video(str(tmp_path / "outputs" / "final.mp4"), [np.zeros((8, 8, 3), np.uint8)], 1.0,
                          utils.WRITTEN_BY)
        os.system(f"{imageio_ffmpeg.get_ffmpeg_exe()} -loglevel error -i {tmp_path}/outputs/final.mp4 -c copy "
                  f"-map_metadata -1 -y {tmp_path}/outputs/theirs.mp4")
        os.replace(tmp_path / "outputs" / "theirs.mp4", tmp_path / "outputs" / "final.mp4")
    before = sorted(os.listdir(tmp_path / "outputs"))
    code, out, err = run_script(args, cwd=tmp_path)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (out, err)
    assert "Traceback" not in err and sorted(os.listdir(tmp_path / "outputs")) == before
    assert not os.path.exists(tmp_path / "checkpoints")


@pytest.mark.slow
def test_several_films_are_items_each_in_its_own_folder(tmp_path, vgg19_mat, images):
    first = write_frames(tmp_path / "walk", panning_frames(2, seed=1))
    second = tmp_path / "pan.mp4"
    video.write_video(str(second), [frame.astype(np.uint8) for frame in panning_frames(2, seed=2)], 10.0,
                      utils.WRITTEN_BY)
    args = ["--vgg", vgg19_mat[0], "--content", first, str(second), "--video", "--style", images["style"],
            "--width", "40", "--height", "32", "--optimizer", "lbfgs", "--iterations", "4", "--frame-steps", "2"]
    code, out, err = run_script(args, cwd=tmp_path)
    assert code == 0, err
    manifest = [json.loads(line) for line in open(tmp_path / "outputs" / "manifest-0-of-1.jsonl")]
    assert sorted((entry["name"], entry["status"]) for entry in manifest) == [("pan", "done"), ("walk", "done")]
    for name, fps in (("walk", 25.0), ("pan", 10.0)):
        assert sorted(os.listdir(tmp_path / "outputs" / name / "frames")) == ["00001.png", "00002.png"]
        assert video.read_clip(str(tmp_path / "outputs" / name / "final.mp4"), 40, 32).fps == fps


def test_a_video_cut_short_by_damage_is_said_to_be(tmp_path, capsys):
    """ffmpeg stops reading at a damaged part and the frames before it came back as the whole film, silently: a
    20-frame video whose second half is zeros gave 1 frame. The shortfall against the container's length is said."""
    frames = [frame.astype(np.uint8) for frame in panning_frames(20, height=40, width=48)]
    path = str(tmp_path / "damaged.mp4")
    writer = imageio_ffmpeg.write_frames(path, (48, 40), fps=10, macro_block_size=1,
                                         output_params=["-movflags", "+faststart"])  # its index first: still opens
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    whole = video.read_clip(path, 48, 40)
    assert len(whole.frames) == 20 and "warning" not in capsys.readouterr().err
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2:] = bytes(len(data) - len(data) // 2)
    open(path, "wb").write(bytes(data))
    clip = video.read_clip(path, 48, 40)
    assert len(clip.frames) < 10
    assert f"gave {len(clip.frames)} frames where its length says 20" in capsys.readouterr().err
