"""The benchmarks' timing rules: rounds interleaved and kept, ratios paired by round
(benchmarks/_timing.py); the operator benchmark's new row and the GEMM benchmark run from
their command lines (the GEMM benchmark checks our GEMM against OpenBLAS as it runs)."""
import importlib.util
import os
import re

import pytest

from _util import ROOT, run_script


def _load(name):
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(ROOT, 'benchmarks', name + '.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


timing = _load('_timing')


def test_paired_ratios_divide_round_by_round():
    # round 1: 4 / 2, round 2: 3 / 3, round 3: 9 / 3
    assert timing.paired_ratios([4.0, 3.0, 9.0], [2.0, 3.0, 3.0]) == [1.0, 2.0, 3.0]
    # the best-of-N ratio of the same rounds is 3 / 2; the rounds' median is 2
    assert timing.median(timing.paired_ratios([4.0, 3.0, 9.0], [2.0, 3.0, 3.0])) == 2.0


def test_median_of_odd_and_even_counts():
    assert timing.median([5.0, 1.0, 3.0]) == 3.0
    assert timing.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    with pytest.raises(ValueError, match='no values'):
        timing.median([])


def test_paired_ratios_reject_unequal_or_empty_rounds():
    with pytest.raises(ValueError, match='got 2 and 1'):
        timing.paired_ratios([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match='got 0 and 0'):
        timing.paired_ratios([], [])


def test_paired_summary_names_median_and_range():
    assert timing.paired_summary([1.0], [1.0]) == ''
    assert timing.paired_summary([4.0, 3.0, 9.0], [2.0, 3.0, 3.0]) == \
        'rounds: median 2.000, range 1.000-3.000'


def test_interleaved_keeps_every_round_in_call_order(monkeypatch):
    bench = _load('bench_e2e')
    calls, clock = [], [0.0]
    monkeypatch.setattr(bench.time, 'perf_counter', lambda: clock[0])
    durations = {'a': [1.0, 5.0, 2.0], 'b': [3.0, 3.0, 1.0]}
    it = {k: iter([0.0] + v) for k, v in durations.items()}  # warm-up first, not timed

    def fn_seq(name):
        def run():
            calls.append(name)
            clock[0] += next(it[name])
        return run

    rounds = bench._interleaved({'a': fn_seq('a'), 'b': fn_seq('b')}, 3)
    assert calls == ['a', 'b'] * 4  # one warm-up each, then round-robin
    assert rounds == durations
    assert bench._best(rounds) == {'a': 1.0, 'b': 1.0}
    line = bench._ratio_line(rounds, 'a', 'b', '', goal=1.1)
    assert line.startswith('deformable / plain: 1.000   goal <= 1.10: met')
    assert 'rounds: median 1.667, range 0.333-2.000' in line


def test_operator_benchmark_runs_the_fused_offset_branch_row():
    out = run_script(['benchmarks/bench_ops.py', '--quick', '--threads', '1', '--repeat', '2',
                      '--only', 'Conv1x1'], timeout=600)
    rows = [line for line in out.splitlines() if line.startswith('Conv1x1DeformablePSROIPooling')]
    assert len(rows) == 1, out[-2000:]
    m = re.match(r'Conv1x1DeformablePSROIPooling fwd\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s+'
                 r'<=0.35\s+(yes|NO)\s+Convolution \+ built-in\s+rounds: median ([0-9.]+), '
                 r'range ([0-9.]+)-([0-9.]+)', rows[0])
    assert m, rows[0]
    ours, base, ratio = (float(m.group(i)) for i in (1, 2, 3))
    assert ours > 0 and base > 0 and abs(ratio - ours / base) < 0.01
    assert float(m.group(6)) <= float(m.group(5)) <= float(m.group(7))


def test_gemm_benchmark_builds_runs_and_checks_every_kernel_set():
    import dcn.ops
    out = run_script(['benchmarks/bench_gemm.py', '--quick', '--threads', '1'], timeout=600)
    isas = [i for i in dcn.ops.available_cpu_isas() if i != 'generic']
    kernels = {'avx2': ['avx2'], 'avx512': ['avx512-tile16', 'avx512-tile32']}
    expected = [k for isa in isas for k in kernels[isa]]
    if not expected:  # a CPU without AVX2 + FMA: the program says so and measures nothing
        assert 'note: no AVX2 + FMA on this CPU, nothing to measure' in out
    for k in expected:
        sg = re.search(r'^sgemm %s\s+96x300x512: ours ([0-9.]+) ms .* OpenBLAS ([0-9.]+) ms .*'
                       r'largest difference ([0-9.e+-]+) of sqrt\(k\)$' % re.escape(k), out, re.M)
        assert sg, out[-3000:]
        assert float(sg.group(1)) > 0 and float(sg.group(2)) > 0
        assert float(sg.group(3)) < 1e-5
        assert re.search(r'^res5 %s\s+1x128x19x32: sampling every panel [0-9.]+ ms, GEMM of '
                         r'pre-sampled panels [0-9.]+ ms' % re.escape(k), out, re.M), out[-3000:]
        assert re.search(r'^micro kernel %s\s+\d+x\d+ tile' % re.escape(k), out, re.M)
    for isa in isas:
        peak = re.search(r'^FMA peak \(%s\): ([0-9.]+) GFLOP/s one thread' % isa, out, re.M)
        assert peak and float(peak.group(1)) > 0, out[-3000:]


def test_gemm_benchmark_measures_nothing_where_the_kernels_cannot_run(monkeypatch):
    # DCN_CPU_ISA_MAX=generic: the library treats the CPU as one without AVX2 + FMA
    monkeypatch.setenv('DCN_CPU_ISA_MAX', 'generic')
    out = run_script(['benchmarks/bench_gemm.py', '--quick', '--threads', '1'], timeout=600)
    assert 'note: no AVX2 + FMA on this CPU, nothing to measure' in out
    assert not re.search(r'^(sgemm|res5|micro kernel|FMA peak) ', out, re.M), out


def test_network_report_gives_best_of_n_and_per_round_ratios(capsys):
    bench = _load('bench_e2e')
    info = dict(dcn_isa='avx2', onednn='AVX2', openblas='Zen')
    rfcn = [dict(net='R-FCN (deformable)', builtin=False, rounds=[1.2, 1.05, 1.3]),
            dict(net='R-FCN (plain)', builtin=False, rounds=[1.0, 1.0, 1.0]),
            dict(net='R-FCN (deformable)', builtin=True, rounds=[2.0, 1.6, 1.7]),
            dict(net='R-FCN (plain)', builtin=True, rounds=[1.0, 1.0, 1.0])]
    deeplab = [dict(dataset='VOC', shape=[360, 600], net='DeepLab (deformable)', rounds=[2.0, 1.0]),
               dict(dataset='VOC', shape=[360, 600], net='DeepLab (plain)', rounds=[1.0, 2.0])]
    fpn = [dict(net='FPN (deformable)', rounds=[3.3]), dict(net='FPN (plain)', rounds=[3.0])]
    bench.report(2, dict(info=info, a=dict(shape=[600, 1000], rows=rfcn), d=dict(rows=deeplab),
                         f=dict(shape=[800, 1280], proposals=2000, rows=fpn)), 3)
    out = capsys.readouterr().out
    # best of 3: 1.05 / 1.0; rounds 1.2, 1.05, 1.3 over 1.0
    assert 'deformable / plain (dcn.ops): 1.050   goal <= 1.10: met   (rounds: median 1.200, ' \
           'range 1.050-1.300)' in out
    assert 'deformable / plain (built-in): 1.600   (rounds: median 1.700, range 1.600-2.000)' in out
    assert re.search(r'^R-FCN \(deformable\)\s+1050\.0\s+1600\.0$', out, re.M)
    # best of 2 is 1.0 / 1.0 although the rounds were 2.0 and 0.5
    assert 'deformable / plain (VOC): 1.000   (rounds: median 1.250, range 0.500-2.000)' in out
    assert re.search(r'^VOC\s+360x600 DeepLab \(deformable\)\s+1000\.0$', out, re.M)
    # a single round: no per-round figure
    assert re.search(r'^deformable / plain: 1\.100$', out, re.M)
