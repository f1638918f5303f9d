"""Demos: detection on images, and the two visualisations of the deformable modules.

* :func:`detect_main` (``rfcn/demo.py``, ``faster_rcnn/demo.py``): runs a detection model on
  image files, writes one PNG per image with boxes, class names and scores, and
  ``detections.json`` (image path -> list of ``{"class", "score", "bbox"}``, boxes as
  x1, y1, x2, y2 in original image pixels).
* :func:`deform_conv_main` (``rfcn/deform_conv_demo.py``): sampling locations of the
  deformable convolutions (Dai et al. 2017, Fig. 5). For an activation unit on the top
  deformable layer, its 3x3 sampling points (each moved by the learned offset) are followed
  down through every deformable res5 layer (res5c -> res5b -> res5a for ResNet-101: 9^3 = 729
  points) and drawn on the image.
* :func:`deform_psroi_main` (``rfcn/deform_psroi_demo.py``): the deformable PS RoI pooling
  parts (Fig. 6): for chosen RoIs, the 7x7 (or a 3x3 subset of the) bins shifted by the
  learned part offsets, drawn on the image.

By default the released models are used (``model/<name>-0000.params``); ``--cfg``,
``--params`` and ``--epoch`` select any other configuration and checkpoint, e.g. a network
trained on the Shapes data set.
"""
import argparse
import copy
import importlib
import json
import logging
import os
import sys

import cv2
import numpy as np

__all__ = ['COCO_CLASSES', 'DemoError', 'class_names', 'detect_main', 'deform_conv_main',
           'deform_psroi_main', 'sampling_points', 'feature_to_image', 'psroi_bins',
           'prepare_image', 'load_model_params', 'list_images']

_log = logging.getLogger('dcn.demo')

COCO_CLASSES = (
    '__background__', 'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train',
    'truck', 'boat', 'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench',
    'bird', 'cat', 'dog', 'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe',
    'backpack', 'umbrella', 'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard',
    'sports ball', 'kite', 'baseball bat', 'baseball glove', 'skateboard', 'surfboard',
    'tennis racket', 'bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana',
    'apple', 'sandwich', 'orange', 'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake',
    'chair', 'couch', 'potted plant', 'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse',
    'remote', 'keyboard', 'cell phone', 'microwave', 'oven', 'toaster', 'sink', 'refrigerator',
    'book', 'clock', 'vase', 'scissors', 'teddy bear', 'hair drier', 'toothbrush')

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp')

#: stride of the res4/res5 feature maps in input pixels
FEAT_STRIDE = 16

# released models, per (package, variant): (config file under experiments/, symbol, prefix)
_RELEASED = {
    ('rfcn', 'dcn'): ('rfcn/cfgs/rfcn_coco_demo.yaml', 'resnet_v1_101_rfcn_dcn',
                      'model/rfcn_dcn_coco'),
    ('rfcn', 'plain'): ('rfcn/cfgs/rfcn_coco_demo.yaml', 'resnet_v1_101_rfcn', 'model/rfcn_coco'),
    ('faster_rcnn', 'dcn'): ('faster_rcnn/cfgs/resnet_v1_101_coco_trainval_rcnn_dcn_end2end.yaml',
                             'resnet_v1_101_rcnn_dcn', 'model/rcnn_dcn_coco'),
    ('faster_rcnn', 'plain'): ('faster_rcnn/cfgs/resnet_v1_101_coco_trainval_rcnn_end2end.yaml',
                               'resnet_v1_101_rcnn', 'model/rcnn_coco'),
    ('rfcn', 'deform_conv'): ('rfcn/cfgs/deform_conv_demo.yaml', None, 'model/deform_conv'),
    ('rfcn', 'deform_psroi'): ('rfcn/cfgs/deform_psroi_demo.yaml', None, 'model/deform_psroi'),
}


class DemoError(Exception):
    """A user-facing error: printed without a traceback by the command-line mains."""


# ------------------------------------------------------------------------------ setup
def repo_root():
    """The project root (the directory holding ``rfcn/``, ``experiments/``, ``demo/``)."""
    try:
        pkg = importlib.import_module('rfcn')
        return os.path.dirname(os.path.dirname(os.path.abspath(pkg.__file__)))
    except ImportError:  # pragma: no cover - rfcn/ is next to lib/ in the source tree
        return os.getcwd()


def class_names(cfg):
    """Class names (index 0 = background) of ``cfg.dataset``; COCO names are built in."""
    num = int(cfg.dataset.NUM_CLASSES)
    ds = str(cfg.dataset.dataset).lower()
    names = None
    if ds == 'coco':
        names = COCO_CLASSES
    elif ds == 'shapes':
        from dcn.dataset.shapes import SHAPES_CLASSES
        names = SHAPES_CLASSES
    elif ds == 'pascalvoc':
        from dcn.dataset.pascal_voc import VOC_CLASSES
        names = VOC_CLASSES
    if names is None or len(names) != num:
        return ['__background__'] + ['class%d' % i for i in range(1, num)]
    return list(names)


def list_images(paths):
    """Image files from a list of files and/or folders (folders: sorted image files)."""
    out = []
    for p in paths:
        if os.path.isdir(p):
            found = sorted(os.path.join(p, f) for f in os.listdir(p)
                           if f.lower().endswith(IMAGE_EXTENSIONS)
                           and os.path.isfile(os.path.join(p, f)))
            if not found:
                raise DemoError('no image files in folder %s' % p)
            out.extend(found)
        elif os.path.isfile(p):
            out.append(p)
        else:
            raise DemoError('image not found: %s' % p)
    if not out:
        raise DemoError('no images given')
    return out


def _context(gpu):
    import mxnet as mx
    return mx.cpu() if gpu is None or gpu < 0 else mx.gpu(gpu)


def _load_cfg(args, package, variant):
    """Config, symbol package, checkpoint prefix and epoch from the command line."""
    from dcn.config import load_config, update_config
    cfg_file, symbol, prefix = _RELEASED[(package, variant)]
    root = repo_root()
    if args.cfg:
        cfg = load_config(args.cfg)
        if not args.params:
            from dcn.train import output_dir
            prefix = os.path.join(output_dir(cfg, cfg.config_name, cfg.dataset.image_set),
                                  cfg.TRAIN.model_prefix or 'e2e')
            epoch = cfg.TEST.test_epoch
        else:
            prefix, epoch = args.params, 0
    else:
        cfg = load_config(os.path.join(root, 'experiments', cfg_file))
        if symbol:
            cfg = update_config(cfg, {'symbol': symbol}, source='demo defaults')
        prefix, epoch = (args.params, 0) if args.params else (os.path.join(root, prefix), 0)
    if args.epoch is not None:
        epoch = args.epoch
    path = '%s-%04d.params' % (prefix, int(epoch))  # as dcn.checkpoint.param_path
    if not os.path.isfile(path):
        raise DemoError(_missing_model_message(path, package, variant))
    return cfg, prefix, int(epoch)


def _missing_model_message(path, package, variant):
    released = _RELEASED[(package, variant)][2]
    return ('model file not found: %s\n'
            'Download the released Deformable ConvNets models and put them under model/ in the '
            'project root (e.g. %s-0000.params), or pass --params PREFIX --epoch N (and --cfg '
            'FILE) to use your own checkpoint PREFIX-%%04d.params.' % (path, released))


def load_model_params(prefix, epoch, sym, data_shapes, package='rfcn', variant='dcn'):
    """Load ``PREFIX-%04d.params`` for ``sym``: (arg_params, aux_params) holding only the
    parameters ``sym`` uses. Raises :class:`DemoError` when the file is absent (saying where
    to put the released models) or when a parameter is missing or mis-shaped (naming the
    first one)."""
    from dcn.checkpoint import check_param_shapes, load_param, param_path
    path = param_path(prefix, epoch)
    if not os.path.isfile(path):
        raise DemoError(_missing_model_message(path, package, variant))
    try:
        arg_params, aux_params = load_param(prefix, epoch, process=True)
        check_param_shapes(sym, arg_params, aux_params, dict(data_shapes), source=path)
    except ValueError as exc:
        raise DemoError('the parameters do not fit the network: %s\n(check --cfg: the '
                        'network, number of classes and anchors must be those the model was '
                        'trained with)' % exc) from None
    args = set(sym.list_arguments())
    auxs = set(sym.list_auxiliary_states())
    return ({k: v for k, v in arg_params.items() if k in args},
            {k: v for k, v in aux_params.items() if k in auxs})


def prepare_image(im, cfg):
    """BGR image -> (data (1, 3, H, W) float32, im_info (1, 3) float32, scale)."""
    from dcn.config import get_scales
    from dcn.image import resize, transform
    target, max_size = get_scales(cfg)[0]
    resized, scale = resize(im, target, max_size, stride=cfg.network.IMAGE_STRIDE)
    data = transform(resized, cfg.network.PIXEL_MEANS)
    im_info = np.array([[data.shape[2], data.shape[3], scale]], dtype=np.float32)
    return data, im_info, scale


class _Runner(object):
    """Binds ``sym`` on the first input and re-binds (reshapes) for other input shapes."""

    def __init__(self, sym, data_names, arg_params, aux_params, ctx):
        self.sym, self.data_names = sym, list(data_names)
        self.arg_params, self.aux_params, self.ctx = arg_params, aux_params, ctx
        self._mod = None

    def __call__(self, **inputs):
        import mxnet as mx
        shapes = [(n, tuple(inputs[n].shape)) for n in self.data_names]
        if self._mod is None:
            self._mod = mx.mod.Module(self.sym, data_names=self.data_names, label_names=None,
                                      context=self.ctx)
            self._mod.bind(shapes, None, for_training=False)
            self._mod.init_params(arg_params=self.arg_params, aux_params=self.aux_params,
                                  allow_missing=False)
        batch = mx.io.DataBatch(data=[mx.nd.array(inputs[n]) for n in self.data_names],
                                provide_data=[mx.io.DataDesc(n, s) for n, s in shapes])
        self._mod.forward(batch, is_train=False)
        outs = self._mod.get_outputs(merge_multi_context=True)
        return {name: o.asnumpy() for name, o in zip(self.sym.list_outputs(), outs)}


def _symbol_instance(package, cfg):
    from dcn.train import get_symbol_instance
    try:
        return get_symbol_instance(package, cfg)
    except ValueError as exc:
        raise DemoError(str(exc)) from None


def _write_png(path, im):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not cv2.imwrite(path, im):
        raise DemoError('cannot write %s' % path)
    return path


def _stem(path, used):
    """Output file stem of ``path``, unique among ``used``."""
    base = os.path.splitext(os.path.basename(path))[0]
    stem, k = base, 1
    while stem in used:
        stem, k = '%s_%d' % (base, k), k + 1
    used.add(stem)
    return stem


def _run_cli(fn, argv):
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s')
    try:
        return fn(argv)
    except DemoError as exc:
        sys.stderr.write('error: %s\n' % exc)
        raise SystemExit(1)


# ------------------------------------------------------------------------------ detection
def _common_args(parser, default_images):
    parser.add_argument('--cfg', default=None,
                        help='experiment config (YAML); class names come from its dataset '
                        '(default: the released COCO model\'s config)')
    parser.add_argument('--params', default=None,
                        help='checkpoint prefix: loads PREFIX-%%04d.params (default: the '
                        'released model, or the training output of --cfg)')
    parser.add_argument('--epoch', type=int, default=None,
                        help='checkpoint epoch (default 0, or TEST.test_epoch with --cfg)')
    parser.add_argument('--images', nargs='+', default=[default_images],
                        help='image files and/or folders (default: demo/)')
    parser.add_argument('--output', default=None, help='output folder')
    parser.add_argument('--gpu', type=int, default=None, help='GPU id (default: CPU)')


def parse_detect_args(package, argv=None):
    plain = 'rfcn_only' if package == 'rfcn' else 'rcnn_only'
    kind = 'R-FCN' if package == 'rfcn' else 'Faster R-CNN'
    parser = argparse.ArgumentParser(description='Run a (Deformable) %s model on images' % kind)
    _common_args(parser, os.path.join(repo_root(), 'demo'))
    parser.add_argument('--' + plain, action='store_true', dest='plain',
                        help='use the released %s model without deformable modules' % kind)
    parser.add_argument('--thresh', type=float, default=0.5,
                        help='score threshold for the drawn and listed detections')
    return parser.parse_args(argv)


def detect(run, im, cfg, nms, thresh):
    """Detections of one BGR image: list over classes of (k, 5) arrays (x1, y1, x2, y2,
    score) in original image pixels (index 0, the background, empty)."""
    from dcn.bbox import bbox_pred, clip_boxes
    from dcn.tester import class_boxes
    data, im_info, scale = prepare_image(im, cfg)
    out = run(data=data, im_info=im_info)
    rois = out['rois_output'][:, 1:5]
    scores = out['cls_prob_reshape_output'][0][:rois.shape[0]]
    deltas = out['bbox_pred_reshape_output'][0][:rois.shape[0]]
    boxes = clip_boxes(bbox_pred(rois, deltas), im_info[0, :2]) / scale
    boxes = clip_boxes(boxes, im.shape[:2])
    num_classes = scores.shape[1]
    dets = [np.zeros((0, 5), np.float32)]
    for c in range(1, num_classes):
        inds = np.where(scores[:, c] >= thresh)[0]
        cd = np.hstack((class_boxes(boxes[inds], c, cfg.CLASS_AGNOSTIC),
                        scores[inds, c:c + 1])).astype(np.float32)
        cd = cd[(cd[:, 2] >= cd[:, 0]) & (cd[:, 3] >= cd[:, 1])]  # drop empty boxes
        keep, new_scores = nms(cd)
        cd = cd[keep]
        cd[:, 4] = new_scores
        dets.append(cd[cd[:, 4] >= thresh])
    cap = int(cfg.TEST.get('max_per_image', 100))
    all_scores = np.concatenate([d[:, 4] for d in dets])
    if cap > 0 and all_scores.size > cap:
        cut = np.sort(all_scores)[-cap]
        dets = [d[d[:, 4] >= cut] for d in dets]
    return dets


def _detector(package, cfg, prefix, epoch, variant, ctx, first_image):
    """A callable running the test network of ``cfg`` loaded from ``prefix``-``epoch``."""
    import dcn.operators  # noqa: F401  (registers the proposal CustomOp)
    cfg = copy.deepcopy(cfg)
    cfg.TEST.HAS_RPN = True
    cfg.TEST.BATCH_IMAGES = 1
    sym = _symbol_instance(package, cfg).get_symbol(cfg, is_train=False)
    data, im_info, _ = prepare_image(first_image, cfg)
    arg, aux = load_model_params(prefix, epoch, sym, {'data': data.shape, 'im_info': im_info.shape},
                                 package, variant)
    return _Runner(sym, ['data', 'im_info'], arg, aux, [ctx])


def detect_main(package, argv=None):
    """``<package>/demo.py``: detection on images; returns the detections dict."""
    return _run_cli(lambda a: _detect(package, a), argv)


def _detect(package, argv):
    args = parse_detect_args(package, argv)
    variant = 'plain' if args.plain else 'dcn'
    cfg, prefix, epoch = _load_cfg(args, package, variant)
    from dcn.image import imread
    from dcn.tester import nms_for_config
    from dcn.vis import draw_detections
    names = class_names(cfg)
    images = list_images(args.images)
    out_dir = args.output or os.path.join('output', 'demo', package)
    first = imread(images[0])
    run = _detector(package, cfg, prefix, epoch, variant, _context(args.gpu), first)
    nms = nms_for_config(cfg)
    results, used = {}, set()
    for path in images:
        im = imread(path)
        dets = detect(run, im, cfg, nms, args.thresh)
        entries = []
        for c in range(1, len(dets)):
            for d in dets[c]:
                entries.append({'class': names[c], 'score': round(float(d[4]), 4),
                                'bbox': [round(float(v), 2) for v in d[:4]]})
        entries.sort(key=lambda e: -e['score'])
        results[path] = entries
        png = _write_png(os.path.join(out_dir, _stem(path, used) + '.png'),
                         draw_detections(im, dets, names, thresh=args.thresh))
        _log.info('%s: %d detections -> %s', path, len(entries), png)
    json_path = os.path.join(out_dir, 'detections.json')
    with open(json_path, 'w') as f:
        json.dump(results, f, indent=1)
    _log.info('wrote %s', json_path)
    return results


# ------------------------------------------------------------------------------ deformable conv
def _bilinear(fmap, y, x):
    """Bilinear sample of (C, H, W) ``fmap`` at (y, x), clamped to the map."""
    _, h, w = fmap.shape
    y = min(max(float(y), 0.0), h - 1.0)
    x = min(max(float(x), 0.0), w - 1.0)
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * fmap[:, y0, x0] + (1 - ly) * lx * fmap[:, y0, x1]
            + ly * (1 - lx) * fmap[:, y1, x0] + ly * lx * fmap[:, y1, x1])


def sampling_points(offsets, y, x, kernel=3, dilation=2, pad=2, stride=1, group=0):
    """Back-project the sampling points of a stack of deformable convolutions.

    :param offsets: offset maps of the deformable layers, top layer first, each
        (2 * kernel^2 * G, H, W): for group g and kernel position k = i * kernel + j,
        channel 2 * (g * kernel^2 + k) holds the vertical and the next one the horizontal
        offset (the DeformableConvolution layout)
    :param y, x: activation position on the top layer's output (feature cells)
    :param group: deformable group whose offsets are followed (-1: mean over the groups)
    :return: (kernel^(2L), 2) array of (y, x) positions on the input of the bottom layer,
        feature cells. Position p of a layer's output samples its input at
        p * stride - pad + k * dilation + offset(p); fractional positions read the offsets
        of the layer below by bilinear interpolation.
    """
    kk = kernel * kernel
    pts = np.array([[float(y), float(x)]], dtype=np.float64)
    ii, jj = np.divmod(np.arange(kk), kernel)
    base = np.stack([ii, jj], axis=1).astype(np.float64) * dilation - pad
    for off in offsets:
        off = np.asarray(off, dtype=np.float64)
        if off.ndim == 4:
            off = off[0]
        groups = off.shape[0] // (2 * kk)
        if groups < 1 or off.shape[0] != 2 * kk * groups:
            raise ValueError('offset map has %d channels, not a multiple of 2 x %d'
                             % (off.shape[0], kk))
        if not -1 <= group < groups:
            raise ValueError('group %d out of range (%d deformable groups)' % (group, groups))
        nxt = np.empty((pts.shape[0] * kk, 2), dtype=np.float64)
        for n, (py, px) in enumerate(pts):
            o = _bilinear(off, py, px).reshape(groups, kk, 2)
            o = o.mean(axis=0) if group < 0 else o[group]
            nxt[n * kk:(n + 1) * kk] = np.array([py, px]) * stride + base + o
        pts = nxt
    return pts


def feature_to_image(points, scale, stride=FEAT_STRIDE):
    """Feature-cell (y, x) positions -> original image (y, x) pixels: p * stride / scale."""
    return np.asarray(points, dtype=np.float64) * stride / float(scale)


def _deform_conv_symbol(package, cfg):
    """Symbol with outputs: the res5 offset maps (bottom to top), then the res5 output."""
    import mxnet as mx
    from dcn.symbols.ops import get_sym_ops
    inst = _symbol_instance(package, cfg)
    if not getattr(inst, 'deformable', False) or not hasattr(inst, 'features'):
        raise DemoError('network %s has no deformable convolutions (use a deformable '
                        'network, e.g. resnet_v1_101_rfcn_dcn)' % cfg.symbol)
    data = mx.sym.Variable('data')
    _, conv5 = inst.features(data, cfg, False, get_sym_ops(cfg))
    internals = conv5.get_internals()
    names = [n for n in internals.list_outputs()
             if n.startswith('res5') and n.endswith('_offset_output')]
    if not names:
        raise DemoError('network %s has no res5 offset layers' % cfg.symbol)
    return mx.sym.Group([internals[n] for n in names] + [conv5]), names


def _top_positions(act, num, min_dist=3):
    """``num`` cells of highest activation, at least ``min_dist`` cells apart."""
    h, w = act.shape
    order = np.argsort(act.ravel())[::-1]
    chosen = []
    for idx in order:
        y, x = divmod(int(idx), w)
        if all(max(abs(y - cy), abs(x - cx)) >= min_dist for cy, cx in chosen):
            chosen.append((y, x))
            if len(chosen) == num:
                break
    return chosen


def _parse_pairs(text, n, what):
    out = []
    for item in text.split(';'):
        item = item.strip()
        if not item:
            continue
        try:
            vals = [float(v) for v in item.split(',')]
        except ValueError:
            vals = []
        if len(vals) != n:
            raise DemoError('%s: expected %d comma-separated numbers per item, got %r'
                            % (what, n, item))
        out.append(vals)
    return out


def draw_sampling_points(im, points_yx, unit_yx, radius=None):
    """Copy of ``im`` with the sampling points (red) and the activation unit (green)."""
    out = np.ascontiguousarray(im.copy())
    h, w = out.shape[:2]
    r = radius or max(1, int(round(min(h, w) / 250.0)))
    for y, x in points_yx:
        if -r <= x < w + r and -r <= y < h + r:
            cv2.circle(out, (int(round(x)), int(round(y))), r, (0, 0, 255), -1, cv2.LINE_AA)
    uy, ux = unit_yx
    cv2.circle(out, (int(round(ux)), int(round(uy))), 2 * r + 2, (0, 255, 0), -1, cv2.LINE_AA)
    return out


def parse_deform_conv_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Draw the sampling locations of the deformable convolutions in res5')
    _common_args(parser, os.path.join(repo_root(), 'demo'))
    parser.add_argument('--points', default=None,
                        help='activation units as "x,y;x,y" in image pixels (default: the '
                        '--num_points most active cells of the top layer)')
    parser.add_argument('--num_points', type=int, default=3)
    parser.add_argument('--group', type=int, default=0,
                        help='deformable group whose offsets are followed (-1: their mean)')
    return parser.parse_args(argv)


def deform_conv_main(argv=None):
    """``rfcn/deform_conv_demo.py``; returns {image path: [PNG paths]}."""
    return _run_cli(_deform_conv, argv)


def _deform_conv(argv):
    from dcn.image import imread
    args = parse_deform_conv_args(argv)
    cfg, prefix, epoch = _load_cfg(args, 'rfcn', 'deform_conv')
    images = list_images(args.images)
    out_dir = args.output or os.path.join('output', 'demo', 'deform_conv')
    sym, names = _deform_conv_symbol('rfcn', cfg)
    data, _, _ = prepare_image(imread(images[0]), cfg)
    arg, aux = load_model_params(prefix, epoch, sym, {'data': data.shape}, 'rfcn', 'deform_conv')
    run = _Runner(sym, ['data'], arg, aux, [_context(args.gpu)])
    _log.info('deformable layers (top first): %s',
              ', '.join(n[:-len('_offset_output')] for n in reversed(names)))
    written, used = {}, set()
    for path in images:
        im = imread(path)
        data, _, scale = prepare_image(im, cfg)
        out = run(data=data)
        offsets = [out[n][0] for n in reversed(names)]
        conv5 = out[sym.list_outputs()[-1]][0]
        fh, fw = conv5.shape[1:]
        if args.points:
            units = []
            for x, y in _parse_pairs(args.points, 2, '--points'):
                units.append((min(max(int(round(y * scale / FEAT_STRIDE)), 0), fh - 1),
                              min(max(int(round(x * scale / FEAT_STRIDE)), 0), fw - 1)))
        else:
            units = _top_positions(conv5.mean(axis=0), args.num_points)
        stem = _stem(path, used)
        written[path] = []
        for k, (uy, ux) in enumerate(units):
            pts = sampling_points(offsets, uy, ux, group=args.group)
            drawn = draw_sampling_points(im, feature_to_image(pts, scale),
                                         feature_to_image([uy, ux], scale))
            png = _write_png(os.path.join(out_dir, '%s_unit%d.png' % (stem, k)), drawn)
            written[path].append(png)
            _log.info('%s: unit (y %d, x %d): %d sampling points -> %s', path, uy, ux,
                      pts.shape[0], png)
    return written


# ------------------------------------------------------------------------------ deformable PSROI
def psroi_bins(roi, trans, trans_std=0.1, pooled_size=7):
    """Bins of deformable PS RoI pooling for one RoI in image pixels.

    :param roi: x1, y1, x2, y2 (inclusive pixels)
    :param trans: (2, part, part) normalised part offsets (x then y) for the class, as the
        pooling reads them: bin (i, j) uses part (i * part // pooled, j * part // pooled)
    :return: (pooled, pooled, 4) array of bin boxes x1, y1, x2, y2: bin (i, j) of size
        (width / pooled, height / pooled) at the regular position shifted by
        trans * trans_std * (RoI width, RoI height), width = x2 - x1 + 1
    """
    x1, y1, x2, y2 = [float(v) for v in roi[:4]]
    trans = np.asarray(trans, dtype=np.float64)
    part = trans.shape[-1]
    rw, rh = max(x2 - x1 + 1.0, 0.1), max(y2 - y1 + 1.0, 0.1)
    bw, bh = rw / pooled_size, rh / pooled_size
    bins = np.zeros((pooled_size, pooled_size, 4), dtype=np.float64)
    for i in range(pooled_size):
        for j in range(pooled_size):
            ph, pw = i * part // pooled_size, j * part // pooled_size
            dx = trans[0, ph, pw] * trans_std * rw
            dy = trans[1, ph, pw] * trans_std * rh
            bx, by = x1 + j * bw + dx, y1 + i * bh + dy
            bins[i, j] = (bx, by, bx + bw, by + bh)
    return bins


def _select_bins(pooled, parts):
    """Indices of ``parts`` evenly spread bins among ``pooled`` (all when equal)."""
    if parts >= pooled:
        return list(range(pooled))
    return sorted(set(int(round(v)) for v in np.linspace(0, pooled - 1, parts + 2)[1:-1]))


def draw_psroi(im, roi, bins, keep, label=None):
    """Copy of ``im`` with the RoI (yellow) and the selected shifted bins (red)."""
    out = np.ascontiguousarray(im.copy())
    x1, y1, x2, y2 = [int(round(v)) for v in roi[:4]]
    cv2.rectangle(out, (x1, y1), (x2, y2), (0, 255, 255), 2)
    for i in keep:
        for j in keep:
            bx1, by1, bx2, by2 = bins[i, j]
            cv2.rectangle(out, (int(round(bx1)), int(round(by1))),
                          (int(round(bx2)), int(round(by2))), (0, 0, 255), 1)
            cx, cy = 0.5 * (bx1 + bx2), 0.5 * (by1 + by2)
            cv2.circle(out, (int(round(cx)), int(round(cy))), 2, (0, 0, 255), -1)
    if label:
        cv2.putText(out, label, (x1, max(y1 - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 255, 255), 1, cv2.LINE_AA)
    return out


def parse_deform_psroi_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Draw the part positions of deformable position-sensitive RoI pooling')
    _common_args(parser, os.path.join(repo_root(), 'demo'))
    parser.add_argument('--rois', default=None,
                        help='RoIs as "x1,y1,x2,y2;..." in image pixels, used for every image '
                        '(default: the top detections when the checkpoint has an RPN, else a '
                        'central box)')
    parser.add_argument('--num_rois', type=int, default=3)
    parser.add_argument('--parts', type=int, default=3,
                        help='bins drawn per side: 7 draws all, 3 a spread subset as in the '
                        'paper figure (default 3)')
    parser.add_argument('--class_index', type=int, default=None,
                        help='class whose part offsets are drawn (default: the RoI\'s most '
                        'probable foreground class)')
    return parser.parse_args(argv)


def deform_psroi_main(argv=None):
    """``rfcn/deform_psroi_demo.py``; returns {image path: [PNG paths]}."""
    return _run_cli(_deform_psroi, argv)


def _psroi_symbol(cfg):
    import mxnet as mx
    cfg = copy.deepcopy(cfg)
    cfg.TEST.HAS_RPN = False
    cfg.TEST.BATCH_IMAGES = 1
    inst = _symbol_instance('rfcn', cfg)
    if not getattr(inst, 'deformable', False):
        raise DemoError('network %s has no deformable PS RoI pooling (use a deformable '
                        'R-FCN network, e.g. resnet_v1_101_rfcn_dcn)' % cfg.symbol)
    sym = inst.get_symbol(cfg, is_train=False)
    outputs = sym.list_outputs()
    if 'rfcn_cls_offset_output' not in outputs:
        internals = sym.get_internals()
        sym = mx.sym.Group([internals['rfcn_cls_offset_output']] + [sym[i] for i in
                                                                    range(len(outputs))])
    return sym


def _has_rpn(prefix, epoch):
    import mxnet as mx
    from dcn.checkpoint import param_path
    try:
        return 'arg:rpn_cls_score_weight' in mx.nd.load(param_path(prefix, epoch))
    except Exception:
        return False


def _deform_psroi(argv):
    args = parse_deform_psroi_args(argv)
    cfg, prefix, epoch = _load_cfg(args, 'rfcn', 'deform_psroi')
    from dcn.image import imread
    from dcn.tester import nms_for_config
    names = class_names(cfg)
    images = list_images(args.images)
    out_dir = args.output or os.path.join('output', 'demo', 'deform_psroi')
    ctx = _context(args.gpu)
    sym = _psroi_symbol(cfg)
    first = imread(images[0])
    data, _, _ = prepare_image(first, cfg)
    arg, aux = load_model_params(prefix, epoch, sym, {'data': data.shape, 'rois': (1, 1, 5)},
                                 'rfcn', 'deform_psroi')
    run = _Runner(sym, ['data', 'rois'], arg, aux, [ctx])
    given = _parse_pairs(args.rois, 4, '--rois') if args.rois else None
    detector = None
    if given is None and cfg.symbol != 'deform_psroi_demo' and _has_rpn(prefix, epoch):
        detector = _detector('rfcn', cfg, prefix, epoch, 'deform_psroi', ctx, first)
        nms = nms_for_config(cfg)
    written, used = {}, set()
    for path in images:
        im = imread(path)
        h, w = im.shape[:2]
        if given is not None:
            rois = np.array(given, dtype=np.float64)
        else:
            rois = np.zeros((0, 4))
            if detector is not None:
                dets = np.vstack(detect(detector, im, cfg, nms, 0.0)[1:])
                dets = dets[np.argsort(-dets[:, 4])][:args.num_rois]
                rois = dets[:, :4].astype(np.float64)
            if rois.shape[0] == 0:
                rois = np.array([[w * 0.25, h * 0.25, w * 0.75 - 1, h * 0.75 - 1]])
        rois[:, 0::2] = np.clip(rois[:, 0::2], 0, w - 1)
        rois[:, 1::2] = np.clip(rois[:, 1::2], 0, h - 1)
        data, _, scale = prepare_image(im, cfg)
        net_rois = np.zeros((1, rois.shape[0], 5), dtype=np.float32)
        net_rois[0, :, 1:] = rois * scale
        out = run(data=data, rois=net_rois)
        offset = out['rfcn_cls_offset_output']
        cls_prob = out['cls_prob_reshape_output'][0]
        stem = _stem(path, used)
        written[path] = []
        for r in range(rois.shape[0]):
            c = args.class_index if args.class_index is not None else \
                1 + int(np.argmax(cls_prob[r, 1:]))
            if not 0 <= c < offset.shape[1] // 2:
                raise DemoError('--class_index %d out of range (%d classes)'
                                % (c, offset.shape[1] // 2))
            bins = psroi_bins(rois[r], offset[r, 2 * c:2 * c + 2])
            keep = _select_bins(bins.shape[0], args.parts)
            label = '%s %.2f' % (names[c] if c < len(names) else c, cls_prob[r, c])
            png = _write_png(os.path.join(out_dir, '%s_roi%d.png' % (stem, r)),
                             draw_psroi(im, rois[r], bins, keep, label))
            written[path].append(png)
            _log.info('%s: RoI %s (%s) -> %s', path, np.round(rois[r], 1).tolist(), label, png)
    return written
