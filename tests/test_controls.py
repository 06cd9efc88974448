"""The controls of Gatys et al. 2017: colour (--color-control), regions (--content-mask, --style-mask), scale
(--style-scale per style, --style-blend-weights per layer), checked against NumPy and on runs' own images."""

import json
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

import load_vgg
from conftest import run_main, write_image
from runner import controls, tiles
from runner.images import ImageFiles
from test_cli import assert_refused
from test_losses import small_problem, targets_of
from test_run import CHECKPOINT_DIR, LOG_DIR, events, read_pixels, scalar_series
from utils import load_image

SMALL = ["--width", "40", "--height", "32"]


def striped(path, colours, width=64, height=64, period=4, seed=0):
    """A style image of vertical stripes in the given colours, with some noise: a texture easy to tell apart."""
    rng = np.random.default_rng(seed)
    stripes = np.array(colours, np.float64)[(np.arange(width) // period) % len(colours)]
    pixels = np.clip(np.broadcast_to(stripes, (height, width, 3)) + rng.normal(0, 12, (height, width, 3)), 0, 255)
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return str(path)


def write_mask(path, levels, width=80, height=60):
    """A mask of vertical bands, one per grey level, left to right."""
    bands = np.array(levels, np.uint8)[np.minimum(np.arange(width) * len(levels) // width, len(levels) - 1)]
    Image.fromarray(np.broadcast_to(bands, (height, width)).copy()).save(path)
    return str(path)


# ---------------------------------------------------------------------------------------------------
# Colour

def test_matching_gives_the_style_the_contents_colour_mean_and_covariance_by_the_symmetric_map():
    rng = np.random.default_rng(0)
    mixing = np.array([[1.0, 0.3, 0.1], [0.2, 0.8, 0.3], [0.1, 0.2, 0.6]])
    style = (rng.normal(0, 30, (40, 50, 3)) @ mixing + [90, 120, 60]).astype(np.float32)
    content = (rng.normal(0, 20, (30, 20, 3)) @ mixing.T + [150, 100, 130]).astype(np.float32)
    matched = controls.matched_colors(style, content)
    got_mean, got_covariance = controls.colour_moments(matched)
    want_mean, want_covariance = controls.colour_moments(content)
    np.testing.assert_allclose(got_mean, want_mean, atol=1e-3)
    np.testing.assert_allclose(got_covariance, want_covariance, rtol=1e-3, atol=1e-3)
    # the map is x -> A x + b with A symmetric (the Monge-Kantorovich form), read back by least squares
    design = np.hstack([style.reshape(-1, 3).astype(np.float64), np.ones((style.size // 3, 1))])
    solution = np.linalg.lstsq(design, matched.reshape(-1, 3).astype(np.float64), rcond=None)[0]
    transfer = solution[:3].T
    np.testing.assert_allclose(transfer, transfer.T, atol=1e-4)
    assert np.all(np.linalg.eigvalsh(transfer) > 0)


def test_a_run_with_colour_matching_aims_at_the_recoloured_style(tmp_path, vgg19_mat, images):
    files = ImageFiles(images["content"], (images["style"],), None, "noise", "match")
    read = files.read_at(40, 32)
    plain = ImageFiles(images["content"], (images["style"],), None, "noise").read_at(40, 32)
    np.testing.assert_allclose(read.styles[0][0], controls.matched_colors(plain.styles[0][0], plain.content))
    np.testing.assert_array_equal(read.content, plain.content)  # the content as it is


def test_luminance_matching_gives_a_grey_style_with_the_contents_luminance_mean_and_spread():
    rng = np.random.default_rng(1)
    style, content = rng.uniform(0, 255, (20, 30, 3)), rng.uniform(50, 150, (16, 16, 3))
    grey = controls.matched_luminance(style, content)
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 0], grey[..., 2])
    content_luminance = content @ [0.299, 0.587, 0.114]
    assert grey[..., 0].mean() == pytest.approx(content_luminance.mean(), abs=1e-3)
    assert grey[..., 0].std() == pytest.approx(content_luminance.std(), rel=1e-4)
    # the style's shading kept: its luminance, up to the affine change
    correlation = np.corrcoef(grey[..., 0].ravel(), (style @ [0.299, 0.587, 0.114]).ravel())[0, 1]
    assert correlation == pytest.approx(1.0, abs=1e-6)


@pytest.mark.slow
def test_with_luminance_control_the_result_has_the_contents_colours_and_its_style_loss_falls(
        workdir, capsys, base_args):
    runs = {}
    for name, extra in (("plain", []), ("luminance", ["--color-control", "luminance"])):
        folders = ["--checkpoint-dir", f"{name}/ck", "--log-dir", f"{name}/log", "--output-dir", f"{name}/out",
                   "--output", f"{name}/out/final.png"]
        code, _, err = run_main([*base_args, *extra, *folders, "--optimizer", "lbfgs", "--iterations", "20",
                                 "--log-every", "1"], capsys)
        assert code == 0, err
        runs[name] = [value for _, value in scalar_series(f"{name}/log", "style_loss")]
    assert runs["luminance"][-1] < 0.5 * runs["luminance"][0]  # falls as it does without control
    assert runs["plain"][-1] < 0.5 * runs["plain"][0]
    result = Image.open("luminance/out/final.png").convert("YCbCr")
    fitted = Image.fromarray(np.clip(np.rint(load_image(base_args[3], 40, 32)), 0, 255).astype(np.uint8))
    chroma = np.asarray(result, np.int16)[..., 1:], np.asarray(fitted.convert("YCbCr"), np.int16)[..., 1:]
    difference = np.abs(chroma[0] - chroma[1])  # the content's chroma, but for rounding (and clipping to 0..255
    assert difference.mean() < 0.6 and np.percentile(difference, 99) <= 2  # where the luminance is extreme)
    plain = np.asarray(Image.open("plain/out/final.png").convert("YCbCr"), np.int16)[..., 1:]
    assert np.abs(plain - chroma[1]).mean() > 5  # which the plain run does not keep


def test_the_luminance_view_shows_the_network_three_equal_channels_past_no_border(vgg19_mat):
    import style_transfer

    weights = load_vgg.load_weights(vgg19_mat[0], "relu1_1")
    view = style_transfer.LuminanceOnly(style_transfer.WholeImage(), weights.mean_pixel)
    pixels = np.random.default_rng(2).uniform(0, 255, (1, 6, 7, 3)).astype(np.float32)
    with tf.Graph().as_default(), tf.Session() as sess:
        sight = view.around(tf.constant(pixels - weights.mean_pixel))
        seen, picture = sight.seen, sight.picture
        grey, picture = (value + weights.mean_pixel for value in sess.run([seen, picture]))
    np.testing.assert_allclose(grey[0, ..., 0], pixels[0] @ np.float32([0.299, 0.587, 0.114]), rtol=1e-5)
    np.testing.assert_allclose(grey[..., 1], grey[..., 0], rtol=1e-5)
    np.testing.assert_allclose(grey[..., 2], grey[..., 0], rtol=1e-5)
    np.testing.assert_allclose(picture, pixels, rtol=1e-5)  # the pixel losses read the colours


# ---------------------------------------------------------------------------------------------------
# Regions

def numpy_guidance(mask, layer):
    """A mask averaged 2x2 at each pooling before `layer` (SAME, as the network pools), in NumPy."""
    for name in load_vgg.layers_up_to(layer):
        if load_vgg.layer_kind(name) == "pool":
            height, width = mask.shape
            padded = np.pad(mask, ((0, height % 2), (0, width % 2)), constant_values=np.nan)
            mask = np.nanmean(padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2), axis=(1, 3))
    return mask


def test_guidance_follows_the_networks_pooling_and_inside_erodes_it():
    mask = np.zeros((12, 14), np.float32)
    mask[:, 5:] = 1
    with tf.Graph().as_default(), tf.Session() as sess:
        simple, inside = sess.run([load_vgg.guidance(tf.constant(mask[None, :, :, None]), "relu3_1", mode)
                                   for mode in ("simple", "inside")])
    for layer in ("relu1_1", "pool1", "relu2_1", "pool2", "relu3_1"):
        np.testing.assert_allclose(simple[layer][0, :, :, 0], numpy_guidance(mask, layer), atol=1e-6)
    assert simple["pool1"][0, 0, 2, 0] == 0.5  # a window across the region's edge counts half
    assert inside["pool1"][0, 0, 2, 0] == 0  # and not at all inside it
    # each conv erodes by one position: conv1_1 and conv1_2 take two columns off the region's edge, then pooling
    assert inside["relu1_2"][0, 0, :, 0].tolist() == [0] * 7 + [1] * 7
    assert inside["relu1_1"][0, 0, :, 0].tolist() == [0] * 6 + [1] * 8


def moments_at(pixels, mask, weights, layer):
    """(second moment, count) of the features of `pixels` (0..255) at `layer`, weighted by the guidance of `mask`
    squared, computed from the network's features and NumPy."""
    with tf.Graph().as_default(), tf.Session() as sess:
        features = sess.run(load_vgg.vgg_net(tf.constant((pixels - weights.mean_pixel)[None], tf.float32),
                                             load_vgg.weight_constants(weights), layer)[layer])[0]
    guide = numpy_guidance(mask, layer)[..., None] ** 2
    flat, weight = features.reshape(-1, features.shape[-1]).astype(np.float64), guide.reshape(-1, 1)
    return (flat * weight).T @ flat / weight.sum(), weight.sum()


@pytest.mark.slow  # 60 L-BFGS steps at 96x64, in this process
def test_two_regions_each_end_closer_to_their_own_style(workdir, capsys, vgg19_mat, images, tmp_path_factory):
    folder = tmp_path_factory.mktemp("regions")
    red = striped(folder / "red.png", [(220, 40, 30), (120, 20, 10)], period=6)
    blue = striped(folder / "blue.png", [(20, 40, 230), (10, 200, 240)], period=2, seed=1)
    mask = write_mask(folder / "mask.png", [0, 255])
    code, _, err = run_main(["--vgg", vgg19_mat[0], "--content", images["content"], "--style", red, blue,
                             "--content-mask", mask, "--width", "96", "--height", "64", "--optimizer", "lbfgs",
                             "--iterations", "60", "--log-every", "10"], capsys)  # (conv5_1: 6x4 positions)
    assert code == 0, err
    weights = load_vgg.load_weights(vgg19_mat[0])
    result = read_pixels("outputs/final.png")
    values = controls.mask_values(mask, 96, 64, "mask")
    regions = controls.regions_of(values, controls.region_values(values, mask))
    styles = [np.asarray(Image.open(path).convert("RGB").resize((96, 64), Image.Resampling.LANCZOS), np.float64)
              for path in (red, blue)]
    for name in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"):
        for region in range(2):
            got, _ = moments_at(result, regions[..., region], weights, name)
            own, _ = moments_at(styles[region], np.ones((64, 96)), weights, name)
            other, _ = moments_at(styles[1 - region], np.ones((64, 96)), weights, name)
            assert np.sum((got - own) ** 2) < np.sum((got - other) ** 2), (name, region)
    # TensorBoard shows each region's style loss, and the regions' losses add up to the style loss
    losses = {tag: [value for _, value in scalar_series(LOG_DIR, tag)]
              for tag in ("style_loss", "style_loss/region_1", "style_loss/region_2")}
    assert len(losses["style_loss/region_1"]) == len(losses["style_loss"]) > 1
    np.testing.assert_allclose(np.add(losses["style_loss/region_1"], losses["style_loss/region_2"]),
                               losses["style_loss"], rtol=1e-4)


def test_a_region_given_no_style_keeps_the_content_and_has_no_style_loss(workdir, capsys, base_args,
                                                                       tmp_path_factory):
    mask = write_mask(tmp_path_factory.mktemp("masks") / "half.png", [10, 200])
    code, _, err = run_main([*base_args[:4], "--style", "none", base_args[5], *SMALL, "--content-mask", mask,
                             "--iterations", "4", "--log-every", "1"], capsys)
    assert code == 0, err
    tags = {tag for _, tag, _ in events(LOG_DIR)}
    assert "style_loss/region_2" in tags and "style_loss/region_1" not in tags
    record = json.load(open(os.path.join(CHECKPOINT_DIR, "run.json")))
    assert record["style"][0] is None and record["content_mask"]["sha256"]


def test_a_style_mask_takes_the_statistics_from_its_white_part(vgg19_mat, tmp_path):
    """A style image of two halves, its mask white on one: its targets are those of that half alone."""
    weights = load_vgg.load_weights(vgg19_mat[0])
    rng = np.random.default_rng(3)
    left, right = rng.uniform(0, 255, (32, 20, 3)), rng.uniform(0, 80, (32, 20, 3))
    whole = np.concatenate([left, right], axis=1).astype(np.float32)
    mask = np.zeros((32, 40), np.float32)
    mask[:, :20] = 1
    problem = small_problem(style_layers=("conv1_1",), style_layer_weights=(1.0,), content_layers=())
    masked = targets_of(weights, problem, [[whole]], style_masks=[[mask]])
    alone = targets_of(weights, problem, [[left.astype(np.float32)]])
    # the masked statistics are near the left half's (conv1_1 sees the other half along the edge, where the half
    # alone sees padding), and far nearer than the whole image's
    unmasked = targets_of(weights, problem, [[whole]])
    distance = {name: np.linalg.norm(found["style_loss"][0] - alone["style_loss"][0])
                for name, found in (("masked", masked), ("unmasked", unmasked))}
    assert distance["masked"] < 0.2 * distance["unmasked"]


@pytest.mark.slow  # a whole run of several seconds: out of the quick subset
def test_masks_are_cut_with_the_tiles_and_a_tiled_masked_run_finishes(workdir, capsys, vgg19_mat, images,
                                                                       tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiled-mask")
    mask = write_mask(folder / "mask.png", [0, 128, 255], width=96, height=64)
    second = write_image(folder / "second.png", 64, 64, seed=5)
    code, out, err = run_main(["--vgg", vgg19_mat[0], "--content", images["content"], "--style", images["style"],
                               second, "none", "--content-mask", mask, "--width", "96", "--height", "64",
                               "--tile", "64", "--tile-overlap", "8", "--iterations", "6"], capsys)
    assert code == 0, err
    assert "Tile 2/2" in out
    files = ImageFiles(images["content"], (images["style"], second, None), None, "noise", None, mask)
    whole = files.read_at(96, 64)
    phase = tiles.tiled_plan(small_problem(width=96, height=64, tiles=(64, 8), tile_steps=2, scales=(0.5, 1.0),
                                           scale_steps=(2,)), 6, files, whole, str(workdir / "phase")).phases[1]
    tile = phase.layout[1]
    margin = phase.view.margin
    cut = phase.images_at(1).regions
    assert cut.shape == (tile.height + 2 * margin, tile.width + 2 * margin, 3)
    np.testing.assert_array_equal(cut[margin:-margin, margin:-margin], whole.regions[tile.region])
    assert cut[:, -margin:].sum() == 0  # past the image's right border: no region


def test_a_mask_per_item_of_a_data_set_by_name_and_an_item_without_one_fails_alone(
        workdir, capsys, vgg19_mat, images, tmp_path_factory):
    contents, masks = tmp_path_factory.mktemp("photos"), tmp_path_factory.mktemp("photo-masks")
    for name in ("a", "b"):
        write_image(contents / f"{name}.png", 60, 40, seed=ord(name))
    write_mask(masks / "a.png", [0, 255])
    code, out, err = run_main(["--vgg", vgg19_mat[0], "--content", str(contents), "--style", images["style"],
                               images["style"], "--content-mask", str(masks), *SMALL, "--iterations", "2"], capsys)
    assert code == 2 and "no mask named b" in err, err
    entries = [json.loads(line) for line in open("outputs/manifest-0-of-1.jsonl")]
    assert {(entry["name"], entry["status"]) for entry in entries} == {("a", "done"), ("b", "failed")}


def test_the_masks_are_part_of_the_runs_identity(workdir, capsys, base_args, tmp_path_factory):
    folder = tmp_path_factory.mktemp("identity")
    first, second = write_mask(folder / "first.png", [0, 255]), write_mask(folder / "second.png", [255, 0])
    args = [*base_args[:4], "--style", base_args[5], base_args[5], *SMALL]
    code, _, err = run_main([*args, "--content-mask", first, "--iterations", "2"], capsys)
    assert code == 0, err
    code, _, err = run_main([*args, "--content-mask", second, "--iterations", "3"], capsys)
    assert code == 2 and "content_mask:" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("more, says", [
    (["--style", "none", "STYLE"], "--style none is for a region"),
    (["--content-mask", "MASK3", "--style", "STYLE", "STYLE"], "3 regions (grey levels) for 2 --style"),
    (["--content-mask", "FLAT", "--style", "STYLE", "STYLE"], "one value only"),
    (["--content-mask", "NOT_AN_IMAGE", "--style", "STYLE", "STYLE"], "not a readable image"),
    (["--content-mask", "MASK2", "--style", "STYLE", "STYLE", "--style-blend-weights", "1", "2"],
     "drop --style-blend-weights"),
    (["--style-mask", "MASK2", "MASK2"], "--style-mask has 2 masks for 1 --style"),
    (["--mask-propagation", "inside"], "--mask-propagation is for masks"),
    (["--texture", "--color-control", "match"], "--color-control match takes the content's colours"),
    (["--style", "STYLE", "STYLE", "--style-scale", "1", "2", "3"], "--style-scale has 3 values for 2 --style"),
    (["--style", "STYLE", "STYLE", "--style-blend-weights", "1,0", "0,1"], "a weight per style layer"),
    (["--style-mask", "BLACK"], "keeps nothing of its style at 40x32 (black all over)"),
    (["--content-mask", "MASK2", "--style", "none", "STYLE", "--style-mask", "MASK2", "all"],
     "a style `none` has no image to mask: give it `all`"),
])
def test_bad_control_options_are_refused_in_one_line(workdir, capsys, base_args, tmp_path_factory, more, says):
    folder = tmp_path_factory.mktemp("bad-controls")
    paths = {"STYLE": base_args[5], "MASK2": write_mask(folder / "two.png", [0, 255]),
             "MASK3": write_mask(folder / "three.png", [0, 100, 200]), "FLAT": write_mask(folder / "flat.png", [7]),
             "NOT_AN_IMAGE": str(folder / "notes.png"), "BLACK": write_mask(folder / "black.png", [0])}
    (folder / "notes.png").write_text("not an image\n")
    args = [*base_args[:4], *SMALL, *[paths.get(word, word) for word in more]]
    if "--style" not in more:
        args[4:4] = ["--style", base_args[5]]
    code, out, err = run_main([*args, "--iterations", "1"], capsys)
    assert_refused(code, out, err, says)
    assert not os.path.exists("outputs")


# ---------------------------------------------------------------------------------------------------
# Scale

def test_blend_weights_per_layer_take_each_layers_statistics_from_their_style(vgg19_mat):
    weights = load_vgg.load_weights(vgg19_mat[0])
    rng = np.random.default_rng(4)
    coarse, fine = rng.uniform(0, 255, (2, 32, 40, 3)).astype(np.float32)
    layers = dict(style_layers=("conv1_1", "conv3_1"), style_layer_weights=(1.0, 1.0), content_layers=())
    mixed = targets_of(weights, small_problem(**layers, style_blend_weights=((0.0, 1.0), (1.0, 0.0))),
                       [[coarse], [fine]])["style_loss"]
    alone = [targets_of(weights, small_problem(**layers), [[image]])["style_loss"] for image in (coarse, fine)]
    np.testing.assert_allclose(mixed[0], alone[1][0], rtol=1e-5)  # conv1_1: the fine texture's
    np.testing.assert_allclose(mixed[1], alone[0][1], rtol=1e-5)  # conv3_1: the coarse structure's


def test_a_style_scale_per_style_reads_each_at_its_own_size(images, tmp_path):
    wide = write_image(tmp_path / "wide.png", 120, 40, seed=9)
    read = ImageFiles(images["content"], (images["style"], wide), (0.5, 2.0), "noise").read_at(40, 32)
    assert read.styles[0][0].shape == (20, 20, 3)  # 64x64 at half the output's width
    assert read.styles[1][0].shape == (27, 80, 3)  # 120x40 at twice it, its own aspect
    one = ImageFiles(images["content"], (images["style"], wide), 0.5, "noise").read_at(40, 32)
    assert [style[0].shape[1] for style in one.styles] == [20, 20]


# ---------------------------------------------------------------------------------------------------
# With everything else

@pytest.mark.slow
def test_controls_work_coarse_to_fine_and_with_a_film(workdir, capsys, base_args, tmp_path_factory):
    from test_video import panning_frames, write_frames

    folder = tmp_path_factory.mktemp("with-everything")
    mask = write_mask(folder / "mask.png", [0, 255])
    styles = ["--style", base_args[5], base_args[5]]
    code, out, err = run_main([*base_args[:4], *styles, *SMALL, "--content-mask", mask, "--color-control", "match",
                               "--scales", "0.5", "1", "--scale-steps", "2", "--iterations", "4"], capsys)
    assert code == 0 and "Scale 2/2" in out, err
    film = write_frames(folder / "film", panning_frames(3))
    code, out, err = run_main(["--vgg", base_args[1], "--content", film, "--video", *styles, *SMALL,
                               "--content-mask", mask, "--color-control", "luminance", "--iterations", "2",
                               "--checkpoint-dir", "film/ck", "--log-dir", "film/log", "--output-dir", "film/out",
                               "--output", "film/out/final.png"], capsys)
    assert code == 0 and "Frame 3/3" in out, err
    record = json.load(open("film/ck/run.json"))
    assert record["color_control"] == "luminance" and record["content_mask"] is not None
    assert scalar_series("film/log", "style_loss/region_2")


@pytest.mark.slow  # a whole run of several seconds: out of the quick subset
@pytest.mark.parametrize("loss", ["mean-std", "w2"])
def test_regions_work_with_the_other_style_losses(workdir, capsys, base_args, tmp_path_factory, loss):
    mask = write_mask(tmp_path_factory.mktemp("loss-masks") / "half.png", [0, 255])
    code, _, err = run_main([*base_args[:4], "--style", base_args[5], base_args[5], *SMALL, "--content-mask", mask,
                             "--style-loss", loss, "--optimizer", "lbfgs", "--iterations", "8", "--log-every", "1"],
                            capsys)
    assert code == 0, err
    first, last = (scalar_series(LOG_DIR, "style_loss/region_2")[index][1] for index in (0, -1))
    assert np.isfinite(last) and last < first


def test_a_region_too_thin_for_a_coarse_scale_keeps_its_place_and_its_style(workdir, capsys, base_args,
                                                                            tmp_path_factory):
    folder = tmp_path_factory.mktemp("thin")
    bands = np.zeros((32, 40), np.uint8)
    bands[:, 20:] = 255
    bands[:, 9] = 128  # one column: gone when the mask is fitted to 10x8
    mask = folder / "thin.png"
    Image.fromarray(bands).save(mask)
    second = write_image(folder / "second.png", 40, 32, seed=9)
    values = controls.region_values(controls.mask_values(mask, 40, 32, "mask"), mask)
    files = ImageFiles(base_args[3], (base_args[5], second, base_args[5]), None, "noise", None, str(mask), None,
                       values)
    coarse, whole = files.read_at(10, 8).regions, files.read_at(40, 32).regions
    assert coarse.shape[-1] == whole.shape[-1] == 3 and whole[..., 1].sum() == 32 and coarse[..., 1].sum() == 0
    np.testing.assert_array_equal(coarse[..., 2], np.asarray(Image.fromarray(bands).resize(
        (10, 8), Image.Resampling.NEAREST)) == 255)  # the white region stays the third, with the third style
    code, out, err = run_main([*base_args[:4], "--style", base_args[5], second, base_args[5], *SMALL,
                               "--content-mask", str(mask), "--scales", "0.25", "1", "--scale-steps", "2",
                               "--iterations", "4"], capsys)
    assert code == 0 and "Scale 2/2" in out, err


def test_the_wasserstein_root_has_a_finite_gradient_for_an_empty_region():
    import style_transfer

    with tf.Graph().as_default(), tf.Session() as sess:
        covariance = tf.placeholder(tf.float32, (4, 4))
        gradient = tf.gradients(tf.linalg.trace(style_transfer.newton_schulz_square_root(covariance)), covariance)[0]
        assert np.isfinite(sess.run(gradient, {covariance: np.zeros((4, 4), np.float32)})).all()


def test_masks_of_any_depth_and_a_folder_with_two_masks_of_one_name(workdir, capsys, base_args, tmp_path_factory):
    folder = tmp_path_factory.mktemp("deep-masks")
    levels = np.repeat(np.array([0, 30000, 65535], np.uint16), 20)[np.newaxis].repeat(8, axis=0)
    Image.fromarray(levels).save(folder / "deep.png")  # 16 bits a pixel: three regions, not two
    assert len(controls.region_values(controls.mask_values(folder / "deep.png", 60, 8, "mask"), "deep")) == 3
    contents, masks = folder / "photos", folder / "masks"
    contents.mkdir(), masks.mkdir()
    write_image(contents / "a.png", 60, 40, seed=1)
    write_mask(masks / "a.png", [0, 255])
    write_mask(masks / "a.jpg", [0, 255])
    code, out, err = run_main(["--vgg", base_args[1], "--content", str(contents), "--style", base_args[5],
                               base_args[5], "--content-mask", str(masks), *SMALL, "--iterations", "1"], capsys)
    assert code == 2 and "has 2 masks named a (a.jpg, a.png): keep one of them" in err + out, (out, err)


def test_a_style_mask_that_keeps_nothing_at_a_layer_is_refused_in_one_line(workdir, capsys, base_args,
                                                                           tmp_path_factory):
    dot = np.zeros((64, 64), np.uint8)
    dot[30:33, 30:33] = 255  # eroded away by the deeper layers' pooling, under --mask-propagation inside
    path = tmp_path_factory.mktemp("dot") / "dot.png"
    Image.fromarray(dot).save(path)
    code, out, err = run_main([*base_args, "--style-mask", str(path), "--mask-propagation", "inside",
                               "--iterations", "1"], capsys)
    assert_refused(code, out, err, "the --style-mask of style 1 keeps nothing of it at conv")
