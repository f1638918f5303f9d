"""Argument handling shared by the NDArray and Symbol entry points."""
import re


CONV_PARAMS = ('kernel', 'stride', 'dilate', 'pad', 'num_filter', 'num_group',
               'num_deformable_group', 'workspace', 'no_bias', 'layout')
MCONV_PARAMS = CONV_PARAMS + ('im2col_step',)
DPSROI_PARAMS = ('spatial_scale', 'output_dim', 'group_size', 'pooled_size', 'part_size',
                 'sample_per_part', 'trans_std', 'no_trans')
PSROI_PARAMS = ('spatial_scale', 'output_dim', 'pooled_size', 'group_size')
# rank of every input (the extension API cannot tell a 0-d array from an unknown shape)
INPUT_NDIM = {'data': 4, 'offset': 4, 'mask': 4, 'weight': 4, 'bias': 1, 'rois': 2, 'trans': 4}
FPN_PARAMS = ('feat_strides', 'pooled_size', 'output_dim', 'with_deformable', 'sample_per_part',
              'trans_std')
FPN_DEFAULT_STRIDES = (4, 8, 16, 32)
_FPN_INPUT = re.compile(r'^(data_p\d+|offset_p\d+_(weight|bias))$')
FUSED_PARAMS = ('spatial_scale', 'output_dim', 'group_size', 'pooled_size', 'part_size',
                'sample_per_part')


def as_bool(name, value):
    """Interpret a boolean operator argument given as bool, int or string."""
    if value is None:
        return False
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ('1', 'true'):
            return True
        if v in ('0', 'false'):
            return False
        raise ValueError("argument '%s' must be a boolean, got %r" % (name, value))
    return bool(value)


def op_params(op, allowed, kwargs):
    """Operator attributes from keyword arguments: unknown keys rejected, None dropped."""
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise TypeError('%s() got unexpected keyword argument(s) %s; accepted: %s'
                        % (op, ', '.join(unknown), ', '.join(allowed)))
    return {k: v for k, v in kwargs.items() if v is not None}


def conv_inputs(op, modulated, data, offset, mask, weight, bias, params):
    """Ordered (name, value) inputs of a deformable convolution."""
    names = [('data', data), ('offset', offset)]
    if modulated:
        names.append(('mask', mask))
    elif mask is not None:
        raise ValueError('%s has no mask input' % op)
    names.append(('weight', weight))
    if as_bool('no_bias', params.get('no_bias')):
        if bias is not None:
            raise ValueError("%s: 'bias' was given but no_bias=True" % op)
    else:
        names.append(('bias', bias))
    return names


def dpsroi_inputs(op, data, rois, trans, params):
    names = [('data', data), ('rois', rois)]
    if as_bool('no_trans', params.get('no_trans')):
        if trans is not None:
            raise ValueError("%s: 'trans' was given but no_trans=True (it would be ignored)" % op)
    else:
        names.append(('trans', trans))
    return names


def input_ndim(name):
    """Rank of the operator input ``name`` (FPNROIPooling's per-level inputs included)."""
    if name in INPUT_NDIM:
        return INPUT_NDIM[name]
    if name.startswith('data_p'):
        return 4
    return 2 if name.endswith('_weight') else 1


def fpn_strides(op, params):
    """The pyramid strides of FPNROIPooling (P2 first) from its ``feat_strides`` argument."""
    s = params.get('feat_strides', FPN_DEFAULT_STRIDES)
    if isinstance(s, str):
        s = [int(v) for v in s.strip('()[] ').split(',') if v.strip()]
    try:
        s = tuple(int(v) for v in s)
    except (TypeError, ValueError):
        raise ValueError("%s: argument 'feat_strides' must be a tuple of integers, got %r"
                         % (op, params.get('feat_strides')))
    return s


def fpn_split(op, kwargs):
    """(inputs given by keyword, operator arguments) of an FPNROIPooling call."""
    inputs = {k: v for k, v in kwargs.items() if _FPN_INPUT.match(k)}
    params = op_params(op, FPN_PARAMS, {k: v for k, v in kwargs.items() if k not in inputs})
    return inputs, params


def fpn_inputs(op, inputs, rois, params):
    """Ordered (name, value) inputs of FPNROIPooling: data_p2 .. (one per stride), for
    ``with_deformable`` offset_pX_weight, offset_pX_bias per level, then rois.  An input
    of a level the strides do not have is an error naming it."""
    levels = len(fpn_strides(op, params))
    names = ['data_p%d' % (2 + i) for i in range(levels)]
    deformable = as_bool('with_deformable', params.get('with_deformable'))
    if deformable:
        for i in range(levels):
            names += ['offset_p%d_weight' % (2 + i), 'offset_p%d_bias' % (2 + i)]
    extra = sorted(set(inputs) - set(names))
    if extra:
        raise ValueError(
            '%s: input(s) %s do not belong to this operator: feat_strides %s gives %d pyramid '
            'level(s), inputs %s%s' % (op, ', '.join(extra), params.get(
                'feat_strides', FPN_DEFAULT_STRIDES), levels, ', '.join(names + ['rois']),
                '' if deformable else ' (offset inputs only with with_deformable=True)'))
    return [(n, inputs.get(n)) for n in names] + [('rois', rois)]
