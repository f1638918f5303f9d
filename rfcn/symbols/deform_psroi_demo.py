"""Deformable PS RoI pooling demo network: Deformable R-FCN (ResNet-v1-101) on given RoIs,
returning the per-part offsets for visualisation together with the detections.

Test only, proposals given (``TEST.HAS_RPN`` false). Inputs ``data`` (N, 3, H, W) and
``rois`` (N, R, 5: batch index, x1, y1, x2, y2); outputs ``rfcn_cls_offset_output``
(R, 2 * num_classes, 3, 3: normalised (dx, dy) part offsets per class, to be multiplied by
trans_std 0.1 and the RoI width / height), ``cls_prob_reshape_output`` and
``bbox_pred_reshape_output``. As the original's demo network (and its released
``model/deform_psroi-0000.params``), the PS RoI pooling has 3 x 3 bins: the parameters are
those of ``resnet_v1_101_rfcn_dcn`` without the RPN, with 3*3 instead of 7*7 score maps.
"""
import copy

import mxnet as mx

from dcn.modeling import RFCN, RESNET_V1_101


class deform_psroi_demo(RFCN):
    backbone = RESNET_V1_101
    deformable = True
    pooled_size = 3

    def get_symbol(self, cfg, is_train=False):
        if is_train:
            raise ValueError('deform_psroi_demo is a test-only network (is_train must be False)')
        cfg = copy.deepcopy(cfg)
        cfg.TEST.HAS_RPN = False
        det = RFCN.get_symbol(self, cfg, is_train=False)
        offset = det.get_internals()['rfcn_cls_offset_output']
        self.sym = mx.sym.Group([offset, det[0], det[1]])
        return self.sym
