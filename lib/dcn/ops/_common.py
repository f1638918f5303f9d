"""Argument handling shared by the NDArray and Symbol entry points."""

CONV_PARAMS = ('kernel', 'stride', 'dilate', 'pad', 'num_filter', 'num_group',
               'num_deformable_group', 'workspace', 'no_bias', 'layout')
MCONV_PARAMS = CONV_PARAMS + ('im2col_step',)
DPSROI_PARAMS = ('spatial_scale', 'output_dim', 'group_size', 'pooled_size', 'part_size',
                 'sample_per_part', 'trans_std', 'no_trans')
PSROI_PARAMS = ('spatial_scale', 'output_dim', 'pooled_size', 'group_size')
# rank of every input (the extension API cannot tell a 0-d array from an unknown shape)
INPUT_NDIM = {'data': 4, 'offset': 4, 'mask': 4, 'weight': 4, 'bias': 1, 'rois': 2, 'trans': 4}
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
