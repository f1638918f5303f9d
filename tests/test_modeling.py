"""Model assembly: registries, output specs (no stride asserted), the name table."""
import os

import mxnet as mx
import numpy as np
import pytest

from dcn.config import load_config, update_config
from dcn.modeling import (BACKBONES, DETECTION, ROI_HEADS, RFCN, Registry, ShapeSpec,
                          RESNET_V1_18_SMALL)
from dcn.metric import get_train_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINI = os.path.join(ROOT, 'experiments', 'rfcn', 'cfgs', 'shapes_mini_rfcn_dcn.yaml')


def test_registry_names_and_errors():
    reg = Registry('thing')
    reg.register('a', obj=int)

    @reg.register()
    def b():
        pass
    assert reg.get('a') is int and reg.names() == ['a', 'b'] and 'b' in reg
    with pytest.raises(KeyError, match="no thing named 'c' \\(registered: a, b\\)"):
        reg.get('c')
    with pytest.raises(KeyError, match='registered already'):
        reg.register('a', obj=float)
    assert {'resnet_v1'} <= set(BACKBONES.names())
    assert {'rfcn', 'fc2'} <= set(ROI_HEADS.names())


def test_backbone_output_spec_and_strides_from_it():
    cfg = load_config(MINI)
    feats, spec = BACKBONES.get('resnet_v1')(mx.sym.var('data'), cfg, False, None,
                                             spec=RESNET_V1_18_SMALL)
    assert spec == {'res4': ShapeSpec(16, 96), 'res5': ShapeSpec(16, 128)}
    # the spec's stride is the feature map's real one
    _, out, _ = feats['res4'].infer_shape(data=(1, 3, 160, 224))
    assert out[0][1:] == (96, 10, 14)
    assert RFCN().anchor_levels(cfg) == [('rpn_cls_score', 16)]


def test_a_registered_backbone_of_another_stride_plugs_in():
    """A new backbone is an addition: register it, name it, and set the config's strides."""
    @BACKBONES.register('toy_stride8')
    def toy(data, cfg, is_train, ops, spec=None, deformable=False):
        c1 = mx.sym.Convolution(data, name='toy1', num_filter=8, kernel=(3, 3), stride=(4, 4),
                                pad=(1, 1))
        c2 = mx.sym.Convolution(c1, name='toy2', num_filter=16, kernel=(3, 3), stride=(2, 2),
                                pad=(1, 1))
        return {'res4': c2, 'res5': c2}, {'res4': ShapeSpec(8, 16), 'res5': ShapeSpec(8, 16)}

    class Toy(RFCN):
        backbone_name = 'toy_stride8'
        rpn_hidden = 16
        rfcn_hidden = 16

    cfg = load_config(MINI)
    with pytest.raises(ValueError, match='network.RPN_FEAT_STRIDE is 16 .* stride 8'):
        Toy().get_symbol(cfg, is_train=False)
    cfg = update_config(cfg, {'network': {'RPN_FEAT_STRIDE': 8, 'RCNN_FEAT_STRIDE': 8}})
    sym = Toy().get_symbol(cfg, is_train=False)
    assert sym.list_outputs() == list(DETECTION.test_output_names())
    train = Toy().get_symbol(cfg, is_train=True)
    assert train.list_outputs() == list(DETECTION.train_output_names())
    assert Toy().anchor_levels(cfg) == [('rpn_cls_score', 8)]
    assert Toy().bbox_layers == (('rfcn_bbox', 49),)


def test_metrics_read_outputs_by_name_in_any_order():
    rng = np.random.RandomState(0)
    fg = rng.uniform(size=(1, 1, 2, 2))
    preds = {'rpn_cls_prob_output': np.concatenate([1 - fg, fg], 1),
             'rpn_bbox_loss_output': np.full((1, 4, 2, 2), 0.5),
             'cls_prob_reshape_output': np.array([[[0.7, 0.3], [0.2, 0.8]]]),
             'bbox_loss_reshape_output': np.ones((1, 2, 8)),
             'rcnn_label_output': np.array([[0, 1]], np.float32)}
    labels = {'label': np.array([[1, 0, -1, 0]], np.float32),
              'bbox_target': np.zeros((1, 4, 2, 2)), 'bbox_weight': np.zeros((1, 4, 2, 2))}
    a, b = get_train_metrics(), get_train_metrics()
    nd = {k: mx.nd.array(v) for k, v in preds.items()}
    lb = {k: mx.nd.array(v) for k, v in labels.items()}
    a.update_dict(lb, nd)
    b.update_dict(dict(reversed(list(lb.items()))), dict(reversed(list(nd.items()))))
    assert a.get_name_value() == b.get_name_value()
    assert dict(a.get_name_value())['RCNNAcc'] == 1.0
    del nd['cls_prob_reshape_output']
    with pytest.raises(ValueError, match='cls_prob_reshape_output'):
        get_train_metrics().update_dict(lb, nd)
