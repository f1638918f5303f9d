"""Segmentation demo (``deeplab/demo.py``): colour-coded class maps of images, and the
sampling locations of the deformable res5 convolutions.

For every image: ``<stem>_seg.png``, a palette PNG of the predicted class of every pixel at
the image's size (the dataset's colours: Cityscapes' for Cityscapes, VOC's otherwise), and
``<stem>_overlay.png``, the colours blended over the image. With ``--offsets`` and a
deformable network, also ``<stem>_unit<k>.png``: for three res5 units the 3x3 sampling
points followed down the chain of deformable res5 layers (as
:func:`dcn.tools.demo.deform_conv_main` draws them, Fig. 5 of the paper).

By default the released ``model/deeplab_dcn_cityscapes-0000.params`` (or
``deeplab_cityscapes`` with ``--deeplab_only``) with the original's Cityscapes demo config;
``--cfg``, ``--params`` and ``--epoch`` select any other, e.g. a Shapes checkpoint.
"""
import argparse
import logging
import os

import cv2
import numpy as np

from dcn.tools.demo import (DemoError, _context, _run_cli, _stem, _symbol_instance,
                            _write_png, choose_units, feature_to_image, image_to_feature,
                            list_images, load_model_params, repo_root, sampling_points)

__all__ = ['segment_main', 'parse_segment_args', 'seg_palette', 'colourise', 'segment_image']

_log = logging.getLogger('dcn.demo')

_RELEASED = {'dcn': ('resnet_v1_101_deeplab_dcn', 'model/deeplab_dcn_cityscapes'),
             'plain': ('resnet_v1_101_deeplab', 'model/deeplab_cityscapes')}
_RELEASED_CFG = 'experiments/deeplab/cfgs/deeplab_cityscapes_demo.yaml'


def seg_palette(cfg):
    """Flat 768-entry RGB palette of the classes of ``cfg.dataset``."""
    from dcn.dataset.segmentation import voc_palette
    if str(cfg.dataset.dataset).lower() in ('cityscape', 'cityscapes'):
        from dcn.dataset.cityscapes import CityScape
        return CityScape.palette(None)   # the trainId colours (no instance state used)
    return voc_palette(256)


def colourise(pred, palette):
    """(H, W) class map -> (H, W, 3) BGR colour image."""
    pal = np.asarray(palette, np.uint8).reshape(-1, 3)
    return np.ascontiguousarray(pal[np.asarray(pred, np.int64)][:, :, ::-1])


def parse_segment_args(argv=None):
    parser = argparse.ArgumentParser(description='Run a (Deformable) DeepLab model on images')
    parser.add_argument('--cfg', default=None, help='experiment config (YAML; default: the '
                        'released Cityscapes model\'s)')
    parser.add_argument('--params', default=None, help='checkpoint prefix: loads '
                        'PREFIX-%%04d.params (default: the released model, or the training '
                        'output of --cfg)')
    parser.add_argument('--epoch', type=int, default=None,
                        help='checkpoint epoch (default 0, or TEST.test_epoch with --cfg)')
    parser.add_argument('--images', nargs='+', default=[os.path.join(repo_root(), 'demo')],
                        help='image files and/or folders (default: demo/)')
    parser.add_argument('--output', default=None, help='output folder')
    parser.add_argument('--gpu', type=int, default=None, help='GPU id (default: CPU)')
    parser.add_argument('--deeplab_only', action='store_true', dest='plain',
                        help='use the released DeepLab model without deformable convolutions')
    parser.add_argument('--offsets', action='store_true',
                        help='also draw the sampling points of the deformable res5 layers')
    return parser.parse_args(argv)


def _load(args):
    from dcn.config import update_config
    from dcn.tools.main import load_family_config
    root = repo_root()
    if args.cfg:
        cfg = load_family_config('deeplab', args.cfg)
        if args.params:
            prefix, epoch = args.params, 0
        else:
            from dcn.train import output_dir
            prefix = os.path.join(output_dir(cfg, cfg.config_name, cfg.dataset.image_set),
                                  cfg.TRAIN.model_prefix or 'deeplab')
            epoch = cfg.TEST.test_epoch
    else:
        symbol, released = _RELEASED['plain' if args.plain else 'dcn']
        cfg = load_family_config('deeplab', os.path.join(root, _RELEASED_CFG))
        cfg = update_config(cfg, {'symbol': symbol}, source='demo defaults')
        prefix, epoch = (args.params, 0) if args.params else (os.path.join(root, released), 0)
    if args.epoch is not None:
        epoch = args.epoch
    path = '%s-%04d.params' % (prefix, int(epoch))
    if not os.path.isfile(path):
        raise DemoError('model file not found: %s\nPut the released DeepLab models under model/ '
                        '(model/deeplab_dcn_cityscapes-0000.params, '
                        'model/deeplab_cityscapes-0000.params) or pass --params PREFIX --epoch '
                        'N (and --cfg FILE) to use your own checkpoint.' % path)
    return cfg, prefix, int(epoch)


def _prepare(im, cfg):
    from dcn.config import get_scales
    from dcn.image import resize, transform
    target, max_size = get_scales(cfg)[0]
    resized, scale = resize(im, target, max_size, stride=cfg.network.IMAGE_STRIDE)
    return transform(resized, cfg.network.PIXEL_MEANS), scale


def segment_image(predictor, im, cfg):
    """(H, W) uint8 class map of BGR image ``im`` at its own size."""
    from dcn.engine.seg_tester import predict_segmentation
    data, _ = _prepare(im, cfg)
    pred, _ = predict_segmentation(predictor, data)
    pred = cv2.resize(pred.astype(np.uint8), (im.shape[1], im.shape[0]),
                      interpolation=cv2.INTER_NEAREST)
    return pred


def segment_main(argv=None):
    """``deeplab/demo.py``; returns {image path: [PNG paths]}."""
    return _run_cli(_segment, argv)


def _segment(argv):
    from PIL import Image
    from dcn.engine.seg_tester import seg_predictor
    from dcn.image import imread
    args = parse_segment_args(argv)
    cfg, prefix, epoch = _load(args)
    images = list_images(args.images)
    out_dir = args.output or os.path.join('output', 'demo', 'deeplab')
    ctx = [_context(args.gpu)]
    inst = _symbol_instance('deeplab', cfg)
    sym = inst.get_symbol(cfg, is_train=False)
    first = imread(images[0])
    data, _ = _prepare(first, cfg)
    n, _, h, w = data.shape
    arg, aux = load_model_params(prefix, epoch, sym,
                                 {'data': data.shape, 'softmax_label': (n, h * w)},
                                 'deeplab', 'dcn')
    predictor = seg_predictor(sym, arg, aux, ctx)
    offsets = _OffsetDrawer(cfg, prefix, epoch, ctx, data.shape) if args.offsets else None
    palette = seg_palette(cfg)
    written, used = {}, set()
    for path in images:
        im = imread(path)
        pred = segment_image(predictor, im, cfg)
        stem = _stem(path, used)
        os.makedirs(out_dir, exist_ok=True)
        seg_path = os.path.join(out_dir, stem + '_seg.png')
        png = Image.fromarray(pred)
        png.putpalette(palette)
        png.save(seg_path)
        overlay = cv2.addWeighted(im, 0.5, colourise(pred, palette), 0.5, 0)
        written[path] = [seg_path, _write_png(os.path.join(out_dir, stem + '_overlay.png'),
                                              overlay)]
        if offsets is not None:
            written[path] += offsets.draw(im, os.path.join(out_dir, stem))
        classes, counts = np.unique(pred, return_counts=True)
        _log.info('%s: classes %s -> %s', path,
                  ', '.join('%d (%.1f%%)' % (c, 100.0 * k / pred.size)
                            for c, k in zip(classes, counts)), ', '.join(written[path]))
    return written


class _OffsetDrawer(object):
    """Sampling points of three res5 units through the deformable res5 chain."""

    def __init__(self, cfg, prefix, epoch, ctx, data_shape):
        from dcn.engine.predictor import Predictor
        from dcn.tools.demo import _deform_conv_symbol
        self.cfg = cfg
        if not getattr(_symbol_instance('deeplab', cfg), 'deformable', False):
            raise DemoError('--offsets: network %s has no deformable convolutions (use a '
                            'deformable network, e.g. resnet_v1_101_deeplab_dcn)' % cfg.symbol)
        self.sym, self.chain = _deform_conv_symbol('deeplab', cfg)
        arg, aux = load_model_params(prefix, epoch, self.sym, {'data': data_shape},
                                     'deeplab', 'dcn')
        self.run = Predictor(self.sym, ['data'], None, ctx, arg_params=arg, aux_params=aux)
        self.names = [layer['offset'] for layer in self.chain if layer['offset']]
        self.kernel, self.dilate, self.pad = (int(np.atleast_1d(self.chain[0][k])[0])
                                              for k in ('kernel', 'dilate', 'pad'))

    def draw(self, im, stem):
        from dcn.vis import draw_sampling_points
        data, scale = _prepare(im, self.cfg)
        out = self.run(data=data)
        named = {n: out[n][0] for n in self.names}
        offsets = [named[layer['offset']] if layer['offset'] else None for layer in self.chain]
        conv5 = out[self.sym.list_outputs()[-1]][0]
        fh, fw = conv5.shape[1:]
        valid = [int(np.floor(image_to_feature(n - 0.5, scale))) + 1 for n in im.shape[:2]]
        units = choose_units(conv5.mean(axis=0), valid, None,
                             margin=len(self.chain) * self.pad)
        paths = []
        for k, (kind, (uy, ux)) in enumerate(units):
            pts = sampling_points(offsets, uy, ux, self.kernel, self.dilate, self.pad,
                                  shape=(fh, fw))
            shown = int(np.sum(~np.isnan(pts).any(axis=1)))
            drawn = draw_sampling_points(im, feature_to_image(pts, scale),
                                         feature_to_image([uy, ux], scale),
                                         label='%s: %d points' % (kind, shown))
            paths.append(_write_png('%s_unit%d.png' % (stem, k), drawn))
        return paths
