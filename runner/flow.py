"""Optical flow between neighbouring frames, where it can be trusted, and warping by it (Ruder et al. 2016).

    backward = flow(frame_t, frame_t_minus_1)      # for each pixel of frame t, where it was in frame t-1
    forward = flow(frame_t_minus_1, frame_t)
    mask = reliability(backward, forward)          # 1 where the flow holds, 0 at disocclusions and motion edges
    start = warp(stylised_t_minus_1, backward)     # the previous result, moved to where frame t has it
    figure = flicker(stylised_t, start, mask)      # how much frame t departs from it where it should not

Flow is OpenCV's DIS (dense inverse search) on grey levels. NumPy and OpenCV only.
"""

import cv2
import numpy as np


def flow(frame, other):
    """Dense flow from `frame` to `other` (float [height, width, 2], x then y): frame(p) ≈ other(p + flow(p)).
    Frames: [height, width, 3] in 0..255."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(_grey(frame), _grey(other), None)


def _grey(frame):
    return cv2.cvtColor(np.clip(frame, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)


def warp(image, flow_field):
    """image moved by flow_field: result(p) = image(p + flow_field(p)), bilinear; edges repeat the border."""
    height, width = flow_field.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(np.asarray(image, np.float32), grid_x + flow_field[..., 0], grid_y + flow_field[..., 1],
                     interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def reliability(backward, forward):
    """1.0 where frame t's pixel can be followed back into frame t-1, else 0.0 ([height, width] float32).

    backward: flow(frame_t, frame_t_minus_1); forward: flow(frame_t_minus_1, frame_t). The paper's two tests:
    - disocclusion: going back and then forward again should return to the start,
      |b + f(p + b)|² ≤ 0.01 (|b|² + |f(p + b)|²) + 0.5;
    - motion boundary: the flow should not change abruptly, |∇b_x|² + |∇b_y|² ≤ 0.01 |b|² + 0.002.
    """
    forward_there = warp(forward, backward)  # f at p + b(p)
    round_trip = np.sum((backward + forward_there) ** 2, axis=-1)
    magnitudes = np.sum(backward ** 2, axis=-1) + np.sum(forward_there ** 2, axis=-1)
    occluded = round_trip > 0.01 * magnitudes + 0.5
    gradient = sum(np.sum(np.square(np.gradient(backward[..., axis])), axis=0) for axis in (0, 1))
    boundary = gradient > 0.01 * np.sum(backward ** 2, axis=-1) + 0.002
    return (~(occluded | boundary)).astype(np.float32)


def flicker(stylised, warped_previous, mask):
    """mean(mask · |stylised - warped_previous|) over pixels and channels: 0 for a perfectly steady film."""
    return float(np.mean(mask[..., np.newaxis] * np.abs(np.asarray(stylised, np.float64) - warped_previous)))
