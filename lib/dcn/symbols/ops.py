"""Selection of the deformable / position-sensitive operator implementations.

Networks build their DeformableConvolution, DeformablePSROIPooling and PSROIPooling nodes
through :func:`get_sym_ops`, which honours ``cfg.network.BUILTIN_OPS``: false selects the
project's compiled operators (``dcn.ops``), true selects MXNet's ``mx.sym.contrib`` ones.
Both take the same keyword arguments and create ``<name>_weight`` / ``<name>_bias``
variables when they are not given.
"""
import logging
import types

import mxnet as mx

__all__ = ['get_sym_ops', 'builtin_sym_ops', 'use_builtin_ops']

_OP_NAMES = ('DeformableConvolution', 'ModulatedDeformableConvolution',
             'DeformablePSROIPooling', 'PSROIPooling')
_warned = [False]


def builtin_sym_ops():
    """Namespace with MXNet's built-in ``mx.sym.contrib`` operators."""
    ns = types.SimpleNamespace()
    for n in _OP_NAMES:
        fn = getattr(mx.sym.contrib, n, None)
        if fn is not None:
            setattr(ns, n, fn)
    ns.builtin = True
    return ns


def use_builtin_ops(cfg):
    """Value of ``cfg.network.BUILTIN_OPS`` (false when absent)."""
    network = cfg.get('network', {}) if hasattr(cfg, 'get') else getattr(cfg, 'network', {})
    return bool(network.get('BUILTIN_OPS', False))


def get_sym_ops(cfg_or_flag):
    """Return the symbol operator namespace for a config (or a boolean ``builtin`` flag)."""
    builtin = cfg_or_flag if isinstance(cfg_or_flag, bool) else use_builtin_ops(cfg_or_flag)
    try:
        from dcn import ops as dcn_ops
        if not hasattr(dcn_ops, 'sym_ops'):
            raise ImportError('dcn.ops has no sym_ops')
    except (ImportError, OSError) as exc:
        if builtin:
            if not _warned[0]:
                logging.getLogger(__name__).debug(
                    'dcn.ops unavailable (%s); using mx.sym.contrib operators', exc)
                _warned[0] = True
            return builtin_sym_ops()
        raise RuntimeError(
            'network.BUILTIN_OPS is false but the compiled operator library could not be '
            'loaded (%s); run ./init.sh to build it, or set network.BUILTIN_OPS: true to use '
            "MXNet's built-in operators" % exc) from exc
    return dcn_ops.sym_ops(builtin)
