#!/usr/bin/env python
"""The CPU GEMM of operator_cxx/dcn_gemm.h, per kernel set, against the core's peak and the
BLAS MXNet ships.

Compiles benchmarks/bench_gemm.cc with the flags of operator_cxx/build.sh (g++, or CXX),
links it to MXNet's OpenBLAS and runs it once per thread count (OMP_NUM_THREADS and
OPENBLAS_NUM_THREADS set). For every kernel set this CPU runs (avx2; avx512 with 12 x 16
and 12 x 32 tiles) it prints:

- the core's FMA peak (12 chains of vector FMAs in registers), one thread and all threads;
- the micro kernel on L1-resident panels, GFLOP/s and its share of the one-thread peak;
- C = A B of stored matrices (default 512 x 2394 x 4608, the res5 forward's GEMM): ours
  against OpenBLAS's cblas_sgemm, interleaved, best of N, the ratio of the best times and
  the median of the per-round ratios (benchmarks/_timing.py); the program fails when the two results differ by
  more than float rounding;
- the res5 deformable convolution forward split into its parts: sampling every B panel
  once, the GEMM of the pre-sampled panels (read from memory), the GEMM alone (panels
  copied from cache-resident ones) and the fused forward the operator runs.

    PYTHONPATH=lib python benchmarks/bench_gemm.py [--threads 1 2] [--repeat 7]
        [--shape M N K] [--quick]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _isa  # noqa: E402
import _timing  # noqa: E402

SOURCE = os.path.join(ROOT, 'benchmarks', 'bench_gemm.cc')


def mxnet_dir():
    """The installed mxnet package's folder (holds libopenblas.so.0), without importing it."""
    import importlib.util
    spec = importlib.util.find_spec('mxnet')
    if spec is None:
        raise SystemExit('bench_gemm: mxnet is not installed for %s' % sys.executable)
    return os.path.dirname(spec.origin)


def build(out_dir):
    """Compiles bench_gemm.cc into out_dir; returns the program's path."""
    cxx = shutil.which(os.environ.get('CXX', 'g++'))
    if not cxx:
        raise SystemExit('bench_gemm: C++ compiler %r not found (set CXX)'
                         % os.environ.get('CXX', 'g++'))
    mx = mxnet_dir()
    blas = os.path.join(mx, 'libopenblas.so.0')
    if not os.path.isfile(blas):
        raise SystemExit('bench_gemm: %s not found (the BLAS shipped with the mxnet wheel)' % blas)
    exe = os.path.join(out_dir, 'bench_gemm')
    cmd = [cxx, '-std=c++17', '-O3', '-fopenmp', '-march=x86-64-v2', '-mtune=generic',
           '-fno-math-errno', '-Wno-psabi', '-I', os.path.join(ROOT, 'operator_cxx'), SOURCE,
           os.path.join(ROOT, 'operator_cxx', 'dcn_cpu_isa.cc'), blas, '-Wl,-rpath,' + mx,
           '-o', exe]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise SystemExit('bench_gemm: compiling %s failed:\n%s' % (SOURCE, proc.stdout[-4000:]))
    return exe


def parse(line):
    """'name: key value key value ...' -> (name, {key: value}) (numbers as float)."""
    name, _, rest = line.partition(':')
    words = rest.split()
    out = {}
    for k, v in zip(words[0::2], words[1::2]):
        try:
            out[k] = float(v)
        except ValueError:
            out[k] = v
    return name.strip(), out


def rounds(value):
    """'t1,t2,...' (ms, as the program prints a measurement's rounds) -> [t1, t2, ...]"""
    return [float(v) for v in str(value).split(',')]


def report(nt, lines):
    print('\nOMP_NUM_THREADS=%d' % nt)
    for name, d in lines:
        if name == 'threads':
            print('threads: ours %d, OpenBLAS %d' % (d['ours'], d['openblas']))
        elif name == 'peak':
            print('FMA peak (%s): %.1f GFLOP/s one thread, %.1f all %d threads'
                  % (d['isa'], d['gflops_1thread'], d['gflops_all'], nt))
        elif name == 'micro':
            print('micro kernel %-14s %5s tile on L1-resident panels: %6.1f GFLOP/s = %3.0f %% '
                  'of the one-thread peak' % (d['kernels'], d['tile'], d['gflops'],
                                              100 * d['gflops'] / d['peak_1thread']))
        elif name == 'sgemm':
            ours, blas = rounds(d['ours_rounds_ms']), rounds(d['blas_rounds_ms'])
            paired = _timing.paired_summary(ours, blas)
            print('sgemm %-14s %dx%dx%d: ours %.1f ms (%.1f GFLOP/s), OpenBLAS %.1f ms '
                  '(%.1f GFLOP/s): ratio %.3f%s; largest difference %.1e of sqrt(k)'
                  % (d['kernels'], d['m'], d['n'], d['k'], min(ours), d['ours_gflops'],
                     min(blas), d['blas_gflops'], min(ours) / min(blas),
                     ' (%s)' % paired if paired else '', d['max_diff_rel']))
        elif name == 'res5':
            print('res5 %-15s %s: sampling every panel %.1f ms, GEMM of pre-sampled panels '
                  '%.1f ms (%.1f GFLOP/s), GEMM alone %.1f ms (%.1f GFLOP/s), fused forward '
                  '%.1f ms (%.1f GFLOP/s; median %.1f)'
                  % (d['kernels'], d['shape'], d['sampling_ms'], d['gemm_presampled_ms'],
                     d['gemm_presampled_gflops'], d['gemm_cached_ms'], d['gemm_cached_gflops'],
                     d['fused_ms'], d['fused_gflops'], d['fused_median_ms']))
        else:
            print('%s: %s' % (name, ' '.join('%s %s' % kv for kv in d.items())))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    ap.add_argument('--repeat', type=int, default=7, help='best of N (default 7)')
    ap.add_argument('--shape', type=int, nargs=3, metavar=('M', 'N', 'K'),
                    default=[512, 2394, 4608],
                    help='the stored-matrix GEMM (default: res5, 512 2394 4608)')
    ap.add_argument('--quick', action='store_true',
                    help='small shapes and short loops (a check that it runs)')
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error('--repeat must be at least 1')
    if min(args.shape) < 1:
        ap.error('--shape: M, N and K must be positive')
    if any(t < 1 for t in args.threads):
        ap.error('--threads: counts must be positive')
    if args.quick:
        args.shape = [min(args.shape[0], 96), min(args.shape[1], 300), min(args.shape[2], 512)]
        args.repeat = min(args.repeat, 2)
    print('CPU: %s' % _isa.cpu_description())
    with tempfile.TemporaryDirectory(prefix='dcn_bench_gemm_') as tmp:
        exe = build(tmp)
        for nt in args.threads:
            env = dict(os.environ, OMP_NUM_THREADS=str(nt), OPENBLAS_NUM_THREADS=str(nt))
            proc = subprocess.run([exe] + [str(v) for v in args.shape] +
                                  [str(args.repeat), '1' if args.quick else '0'], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for line in proc.stdout.splitlines():
                if line.startswith('note: '):
                    print(line)
            report(nt, [parse(line) for line in proc.stdout.splitlines()
                        if re.match(r'^\w+:', line) and not line.startswith('note: ')])
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr)
                raise SystemExit('bench_gemm: the benchmark failed (exit %d)' % proc.returncode)


if __name__ == '__main__':
    main()
