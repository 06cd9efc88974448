"""Large outputs in tiles (runner/tiles.py): the layout covers the image, the blend is a weighted mean whose
weights sum to one, the style's Gram matrices add up over pieces, a tiled run scores close to an untiled one,
a SIGKILLed tiled run resumes at its tile to the same image, a size too large is tiled by itself."""

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
def test_blending_is_the_weighted_mean_of_the_tiles_and_its_weights_sum_to_one(width, height, tile, overlap):
    layout = tiles.tile_layout(width, height, tile, overlap)
    rng = np.random.default_rng(0)
    tile_images = [rng.normal(0, 50, (item.height, item.width, 3)).astype(np.float32) for item in layout]
    assembly = tiles.Assembly.starting_from(rng.normal(0, 50, (height, width, 3)))
    numerator, weights = np.zeros((height, width, 3)), np.zeros((height, width))
    for item, image in zip(layout, tile_images):
        weight = tiles.feather(item, width, height, overlap)
        assert weight.min() > 0 and weight.max() == 1
        assembly.blend(item, image, weight)
        numerator[item.region] += weight[..., None] * image
        weights[item.region] += weight
    np.testing.assert_allclose(assembly.tiles, numerator / weights[..., None], rtol=1e-4, atol=1e-3)
    assert weights.min() >= 1 - 1e-6  # neighbours' ramps cross within their overlap: the picture is the tiles alone
    np.testing.assert_allclose(assembly.picture(), assembly.tiles, rtol=1e-6)
    shares = sum(np.pad(tiles.feather(item, width, height, overlap),
                        ((item.top, height - item.top - item.height), (item.left, width - item.left - item.width)))
                 for item in layout) / weights
    np.testing.assert_allclose(shares, 1, rtol=1e-6)  # each pixel's tiles' shares of it sum to one
    same = tiles.Assembly.starting_from(np.zeros((height, width, 3)))
    constant = np.full((layout[0].height, layout[0].width, 3), 7.0, np.float32)
    for item in layout:
        same.blend(item, constant, tiles.feather(item, width, height, overlap))
    np.testing.assert_allclose(same.picture(), 7.0, rtol=1e-6)  # tiles that agree blend to themselves: no seam


def test_until_every_tile_is_in_the_picture_passes_smoothly_from_the_refined_tiles_into_the_coarse_result():
    layout = tiles.tile_layout(256, 192, 96, 16)
    assembly = tiles.Assembly.starting_from(np.zeros((192, 256, 3)))
    assembly.blend(layout[0], np.full((96, 96, 3), 90.0, np.float32), tiles.feather(layout[0], 256, 192, 16))
    picture = assembly.picture()[..., 0]
    assert picture[40, 40] == 90 and picture[40, 200] == 0
    assert np.abs(np.diff(picture[40, :120])).max() <= 90 / 16 + 1e-3  # a ramp over the overlap, not a step
    assert np.abs(np.diff(picture[:120, 40])).max() <= 90 / 16 + 1e-3


def test_a_tiles_weight_falls_only_toward_its_neighbours():
    layout = tiles.tile_layout(256, 192, 96, 16)
    corner = tiles.feather(layout[0], 256, 192, 16)  # neighbours right and below
    assert corner[0, 0] == 1 and corner[:80, :80].min() == 1
    assert corner[0, -1] == pytest.approx(0.5 / 16) and corner[-1, 0] == pytest.approx(0.5 / 16)
    middle = tiles.feather(layout[4], 256, 192, 16)
    assert middle[48, 48] == 1 and middle[0, 48] == pytest.approx(0.5 / 16) and middle[48, 0] == pytest.approx(0.5 / 16)


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


def whole_loss(folder, vgg19_mat, content, style):
    """The total loss of the final image in `folder` as a whole."""
    losses = style_transfer.losses_of_run(os.path.join(folder, "checkpoints", "style_transfer", "run.json"),
                                          os.path.join(folder, "outputs", "final.png"),
                                          load_vgg.load_weights(vgg19_mat[0]),
                                          ImageFiles(content, (style,), None, "noise"))
    return float(losses["total_loss"])


@pytest.mark.slow  # three full runs (L-BFGS, two scales, tiles)
def test_a_tiled_run_scores_near_an_untiled_one_and_shows_the_assembled_image(
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
    # not yet grown, which L-BFGS's line searches amplify to about 1% by the end, either way (on one machine;
    # another processor rounds otherwise): near, not equal.
    assert len(curves["whole"]) == 5  # steps 1, 10, 15 at the coarse scale; 16 and 20 of the tile
    np.testing.assert_allclose(curves["one tile"], curves["whole"], rtol=1e-5)
    assert losses["one tile"] == pytest.approx(losses["whole"], rel=0.03)
    # Two tiles, each matching the whole style's statistics on its own and blended: measured 1.24 times the
    # untiled loss here (2.3 times in 64-pixel tiles; docs/large-images.md)
    assert losses["tiled"] < 2 * losses["whole"], losses
    # TensorBoard: every tile's losses on one step axis; at each checkpoint the assembled image, not the tile
    log = tmp_path / "tiled" / LOG_DIR
    assert [step for step, _ in scalar_series(log, "total_loss")][-1] == 65
    pictures = [(step, Image.open(io.BytesIO(value.image.encoded_image_string)).size)
                for step, tag, value in events(log) if tag.startswith("generated")]
    assert {size for step, size in pictures if step > 15} == {(160, 120)} and len(pictures) >= 2 * 5
    steps = sorted(int(name[:-4]) for name in os.listdir(tmp_path / "tiled" / "outputs") if name[0].isdigit())
    assert steps == [15, 40, 65]  # step images: at the coarse scale's end and at each tile's


@pytest.mark.slow
def test_a_tiled_run_killed_mid_tile_resumes_at_its_tile_to_the_same_image(tmp_path, vgg19_mat, larger_images):
    args = tiled_args(vgg19_mat, *larger_images, "--width", "128", "--height", "96", "--tile", "64",
                      "--tile-overlap", "16", "--iterations", "12", "--save-every", "4", "--log-every", "4")
    straight, interrupted, out = straight_and_killed(args, tmp_path, "checkpoints/style_transfer/ckpt-28.index")
    assert "Resuming from step 28" in out and "Tile 4/6" not in out and "Tile 5/6" in out
    difference = np.abs(read_pixels(straight / "outputs/final.png") - read_pixels(interrupted / "outputs/final.png"))
    assert difference.max() <= 1


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
    assembly.weight[3:5] = 0.25
    assembly.tiles[3:5] = 4.0
    assembly.done.extend([0, 2])
    assembly.save(str(tmp_path / "a.npz"), "key")
    loaded = tiles.Assembly.load(str(tmp_path / "a.npz"), "key", 30, 20, tile_count=3)
    assert np.array_equal(loaded.tiles, assembly.tiles) and np.array_equal(loaded.weight, assembly.weight)
    assert np.array_equal(loaded.base, assembly.base) and np.array_equal(loaded.picture(), assembly.picture())
    assert loaded.done == [0, 2]
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
