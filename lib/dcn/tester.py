"""Inference over a test set and evaluation.

* :class:`Predictor` binds the test symbol once (for the largest input) and
  reshapes for each batch.
* :func:`im_detect` turns the network outputs into per-image class scores and
  boxes in original image coordinates.
* :func:`pred_eval` runs a whole test set, applies class-wise NMS (or soft-NMS)
  and the per-image detection cap, caches the detections and evaluates them.
* :func:`test_net` does all of the above for a saved checkpoint.
"""
import copy
import json
import logging
import os
import pickle
import time

import mxnet as mx
import numpy as np

from dcn.checkpoint import atomic_write, check_param_shapes, load_param
from dcn.fileio import atomic_write_text
from dcn.evaluation.detection import DetectionEvaluator
from dcn.engine.predictor import (Predictor, class_boxes, decode_detections, limit_per_image,
                                  nms_for_config, postprocess_detections)
from dcn.modeling.names import DETECTION

__all__ = ['Predictor', 'im_detect', 'pred_eval', 'test_net', 'class_boxes', 'nms_for_config',
           'model_id', 'write_results', 'merge_scales']

_log = logging.getLogger(__name__)

OUTPUT_NAMES = DETECTION.test_output_names()


def im_detect(predictor, data_batch, data_names, scales, cfg):
    """Detect in one batch.

    :param scales: per image, the resize factor applied (``im_info[:, 2]``)
    :return: (scores_list, boxes_list, data_dict_list): per image (R, C) class
        probabilities and (R, 4 * num_reg_classes) boxes in original image
        coordinates (clipped to the image).
    """
    output = predictor.predict(data_batch)
    data_dict = dict(zip(data_names, [d.asnumpy() for d in data_batch.data]))
    im_info = data_dict['im_info'] if 'im_info' in data_dict else data_batch.im_info
    if 'rois' in data_dict:  # detection on given proposals (TEST.HAS_RPN false)
        output = dict(output)
        output[OUTPUT_NAMES[0]] = data_dict['rois'].reshape((-1, 5))
    scores_list, boxes_list = decode_detections(output, im_info, scales)
    data_list = [{k: v[i:i + 1] for k, v in data_dict.items()} for i in range(len(scores_list))]
    return scores_list, boxes_list, data_list


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
        'SCALES': cfg.get('SCALES'), 'TEST_SCALES': cfg.get('TEST_SCALES'),
        'CLASS_AGNOSTIC': bool(cfg.CLASS_AGNOSTIC),
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
              ignore_cache=True, output_dir=None, max_per_image=None, model=None,
              timing=None):
    """Detect on every image of ``test_data`` and evaluate with ``imdb``.

    ``all_boxes[cls][image]`` is an (k, 5) float32 array (x1, y1, x2, y2, score); it
    is cached (pickle) in ``output_dir`` (default ``imdb.result_path``), with a key file
    ``<name>_detections.key.json`` naming what it depends on (``model``: e.g.
    :func:`model_id` of the checkpoint; the images; the test settings), and reused unless
    ``ignore_cache`` or the key differs. Returns ``imdb.evaluate_detections(all_boxes)``;
    ``timing`` (a dict), when given, receives ``seconds_per_image`` (network time; not set
    when the detections come from the cache).
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
    evaluator = DetectionEvaluator(imdb)
    all_boxes = evaluator.all_boxes
    # several testing scales (a list of loaders): each tests the whole set; the candidates of
    # every scale are merged per class before the final NMS and the per-image cap
    loaders = list(test_data) if isinstance(test_data, (list, tuple)) else [test_data]
    merged = [[[] for _ in range(num_classes)] for _ in range(num_images)] \
        if len(loaders) > 1 else None
    t_detect, t_post = 0.0, 0.0
    try:
        from tqdm import tqdm
        progress = tqdm(total=num_images * len(loaders), desc='testing %s' % imdb.name,
                        unit='img')
    except ImportError:  # pragma: no cover - tqdm is a requirement
        progress = None
    try:
        for loader in loaders:
            n, t_d, t_p = _detect_set(predictor, loader, cfg, agnostic, nms, thresh,
                                      max_per_image, evaluator, merged, vis, imdb,
                                      output_dir, progress)
            if n != num_images:
                raise ValueError('test loader yielded %d images but %s has %d'
                                 % (n, imdb.name, num_images))
            t_detect, t_post = t_detect + t_d, t_post + t_p
    finally:
        if progress is not None:
            progress.close()
    if merged is not None:
        tic = time.time()
        for idx in range(num_images):
            evaluator.process(idx, merge_scales(merged[idx], nms, max_per_image))
        t_post += time.time() - tic
    logger.info('detection %.4fs/img, post-processing %.4fs/img%s', t_detect / num_images,
                t_post / num_images, ' (%d scales)' % len(loaders) if merged else '')

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
    if timing is not None:
        # network time per image, all scales (the loader and the evaluation excluded)
        timing['seconds_per_image'] = t_detect / num_images
    return _evaluate(imdb, all_boxes, logger)


def _keep_all(dets):
    return np.arange(dets.shape[0], dtype=np.int64), dets[:, 4].copy()


def merge_scales(candidates, nms, max_per_image):
    """Final detections of one image from the per-class candidates of several scales
    (``candidates[class]``: list of (k, 5) arrays), as the original FPN tester: per class
    the candidates of all scales stacked, NMS (or soft-NMS), then the cap of
    ``max_per_image`` over all classes."""
    dets = [np.zeros((0, 5), dtype=np.float32)]
    for parts in candidates[1:]:
        cls_dets = np.vstack(parts).astype(np.float32) if parts else \
            np.zeros((0, 5), dtype=np.float32)
        keep, new_scores = nms(cls_dets)
        cls_dets = cls_dets[keep, :]
        cls_dets[:, 4] = new_scores
        dets.append(cls_dets)
    return limit_per_image(dets, max_per_image)


def _detect_set(predictor, test_data, cfg, agnostic, nms, thresh, max_per_image, evaluator,
                merged, vis, imdb, output_dir, progress):
    """Detect on every image of one loader: the final detections go to ``evaluator``, or,
    with ``merged`` (several scales), every class's candidates above ``thresh`` are added to
    ``merged[image][class]``. Returns (images, detection seconds, post-processing seconds)."""
    num_classes = imdb.num_classes
    all_boxes = evaluator.all_boxes
    data_names = [d.name if hasattr(d, 'name') else d[0] for d in test_data.provide_data]
    t_detect, t_post, seen = 0.0, 0.0, 0
    for batch in test_data:
        tic = time.time()
        im_info = batch.data[data_names.index('im_info')].asnumpy() \
            if 'im_info' in data_names else batch.im_info
        scores_all, boxes_all, data_all = im_detect(predictor, batch, data_names,
                                                    im_info[:, 2], cfg)
        t_detect += time.time() - tic
        tic = time.time()
        real = len(scores_all) - int(batch.pad or 0)
        indices = list(batch.index) if batch.index is not None else \
            list(range(seen, seen + real))
        for k in range(real):
            idx = int(indices[k])
            if merged is not None:
                cand = postprocess_detections(scores_all[k], boxes_all[k], agnostic, _keep_all,
                                              thresh, 0)
                for j in range(1, num_classes):
                    merged[idx][j].append(cand[j])
                continue
            evaluator.process(idx, postprocess_detections(
                scores_all[k], boxes_all[k], agnostic, nms, thresh, max_per_image))
            if vis:
                _visualize(data_all[k], [all_boxes[j][idx] for j in range(num_classes)],
                           imdb, cfg, im_info[k, 2], idx, output_dir)
        seen += real
        t_post += time.time() - tic
        if progress is not None:
            progress.update(real)
    return seen, t_detect, t_post


def write_results(path, results, **info):
    """Write the numeric entries of ``results`` (and ``info``) as JSON, atomically."""
    metrics = {k: float(v) for k, v in results.items()
               if isinstance(v, (float, int, np.floating, np.integer)) and not isinstance(v, bool)}
    payload = dict(info, metrics=metrics)
    atomic_write_text(path, json.dumps(payload, indent=1, sort_keys=True))
    return path


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
    from dcn.config import get_contexts, get_scales, get_test_scales
    from dcn.dataset import get_imdb
    from dcn.loader import TestLoader
    from dcn.train import get_symbol_instance
    import dcn.layers  # noqa: F401  (registers the CustomOps)

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
    has_rpn = bool(cfg.TEST.HAS_RPN)
    if not has_rpn:
        # the proposals of dataset.proposal (rpn: <result path>/rpn_data/<set>_rpn.pkl)
        roidb = imdb.proposal_roidb(cfg.dataset.proposal, roidb)
    batch_images = int(cfg.TEST.BATCH_IMAGES) * len(ctx)
    test_scales = get_test_scales(cfg)

    def _loader(scale):
        scale_cfg = copy.deepcopy(cfg)
        scale_cfg.SCALES = [list(scale)]
        return TestLoader(roidb, scale_cfg, batch_size=batch_images, shuffle=False,
                          has_rpn=has_rpn)
    loaders = [_loader(s) for s in test_scales]
    test_data = loaders[0]
    try:
        scales = list(get_scales(cfg)) + list(test_scales)
        stride = int(cfg.network.get('IMAGE_STRIDE', 0) or 0)
        max_h = max(s[0] for s in scales)
        max_w = max(s[1] for s in scales)
        if stride > 0:  # the loader pads the image sides to multiples of IMAGE_STRIDE
            max_h, max_w = (-(-max_h // stride) * stride, -(-max_w // stride) * stride)
        arg_params, aux_params = load_param(prefix, epoch, process=True)
        if has_rpn:
            max_data_shapes = [('data', (batch_images, 3, max_h, max_w)),
                               ('im_info', (batch_images, 3))]
            check_shapes = dict(max_data_shapes)
        else:  # the number of proposals varies: bound on the first batch
            max_data_shapes = None
            check_shapes = dict(test_data.provide_data)
            used = set(sym.list_arguments()) | set(sym.list_auxiliary_states())
            arg_params = {k: v for k, v in arg_params.items() if k in used}
            aux_params = {k: v for k, v in aux_params.items() if k in used}
        check_param_shapes(sym, arg_params, aux_params, check_shapes,
                           source='%s-%04d.params' % (prefix, epoch))
        predictor = Predictor(sym, list(test_data.data_names), [], context=ctx,
                              max_data_shapes=max_data_shapes, arg_params=arg_params,
                              aux_params=aux_params)
        tic = time.time()
        timing = {}
        results = pred_eval(predictor, loaders if len(loaders) > 1 else test_data, imdb, cfg,
                            vis=vis, thresh=thresh,
                            logger=logger, ignore_cache=ignore_cache, output_dir=output_dir,
                            model=model_id(prefix, epoch), timing=timing)
        logger.info('tested %d images in %.1fs', imdb.num_images, time.time() - tic)
        if output_dir and isinstance(results, dict):
            write_results(os.path.join(output_dir, '%s_results.json' % image_set),
                          dict(results, **timing), model=model_id(prefix, epoch),
                          config_name=cfg.get('config_name'))
        return results
    finally:
        for loader in loaders:
            loader.close()
