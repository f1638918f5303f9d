"""Deformable convolution demo network: ResNet-v1-101 up to the deformable res5, returning
the sampling offsets of the three deformable layers for visualisation.

Test only. Input ``data``; outputs ``res5a_branch2b_offset_output``,
``res5b_branch2b_offset_output``, ``res5c_branch2b_offset_output`` (N, 72, H/16, W/16:
4 deformable groups x 9 kernel positions x (dy, dx)). Its parameters are a subset of
``resnet_v1_101_rfcn_dcn`` (load the released ``rfcn_dcn_coco`` model, ignoring extras).
"""
import mxnet as mx

from dcn.modeling import RFCN, RESNET_V1_101, sym_ops

OFFSET_LAYERS = ('res5a_branch2b_offset', 'res5b_branch2b_offset', 'res5c_branch2b_offset')


class deform_conv_demo(RFCN):
    backbone = RESNET_V1_101
    deformable = True

    def get_symbol(self, cfg, is_train=False):
        if is_train:
            raise ValueError('deform_conv_demo is a test-only network (is_train must be False)')
        data = mx.sym.Variable('data')
        conv5 = self.build_backbone(data, cfg, False, sym_ops(cfg))[0]['res5']
        internals = conv5.get_internals()
        self.sym = mx.sym.Group([internals[n + '_output'] for n in OFFSET_LAYERS])
        return self.sym
