"""Large outputs in tiles (runner/tiles.py): the layout covers the image, each pixel is decided by one tile, which
sees what earlier tiles decided fixed, the style's Gram matrices add up over pieces, a tiled run scores close to
an untiled one, a SIGKILLed tiled run resumes at its tile to the same image, a size too large is tiled by
itself."""

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

import load_vgg
import style_transfer
from conftest import run_main, write_image
from runner import memory, tiles
from runner.images import ImageFiles
from runner.problem import Problem
from test_losses import targets_of
from test_run import LOG_DIR, events, read_pixels, scalar_series, straight_and_killed
from utils import FixableError

SIZES = [(256, 192, 96, 16), (333, 250, 128, 32), (1000, 37, 64, 8), (50, 50, 64, 16), (3840, 2160, 512, 64)]


@pytest.mark.parametrize("width, height, tile, overlap", SIZES)
def test_tiles_are_one_size_lie_inside_and_cover_the_image_overlapping_enough(width, height, tile, overlap):
    layout = tiles.tile_layout(width, height, tile, overlap)
    covered = np.zeros((height, width), int)
    for item in layout:
        assert (item.width, item.height) == (min(tile, width), min(tile, height))
        assert item.left >= 0 and item.top >= 0 and item.left + item.width <= width and item.top + item.height <= height
        covered[item.region] += 1
    assert covered.min() >= 1
    for starts, size, length in ((sorted({t.left for t in layout}), layout[0].width, width),
                                 (sorted({t.top for t in layout}), layout[0].height, height)):
        assert starts[0] == 0 and starts[-1] + size == length
        assert all(size - (after - before) >= overlap for before, after in zip(starts, starts[1:]))


@pytest.mark.parametrize("width, height, tile, overlap", SIZES[:4])
def test_each_pixel_is_decided_by_the_tile_whose_centre_is_nearest_and_placing_keeps_earlier_decisions(
        width, height, tile, overlap):
    layout = tiles.tile_layout(width, height, tile, overlap)
    owners = tiles.owners(width, height, tile, overlap)
    # independently: along each side, the nearest tile centre (ties to the earlier tile); the seam between two
    # tiles of one size lies midway between their centres, which is midway through their overlap
    column_centres = sorted({item.left + item.width / 2 for item in layout})
    row_centres = sorted({item.top + item.height / 2 for item in layout})
    columns = np.argmin(np.abs(np.arange(width)[:, None] + 0.5 - column_centres), axis=1)
    rows = np.argmin(np.abs(np.arange(height)[:, None] + 0.5 - row_centres), axis=1)
    np.testing.assert_array_equal(owners, rows[:, None] * len(column_centres) + columns[None, :])
    for index, item in enumerate(layout):
        assert (owners == index).any()
        decides = np.zeros((height, width), bool)
        decides[item.region] = True
        assert not (owners == index)[~decides].any()  # a tile decides only pixels it covers
        np.testing.assert_array_equal(tiles.owners(width, height, tile, overlap, item.region), owners[item.region])
    rng = np.random.default_rng(0)
    tile_images = [rng.normal(0, 50, (item.height, item.width, 3)).astype(np.float32) for item in layout]
    base = rng.normal(0, 50, (height, width, 3))
    assembly = tiles.Assembly.starting_from(base)
    for index, (item, image) in enumerate(zip(layout, tile_images)):
        before = assembly.image.copy()
        decided, mine = owners[item.region] < index, owners[item.region] == index
        weight = tiles.handover(item, width, height, overlap)
        assert (weight[mine] == 1).all()  # its own pixels are its own, exactly
        assembly.place(item, image, decided, weight)
        np.testing.assert_array_equal(assembly.image[item.region][decided], before[item.region][decided])
        np.testing.assert_array_equal(assembly.image[item.region][mine], image[mine])
    for index, (item, image) in enumerate(zip(layout, tile_images)):  # in the end each pixel is its tile's
        mine = owners[item.region] == index
        np.testing.assert_array_equal(assembly.image[item.region][mine], image[mine])


def test_the_picture_a_later_tile_starts_from_passes_smoothly_from_a_placed_tile_into_the_coarse_result():
    layout = tiles.tile_layout(256, 192, 96, 16)  # tiles at 0, 80, 160 across: overlaps of 16, seams at 88, 168
    assembly = tiles.Assembly.starting_from(np.zeros((192, 256, 3)))
    first = layout[0]
    assembly.place(first, np.full((96, 96, 3), 90.0, np.float32), np.zeros((96, 96), bool),
                   tiles.handover(first, 256, 192, 16))
    picture = assembly.image[..., 0]
    assert picture[40, 40] == 90 and picture[40, 87] == 90 and picture[40, 200] == 0
    assert np.abs(np.diff(picture[40, :120])).max() <= 90 / 8 + 1e-3  # a ramp over half the overlap, not a step
    assert np.abs(np.diff(picture[:120, 40])).max() <= 90 / 8 + 1e-3


def test_a_tile_sees_the_pixels_earlier_tiles_decided_in_place_of_its_own():
    tf = style_transfer.tf
    view = tiles.WithinSurroundings(2, 6, 4)
    decided = np.zeros((4, 6), bool)
    decided[:, :2] = True  # its two left columns belong to the tile on its left
    rng = np.random.default_rng(3)
    own, surroundings = rng.normal(size=(1, 4, 6, 3)), rng.normal(size=(1, 8, 10, 3))
    surroundings[:, :, 0] = np.nan  # past the image's border
    fixed = view.fixed(decided)
    assert fixed.shape == (1, 8, 10, 1) and fixed[0, :2].all() and fixed[0, :, :2].all() and fixed[0, -2:].all()
    with tf.Graph().as_default():
        image = tf.constant(own, tf.float32)
        sight = view.around(image)
        gradient = tf.gradients(tf.reduce_sum(sight.seen), image)[0]
        variation = tf.reduce_sum(tf.image.total_variation(sight.picture))  # as style_transfer.TotalVariationLoss
        smoothing = tf.gradients(variation, image)[0]
        with tf.Session() as sess:
            seen, inside, picture, gradient, variation, smoothing = sess.run(
                [sight.seen, sight.inside, sight.picture, gradient, variation, smoothing],
                dict(zip(sight.fed, [surroundings, fixed])))
    expected = np.where(fixed > 0, np.nan_to_num(surroundings), np.pad(own, ((0, 0), (2, 2), (2, 2), (0, 0))))
    np.testing.assert_allclose(seen, expected, rtol=1e-6)
    assert (inside[0, :, 0] == 0).all() and (inside[0, :, 1:] == 1).all()
    np.testing.assert_array_equal(gradient[0, ..., 0], np.where(decided, 0, 1))  # what it sees fixed, it cannot move
    # The total variation reads the tile as seen: across the seam, the pixels decided, not the variable's copy
    tile = expected[0, 2:-2, 2:-2]
    np.testing.assert_allclose(picture[0], tile, rtol=1e-6)
    assert variation == pytest.approx(np.abs(np.diff(tile, axis=0)).sum() + np.abs(np.diff(tile, axis=1)).sum(),
                                      rel=1e-5)
    assert (smoothing[0][decided] == 0).all() and (smoothing[0][~decided] != 0).any()


def test_a_style_in_pieces_has_the_gram_matrices_of_its_pieces_added_up(vgg19_mat):
    weights = load_vgg.load_weights(vgg19_mat[0])
    problem = Problem(None, (), (1.0,), None, "w", 48, 40, "avg", (), ("conv1_1", "conv3_1", "conv5_1"),
                      (1.0, 1.0, 1.0), 0.0, 1.0, 0.0, "random", None, "lbfgs", None, 0)
    rng = np.random.default_rng(5)
    first, second = rng.uniform(0, 255, (32, 48, 3)), rng.uniform(0, 255, (40, 24, 3))
    both = targets_of(weights, problem, [[first, second]])["style_loss"]
    alone = [targets_of(weights, problem, [[image]])["style_loss"] for image in (first, second)]
    for index, layer in enumerate(["relu1_1", "relu3_1", "relu5_1"]):
        positions = [int(np.prod(load_vgg.layer_size(image.shape[1], image.shape[0], layer))) for image in (first,
                                                                                                            second)]
        # each target is per position (a second moment); times its positions, the pieces' Grams add up
        expected = (alone[0][index] * positions[0] + alone[1][index] * positions[1]) / sum(positions)
        np.testing.assert_allclose(both[index], expected, rtol=2e-4, atol=1e-3 * np.abs(expected).max())


def test_pieces_cut_an_image_without_overlap():
    image = np.arange(100 * 70 * 3, dtype=np.float32).reshape(100, 70, 3)
    cut = tiles.pieces(image, 32)
    assert max(max(piece.shape[:2]) for piece in cut) <= 32
    assert sum(piece.size for piece in cut) == image.size
    assert sorted(np.concatenate([piece.reshape(-1) for piece in cut])) == sorted(image.reshape(-1))


def tiled_args(vgg19_mat, content, style, *more):
    return ["--vgg", vgg19_mat[0], "--content", content, "--style", style, *more]


@pytest.fixture(scope="module")
def larger_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("larger")
    return write_image(folder / "content.jpg", 320, 240, seed=4), write_image(folder / "style.png", 160, 160, seed=5)


def whole_loss(folder, vgg19_mat, content, style, image=None):
    """The total loss of the final image in `folder` (or of `image`) as a whole."""
    losses = style_transfer.losses_of_run(os.path.join(folder, "checkpoints", "style_transfer", "run.json"),
                                          image or os.path.join(folder, "outputs", "final.png"),
                                          load_vgg.load_weights(vgg19_mat[0]),
                                          ImageFiles(content, (style,), None, "noise"))
    return float(losses["total_loss"])


def scored(folder, vgg19_mat, content, style, image):
    """The total loss of `image` (a file, resized to the final image's size) as a whole, on the run's problem."""
    final = os.path.join(folder, "outputs", "final.png")
    with Image.open(final) as saved:
        size = saved.size
    with Image.open(image) as picture:
        resized = os.path.join(folder, "scored.png")
        picture.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(resized)
    return whole_loss(folder, vgg19_mat, content, style, resized)


@pytest.mark.slow  # three full runs (L-BFGS, two scales, tiles)
def test_a_tiled_run_refines_its_start_keeps_what_earlier_tiles_decided_and_shows_the_assembled_image(
        tmp_path, monkeypatch, capsys, vgg19_mat, larger_images):
    content, style = larger_images
    common = tiled_args(vgg19_mat, content, style, "--width", "160", "--height", "120", "--optimizer", "lbfgs",
                        "--scales", "0.5", "1", "--scale-steps", "15", "--iterations", "40", "--save-every", "5")
    losses, curves = {}, {}
    for name, more in (("whole", []), ("one tile", ["--tile", "160"]), ("tiled", ["--tile", "128"])):
        folder = tmp_path / name
        folder.mkdir()
        monkeypatch.chdir(folder)
        code, out, err = run_main([*common, *more], capsys)
        assert code == 0, err
        losses[name] = whole_loss(folder, vgg19_mat, content, style)
        curves[name] = [value for step, value in scalar_series(folder / LOG_DIR, "total_loss") if step <= 25]
    assert "Tile 2/2: 128x120 at (32, 0), steps 41 to 65" in out
    # One tile, seen within its surroundings (none: past the border the network holds its activations at 0, as
    # SAME padding has them), is the untiled problem: the same losses step by step while rounding (1e-7 here) has
    # not yet grown, which L-BFGS's line searches amplify to about 3% by the end, either way (on one machine;
    # another processor rounds otherwise): near, not equal.
    assert len(curves["whole"]) == 5  # steps 1, 10, 15 at the coarse scale; 16 and 20 of the tile
    np.testing.assert_allclose(curves["one tile"], curves["whole"], rtol=1e-5)
    assert losses["one tile"] == pytest.approx(losses["whole"], rel=0.05)
    # Two tiles: the second sees the pixels the first decided (columns 0 to 79: the seam lies midway through their
    # overlap, 32 to 127) and leaves them as they were when the first was done (step 40's image)
    tiled = tmp_path / "tiled"
    first, final = (read_pixels(tiled / "outputs" / name) for name in ("40.png", "final.png"))
    np.testing.assert_array_equal(final[:, :80], first[:, :80])
    assert np.abs(final[:, 80:].astype(int) - first[:, 80:]).mean() > 1  # the second tile's own pixels moved
    # The tiles refine the coarse result they start from (measured: 4.3 times lower), to a loss above the untiled
    # run's (17 times here, where these random weights let the whole image's 25 steps reach a loss 70 times below
    # the coarse result's and punish any mixture: averaging the overlapping tiles scored 31 times, averaging them
    # across the seam only, 250 times; at 1024x768 the tiles cost 2.4 to 3 times, docs/large-images.md)
    start = scored(tiled, vgg19_mat, content, style, tiled / "outputs" / "15.png")
    assert losses["tiled"] < start / 2, (losses, start)
    assert losses["tiled"] < 25 * losses["whole"], losses
    # TensorBoard: every tile's losses on one step axis; at each checkpoint the assembled image, not the tile
    log = tiled / LOG_DIR
    assert [step for step, _ in scalar_series(log, "total_loss")][-1] == 65
    pictures = [(step, Image.open(io.BytesIO(value.image.encoded_image_string)).size)
                for step, tag, value in events(log) if tag.startswith("generated")]
    assert {size for step, size in pictures if step > 15} == {(160, 120)} and len(pictures) >= 2 * 5
    steps = sorted(int(name[:-4]) for name in os.listdir(tiled / "outputs") if name[0].isdigit())
    assert steps == [15, 40, 65]  # step images: at the coarse scale's end and at each tile's


@pytest.mark.slow
def test_a_tiled_run_killed_mid_tile_resumes_at_its_tile_to_the_same_image(tmp_path, vgg19_mat, larger_images):
    args = tiled_args(vgg19_mat, *larger_images, "--width", "128", "--height", "96", "--tile", "64",
                      "--tile-overlap", "16", "--iterations", "12", "--save-every", "4", "--log-every", "4")
    straight, interrupted, out = straight_and_killed(args, tmp_path, "checkpoints/style_transfer/ckpt-28.index")
    assert "Resuming from step 28" in out and "Tile 4/6" not in out and "Tile 5/6" in out
    difference = np.abs(read_pixels(straight / "outputs/final.png") - read_pixels(interrupted / "outputs/final.png"))
    assert difference.max() <= 1


@pytest.mark.slow
def test_a_size_too_large_for_memory_is_tiled_by_itself_and_refused_only_when_tiles_cannot_help(
        workdir, monkeypatch, capsys, base_args):
    deepest = "relu5_1"
    whole, tiled = memory.memory_needed(128, 96, deepest), memory.tiled_memory_needed(128, 96, 64, deepest)
    assert tiled < whole
    monkeypatch.setattr(memory.utils, "available_memory", lambda: (whole + tiled) / 2)
    args = [*base_args[:-4], "--width", "128", "--height", "96", "--tile-overlap", "8", "--iterations", "4"]
    code, out, err = run_main(args, capsys)
    assert code == 0, err
    assert "--width 128 --height 96 does not fit in memory: refining it in tiles (as --tile 64)" in out
    record = json.load(open(workdir / "checkpoints" / "style_transfer" / "run.json"))
    assert record["tiles"] == [64, 8] and record["scales"] == [0.5, 1.0] and record["tile_steps"] == 2
    assert Image.open(workdir / "outputs" / "final.png").size == (128, 96)

    monkeypatch.setattr(memory.utils, "available_memory", lambda: memory.MEMORY_FIXED)
    code, out, err = run_main([*args, "--output-dir", "other", "--checkpoint-dir", "other"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "even in tiles" in err and "Traceback" not in err
    assert not os.path.exists(workdir / "other")


@pytest.mark.parametrize("more, words", [
    (["--tile", "16"], "--tile: 16 must be at least 32"),
    (["--tile", "64", "--tile-overlap", "40"], "more than half of --tile"),
    (["--tile", "64", "--keep-best"], "--keep-best"),
])
def test_bad_tile_options_are_refused_in_one_line(workdir, capsys, base_args, more, words):
    code, out, err = run_main([*base_args, *more], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, err
    assert os.listdir(workdir) == []


@pytest.mark.slow
def test_a_damaged_assembled_image_is_refused_on_resume_and_kept(workdir, capsys, base_args):
    args = [*base_args[:-4], "--width", "96", "--height", "64", "--tile", "64", "--tile-overlap", "8",
            "--iterations", "6", "--save-every", "1"]
    assert run_main(args, capsys)[0] == 0
    assembled = workdir / "checkpoints" / "style_transfer" / tiles.ASSEMBLED
    assembled.write_bytes(b"not an npz")
    checkpoints = sorted(os.listdir(workdir / "checkpoints" / "style_transfer"))
    code, out, err = run_main(args, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "assembled" in err and "--restart" in err, err
    assert assembled.read_bytes() == b"not an npz"
    assert sorted(os.listdir(workdir / "checkpoints" / "style_transfer")) == checkpoints


def test_the_assembly_round_trips_through_its_file(tmp_path):
    assembly = tiles.Assembly.starting_from(np.random.default_rng(1).normal(size=(20, 30, 3)))
    assembly.image[3:5] = 4.0
    assembly.done.extend([0, 2])
    assembly.save(str(tmp_path / "a.npz"), "key")
    loaded = tiles.Assembly.load(str(tmp_path / "a.npz"), "key", 30, 20, tile_count=3)
    assert np.array_equal(loaded.image, assembly.image) and loaded.done == [0, 2]
    np.savez(tmp_path / "earlier.npz", tiles=assembly.image, weight=assembly.image[..., 0], base=assembly.image,
             done=np.asarray([0]), key=np.asarray("key"))  # as an earlier version of the tool wrote it
    with pytest.raises(FixableError, match="made for another run"):
        tiles.Assembly.load(str(tmp_path / "earlier.npz"), "key", 30, 20, tile_count=3)
    with pytest.raises(FixableError, match="is missing"):
        tiles.Assembly.load(str(tmp_path / "none.npz"), "key", 30, 20, tile_count=3)


def test_an_image_seen_within_empty_surroundings_has_its_own_features(vgg19_mat):
    """Past the border (NaN in the surroundings) the activations are held at 0 and the average pools count the
    picture only: the picture's features are those it has alone, with SAME padding, down to conv5_1."""
    weights = load_vgg.load_weights(vgg19_mat[0])
    view = tiles.WithinSurroundings(16, 40, 24)
    picture = np.random.default_rng(2).normal(0, 40, (24, 40, 3)).astype(np.float32)
    surroundings = np.pad(picture, ((16, 16), (16, 16), (0, 0)), constant_values=np.nan)
    graph = style_transfer.tf.Graph()
    with graph.as_default():
        constants = load_vgg.weight_constants(weights)
        alone = load_vgg.vgg_net(picture[np.newaxis], constants, "relu5_1")
        seen, inside = tiles.past_the_border(style_transfer.tf.constant(surroundings[np.newaxis]))
        within = load_vgg.vgg_net(seen, constants, "relu5_1", inside=inside)
        names = ["conv1_1", "conv4_2", "conv5_1"]
        pairs = [(alone[load_vgg.feature_layer(name)], view.own(within[load_vgg.feature_layer(name)],
                                                                 load_vgg.feature_layer(name)))
                 for name in names]
        with style_transfer.tf.Session() as sess:
            for name, (expected, found) in zip(names, sess.run(pairs)):
                assert expected.shape == found.shape, name
                np.testing.assert_allclose(found, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
