"""Demos: detection on images, and the two visualisations of the deformable modules.

* :func:`detect_main` (``rfcn/demo.py``, ``faster_rcnn/demo.py``): runs a detection model on
  image files, writes one PNG per image with boxes, class names and scores, and
  ``detections.json`` (image path -> list of ``{"class", "score", "bbox"}``, boxes as
  x1, y1, x2, y2 in original image pixels).
* :func:`deform_conv_main` (``rfcn/deform_conv_demo.py``): sampling locations of the
  deformable convolutions (Dai et al. 2017, Fig. 5). For three units of the top deformable
  layer (on an object, on the background, on a second object) the 3x3 sampling points, each
  moved by its learned offset, are followed down the chain of res5 3x3 layers to the input of
  the bottom deformable layer (res5c -> res5b -> res5a for ResNet-101: 9^3 = 729 points; the
  basic blocks of ResNet-v1-18 chain res5b_branch2b -> res5b_branch2a -> res5a_branch2b) and
  drawn on the image.
* :func:`deform_psroi_main` (``rfcn/deform_psroi_demo.py``): the deformable PS RoI pooling
  bins (Fig. 6): for detected (or given) RoIs, 3x3 of the 7x7 bins (or all) where the class
  pooling samples them, shifted by the learned part offsets of the RoI's class.

By default the released models are used (``model/<name>-0000.params``); ``--cfg``,
``--params`` and ``--epoch`` select any other configuration and checkpoint, e.g. a network
trained on the Shapes data set.
"""
import argparse
import collections
import copy
import importlib
import json
import logging
import os
import sys

import cv2
import numpy as np

__all__ = ['COCO_CLASSES', 'DemoError', 'PSRoISampling', 'class_names', 'detect_main',
           'deform_conv_main', 'deform_psroi_main', 'sampling_points', 'conv_chain',
           'choose_units', 'feature_to_image', 'image_to_feature', 'psroi_sampling',
           'psroi_bins', 'class_part_offsets', 'select_bins', 'prepare_image',
           'load_model_params', 'list_images']

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
    from dcn.config import update_config
    from dcn.tools.main import load_family_config
    cfg_file, symbol, prefix = _RELEASED[(package, variant)]
    root = repo_root()
    if args.cfg:
        cfg = load_family_config(package, args.cfg)
        if not args.params:
            from dcn.train import output_dir
            prefix = os.path.join(output_dir(cfg, cfg.config_name, cfg.dataset.image_set),
                                  cfg.TRAIN.model_prefix or 'e2e')
            epoch = cfg.TEST.test_epoch
        else:
            prefix, epoch = args.params, 0
    else:
        cfg = load_family_config(package, os.path.join(root, 'experiments', cfg_file))
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


def _Runner(sym, data_names, arg_params, aux_params, ctx):
    """The test network ``sym`` bound on its first input (dcn.engine.predictor.Predictor:
    ``run(**inputs)`` -> outputs by name)."""
    from dcn.engine.predictor import Predictor
    return Predictor(sym, data_names, None, ctx, arg_params=arg_params, aux_params=aux_params)


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
    from dcn.tools.cli import run
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s')
    return run(fn, argv)


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
    from dcn.engine.predictor import decode_detections, postprocess_detections
    data, im_info, scale = prepare_image(im, cfg)
    scores, boxes = decode_detections(run(data=data, im_info=im_info), im_info, [scale])
    return postprocess_detections(scores[0], boxes[0], cfg.CLASS_AGNOSTIC, nms, thresh,
                                  int(cfg.TEST.get('max_per_image', 100)), inclusive=True,
                                  drop_empty=True, image_shape=im.shape)


def _detector(package, cfg, prefix, epoch, variant, ctx, first_image):
    """A callable running the test network of ``cfg`` loaded from ``prefix``-``epoch``."""
    import dcn.layers  # noqa: F401  (registers the proposal CustomOp)
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
    from dcn.engine.predictor import nms_for_config
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


# ------------------------------------------------------------------------------ coordinates
def feature_to_image(points, scale, stride=FEAT_STRIDE):
    """Feature-map coordinates -> pixel-centre coordinates of the original image (any array
    of x and/or y values; the rule is the same on both axes).

    The convention of the detector's RoI pooling (``spatial_scale`` = 1 / ``stride``, the
    -0.5 of DeformablePSROIPooling): a box edge at pixel-centre coordinate u - 0.5 of the
    network input (the left edge of pixel u) lies at feature coordinate u / stride - 0.5, so
    feature cell f covers input pixels [f * stride, (f + 1) * stride) and its centre is input
    pixel (f + 0.5) * stride - 0.5. The input is the image resized by ``scale`` (cv2.resize:
    input pixel-centre coordinate v is original (v + 0.5) / scale - 0.5).
    """
    return (np.asarray(points, dtype=np.float64) + 0.5) * stride / float(scale) - 0.5


def image_to_feature(points, scale, stride=FEAT_STRIDE):
    """Inverse of :func:`feature_to_image`."""
    return (np.asarray(points, dtype=np.float64) + 0.5) * float(scale) / stride - 0.5


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


def _has_rpn(prefix, epoch):
    import mxnet as mx
    from dcn.checkpoint import param_path
    try:
        return 'arg:rpn_cls_score_weight' in mx.nd.load(param_path(prefix, epoch))
    except Exception:
        return False


def _detections(detector, im, cfg, nms, num, same_object=0.7):
    """The ``num`` best detections of ``im``, one per object: (k, 5) x1, y1, x2, y2, score,
    best first; a box overlapping a better one (of any class) by IoU >= ``same_object`` is
    the same object detected as another class, and dropped."""
    from dcn.bbox import bbox_overlaps
    dets = np.vstack(detect(detector, im, cfg, nms, 0.0)[1:])
    dets = dets[np.argsort(-dets[:, 4], kind='stable')]
    keep = []
    for i in range(len(dets)):
        if len(keep) == num:
            break
        if keep and bbox_overlaps(dets[i:i + 1, :4].astype(np.float64),
                                  dets[keep, :4].astype(np.float64)).max() >= same_object:
            continue
        keep.append(i)
    return dets[keep]


# ------------------------------------------------------------------------------ deformable conv
def _bilinear(fmap, ys, xs):
    """Bilinear samples (M, C) of (C, H, W) ``fmap`` at positions (ys, xs), clamped to the map
    (the DeformableConvolution rule inside the map: the last row / column is replicated)."""
    _, h, w = fmap.shape
    ys = np.clip(np.asarray(ys, dtype=np.float64), 0.0, h - 1.0)
    xs = np.clip(np.asarray(xs, dtype=np.float64), 0.0, w - 1.0)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    ly, lx = (ys - y0)[:, None], (xs - x0)[:, None]
    return ((1 - ly) * (1 - lx) * fmap[:, y0, x0].T + (1 - ly) * lx * fmap[:, y0, x1].T
            + ly * (1 - lx) * fmap[:, y1, x0].T + ly * lx * fmap[:, y1, x1].T)


def sampling_points(offsets, y, x, kernel=3, dilation=2, pad=2, group=0, shape=None):
    """Sampling positions of a chain of stride-1 convolutions, followed from one activation
    unit of the top layer down to the input of the bottom layer (Dai et al. 2017, Fig. 5).

    :param offsets: one entry per layer, top layer first: the (2 * kernel^2 * G, H, W) (or
        (1, ...)) offset map of a deformable layer, in the DeformableConvolution layout (for
        deformable group g and kernel tap k = i * kernel + j, channel 2 * (g * kernel^2 + k)
        holds the vertical and the next one the horizontal offset), or None for a regular
        convolution of the chain
    :param y, x: the unit on the top layer's output (feature cells)
    :param group: deformable group whose offsets are followed (-1: their mean)
    :param shape: (H, W) of the maps (default: that of the offset maps)
    :return: (kernel^(2L), 2) (y, x) feature positions on the bottom layer's input, ordered by
        the top layer's tap, then the next layer's, ... (row-major taps). Output position p
        of a layer samples its input at p - pad + (i, j) * dilation + offset(p). A sample
        outside [0, H) x [0, W) reads zero (DCNv1): its row, and every row below it, is NaN.
        A sample at a fractional position reads the layer below bilinearly; that layer's
        output is linear in its sampling positions, so the positions below are those of the
        interpolated offsets, at the sample clamped to [0, H-1] x [0, W-1] as the operator
        clamps it. (The original drawing rounds to the nearest cell instead.)
    """
    kk = kernel * kernel
    maps = []
    for off in offsets:
        if off is not None:
            off = np.asarray(off, dtype=np.float64)
            off = off[0] if off.ndim == 4 else off
            if off.ndim != 3 or off.shape[0] < 2 * kk or off.shape[0] % (2 * kk):
                raise ValueError('offset map of shape %s: expected (2 x %d x groups, H, W)'
                                 % (off.shape, kk))
            groups = off.shape[0] // (2 * kk)
            if not -1 <= group < groups:
                raise ValueError('group %d out of range (%d deformable groups)'
                                 % (group, groups))
            if shape is None:
                shape = off.shape[1:]
        maps.append(off)
    if shape is None:
        raise ValueError('sampling_points: shape is required when no layer has offsets')
    h, w = int(shape[0]), int(shape[1])
    for off in maps:
        if off is not None and off.shape[1:] != (h, w):
            raise ValueError('offset maps of different sizes: %s and %s'
                             % (off.shape[1:], (h, w)))
    ii, jj = np.divmod(np.arange(kk), kernel)
    taps = np.stack([ii, jj], axis=1).astype(np.float64) * dilation - pad
    pts = np.array([[float(y), float(x)]])
    for off in maps:
        dead = np.isnan(pts).any(axis=1)
        at = np.where(dead[:, None], 0.0, pts)
        at = np.stack([np.clip(at[:, 0], 0, h - 1), np.clip(at[:, 1], 0, w - 1)], axis=1)
        if off is None:
            o = np.zeros((len(at), kk, 2))
        else:
            o = _bilinear(off, at[:, 0], at[:, 1]).reshape(len(at), -1, kk, 2)
            o = o.mean(axis=1) if group < 0 else o[:, group]
        nxt = at[:, None, :] + taps[None] + o
        outside = ~((nxt[..., 0] >= 0) & (nxt[..., 0] < h) & (nxt[..., 1] >= 0)
                    & (nxt[..., 1] < w))
        nxt[outside | dead[:, None]] = np.nan
        pts = nxt.reshape(-1, 2)
    return pts


_DEFORM_CONV_OPS = ('dcn_DeformableConvolution', '_contrib_DeformableConvolution')


def _attr(attrs, key, default):
    text = attrs.get(key)
    if text is None:
        return default
    vals = tuple(int(v) for v in text.strip('()[] ').split(',') if v.strip())
    return vals if len(vals) > 1 else vals[0]


def conv_chain(sym, prefix='res5'):
    """The spatial convolutions from the top deformable layer named ``prefix``* down to the
    bottom one through the longest chain of such layers (a bottleneck: the deformable layers
    only, 1x1 convolutions between them; a basic block: also the regular 3x3 layers), top
    first: dicts with ``name``, ``offset`` (the offset layer's output name, or None for a
    regular convolution), ``kernel``, ``dilate``, ``pad``, ``stride``, ``groups``."""
    graph = json.loads(sym.tojson())
    nodes = graph['nodes']
    deform = [i for i, n in enumerate(nodes)
              if n['op'] in _DEFORM_CONV_OPS and n['name'].startswith(prefix)]
    if not deform:
        return []
    top, bottom = deform[-1], deform[0]
    best = {}

    def walk(i):
        """(deformable count, spatial count, path) of the best chain from node i to bottom."""
        if i in best:
            return best[i]
        n = nodes[i]
        result = None
        if i == bottom:
            result = (1, 1, [i])
        elif n['op'] != 'null':
            ins = [n['inputs'][0]] if n['op'] in _DEFORM_CONV_OPS + ('Convolution',) \
                else n['inputs']
            for j in ins:
                sub = walk(j[0])
                if sub is None:
                    continue
                k = _attr(n.get('attrs', {}), 'kernel', 1)
                spatial = n['op'] in _DEFORM_CONV_OPS or (
                    n['op'] == 'Convolution' and max(np.atleast_1d(k)) > 1)
                cand = (sub[0] + (n['op'] in _DEFORM_CONV_OPS), sub[1] + spatial,
                        ([i] if spatial else []) + sub[2])
                if result is None or cand[:2] > result[:2]:
                    result = cand
        best[i] = result
        return result

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(nodes)))
    path = walk(top)[2]
    chain = []
    for i in path:
        n = nodes[i]
        attrs = n.get('attrs', {})
        layer = {'name': n['name'], 'offset': None,
                 'kernel': _attr(attrs, 'kernel', (1, 1)), 'dilate': _attr(attrs, 'dilate', (1, 1)),
                 'pad': _attr(attrs, 'pad', (0, 0)), 'stride': _attr(attrs, 'stride', (1, 1)),
                 'groups': _attr(attrs, 'num_deformable_group', 1)}
        if n['op'] in _DEFORM_CONV_OPS:
            src = nodes[n['inputs'][1][0]]
            layer['offset'] = src['name'] + '_output'
        chain.append(layer)
    return chain


def _deform_conv_symbol(package, cfg):
    """(symbol, chain): the symbol outputs the offset maps of the chain's deformable layers
    (in chain order, top first), then the res5 output."""
    import mxnet as mx
    from dcn.modeling import sym_ops
    inst = _symbol_instance(package, cfg)
    if not getattr(inst, 'deformable', False) or not hasattr(inst, 'build_backbone'):
        raise DemoError('network %s has no deformable convolutions (use a deformable '
                        'network, e.g. resnet_v1_101_rfcn_dcn)' % cfg.symbol)
    data = mx.sym.Variable('data')
    conv5 = inst.build_backbone(data, cfg, False, sym_ops(cfg))[0]['res5']
    chain = conv_chain(conv5)
    if not chain:
        raise DemoError('network %s has no deformable res5 layers' % cfg.symbol)
    first = chain[0]
    for layer in chain:
        k, d, p, s = (np.atleast_1d(layer[key]) for key in ('kernel', 'dilate', 'pad', 'stride'))
        if (len(set(k)) != 1 or len(set(d)) != 1 or len(set(p)) != 1 or set(s) != {1}
                or (layer['kernel'], layer['dilate'], layer['pad'])
                != (first['kernel'], first['dilate'], first['pad'])):
            raise DemoError('the res5 layers %s and %s differ in kernel, dilation, padding or '
                            'stride (this drawing needs equal square stride-1 layers)'
                            % (first['name'], layer['name']))
    internals = conv5.get_internals()
    outs = [internals[layer['offset']] for layer in chain if layer['offset']]
    return mx.sym.Group(outs + [conv5]), chain


def choose_units(act, valid_hw, boxes=None, min_dist=3, margin=0):
    """Three units of the top layer as in the paper's figure: [('object', (y, x)),
    ('background', (y, x)), ('object', (y, x))].

    :param act: (H, W) activation (mean over channels) of the top layer
    :param valid_hw: (h, w): the cells covering the image (the rest is padding)
    :param boxes: (k, 4) object boxes x1, y1, x2, y2 in feature coordinates, best first
        (detections), or None
    Objects: the centre cells of the best two boxes whose centres are at least ``min_dist``
    cells apart (without boxes: the most active cells at least ``min_dist`` apart).
    Background: among the cells at least ``margin`` cells inside the image (where the
    regular sampling grid stays on the map; fewer when the map is small), the cell farthest
    from every box (without boxes: from the two objects), the least active among equals.
    """
    h, w = min(int(valid_hw[0]), act.shape[0]), min(int(valid_hw[1]), act.shape[1])
    act = act[:h, :w]
    ys, xs = np.mgrid[0:h, 0:w]

    def far_enough(cell, chosen):
        return all(max(abs(cell[0] - c[0]), abs(cell[1] - c[1])) >= min_dist for c in chosen)

    objects = []
    if boxes is not None:
        for x1, y1, x2, y2 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
            cell = (int(np.clip(np.round(0.5 * (y1 + y2)), 0, h - 1)),
                    int(np.clip(np.round(0.5 * (x1 + x2)), 0, w - 1)))
            if far_enough(cell, objects):
                objects.append(cell)
            if len(objects) == 2:
                break
    for idx in np.argsort(-act.ravel(), kind='stable'):
        if len(objects) == 2:
            break
        cell = divmod(int(idx), w)
        if far_enough(cell, objects):
            objects.append(cell)
    if boxes is not None and len(boxes):
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        dx = np.maximum(np.maximum(b[:, 0][:, None, None] - xs, xs - b[:, 2][:, None, None]), 0)
        dy = np.maximum(np.maximum(b[:, 1][:, None, None] - ys, ys - b[:, 3][:, None, None]), 0)
        dist = np.hypot(dx, dy).min(axis=0)
    else:
        dist = np.min([np.hypot(ys - cy, xs - cx) for cy, cx in objects], axis=0)
    my, mx_ = min(int(margin), (h - 1) // 2), min(int(margin), (w - 1) // 2)
    inner = (ys >= my) & (ys < h - my) & (xs >= mx_) & (xs < w - mx_)
    dist = np.where(inner, dist, -1.0)
    order = np.lexsort((act.ravel(), -dist.ravel()))
    background = divmod(int(order[0]), w)
    units = [('object', objects[0]), ('background', background)]
    if len(objects) > 1:
        units.append(('object', objects[1]))
    return units


def parse_deform_conv_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Draw the sampling locations of the deformable convolutions in res5')
    _common_args(parser, os.path.join(repo_root(), 'demo'))
    parser.add_argument('--points', default=None,
                        help='activation units as "x,y;x,y" in image pixels (default: the '
                        'centres of the two best detections and a background unit when the '
                        'checkpoint has an RPN, else the two most active units and the one '
                        'farthest from them)')
    parser.add_argument('--group', type=int, default=0,
                        help='deformable group whose offsets are followed (-1: their mean)')
    return parser.parse_args(argv)


def deform_conv_main(argv=None):
    """``rfcn/deform_conv_demo.py``; returns {image path: [PNG paths]}."""
    return _run_cli(_deform_conv, argv)


def _deform_conv(argv):
    from dcn.image import imread
    from dcn.vis import draw_sampling_points
    args = parse_deform_conv_args(argv)
    cfg, prefix, epoch = _load_cfg(args, 'rfcn', 'deform_conv')
    images = list_images(args.images)
    out_dir = args.output or os.path.join('output', 'demo', 'deform_conv')
    ctx = _context(args.gpu)
    sym, chain = _deform_conv_symbol('rfcn', cfg)
    first = imread(images[0])
    data, _, _ = prepare_image(first, cfg)
    arg, aux = load_model_params(prefix, epoch, sym, {'data': data.shape}, 'rfcn', 'deform_conv')
    run = _Runner(sym, ['data'], arg, aux, [ctx])
    detector = None
    if not args.points and cfg.symbol != 'deform_conv_demo' and _has_rpn(prefix, epoch):
        from dcn.engine.predictor import nms_for_config
        detector = _detector('rfcn', cfg, prefix, epoch, 'deform_conv', ctx, first)
        nms = nms_for_config(cfg)
    groups = [layer['groups'] for layer in chain if layer['offset']]
    if not -1 <= args.group < min(groups):
        raise DemoError('--group %d out of range (%d deformable groups)'
                        % (args.group, min(groups)))
    _log.info('sampling chain (top first): %s', ', '.join(
        layer['name'] + ('' if layer['offset'] else ' (regular)') for layer in chain))
    kernel, dilate, pad = (int(np.atleast_1d(chain[0][k])[0]) for k in ('kernel', 'dilate', 'pad'))
    offset_names = [layer['offset'] for layer in chain if layer['offset']]
    written, used = {}, set()
    for path in images:
        im = imread(path)
        data, _, scale = prepare_image(im, cfg)
        out = run(data=data)
        named = dict(zip(offset_names, [out[n][0] for n in offset_names]))
        offsets = [named[layer['offset']] if layer['offset'] else None for layer in chain]
        conv5 = out[sym.list_outputs()[-1]][0]
        fh, fw = conv5.shape[1:]
        # cells whose centre lies on the image (the rest covers the stride padding)
        valid = [int(np.floor(image_to_feature(n - 0.5, scale))) + 1 for n in im.shape[:2]]
        if args.points:
            units = []
            for x, y in _parse_pairs(args.points, 2, '--points'):
                fy, fx = image_to_feature([y, x], scale)
                units.append(('unit', (int(np.clip(np.round(fy), 0, fh - 1)),
                                       int(np.clip(np.round(fx), 0, fw - 1)))))
        else:
            boxes = None
            if detector is not None:
                dets = _detections(detector, im, cfg, nms, 10)
                boxes = image_to_feature(dets[:, :4], scale)
            units = choose_units(conv5.mean(axis=0), valid, boxes,
                                 margin=len(chain) * pad)
        stem = _stem(path, used)
        written[path] = []
        for k, (kind, (uy, ux)) in enumerate(units):
            pts = sampling_points(offsets, uy, ux, kernel, dilate, pad, group=args.group,
                                  shape=(fh, fw))
            shown = int(np.sum(~np.isnan(pts).any(axis=1)))
            drawn = draw_sampling_points(im, feature_to_image(pts, scale),
                                         feature_to_image([uy, ux], scale),
                                         label='%s: %d points' % (kind, shown))
            name = '%s_unit%d.png' % (stem, k) if kind == 'unit' else \
                '%s_unit%d_%s.png' % (stem, k, kind)
            png = _write_png(os.path.join(out_dir, name), drawn)
            written[path].append(png)
            _log.info('%s: %s unit (y %d, x %d): %d sampling points (%d on the map) -> %s',
                      path, kind, uy, ux, pts.shape[0], shown, png)
    return written


# ------------------------------------------------------------------------------ deformable PSROI
PSRoISampling = collections.namedtuple('PSRoISampling', 'bins samples valid')


def psroi_sampling(roi, trans=None, spatial_scale=1.0 / FEAT_STRIDE, pooled_size=7,
                   sample_per_part=4, trans_std=0.1, feat_shape=None):
    """Where DeformablePSROIPooling samples one RoI, in feature-map coordinates.

    :param roi: x1, y1, x2, y2 in network-input pixels (the operator's ``rois[r, 1:5]``)
    :param trans: (2, part, part) normalised part offsets of the class, x then y (the
        operator's ``trans[r, 2 * class : 2 * class + 2]``); None: ``no_trans``
    :param feat_shape: (H, W) of the pooled map, for ``valid``
    :return: PSRoISampling(bins, samples, valid): ``bins`` (P, P, 4) x1, y1, x2, y2 of bin
        (row i, column j): its start and start + bin size; ``samples`` (P, P, S*S, 2) x, y
        of its S x S samples (row-major) at start + (k / S) * bin size, k = 0..S-1;
        ``valid`` (P, P, S*S): the samples the operator reads (not more than half a cell
        outside the map; clamped into it), all True without ``feat_shape``.
        As the operator: the RoI corners are rounded, the end gets + 1, both are scaled by
        ``spatial_scale`` and shifted by -0.5; width and height are at least 0.1; bin (i, j)
        moves by trans[:, part(i), part(j)] * trans_std * (RoI width, height), part(p) =
        floor(p / P * part).
    """
    x1, y1, x2, y2 = [float(v) for v in np.asarray(roi, dtype=np.float64).ravel()[:4]]
    p, s = int(pooled_size), int(sample_per_part)
    if p < 1 or s < 1:
        raise ValueError('pooled_size and sample_per_part must be positive')
    start_w = np.round(x1) * spatial_scale - 0.5
    start_h = np.round(y1) * spatial_scale - 0.5
    width = max((np.round(x2) + 1.0) * spatial_scale - 0.5 - start_w, 0.1)
    height = max((np.round(y2) + 1.0) * spatial_scale - 0.5 - start_h, 0.1)
    bw, bh = width / p, height / p
    idx = np.arange(p)
    if trans is None:
        tx = ty = np.zeros((p, p))
    else:
        trans = np.asarray(trans, dtype=np.float64)
        if trans.ndim != 3 or trans.shape[0] != 2 or trans.shape[1] != trans.shape[2]:
            raise ValueError('trans must be (2, part, part), got %s' % (trans.shape,))
        part = np.floor(idx / float(p) * trans.shape[1]).astype(int)
        tx = trans[0][np.ix_(part, part)] * trans_std
        ty = trans[1][np.ix_(part, part)] * trans_std
    ws = idx[None, :] * bw + start_w + tx * width   # (P, P): row i, column j
    hs = idx[:, None] * bh + start_h + ty * height
    bins = np.stack([ws, hs, ws + bw, hs + bh], axis=2)
    sub = np.arange(s, dtype=np.float64)
    sy, sx = np.meshgrid(sub * (bh / s), sub * (bw / s), indexing='ij')
    samples = np.stack([ws[:, :, None] + sx.ravel(), hs[:, :, None] + sy.ravel()], axis=3)
    if feat_shape is None:
        valid = np.ones(samples.shape[:3], dtype=bool)
    else:
        fh, fw = feat_shape
        valid = ((samples[..., 0] >= -0.5) & (samples[..., 0] <= fw - 0.5)
                 & (samples[..., 1] >= -0.5) & (samples[..., 1] <= fh - 0.5))
    return PSRoISampling(bins, samples, valid)


def psroi_bins(roi, trans=None, scale=1.0, stride=FEAT_STRIDE, **kwargs):
    """:func:`psroi_sampling` of a RoI of the original image, drawn in the original image.

    ``roi``: x1, y1, x2, y2 in original pixels; the network receives ``roi * scale`` (float32),
    ``scale`` being the test-time resize factor. Returns ``bins`` and ``samples`` in
    pixel-centre coordinates of the original image (see :func:`feature_to_image`); the
    remaining keywords are those of :func:`psroi_sampling`."""
    net = (np.asarray(roi, dtype=np.float64).ravel()[:4] * scale).astype(np.float32)
    geo = psroi_sampling(net, trans, spatial_scale=1.0 / stride, **kwargs)
    return PSRoISampling(feature_to_image(geo.bins, scale, stride),
                         feature_to_image(geo.samples, scale, stride), geo.valid)


def class_part_offsets(trans, roi_index, cls):
    """The (2, part, part) x, y part offsets that the class pooling applies to output class
    ``cls`` of RoI ``roi_index``: channels 2 * cls (x) and 2 * cls + 1 (y) of ``trans``
    (num_rois, 2 * classes, part, part); a (num_rois, 2, part, part) ``trans`` is shared by
    every class (class-agnostic offsets, as the box branch's)."""
    trans = np.asarray(trans)
    if trans.ndim != 4 or trans.shape[1] % 2 or trans.shape[2] != trans.shape[3]:
        raise ValueError('trans must be (num_rois, 2 * classes, part, part), got %s'
                         % (trans.shape,))
    k = 0 if trans.shape[1] == 2 else int(cls)
    if not 0 <= k < trans.shape[1] // 2:
        raise ValueError('class %d out of range (%d classes of offsets)'
                         % (cls, trans.shape[1] // 2))
    return trans[roi_index, 2 * k:2 * k + 2]


def select_bins(pooled, parts):
    """``parts`` bin indices among ``pooled`` that stand for a ``parts`` x ``parts`` pooling:
    the bins nearest the centres of ``parts`` equal cells (7 -> 3: 1, 3, 5); all when
    ``parts`` >= ``pooled``."""
    if parts >= pooled:
        return list(range(pooled))
    return [int(np.floor((m + 0.5) * pooled / float(parts))) for m in range(parts)]


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


def _pooling_args(sym):
    """trans_std, pooled_size, sample_per_part and spatial_scale of the class pooling."""
    for n in json.loads(sym.tojson())['nodes']:
        if n['op'].endswith('DeformablePSROIPooling') and \
                n['name'].startswith('psroipooled_cls_rois'):
            a = n.get('attrs', {})
            return dict(trans_std=float(a.get('trans_std', 0.0)),
                        pooled_size=int(a['pooled_size']),
                        sample_per_part=int(a.get('sample_per_part', 1)),
                        stride=1.0 / float(a['spatial_scale']))
    raise DemoError('the network has no psroipooled_cls_rois layer')


def _deform_psroi(argv):
    args = parse_deform_psroi_args(argv)
    cfg, prefix, epoch = _load_cfg(args, 'rfcn', 'deform_psroi')
    from dcn.image import imread
    from dcn.engine.predictor import nms_for_config
    from dcn.vis import draw_psroi_bins
    names = class_names(cfg)
    images = list_images(args.images)
    out_dir = args.output or os.path.join('output', 'demo', 'deform_psroi')
    ctx = _context(args.gpu)
    sym = _psroi_symbol(cfg)
    pool = _pooling_args(sym)
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
                rois = _detections(detector, im, cfg, nms, args.num_rois)[:, :4]
            if rois.shape[0] == 0:
                rois = np.array([[w * 0.25, h * 0.25, w * 0.75 - 1, h * 0.75 - 1]])
        rois = rois.astype(np.float64)
        rois[:, 0::2] = np.clip(rois[:, 0::2], 0, w - 1)
        rois[:, 1::2] = np.clip(rois[:, 1::2], 0, h - 1)
        data, _, scale = prepare_image(im, cfg)
        net_rois = np.zeros((1, rois.shape[0], 5), dtype=np.float32)
        net_rois[0, :, 1:] = rois * scale
        out = run(data=data, rois=net_rois)
        offset = out['rfcn_cls_offset_output']          # (R, 2 * classes, part, part)
        cls_prob = out['cls_prob_reshape_output'][0]    # (R, classes)
        if offset.shape[1] != 2 * cls_prob.shape[1]:
            raise DemoError('rfcn_cls_offset has %d channels, expected 2 x %d classes'
                            % (offset.shape[1], cls_prob.shape[1]))
        stem = _stem(path, used)
        written[path] = []
        for r in range(rois.shape[0]):
            c = args.class_index if args.class_index is not None else \
                1 + int(np.argmax(cls_prob[r, 1:]))
            if not 0 <= c < cls_prob.shape[1]:
                raise DemoError('--class_index %d out of range (%d classes)'
                                % (c, cls_prob.shape[1]))
            # the class's x and y part offsets, on the RoI the network pooled
            geo = psroi_bins(rois[r], class_part_offsets(offset, r, c), scale, **pool)
            keep = select_bins(geo.bins.shape[0], args.parts)
            label = '%s %.2f' % (names[c] if c < len(names) else c, cls_prob[r, c])
            png = _write_png(os.path.join(out_dir, '%s_roi%d.png' % (stem, r)),
                             draw_psroi_bins(im, rois[r], geo.bins, keep, label))
            written[path].append(png)
            _log.info('%s: RoI %s (%s) -> %s', path, np.round(rois[r], 1).tolist(), label, png)
    return written
