"""The geometry the deformable-module pictures draw is where the operators sample.

Inputs whose values identify positions (one-hot cells, coordinate ramps) go through the
actual operators (dcn.ops and MXNet's built-in contrib ones); what comes out must be what
dcn.tools.demo reports for the same RoI / offsets."""
import itertools
import json
import os

import numpy as np
import pytest
import mxnet as mx

import dcn.ops
from dcn.tools import demo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKENDS = {'dcn': dcn.ops.nd, 'builtin': mx.nd.contrib}


def _first(out):
    return out[0] if isinstance(out, (list, tuple)) else out


# ------------------------------------------------------------------------------ PS RoI pooling
def _bilinear_cells(samples, valid, h, w):
    """Weights (h * w,) the operator gives each cell for one bin: the mean over the bin's
    valid samples (clamped into the map) of their floor / ceil bilinear weights."""
    wts = np.zeros(h * w)
    n = 0
    for (x, y), ok in zip(samples, valid):
        if not ok:
            continue
        n += 1
        x, y = min(max(x, 0.0), w - 1.0), min(max(y, 0.0), h - 1.0)
        x0, y0, x1, y1 = int(np.floor(x)), int(np.floor(y)), int(np.ceil(x)), int(np.ceil(y))
        dx, dy = x - x0, y - y0
        for yy, xx, wt in ((y0, x0, (1 - dx) * (1 - dy)), (y1, x0, (1 - dx) * dy),
                           (y0, x1, dx * (1 - dy)), (y1, x1, dx * dy)):
            wts[yy * w + xx] += wt
    return wts / n if n else wts


PSROI_CASES = [
    # pooled, part, samples, group, trans_std
    (7, 7, 4, 7, 0.1),   # R-FCN
    (3, 3, 4, 3, 0.1),   # the original demo network
    (4, 2, 2, 1, 0.3),   # part_size != pooled_size, group 1 (deformable RoI pooling)
]


@pytest.mark.parametrize('backend', sorted(BACKENDS))
@pytest.mark.parametrize('case', range(len(PSROI_CASES)))
def test_psroi_sampling_is_where_the_operator_samples(backend, case):
    pooled, part, samples, group, trans_std = PSROI_CASES[case]
    h, w, ncls, cls = 9, 11, 2, 1
    rng = np.random.default_rng(case)
    # one input channel per (class, cell, group cell): channel ctop of class k is the
    # one-hot map of cell ctop - k * h * w, for every position-sensitive group cell
    out_dim = ncls * h * w
    onehot = np.eye(h * w, dtype=np.float32).reshape(h * w, h, w)
    data = np.repeat(np.tile(onehot, (ncls, 1, 1)), group * group, axis=0)[None]
    # network-input pixels (spatial scale 1/16): fractional corners (the operator rounds
    # them), one RoI reaching out of the map, one degenerate (width 0.1 cells)
    rois = np.array([[0, 21.4, 30.6, 120.2, 101.7],
                     [0, -40.0, 60.3, 60.0, 190.0],
                     [0, 70.0, 50.0, 70.0, 50.0]], dtype=np.float32)
    trans = rng.uniform(-1.5, 1.5, (len(rois), 2 * ncls, part, part)).astype(np.float32)
    out = _first(BACKENDS[backend].DeformablePSROIPooling(
        mx.nd.array(data), mx.nd.array(rois), mx.nd.array(trans), spatial_scale=1.0 / 16,
        output_dim=out_dim, group_size=group, pooled_size=pooled, part_size=part,
        sample_per_part=samples, trans_std=trans_std, no_trans=False)).asnumpy()
    assert out.shape == (len(rois), out_dim, pooled, pooled)
    skipped = 0
    for r in range(len(rois)):
        geo = demo.psroi_sampling(rois[r, 1:], demo.class_part_offsets(trans, r, cls),
                                  spatial_scale=1.0 / 16, pooled_size=pooled,
                                  sample_per_part=samples, trans_std=trans_std,
                                  feat_shape=(h, w))
        assert geo.samples.shape == (pooled, pooled, samples * samples, 2)
        skipped += np.sum(~geo.valid)
        for i in range(pooled):
            for j in range(pooled):
                want = _bilinear_cells(geo.samples[i, j], geo.valid[i, j], h, w)
                got = out[r, cls * h * w:(cls + 1) * h * w, i, j]
                np.testing.assert_allclose(got, want, atol=2e-5,
                                           err_msg='RoI %d bin (%d, %d)' % (r, i, j))
                # the samples lie in the reported bin: its first sample at the bin's corner
                x1, y1, x2, y2 = geo.bins[i, j]
                np.testing.assert_allclose(geo.samples[i, j, 0], [x1, y1])
                assert np.all(geo.samples[i, j, :, 0] < x2) and np.all(geo.samples[i, j, :, 1] < y2)
    assert skipped > 0  # the second RoI has samples beyond the map, which read nothing


@pytest.mark.parametrize('backend', sorted(BACKENDS))
def test_psroi_bins_in_the_original_image(backend):
    """A RoI of the original image, the network fed with RoI * scale (as the demo does):
    the operator's mean sample position, mapped back to the original image, is the mean of
    the samples psroi_bins reports there; bins follow the class's own x and y offsets."""
    scale, h, w, ncls, p = 1.6, 24, 30, 3, 7
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    # class k reads channels k * 2 * p * p ...: x ramp (even) and y ramp (odd) of the map,
    # in every group cell of both
    data = np.tile(np.stack([xs, ys]), (ncls * p * p, 1, 1))
    data = data.reshape(ncls, p * p, 2, h, w).transpose(0, 2, 1, 3, 4).reshape(1, -1, h, w)
    roi = np.array([41.0, 37.0, 180.0, 142.0])      # original image pixels
    trans = np.zeros((1, 2 * ncls, p, p), dtype=np.float32)
    cls = 2
    trans[0, 2 * cls, 3, 1] = 1.0      # class 2, part (3, 1): +0.1 RoI width along x
    trans[0, 2 * cls + 1, 0, 6] = -2.0  # part (0, 6): -0.2 RoI height along y
    trans[0, 2 * 1, 0, 0] = 5.0        # another class's offset: not used for class 2
    net_roi = np.zeros((1, 5), dtype=np.float32)
    net_roi[0, 1:] = roi * scale
    out = _first(BACKENDS[backend].DeformablePSROIPooling(
        mx.nd.array(data), mx.nd.array(net_roi), mx.nd.array(trans), spatial_scale=1.0 / 16,
        output_dim=2 * ncls, group_size=p, pooled_size=p, part_size=p, sample_per_part=4,
        trans_std=0.1, no_trans=False)).asnumpy()
    # the operator's mean feature position, in original pixel-centre coordinates
    mean_x = demo.feature_to_image(out[0, 2 * cls], scale)
    mean_y = demo.feature_to_image(out[0, 2 * cls + 1], scale)
    geo = demo.psroi_bins(roi, demo.class_part_offsets(trans, 0, cls), scale)
    assert geo.valid.all()
    np.testing.assert_allclose(mean_x, geo.samples[..., 0].mean(axis=2), atol=1e-3)
    np.testing.assert_allclose(mean_y, geo.samples[..., 1].mean(axis=2), atol=1e-3)
    # regular grid: the bins tile the RoI, from the left edge of pixel x1 to the right edge
    # of pixel x2, as the operator rounds the network's RoI and adds 1 to its end there
    plain = demo.psroi_bins(roi, np.zeros((2, p, p)), scale)
    start = np.round(roi[:2] * scale) / scale - 0.5
    end = (np.round(roi[2:] * scale) + 1) / scale - 0.5
    np.testing.assert_allclose(plain.bins[0, 0, :2], start, atol=1e-4)
    np.testing.assert_allclose(plain.bins[-1, -1, 2:], end, atol=1e-4)
    assert np.all(np.abs(start - (roi[:2] - 0.5)) <= 0.5 / scale)
    assert np.all(np.abs(end - (roi[2:] + 0.5)) <= 1 / scale)
    np.testing.assert_allclose(plain.bins[0, 1, 0], plain.bins[0, 0, 2], atol=1e-4)
    rw, rh = end - start
    moved = geo.bins - plain.bins
    np.testing.assert_allclose(moved[3, 1], [0.1 * rw, 0, 0.1 * rw, 0], atol=1e-4)
    np.testing.assert_allclose(moved[0, 6], [0, -0.2 * rh, 0, -0.2 * rh], atol=1e-4)
    assert np.count_nonzero(np.abs(moved).max(axis=2) > 1e-6) == 2


def test_psroi_sampling_part_cells_and_errors():
    trans = np.zeros((2, 3, 3))
    trans[0, 1, 2] = 1.0
    geo = demo.psroi_sampling((0, 0, 111, 111), trans, pooled_size=7)
    moved = np.abs(geo.bins - demo.psroi_sampling((0, 0, 111, 111), None).bins).max(axis=2) > 0
    # pooled bin p uses part floor(p / 7 * 3): rows 3, 4 -> part 1; columns 5, 6 -> part 2
    assert sorted(zip(*np.nonzero(moved))) == [(3, 5), (3, 6), (4, 5), (4, 6)]
    with pytest.raises(ValueError, match='trans'):
        demo.psroi_sampling((0, 0, 10, 10), np.zeros((3, 7, 7)))
    assert demo.select_bins(7, 3) == [1, 3, 5]
    assert demo.select_bins(7, 7) == list(range(7))
    assert demo.select_bins(3, 3) == [0, 1, 2]


def test_feature_and_image_coordinates():
    # feature cell f covers network-input pixels [16 f, 16 f + 16): its centre is 16 f + 7.5
    np.testing.assert_allclose(demo.feature_to_image([0, 2], 1.0), [7.5, 39.5])
    np.testing.assert_allclose(demo.feature_to_image([-0.5], 1.0), [-0.5])  # left image edge
    # the test-time resize: input pixel-centre v is original (v + 0.5) / scale - 0.5
    np.testing.assert_allclose(demo.feature_to_image([0.0], 2.0), [3.5])
    f = np.array([[-0.5, 3.25], [7.0, 11.9]])
    np.testing.assert_allclose(demo.image_to_feature(demo.feature_to_image(f, 1.37), 1.37), f)


# ------------------------------------------------------------------------------ deformable conv
def _ramp(h, w, groups):
    """2 * groups channels: (y + 100, x + 100) per deformable group (0 = outside)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.tile(np.stack([ys + 100, xs + 100]), (groups, 1, 1))[None]


def _copy_taps(num_in, kk):
    """Weights (kk * num_in, num_in, 3, 3): output channel k * num_in + c copies input
    channel c at kernel tap k."""
    wt = np.zeros((kk * num_in, num_in, 3, 3), dtype=np.float32)
    for k in range(kk):
        for c in range(num_in):
            wt[k * num_in + c, c, k // 3, k % 3] = 1
    return wt


def _revealed(out):
    """Output values back to positions: NaN where the sample read zero."""
    out = np.asarray(out, dtype=np.float64)
    return np.where(out == 0, np.nan, out - 100)


@pytest.mark.parametrize('backend', sorted(BACKENDS))
def test_sampling_points_single_layer_groups(backend):
    h, w, groups, kk = 8, 9, 4, 9
    rng = np.random.default_rng(1)
    offset = rng.uniform(-2.5, 2.5, (1, 2 * groups * kk, h, w)).astype(np.float32)
    # group g reads channels (2g, 2g + 1); output channel (g, k, a) = axis a at tap k of group g
    wt = np.zeros((groups * kk * 2, 2 * groups, 3, 3), dtype=np.float32)
    for g in range(groups):
        for k in range(kk):
            for a in range(2):
                wt[(g * kk + k) * 2 + a, 2 * g + a, k // 3, k % 3] = 1
    out = BACKENDS[backend].DeformableConvolution(
        mx.nd.array(_ramp(h, w, groups)), mx.nd.array(offset), mx.nd.array(wt), kernel=(3, 3),
        pad=(2, 2), dilate=(2, 2), num_filter=wt.shape[0], num_deformable_group=groups,
        no_bias=True).asnumpy()[0]
    got = _revealed(out).reshape(groups, kk, 2, h, w)
    outside = 0
    for g in range(groups):
        for y in range(h):
            for x in range(w):
                pts = demo.sampling_points([offset], y, x, group=g)
                assert pts.shape == (kk, 2)
                # a sample in the last half-open row / column reads the last one
                want = np.stack([np.clip(pts[:, 0], 0, h - 1), np.clip(pts[:, 1], 0, w - 1)], 1)
                np.testing.assert_allclose(got[g, :, :, y, x], want, atol=1e-4,
                                           err_msg='group %d unit (%d, %d)' % (g, y, x))
                outside += np.isnan(pts[:, 0]).sum()
    assert outside > 0


@pytest.mark.parametrize('backend', sorted(BACKENDS))
def test_sampling_points_follow_a_chain_of_three_layers(backend):
    """deformable -> regular 3x3 -> deformable (the basic-block res5 chain): each layer copies
    every input channel at every tap, so the top output at a unit holds the positions of its
    9^3 samples on the bottom input, ordered top tap, middle tap, bottom tap."""
    h = w = 24
    kk = 9
    rng = np.random.default_rng(2)
    nd = BACKENDS[backend]
    off_bottom = rng.uniform(-0.9, 0.9, (1, 2 * kk, h, w)).astype(np.float32)
    off_top = rng.uniform(-0.9, 0.9, (1, 2 * kk, h, w)).astype(np.float32)
    args = dict(kernel=(3, 3), pad=(2, 2), dilate=(2, 2), no_bias=True)
    x = mx.nd.array(_ramp(h, w, 1))
    w1 = _copy_taps(2, kk)
    b = nd.DeformableConvolution(x, mx.nd.array(off_bottom), mx.nd.array(w1),
                                 num_filter=w1.shape[0], **args)
    w2 = _copy_taps(w1.shape[0], kk)
    m = mx.nd.Convolution(b, mx.nd.array(w2), num_filter=w2.shape[0], **args)
    w3 = _copy_taps(w2.shape[0], kk)
    t = nd.DeformableConvolution(m, mx.nd.array(off_top), mx.nd.array(w3),
                                 num_filter=w3.shape[0], **args).asnumpy()[0]
    assert t.shape[0] == 2 * kk ** 3
    # units whose 729 samples (and their bilinear neighbours) stay inside the map
    for y, x_ in ((12, 11), (13, 12)):
        pts = demo.sampling_points([off_top, None, off_bottom], y, x_)
        assert pts.shape == (kk ** 3, 2)
        got = _revealed(t[:, y, x_]).reshape(kk ** 3, 2)
        assert not np.isnan(pts).any()
        np.testing.assert_allclose(got, pts, atol=2e-4)
    # regular middle layer: zero offsets there
    plain = demo.sampling_points([np.zeros_like(off_top), None, np.zeros_like(off_bottom)],
                                 12, 12)
    assert sorted(set(plain[:, 0])) == list(range(6, 19, 2))
    # near the border: a sample outside the map is NaN, and so is everything below it; a
    # top-layer sample outside reads zero in the operator, for all its 81 descendants
    edge = demo.sampling_points([off_top, None, off_bottom], 1, 2)
    dead = np.isnan(edge[:, 0]).reshape(kk, kk * kk)
    assert dead.any() and not dead.all()
    got = _revealed(t[:, 1, 2]).reshape(kk, kk * kk, 2)
    top_dead = dead.all(axis=1)
    assert top_dead.any()
    assert np.isnan(got[top_dead]).all() and not np.isnan(got[~top_dead]).all()


def test_sampling_points_zero_offsets_regular_dilated_grid():
    offsets = [np.zeros((72, 14, 16), np.float32) for _ in range(3)]  # res5c, res5b, res5a
    pts = demo.sampling_points(offsets, 7, 8)
    assert pts.shape == (729, 2)
    # each layer adds (i - 1) * 2 with i in 0..2 (dilation 2, pad 2, stride 1)
    expect = sorted((7 + 2 * (a + b + c), 8 + 2 * (d + e + f))
                    for (a, d), (b, e), (c, f) in itertools.product(
                        itertools.product((-1, 0, 1), repeat=2), repeat=3))
    assert sorted(map(tuple, pts.tolist())) == expect
    # the first 9 points belong to the top layer's first kernel tap (-1, -1) and then follow
    # the 3x3 grids of the two layers below, row-major
    np.testing.assert_allclose(pts[0], [7 - 6, 8 - 6])
    np.testing.assert_allclose(pts[8], [7 - 2, 8 - 2])
    # a unit at the corner: the samples above / left of the map read zero padding
    corner = demo.sampling_points(offsets, 0, 0)
    kept = corner[~np.isnan(corner[:, 0])]
    # per axis, from 0: taps {0, 2} stay, then from 2 also 4: 2 -> 5 -> 13 positions
    assert len(kept) == 13 ** 2 and kept.min() == 0
    with pytest.raises(ValueError):
        demo.sampling_points([np.zeros((20, 4, 4))], 1, 1)
    with pytest.raises(ValueError, match='shape'):
        demo.sampling_points([None], 1, 1)


def test_sampling_points_follow_group_offsets():
    off = np.zeros((72, 20, 20), np.float32)
    off[0:18:2] = 1.5     # group 0: dy = 1.5 for every kernel position
    off[1:18:2] = -0.5    # group 0: dx = -0.5
    off[18 + 1:36:2] = 2  # group 1: dx = 2
    base = demo.sampling_points([np.zeros_like(off)] * 2, 10, 10)
    g0 = demo.sampling_points([off, off], 10, 10, group=0)
    np.testing.assert_allclose(g0 - base, np.tile([[3.0, -1.0]], (81, 1)))
    g1 = demo.sampling_points([off, off], 10, 10, group=1)
    np.testing.assert_allclose(g1 - base, np.tile([[0.0, 4.0]], (81, 1)))
    gm = demo.sampling_points([off], 10, 10, group=-1)
    np.testing.assert_allclose(gm - demo.sampling_points([np.zeros_like(off)], 10, 10),
                               np.tile([[1.5 / 4, (-0.5 + 2) / 4]], (9, 1)))
    with pytest.raises(ValueError, match='group'):
        demo.sampling_points([off], 10, 10, group=4)


def test_sampling_points_interpolate_offsets_at_fractional_positions():
    off = np.zeros((18, 8, 8), np.float32)
    off[0, :, 4] = 2.0      # dy of kernel tap 0 grows with x
    top = np.zeros((18, 8, 8), np.float32)
    top[1] = 0.5            # top layer: kernel tap 0 moves by dx = +0.5
    pts = demo.sampling_points([top, off], 4, 5)
    # top tap 0 samples at (4 - 2, 5 - 2 + 0.5) = (2, 3.5); the layer below reads dy there as
    # the mean of columns 3 and 4 = 1.0 for its tap 0
    np.testing.assert_allclose(pts[0], [2 - 2 + 1.0, 3.5 - 2])


def _network_cfg(name, symbol=None):
    from dcn.config import load_config, update_config
    cfg = load_config(os.path.join(ROOT, 'experiments', 'rfcn', 'cfgs', name))
    return update_config(cfg, {'symbol': symbol}, source='test') if symbol else cfg


@pytest.mark.parametrize('cfg_name,symbol,chain', [
    ('shapes_mini_rfcn_dcn.yaml', None,
     [('res5b_branch2b', True), ('res5b_branch2a', False), ('res5a_branch2b', True)]),
    ('resnet_v1_101_coco_trainval_rfcn_dcn_end2end_ohem.yaml', None,
     [('res5c_branch2b', True), ('res5b_branch2b', True), ('res5a_branch2b', True)]),
    ('deform_conv_demo.yaml', None,
     [('res5c_branch2b', True), ('res5b_branch2b', True), ('res5a_branch2b', True)]),
])
def test_conv_chain_of_the_networks(cfg_name, symbol, chain):
    """The stacked res5 3x3 layers the sampling points follow: ResNet-101's three deformable
    layers (1x1 layers between them), ResNet-18's two with the regular 3x3 between."""
    cfg = _network_cfg(cfg_name, symbol)
    sym, layers = demo._deform_conv_symbol('rfcn', cfg)
    assert [(la['name'], la['offset'] is not None) for la in layers] == chain
    for la in layers:
        assert (la['kernel'], la['dilate'], la['pad'], la['stride']) == \
            ((3, 3), (2, 2), (2, 2), (1, 1))
        if la['offset']:
            assert la['offset'] == la['name'] + '_offset_output' and la['groups'] == 4
    outputs = sym.list_outputs()
    assert outputs[:-1] == [la['offset'] for la in layers if la['offset']]
    assert outputs[-1].startswith('res5')


def test_choose_units_object_background_object():
    act = np.zeros((10, 12))
    act[2, 3] = 5.0
    act[2, 4] = 4.0   # too close to the first
    act[6, 9] = 3.0
    act[9, 11] = 9.0  # outside the image (padding cells)
    units = demo.choose_units(act, (9, 11))
    # background: the cell farthest from both objects (6.7 cells from (2, 3))
    assert units == [('object', (2, 3)), ('background', (8, 0)), ('object', (6, 9))]
    # with detections (feature coordinates): their centres (the second box's is too close to
    # the first's); the background is a cell farthest from every box
    boxes = np.array([[0.0, 0.0, 4.0, 3.0], [0.5, 0.2, 4.2, 3.0], [6.0, 5.0, 10.0, 7.0]])
    units = demo.choose_units(act, (9, 11), boxes)
    assert units[0] == ('object', (2, 2)) and units[2] == ('object', (6, 8))
    kind, (y, x) = units[1]

    def dist(cy, cx):
        return min(np.hypot(max(b[0] - cx, cx - b[2], 0), max(b[1] - cy, cy - b[3], 0))
                   for b in boxes)
    assert kind == 'background'
    assert dist(y, x) == max(dist(cy, cx) for cy in range(9) for cx in range(11)) > 4
    # kept off the border by a margin
    _, (y, x) = demo.choose_units(act, (9, 11), boxes, margin=2)[1]
    assert 2 <= y <= 6 and 2 <= x <= 8
    assert dist(y, x) == max(dist(cy, cx) for cy in range(2, 7) for cx in range(2, 9))


@pytest.mark.parametrize('num_classes,fused', [(6, False), (21, True)])
def test_demo_reads_the_offsets_the_class_pooling_uses(num_classes, fused):
    """The demo's ``rfcn_cls_offset_output`` is the ``trans`` of the class pooling in the CPU
    test network (its offset branch fused into Conv1x1DeformablePSROIPooling from 8 classes
    on): pooling ``rfcn_cls`` with it gives the network's own pooled scores."""
    from dcn.config import load_config, update_config
    from dcn.train import get_symbol_instance
    cfg = load_config(os.path.join(ROOT, 'experiments', 'rfcn', 'cfgs',
                                   'shapes_mini_rfcn_dcn.yaml'))
    cfg = update_config(cfg, {'dataset': {'NUM_CLASSES': num_classes}}, source='test')
    from dcn.engine.predictor import prepare_for_context
    sym = prepare_for_context(demo._psroi_symbol(cfg), [mx.cpu()])  # as the demo binds it
    ops = [n['op'] for n in json.loads(sym.tojson())['nodes']]
    assert ('dcn_Conv1x1DeformablePSROIPooling' in ops) == fused
    internals = sym.get_internals()
    group = mx.sym.Group([internals[n] for n in ('rfcn_cls_offset_output', 'rfcn_cls_output',
                                                 'psroipooled_cls_rois_output')])
    arg, aux = get_symbol_instance('rfcn', cfg).init_weight(cfg, {}, {})
    rng = np.random.default_rng(4)
    arg['rfcn_cls_offset_t_weight'] = mx.nd.array(
        rng.normal(0, 0.05, arg['rfcn_cls_offset_t_weight'].shape))
    arg['rfcn_cls_offset_t_bias'] = mx.nd.array(
        rng.normal(0, 1.0, arg['rfcn_cls_offset_t_bias'].shape))
    rois = np.array([[[0, 30, 40, 150, 120], [0, 100, 20, 220, 200]]], dtype=np.float32)
    data = rng.uniform(-100, 100, (1, 3, 256, 320)).astype(np.float32)
    ex = group.simple_bind(mx.cpu(), grad_req='null', data=data.shape, rois=rois.shape)
    ex.copy_params_from(arg, aux, allow_extra_params=True)
    ex.arg_dict['data'][:] = data
    ex.arg_dict['rois'][:] = rois
    trans, rfcn_cls, pooled = [o.asnumpy() for o in ex.forward(is_train=False)]
    ncls = cfg.dataset.NUM_CLASSES
    assert trans.shape == (2, 2 * ncls, 7, 7) and np.abs(trans).max() > 0.5
    ref = mx.nd.contrib.DeformablePSROIPooling(
        mx.nd.array(rfcn_cls), mx.nd.array(rois[0]), mx.nd.array(trans), spatial_scale=1 / 16.,
        output_dim=ncls, group_size=7, pooled_size=7, part_size=7, sample_per_part=4,
        trans_std=0.1, no_trans=False)
    np.testing.assert_allclose(pooled, _first(ref).asnumpy(), rtol=1e-4, atol=1e-5)
    # and the pooling parameters the demo reads from the network
    assert demo._pooling_args(sym) == dict(trans_std=0.1, pooled_size=7, sample_per_part=4,
                                           stride=16.0)
