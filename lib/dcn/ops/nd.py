"""NDArray entry points of the deformable operators (keyword arguments as ``mx.nd.contrib``)."""
import mxnet as mx

from . import _common as C
from ._library import nd_op



def _check(op, inputs):
    arrays = []
    for name, value in inputs:
        if value is None:
            raise ValueError('%s: input %r is required' % (op, name))
        if not isinstance(value, mx.nd.NDArray):
            raise TypeError('%s: input %r must be an mxnet NDArray, got %s'
                            % (op, name, type(value).__name__))
        if value.ndim != C.input_ndim(name):
            raise mx.base.MXNetError('%s: input %r must be %d-D, got shape %s'
                                     % (op, name, C.input_ndim(name), value.shape))
        if value.size == 0:
            raise mx.base.MXNetError('%s: input %r must not be empty, got shape %s'
                                     % (op, name, value.shape))
        arrays.append(value)
    return arrays


def _finish(result, out):
    if out is not None:
        result.copyto(out)
        return out
    return result


def DeformableConvolution(data=None, offset=None, weight=None, bias=None, out=None, name=None,
                          **kwargs):
    """Deformable convolution (DCNv1), same arguments and result as
    ``mx.nd.contrib.DeformableConvolution``."""
    op = 'DeformableConvolution'
    params = C.op_params(op, C.CONV_PARAMS, kwargs)
    arrays = _check(op, C.conv_inputs(op, False, data, offset, None, weight, bias, params))
    return nd_op(op)(*arrays, out=out, **params)


def ModulatedDeformableConvolution(data=None, offset=None, mask=None, weight=None, bias=None,
                                   out=None, name=None, **kwargs):
    """Modulated deformable convolution (DCNv2), same arguments and result as
    ``mx.nd.contrib.ModulatedDeformableConvolution``."""
    op = 'ModulatedDeformableConvolution'
    params = C.op_params(op, C.MCONV_PARAMS, kwargs)
    arrays = _check(op, C.conv_inputs(op, True, data, offset, mask, weight, bias, params))
    return nd_op(op)(*arrays, out=out, **params)


def DeformablePSROIPooling(data=None, rois=None, trans=None, out=None, name=None, **kwargs):
    """Deformable position-sensitive RoI pooling, same arguments and result as
    ``mx.nd.contrib.DeformablePSROIPooling`` (the pooled map)."""
    op = 'DeformablePSROIPooling'
    params = C.op_params(op, C.DPSROI_PARAMS, kwargs)
    arrays = _check(op, C.dpsroi_inputs(op, data, rois, trans, params))
    return _finish(nd_op(op)(*arrays, **params)[0], out)


def DeformablePSROIPooling_with_count(data=None, rois=None, trans=None, **kwargs):
    """As :func:`DeformablePSROIPooling`, returning ``(output, top_count)`` where ``top_count``
    holds the number of in-map samples averaged in each bin."""
    op = 'DeformablePSROIPooling'
    params = C.op_params(op, C.DPSROI_PARAMS, kwargs)
    arrays = _check(op, C.dpsroi_inputs(op, data, rois, trans, params))
    res = nd_op(op)(*arrays, **params)
    return res[0], res[1]


def Conv1x1DeformablePSROIPooling(data=None, rois=None, weight=None, bias=None, out=None,
                                  name=None, **kwargs):
    """``DeformablePSROIPooling(no_trans=True)`` of the 1x1 convolution of ``data`` with
    ``weight`` (output_dim * group_size^2, C, 1, 1) and ``bias``, without computing the
    convolution's output map (forward only, CPU)."""
    op = 'Conv1x1DeformablePSROIPooling'
    params = C.op_params(op, C.FUSED_PARAMS, kwargs)
    arrays = _check(op, [('data', data), ('rois', rois), ('weight', weight), ('bias', bias)])
    return nd_op(op)(*arrays, out=out, **params)


def PSROIPooling(data=None, rois=None, out=None, name=None, **kwargs):
    """Position-sensitive RoI pooling (R-FCN), same arguments and result as
    ``mx.nd.contrib.PSROIPooling``."""
    op = 'PSROIPooling'
    params = C.op_params(op, C.PSROI_PARAMS, kwargs)
    arrays = _check(op, [('data', data), ('rois', rois)])
    return nd_op(op)(*arrays, out=out, **params)


def FPNROIPooling(rois=None, out=None, name=None, **kwargs):
    """RoI pooling on a feature pyramid (the original FPN's ``fpn_roi_pooling``): each RoI
    is pooled from the level k = clip(floor(2 + log2(sqrt(w h) / 224)), 0, levels - 1) only.

    Inputs by keyword: ``data_p2``, ``data_p3``, ... (one map per entry of ``feat_strides``,
    default (4, 8, 16, 32)), ``rois`` (R, 5); with ``with_deformable=True`` also
    ``offset_p2_weight`` (2 P^2, P^2 C), ``offset_p2_bias`` (2 P^2), ... per level.
    Arguments: ``feat_strides``, ``pooled_size`` (P, 7), ``with_deformable`` (False),
    ``output_dim`` (256, the channels of the maps when deformable), ``sample_per_part`` (4),
    ``trans_std`` (0.1).  Plain: ROIPooling (max); deformable: DeformablePSROIPooling
    no_trans -> FullyConnected with the level's offset weights -> DeformablePSROIPooling
    with those offsets.  Output (R, C, P, P) in RoI order."""
    op = 'FPNROIPooling'
    inputs, params = C.fpn_split(op, kwargs)
    arrays = _check(op, C.fpn_inputs(op, inputs, rois, params))
    return nd_op(op)(*arrays, out=out, **params)
