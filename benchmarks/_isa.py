"""Instruction-set settings shared by the CPU benchmarks.

``--isa`` selects the kernels of dcn.ops for a run (``DCN_CPU_ISA`` in the worker process:
``auto`` = the library's choice, the best this CPU supports). With ``--baseline-isa match``
(the default) a run of the ``avx2`` or ``generic`` kernels also caps oneDNN, which MXNet's
own dense convolutions use, at AVX2 (``DNNL_MAX_CPU_ISA=AVX2``): both sides of a ratio then
run the code they would run on a CPU without AVX-512. The BLAS shipped with MXNet (OpenBLAS)
picks its kernels itself; its choice is printed.
"""
import ctypes
import os

ISA_CHOICES = ('auto', 'generic', 'avx2', 'avx512')


def add_arguments(ap):
    ap.add_argument('--isa', nargs='+', default=['auto'], choices=ISA_CHOICES,
                    help='dcn.ops CPU kernels to measure (DCN_CPU_ISA; default: auto)')
    ap.add_argument('--baseline-isa', default='match', choices=['match', 'native'],
                    help='match (default): with --isa avx2/generic, cap oneDNN at AVX2 too; '
                         'native: leave oneDNN its own choice')


def worker_env(env, isa, baseline):
    """env for a worker measuring the dcn.ops kernels `isa`."""
    env = dict(env)
    if isa == 'auto':
        env.pop('DCN_CPU_ISA', None)
    else:
        env['DCN_CPU_ISA'] = isa
    if baseline == 'match' and isa in ('avx2', 'generic'):
        env['DNNL_MAX_CPU_ISA'] = 'AVX2'
    return env


def cpu_description():
    """CPU model and its vector ISA flags, from /proc/cpuinfo (Linux)."""
    model, flags = 'unknown CPU', set()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                key, _, val = line.partition(':')
                key = key.strip()
                if key == 'model name' and model == 'unknown CPU':
                    model = val.strip()
                elif key == 'flags' and not flags:
                    flags = set(val.split())
    except OSError:
        pass
    vec = [f for f in ('avx2', 'fma', 'avx512f', 'avx512vl') if f in flags]
    return '%s, %d logical CPUs, flags: %s' % (model, os.cpu_count() or 0,
                                              ' '.join(vec) if vec else 'no AVX2/AVX-512')


def worker_description():
    """(called in the worker) the kernels in use: dcn.ops ISA, oneDNN cap, OpenBLAS core."""
    import mxnet as mx
    import dcn.ops
    blas = '?'
    try:
        lib = ctypes.CDLL(os.path.join(os.path.dirname(mx.__file__), 'libopenblas.so.0'))
        lib.openblas_get_corename.restype = ctypes.c_char_p
        blas = lib.openblas_get_corename().decode()
    except (OSError, AttributeError):
        pass
    return dict(dcn_isa=dcn.ops.cpu_isa() + (' (GEMM tile 12x%d)' % dcn.ops.gemm_tile()
                                             if dcn.ops.cpu_isa() == 'avx512' else ''),
                onednn=os.environ.get('DNNL_MAX_CPU_ISA', 'native (best available)'),
                openblas=blas)


def header(info):
    return ('dcn.ops kernels: %s | oneDNN max ISA: %s | OpenBLAS core: %s'
            % (info['dcn_isa'], info['onednn'], info['openblas']))
