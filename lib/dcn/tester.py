"""Inference over a test set and evaluation.

* :class:`Predictor` binds the test symbol once (for the largest input) and
  reshapes for each batch.
* :func:`im_detect` turns the network outputs into per-image class scores and
  boxes in original image coordinates.
* :func:`pred_eval` runs a whole test set, applies class-wise NMS (or soft-NMS)
  and the per-image detection cap, caches the detections and evaluates them.
* :func:`test_net` does all of the above for a saved checkpoint.
"""
import json
import logging
import os
import pickle
import time

import mxnet as mx
import numpy as np

from dcn.bbox import bbox_pred, clip_boxes
from dcn.checkpoint import atomic_write, check_param_shapes, load_param

__all__ = ['Predictor', 'im_detect', 'pred_eval', 'test_net', 'class_boxes', 'nms_for_config',
           'model_id']

_log = logging.getLogger(__name__)

OUTPUT_NAMES = ('rois_output', 'cls_prob_reshape_output', 'bbox_pred_reshape_output')


class Predictor(object):
    """Forward-only wrapper around ``mx.mod.Module``.

    :param max_data_shapes: list of (name, shape) used for the first bind (largest input)
    :param provide_data: unused beyond validation; kept for the original signature
    """

    def __init__(self, symbol, data_names, label_names, context=None, max_data_shapes=None,
                 provide_data=None, provide_label=None, arg_params=None, aux_params=None):
        context = context or [mx.cpu()]
        if not isinstance(context, (list, tuple)):
            context = [context]
        shapes = max_data_shapes or provide_data
        if not shapes:
            raise ValueError('Predictor: max_data_shapes (or provide_data) is required')
        shapes = [(d.name, d.shape) if hasattr(d, 'name') else tuple(d) for d in shapes]
        self.data_names = list(data_names)
        self._mod = mx.mod.Module(symbol, data_names=self.data_names,
                                  label_names=list(label_names or []) or None, context=list(context))
        self._mod.bind(shapes, None, for_training=False)
        self._mod.init_params(arg_params=arg_params, aux_params=aux_params, allow_missing=False)
        self.output_names = symbol.list_outputs()

    def predict(self, data_batch):
        """Forward ``data_batch``; returns a dict output name -> numpy array."""
        self._mod.forward(data_batch, is_train=False)
        outputs = self._mod.get_outputs(merge_multi_context=True)
        return {name: out.asnumpy() for name, out in zip(self.output_names, outputs)}


def im_detect(predictor, data_batch, data_names, scales, cfg):
    """Detect in one batch.

    :param scales: per image, the resize factor applied (``im_info[:, 2]``)
    :return: (scores_list, boxes_list, data_dict_list): per image (R, C) class
        probabilities and (R, 4 * num_reg_classes) boxes in original image
        coordinates (clipped to the image).
    """
    output = predictor.predict(data_batch)
    for name in OUTPUT_NAMES:
        if name not in output:
            raise ValueError('test symbol has no output %s (outputs: %s)'
                             % (name, ', '.join(sorted(output))))
    data_dict = dict(zip(data_names, [d.asnumpy() for d in data_batch.data]))
    im_info = data_dict['im_info']
    rois = output['rois_output']
    cls_prob = output['cls_prob_reshape_output']
    deltas = output['bbox_pred_reshape_output']
    num_images = cls_prob.shape[0]
    per_image = rois.shape[0] // num_images
    scores_list, boxes_list, data_list = [], [], []
    for i in range(num_images):
        image_rois = rois[i * per_image:(i + 1) * per_image]
        if np.any(image_rois[:, 0] != i):  # rois carry their batch index: use it when set
            image_rois = rois[rois[:, 0] == i]
        boxes = image_rois[:, 1:5]
        pred = bbox_pred(boxes, deltas[i][:boxes.shape[0]])
        pred = clip_boxes(pred, im_info[i, :2])
        pred = pred / float(scales[i])
        scores_list.append(cls_prob[i][:boxes.shape[0]])
        boxes_list.append(pred.astype(np.float32))
        data_list.append({k: v[i:i + 1] for k, v in data_dict.items()})
    return scores_list, boxes_list, data_list


def class_boxes(boxes, cls, class_agnostic):
    """Columns of class ``cls`` in (R, 4K) boxes (column block 1 when class-agnostic)."""
    if class_agnostic or boxes.shape[1] == 8:
        return boxes[:, 4:8] if boxes.shape[1] >= 8 else boxes[:, 0:4]
    return boxes[:, 4 * cls:4 * (cls + 1)]


def nms_for_config(cfg):
    """``f(dets) -> (keep, scores)`` for the final detections (TEST.NMS or soft-NMS)."""
    from dcn import nms as nms_mod
    test = cfg.TEST
    if test.get('SOFT_NMS', False):
        soft = nms_mod.soft_nms_wrapper(test.NMS, method=test.get('SOFT_NMS_METHOD', 'linear'),
                                        sigma=test.get('SOFT_NMS_SIGMA', 0.5))

        def _soft(dets):
            keep, scores = soft.rescore(dets)
            return np.asarray(keep, dtype=np.int64), np.asarray(scores, dtype=np.float32)
        return _soft
    try:
        hard = nms_mod.cpu_nms_wrapper(test.NMS)
    except Exception:
        hard = nms_mod.py_nms_wrapper(test.NMS)

    def _hard(dets):
        keep = np.asarray(hard(dets), dtype=np.int64)
        return keep, dets[keep, 4]
    return _hard


def _limit_per_image(all_boxes, idx, num_classes, max_per_image):
    if max_per_image <= 0:
        return
    scores = np.hstack([all_boxes[j][idx][:, -1] for j in range(1, num_classes)])
    if len(scores) > max_per_image:
        thresh = np.sort(scores)[-max_per_image]
        for j in range(1, num_classes):
            keep = np.where(all_boxes[j][idx][:, -1] >= thresh)[0]
            all_boxes[j][idx] = all_boxes[j][idx][keep, :]


def _detections_file(imdb, output_dir):
    directory = output_dir or getattr(imdb, 'result_path', None) or getattr(imdb, 'cache_path', '.')
    return os.path.join(directory, imdb.name + '_detections.pkl')


def _key_file(det_file):
    """The key file beside a detections file: what the detections were computed from."""
    return det_file[:-len('.pkl')] + '.key.json'


def model_id(prefix, epoch):
    """Identity of checkpoint ``prefix``-``epoch`` for the detection cache (path, size, mtime)."""
    path = os.path.abspath('%s-%04d.params' % (prefix, epoch))
    st = os.stat(path)
    return {'params': path, 'size': st.st_size, 'mtime_ns': st.st_mtime_ns}


def _cache_key(imdb, cfg, thresh, max_per_image, model):
    """What the cached detections depend on: model, images and every test setting."""
    test = {k: cfg.TEST[k] for k in sorted(cfg.TEST)}
    return json.loads(json.dumps({
        'model': model, 'imdb': imdb.name, 'num_images': int(imdb.num_images),
        'thresh': float(thresh), 'max_per_image': int(max_per_image), 'TEST': test,
        'SCALES': cfg.get('SCALES'), 'CLASS_AGNOSTIC': bool(cfg.CLASS_AGNOSTIC),
        'PIXEL_MEANS': cfg.network.get('PIXEL_MEANS'), 'symbol': cfg.get('symbol'),
        'BUILTIN_OPS': bool(cfg.network.get('BUILTIN_OPS', False))}, default=str))


def _cached_detections(det_file, key, logger):
    """The cached all_boxes when its key file matches ``key``, else None (says why)."""
    key_file = _key_file(det_file)
    if not os.path.isfile(det_file):
        return None
    try:
        with open(key_file) as f:
            saved = json.load(f)
    except (OSError, ValueError):
        logger.info('detections in %s not reused: no valid %s', det_file, key_file)
        return None
    if saved != key:
        changed = sorted(k for k in set(saved) | set(key) if saved.get(k) != key.get(k))
        logger.info('detections in %s not reused: %s changed', det_file, ', '.join(changed))
        return None
    try:
        with open(det_file, 'rb') as f:
            return pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as exc:
        logger.info('detections in %s not reused: unreadable (%s)', det_file, exc)
        return None


def pred_eval(predictor, test_data, imdb, cfg, vis=False, thresh=1e-3, logger=None,
              ignore_cache=True, output_dir=None, max_per_image=None, model=None):
    """Detect on every image of ``test_data`` and evaluate with ``imdb``.

    ``all_boxes[cls][image]`` is an (k, 5) float32 array (x1, y1, x2, y2, score); it
    is cached (pickle) in ``output_dir`` (default ``imdb.result_path``), with a key file
    ``<name>_detections.key.json`` naming what it depends on (``model``: e.g.
    :func:`model_id` of the checkpoint; the images; the test settings), and reused unless
    ``ignore_cache`` or the key differs. Returns ``imdb.evaluate_detections(all_boxes)``.
    """
    logger = logger or _log
    det_file = _detections_file(imdb, output_dir)
    if max_per_image is None:
        max_per_image = int(cfg.TEST.get('max_per_image', 300))
    key = _cache_key(imdb, cfg, thresh, max_per_image, model)
    if not ignore_cache:
        all_boxes = _cached_detections(det_file, key, logger)
        if all_boxes is not None:
            logger.info('loaded detections from %s', det_file)
            return _evaluate(imdb, all_boxes, logger)

    num_images = imdb.num_images
    num_classes = imdb.num_classes
    agnostic = bool(cfg.CLASS_AGNOSTIC)
    nms = nms_for_config(cfg)
    all_boxes = [[np.zeros((0, 5), dtype=np.float32) for _ in range(num_images)]
                 for _ in range(num_classes)]
    data_names = [d.name if hasattr(d, 'name') else d[0] for d in test_data.provide_data]
    t_detect, t_post, seen = 0.0, 0.0, 0
    try:
        from tqdm import tqdm
        progress = tqdm(total=num_images, desc='testing %s' % imdb.name, unit='img')
    except ImportError:  # pragma: no cover - tqdm is a requirement
        progress = None
    try:
        for batch in test_data:
            tic = time.time()
            im_info = batch.data[data_names.index('im_info')].asnumpy()
            scores_all, boxes_all, data_all = im_detect(predictor, batch, data_names,
                                                        im_info[:, 2], cfg)
            t_detect += time.time() - tic
            tic = time.time()
            real = len(scores_all) - int(batch.pad or 0)
            indices = list(batch.index) if batch.index is not None else \
                list(range(seen, seen + real))
            for k in range(real):
                idx = int(indices[k])
                if idx >= num_images:
                    raise ValueError('test loader yields image index %d but %s has %d images'
                                     % (idx, imdb.name, num_images))
                scores, boxes = scores_all[k], boxes_all[k]
                for j in range(1, num_classes):
                    inds = np.where(scores[:, j] > thresh)[0]
                    cls_scores = scores[inds, j]
                    cls_dets = np.hstack((class_boxes(boxes[inds], j, agnostic),
                                          cls_scores[:, np.newaxis])).astype(np.float32)
                    keep, new_scores = nms(cls_dets)
                    cls_dets = cls_dets[keep, :]
                    cls_dets[:, 4] = new_scores
                    all_boxes[j][idx] = cls_dets
                _limit_per_image(all_boxes, idx, num_classes, max_per_image)
                if vis:
                    _visualize(data_all[k], [all_boxes[j][idx] for j in range(num_classes)],
                               imdb, cfg, im_info[k, 2], idx, output_dir)
            seen += real
            t_post += time.time() - tic
            if progress is not None:
                progress.update(real)
    finally:
        if progress is not None:
            progress.close()
    if seen != num_images:
        raise ValueError('test loader yielded %d images but %s has %d' % (seen, imdb.name,
                                                                          num_images))
    logger.info('detection %.4fs/img, post-processing %.4fs/img', t_detect / max(seen, 1),
                t_post / max(seen, 1))

    def _write(tmp):
        with open(tmp, 'wb') as f:
            pickle.dump(all_boxes, f, protocol=pickle.HIGHEST_PROTOCOL)

    def _write_key(tmp):
        with open(tmp, 'w') as f:
            json.dump(key, f, indent=1, sort_keys=True)
    # the key goes first and comes back last: a crash in between leaves no matching pair
    key_file = _key_file(det_file)
    if os.path.exists(key_file):
        os.remove(key_file)
    atomic_write(det_file, _write)
    atomic_write(key_file, _write_key)
    logger.info('wrote detections to %s', det_file)
    return _evaluate(imdb, all_boxes, logger)


def _evaluate(imdb, all_boxes, logger):
    results = imdb.evaluate_detections(all_boxes)
    if isinstance(results, dict):
        for key in sorted(results):
            value = results[key]
            if isinstance(value, (float, int, np.floating)):
                logger.info('%s: %.4f', key, float(value))
    return results


def _visualize(data, dets_per_class, imdb, cfg, scale, idx, output_dir):
    from dcn import vis as vis_mod
    from dcn.image import transform_inverse
    im = transform_inverse(data['data'][0], cfg.network.PIXEL_MEANS)
    directory = os.path.join(output_dir or getattr(imdb, 'result_path', '.') or '.', 'vis')
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, '%06d.png' % idx)
    vis_mod.save_detections(path, im, dets_per_class, imdb.classes, scale=scale)


def test_net(cfg, symbol_package, prefix, epoch, ctx=None, vis=False, ignore_cache=True,
             thresh=None, logger=None, output_dir=None, image_set=None):
    """Evaluate checkpoint ``prefix``-``epoch`` on ``cfg.dataset.test_image_set``."""
    from dcn.config import get_contexts, get_scales
    from dcn.dataset import get_imdb
    from dcn.loader import TestLoader
    from dcn.train import get_symbol_instance
    import dcn.operators  # noqa: F401  (registers the CustomOps)

    logger = logger or _log
    image_set = image_set or cfg.dataset.test_image_set
    ctx = list(ctx) if ctx else get_contexts(cfg)[:1]
    if thresh is None:
        thresh = float(cfg.TEST.get('SCORE_THRESH', 1e-3))
    sym_instance = get_symbol_instance(symbol_package, cfg)
    sym = sym_instance.get_symbol(cfg, is_train=False)
    imdb = get_imdb(cfg.dataset.dataset, image_set, cfg.dataset.root_path,
                    cfg.dataset.dataset_path, result_path=output_dir)
    roidb = imdb.gt_roidb()
    batch_images = int(cfg.TEST.BATCH_IMAGES) * len(ctx)
    test_data = TestLoader(roidb, cfg, batch_size=batch_images, shuffle=False,
                           has_rpn=cfg.TEST.HAS_RPN)
    try:
        scales = get_scales(cfg)
        max_h = max(s[0] for s in scales)
        max_w = max(s[1] for s in scales)
        max_data_shapes = [('data', (batch_images, 3, max_h, max_w)),
                           ('im_info', (batch_images, 3))]
        arg_params, aux_params = load_param(prefix, epoch, process=True)
        check_param_shapes(sym, arg_params, aux_params, dict(max_data_shapes),
                           source='%s-%04d.params' % (prefix, epoch))
        predictor = Predictor(sym, ['data', 'im_info'], [], context=ctx,
                              max_data_shapes=max_data_shapes, arg_params=arg_params,
                              aux_params=aux_params)
        tic = time.time()
        results = pred_eval(predictor, test_data, imdb, cfg, vis=vis, thresh=thresh,
                            logger=logger, ignore_cache=ignore_cache, output_dir=output_dir,
                            model=model_id(prefix, epoch))
        logger.info('tested %d images in %.1fs', imdb.num_images, time.time() - tic)
        return results
    finally:
        test_data.close()
