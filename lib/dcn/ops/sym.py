"""Symbol entry points of the deformable operators (keyword arguments as ``mx.sym.contrib``).

Omitted ``weight`` / ``bias`` inputs are created as variables ``<name>_weight`` /
``<name>_bias``; their shapes are inferred from ``data`` when the symbol is bound. Every
variable input without a shape (those created here too) is declared with the operator's rank
for it, all dimensions 0 (= inferred): MXNet 1.9's shape inference for extension operators
writes one value past its buffer for every input of unknown rank.
"""
import mxnet as mx

from . import _common as C
from ._library import sym_op


def _check(op, inputs):
    syms = []
    for name, value in inputs:
        if value is None:
            raise ValueError('%s: input %r is required' % (op, name))
        if not isinstance(value, mx.sym.Symbol):
            raise TypeError('%s: input %r must be an mxnet Symbol, got %s'
                            % (op, name, type(value).__name__))
        if value.get_children() is None and value.attr('__shape__') is None:
            # a variable: declare its rank (see the module docstring)
            unknown = -1 if mx.util.is_np_shape() else 0
            value._set_attr(__shape__=str((unknown,) * C.INPUT_NDIM[name]))
        syms.append(value)
    return syms


def _name(name, hint):
    return mx.name.NameManager.current.get(name, hint)


def _conv(op, modulated, data, offset, mask, weight, bias, name, attr, kwargs):
    params = C.op_params(op, C.MCONV_PARAMS if modulated else C.CONV_PARAMS, kwargs)
    name = _name(name, op.lower())
    if weight is None:
        weight = mx.sym.var(name + '_weight')
    if bias is None and not C.as_bool('no_bias', params.get('no_bias')):
        bias = mx.sym.var(name + '_bias')
    syms = _check(op, C.conv_inputs(op, modulated, data, offset, mask, weight, bias, params))
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
    syms = _check(op, C.dpsroi_inputs(op, data, rois, trans, params))
    pooled = sym_op(op)(*syms, name=name + '_pool', attr=attr, **params)
    # expose a single output named like the built-in's (<name>_output)
    return mx.sym.identity(pooled[0], name=name, attr=attr)


def Conv1x1DeformablePSROIPooling(data=None, rois=None, weight=None, bias=None, name=None,
                                  attr=None, **kwargs):
    """``DeformablePSROIPooling(no_trans=True)`` of a 1x1 convolution (``weight``, ``bias``;
    created as ``<name>_weight`` / ``<name>_bias`` when omitted) without its output map.
    Forward only, CPU: for test networks (the training networks keep the two layers)."""
    op = 'Conv1x1DeformablePSROIPooling'
    params = C.op_params(op, C.FUSED_PARAMS, kwargs)
    name = _name(name, op.lower())
    if weight is None:
        weight = mx.sym.var(name + '_weight')
    if bias is None:
        bias = mx.sym.var(name + '_bias')
    syms = _check(op, [('data', data), ('rois', rois), ('weight', weight), ('bias', bias)])
    return sym_op(op)(*syms, name=name, attr=attr, **params)


def PSROIPooling(data=None, rois=None, name=None, attr=None, **kwargs):
    """Position-sensitive RoI pooling symbol, as ``mx.sym.contrib.PSROIPooling``."""
    op = 'PSROIPooling'
    params = C.op_params(op, C.PSROI_PARAMS, kwargs)
    name = _name(name, op.lower())
    syms = _check(op, [('data', data), ('rois', rois)])
    return sym_op(op)(*syms, name=name, attr=attr, **params)
