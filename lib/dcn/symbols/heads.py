"""Detection heads: RPN, R-FCN (position-sensitive, optionally deformable) and the 2fc
Faster R-CNN head (RoI pooling or deformable RoI pooling), with their training losses and
test outputs. Layer names are those of the released models.
"""
import mxnet as mx

__all__ = ['num_reg_classes', 'rpn_head', 'rpn_train_outputs', 'rpn_test_prob',
           'rfcn_head', 'fc2_head', 'rcnn_train_outputs', 'rcnn_test_outputs']

POOLED_SIZE = 7


def num_reg_classes(cfg):
    """Box regression classes: 2 (background, object) when CLASS_AGNOSTIC, else NUM_CLASSES."""
    return 2 if cfg.CLASS_AGNOSTIC else cfg.dataset.NUM_CLASSES


def _spatial_scale(cfg, feat_stride):
    """1 / stride of the pooled feature map; ``network.RCNN_FEAT_STRIDE`` must agree with
    the stride the backbone's output spec gives that map."""
    stride = cfg.network.RCNN_FEAT_STRIDE
    if stride != feat_stride:
        raise ValueError('config key network.RCNN_FEAT_STRIDE is %r but the feature map the '
                         'RoI head pools has stride %r: set the key to %r'
                         % (stride, feat_stride, feat_stride))
    return 1.0 / feat_stride


def rpn_head(conv_feat, num_anchors, num_hidden=512):
    """``rpn_conv_3x3`` -> ``rpn_cls_score`` (2A: A background then A foreground channels)
    and ``rpn_bbox_pred`` (4A, anchor-major)."""
    conv = mx.sym.Convolution(data=conv_feat, name='rpn_conv_3x3', num_filter=num_hidden,
                              kernel=(3, 3), pad=(1, 1))
    relu = mx.sym.Activation(data=conv, act_type='relu', name='rpn_relu')
    cls_score = mx.sym.Convolution(data=relu, name='rpn_cls_score', num_filter=2 * num_anchors,
                                   kernel=(1, 1), pad=(0, 0))
    bbox_pred = mx.sym.Convolution(data=relu, name='rpn_bbox_pred', num_filter=4 * num_anchors,
                                   kernel=(1, 1), pad=(0, 0))
    return cls_score, bbox_pred


def rpn_test_prob(rpn_cls_score, num_anchors):
    """Channel softmax over (background, foreground), reshaped back to (N, 2A, H, W)."""
    reshape = mx.sym.Reshape(data=rpn_cls_score, shape=(0, 2, -1, 0),
                             name='rpn_cls_score_reshape')
    prob = mx.sym.SoftmaxActivation(data=reshape, mode='channel', name='rpn_cls_prob')
    return mx.sym.Reshape(data=prob, shape=(0, 2 * num_anchors, -1, 0),
                          name='rpn_cls_prob_reshape')


def rpn_train_outputs(cfg, rpn_cls_score, rpn_bbox_pred, rpn_label, rpn_bbox_target,
                      rpn_bbox_weight, num_anchors):
    """RPN losses and the activation fed to the proposal layer.

    Returns (rpn_cls_prob, rpn_bbox_loss, rpn_cls_act_reshape): a softmax over the anchors
    (ignore label -1, normalised by the number of valid anchors) and the smooth-L1 (sigma 3)
    box loss scaled by 1 / RPN_BATCH_SIZE.
    """
    reshape = mx.sym.Reshape(data=rpn_cls_score, shape=(0, 2, -1, 0),
                             name='rpn_cls_score_reshape')
    rpn_cls_prob = mx.sym.SoftmaxOutput(data=reshape, label=rpn_label, multi_output=True,
                                        normalization='valid', use_ignore=True, ignore_label=-1,
                                        name='rpn_cls_prob')
    diff = mx.sym.elemwise_sub(rpn_bbox_pred, rpn_bbox_target, name='rpn_bbox_diff')
    loss_ = rpn_bbox_weight * mx.sym.smooth_l1(data=diff, scalar=3.0, name='rpn_bbox_loss_')
    rpn_bbox_loss = mx.sym.MakeLoss(data=loss_, grad_scale=1.0 / cfg.TRAIN.RPN_BATCH_SIZE,
                                    name='rpn_bbox_loss')
    act = mx.sym.SoftmaxActivation(data=reshape, mode='channel', name='rpn_cls_act')
    act_reshape = mx.sym.Reshape(data=act, shape=(0, 2 * num_anchors, -1, 0),
                                 name='rpn_cls_act_reshape')
    return rpn_cls_prob, rpn_bbox_loss, act_reshape


def rfcn_head(conv5, rois, cfg, sym_ops, deformable, num_hidden=1024, feat_stride=16,
              pooled_size=POOLED_SIZE):
    """Position-sensitive score maps pooled per RoI and averaged over the 7x7 bins
    (``pooled_size`` x ``pooled_size``: 3 in the original's PS RoI pooling demo network).

    ``conv_new_1`` (1x1, learning rate x3) -> ``rfcn_cls`` (7*7*C) and ``rfcn_bbox``
    (7*7*4*num_reg_classes).
    Deformable: per-RoI part offsets from ``rfcn_cls_offset_t`` / ``rfcn_bbox_offset_t``
    pooled in no_trans mode, then used as ``trans`` (trans_std 0.1). Returns
    (cls_score (R, C), bbox_pred (R, 4*num_reg_classes)). The graph is the same on every
    host; on the CPU the predictor fuses each offset branch when it binds the graph
    (dcn.engine.graph_rewrite).
    """
    p = int(pooled_size)
    num_classes = cfg.dataset.NUM_CLASSES
    nreg = num_reg_classes(cfg)
    scale = _spatial_scale(cfg, feat_stride)
    # learning rate x3 for the weight and bias, written as the original writes it (the
    # operator's lr_mult becomes the __lr_mult__ attribute of both variables)
    conv_new_1 = mx.sym.Convolution(data=conv5, name='conv_new_1', num_filter=num_hidden,
                                    kernel=(1, 1), lr_mult=3.0)
    relu_new_1 = mx.sym.Activation(data=conv_new_1, act_type='relu', name='conv_new_1_relu')
    rfcn_cls = mx.sym.Convolution(data=relu_new_1, name='rfcn_cls',
                                  num_filter=p * p * num_classes, kernel=(1, 1))
    rfcn_bbox = mx.sym.Convolution(data=relu_new_1, name='rfcn_bbox',
                                   num_filter=p * p * 4 * nreg, kernel=(1, 1))
    if deformable:
        def part_offsets(name, output_dim):
            # 1x1 convolution <name>_t (2*7*7*classes channels), pooled in no_trans mode
            offset_t = mx.sym.Convolution(data=relu_new_1, name=name + '_t',
                                          num_filter=output_dim * p * p, kernel=(1, 1))
            return sym_ops.DeformablePSROIPooling(
                name=name, data=offset_t, rois=rois, group_size=p, pooled_size=p,
                sample_per_part=4, part_size=p, output_dim=output_dim, spatial_scale=scale,
                no_trans=True)
        cls_offset = part_offsets('rfcn_cls_offset', 2 * num_classes)
        bbox_offset = part_offsets('rfcn_bbox_offset', 2)
        cls_pooled = sym_ops.DeformablePSROIPooling(
            name='psroipooled_cls_rois', data=rfcn_cls, rois=rois, trans=cls_offset,
            group_size=p, pooled_size=p, sample_per_part=4, no_trans=False, trans_std=0.1,
            part_size=p, output_dim=num_classes, spatial_scale=scale)
        bbox_pooled = sym_ops.DeformablePSROIPooling(
            name='psroipooled_loc_rois', data=rfcn_bbox, rois=rois, trans=bbox_offset,
            group_size=p, pooled_size=p, sample_per_part=4, no_trans=False, trans_std=0.1,
            part_size=p, output_dim=4 * nreg, spatial_scale=scale)
    else:
        cls_pooled = sym_ops.PSROIPooling(name='psroipooled_cls_rois', data=rfcn_cls, rois=rois,
                                          group_size=p, pooled_size=p, output_dim=num_classes,
                                          spatial_scale=scale)
        bbox_pooled = sym_ops.PSROIPooling(name='psroipooled_loc_rois', data=rfcn_bbox,
                                           rois=rois, group_size=p, pooled_size=p,
                                           output_dim=4 * nreg, spatial_scale=scale)
    cls_score = mx.sym.Pooling(data=cls_pooled, name='ave_cls_scors_rois', pool_type='avg',
                               global_pool=True, kernel=(p, p))
    bbox_pred = mx.sym.Pooling(data=bbox_pooled, name='ave_bbox_pred_rois', pool_type='avg',
                               global_pool=True, kernel=(p, p))
    cls_score = mx.sym.Reshape(data=cls_score, shape=(-1, num_classes), name='cls_score_flat')
    bbox_pred = mx.sym.Reshape(data=bbox_pred, shape=(-1, 4 * nreg), name='bbox_pred_flat')
    return cls_score, bbox_pred


def fc2_head(conv5, rois, cfg, sym_ops, deformable, conv_hidden=256, fc_hidden=1024,
             feat_stride=16):
    """Faster R-CNN 2fc head on ``conv_new_1`` (1x1).

    Plain: RoI max pooling 7x7. Deformable: a first DeformablePSROIPooling in no_trans mode
    (group_size 1, sample_per_part 4), the fully connected layer ``offset`` (7*7*2, learning
    rate x0.01) reshaped to (R, 2, 7, 7), then the offset pooling (trans_std 0.1). Then
    ``fc_new_1``, ``fc_new_2``, ``cls_score`` and ``bbox_pred`` (4*num_reg_classes).
    """
    p = POOLED_SIZE
    num_classes = cfg.dataset.NUM_CLASSES
    nreg = num_reg_classes(cfg)
    scale = _spatial_scale(cfg, feat_stride)
    conv_new_1 = mx.sym.Convolution(data=conv5, name='conv_new_1', num_filter=conv_hidden,
                                    kernel=(1, 1))
    relu_new_1 = mx.sym.Activation(data=conv_new_1, act_type='relu', name='conv_new_1_relu')
    if deformable:
        offset_t = sym_ops.DeformablePSROIPooling(
            name='offset_t', data=relu_new_1, rois=rois, group_size=1, pooled_size=p,
            sample_per_part=4, no_trans=True, part_size=p, output_dim=conv_hidden,
            spatial_scale=scale)
        offset_weight = mx.sym.Variable('offset_weight', lr_mult=0.01)
        offset_bias = mx.sym.Variable('offset_bias', lr_mult=0.01)
        offset = mx.sym.FullyConnected(data=offset_t, weight=offset_weight, bias=offset_bias,
                                       name='offset', num_hidden=p * p * 2)
        offset_reshape = mx.sym.Reshape(data=offset, shape=(-1, 2, p, p), name='offset_reshape')
        pooled = sym_ops.DeformablePSROIPooling(
            name='deformable_roi_pool', data=relu_new_1, rois=rois, trans=offset_reshape,
            group_size=1, pooled_size=p, sample_per_part=4, no_trans=False, part_size=p,
            output_dim=conv_hidden, spatial_scale=scale, trans_std=0.1)
    else:
        pooled = mx.sym.ROIPooling(data=relu_new_1, rois=rois, pooled_size=(p, p),
                                   spatial_scale=scale, name='roi_pool')
    fc1 = mx.sym.FullyConnected(data=pooled, name='fc_new_1', num_hidden=fc_hidden)
    fc1 = mx.sym.Activation(data=fc1, act_type='relu', name='fc_new_1_relu')
    fc2 = mx.sym.FullyConnected(data=fc1, name='fc_new_2', num_hidden=fc_hidden)
    fc2 = mx.sym.Activation(data=fc2, act_type='relu', name='fc_new_2_relu')
    cls_score = mx.sym.FullyConnected(data=fc2, name='cls_score', num_hidden=num_classes)
    bbox_pred = mx.sym.FullyConnected(data=fc2, name='bbox_pred', num_hidden=4 * nreg)
    return cls_score, bbox_pred


def rcnn_train_outputs(cfg, cls_score, bbox_pred, label, bbox_target, bbox_weight):
    """Detection losses. Returns (cls_prob, bbox_loss, rcnn_label), reshaped per image.

    With TRAIN.ENABLE_OHEM the hardest TRAIN.BATCH_ROIS_OHEM RoIs of the batch are selected
    by BoxAnnotatorOHEM (softmax normalised over valid labels, box loss / BATCH_ROIS_OHEM);
    otherwise the sampled RoIs are used (softmax normalised over valid labels, box loss /
    BATCH_ROIS).
    """
    num_classes = cfg.dataset.NUM_CLASSES
    nreg = num_reg_classes(cfg)
    batch_images = cfg.TRAIN.BATCH_IMAGES
    if cfg.TRAIN.ENABLE_OHEM:
        from dcn.layers import box_annotator_ohem
        if cfg.TRAIN.BATCH_ROIS_OHEM <= 0:
            raise ValueError('TRAIN.BATCH_ROIS_OHEM must be positive with TRAIN.ENABLE_OHEM, '
                             'got %r' % (cfg.TRAIN.BATCH_ROIS_OHEM,))
        labels_ohem, bbox_weights_ohem = box_annotator_ohem(
            cls_score, bbox_pred, label, bbox_target, bbox_weight, cfg, num_classes, nreg)
        cls_prob = mx.sym.SoftmaxOutput(data=cls_score, label=labels_ohem, name='cls_prob',
                                        normalization='valid', use_ignore=True,
                                        ignore_label=-1)
        weight = bbox_weights_ohem
        norm = cfg.TRAIN.BATCH_ROIS_OHEM
        rcnn_label = labels_ohem
    else:
        # 'valid' as the original; -1 labels (slots of padding gt rows with BATCH_ROIS -1)
        # are ignored and not counted
        cls_prob = mx.sym.SoftmaxOutput(data=cls_score, label=label, name='cls_prob',
                                        normalization='valid', use_ignore=True,
                                        ignore_label=-1)
        weight = bbox_weight
        # BATCH_ROIS counts the RoIs of the whole batch; -1 keeps every proposal
        norm = cfg.TRAIN.BATCH_ROIS
        if norm <= 0:
            norm = cfg.TRAIN.RPN_POST_NMS_TOP_N * batch_images
        rcnn_label = label
    diff = mx.sym.elemwise_sub(bbox_pred, bbox_target, name='bbox_diff')
    loss_ = weight * mx.sym.smooth_l1(data=diff, scalar=1.0, name='bbox_loss_')
    bbox_loss = mx.sym.MakeLoss(data=loss_, grad_scale=1.0 / norm, name='bbox_loss')
    rcnn_label = mx.sym.Reshape(data=rcnn_label, shape=(batch_images, -1), name='label_reshape')
    cls_prob = mx.sym.Reshape(data=cls_prob, shape=(batch_images, -1, num_classes),
                              name='cls_prob_reshape')
    bbox_loss = mx.sym.Reshape(data=bbox_loss, shape=(batch_images, -1, 4 * nreg),
                               name='bbox_loss_reshape')
    return cls_prob, bbox_loss, rcnn_label


def rcnn_test_outputs(cfg, cls_score, bbox_pred):
    """Softmax class probabilities and box deltas reshaped to (N, R, C) / (N, R, 4*reg)."""
    num_classes = cfg.dataset.NUM_CLASSES
    nreg = num_reg_classes(cfg)
    cls_prob = mx.sym.SoftmaxActivation(data=cls_score, name='cls_prob')
    cls_prob = mx.sym.Reshape(data=cls_prob, shape=(cfg.TEST.BATCH_IMAGES, -1, num_classes),
                              name='cls_prob_reshape')
    bbox_pred = mx.sym.Reshape(data=bbox_pred, shape=(cfg.TEST.BATCH_IMAGES, -1, 4 * nreg),
                               name='bbox_pred_reshape')
    return cls_prob, bbox_pred
