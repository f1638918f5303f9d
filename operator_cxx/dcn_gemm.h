/*
 * dcn_gemm.h - packed single-precision GEMM with AVX2 and AVX-512 micro kernels.
 *
 * The BLAS shipped with MXNet is at best an AVX2 one and cannot sample the
 * deformable convolution's columns on the fly; this GEMM can.  One driver
 * (sgemm_gen, x86-64-v2 code) and one micro kernel source (micro_body, a
 * template over the vector type, see dcn_simd.h), instantiated per ISA:
 *
 *   KernAvx2    6 x 16 tile (12 ymm accumulators), AVX2 + FMA;
 *   KernAvx512  12 x 16 tile (12 zmm accumulators), AVX-512F;
 *   KernAvx512W 12 x 32 tile (24 zmm accumulators), AVX-512F, for Intel cores
 *               (with_kernel picks it or KernAvx512 by dcn::cpu::gemm_wide_tiles()).
 *
 * C (m x n, row-major, ldc) = op(A) op(B) + beta C, beta in {0, 1}.  op(B) is
 * packed into k-major panels of NR columns by a functor (a stored matrix:
 * MatrixPanel; the convolution: its column sampler), op(A) into k-major panels
 * of MR rows, all k blocks of a panel at once, by another (MatrixA, or the
 * convolution's reordered weights).
 * Callers check dcn::cpu::isa_current() first.
 */
#ifndef DCN_GEMM_H_
#define DCN_GEMM_H_

#include "dcn_simd.h"

#ifdef DCN_HAVE_X86_KERNELS
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
namespace simd {

/*!
 * \brief C[0:h, 0:w] = Ap * Bp (+ C when accumulate) for one MR x (NV lanes) tile;
 * ap: kc x MR (k-major), bp: kc x NR (k-major).
 */
template <typename V, int MR, int NV>
DCN_INLINE void micro_body(int kc, const float* ap, const float* bp, float* c, int64_t ldc,
                           bool accumulate, int h, int w, const float* pf, int pf_lines) {
  constexpr int W = Lanes<V>::value, NR = W * NV;
  // Fetch now what is needed later, its latency hidden behind the kc * MR * NV FMAs:
  // the C tile, read at the end (it may have left the cache since the previous k block),
  // and pf_lines cache lines from pf (a slice of the next A panel, see sgemm_gen).
  if (accumulate)
    for (int r = 0; r < h; ++r)
      for (int v = 0; v < NV; v += 64 / (W * 4)) __builtin_prefetch(c + r * ldc + v * W, 1, 3);
  for (int l = 0; l < pf_lines; ++l) __builtin_prefetch(pf + 16 * l, 0, 3);
  V acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = V{};
  for (int k = 0; k < kc; ++k) {
    V b[NV];
    for (int v = 0; v < NV; ++v) b[v] = load<V>(bp + k * NR + v * W);
    const float* a = ap + k * MR;
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const float av = a[r];
      for (int v = 0; v < NV; ++v) acc[r][v] += av * b[v];
    }
  }
  if (h == MR && w == NR) {
    for (int r = 0; r < MR; ++r) {
      float* cr = c + r * ldc;
      for (int v = 0; v < NV; ++v)
        store(cr + v * W, accumulate ? load<V>(cr + v * W) + acc[r][v] : acc[r][v]);
    }
    return;
  }
  for (int r = 0; r < h; ++r) {
    float* cr = c + r * ldc;
    for (int v = 0; v < NV && v * W < w; ++v) {
      const int n = std::min(W, w - v * W);
      if (n == W)
        store(cr + v * W, accumulate ? load<V>(cr + v * W) + acc[r][v] : acc[r][v]);
      else
        store_part(cr + v * W, accumulate ? load_part<V>(cr + v * W, n) + acc[r][v] : acc[r][v],
                   n);
    }
  }
}

/*! \brief dst[0:len] = sum_k w[k] * rows[k][0:len] (each row read once, dst written once) */
template <typename V>
DCN_INLINE void weighted_row_sum_body(int len, int n, const float* const* rows, const float* w,
                                      float* dst) {
  constexpr int W = Lanes<V>::value;
  int c = 0;
  for (; c + 4 * W <= len; c += 4 * W) {  // four independent accumulation chains
    V a0 = V{}, a1 = V{}, a2 = V{}, a3 = V{};
    for (int k = 0; k < n; ++k) {
      const float wk = w[k];
      const float* r = rows[k] + c;
      a0 += wk * load<V>(r);
      a1 += wk * load<V>(r + W);
      a2 += wk * load<V>(r + 2 * W);
      a3 += wk * load<V>(r + 3 * W);
    }
    store(dst + c, a0);
    store(dst + c + W, a1);
    store(dst + c + 2 * W, a2);
    store(dst + c + 3 * W, a3);
  }
  for (; c + W <= len; c += W) {
    V a = V{};
    for (int k = 0; k < n; ++k) a += w[k] * load<V>(rows[k] + c);
    store(dst + c, a);
  }
  if (c < len) {
    V a = V{};
    for (int k = 0; k < n; ++k) a += w[k] * load_part<V>(rows[k] + c, len - c);
    store_part(dst + c, a, len - c);
  }
}

/*!
 * \brief one sampling grid of n cells, backward, over len channels (channels-last rows):
 * grows[k][0:len] += a[k] * d[0:len] (grows may be null) and, when vrows, the sums
 * *sx = sum_c d[c] sum_k ax[k] vrows[k][c] and *sy likewise with ay.
 */
template <typename V>
DCN_INLINE void grid_backward_body(int len, int n, float* const* grows,
                                   const float* const* vrows, const float* a, const float* ax,
                                   const float* ay, const float* d, float* sx, float* sy) {
  constexpr int W = Lanes<V>::value;
  V tx = V{}, ty = V{};
  for (int c = 0; c < len; c += W) {
    const int m = std::min(W, len - c);
    const V dv = m == W ? load<V>(d + c) : load_part<V>(d + c, m);
    if (grows) {
      for (int k = 0; k < n; ++k) {
        float* g = grows[k] + c;
        if (m == W)
          store(g, load<V>(g) + a[k] * dv);
        else
          store_part(g, load_part<V>(g, m) + a[k] * dv, m);
      }
    }
    if (vrows) {
      V px = V{}, py = V{};
      for (int k = 0; k < n; ++k) {
        const V v = m == W ? load<V>(vrows[k] + c) : load_part<V>(vrows[k] + c, m);
        px += ax[k] * v;
        py += ay[k] * v;
      }
      tx += px * dv;
      ty += py * dv;
    }
  }
  if (vrows) {
    *sx = hsum(tx);
    *sy = hsum(ty);
  }
}

/*!
 * \brief dst[kk * P + r] = src[(i + r) * ld + k0 + kk] for r < h, kk < kc (r in [h, P): 0):
 * P rows of a matrix whose k dimension is contiguous, into one k-major panel (the A
 * panels of a row-major A, the B panels of a transposed B).  8 rows x 8 columns at a
 * time, transposed in registers.
 */
template <int P>
DCN_INLINE void pack_rows_body(const float* src, int64_t ld, int i, int h, int k0, int kc,
                               float* dst) {
  for (int r0 = 0; r0 < h; r0 += 8) {
    const int nr = std::min(8, h - r0);
    const float* rows[8];
    for (int l = 0; l < 8; ++l) rows[l] = src + (i + r0 + std::min(l, nr - 1)) * ld + k0;
    int kk = 0;
    if (nr == 8) {
      for (; kk + 8 <= kc; kk += 8) {
        V8 x[8];
        for (int l = 0; l < 8; ++l) x[l] = load<V8>(rows[l] + kk);
        transpose8(x);  // x[q]: the 8 rows at column kk + q
        for (int q = 0; q < 8; ++q) store(dst + (kk + q) * P + r0, x[q]);
      }
    }
    for (; kk < kc; ++kk)
      for (int l = 0; l < nr; ++l) dst[kk * P + r0 + l] = rows[l][kk];
  }
  for (int r = h; r < P; ++r)
    for (int kk = 0; kk < kc; ++kk) dst[kk * P + r] = 0.f;
}

/*!
 * \brief the kernel set NAME of one ISA (isa code ISA): MR_ x NR tiles, NV vectors of type V
 * per tile row (NR = NV lanes), k blocks of 256, 512 columns of B panels per task; every
 * function is compiled with the ISA's target attribute TARGET (so the *_body templates
 * inline into it).
 */
#define DCN_GEMM_KERNELS(NAME, ISA, TARGET, V, MR_, NV)                                      \
  struct NAME {                                                                             \
    static constexpr int kIsa = ISA;                                                        \
    static constexpr int MR = MR_, NR = Lanes<V>::value * NV, KC = 256;                     \
    static constexpr int CHUNK = 512 / NR;                                                  \
    static TARGET void micro(int kc, const float* ap, const float* bp, float* c, int64_t ldc, \
                             bool accumulate, int h, int w, const float* pf = nullptr,      \
                             int pf_lines = 0) {                                            \
      micro_body<V, MR_, NV>(kc, ap, bp, c, ldc, accumulate, h, w, pf, pf_lines);           \
    }                                                                                       \
    static TARGET void weighted_row_sum(int len, int n, const float* const* rows,           \
                                        const float* w, float* dst) {                       \
      weighted_row_sum_body<V>(len, n, rows, w, dst);                                       \
    }                                                                                       \
    static TARGET void grid_backward(int len, int n, float* const* grows,                  \
                                     const float* const* vrows, const float* a,             \
                                     const float* ax, const float* ay, const float* d,      \
                                     float* sx, float* sy) {                                \
      grid_backward_body<V>(len, n, grows, vrows, a, ax, ay, d, sx, sy);                    \
    }                                                                                       \
    static TARGET void pack_rows_mr(const float* src, int64_t ld, int i, int h, int k0,     \
                                    int kc, float* dst) {                                   \
      pack_rows_body<MR>(src, ld, i, h, k0, kc, dst);                                       \
    }                                                                                       \
    static TARGET void pack_rows_nr(const float* src, int64_t ld, int i, int h, int k0,     \
                                    int kc, float* dst) {                                   \
      pack_rows_body<NR>(src, ld, i, h, k0, kc, dst);                                       \
    }                                                                                       \
  }

/*! \brief AVX2 + FMA kernels: 6 x 16 tiles (12 ymm accumulators) */
DCN_GEMM_KERNELS(KernAvx2, kIsaAvx2, DCN_TARGET_AVX2, V8, 6, 2);

/*!
 * \brief AVX-512 kernels: 12 x 16 tiles (12 zmm accumulators).  On Zen 4 (512-bit
 * operations on 256-bit units) this beat a 12 x 32 tile inside the convolution by 2-5 %
 * (its k x 16 B panel stays in L1 with the A panel; 12 x 32: 32 KiB B panels).
 */
DCN_GEMM_KERNELS(KernAvx512, kIsaAvx512, DCN_TARGET_AVX512, V16, 12, 1);

/*!
 * \brief AVX-512 kernels with 12 x 32 tiles (24 zmm accumulators): 14 loads per 24 FMAs,
 * for cores with two 512-bit FMA units (Intel), where the 12 x 16 tile is load bound
 * (res5 deformable convolution forward, one thread, on an Emerald Rapids Xeon: 82-84 ms
 * against 88-95 ms with 12 x 16 tiles).
 */
DCN_GEMM_KERNELS(KernAvx512W, kIsaAvx512, DCN_TARGET_AVX512, V16, 12, 2);

#undef DCN_GEMM_KERNELS

/*! \brief calls f(KernAvx512W{}), f(KernAvx512{}) or f(KernAvx2{}) for a SIMD isa */
template <typename F>
inline void with_kernel(int isa, F&& f) {
  if (isa == kIsaAvx512 && gemm_wide_tiles())
    f(KernAvx512W{});
  else if (isa == kIsaAvx512)
    f(KernAvx512{});
  else
    f(KernAvx2{});
}

/*!
 * \brief packs op(B)[k0:k0+kc, j:j+w] of a stored matrix into one NR-column panel
 * dst[k * NR + c] (columns w..NR-1 zeroed).
 */
template <class K>
struct MatrixPanel {
  bool tb;
  const float* b;
  int ldb;
  void operator()(int k0, int kc, int j, int w, float* dst) const {
    constexpr int NR = K::NR;
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
    } else {  // op(B)[k][j] = b[j * ldb + k]: stored rows j..j+w, transposed
      K::pack_rows_nr(b, ldb, j, w, k0, kc, dst);
    }
  }
};

/*!
 * \brief where one MR-row panel of packed A goes: k block kb (columns [kb KC, kb KC + kc))
 * is a kc x MR block (k-major) of the panel; at(kk) is the MR-vector of column kk.
 */
template <int MR>
struct PanelDst {
  float* base;   // the packed A
  int64_t mpad;  // rows of packed A (panels x MR)
  int p, KC, k;  // panel index, k block size, columns
  float* block(int kb) const {
    const int k0 = kb * KC, kc = std::min(KC, k - k0);
    return base + static_cast<int64_t>(k0) * mpad + static_cast<int64_t>(p) * kc * MR;
  }
  float* at(int kk) const { return block(kk / KC) + (kk % KC) * MR; }
};

/*! \brief packs one MR-row panel op(A)[i:i+h, :] of a stored matrix (rows h..MR-1 zeroed) */
template <class K>
struct MatrixA {
  bool ta;
  const float* a;
  int lda;
  void operator()(int i, int h, const PanelDst<K::MR>& pd) const {
    constexpr int MR = K::MR;
    for (int k0 = 0, kb = 0; k0 < pd.k; k0 += pd.KC, ++kb) {
      const int kc = std::min(pd.KC, pd.k - k0);
      float* dst = pd.block(kb);
      if (!ta) {
        K::pack_rows_mr(a, lda, i, h, k0, kc, dst);
        continue;
      }
      // op(A)[i][k] = a[k * lda + i]: MR contiguous values per k
      for (int kk = 0; kk < kc; ++kk) {
        const float* src = a + static_cast<int64_t>(k0 + kk) * lda + i;
        for (int r = 0; r < h; ++r) dst[kk * MR + r] = src[r];
        for (int r = h; r < MR; ++r) dst[kk * MR + r] = 0.f;
      }
    }
  }
};

/*!
 * \brief scratch of the calling thread, kept between calls and shared by every GEMM
 * instantiation (0: packed A, used by the OpenMP team of the caller; 1: B panels of an
 * OpenMP thread); grows to the largest size asked for.
 */
inline float* gemm_scratch(int which, size_t floats) {
  static thread_local std::vector<float> buf[2];
  if (buf[which].size() < floats) buf[which].resize(floats);
  return buf[which].data();
}

/*!
 * \brief C = op(A) op(B) + beta C (beta in {0, 1}; beta 0: C is not read).
 *
 * A is packed once (shared, k-block major), panel by panel on first use.  The
 * columns are split into chunks of at most K::CHUNK panels, as many per thread,
 * handed out dynamically.  A chunk packs its own B panels per k block (L2
 * resident) and sweeps all of A, one A panel at a time (its kc x MR values stay
 * in L1 while the chunk's B panels stream, the next one being prefetched).
 * Threads wait for each other only at the end.
 */
template <class K, typename APack, typename BPanel>
void sgemm_gen(int m, int n, int k, const APack& apack_fn, const BPanel& panel, float beta,
               float* c, int ldc) {
  constexpr int MR = K::MR, NR = K::NR, KC = K::KC, CHUNK = K::CHUNK;
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (beta == 0.f)
      for (int i = 0; i < m; ++i) memset(c + static_cast<int64_t>(i) * ldc, 0, n * sizeof(float));
    return;
  }
  const int mpanels = (m + MR - 1) / MR;
  const int64_t mpad = static_cast<int64_t>(mpanels) * MR;
  const int kblocks = (k + KC - 1) / KC;
  // packed A: the calling thread's scratch (the OpenMP team must use that one)
  float* const apacked = gemm_scratch(0, static_cast<size_t>(mpad) * k + 16);
  const int npanels = (n + NR - 1) / NR;
  const bool par = static_cast<int64_t>(m) * n * k > 262144;
#ifdef _OPENMP
  const int nthreads = par ? std::max(1, omp_get_max_threads()) : 1;
#else
  const int nthreads = 1;
#endif
  // at most CHUNK panels per chunk, a multiple of the thread count of chunks, their
  // widths differing by one panel at most: no thread is left with more work than another
  int nchunks = (npanels + CHUNK - 1) / CHUNK;
  nchunks = std::min(npanels, (nchunks + nthreads - 1) / nthreads * nthreads);
  // A is packed lazily, one MR-row panel (all k blocks) at a time, by the first thread
  // that needs it; a thread that finds its panel being packed by another packs the
  // next free one meanwhile (no barrier between packing and multiplying: a thread that
  // is descheduled on a shared machine does not hold the others up).  The rows of a
  // panel are read in one go, so a packer that reorders columns (the convolution's
  // weights in BlockedTapOrder) reads each row once.  state: 0 free, 1 packing, 2 ready.
  std::vector<int> state(mpanels, 0);
  int* const st = state.data();
  auto pack_panel = [&](int p) {
    apack_fn(p * MR, std::min(MR, m - p * MR), PanelDst<MR>{apacked, mpad, p, KC, k});
    __atomic_store_n(st + p, 2, __ATOMIC_RELEASE);
  };
  auto try_claim = [&](int p) {
    int expected = 0;
    return __atomic_load_n(st + p, __ATOMIC_RELAXED) == 0 &&
           __atomic_compare_exchange_n(st + p, &expected, 1, false, __ATOMIC_ACQ_REL,
                                       __ATOMIC_RELAXED);
  };
  auto need_panel = [&](int p) {
    if (__atomic_load_n(st + p, __ATOMIC_ACQUIRE) == 2) return;
    if (try_claim(p)) {
      pack_panel(p);
      return;
    }
    int ahead = p + 1;
    while (__atomic_load_n(st + p, __ATOMIC_ACQUIRE) != 2) {
      while (ahead < mpanels && !try_claim(ahead)) ++ahead;
      if (ahead < mpanels)
        pack_panel(ahead++);
      else
        __builtin_ia32_pause();
    }
  };
#pragma omp parallel if (par)
  {
    // the chunk's B panels, in this thread's scratch (no allocation per call)
    float* const bpack = gemm_scratch(1, static_cast<size_t>(CHUNK) * NR * KC);
#pragma omp for schedule(dynamic, 1)
    for (int ch = 0; ch < nchunks; ++ch) {
      const int p0 = static_cast<int>(static_cast<int64_t>(ch) * npanels / nchunks);
      const int p1 = static_cast<int>(static_cast<int64_t>(ch + 1) * npanels / nchunks);
      for (int kb = 0; kb < kblocks; ++kb) {
        const int k0 = kb * KC, kc = std::min(KC, k - k0);
        const bool accumulate = k0 > 0 || beta != 0.f;
        for (int p = p0; p < p1; ++p) {
          const int j = p * NR;
          panel(k0, kc, j, std::min(NR, n - j), bpack + static_cast<int64_t>(p - p0) * kc * NR);
        }
        const float* ablock = apacked + static_cast<int64_t>(k0) * mpad;
        // while A panel ip is multiplied by the chunk's B panels, each call prefetches
        // its share of the next A panel (kc * MR floats), which is read from L3
        const int lines = (kc * MR + 15) / 16, share = (lines + (p1 - p0) - 1) / (p1 - p0);
        for (int ip = 0; ip < mpanels; ++ip) {
          need_panel(ip);
          if (ip + 1 < mpanels) need_panel(ip + 1);
          const int i = ip * MR;
          const float* ap = ablock + static_cast<int64_t>(ip) * kc * MR;
          for (int p = p0; p < p1; ++p) {
            const int j = p * NR;
            const int l0 = (p - p0) * share;
            K::micro(kc, ap, bpack + static_cast<int64_t>(p - p0) * kc * NR,
                     c + static_cast<int64_t>(i) * ldc + j, ldc, accumulate, std::min(MR, m - i),
                     std::min(NR, n - j), ap + kc * MR + 16 * l0,
                     ip + 1 < mpanels ? std::max(0, std::min(share, lines - l0)) : 0);
          }
        }
      }
    }
  }
}

/*! \brief C = op(A) op(B) + beta C for stored matrices (beta in {0, 1}) */
template <class K>
void sgemm(bool ta, bool tb, int m, int n, int k, const float* a, int lda, const float* b,
           int ldb, float beta, float* c, int ldc) {
  sgemm_gen<K>(m, n, k, MatrixA<K>{ta, a, lda}, MatrixPanel<K>{tb, b, ldb}, beta, c, ldc);
}

}  // namespace simd
}  // namespace cpu
}  // namespace dcn

#endif  // DCN_HAVE_X86_KERNELS
#endif  // DCN_GEMM_H_
