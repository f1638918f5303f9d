/*
 * dcn_gemm_avx512.h - single-precision GEMM for CPUs with AVX-512F.
 *
 * The library is compiled for baseline x86-64-v2 (no AVX), and the BLAS
 * shipped with MXNet dispatches at best to AVX2 kernels; on CPUs with full
 * width AVX-512 units this GEMM is about twice as fast.  Only the functions in
 * this file are compiled for AVX-512 (target attribute) and they are called
 * only after a runtime CPU check (dcn::cpu::avx512::available()), so the
 * library stays safe on any x86-64 machine.
 *
 * Classic packed GEMM: C (m x n, row-major, ldc) = op(A) op(B) + beta C with
 * op(A) m x k, op(B) k x n; B is packed into k-major panels of NR = 32 columns,
 * A into k-major panels of MR = 12 rows; a 12 x 32 register-blocked micro
 * kernel (24 zmm accumulators) does the work.  OpenMP over row blocks.
 */
#ifndef DCN_GEMM_AVX512_H_
#define DCN_GEMM_AVX512_H_

#if defined(__x86_64__) && defined(__GNUC__)
#define DCN_HAVE_AVX512_GEMM 1
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <algorithm>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace dcn {
namespace cpu {
namespace avx512 {

constexpr int MR = 12, NR = 32, KC = 256;

inline bool available() {
  static const bool ok = [] {
    if (getenv("DCN_DISABLE_AVX512")) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
  }();
  return ok;
}

/*!
 * \brief Packs op(B)[k0:k0+kc, j:j+w] of a stored matrix into one NR-column panel
 * dst[k * NR + c] (columns w..NR-1 zeroed).  Any functor with this call
 * signature can stand in for it (see sgemm_gen): the deformable convolution uses
 * one that samples the input directly, so the column matrix is never stored.
 */
struct MatrixPanel {
  bool tb;
  const float* b;
  int ldb;
  void operator()(int k0, int kc, int j, int w, float* dst) const {
    if (!tb) {
      for (int k = 0; k < kc; ++k) {
        const float* src = b + static_cast<int64_t>(k0 + k) * ldb + j;
        float* d = dst + k * NR;
        if (w == NR) {
          memcpy(d, src, NR * sizeof(float));
        } else {
          for (int c = 0; c < w; ++c) d[c] = src[c];
          for (int c = w; c < NR; ++c) d[c] = 0.f;
        }
      }
    } else {  // op(B)[k][j] = b[j * ldb + k]: each stored row read contiguously
      for (int c = 0; c < w; ++c) {
        const float* src = b + static_cast<int64_t>(j + c) * ldb + k0;
        for (int k = 0; k < kc; ++k) dst[k * NR + c] = src[k];
      }
      for (int c = w; c < NR; ++c)
        for (int k = 0; k < kc; ++k) dst[k * NR + c] = 0.f;
    }
  }
};

/*! \brief pack op(A)[i0:i0+mc, k0:k0+kc] into MR-row panels (zero padded) */
inline void pack_a(bool ta, const float* a, int lda, int i0, int mc, int k0, int kc, float* ap) {
  const int panels = (mc + MR - 1) / MR;
  for (int p = 0; p < panels; ++p) {
    const int i = i0 + p * MR;
    const int h = std::min(MR, i0 + mc - i);
    float* dst = ap + static_cast<int64_t>(p) * kc * MR;
    if (!ta) {
      for (int r = 0; r < h; ++r) {
        const float* src = a + static_cast<int64_t>(i + r) * lda + k0;
        for (int k = 0; k < kc; ++k) dst[k * MR + r] = src[k];
      }
    } else {  // op(A)[i][k] = a[k * lda + i]
      for (int k = 0; k < kc; ++k) {
        const float* src = a + static_cast<int64_t>(k0 + k) * lda + i;
        for (int r = 0; r < h; ++r) dst[k * MR + r] = src[r];
      }
    }
    for (int r = h; r < MR; ++r)
      for (int k = 0; k < kc; ++k) dst[k * MR + r] = 0.f;
  }
}

/*! \brief C[0:h, 0:w] = Ap * Bp (+ C when accumulate) for one MR x NR tile */
__attribute__((target("avx512f"))) inline void micro_kernel(int kc, const float* ap,
                                                            const float* bp, float* c, int ldc,
                                                            bool accumulate, int h, int w) {
  __m512 acc[MR][2];
  for (int r = 0; r < MR; ++r) {
    acc[r][0] = _mm512_setzero_ps();
    acc[r][1] = _mm512_setzero_ps();
  }
  for (int k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(bp + k * NR);
    const __m512 b1 = _mm512_loadu_ps(bp + k * NR + 16);
    const float* a = ap + k * MR;
#pragma GCC unroll 12
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(a[r]);
      acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
    }
  }
  if (h == MR && w == NR) {
    for (int r = 0; r < MR; ++r) {
      float* cr = c + static_cast<int64_t>(r) * ldc;
      if (accumulate) {
        _mm512_storeu_ps(cr, _mm512_add_ps(_mm512_loadu_ps(cr), acc[r][0]));
        _mm512_storeu_ps(cr + 16, _mm512_add_ps(_mm512_loadu_ps(cr + 16), acc[r][1]));
      } else {
        _mm512_storeu_ps(cr, acc[r][0]);
        _mm512_storeu_ps(cr + 16, acc[r][1]);
      }
    }
    return;
  }
  const __mmask16 m0 = static_cast<__mmask16>(w >= 16 ? 0xFFFF : (1u << w) - 1u);
  const __mmask16 m1 = static_cast<__mmask16>(w >= 32 ? 0xFFFF : (w <= 16 ? 0u : (1u << (w - 16)) - 1u));
  for (int r = 0; r < h; ++r) {
    float* cr = c + static_cast<int64_t>(r) * ldc;
    __m512 v0 = acc[r][0], v1 = acc[r][1];
    if (accumulate) {
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, cr));
      v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, cr + 16));
    }
    _mm512_mask_storeu_ps(cr, m0, v0);
    _mm512_mask_storeu_ps(cr + 16, m1, v1);
  }
}

/*!
 * \brief C = op(A) op(B) + beta C, beta in {0, 1} (beta 0: C is not read), where
 * op(B) (k x n) is produced panel by panel by panel(k0, kc, j, w, dst).
 * Row-major; ta selects transposed storage of A.
 *
 * A is packed once (shared, k-block major), block by block on first use; the
 * columns are split into chunks of CHUNK panels handed out dynamically to the
 * threads.  A chunk packs its own B panels per k-block (L2 resident) and sweeps
 * all of A; threads wait for each other only at the end of the call.
 */
template <typename Panel>
void sgemm_gen(bool ta, int m, int n, int k, const float* a, int lda, const Panel& panel,
               float beta, float* c, int ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (beta == 0.f)
      for (int i = 0; i < m; ++i) memset(c + static_cast<int64_t>(i) * ldc, 0, n * sizeof(float));
    return;
  }
  constexpr int CHUNK = 8;  // B panels per task (8 x 32 columns)
  const int mpanels = (m + MR - 1) / MR;
  const int64_t mpad = static_cast<int64_t>(mpanels) * MR;
  const int kblocks = (k + KC - 1) / KC;
  // packed A, kept per calling thread between calls (bounded by the largest GEMM seen)
  static thread_local std::vector<float> apack;
  if (apack.size() < static_cast<size_t>(mpad) * k + 16) apack.resize(static_cast<size_t>(mpad) * k + 16);
  // the OpenMP team must use the calling thread's buffer (not their own thread_local)
  float* const apacked = apack.data();
  const int npanels = (n + NR - 1) / NR;
  const int nchunks = (npanels + CHUNK - 1) / CHUNK;
  const bool par = static_cast<int64_t>(m) * n * k > 262144;
  // A is packed lazily, one k block at a time, by the first thread that needs it
  // (no barrier between packing and multiplying: a thread that is descheduled on a
  // shared machine does not hold the others up).  state: 0 free, 1 packing, 2 ready.
  std::vector<int> state(kblocks, 0);
  int* const st = state.data();
  auto need_block = [&](int kb) {
    if (__atomic_load_n(st + kb, __ATOMIC_ACQUIRE) == 2) return;
    int expected = 0;
    if (__atomic_compare_exchange_n(st + kb, &expected, 1, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
      const int k0 = kb * KC, kc = std::min(KC, k - k0);
      for (int p = 0; p < mpanels; ++p)
        pack_a(ta, a, lda, p * MR, std::min(MR, m - p * MR), k0, kc,
               apacked + static_cast<int64_t>(k0) * mpad + static_cast<int64_t>(p) * kc * MR);
      __atomic_store_n(st + kb, 2, __ATOMIC_RELEASE);
      return;
    }
    while (__atomic_load_n(st + kb, __ATOMIC_ACQUIRE) != 2) {
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
    }
  };
#pragma omp parallel if (par)
  {
    std::vector<float> bpack(static_cast<size_t>(CHUNK) * NR * std::min(KC, k) + 16);
#pragma omp for schedule(dynamic, 1)
    for (int ch = 0; ch < nchunks; ++ch) {
      const int p0 = ch * CHUNK, p1 = std::min(npanels, p0 + CHUNK);
      for (int kb = 0; kb < kblocks; ++kb) {
        const int k0 = kb * KC, kc = std::min(KC, k - k0);
        const bool accumulate = k0 > 0 || beta != 0.f;
        for (int p = p0; p < p1; ++p) {
          const int j = p * NR;
          panel(k0, kc, j, std::min(NR, n - j), bpack.data() + static_cast<int64_t>(p - p0) * kc * NR);
        }
        need_block(kb);
        const float* ablock = apacked + static_cast<int64_t>(k0) * mpad;
        // A panel outer: its kc x MR panel stays in L1 while the chunk's B panels stream
        for (int ip = 0; ip < mpanels; ++ip) {
          const int i = ip * MR;
          const float* ap = ablock + static_cast<int64_t>(ip) * kc * MR;
          for (int p = p0; p < p1; ++p) {
            const int j = p * NR;
            micro_kernel(kc, ap, bpack.data() + static_cast<int64_t>(p - p0) * kc * NR,
                         c + static_cast<int64_t>(i) * ldc + j, ldc, accumulate,
                         std::min(MR, m - i), std::min(NR, n - j));
          }
        }
      }
    }
  }
}

/*! \brief C = op(A) op(B) + beta C for stored matrices (beta in {0, 1}) */
inline void sgemm(bool ta, bool tb, int m, int n, int k, const float* a, int lda, const float* b,
                  int ldb, float beta, float* c, int ldc) {
  sgemm_gen(ta, m, n, k, a, lda, MatrixPanel{tb, b, ldb}, beta, c, ldc);
}

/*! \brief dst[0:len] = sum_k w[k] * rows[k][0:len], 16 lanes at a time, accumulated in
 *  registers (each row read once, dst written once) */
__attribute__((target("avx512f"))) inline void weighted_row_sum(int len, int n,
                                                                const float* const* rows,
                                                                const float* w, float* dst) {
  int c = 0;
  for (; c + 64 <= len; c += 64) {  // four independent accumulation chains
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    for (int k = 0; k < n; ++k) {
      const __m512 wk = _mm512_set1_ps(w[k]);
      const float* r = rows[k] + c;
      a0 = _mm512_fmadd_ps(wk, _mm512_loadu_ps(r), a0);
      a1 = _mm512_fmadd_ps(wk, _mm512_loadu_ps(r + 16), a1);
      a2 = _mm512_fmadd_ps(wk, _mm512_loadu_ps(r + 32), a2);
      a3 = _mm512_fmadd_ps(wk, _mm512_loadu_ps(r + 48), a3);
    }
    _mm512_storeu_ps(dst + c, a0);
    _mm512_storeu_ps(dst + c + 16, a1);
    _mm512_storeu_ps(dst + c + 32, a2);
    _mm512_storeu_ps(dst + c + 48, a3);
  }
  for (; c + 16 <= len; c += 16) {
    __m512 acc = _mm512_setzero_ps();
    for (int k = 0; k < n; ++k)
      acc = _mm512_fmadd_ps(_mm512_set1_ps(w[k]), _mm512_loadu_ps(rows[k] + c), acc);
    _mm512_storeu_ps(dst + c, acc);
  }
  if (c < len) {
    const __mmask16 m = static_cast<__mmask16>((1u << (len - c)) - 1u);
    __m512 acc = _mm512_setzero_ps();
    for (int k = 0; k < n; ++k)
      acc = _mm512_fmadd_ps(_mm512_set1_ps(w[k]), _mm512_maskz_loadu_ps(m, rows[k] + c), acc);
    _mm512_mask_storeu_ps(dst + c, m, acc);
  }
}

}  // namespace avx512
}  // namespace cpu
}  // namespace dcn

#endif  // x86-64 GNU
#endif  // DCN_GEMM_AVX512_H_
