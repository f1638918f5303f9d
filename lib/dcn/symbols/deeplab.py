"""DeepLab (and Deformable DeepLab) semantic segmentation on a ResNet-v1 backbone, as the
original's ``deeplab/symbols/resnet_v1_101_deeplab[_dcn].py``.

Network: conv1..res4 (stride 16), res5 without stride and with its 3x3 convolutions dilated
by 2 (output stride 16, no ASPP); in the deformable variant the three res5 ``branch2b``
layers are DeformableConvolutions (1 deformable group) whose offsets come from 3x3
convolutions ``<layer>_offset`` (18 outputs, pad 1, no dilation, bias; lr_mult 1 / 2).
Head: ``fc6`` (1x1, 1024, bias; lr_mult 1 / 2) + ReLU ``relu_fc6``, ``score`` (1x1,
num_classes; lr_mult 1 / 2), ``upsampling`` (Deconvolution, kernel 32, stride 16, one group
per class, no bias, declared with ``lr_mult`` 0 so its bilinear weight stays fixed),
``croped_score`` (Crop to the input size at offset (8, 8)) and ``softmax`` (SoftmaxOutput,
multi_output, ignore label 255, 'valid' normalisation).

Test symbol: inputs ``data``, ``softmax_label`` (unused, inferred as (N, H*W)); output
``softmax_output`` (N, C, H, W). Training symbol: inputs ``data``, ``label`` (N, 1, H, W);
same output.

Symbol class API (docs/DESIGN.md): ``get_symbol(cfg, is_train)``, ``init_weight(cfg,
arg_params, aux_params)``, ``get_fixed_params(cfg)``, ``param_shapes(cfg)``.
"""
import mxnet as mx

from dcn.modeling.base import Model
from dcn.modeling.meta_arch import sym_ops as _sym_ops
from dcn.modeling.names import NameTable
from dcn.modeling.registry import SEM_SEG_HEADS

from .resnet import RESNET_V1_101, RESNET_V1_18_SMALL

__all__ = ['DeepLab', 'RESNET_V1_101_DEEPLAB', 'RESNET_V1_18_SMALL_DEEPLAB', 'IGNORE_LABEL',
           'seg_softmax', 'bilinear_upsampling_weight']

IGNORE_LABEL = 255

# DeepLab's deformable res5: one deformable group, plain 3x3 offset convolutions (pad 1, no
# dilation) with lr_mult 1 (weight) / 2 (bias)
RESNET_V1_101_DEEPLAB = RESNET_V1_101.replace(num_deformable_group=1, offset_dilated=False,
                                              offset_lr_mult=(1.0, 2.0))
RESNET_V1_18_SMALL_DEEPLAB = RESNET_V1_18_SMALL.replace(num_deformable_group=1,
                                                        offset_dilated=False,
                                                        offset_lr_mult=(1.0, 2.0))

_HEAD_STD = {'fc6': 0.01, 'score': 0.01}

#: names of the segmentation graph (the test symbol also takes the unused ``softmax_label``)
SEGMENTATION = NameTable('semantic segmentation', train_data=('data',), train_labels=('label',),
                         train_outputs=('softmax',), test_data=('data',),
                         test_outputs=('softmax',))


@SEM_SEG_HEADS.register('deeplab')
def deeplab_head(feature, data, num_classes, fc6_hidden=1024):
    """``fc6`` + ReLU, ``score``, the frozen bilinear ``upsampling`` (x16) and
    ``croped_score`` (Crop to ``data`` at offset (8, 8)): per-pixel class scores."""
    fc6 = mx.sym.Convolution(
        data=feature, name='fc6', kernel=(1, 1), pad=(0, 0), num_filter=fc6_hidden,
        weight=mx.sym.Variable('fc6_weight', lr_mult=1.0),
        bias=mx.sym.Variable('fc6_bias', lr_mult=2.0))
    relu_fc6 = mx.sym.Activation(data=fc6, act_type='relu', name='relu_fc6')
    score = mx.sym.Convolution(
        data=relu_fc6, name='score', kernel=(1, 1), pad=(0, 0), num_filter=num_classes,
        weight=mx.sym.Variable('score_weight', lr_mult=1.0),
        bias=mx.sym.Variable('score_bias', lr_mult=2.0))
    # attr lr_mult on the operator: MXNet puts __lr_mult__ 0.0 on upsampling_weight
    upsampling = mx.sym.Deconvolution(
        data=score, name='upsampling', num_filter=num_classes, kernel=(32, 32),
        stride=(16, 16), num_group=num_classes, no_bias=True, attr={'lr_mult': '0.0'})
    return mx.sym.Crop(upsampling, data, offset=(8, 8), name='croped_score')


def seg_softmax(croped_score, label=None, name='softmax'):
    """Pixel-wise softmax loss: multi_output, ignore label 255, 'valid' normalisation (the
    loss is averaged over the pixels whose label is not 255). Without ``label`` MXNet
    creates the input ``softmax_label``."""
    kw = {} if label is None else {'label': label}
    return mx.sym.SoftmaxOutput(data=croped_score, normalization='valid', multi_output=True,
                                use_ignore=True, ignore_label=IGNORE_LABEL, name=name, **kw)


def bilinear_upsampling_weight(shape):
    """The bilinear kernel MXNet's ``Initializer._init_bilinear`` gives an array of ``shape``
    (the original initialises ``upsampling_weight`` with it)."""
    arr = mx.nd.zeros(shape)
    mx.init.Initializer()._init_bilinear('upsampling_weight', arr)
    return arr


class DeepLab(Model):
    """Base class of the DeepLab network modules (``deeplab/symbols``).

    Initialisation as the original: offset layers zero; ``fc6`` and ``score``
    normal(0, 0.01) with zero biases; ``upsampling_weight`` bilinear. From scratch
    (``network.pretrained`` empty) ``fc6``, the hidden ReLU layer, gets He initialisation
    instead, and the backbone the rules of :meth:`dcn.modeling.base.Model.init_weight`.
    """

    names = SEGMENTATION
    sem_seg_head = 'deeplab'
    in_feature = 'res5'
    backbone = RESNET_V1_101_DEEPLAB
    fc6_hidden = 1024
    head_std = _HEAD_STD
    head_init = {'upsampling': bilinear_upsampling_weight}
    hidden_head_layers = ('fc6',)

    #: no box-regression layers (nothing is (un)normalised in the checkpoints)
    bbox_layers = ()

    # ------------------------------------------------------------------ pipeline
    def load_train_db(self, cfg, image_set):
        """The training segdb of ``image_set`` ('+'-combined), mirrored copies appended
        with ``TRAIN.FLIP``."""
        from dcn.dataset.segmentation import load_gt_segdb
        return load_gt_segdb(cfg, image_set, flip=cfg.TRAIN.FLIP)[1]

    def build_train_loader(self, sym, segdb, cfg, batch_size, ctx, seed):
        """Training batches ``data`` / ``label`` (:class:`dcn.seg_loader.SegTrainLoader`)."""
        from dcn.seg_loader import SegTrainLoader
        return SegTrainLoader(segdb, cfg, batch_size=batch_size, shuffle=cfg.TRAIN.SHUFFLE,
                              ctx=ctx, seed=seed)

    def train_metrics(self, cfg):
        """Pixel accuracy and log loss of the ``softmax`` output."""
        from dcn.seg_loader import get_seg_train_metrics
        return get_seg_train_metrics(self.names)

    def max_train_shapes(self, cfg, loader, batch_size):
        """(data shapes, label shapes) of the largest training input: the crop with
        ``TRAIN.ENABLE_CROP``, else the largest resized image (``SCALES``)."""
        from dcn.config import get_scales
        if cfg.TRAIN.get('ENABLE_CROP', False):
            h, w = int(cfg.TRAIN.CROP_HEIGHT), int(cfg.TRAIN.CROP_WIDTH)
        else:
            scales = get_scales(cfg)
            h = max(max(s) for s in scales)
            w = h
        return [('data', (batch_size, 3, h, w))], [('label', (batch_size, 1, h, w))]

    @staticmethod
    def test_net(*args, **kwargs):
        """Test a checkpoint (:func:`dcn.engine.seg_tester.test_segmentation`)."""
        from dcn.engine.seg_tester import test_segmentation
        return test_segmentation(*args, **kwargs)

    # ------------------------------------------------------------------ network
    def _num_classes(self, cfg):
        try:
            num_classes = int(cfg.dataset.NUM_CLASSES)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError('config is missing dataset.NUM_CLASSES needed by %s: %s'
                             % (type(self).__name__, exc)) from None
        if num_classes < 2:
            raise ValueError('dataset.NUM_CLASSES must be >= 2, got %r' % (num_classes,))
        return num_classes

    def get_symbol(self, cfg, is_train=False):
        num_classes = self._num_classes(cfg)
        ops = _sym_ops(cfg) if self.deformable else None
        data = mx.sym.Variable('data')
        label = mx.sym.Variable('label') if is_train else None
        feats, _ = self.build_backbone(data, cfg, is_train, ops)
        croped_score = SEM_SEG_HEADS.get(self.sem_seg_head)(
            feats[self.in_feature], data, num_classes, fc6_hidden=self.fc6_hidden)
        self.sym = seg_softmax(croped_score, label)
        return self.sym

    # ------------------------------------------------------------------ shapes
    @property
    def input_names(self):
        """The graph's inputs; the test graph also takes the unused ``softmax_label``."""
        return super(DeepLab, self).input_names + ('softmax_label',)
