"""Shared test configuration.

The CPU operator tests run once per instruction set the machine supports (``generic``,
``avx2``, ``avx512``; see ``dcn.ops.cpu_isa``): every test of the modules below gets a
module-scoped parameter ``cpu_isa`` that selects the kernels with ``dcn.ops.set_cpu_isa``
(and sets ``DCN_CPU_ISA`` for the child processes a test starts), then restores the default.
Where AVX-512 runs, its GEMM runs with both tile widths (``dcn.ops.set_gemm_tile``): the
CPU's own choice (``isa=avx512``) and the other one (``isa=avx512-tile16`` / ``-tile32``).
"""
import os

import pytest

#: modules whose tests run once per available CPU ISA (besides any ``test_ops_*`` module)
CPU_ISA_MODULES = ('test_fuzz_ops',)


def _available_isas():
    try:
        import dcn.ops
        isas = list(dcn.ops.available_cpu_isas())
        if 'avx512' in isas:
            with dcn.ops.using_gemm_tile('auto'):
                other = [t for t in dcn.ops.GEMM_TILES if t != dcn.ops.gemm_tile()]
            isas += ['avx512-tile%d' % t for t in other]
        return isas
    except Exception:  # noqa: BLE001 - library missing: the tests report it themselves
        return ['default']


def pytest_generate_tests(metafunc):
    name = metafunc.module.__name__.rsplit('.', 1)[-1]
    if not (name.startswith('test_ops_') or name in CPU_ISA_MODULES):
        return
    if 'cpu_isa' not in metafunc.fixturenames:
        metafunc.fixturenames.append('cpu_isa')
    metafunc.parametrize('cpu_isa', _available_isas(), indirect=True, scope='module',
                         ids=lambda isa: 'isa=%s' % isa)


@pytest.fixture(scope='module')
def cpu_isa(request):
    """The CPU ISA the operator kernels use during the module's tests."""
    isa = getattr(request, 'param', 'default')
    if isa == 'default':
        yield isa
        return
    import dcn.ops
    name, _, tile = isa.partition('-tile')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('DCN_CPU_ISA', name)
        if tile:
            mp.setenv('DCN_CPU_GEMM_TILE', tile)
        with dcn.ops.using_cpu_isa(name), dcn.ops.using_gemm_tile(int(tile) if tile else 'auto'):
            yield isa
