/*
 * dcn_cpu_isa.h - which instruction set the CPU kernels use.
 *
 * The library is compiled for baseline x86-64-v2 (SSE4.2, no AVX).  The tuned
 * kernels (GEMM micro kernels, column sampling, row sums) are compiled a second
 * and third time for AVX2+FMA and AVX-512 (function target attributes, see
 * dcn_simd.h) and selected at run time:
 *
 *   generic  portable code: im2col + the BLAS shipped with MXNet (OpenBLAS,
 *            which dispatches by itself), scalar sampling;
 *   avx2     AVX2 + FMA kernels (Haswell, Zen 1-3 and later);
 *   avx512   AVX-512 F/VL kernels (Skylake-SP, Ice Lake, Zen 4 and later).
 *
 * At load the best ISA the CPU supports is selected, or the one named by the
 * environment variable DCN_CPU_ISA (generic | avx2 | avx512 | auto).  A
 * request the CPU cannot run falls back to the best supported ISA below it,
 * with a message on stderr; the faster kernels are never executed on a CPU
 * without them.  DCN_CPU_ISA_MAX (generic | avx2) makes the library treat the
 * ISAs above it as unsupported, as on an older CPU.  The AVX-512 GEMM has two tile
 * widths, 12 x 16 and 12 x 32: auto picks 32 on Intel CPUs (two 512-bit FMA units per
 * core), 16 elsewhere; DCN_CPU_GEMM_TILE (16 | 32 | auto) or dcn_cpu_gemm_tile_set()
 * overrides it.  Built with
 * -DDCN_NO_SIMD_KERNELS (or not for x86-64 with GCC / Clang) the library has the
 * generic kernels only.  dcn_cpu_isa_set() changes the selection at run time (the
 * Python wrapper dcn.ops.set_cpu_isa waits for MXNet's pending operations
 * first: a change must not happen while an operator runs).
 */
#ifndef DCN_CPU_ISA_H_
#define DCN_CPU_ISA_H_

#if defined(__x86_64__) && defined(__GNUC__) && !defined(DCN_NO_SIMD_KERNELS)
#define DCN_HAVE_X86_KERNELS 1
#endif

namespace dcn {
namespace cpu {

enum Isa : int { kIsaGeneric = 0, kIsaAvx2 = 1, kIsaAvx512 = 2 };

/*! \brief the ISA the kernels use now (one atomic load) */
int isa_current();
/*! \brief whether this CPU (and OS) can run the kernels of `isa` */
bool isa_supported(int isa);
/*! \brief whether the AVX-512 GEMM uses its 12 x 32 tiles (else 12 x 16) */
bool gemm_wide_tiles();
/*! \brief "generic", "avx2", "avx512" */
const char* isa_name(int isa);

}  // namespace cpu
}  // namespace dcn

extern "C" {
/*!
 * \brief select the kernels by name ("generic", "avx2", "avx512" or "auto" = the
 * best this CPU supports).  Returns 0 on success, -1 for an unknown name, -2 when
 * this CPU cannot run that ISA (the selection is then unchanged).
 */
int dcn_cpu_isa_set(const char* name);
/*! \brief name of the selected ISA */
const char* dcn_cpu_isa_get();
/*! \brief 1 when this CPU can run the named ISA, 0 when not, -1 for an unknown name */
int dcn_cpu_isa_supported(const char* name);
/*!
 * \brief AVX-512 GEMM tile width: 16, 32 or 0 (auto, the CPU's best).  Returns 0, or -1
 * for another value.  Like dcn_cpu_isa_set, not while an operator runs.
 */
int dcn_cpu_gemm_tile_set(int cols);
/*! \brief the AVX-512 GEMM tile width in use (16 or 32) */
int dcn_cpu_gemm_tile_get();
}

#endif  // DCN_CPU_ISA_H_
