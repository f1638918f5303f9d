"""Symbol entry points of the deformable operators (keyword arguments as ``mx.sym.contrib``).

Every omitted input (``data`` included; ``bias`` unless ``no_bias``; ``trans`` unless
``no_trans``) is created, as MXNet does, as a variable ``<name>_<input>`` (``x_data``,
``x_offset``, ``x_weight``, ``x_bias`` for ``name='x'``) carrying the ``attr`` of the call;
shapes other than the data's are inferred when the symbol is bound. Every variable input
without a shape (those created here too) is declared with the operator's rank for it, all
dimensions 0 (= inferred): MXNet 1.9's shape inference for extension operators writes one
value past its buffer for every input of unknown rank.
"""
import mxnet as mx

from . import _common as C
from ._library import sym_op


def _check(op, inputs, name, attr):
    """The input symbols in order: omitted ones created as variables ``<name>_<input>``,
    every variable's rank declared."""
    syms = []
    for arg, value in inputs:
        if value is None:
            value = mx.sym.var('%s_%s' % (name, arg), attr=attr)
        if not isinstance(value, mx.sym.Symbol):
            raise TypeError('%s: input %r must be an mxnet Symbol, got %s'
                            % (op, arg, type(value).__name__))
        if value.get_children() is None and value.attr('__shape__') is None:
            # a variable: declare its rank (see the module docstring)
            unknown = -1 if mx.util.is_np_shape() else 0
            value._set_attr(__shape__=str((unknown,) * C.input_ndim(arg)))
        syms.append(value)
    return syms


def _name(name, hint):
    return mx.name.NameManager.current.get(name, hint)


def _conv(op, modulated, data, offset, mask, weight, bias, name, attr, kwargs):
    params = C.op_params(op, C.MCONV_PARAMS if modulated else C.CONV_PARAMS, kwargs)
    name = _name(name, op.lower())
    syms = _check(op, C.conv_inputs(op, modulated, data, offset, mask, weight, bias, params),
                  name, attr)
    return sym_op(op)(*syms, name=name, attr=attr, **params)


def DeformableConvolution(data=None, offset=None, weight=None, bias=None, name=None, attr=None,
                          **kwargs):
    """Deformable convolution (DCNv1) symbol, as ``mx.sym.contrib.DeformableConvolution``."""
    return _conv('DeformableConvolution', False, data, offset, None, weight, bias, name, attr,
                 kwargs)


def ModulatedDeformableConvolution(data=None, offset=None, mask=None, weight=None, bias=None,
                                   name=None, attr=None, **kwargs):
    """Modulated deformable convolution (DCNv2) symbol, as
    ``mx.sym.contrib.ModulatedDeformableConvolution``."""
    return _conv('ModulatedDeformableConvolution', True, data, offset, mask, weight, bias, name,
                 attr, kwargs)


def DeformablePSROIPooling(data=None, rois=None, trans=None, name=None, attr=None, **kwargs):
    """Deformable position-sensitive RoI pooling symbol, as
    ``mx.sym.contrib.DeformablePSROIPooling``: one visible output ``<name>_output`` (the
    per-bin sample count is kept internally for the backward pass)."""
    op = 'DeformablePSROIPooling'
    params = C.op_params(op, C.DPSROI_PARAMS, kwargs)
    name = _name(name, op.lower())
    syms = _check(op, C.dpsroi_inputs(op, data, rois, trans, params), name, attr)
    pooled = sym_op(op)(*syms, name=name + '_pool', attr=attr, **params)
    # expose a single output named like the built-in's (<name>_output)
    return mx.sym.identity(pooled[0], name=name, attr=attr)


def Conv1x1DeformablePSROIPooling(data=None, rois=None, weight=None, bias=None, name=None,
                                  attr=None, **kwargs):
    """``DeformablePSROIPooling(no_trans=True)`` of a 1x1 convolution (``weight``, ``bias``)
    without its output map.
    Forward only, CPU: for test networks (the training networks keep the two layers)."""
    op = 'Conv1x1DeformablePSROIPooling'
    params = C.op_params(op, C.FUSED_PARAMS, kwargs)
    name = _name(name, op.lower())
    syms = _check(op, [('data', data), ('rois', rois), ('weight', weight), ('bias', bias)], name,
                  attr)
    return sym_op(op)(*syms, name=name, attr=attr, **params)


def PSROIPooling(data=None, rois=None, name=None, attr=None, **kwargs):
    """Position-sensitive RoI pooling symbol, as ``mx.sym.contrib.PSROIPooling``."""
    op = 'PSROIPooling'
    params = C.op_params(op, C.PSROI_PARAMS, kwargs)
    name = _name(name, op.lower())
    syms = _check(op, [('data', data), ('rois', rois)], name, attr)
    return sym_op(op)(*syms, name=name, attr=attr, **params)


def FPNROIPooling(rois=None, name=None, attr=None, **kwargs):
    """FPN RoI pooling symbol (see :func:`dcn.ops.nd.FPNROIPooling`); omitted inputs are
    created as ``<name>_data_p2``, ``<name>_offset_p2_weight``, ... (a network passes its own
    ``offset_p2_weight`` ... variables)."""
    op = 'FPNROIPooling'
    inputs, params = C.fpn_split(op, kwargs)
    name = _name(name, op.lower())
    syms = _check(op, C.fpn_inputs(op, inputs, rois, params), name, attr)
    return sym_op(op)(*syms, name=name, attr=attr, **params)
