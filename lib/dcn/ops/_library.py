"""Locating, checking and loading the compiled operator library ``libdcn_ops.so``."""
import os
import threading

import mxnet as mx

LIB_DIR = os.path.dirname(os.path.abspath(__file__))
CPU_LIB_PATH = os.path.join(LIB_DIR, 'libdcn_ops.so')
#: CPU + GPU registrations (built when nvcc is present); only for an MXNet built with CUDA
CUDA_LIB_PATH = os.path.join(LIB_DIR, 'libdcn_ops_cuda.so')


def mxnet_has_cuda():
    """True when the running MXNet was built with CUDA."""
    try:
        return bool(mx.runtime.Features().is_enabled('CUDA'))
    except Exception:  # noqa: BLE001 - feature query unavailable: assume a CPU build
        return False


#: the library loaded: the CUDA one when MXNet has CUDA and it was built, else the CPU one
LIB_PATH = CUDA_LIB_PATH if mxnet_has_cuda() and os.path.isfile(CUDA_LIB_PATH) else CPU_LIB_PATH
VERSION_PATH = os.path.join(LIB_DIR, 'libdcn_ops.mxnet_version')
#: prefix of the registered operator names (avoids MXNet's built-in names)
OP_PREFIX = 'dcn_'
OP_NAMES = ('DeformableConvolution', 'ModulatedDeformableConvolution',
            'DeformablePSROIPooling', 'PSROIPooling')
#: operators of the project only (no mx.contrib counterpart): forward-only fusions for the
#: test networks on the CPU, and the feature-pyramid RoI pooling of FPN
EXTRA_OP_NAMES = ('Conv1x1DeformablePSROIPooling', 'FPNROIPooling')

_lock = threading.Lock()
_state = {'loaded': False, 'error': None}


class OperatorLibraryError(RuntimeError):
    """The compiled operator library is missing, stale or cannot be loaded."""


def _check_files():
    if not os.path.isfile(LIB_PATH):
        raise OperatorLibraryError(
            'The deformable operator library %s is missing. Build it with ./init.sh '
            '(or operator_cxx/build.sh).' % LIB_PATH)
    if not os.path.isfile(VERSION_PATH):
        raise OperatorLibraryError(
            'The deformable operator library %s has no version record %s; it was not built by '
            'operator_cxx/build.sh. Rebuild it with ./init.sh.' % (LIB_PATH, VERSION_PATH))
    with open(VERSION_PATH) as f:
        built_for = f.read().strip()
    if built_for != mx.__version__:
        raise OperatorLibraryError(
            'The deformable operator library %s was built for MXNet %s but MXNet %s is running. '
            'Rebuild it with ./init.sh.' % (LIB_PATH, built_for or '<unknown>', mx.__version__))


def load_library():
    """Load ``libdcn_ops.so`` into MXNet once; raise :class:`OperatorLibraryError` on failure.

    Safe to call many times and from several threads.
    """
    if _state['loaded']:
        return
    with _lock:
        if _state['loaded']:
            return
        if _state['error'] is not None:
            raise OperatorLibraryError(_state['error'])
        try:
            _check_files()
            try:
                mx.library.load(LIB_PATH, False)
            except mx.base.MXNetError as e:
                raise OperatorLibraryError(
                    'Loading the deformable operator library %s failed (%s). Rebuild it with '
                    './init.sh.' % (LIB_PATH, str(e).strip().splitlines()[-1] if str(e) else e))
            missing = [n for n in OP_NAMES + EXTRA_OP_NAMES if not hasattr(mx.nd, OP_PREFIX + n)]
            if missing:
                raise OperatorLibraryError(
                    'The deformable operator library %s does not register %s. Rebuild it with '
                    './init.sh.' % (LIB_PATH, ', '.join(OP_PREFIX + n for n in missing)))
        except OperatorLibraryError as e:
            _state['error'] = str(e)
            raise
        _state['loaded'] = True


def is_loaded():
    """True once the library has been loaded successfully."""
    return _state['loaded']


def nd_op(name):
    load_library()
    return getattr(mx.nd, OP_PREFIX + name)


def sym_op(name):
    load_library()
    return getattr(mx.sym, OP_PREFIX + name)
