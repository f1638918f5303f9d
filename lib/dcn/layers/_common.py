"""Helpers shared by the training-graph operators."""
import ast

import numpy as np


def parse_floats(text, name):
    """Parse a tuple of numbers passed to a CustomOp as a string, e.g. '(8, 16, 32)'."""
    if isinstance(text, (tuple, list, np.ndarray)):
        values = list(text)
    else:
        try:
            values = ast.literal_eval(str(text))
        except (ValueError, SyntaxError):
            raise ValueError('%s: cannot parse %r as a tuple of numbers' % (name, text))
        if not isinstance(values, (tuple, list)):
            values = [values]
    try:
        return tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError('%s: cannot parse %r as a tuple of numbers' % (name, text))


def parse_bool(text):
    if isinstance(text, bool):
        return text
    return str(text).strip().lower() in ('true', '1', 'yes')


def tuple_str(values):
    """Format numbers for a CustomOp keyword argument (a plain string)."""
    return '(' + ','.join(repr(float(v)) for v in values) + ')'


def nms_function(thresh):
    """Greedy NMS ``f(dets) -> keep`` at IoU ``thresh`` (the compiled CPU NMS, as the
    tester's)."""
    from dcn.nms import cpu_nms_wrapper
    return cpu_nms_wrapper(thresh)


def zero_grads(op, req, in_grad):
    for i, g in enumerate(in_grad):
        op.assign(g, req[i], 0)


def check_error(prop):
    """Raise the argument error a CustomOpProp recorded at construction."""
    if getattr(prop, '_error', None):
        raise ValueError(prop._error)
