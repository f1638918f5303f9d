"""Proposal pipelines of the original: RPN-only training and testing (proposal dumping and
recall), training the RoI head from precomputed proposals, and alternate (4-step)
training.

* :func:`generate_proposals` runs the RPN-only test graph over an image set and writes
  ``<result path>/rpn_data/<imdb name>_rpn.pkl`` (a list over images of (k, 5) arrays
  x1, y1, x2, y2, score in original image coordinates), as the original.
* :func:`test_rpn`: a checkpoint -> proposals of an image set and their recall
  (:meth:`dcn.dataset.imdb.IMDB.evaluate_recall`) for the best 100 / 300 / 1000 of them.
* :func:`train_rpn`, :func:`train_rcnn`: :func:`dcn.train.train_net` on the RPN alone or
  on the RoI head with the proposals of ``dataset.proposal`` (box-regression means and stds
  computed from the targets with TRAIN.BBOX_NORMALIZATION_PRECOMPUTED false).
* :func:`alternate_train`: RPN1 -> proposals -> R-FCN1 -> RPN2 (shared convolutions fixed)
  -> proposals -> R-FCN2 -> combined model (:func:`dcn.checkpoint.combine_model`).
"""
import copy
import logging
import os
import pickle
import time

import numpy as np

from dcn.checkpoint import check_param_shapes, combine_model, load_param
from dcn.fileio import atomic_write_bytes
from dcn.modeling.names import RPN_ONLY, output_name

__all__ = ['generate_proposals', 'test_rpn', 'proposal_recall', 'train_rpn', 'train_rcnn',
           'alternate_train', 'RECALL_TOP_N']

_log = logging.getLogger('dcn')

#: numbers of best proposals the recall is reported for
RECALL_TOP_N = (100, 300, 1000)


def generate_proposals(predictor, test_data, imdb, thresh=0.0, result_path=None, logger=None):
    """Proposals of every image of ``test_data`` (in order) from the RPN-only test graph;
    those scoring above ``thresh`` are written to ``<result_path>/rpn_data/<imdb.name>
    _rpn.pkl`` (all of them also to ``_full_rpn.pkl`` when ``thresh`` > 0). Returns the
    list of (k, 5) arrays."""
    logger = logger or _log
    # MXNet names the outputs of the proposal layer ``rois`` rois_output and rois_score
    rois_name, score_name = output_name(RPN_ONLY.test_outputs[0]), RPN_ONLY.test_outputs[1]
    data_names = [d.name for d in test_data.provide_data]
    boxes_all, full_all = [None] * imdb.num_images, [None] * imdb.num_images
    tic, seen = time.time(), 0
    for batch in test_data:
        output = predictor.predict(batch)
        for name in (rois_name, score_name):
            if name not in output:
                raise ValueError('the RPN test graph has no output %s (outputs: %s)'
                                 % (name, ', '.join(sorted(output))))
        rois, scores = output[rois_name], output[score_name].reshape((-1,))
        im_info = batch.data[data_names.index('im_info')].asnumpy()
        real = im_info.shape[0] - int(batch.pad or 0)
        per_image = rois.shape[0] // im_info.shape[0]
        for k in range(real):
            sel = slice(k * per_image, (k + 1) * per_image)
            boxes = rois[sel, 1:5] / float(im_info[k, 2])
            dets = np.hstack((boxes, scores[sel, np.newaxis])).astype(np.float32)
            idx = int(batch.index[k])
            full_all[idx] = dets
            boxes_all[idx] = dets[dets[:, 4] > thresh]
        seen += real
    if seen != imdb.num_images or any(b is None for b in boxes_all):
        raise ValueError('proposal generation covered %d of the %d images of %s'
                         % (seen, imdb.num_images, imdb.name))
    if result_path is not None:
        imdb._result_path = result_path
    path = imdb.rpn_file()
    atomic_write_bytes(path, pickle.dumps(boxes_all, protocol=pickle.HIGHEST_PROTOCOL))
    if thresh > 0:
        atomic_write_bytes(imdb.rpn_file(full=True),
                           pickle.dumps(full_all, protocol=pickle.HIGHEST_PROTOCOL))
    logger.info('wrote the proposals of %d images (%.1f per image, %.3fs/image) to %s',
                seen, np.mean([len(b) for b in boxes_all]), (time.time() - tic) / max(seen, 1),
                path)
    return boxes_all


def proposal_recall(imdb, roidb, boxes, top_ns=RECALL_TOP_N, logger=None):
    """{N: evaluate_recall result} for the best N proposals of every image, N in
    ``top_ns``; logs the average recall and the recall at IoU 0.5, 0.7 for each N."""
    logger = logger or _log
    results = {}
    for n in top_ns:
        res = imdb.evaluate_recall(roidb, candidate_boxes=boxes, top_n=int(n))
        results[int(n)] = res
        thr = list(np.round(res['thresholds'], 2))
        logger.info('%s, %d proposals: average recall %.4f, recall@0.5 %.4f, recall@0.7 %.4f',
                    imdb.name, n, res['ar'], res['recalls'][thr.index(0.5)],
                    res['recalls'][thr.index(0.7)])
    return results


def test_rpn(cfg, symbol_package, prefix, epoch, image_set=None, ctx=None, result_path=None,
             thresh=0.0, logger=None, top_ns=RECALL_TOP_N):
    """Run the RPN of checkpoint ``prefix``-``epoch`` over ``image_set`` (default
    ``dataset.test_image_set``), dump its proposals (:func:`generate_proposals`) and
    evaluate their recall. Returns (list of (k, 5) proposals, {N: recall result})."""
    from dcn.config import get_contexts
    from dcn.dataset import get_imdb
    from dcn.engine.predictor import Predictor
    from dcn.loader import TestLoader
    from dcn.train import get_symbol_instance
    import dcn.layers  # noqa: F401  (registers the CustomOps)

    logger = logger or _log
    cfg = copy.deepcopy(cfg)
    cfg.TEST.HAS_RPN = True
    image_set = image_set or cfg.dataset.test_image_set
    ctx = list(ctx) if ctx else get_contexts(cfg)[:1]
    model = get_symbol_instance(symbol_package, cfg)
    sym = model.get_symbol_rpn(cfg, is_train=False)
    imdb = get_imdb(cfg.dataset.dataset, image_set, cfg.dataset.root_path,
                    cfg.dataset.dataset_path, result_path=result_path)
    roidb = imdb.gt_roidb()
    batch_images = int(cfg.TEST.BATCH_IMAGES) * len(ctx)
    test_data = TestLoader(roidb, cfg, batch_size=batch_images, shuffle=False)
    try:
        arg_params, aux_params = load_param(prefix, epoch, process=True)
        used = set(sym.list_arguments()) | set(sym.list_auxiliary_states())
        arg_params = {k: v for k, v in arg_params.items() if k in used}
        aux_params = {k: v for k, v in aux_params.items() if k in used}
        check_param_shapes(sym, arg_params, aux_params, dict(test_data.provide_data),
                           source='%s-%04d.params' % (prefix, epoch))
        predictor = Predictor(sym, ['data', 'im_info'], [], context=ctx,
                              arg_params=arg_params, aux_params=aux_params)
        logger.info('generating the proposals of %s with %s-%04d.params', imdb.name, prefix,
                    epoch)
        boxes = generate_proposals(predictor, test_data, imdb, thresh=thresh, logger=logger)
    finally:
        test_data.close()
    return boxes, proposal_recall(imdb, roidb, boxes, top_ns, logger)


def _stage_cfg(cfg, model_prefix, lr=None, lr_step=None, end_epoch=None, batch_images=None,
               pretrained=None, pretrained_epoch=None, train_shared=False):
    cfg = copy.deepcopy(cfg)
    cfg.TRAIN.model_prefix = model_prefix
    cfg.TRAIN.begin_epoch = 0 if end_epoch is not None else cfg.TRAIN.begin_epoch
    for key, value in (('lr', lr), ('lr_step', lr_step), ('end_epoch', end_epoch),
                       ('BATCH_IMAGES', batch_images)):
        if value is not None and value != '' and not (key == 'BATCH_IMAGES' and value <= 0):
            cfg.TRAIN[key] = value
    if pretrained is not None:
        cfg.network.pretrained = pretrained
        cfg.network.pretrained_epoch = int(pretrained_epoch or 0)
    if train_shared:
        cfg.network.FIXED_PARAMS = list(cfg.network.FIXED_PARAMS_SHARED)
    return cfg


def train_rpn(cfg, symbol_package, output_path=None, model_prefix='rpn', logger=None, ctx=None,
              frequent=None, **stage):
    """Train the RPN alone (the original's ``train_rpn``); ``stage`` overrides lr, lr_step,
    end_epoch, batch_images, pretrained / pretrained_epoch (e.g. a detector's checkpoint
    for RPN2) and ``train_shared`` (network.FIXED_PARAMS_SHARED fixed). Returns
    (prefix, last epoch)."""
    from dcn.train import train_net
    cfg = _stage_cfg(cfg, model_prefix, **stage)
    return train_net(cfg, symbol_package, cfg.get('config_name'), ctx=ctx, frequent=frequent,
                     logger=logger, output_path=output_path, stage='rpn')


def proposal_train_roidb(cfg, image_set, result_path=None, flip=None):
    """The training roidb of the RoI head: for each of the '+'-joined image sets, the gt
    boxes then the proposals of ``dataset.proposal`` (read under ``result_path``), flipped
    copies appended with TRAIN.FLIP, images without objects removed, box targets added.
    Returns (roidb, means, stds)."""
    from dcn.bbox.bbox_regression import add_bbox_regression_targets
    from dcn.config import original_quirks
    from dcn.dataset import filter_roidb, get_imdb
    flip = cfg.TRAIN.FLIP if flip is None else flip
    roidb = []
    for name in [s for s in str(image_set).split('+') if s]:
        imdb = get_imdb(cfg.dataset.dataset, name, cfg.dataset.root_path,
                        cfg.dataset.dataset_path, result_path=result_path)
        gt = imdb.gt_roidb()
        if original_quirks(cfg):
            gt = [dict(r, boxes=np.trunc(np.asarray(r['boxes'], np.float64)).astype(
                np.float32)) for r in gt]
        part = imdb.proposal_roidb(cfg.dataset.proposal, gt, append_gt=True)
        if flip:
            part = imdb.append_flipped_images(part)
        roidb += part
    roidb = filter_roidb(roidb)
    means, stds = add_bbox_regression_targets(roidb, cfg)
    return roidb, means, stds


def train_rcnn(cfg, symbol_package, proposal_path, output_path=None, model_prefix='rcnn',
               logger=None, ctx=None, frequent=None, **stage):
    """Train the RoI head (and the backbone) on the precomputed proposals found under
    ``proposal_path`` (``rpn_data/<set>_rpn.pkl``), the original's ``train_rcnn``. With
    TRAIN.BBOX_NORMALIZATION_PRECOMPUTED false the regression targets are normalised by
    their own means and stds, with which the checkpoints are un-normalised. Returns
    (prefix, last epoch)."""
    from dcn.train import train_net
    cfg = _stage_cfg(cfg, model_prefix, **stage)
    roidb, means, stds = proposal_train_roidb(cfg, cfg.dataset.image_set, proposal_path)
    if not cfg.TRAIN.BBOX_NORMALIZATION_PRECOMPUTED:
        # what the targets were normalised with: checkpoints un-normalise with these
        cfg.TRAIN.BBOX_MEANS = [float(v) for v in means]
        cfg.TRAIN.BBOX_STDS = [float(v) for v in stds]
    return train_net(cfg, symbol_package, cfg.get('config_name'), ctx=ctx, frequent=frequent,
                     logger=logger, output_path=output_path, roidb=roidb, stage='rcnn')


def alternate_train(cfg, symbol_package, final_output_path, logger=None, ctx=None,
                    frequent=None):
    """The original's 4-step alternate training in ``final_output_path``:
    rpn1 (from network.pretrained) -> proposals of the training and test sets ->
    rfcn1 (from network.pretrained, on rpn1's proposals) -> rpn2 (from rfcn1,
    network.FIXED_PARAMS_SHARED fixed) -> proposals of the training sets -> rfcn2 (from
    rpn2 + rfcn1 combined, shared convolutions fixed, on rpn2's proposals) -> ``final``:
    rpn2 + rfcn2 combined, the end-to-end test network's parameters. Schedules and batch
    sizes from TRAIN.ALTERNATE. Returns the final prefix (epoch 0)."""
    logger = logger or _log
    alt = cfg.TRAIN.ALTERNATE
    pretrained = str(cfg.network.pretrained or '')
    out = final_output_path
    common = dict(output_path=None, logger=logger, ctx=ctx, frequent=frequent)

    base = copy.deepcopy(cfg)
    name = base.get('config_name') or 'default'
    from dcn.train import output_dir
    if os.path.abspath(output_dir(base, name, base.dataset.image_set)) != os.path.abspath(out):
        raise ValueError('alternate_train: %s is not the output directory of the config (%s)'
                         % (out, output_dir(base, name, base.dataset.image_set)))
    rpn1_dir, rpn2_dir = os.path.join(out, 'rpn1'), os.path.join(out, 'rpn2')

    logger.info('########## alternate training 1/6: RPN1 from %s', pretrained or 'scratch')
    rpn1, e1 = train_rpn(base, symbol_package, model_prefix='rpn1', lr=alt.rpn1_lr,
                         lr_step=alt.rpn1_lr_step, end_epoch=alt.rpn1_epoch,
                         batch_images=alt.RPN_BATCH_IMAGES, **common)
    logger.info('########## alternate training 2/6: proposals of RPN1')
    sets = [s for s in str(base.dataset.image_set).split('+') if s]
    for image_set in sets + [s for s in str(base.dataset.test_image_set).split('+') if s]:
        test_rpn(base, symbol_package, rpn1, e1, image_set=image_set, ctx=ctx,
                 result_path=rpn1_dir, logger=logger)
    logger.info('########## alternate training 3/6: R-FCN1 from %s on the proposals of RPN1',
                pretrained or 'scratch')
    rfcn1, f1 = train_rcnn(base, symbol_package, rpn1_dir, model_prefix='rfcn1',
                           lr=alt.rfcn1_lr, lr_step=alt.rfcn1_lr_step, end_epoch=alt.rfcn1_epoch,
                           batch_images=alt.RCNN_BATCH_IMAGES, **common)
    logger.info('########## alternate training 4/6: RPN2 from R-FCN1, shared layers fixed')
    rpn2, e2 = train_rpn(base, symbol_package, model_prefix='rpn2', lr=alt.rpn2_lr,
                         lr_step=alt.rpn2_lr_step, end_epoch=alt.rpn2_epoch,
                         batch_images=alt.RPN_BATCH_IMAGES, pretrained=rfcn1,
                         pretrained_epoch=f1, train_shared=True, **common)
    for image_set in sets:
        test_rpn(base, symbol_package, rpn2, e2, image_set=image_set, ctx=ctx,
                 result_path=rpn2_dir, logger=logger)
    logger.info('########## alternate training 5/6: R-FCN2 from RPN2 + R-FCN1 on the '
                'proposals of RPN2, shared layers fixed')
    init = os.path.join(out, 'rfcn2_init')
    combine_model(rpn2, e2, rfcn1, f1, init, 0)
    rfcn2, f2 = train_rcnn(base, symbol_package, rpn2_dir, model_prefix='rfcn2',
                           lr=alt.rfcn2_lr, lr_step=alt.rfcn2_lr_step, end_epoch=alt.rfcn2_epoch,
                           batch_images=alt.RCNN_BATCH_IMAGES, pretrained=init,
                           pretrained_epoch=0, train_shared=True, **common)
    logger.info('########## alternate training 6/6: RPN2 + R-FCN2 combined')
    final = os.path.join(out, cfg.TRAIN.model_prefix or 'final')
    combine_model(rpn2, e2, rfcn2, f2, final, 0)
    return final, 0
