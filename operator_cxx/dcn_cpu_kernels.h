/*
 * dcn_cpu_kernels.h - CPU implementations (OpenMP + BLAS / dcn_gemm.h) of the
 * deformable convolution and position-sensitive RoI pooling operators.
 *
 * Deformable convolution works image by image:
 *   1. a sampling plan (4 corner indices + 4 weights, mask folded in) is built
 *      once per (deformable group, kernel tap, output pixel); it is shared by
 *      all channels of the deformable group;
 *   2. generic ISA (and float64): the column matrix (C*kh*kw, Ho*Wo) is filled
 *      from the plan (OpenMP over rows) and multiplied by one GEMM per
 *      convolution group through the BLAS MXNet ships;
 *      avx2 / avx512 (float32): the input is copied channels-last (per block of
 *      channels) and the GEMM of dcn_gemm.h samples its column panels from the
 *      plan while packing them (vectors of 8 / 16 channels per corner, transposed
 *      in registers), so the column matrix is never stored;
 * The backward pass reuses the column buffer for the column gradient,
 * scatters it into the data gradient (OpenMP over channels: race free),
 * reduces offset / mask gradients per (deformable group, tap) (race free), then
 * multiplies the columns (stored, or sampled into the GEMM's panels) for the
 * weight gradient.  The ISA is chosen at run time (dcn_cpu_isa.h).
 */
#ifndef DCN_CPU_KERNELS_H_
#define DCN_CPU_KERNELS_H_

#include <stdint.h>
#include <string.h>
#include <vector>
#include <algorithm>
#include <type_traits>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "dcn_sampling.h"
#include "dcn_cpu_isa.h"
#include "dcn_gemm.h"

extern "C" {
// Prototypes of the CBLAS entry points exported by the OpenBLAS MXNet ships.
void cblas_sgemm(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                 const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc);
void cblas_dgemm(int order, int trans_a, int trans_b, int m, int n, int k, double alpha,
                 const double* a, int lda, const double* b, int ldb, double beta, double* c,
                 int ldc);
}

namespace dcn {
namespace cpu {

enum { kRowMajor = 101, kNoTrans = 111, kTrans = 112 };

inline void gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float* a, int lda,
                 const float* b, int ldb, float beta, float* c, int ldc) {
#ifdef DCN_HAVE_X86_KERNELS
  const int isa = isa_current();
  if (alpha == 1.f && (beta == 0.f || beta == 1.f) && isa != kIsaGeneric) {
    simd::with_kernel(isa, [&](auto kern) {
      simd::sgemm<decltype(kern)>(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
    });
    return;
  }
#endif
  cblas_sgemm(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, m, n, k, alpha, a, lda,
              b, ldb, beta, c, ldc);
}
inline void gemm(bool ta, bool tb, int m, int n, int k, double alpha, const double* a, int lda,
                 const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, m, n, k, alpha, a, lda,
              b, ldb, beta, c, ldc);
}

inline int num_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

/*! \brief geometry of one deformable convolution call */
struct ConvGeom {
  int N, C, H, W;          // input
  int F, Ho, Wo;           // output
  int kh, kw, sh, sw, ph, pw, dh, dw;
  int groups, dgroups;
  bool modulated;          // DCNv2 sampling + mask
  int64_t taps() const { return static_cast<int64_t>(kh) * kw; }
  int64_t L() const { return static_cast<int64_t>(Ho) * Wo; }
  int64_t col_rows() const { return static_cast<int64_t>(C) * kh * kw; }
  int64_t plan_entries() const { return static_cast<int64_t>(dgroups) * taps() * L(); }
};

/*!
 * \brief Build the sampling plan of image n: for every (deformable group g,
 * tap t, output pixel p) four corner indices and four weights (times mask).
 */
template <typename T>
void build_plan(const ConvGeom& g, int n, const T* offset, const T* mask, int* pidx, T* pwt) {
  const int64_t L = g.L(), taps = g.taps();
  const int64_t tasks = g.dgroups * taps;
  const T* off_n = offset + static_cast<int64_t>(n) * g.dgroups * 2 * taps * L;
  const T* mask_n = mask ? mask + static_cast<int64_t>(n) * g.dgroups * taps * L : nullptr;
#pragma omp parallel for schedule(static) if (tasks * L > (1 << 14))
  for (int64_t task = 0; task < tasks; ++task) {
    const int dg = static_cast<int>(task / taps);
    const int t = static_cast<int>(task % taps);
    const int i = t / g.kw, j = t % g.kw;
    const T* off_h = off_n + (static_cast<int64_t>(dg) * 2 * taps + 2 * t) * L;
    const T* off_w = off_h + L;
    const T* m = mask_n ? mask_n + (static_cast<int64_t>(dg) * taps + t) * L : nullptr;
    int* idx = pidx + task * L * 4;
    T* wt = pwt + task * L * 4;
    for (int ho = 0; ho < g.Ho; ++ho) {
      for (int wo = 0; wo < g.Wo; ++wo) {
        const int64_t p = static_cast<int64_t>(ho) * g.Wo + wo;
        T h, w;
        conv_tap_position(ho, wo, i, j, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, off_h[p], off_w[p],
                          &h, &w);
        int* ip = idx + p * 4;
        T* wp = wt + p * 4;
        if (g.modulated) {
          v2_record(h, w, g.H, g.W, ip, wp);
          const T mv = m[p];
          for (int k = 0; k < 4; ++k) wp[k] *= mv;
        } else {
          v1_record(h, w, g.H, g.W, ip, wp);
        }
      }
    }
  }
}

/*! \brief fill the column matrix of image n from its plan */
template <typename T>
void im2col(const ConvGeom& g, int n, const T* data, const int* pidx, const T* pwt, T* col) {
  const int64_t L = g.L(), taps = g.taps(), rows = g.col_rows();
  const int cpg = g.C / g.dgroups;
  const int64_t plane = static_cast<int64_t>(g.H) * g.W;
  const T* data_n = data + static_cast<int64_t>(n) * g.C * plane;
#pragma omp parallel for schedule(static) if (rows * L > 4096)
  for (int64_t r = 0; r < rows; ++r) {
    const int c = static_cast<int>(r / taps);
    const int t = static_cast<int>(r % taps);
    const int dg = c / cpg;
    const int64_t task = dg * taps + t;
    const int* idx = pidx + task * L * 4;
    const T* wt = pwt + task * L * 4;
    const T* src = data_n + c * plane;
    T* dst = col + r * L;
    for (int64_t p = 0; p < L; ++p) {
      const int* ip = idx + 4 * p;
      const T* wp = wt + 4 * p;
      dst[p] = wp[0] * src[ip[0]] + wp[1] * src[ip[1]] + wp[2] * src[ip[2]] + wp[3] * src[ip[3]];
    }
  }
}

/*! \brief scatter the column gradient of image n into its data gradient */
template <typename T>
void col2im(const ConvGeom& g, int n, const T* col, const int* pidx, const T* pwt, T* grad_data) {
  const int64_t L = g.L(), taps = g.taps();
  const int cpg = g.C / g.dgroups;
  const int64_t plane = static_cast<int64_t>(g.H) * g.W;
  T* gd_n = grad_data + static_cast<int64_t>(n) * g.C * plane;
#pragma omp parallel for schedule(static) if (g.C * L > 4096)
  for (int c = 0; c < g.C; ++c) {
    T* dst = gd_n + c * plane;
    std::fill(dst, dst + plane, T(0));
    const int dg = c / cpg;
    for (int64_t t = 0; t < taps; ++t) {
      const int64_t task = dg * taps + t;
      const int* idx = pidx + task * L * 4;
      const T* wt = pwt + task * L * 4;
      const T* src = col + (static_cast<int64_t>(c) * taps + t) * L;
      for (int64_t p = 0; p < L; ++p) {
        const T v = src[p];
        const int* ip = idx + 4 * p;
        const T* wp = wt + 4 * p;
        dst[ip[0]] += wp[0] * v;
        dst[ip[1]] += wp[1] * v;
        dst[ip[2]] += wp[2] * v;
        dst[ip[3]] += wp[3] * v;
      }
    }
  }
}

/*!
 * \brief offset (and mask) gradient of image n from its column gradient.
 * One task per (deformable group, tap); the channel reduction stays inside
 * the task, so no two threads write the same element.
 */
template <typename T>
void col2coord(const ConvGeom& g, int n, const T* col, const T* data, const T* offset,
               const T* mask, T* grad_offset, T* grad_mask) {
  const int64_t L = g.L(), taps = g.taps();
  const int64_t tasks = g.dgroups * taps;
  const int cpg = g.C / g.dgroups;
  const int64_t plane = static_cast<int64_t>(g.H) * g.W;
  const T* data_n = data + static_cast<int64_t>(n) * g.C * plane;
  const int64_t off_base = static_cast<int64_t>(n) * g.dgroups * 2 * taps * L;
  const int64_t mask_base = static_cast<int64_t>(n) * g.dgroups * taps * L;
#pragma omp parallel if (tasks * L * cpg > 8192)
  {
    std::vector<int> idx(4 * L);
    std::vector<T> dhw(8 * L), wts(g.modulated ? 4 * L : 0);
    std::vector<T> acc(3 * L);
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      const int dg = static_cast<int>(task / taps);
      const int t = static_cast<int>(task % taps);
      const int i = t / g.kw, j = t % g.kw;
      const T* off_h = offset + off_base + (static_cast<int64_t>(dg) * 2 * taps + 2 * t) * L;
      const T* off_w = off_h + L;
      for (int ho = 0; ho < g.Ho; ++ho) {
        for (int wo = 0; wo < g.Wo; ++wo) {
          const int64_t p = static_cast<int64_t>(ho) * g.Wo + wo;
          T h, w;
          conv_tap_position(ho, wo, i, j, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, off_h[p],
                            off_w[p], &h, &w);
          if (g.modulated) {
            v2_grad_record(h, w, g.H, g.W, &idx[4 * p], &dhw[8 * p], &dhw[8 * p + 4]);
            int tmp[4];
            v2_record(h, w, g.H, g.W, tmp, &wts[4 * p]);
          } else {
            v1_grad_record(h, w, g.H, g.W, &idx[4 * p], &dhw[8 * p], &dhw[8 * p + 4]);
          }
        }
      }
      std::fill(acc.begin(), acc.end(), T(0));
      T* acc_h = acc.data();
      T* acc_w = acc_h + L;
      T* acc_m = acc_w + L;
      for (int cc = 0; cc < cpg; ++cc) {
        const int c = dg * cpg + cc;
        const T* src = data_n + c * plane;
        const T* cg = col + (static_cast<int64_t>(c) * taps + t) * L;
        if (g.modulated) {
          for (int64_t p = 0; p < L; ++p) {
            const int* ip = &idx[4 * p];
            const T v0 = src[ip[0]], v1 = src[ip[1]], v2 = src[ip[2]], v3 = src[ip[3]];
            const T* d = &dhw[8 * p];
            const T* wp = &wts[4 * p];
            const T s = cg[p];
            acc_h[p] += s * (d[0] * v0 + d[1] * v1 + d[2] * v2 + d[3] * v3);
            acc_w[p] += s * (d[4] * v0 + d[5] * v1 + d[6] * v2 + d[7] * v3);
            acc_m[p] += s * (wp[0] * v0 + wp[1] * v1 + wp[2] * v2 + wp[3] * v3);
          }
        } else {
          for (int64_t p = 0; p < L; ++p) {
            const int* ip = &idx[4 * p];
            const T v0 = src[ip[0]], v1 = src[ip[1]], v2 = src[ip[2]], v3 = src[ip[3]];
            const T* d = &dhw[8 * p];
            const T s = cg[p];
            acc_h[p] += s * (d[0] * v0 + d[1] * v1 + d[2] * v2 + d[3] * v3);
            acc_w[p] += s * (d[4] * v0 + d[5] * v1 + d[6] * v2 + d[7] * v3);
          }
        }
      }
      T* go_h = grad_offset ? grad_offset + off_base + (static_cast<int64_t>(dg) * 2 * taps + 2 * t) * L
                            : nullptr;
      if (go_h) {
        T* go_w = go_h + L;
        if (g.modulated) {
          const T* m = mask + mask_base + (static_cast<int64_t>(dg) * taps + t) * L;
          for (int64_t p = 0; p < L; ++p) {
            go_h[p] = acc_h[p] * m[p];
            go_w[p] = acc_w[p] * m[p];
          }
        } else {
          std::copy(acc_h, acc_h + L, go_h);
          std::copy(acc_w, acc_w + L, go_w);
        }
      }
      if (g.modulated && grad_mask) {
        T* gm = grad_mask + mask_base + (static_cast<int64_t>(dg) * taps + t) * L;
        std::copy(acc_m, acc_m + L, gm);
      }
    }
  }
}

/*!
 * \brief workspace bytes of deformable convolution: plan + column buffer
 * (need_col), else (the forward pass of the SIMD paths) plan + a channels-last
 * copy of one input image
 */
inline int64_t conv_workspace_bytes(const ConvGeom& g, int elem_size, bool need_col = true) {
  const int64_t col = need_col ? g.col_rows() * g.L() * elem_size
                               : static_cast<int64_t>(g.C) * g.H * g.W * elem_size;
  const int64_t plan = g.plan_entries() * 4 * (static_cast<int64_t>(sizeof(int)) + elem_size);
  return col + plan + 256;
}

/*! \brief carve the workspace into (col, plan idx, plan wt[, channels-last image]), 64-byte
 *  aligned */
template <typename T>
void conv_workspace_split(const ConvGeom& g, void* ws, T** col, int** pidx, T** pwt,
                          bool need_col = true, T** hwc = nullptr) {
  uintptr_t p = (reinterpret_cast<uintptr_t>(ws) + 63) & ~static_cast<uintptr_t>(63);
  *col = need_col ? reinterpret_cast<T*>(p) : nullptr;
  if (need_col) p += g.col_rows() * g.L() * sizeof(T);
  p = (p + 63) & ~static_cast<uintptr_t>(63);
  *pwt = reinterpret_cast<T*>(p);
  p += g.plan_entries() * 4 * sizeof(T);
  p = (p + 63) & ~static_cast<uintptr_t>(63);
  *pidx = reinterpret_cast<int*>(p);
  p += g.plan_entries() * 4 * sizeof(int);
  p = (p + 63) & ~static_cast<uintptr_t>(63);
  if (hwc) *hwc = need_col ? nullptr : reinterpret_cast<T*>(p);
}

/*!
 * \brief true when the float32 path multiplies through the GEMM of dcn_gemm.h with
 * column panels sampled on the fly (the avx2 / avx512 ISAs: no column buffer in the
 * forward pass, a blocked channels-last copy of the image instead).
 */
template <typename T>
inline bool fused_columns() {
#ifdef DCN_HAVE_X86_KERNELS
  return std::is_same<T, float>::value && isa_current() != kIsaGeneric;
#else
  return false;
#endif
}

#ifdef DCN_HAVE_X86_KERNELS
namespace simd {

/*! \brief xt[p * C + c] = x[c * HW + p] for the positions [p0, p1), all C channels */
DCN_INLINE void to_channels_last_body(const float* x, int64_t HW, int C, int64_t p0, int64_t p1,
                                      float* xt) {
  int c = 0;
  for (; c + 8 <= C; c += 8) {
    int64_t p = p0;
    for (; p + 8 <= p1; p += 8) {
      V8 r[8];
      for (int l = 0; l < 8; ++l) r[l] = load<V8>(x + (c + l) * HW + p);
      transpose8(r);  // r[q]: channels c..c+7 at position p + q
      for (int q = 0; q < 8; ++q) store(xt + (p + q) * C + c, r[q]);
    }
    for (; p < p1; ++p)
      for (int l = 0; l < 8; ++l) xt[p * C + c + l] = x[(c + l) * HW + p];
  }
  for (; c < C; ++c)
    for (int64_t p = p0; p < p1; ++p) xt[p * C + c] = x[c * HW + p];
}

/*!
 * \brief row order of the forward GEMM's column matrix on the SIMD paths: blocks of cb
 * channels of the group, tap-major inside a block: row (b * taps + t) * cb + c - b * cb
 * samples channel c (of block b, relative to the group) at tap t (the last block may be
 * smaller).  Consecutive k blocks of the GEMM thus sample the same channels at
 * neighbouring taps, i.e. mostly the same input values, while they are in cache.
 */
struct BlockedTapOrder {
  int cg, taps, cb;  // channels of the group, kernel taps, channels per block
  /*! \brief tap t and channel c of row r; *run: rows from r on with that tap (consecutive
   *  channels); *first, *size: the first channel and the size of c's block */
  inline void locate(int r, int* t, int* c, int* run, int* first = nullptr,
                     int* size = nullptr) const {
    const int full = cg / cb, per = taps * cb;
    int b = r / per, sz = cb;
    if (b >= full) {
      b = full;
      sz = cg - full * cb;
    }
    const int rem = r - b * per;
    *t = rem / sz;
    const int cw = rem - *t * sz;
    *c = b * cb + cw;
    *run = sz - cw;
    if (first) *first = b * cb;
    if (size) *size = sz;
  }
};

/*!
 * \brief columns of one convolution group, sampled from the image in blocked
 * channels-last layout: the channels of each block of BlockedTapOrder (per group) are
 * stored as a (H*W, block size) matrix at the place of the block's channels in (C, H*W)
 * (see to_blocked_channels_last), so what a k block reads is contiguous.
 */
struct HwcColumns {
  const float* xt;    // the image, blocked channels-last
  const int* pidx;    // plan: (deformable group, tap, position) x 4 corner indices
  const float* pwt;   // plan: the 4 corner weights
  int64_t L, taps;
  int64_t HW;         // input positions
  int cpg;            // channels per deformable group
  int c0;             // first channel of the group
  BlockedTapOrder order;
};

/*!
 * \brief one NR-column panel of the group's column matrix (rows in BlockedTapOrder):
 * rows [k0, k0 + kc), positions [j, j + w) into dst[(r - k0) * NR + q] (columns
 * w..NR-1 zeroed).  Rows are taken in runs of channels that share a tap and a
 * deformable group, hence a plan record.  For a block of 8 positions, each position loads its record once and reads its 4 corners
 * as vectors of 8 (AVX2) or 16 (AVX-512) channels along the run (into a small
 * position-major staging buffer); 8 x 8 blocks of it are then transposed in registers
 * into 8 panel rows.
 */
template <int NR, typename VS>  // VS: vector type of the sampling (V8 or V16)
DCN_INLINE void hwc_panel_body(const HwcColumns& s, int k0, int kc, int j, int w, float* dst) {
  constexpr int WS = Lanes<VS>::value;
  constexpr int kRun = 128;  // channels per staging pass
  float stage[8 * kRun];
  const int r1 = k0 + kc;
  for (int r = k0; r < r1;) {
    int t, c, run, first, size;
    s.order.locate(r, &t, &c, &run, &first, &size);
    const float* blk = s.xt + (s.c0 + first) * s.HW + (c - first);  // channel c at pixel 0
    const int64_t C = size;                                         // pixel stride
    c += s.c0;
    const int dg = c / s.cpg;
    run = std::min(std::min(std::min(run, r1 - r), (dg + 1) * s.cpg - c), kRun);
    const int nv = run / 8;
    const int64_t rec = ((dg * s.taps + t) * s.L + j) * 4;
    const int* idx = s.pidx + rec;
    const float* wt = s.pwt + rec;
    float* d = dst + static_cast<int64_t>(r - k0) * NR;
    for (int q0 = 0; q0 < NR; q0 += 8) {
      const int nq = std::max(0, std::min(8, w - q0));
      for (int q = 0; q < 8; ++q) {
        float* sq = stage + q * kRun;
        if (q >= nq) {
          for (int cc = 0; cc < run; ++cc) sq[cc] = 0.f;
          continue;
        }
        const int* ip = idx + 4 * (q0 + q);
        const float* wp = wt + 4 * (q0 + q);
        const float* b0 = blk + ip[0] * C;
        const float* b1 = blk + ip[1] * C;
        const float* b2 = blk + ip[2] * C;
        const float* b3 = blk + ip[3] * C;
        const float w0 = wp[0], w1 = wp[1], w2 = wp[2], w3 = wp[3];
        int cc = 0;
        for (; cc + WS <= run; cc += WS)
          store(sq + cc, w0 * load<VS>(b0 + cc) + w1 * load<VS>(b1 + cc) +
                             w2 * load<VS>(b2 + cc) + w3 * load<VS>(b3 + cc));
        for (; cc + 8 <= run; cc += 8)
          store(sq + cc, w0 * load<V8>(b0 + cc) + w1 * load<V8>(b1 + cc) +
                             w2 * load<V8>(b2 + cc) + w3 * load<V8>(b3 + cc));
        for (; cc < run; ++cc)
          sq[cc] = w0 * b0[cc] + w1 * b1[cc] + w2 * b2[cc] + w3 * b3[cc];
      }
      for (int v = 0; v < nv; ++v) {
        V8 x[8];
        for (int q = 0; q < 8; ++q) x[q] = load<V8>(stage + q * kRun + 8 * v);
        transpose8(x);
        for (int l = 0; l < 8; ++l) store(d + (8 * v + l) * NR + q0, x[l]);
      }
      for (int cc = 8 * nv; cc < run; ++cc)
        for (int q = 0; q < 8; ++q) d[cc * NR + q0 + q] = stage[q * kRun + cc];
    }
    r += run;
  }
}

inline DCN_TARGET_AVX2 void to_channels_last_avx2(const float* x, int64_t HW, int C, int64_t p0,
                                                  int64_t p1, float* xt) {
  to_channels_last_body(x, HW, C, p0, p1, xt);
}
inline DCN_TARGET_AVX512 void to_channels_last_avx512(const float* x, int64_t HW, int C,
                                                      int64_t p0, int64_t p1, float* xt) {
  to_channels_last_body(x, HW, C, p0, p1, xt);
}
inline DCN_TARGET_AVX2 void hwc_panel_avx2(const HwcColumns& s, int k0, int kc, int j, int w,
                                           float* dst) {
  hwc_panel_body<KernAvx2::NR, V8>(s, k0, kc, j, w, dst);
}
template <int NR>
inline DCN_TARGET_AVX512 void hwc_panel_avx512(const HwcColumns& s, int k0, int kc, int j, int w,
                                               float* dst) {
  hwc_panel_body<NR, V16>(s, k0, kc, j, w, dst);
}

/*!
 * \brief one image (C, H*W) -> blocked channels-last (see HwcColumns): per convolution
 * group of cg channels, blocks of cb channels (the last one smaller), each transposed in
 * place of its channels into (H*W, block size).  OpenMP over blocks x position ranges.
 */
inline void to_blocked_channels_last(int isa, const float* x, int64_t HW, int C, int cg, int cb,
                                     float* xt) {
  constexpr int64_t kBlock = 64;
  const int groups = C / cg, full = cg / cb, nb = full + (cg % cb ? 1 : 0);
  const int64_t pblocks = (HW + kBlock - 1) / kBlock, jobs = groups * nb * pblocks;
#pragma omp parallel for schedule(static) if (HW * C > 65536)
  for (int64_t job = 0; job < jobs; ++job) {
    const int gb = static_cast<int>(job / pblocks), gr = gb / nb, b = gb % nb;
    const int64_t first = static_cast<int64_t>(gr) * cg + static_cast<int64_t>(b) * cb;
    const int size = b < full ? cb : cg - full * cb;
    const int64_t p0 = job % pblocks * kBlock, p1 = std::min(HW, p0 + kBlock);
    if (isa == kIsaAvx512)
      to_channels_last_avx512(x + first * HW, HW, size, p0, p1, xt + first * HW);
    else
      to_channels_last_avx2(x + first * HW, HW, size, p0, p1, xt + first * HW);
  }
}

/*! \brief B panels of the forward GEMM (see hwc_panel_body) */
template <class K>
struct HwcPanel {
  HwcColumns s;
  void operator()(int k0, int kc, int j, int w, float* dst) const {
    if constexpr (K::kIsa == kIsaAvx512)
      hwc_panel_avx512<K::NR>(s, k0, kc, j, w, dst);
    else
      hwc_panel_avx2(s, k0, kc, j, w, dst);
  }
};

/*!
 * \brief one MR-row panel of a group's weights (rows [i, i + h) of M x cg * taps, stored
 * channel-major: column c * taps + t) in the column order of HwcPanel (BlockedTapOrder).
 * The rows are read in order, 8 rows x 8 columns at a time, transposed in registers into
 * 8 column vectors of the panel.  Rows h..MR-1 receive copies of row h - 1 (their
 * products are never stored).
 */
template <int MR>
DCN_INLINE void blocked_tap_pack_body(const float* w, int K, const BlockedTapOrder& o, int i,
                                      int h, const PanelDst<MR>& pd) {
  const int taps = o.taps, full = o.cg / o.cb, per = taps * o.cb;
  for (int r0 = 0; r0 < MR; r0 += 8) {
    const float* rows[8];
    for (int l = 0; l < 8; ++l) rows[l] = w + static_cast<int64_t>(i + std::min(r0 + l, h - 1)) * K;
    const int nr = std::min(8, MR - r0);
    // destination of source column s = c * taps + t, walked incrementally
    int c = 0, t = 0, b = 0, cw = 0, size = full > 0 ? o.cb : o.cg;
    auto dest = [&]() { return b * per + t * size + cw; };
    auto next = [&]() {
      if (++t < taps) return;
      t = 0;
      ++c;
      if (++cw == size) {
        ++b;
        cw = 0;
        size = b < full ? o.cb : o.cg - full * o.cb;
      }
    };
    int s = 0;
    for (; s + 8 <= K; s += 8) {
      V8 x[8];
      for (int l = 0; l < 8; ++l) x[l] = load<V8>(rows[l] + s);
      transpose8(x);  // x[q]: the 8 rows at column s + q
      for (int q = 0; q < 8; ++q) {
        memcpy(pd.at(dest()) + r0, &x[q], nr * sizeof(float));
        next();
      }
    }
    for (; s < K; ++s) {
      float* d = pd.at(dest()) + r0;
      for (int l = 0; l < nr; ++l) d[l] = rows[l][s];
      next();
    }
  }
}

inline DCN_TARGET_AVX2 void blocked_tap_pack_avx2(const float* w, int K, const BlockedTapOrder& o,
                                                  int i, int h,
                                                  const PanelDst<KernAvx2::MR>& pd) {
  blocked_tap_pack_body<KernAvx2::MR>(w, K, o, i, h, pd);
}
inline DCN_TARGET_AVX512 void blocked_tap_pack_avx512(const float* w, int K,
                                                      const BlockedTapOrder& o, int i, int h,
                                                      const PanelDst<KernAvx512::MR>& pd) {
  blocked_tap_pack_body<KernAvx512::MR>(w, K, o, i, h, pd);
}

/*! \brief A panels of the forward GEMM: a group's weights in BlockedTapOrder */
template <class Kn>
struct BlockedTapWeights {
  const float* w;
  int K;
  BlockedTapOrder order;
  void operator()(int i, int h, const PanelDst<Kn::MR>& pd) const {
    if constexpr (Kn::kIsa == kIsaAvx512)
      blocked_tap_pack_avx512(w, K, order, i, h, pd);
    else
      blocked_tap_pack_avx2(w, K, order, i, h, pd);
  }
};

/*! \brief column-matrix samples of image n, read through the sampling plan */
struct ColumnSampler {
  const float* data_n;
  const int* pidx;
  const float* pwt;
  int64_t plane, L, taps;
  int cpg;
};

/*!
 * \brief op(B) = transposed column rows: positions x rows [row0, row0 + K) (weight
 * gradient).  Panel column c is column row j + c; columns c, c + taps, c + 2 taps,
 * c + 3 taps are four channels at the same tap and share the plan record when
 * they belong to one deformable group, so they are sampled together.
 */
template <int NR>
struct ColumnTPanel {
  ColumnSampler s;
  int64_t row0;
  void operator()(int l0, int lc, int j, int w, float* dst) const {
    const int64_t taps = s.taps;
    for (int c = w; c < NR; ++c)
      for (int l = 0; l < lc; ++l) dst[l * NR + c] = 0.f;
    for (int c0 = 0; c0 < w && c0 < taps; ++c0) {
      int c = c0;
      while (c < w) {
        const int64_t r = row0 + j + c;
        const int64_t ch = r / taps, t = r % taps, dg = ch / s.cpg;
        int nrow = 1;
        while (nrow < 4 && c + nrow * taps < w && (ch + nrow) / s.cpg == dg) ++nrow;
        const int64_t task = dg * taps + t;
        const int* idx = s.pidx + task * s.L * 4 + 4 * static_cast<int64_t>(l0);
        const float* wt = s.pwt + task * s.L * 4 + 4 * static_cast<int64_t>(l0);
        const float* s0 = s.data_n + ch * s.plane;
        if (nrow == 4) {
          const float* s1 = s0 + s.plane;
          const float* s2 = s1 + s.plane;
          const float* s3 = s2 + s.plane;
          const int c1 = c + static_cast<int>(taps), c2 = c1 + static_cast<int>(taps),
                    c3 = c2 + static_cast<int>(taps);
          for (int l = 0; l < lc; ++l) {
            const int i0 = idx[4 * l], i1 = idx[4 * l + 1], i2 = idx[4 * l + 2], i3 = idx[4 * l + 3];
            const float w0 = wt[4 * l], w1 = wt[4 * l + 1], w2 = wt[4 * l + 2], w3 = wt[4 * l + 3];
            float* d = dst + l * NR;
            d[c] = w0 * s0[i0] + w1 * s0[i1] + w2 * s0[i2] + w3 * s0[i3];
            d[c1] = w0 * s1[i0] + w1 * s1[i1] + w2 * s1[i2] + w3 * s1[i3];
            d[c2] = w0 * s2[i0] + w1 * s2[i1] + w2 * s2[i2] + w3 * s2[i3];
            d[c3] = w0 * s3[i0] + w1 * s3[i1] + w2 * s3[i2] + w3 * s3[i3];
          }
        } else {
          for (int q = 0; q < nrow; ++q) {
            const float* sq = s0 + q * s.plane;
            const int cq = c + q * static_cast<int>(taps);
            for (int l = 0; l < lc; ++l) {
              const int* ip = idx + 4 * l;
              const float* wp = wt + 4 * l;
              dst[l * NR + cq] =
                  wp[0] * sq[ip[0]] + wp[1] * sq[ip[1]] + wp[2] * sq[ip[2]] + wp[3] * sq[ip[3]];
            }
          }
        }
        c += nrow * static_cast<int>(taps);
      }
    }
  }
};

inline ColumnSampler column_sampler(const ConvGeom& g, int n, const float* data, const int* pidx,
                                    const float* pwt) {
  ColumnSampler s;
  s.plane = static_cast<int64_t>(g.H) * g.W;
  s.data_n = data + static_cast<int64_t>(n) * g.C * s.plane;
  s.pidx = pidx;
  s.pwt = pwt;
  s.L = g.L();
  s.taps = g.taps();
  s.cpg = g.C / g.dgroups;
  return s;
}

}  // namespace simd
#endif

template <typename T>
void conv_forward(const ConvGeom& g, const T* data, const T* offset, const T* mask,
                  const T* weight, const T* bias, T* out, void* ws) {
  const bool fused = fused_columns<T>();
  T* col; int* pidx; T* pwt; T* hwc;
  conv_workspace_split(g, ws, &col, &pidx, &pwt, !fused, &hwc);
  const int64_t L = g.L();
  const int M = g.F / g.groups;
  const int K = static_cast<int>(g.col_rows() / g.groups);
  for (int n = 0; n < g.N; ++n) {
    build_plan(g, n, offset, mask, pidx, pwt);
#ifdef DCN_HAVE_X86_KERNELS
    if constexpr (std::is_same<T, float>::value) {
      if (fused) {
        const int isa = isa_current();
        const int64_t plane = static_cast<int64_t>(g.H) * g.W;
        const int cg = g.C / g.groups, taps = static_cast<int>(g.taps());
        const simd::BlockedTapOrder order{cg, taps, std::min(cg, 128)};
        simd::to_blocked_channels_last(isa, data + static_cast<int64_t>(n) * g.C * plane, plane,
                                       g.C, cg, order.cb, hwc);
        simd::HwcColumns s{hwc, pidx, pwt, L, taps, plane, g.C / g.dgroups, 0, order};
        simd::with_kernel(isa, [&](auto kern) {
          using Kn = decltype(kern);
          for (int gr = 0; gr < g.groups; ++gr) {
            s.c0 = gr * cg;
            simd::sgemm_gen<Kn>(
                M, static_cast<int>(L), K,
                simd::BlockedTapWeights<Kn>{weight + static_cast<int64_t>(gr) * M * K, K, order},
                simd::HwcPanel<Kn>{s}, 0.f, out + (static_cast<int64_t>(n) * g.F + gr * M) * L,
                static_cast<int>(L));
          }
        });
      }
    }
#endif
    if (!fused) im2col(g, n, data, pidx, pwt, col);
    for (int gr = 0; gr < g.groups && !fused; ++gr) {
      gemm(false, false, M, static_cast<int>(L), K, T(1), weight + static_cast<int64_t>(gr) * M * K,
           K, col + static_cast<int64_t>(gr) * K * L, static_cast<int>(L), T(0),
           out + (static_cast<int64_t>(n) * g.F + gr * M) * L, static_cast<int>(L));
    }
    if (bias) {
      T* o = out + static_cast<int64_t>(n) * g.F * L;
#pragma omp parallel for schedule(static) if (g.F * L > 65536)
      for (int f = 0; f < g.F; ++f) {
        const T b = bias[f];
        T* row = o + f * L;
        for (int64_t p = 0; p < L; ++p) row[p] += b;
      }
    }
  }
}

/*! \brief backward; any grad pointer may be null (not needed) */
template <typename T>
void conv_backward(const ConvGeom& g, const T* grad_out, const T* data, const T* offset,
                   const T* mask, const T* weight, T* grad_data, T* grad_offset, T* grad_mask,
                   T* grad_weight, T* grad_bias, void* ws) {
  T* col; int* pidx; T* pwt;
  conv_workspace_split(g, ws, &col, &pidx, &pwt);
  const int64_t L = g.L();
  const int M = g.F / g.groups;
  const int K = static_cast<int>(g.col_rows() / g.groups);
  for (int n = 0; n < g.N; ++n) {
    const T* go_n = grad_out + static_cast<int64_t>(n) * g.F * L;
    if (grad_data || grad_offset || grad_mask) {
      for (int gr = 0; gr < g.groups; ++gr) {
        gemm(true, false, K, static_cast<int>(L), M, T(1),
             weight + static_cast<int64_t>(gr) * M * K, K, go_n + static_cast<int64_t>(gr) * M * L,
             static_cast<int>(L), T(0), col + static_cast<int64_t>(gr) * K * L,
             static_cast<int>(L));
      }
      if (grad_offset || grad_mask)
        col2coord(g, n, col, data, offset, mask, grad_offset, grad_mask);
      if (grad_data || grad_weight) build_plan(g, n, offset, mask, pidx, pwt);
      if (grad_data) col2im(g, n, col, pidx, pwt, grad_data);
    } else if (grad_weight) {
      build_plan(g, n, offset, mask, pidx, pwt);
    }
    bool weight_done = false;
#ifdef DCN_HAVE_X86_KERNELS
    if constexpr (std::is_same<T, float>::value) {
      if (grad_weight && fused_columns<T>()) {
        const simd::ColumnSampler smp = simd::column_sampler(g, n, data, pidx, pwt);
        simd::with_kernel(isa_current(), [&](auto kern) {
          using Kn = decltype(kern);
          for (int gr = 0; gr < g.groups; ++gr) {
            simd::sgemm_gen<Kn>(M, K, static_cast<int>(L),
                                simd::MatrixA<Kn>{false, go_n + static_cast<int64_t>(gr) * M * L,
                                                      static_cast<int>(L)},
                                simd::ColumnTPanel<Kn::NR>{smp, static_cast<int64_t>(gr) * K},
                                n == 0 ? 0.f : 1.f, grad_weight + static_cast<int64_t>(gr) * M * K, K);
          }
        });
        weight_done = true;
      }
    }
#endif
    if (grad_weight && !weight_done) {
      im2col(g, n, data, pidx, pwt, col);
      for (int gr = 0; gr < g.groups; ++gr) {
        gemm(false, true, M, K, static_cast<int>(L), T(1), go_n + static_cast<int64_t>(gr) * M * L,
             static_cast<int>(L), col + static_cast<int64_t>(gr) * K * L, static_cast<int>(L),
             n == 0 ? T(0) : T(1), grad_weight + static_cast<int64_t>(gr) * M * K, K);
      }
    }
  }
  if (grad_bias) {
#pragma omp parallel for schedule(static) if (g.F * L * g.N > 65536)
    for (int f = 0; f < g.F; ++f) {
      T s = T(0);
      for (int n = 0; n < g.N; ++n) {
        const T* row = grad_out + (static_cast<int64_t>(n) * g.F + f) * L;
        for (int64_t p = 0; p < L; ++p) s += row[p];
      }
      grad_bias[f] = s;
    }
  }
}

/* ------------------------------------------------------------------------ */
/* Deformable position-sensitive RoI pooling                                 */
/* ------------------------------------------------------------------------ */

struct PoolGeom {
  int N, C, H, W;      // data
  int R;               // rois
  int output_dim, group, pooled, part, samples;
  int num_classes;     // trans classes (1 when no_trans)
  bool no_trans;
  double spatial_scale, trans_std;
};

/*
 * The pooling kernels run "plane major": a task owns one output channel ctop and
 * walks its bins (ph, pw) and, inside, all RoIs.  The input plane of a bin
 * (channel (ctop * group + gh) * group + gw) then stays in cache while every
 * RoI samples it, and the data gradient of a plane is written by one task only.
 * RoI-indexed quantities (outputs, trans) are used in transposed, RoI-minor
 * layouts so that the inner RoI loop reads them contiguously.  The forward pass
 * of a class with several output channels (all channels without trans) instead
 * runs one task per (class, bin): the sampling geometry of a bin is the same for
 * every channel of the class, so it is built once per RoI (a short list of
 * cells and weights) and applied to each channel's plane.
 */

/*! \brief per-RoI geometry (deformable PS RoI pooling) */
template <typename T>
struct RoIInfo {
  int batch;
  T start_w, start_h, width, height, bin_w, bin_h, sub_w, sub_h;
};

template <typename T>
struct DPSWorkspace {
  RoIInfo<T>* info;    // R
  T* trans_t;          // (num_classes, part, part, R, 2) raw trans values
  T* val_t;            // (output_dim, P, P, R): outputs (fwd) / scaled top grads (bwd)
  T* cnt_t;            // (output_dim, P, P, R): sample counts (fwd only)
  T* gtrans_t;         // threads x (num_classes, part, part, R, 2) (bwd only)
  int threads;
};

inline uintptr_t align64(uintptr_t p) { return (p + 63) & ~static_cast<uintptr_t>(63); }

/*! \brief whether every output channel c pools input channel c through one sampling grid
 *  per (RoI, bin) (group 1, one offset class): the channels-last kernels apply */
inline bool dpsroi_channels_last(const PoolGeom& g) {
  return g.group == 1 && g.output_dim >= 8 && g.output_dim <= g.C &&
         (g.no_trans || g.num_classes == 1);
}

/*! \brief bytes of the pooling workspace (carved by dpsroi_workspace_split; channels-last:
 *  the transposed map, and in the backward pass its gradient) */
template <typename T>
int64_t dpsroi_workspace_bytes(const PoolGeom& g, bool backward, int threads) {
  if (dpsroi_channels_last(g))
    return 64 * 2 + static_cast<int64_t>(sizeof(T)) * g.N * g.C * g.H * g.W * (backward ? 2 : 1);
  const int64_t outs = static_cast<int64_t>(g.R) * g.output_dim * g.pooled * g.pooled;
  const int64_t tr = g.no_trans ? 0 : static_cast<int64_t>(g.R) * g.num_classes * 2 * g.part * g.part;
  int64_t b = 64 * 6 + static_cast<int64_t>(sizeof(RoIInfo<T>)) * g.R + sizeof(T) * tr +
              sizeof(T) * outs * (backward ? 1 : 2);
  if (backward) b += sizeof(T) * tr * threads;
  return b;
}

template <typename T>
DPSWorkspace<T> dpsroi_workspace_split(const PoolGeom& g, bool backward, int threads, void* ws) {
  const int64_t outs = static_cast<int64_t>(g.R) * g.output_dim * g.pooled * g.pooled;
  const int64_t tr = g.no_trans ? 0 : static_cast<int64_t>(g.R) * g.num_classes * 2 * g.part * g.part;
  DPSWorkspace<T> w;
  uintptr_t p = align64(reinterpret_cast<uintptr_t>(ws));
  w.info = reinterpret_cast<RoIInfo<T>*>(p);
  p = align64(p + sizeof(RoIInfo<T>) * g.R);
  w.trans_t = reinterpret_cast<T*>(p);
  p = align64(p + sizeof(T) * tr);
  w.val_t = reinterpret_cast<T*>(p);
  p = align64(p + sizeof(T) * outs);
  w.cnt_t = backward ? nullptr : reinterpret_cast<T*>(p);
  if (!backward) p = align64(p + sizeof(T) * outs);
  w.gtrans_t = backward ? reinterpret_cast<T*>(p) : nullptr;
  w.threads = threads;
  return w;
}

/*! \brief info[r]: the geometry of RoI r (bins and sample steps) */
template <typename T>
void dpsroi_roi_info(const PoolGeom& g, const T* rois, RoIInfo<T>* info) {
  for (int r = 0; r < g.R; ++r) {
    const DPSRoI<T> geo = dpsroi_geometry(rois + static_cast<int64_t>(r) * 5,
                                          static_cast<T>(g.spatial_scale));
    RoIInfo<T>& in = info[r];
    in.batch = geo.batch;
    in.start_w = geo.start_w;
    in.start_h = geo.start_h;
    in.width = geo.width;
    in.height = geo.height;
    in.bin_h = geo.height / static_cast<T>(g.pooled);
    in.bin_w = geo.width / static_cast<T>(g.pooled);
    in.sub_h = in.bin_h / static_cast<T>(g.samples);
    in.sub_w = in.bin_w / static_cast<T>(g.samples);
  }
}

template <typename T>
void dpsroi_prepare(const PoolGeom& g, const T* rois, const T* trans, DPSWorkspace<T>* w) {
  dpsroi_roi_info(g, rois, w->info);
  if (g.no_trans) return;
  const int64_t pp = static_cast<int64_t>(g.part) * g.part;
  const int64_t cells = g.num_classes * pp;
  // trans (R, num_classes, 2, part, part) -> (num_classes, part, part, R, 2)
#pragma omp parallel for schedule(static) if (g.R * cells > 65536)
  for (int r = 0; r < g.R; ++r) {
    const T* src = trans + static_cast<int64_t>(r) * cells * 2;
    for (int64_t cell = 0; cell < cells; ++cell) {
      const int64_t cls = cell / pp, pos = cell % pp;
      T* dst = w->trans_t + (cell * g.R + r) * 2;
      dst[0] = src[(cls * 2) * pp + pos];
      dst[1] = src[(cls * 2 + 1) * pp + pos];
    }
  }
}

/*! \brief bin layout shared by forward and backward for output channel ctop */
struct DPSBin {
  int c;             // input channel
  int64_t cell;      // trans cell (class, part_h, part_w)
};

inline DPSBin dpsroi_bin(const PoolGeom& g, int ctop, int ph, int pw) {
  DPSBin b;
  const int gw = ps_group_index(pw, g.pooled, g.group);
  const int gh = ps_group_index(ph, g.pooled, g.group);
  b.c = (ctop * g.group + gh) * g.group + gw;
  const int channels_each_class = g.no_trans ? g.output_dim : g.output_dim / g.num_classes;
  const int class_id = g.no_trans ? 0 : ctop / channels_each_class;
  const int part_h = dpsroi_part_index(ph, g.pooled, g.part);
  const int part_w = dpsroi_part_index(pw, g.pooled, g.part);
  b.cell = (static_cast<int64_t>(class_id) * g.part + part_h) * g.part + part_w;
  return b;
}

/*! \brief top-left sample position of the bin (ph, pw) of RoI `in`, shifted by the part
 *  offset `t` (x, y; nullptr without trans) */
template <typename T>
inline void dpsroi_bin_start(const RoIInfo<T>& in, int ph, int pw, const T* t, T tstd,
                             T* wstart, T* hstart) {
  *wstart = static_cast<T>(pw) * in.bin_w + in.start_w;
  *hstart = static_cast<T>(ph) * in.bin_h + in.start_h;
  if (t) {
    *wstart += t[0] * tstd * in.width;
    *hstart += t[1] * tstd * in.height;
  }
}

/*! \brief bilinear records of one bin's sampling grid along x and y (separable): the bin of
 *  RoI `in` at (ph, pw), shifted by the part offset `t` (x, y; nullptr without trans). Samples
 *  outside the map are dropped; *nx / *ny receive the number of kept columns / rows. */
template <typename T>
inline void dpsroi_bin_axes(const PoolGeom& g, const RoIInfo<T>& in, int ph, int pw, const T* t,
                            T tstd, int* xl, int* xh, T* xd, int* nx, int* yl, int* yh, T* yd,
                            int* ny) {
  T wstart, hstart;
  dpsroi_bin_start(in, ph, pw, t, tstd, &wstart, &hstart);
  *nx = 0;
  *ny = 0;
  for (int i = 0; i < g.samples; ++i) {
    if (dpsroi_axis(wstart + static_cast<T>(i) * in.sub_w, g.W, &xl[*nx], &xh[*nx], &xd[*nx])) ++*nx;
    if (dpsroi_axis(hstart + static_cast<T>(i) * in.sub_h, g.H, &yl[*ny], &yh[*ny], &yd[*ny])) ++*ny;
  }
}

/*!
 * \brief Separable sampling grid of one bin along one axis.  The bilinear
 * corners of the valid samples start + i * step (i < samples) are accumulated
 * into cells: cell k has index idx[k] and interpolation weight w[k] (sum over
 * the samples of 1 - d at lo, d at hi).  When the corners span at most
 * 2 * samples consecutive indices (bins of a few pixels) the cells are that
 * dense window, so neighbouring samples share cells; otherwise every corner is
 * its own cell.  Returns the number of cells (at most 2 * samples); *valid
 * receives the number of valid samples.  The bilinear sum of a bin over its
 * ny x nx samples is sum_r wy[r] sum_c wx[c] v[r][c].  dw (optional) receives the
 * weights of the derivative along the axis (sum over the samples of -1 at lo, +1 at
 * hi): the sum over the samples of v(hi) - v(lo) along x, weighted along y, is
 * sum_r wy[r] sum_c dwx[c] v[r][c].
 */
template <typename T>
inline int dpsroi_axis_cells(T start, T step, int samples, int size, int* idx, T* w,
                             int* valid, T* dw = nullptr) {
  constexpr int kMax = 64;
  int lo[kMax], hi[kMax];
  T d[kMax];
  if (samples > kMax) {  // one cell per corner
    int n = 0;
    for (int i = 0; i < samples; ++i) {
      int l, h;
      T dd;
      if (!dpsroi_axis(start + static_cast<T>(i) * step, size, &l, &h, &dd)) continue;
      if (dw) { dw[n] = T(-1); dw[n + 1] = T(1); }
      idx[n] = l; w[n] = T(1) - dd; ++n;
      idx[n] = h; w[n] = dd; ++n;
    }
    *valid = n / 2;
    return n;
  }
  int nv = 0;
  for (int i = 0; i < samples; ++i)
    if (dpsroi_axis(start + static_cast<T>(i) * step, size, &lo[nv], &hi[nv], &d[nv])) ++nv;
  *valid = nv;
  if (nv == 0) return 0;
  // valid positions are non-decreasing: the corners lie in [lo[0], hi[nv - 1]]
  const int base = lo[0];
  const int span = hi[nv - 1] - base + 1;
  if (span <= 2 * samples) {
    for (int k = 0; k < span; ++k) {
      idx[k] = base + k;
      w[k] = T(0);
      if (dw) dw[k] = T(0);
    }
    for (int i = 0; i < nv; ++i) {
      w[lo[i] - base] += T(1) - d[i];
      w[hi[i] - base] += d[i];
      if (dw) {
        dw[lo[i] - base] -= T(1);
        dw[hi[i] - base] += T(1);
      }
    }
    return span;
  }
  for (int i = 0; i < nv; ++i) {
    idx[2 * i] = lo[i]; w[2 * i] = T(1) - d[i];
    idx[2 * i + 1] = hi[i]; w[2 * i + 1] = d[i];
    if (dw) { dw[2 * i] = T(-1); dw[2 * i + 1] = T(1); }
  }
  return 2 * nv;
}

/*! \brief dst[0:len] = sum_k w[k] * rows[k][0:len] */
inline void weighted_row_sum(int len, int n, const float* const* rows, const float* w,
                             float* dst) {
#ifdef DCN_HAVE_X86_KERNELS
  const int isa = isa_current();
  if (isa == kIsaAvx512) {
    simd::KernAvx512::weighted_row_sum(len, n, rows, w, dst);
    return;
  }
  if (isa == kIsaAvx2) {
    simd::KernAvx2::weighted_row_sum(len, n, rows, w, dst);
    return;
  }
#endif
  std::fill(dst, dst + len, 0.f);
  for (int k = 0; k < n; ++k)
    for (int c = 0; c < len; ++c) dst[c] += w[k] * rows[k][c];
}
inline void weighted_row_sum(int len, int n, const double* const* rows, const double* w,
                             double* dst) {
  std::fill(dst, dst + len, 0.0);
  for (int k = 0; k < n; ++k)
    for (int c = 0; c < len; ++c) dst[c] += w[k] * rows[k][c];
}

/* ------------------------------------------------------------------------ */
/* Channels-last deformable PS RoI pooling                                   */
/* ------------------------------------------------------------------------ */
/*
 * With dpsroi_channels_last(g) (group 1, one offset class) every output channel c reads
 * input channel c through the same sampling grid of a bin.  The data is then pooled
 * channels-last, (N, H*W, C): a cell of a bin's separable grid (dpsroi_axis_cells) is a
 * row of contiguous channels, so the forward weighted sums, the backward scatter of the
 * data gradient and the offset gradient's sums are vector operations over the channels,
 * and the grid is built once per (RoI, bin) instead of once per channel.  The map is
 * transposed once per call; the data gradient is accumulated channels-last (both
 * poolings of an FPN level add into one buffer) and transposed back.
 */

/*! \brief dst (cols x rows) = src (rows x cols)^T */
template <typename T>
void transpose_matrix(const T* src, int64_t rows, int64_t cols, T* dst) {
#ifdef DCN_HAVE_X86_KERNELS
  if constexpr (std::is_same<T, float>::value) {
    const int isa = isa_current();
    if (isa != kIsaGeneric && rows <= (int64_t(1) << 30)) {
      simd::to_blocked_channels_last(isa, src, cols, static_cast<int>(rows),
                                     static_cast<int>(rows), static_cast<int>(rows), dst);
      return;
    }
  }
#endif
  constexpr int64_t B = 32;
  const int64_t rb = (rows + B - 1) / B, cb = (cols + B - 1) / B;
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
  for (int64_t job = 0; job < rb * cb; ++job) {
    const int64_t r0 = job / cb * B, c0 = job % cb * B;
    const int64_t r1 = std::min(rows, r0 + B), c1 = std::min(cols, c0 + B);
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = c0; c < c1; ++c) dst[c * rows + r] = src[r * cols + c];
  }
}

/*! \brief xt (N, H*W, C) = data (N, C, H*W) */
template <typename T>
void dpsroi_to_channels_last(const PoolGeom& g, const T* data, T* xt) {
  const int64_t hw = static_cast<int64_t>(g.H) * g.W, map = hw * g.C;
  for (int n = 0; n < g.N; ++n) transpose_matrix(data + n * map, g.C, hw, xt + n * map);
}

/*! \brief grad (N, C, H*W) = gxt (N, H*W, C) */
template <typename T>
void dpsroi_from_channels_last(const PoolGeom& g, const T* gxt, T* grad) {
  const int64_t hw = static_cast<int64_t>(g.H) * g.W, map = hw * g.C;
  for (int n = 0; n < g.N; ++n) transpose_matrix(gxt + n * map, hw, g.C, grad + n * map);
}

/*! \brief grows[k] += a[k] d and, with vrows, *sx / *sy = sum_c d[c] sum_k ax[k] / ay[k]
 *  vrows[k][c] (see grid_backward_body) */
template <typename T>
inline void grid_backward(int len, int n, T* const* grows, const T* const* vrows, const T* a,
                          const T* ax, const T* ay, const T* d, T* sx, T* sy) {
#ifdef DCN_HAVE_X86_KERNELS
  if constexpr (std::is_same<T, float>::value) {
    const int isa = isa_current();
    if (isa == kIsaAvx512)
      return simd::KernAvx512::grid_backward(len, n, grows, vrows, a, ax, ay, d, sx, sy);
    if (isa == kIsaAvx2)
      return simd::KernAvx2::grid_backward(len, n, grows, vrows, a, ax, ay, d, sx, sy);
  }
#endif
  if (grows)
    for (int k = 0; k < n; ++k)
      for (int c = 0; c < len; ++c) grows[k][c] += a[k] * d[c];
  if (!vrows) return;
  T tx = T(0), ty = T(0);
  for (int c = 0; c < len; ++c) {
    T px = T(0), py = T(0);
    for (int k = 0; k < n; ++k) {
      px += ax[k] * vrows[k][c];
      py += ay[k] * vrows[k][c];
    }
    tx += px * d[c];
    ty += py * d[c];
  }
  *sx = tx;
  *sy = ty;
}

/*! \brief the separable cells of bin (ph, pw) of RoI r (offsets of its part cell from
 *  trans (R, 2, part, part) unless null); returns the bin's in-map sample count */
template <typename T>
inline int dpsroi_hwc_cells(const PoolGeom& g, const RoIInfo<T>& in, int r, int ph, int pw,
                            const T* trans, T tstd, int* cx, T* wx, T* dx, int* ncx, int* cy,
                            T* wy, T* dy, int* ncy) {
  T t[2], wstart, hstart;
  if (trans) {
    const int64_t pp = static_cast<int64_t>(g.part) * g.part;
    const int64_t pos = static_cast<int64_t>(dpsroi_part_index(ph, g.pooled, g.part)) * g.part +
                        dpsroi_part_index(pw, g.pooled, g.part);
    t[0] = trans[r * 2 * pp + pos];
    t[1] = trans[r * 2 * pp + pp + pos];
  }
  dpsroi_bin_start(in, ph, pw, trans ? t : nullptr, tstd, &wstart, &hstart);
  int nx, ny;
  *ncx = dpsroi_axis_cells(wstart, in.sub_w, g.samples, g.W, cx, wx, &nx, dx);
  *ncy = dpsroi_axis_cells(hstart, in.sub_h, g.samples, g.H, cy, wy, &ny, dy);
  return nx * ny;
}

/*!
 * \brief forward on channels-last data xt (N, H*W, C): out and top_count (optional)
 * (R, output_dim, P, P).  OpenMP over RoIs.
 */
template <typename T>
void dpsroi_forward_hwc(const PoolGeom& g, const T* xt, const T* rois, const T* trans, T* out,
                        T* top_count) {
  const int P = g.pooled, PP = P * P, R = g.R, D = g.output_dim, C = g.C;
  const int64_t hw = static_cast<int64_t>(g.H) * g.W;
  const T tstd = static_cast<T>(g.trans_std);
  const T* tr = g.no_trans ? nullptr : trans;
  std::vector<RoIInfo<T>> info(R);
  dpsroi_roi_info(g, rois, info.data());
  const int M = 2 * g.samples;
#pragma omp parallel if (static_cast<int64_t>(R) * D * PP > 4096)
  {
    std::vector<int> cx(M), cy(M), cnt(PP);
    std::vector<T> wx(M), wy(M), cw(M * M), f(static_cast<size_t>(PP) * D);
    std::vector<const T*> rows(M * M);
#pragma omp for schedule(dynamic, 1)
    for (int r = 0; r < R; ++r) {
      const RoIInfo<T>& in = info[r];
      const T* base = xt + static_cast<int64_t>(in.batch) * hw * C;
      for (int bin = 0; bin < PP; ++bin) {
        int ncx, ncy;
        cnt[bin] = dpsroi_hwc_cells<T>(g, in, r, bin / P, bin % P, tr, tstd, cx.data(), wx.data(),
                                    nullptr, &ncx, cy.data(), wy.data(), nullptr, &ncy);
        T* fb = f.data() + static_cast<int64_t>(bin) * D;
        if (cnt[bin] == 0) {
          std::fill(fb, fb + D, T(0));
          continue;
        }
        const T inv = T(1) / static_cast<T>(cnt[bin]);
        int n = 0;
        for (int iy = 0; iy < ncy; ++iy)
          for (int ix = 0; ix < ncx; ++ix, ++n) {
            cw[n] = wy[iy] * inv * wx[ix];
            rows[n] = base + (static_cast<int64_t>(cy[iy]) * g.W + cx[ix]) * C;
          }
        weighted_row_sum(D, n, rows.data(), cw.data(), fb);
      }
      transpose_matrix(f.data(), PP, D, out + static_cast<int64_t>(r) * D * PP);
      if (top_count) {
        T* tc = top_count + static_cast<int64_t>(r) * D * PP;
        for (int c = 0; c < D; ++c)
          for (int bin = 0; bin < PP; ++bin) tc[c * PP + bin] = static_cast<T>(cnt[bin]);
      }
    }
  }
}

/*!
 * \brief backward on channels-last data: grad_out (R, output_dim, P, P); the data
 * gradient is added to gxt (N, H*W, C) (null: not wanted); grad_trans (R, 2, part, part)
 * is written (null: not wanted).  The sample counts are those of the forward pass,
 * recomputed from the grids.  The channels are split into one contiguous block per
 * thread (each block's gradient rows are written by one thread); the offset gradient's
 * per-block partial sums are added in block order, so results do not depend on timing.
 */
template <typename T>
void dpsroi_backward_hwc(const PoolGeom& g, const T* grad_out, const T* xt, const T* rois,
                         const T* trans, T* gxt, T* grad_trans, int threads) {
  const int P = g.pooled, PP = P * P, R = g.R, D = g.output_dim, C = g.C;
  const int64_t hw = static_cast<int64_t>(g.H) * g.W;
  const int64_t pp = static_cast<int64_t>(g.part) * g.part;
  const T tstd = static_cast<T>(g.trans_std);
  const bool want_trans = grad_trans && !g.no_trans;
  if (want_trans)
    std::fill(grad_trans, grad_trans + static_cast<int64_t>(R) * 2 * pp, T(0));
  if (!gxt && !want_trans) return;
  const T* tr = g.no_trans ? nullptr : trans;
  std::vector<RoIInfo<T>> info(R);
  dpsroi_roi_info(g, rois, info.data());
  // top gradient (R, D, PP) -> (R, PP, D)
  std::vector<T> gt(static_cast<size_t>(R) * PP * D);
#pragma omp parallel for schedule(static) if (static_cast<int64_t>(R) * PP * D > 65536)
  for (int r = 0; r < R; ++r)
    transpose_matrix(grad_out + static_cast<int64_t>(r) * D * PP, D, PP,
                     gt.data() + static_cast<int64_t>(r) * PP * D);
  const int want = std::max(1, std::min(threads, (D + 15) / 16));
  const int chunk = ((D + want - 1) / want + 15) / 16 * 16;
  const int blocks = (D + chunk - 1) / chunk;
  std::vector<T> part(want_trans ? static_cast<size_t>(blocks) * R * PP * 2 : 0);
  const int M = 2 * g.samples;
#pragma omp parallel for num_threads(std::max(1, threads)) schedule(static, 1) if (blocks > 1)
  for (int b = 0; b < blocks; ++b) {
    const int c0 = b * chunk, len = std::min(D, c0 + chunk) - c0;
    std::vector<int> cx(M), cy(M);
    std::vector<T> wx(M), wy(M), dwx(M), dwy(M), a(M * M), ax(M * M), ay(M * M);
    std::vector<T*> grows(M * M);
    std::vector<const T*> vrows(M * M);
    for (int r = 0; r < R; ++r) {
      const RoIInfo<T>& in = info[r];
      const int64_t base = static_cast<int64_t>(in.batch) * hw * C + c0;
      for (int bin = 0; bin < PP; ++bin) {
        T* pt = want_trans ? &part[((static_cast<size_t>(b) * R + r) * PP + bin) * 2] : nullptr;
        if (pt) pt[0] = pt[1] = T(0);
        const T* d = gt.data() + (static_cast<int64_t>(r) * PP + bin) * D + c0;
        bool zero = true;
        for (int c = 0; c < len && zero; ++c) zero = d[c] == T(0);
        if (zero) continue;
        int ncx, ncy;
        const int cnt = dpsroi_hwc_cells(g, in, r, bin / P, bin % P, tr, tstd, cx.data(),
                                         wx.data(), dwx.data(), &ncx, cy.data(), wy.data(),
                                         dwy.data(), &ncy);
        if (cnt == 0) continue;
        const T inv = T(1) / static_cast<T>(cnt);
        int n = 0;
        for (int iy = 0; iy < ncy; ++iy)
          for (int ix = 0; ix < ncx; ++ix, ++n) {
            const int64_t row = base + (static_cast<int64_t>(cy[iy]) * g.W + cx[ix]) * C;
            a[n] = wy[iy] * inv * wx[ix];
            ax[n] = wy[iy] * dwx[ix];
            ay[n] = dwy[iy] * wx[ix];
            if (gxt) grows[n] = gxt + row;
            vrows[n] = xt + row;
          }
        T sx = T(0), sy = T(0);
        grid_backward(len, n, gxt ? grows.data() : nullptr, want_trans ? vrows.data() : nullptr,
                      a.data(), ax.data(), ay.data(), d, &sx, &sy);
        if (pt) {
          pt[0] = sx * inv;
          pt[1] = sy * inv;
        }
      }
    }
  }
  if (!want_trans) return;
  for (int r = 0; r < R; ++r) {
    const RoIInfo<T>& in = info[r];
    T* dst = grad_trans + static_cast<int64_t>(r) * 2 * pp;
    for (int bin = 0; bin < PP; ++bin) {
      T sx = T(0), sy = T(0);
      for (int b = 0; b < blocks; ++b) {
        const T* pt = &part[((static_cast<size_t>(b) * R + r) * PP + bin) * 2];
        sx += pt[0];
        sy += pt[1];
      }
      const int64_t pos =
          static_cast<int64_t>(dpsroi_part_index(bin / P, P, g.part)) * g.part +
          dpsroi_part_index(bin % P, P, g.part);
      dst[pos] += sx * tstd * in.width;
      dst[pp + pos] += sy * tstd * in.height;
    }
  }
}

template <typename T>
void dpsroi_forward(const PoolGeom& g, const T* data, const T* rois, const T* trans, T* out,
                    T* top_count, void* ws) {
  if (dpsroi_channels_last(g)) {
    T* xt = reinterpret_cast<T*>(align64(reinterpret_cast<uintptr_t>(ws)));
    dpsroi_to_channels_last(g, data, xt);
    return dpsroi_forward_hwc(g, xt, rois, trans, out, top_count);
  }
  DPSWorkspace<T> w = dpsroi_workspace_split<T>(g, false, 1, ws);
  dpsroi_prepare(g, rois, trans, &w);
  const int64_t plane = static_cast<int64_t>(g.H) * g.W;
  const int P = g.pooled, PP = P * P, R = g.R;
  const T tstd = static_cast<T>(g.trans_std);
  // Output channels of one class (all of them without trans) share the sampling
  // geometry of a bin (ph, pw).  With several channels per class a task owns
  // (class, ph, pw), builds for every RoI the list of (cell index, weight / count)
  // of its separable sampling grid once and applies it to the planes of the
  // class's channels; with one channel per class (R-FCN's class-specific offsets)
  // each bin samples directly.
  const int cec = g.no_trans ? g.output_dim : std::max(1, g.output_dim / g.num_classes);
  if (cec >= 4) {
  const int ngroups = (g.output_dim + cec - 1) / cec;
  const int64_t tasks = static_cast<int64_t>(ngroups) * PP;
  const int maxc = 2 * g.samples;
#pragma omp parallel if (static_cast<int64_t>(R) * g.output_dim * PP > 1024)
  {
  std::vector<int> cx(maxc), cy(maxc), start(R + 1), cnt(R);
  std::vector<T> wx(maxc), wy(maxc);
  std::vector<int> lidx;
  std::vector<T> lwt;
#pragma omp for schedule(dynamic, 1)
  for (int64_t task = 0; task < tasks; ++task) {
    const int grp = static_cast<int>(task / PP);
    const int ph = static_cast<int>(task % PP) / P, pw = static_cast<int>(task % P);
    const int ctop0 = grp * cec, ctop1 = std::min(g.output_dim, ctop0 + cec);
    const DPSBin bin0 = dpsroi_bin(g, ctop0, ph, pw);
    const T* tt = g.no_trans ? nullptr : w.trans_t + bin0.cell * R * 2;
    lidx.clear();
    lwt.clear();
    for (int r = 0; r < R; ++r) {
      const RoIInfo<T>& in = w.info[r];
      T wstart, hstart;
      dpsroi_bin_start(in, ph, pw, tt ? tt + 2 * r : nullptr, tstd, &wstart, &hstart);
      int nx, ny;
      const int ncx = dpsroi_axis_cells(wstart, in.sub_w, g.samples, g.W, cx.data(), wx.data(), &nx);
      const int ncy = dpsroi_axis_cells(hstart, in.sub_h, g.samples, g.H, cy.data(), wy.data(), &ny);
      start[r] = static_cast<int>(lidx.size());
      cnt[r] = nx * ny;
      if (cnt[r] == 0) continue;
      const T inv = T(1) / static_cast<T>(cnt[r]);
      for (int iy = 0; iy < ncy; ++iy) {
        const T a = wy[iy] * inv;
        for (int ix = 0; ix < ncx; ++ix) {
          lidx.push_back(cy[iy] * g.W + cx[ix]);
          lwt.push_back(a * wx[ix]);
        }
      }
    }
    start[R] = static_cast<int>(lidx.size());
    const int* li = lidx.data();
    const T* lw = lwt.data();
    for (int ctop = ctop0; ctop < ctop1; ++ctop) {
      const DPSBin bin = dpsroi_bin(g, ctop, ph, pw);
      T* vo = w.val_t + ((static_cast<int64_t>(ctop) * P + ph) * P + pw) * R;
      T* co = w.cnt_t + ((static_cast<int64_t>(ctop) * P + ph) * P + pw) * R;
      for (int r = 0; r < R; ++r) {
        const T* src = data + (static_cast<int64_t>(w.info[r].batch) * g.C + bin.c) * plane;
        T sum = T(0);
        for (int k = start[r]; k < start[r + 1]; ++k) sum += lw[k] * src[li[k]];
        vo[r] = sum;
        co[r] = static_cast<T>(cnt[r]);
      }
    }
  }
  }
  } else {
#pragma omp parallel if (static_cast<int64_t>(R) * g.output_dim * PP > 1024)
  {
  std::vector<int> xl(g.samples), xh(g.samples), yl(g.samples), yh(g.samples);
  std::vector<T> xd(g.samples), yd(g.samples);
#pragma omp for schedule(dynamic, 1)
  for (int ctop = 0; ctop < g.output_dim; ++ctop) {
    for (int ph = 0; ph < P; ++ph) {
      for (int pw = 0; pw < P; ++pw) {
        const DPSBin bin = dpsroi_bin(g, ctop, ph, pw);
        const T* tt = g.no_trans ? nullptr : w.trans_t + bin.cell * R * 2;
        T* vo = w.val_t + ((static_cast<int64_t>(ctop) * P + ph) * P + pw) * R;
        T* co = w.cnt_t + ((static_cast<int64_t>(ctop) * P + ph) * P + pw) * R;
        for (int r = 0; r < R; ++r) {
          const RoIInfo<T>& in = w.info[r];
          const T* src = data + (static_cast<int64_t>(in.batch) * g.C + bin.c) * plane;
          // separable sampling grid: x / y records once per column / row
          int nx, ny;
          dpsroi_bin_axes(g, in, ph, pw, tt ? tt + 2 * r : nullptr, tstd, xl.data(), xh.data(),
                          xd.data(), &nx, yl.data(), yh.data(), yd.data(), &ny);
          T sum = T(0);
          for (int iy = 0; iy < ny; ++iy) {
            const T* r0 = src + static_cast<int64_t>(yl[iy]) * g.W;
            const T* r1 = src + static_cast<int64_t>(yh[iy]) * g.W;
            const T dy = yd[iy];
            T row = T(0);
            for (int ix = 0; ix < nx; ++ix) {
              const T dx = xd[ix];
              const T a = (T(1) - dx) * r0[xl[ix]] + dx * r0[xh[ix]];
              const T b = (T(1) - dx) * r1[xl[ix]] + dx * r1[xh[ix]];
              row += (T(1) - dy) * a + dy * b;
            }
            sum += row;
          }
          const int cnt = nx * ny;
          vo[r] = cnt == 0 ? T(0) : sum / static_cast<T>(cnt);
          co[r] = static_cast<T>(cnt);
        }
      }
    }
  }
  }
  }
  // (output_dim, P, P, R) -> (R, output_dim, P, P)
  const int64_t per_roi = static_cast<int64_t>(g.output_dim) * PP;
#pragma omp parallel for schedule(static) if (R * per_roi > 65536)
  for (int r = 0; r < R; ++r) {
    for (int64_t k = 0; k < per_roi; ++k) {
      out[r * per_roi + k] = w.val_t[k * R + r];
      top_count[r * per_roi + k] = w.cnt_t[k * R + r];
    }
  }
}

template <typename T>
void dpsroi_backward(const PoolGeom& g, const T* grad_out, const T* data, const T* rois,
                     const T* trans, const T* top_count, T* grad_data, T* grad_trans, void* ws,
                     int threads) {
  if (dpsroi_channels_last(g)) {
    const int64_t map = static_cast<int64_t>(g.N) * g.C * g.H * g.W;
    T* xt = reinterpret_cast<T*>(align64(reinterpret_cast<uintptr_t>(ws)));
    T* gxt = grad_data ? reinterpret_cast<T*>(align64(reinterpret_cast<uintptr_t>(xt + map)))
                       : nullptr;
    dpsroi_to_channels_last(g, data, xt);
    if (gxt) std::fill(gxt, gxt + map, T(0));
    dpsroi_backward_hwc(g, grad_out, xt, rois, trans, gxt, grad_trans, threads);
    if (gxt) dpsroi_from_channels_last(g, gxt, grad_data);
    return;
  }
  DPSWorkspace<T> w = dpsroi_workspace_split<T>(g, true, threads, ws);
  dpsroi_prepare(g, rois, trans, &w);
  const int64_t plane = static_cast<int64_t>(g.H) * g.W;
  const int P = g.pooled, PP = P * P, R = g.R;
  const int64_t per_roi = static_cast<int64_t>(g.output_dim) * PP;
  const bool want_trans = grad_trans && !g.no_trans;
  const int64_t tr = static_cast<int64_t>(R) * g.num_classes * 2 * g.part * g.part;
  // scaled top gradient, transposed to (output_dim, P, P, R)
#pragma omp parallel for schedule(static) if (R * per_roi > 65536)
  for (int r = 0; r < R; ++r) {
    for (int64_t k = 0; k < per_roi; ++k) {
      const T cnt = top_count[r * per_roi + k];
      w.val_t[k * R + r] = cnt > T(0) ? grad_out[r * per_roi + k] / cnt : T(0);
    }
  }
  if (grad_data) std::fill(grad_data, grad_data + static_cast<int64_t>(g.N) * g.C * plane, T(0));
  if (want_trans) std::fill(w.gtrans_t, w.gtrans_t + tr * threads, T(0));
  if (!grad_data && !want_trans) return;
  const T tstd = static_cast<T>(g.trans_std);
  // As in the forward pass, the output channels of one class (all of them without trans)
  // share the sampling grid of a bin: with several channels per class the grid of every
  // (class, bin, RoI) is turned once (bounded memory) into its separable cells
  // (dpsroi_axis_cells: weights and derivative weights per axis), through which every
  // channel then scatters its gradient and gathers its offset gradient.
  const int cec = g.no_trans ? g.output_dim : std::max(1, g.output_dim / g.num_classes);
  const int M = 2 * g.samples;  // cells per axis at most
  const int64_t grids = static_cast<int64_t>((g.output_dim + cec - 1) / cec) * PP * R;
  const bool shared_grids = cec >= 4 && grids * M <= (int64_t(1) << 20);
  std::vector<int> gcx, gcy, gnc;  // cell indices (M per grid and axis), counts (2 per grid)
  std::vector<T> gwx, gwy, gdx, gdy;
  if (shared_grids) {
    for (auto* v : {&gcx, &gcy}) v->resize(static_cast<size_t>(grids * M));
    for (auto* v : {&gwx, &gwy, &gdx, &gdy}) v->resize(static_cast<size_t>(grids * M));
    gnc.resize(static_cast<size_t>(grids * 2));
    const int64_t tasks = grids / R;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && grids > 256)
    for (int64_t task = 0; task < tasks; ++task) {
      const int grp = static_cast<int>(task / PP), k = static_cast<int>(task % PP);
      const int ph = k / P, pw = k % P;
      const DPSBin bin0 = dpsroi_bin(g, grp * cec, ph, pw);
      const T* tt = g.no_trans ? nullptr : w.trans_t + bin0.cell * R * 2;
      for (int r = 0; r < R; ++r) {
        const RoIInfo<T>& in = w.info[r];
        const int64_t i = task * R + r, o = i * M;
        T wstart, hstart;
        dpsroi_bin_start(in, ph, pw, tt ? tt + 2 * r : nullptr, tstd, &wstart, &hstart);
        int nx, ny;
        gnc[2 * i] = dpsroi_axis_cells(wstart, in.sub_w, g.samples, g.W, &gcx[o], &gwx[o], &nx,
                                       &gdx[o]);
        gnc[2 * i + 1] = dpsroi_axis_cells(hstart, in.sub_h, g.samples, g.H, &gcy[o], &gwy[o],
                                           &ny, &gdy[o]);
        if (nx == 0 || ny == 0) gnc[2 * i] = gnc[2 * i + 1] = 0;
      }
    }
  }
#pragma omp parallel num_threads(threads) if (threads > 1 && R * per_roi > 1024)
  {
#ifdef _OPENMP
    const int tid = omp_get_thread_num();
#else
    const int tid = 0;
#endif
    T* gt_own = want_trans ? w.gtrans_t + tr * tid : nullptr;
    std::vector<int> xl(g.samples), xh(g.samples), yl(g.samples), yh(g.samples);
    std::vector<T> xd(g.samples), yd(g.samples);
    // static round-robin: each output channel always lands on the same thread, so the
    // per-thread trans-gradient partial sums (and hence grad_trans) are reproducible
#pragma omp for schedule(static, 1)
    for (int ctop = 0; ctop < g.output_dim; ++ctop) {
      for (int ph = 0; ph < P; ++ph) {
        for (int pw = 0; pw < P; ++pw) {
          const DPSBin bin = dpsroi_bin(g, ctop, ph, pw);
          const T* tt = g.no_trans ? nullptr : w.trans_t + bin.cell * R * 2;
          T* gtt = want_trans ? gt_own + bin.cell * R * 2 : nullptr;
          const T* diff_t = w.val_t + ((static_cast<int64_t>(ctop) * P + ph) * P + pw) * R;
          for (int r = 0; r < R; ++r) {
            const T diff = diff_t[r];
            if (diff == T(0)) continue;
            const RoIInfo<T>& in = w.info[r];
            const int64_t pbase = (static_cast<int64_t>(in.batch) * g.C + bin.c) * plane;
            const T* src = data + pbase;
            T* dst = grad_data ? grad_data + pbase : nullptr;
            T sx = T(0), sy = T(0);
            if (shared_grids) {
              const int64_t i = ((static_cast<int64_t>(ctop / cec) * P + ph) * P + pw) * R + r;
              const int64_t o = i * M;
              const int ncx = gnc[2 * i], ncy = gnc[2 * i + 1];
              const int* cx = &gcx[o];
              const int* cy = &gcy[o];
              const T *wx = &gwx[o], *wy = &gwy[o], *dxw = &gdx[o], *dyw = &gdy[o];
              for (int iy = 0; iy < ncy; ++iy) {
                const int64_t row = static_cast<int64_t>(cy[iy]) * g.W;
                if (dst) {
                  const T a = wy[iy] * diff;
                  for (int ix = 0; ix < ncx; ++ix) dst[row + cx[ix]] += a * wx[ix];
                }
                if (gtt) {
                  T rw = T(0), rd = T(0);
                  for (int ix = 0; ix < ncx; ++ix) {
                    const T v = src[row + cx[ix]];
                    rw += wx[ix] * v;
                    rd += dxw[ix] * v;
                  }
                  sx += wy[iy] * rd;
                  sy += dyw[iy] * rw;
                }
              }
            } else {
              int nx, ny;
              dpsroi_bin_axes(g, in, ph, pw, tt ? tt + 2 * r : nullptr, tstd, xl.data(),
                              xh.data(), xd.data(), &nx, yl.data(), yh.data(), yd.data(), &ny);
              for (int iy = 0; iy < ny; ++iy) {
                const int64_t o0 = static_cast<int64_t>(yl[iy]) * g.W;
                const int64_t o1 = static_cast<int64_t>(yh[iy]) * g.W;
                const T dy = yd[iy];
                for (int ix = 0; ix < nx; ++ix) {
                  const T dx = xd[ix];
                  if (dst) {
                    const T a = (T(1) - dy) * diff, b = dy * diff;
                    dst[o0 + xl[ix]] += (T(1) - dx) * a;
                    dst[o0 + xh[ix]] += dx * a;
                    dst[o1 + xl[ix]] += (T(1) - dx) * b;
                    dst[o1 + xh[ix]] += dx * b;
                  }
                  if (gtt) {
                    const T v00 = src[o0 + xl[ix]], v01 = src[o0 + xh[ix]];
                    const T v10 = src[o1 + xl[ix]], v11 = src[o1 + xh[ix]];
                    sx += (T(1) - dy) * (v01 - v00) + dy * (v11 - v10);
                    sy += (T(1) - dx) * (v10 - v00) + dx * (v11 - v01);
                  }
                }
              }
            }
            if (gtt) {
              gtt[2 * r] += sx * tstd * diff * in.width;
              gtt[2 * r + 1] += sy * tstd * diff * in.height;
            }
          }
        }
      }
    }
  }
  if (!want_trans) return;
  // reduce the per-thread buffers and transpose back to (R, num_classes, 2, part, part)
  const int64_t pp = static_cast<int64_t>(g.part) * g.part;
  const int64_t cells = g.num_classes * pp;
#pragma omp parallel for schedule(static) if (R * cells > 65536)
  for (int r = 0; r < R; ++r) {
    T* dst = grad_trans + static_cast<int64_t>(r) * cells * 2;
    for (int64_t cell = 0; cell < cells; ++cell) {
      const int64_t cls = cell / pp, pos = cell % pp;
      T sx = T(0), sy = T(0);
      for (int t = 0; t < threads; ++t) {
        const T* src = w.gtrans_t + tr * t + (cell * R + r) * 2;
        sx += src[0];
        sy += src[1];
      }
      dst[(cls * 2) * pp + pos] = sx;
      dst[(cls * 2 + 1) * pp + pos] = sy;
    }
  }
}

/* ------------------------------------------------------------------------ */
/* 1x1 convolution + no_trans deformable PS RoI pooling, fused (inference)   */
/* ------------------------------------------------------------------------ */

/*
 * out = DeformablePSROIPooling(no_trans)(Convolution1x1(data; weight, bias)) without the
 * convolution's output map.  For fixed RoIs both are linear in the data, and the
 * bilinear weights of a bin's samples, divided by their count, sum to one: the bin
 * average of the convolution is the convolution of the bin average of the input.  So
 * per bin (ph, pw): F (R x C) = the RoIs' pooled input vectors (sampling records
 * applied to the channel-contiguous transposed input), then out_bin = F W_bin^T + b_bin
 * with W_bin the output_dim rows (ctop * group + gh) * group + gw of the weight.  That
 * is R * P^2 * output_dim * C multiply-adds instead of H * W * P^2 * output_dim * C
 * for the convolution (Deformable R-FCN's rfcn_cls_offset_t at 600x1000, 300 RoIs:
 * 8 times fewer).  A bin without an in-map sample is 0, as in the pooling.
 * g.C is the input channel count; g.no_trans must be true.
 */
template <typename T>
int64_t conv1x1_dpsroi_workspace_bytes(const PoolGeom& g) {
  const int64_t hw = static_cast<int64_t>(g.H) * g.W;
  const int64_t threads = std::max(1, num_threads());
  const int64_t PP = static_cast<int64_t>(g.pooled) * g.pooled;
  return 64 * 4 + static_cast<int64_t>(sizeof(RoIInfo<T>)) * g.R +
         static_cast<int64_t>(sizeof(T)) * g.N * hw * g.C +
         static_cast<int64_t>(sizeof(T)) * PP * g.output_dim * g.R +
         static_cast<int64_t>(sizeof(int)) * PP * g.R +
         threads * (128 + static_cast<int64_t>(sizeof(T)) * g.R * g.C);
}

/*! \brief see conv1x1_dpsroi_workspace_bytes; the OpenMP team size must be the same */
template <typename T>
void conv1x1_dpsroi_forward(const PoolGeom& g, const T* data, const T* rois, const T* weight,
                            const T* bias, T* out, void* ws) {
  const int64_t hw = static_cast<int64_t>(g.H) * g.W;
  const int C = g.C, R = g.R, P = g.pooled, PP = P * P, D = g.output_dim, G = g.group;
  const int threads = std::max(1, num_threads());
  uintptr_t p = align64(reinterpret_cast<uintptr_t>(ws));
  DPSWorkspace<T> w = {};
  w.info = reinterpret_cast<RoIInfo<T>*>(p);
  p = align64(p + sizeof(RoIInfo<T>) * R);
  T* xt = reinterpret_cast<T*>(p);  // (N, H*W, C)
  p = align64(p + sizeof(T) * g.N * hw * C);
  T* res = reinterpret_cast<T*>(p);  // (PP, D, R): W_bin F^T of every bin
  p = align64(p + sizeof(T) * static_cast<int64_t>(PP) * D * R);
  int* cnt = reinterpret_cast<int*>(p);  // (PP, R): samples in the map
  p = align64(p + sizeof(int) * static_cast<int64_t>(PP) * R);
  const uintptr_t feats = p;  // per thread: (R, C), the pooled input of one bin
  dpsroi_prepare(g, rois, static_cast<const T*>(nullptr), &w);
  dpsroi_to_channels_last(g, data, xt);  // (N, C, HW) -> (N, HW, C)
  const int maxc = 2 * g.samples;
  // One task per bin (dynamic): the pooled inputs of the bin's RoIs (own buffer), then
  // one single-threaded GEMM into the bin's slice of res (nested OpenMP regions are
  // inactive).  A parallel region per bin around a parallel GEMM scales less well.
#pragma omp parallel num_threads(threads) if (threads > 1 && static_cast<int64_t>(R) * C * D > 65536)
  {
#ifdef _OPENMP
    const int tid = omp_get_thread_num();
#else
    const int tid = 0;
#endif
    T* feat = reinterpret_cast<T*>(feats + tid * align64(64 + sizeof(T) * static_cast<int64_t>(R) * C));
    std::vector<int> cx(maxc), cy(maxc);
    std::vector<T> wx(maxc), wy(maxc), cw(maxc * maxc);
    std::vector<const T*> rows(maxc * maxc);
#pragma omp for schedule(dynamic, 1)
    for (int bin = 0; bin < PP; ++bin) {
      const int ph = bin / P, pw = bin % P;
      int* cnt_b = cnt + static_cast<int64_t>(bin) * R;
      for (int r = 0; r < R; ++r) {
        const RoIInfo<T>& in = w.info[r];
        const T wstart = static_cast<T>(pw) * in.bin_w + in.start_w;
        const T hstart = static_cast<T>(ph) * in.bin_h + in.start_h;
        int nx, ny;
        const int ncx = dpsroi_axis_cells(wstart, in.sub_w, g.samples, g.W, cx.data(), wx.data(), &nx);
        const int ncy = dpsroi_axis_cells(hstart, in.sub_h, g.samples, g.H, cy.data(), wy.data(), &ny);
        T* f = feat + static_cast<int64_t>(r) * C;
        cnt_b[r] = nx * ny;
        if (cnt_b[r] == 0) {
          std::fill(f, f + C, T(0));
          continue;
        }
        // the bin's cells: input vectors (rows of xt) and weights / count
        const T inv = T(1) / static_cast<T>(cnt_b[r]);
        const T* base = xt + static_cast<int64_t>(in.batch) * hw * C;
        int n = 0;
        for (int iy = 0; iy < ncy; ++iy) {
          for (int ix = 0; ix < ncx; ++ix, ++n) {
            cw[n] = wy[iy] * inv * wx[ix];
            rows[n] = base + (static_cast<int64_t>(cy[iy]) * g.W + cx[ix]) * C;
          }
        }
        weighted_row_sum(C, n, rows.data(), cw.data(), f);
      }
      const int64_t row0 = static_cast<int64_t>(ps_group_index(ph, P, G)) * G + ps_group_index(pw, P, G);
      // res[bin] (D x R) = W_bin (D x C, rows G*G*C apart) F^T
      gemm(false, true, D, R, C, T(1), weight + row0 * C, G * G * C, feat, C, T(0),
           res + static_cast<int64_t>(bin) * D * R, R);
    }
    // (PP, D, R) -> out (R, D, PP) with the bias: per output channel, blocks of 64 RoIs
    // (the 64 output rows of a block stay in cache while every bin is written)
    const int rblocks = (R + 63) / 64;
#pragma omp for schedule(static)
    for (int64_t job = 0; job < static_cast<int64_t>(D) * rblocks; ++job) {
      const int ctop = static_cast<int>(job / rblocks), r0 = static_cast<int>(job % rblocks) * 64;
      const int r1 = std::min(R, r0 + 64);
      for (int bin = 0; bin < PP; ++bin) {
        const int ph = bin / P, pw = bin % P;
        const int64_t row0 = static_cast<int64_t>(ps_group_index(ph, P, G)) * G + ps_group_index(pw, P, G);
        const T b = bias[static_cast<int64_t>(ctop) * G * G + row0];
        const T* src = res + (static_cast<int64_t>(bin) * D + ctop) * R;
        const int* cb = cnt + static_cast<int64_t>(bin) * R;
        for (int r = r0; r < r1; ++r)
          out[(static_cast<int64_t>(r) * D + ctop) * PP + bin] = cb[r] == 0 ? T(0) : src[r] + b;
      }
    }
  }
}

/* ------------------------------------------------------------------------ */
/* Plain position-sensitive RoI pooling                                      */
/* ------------------------------------------------------------------------ */

template <typename T>
void psroi_forward(const PoolGeom& g, const T* data, const T* rois, T* out) {
  const int64_t plane = static_cast<int64_t>(g.H) * g.W;
  const int P = g.pooled;
  const int64_t jobs = static_cast<int64_t>(g.R) * g.output_dim;
#pragma omp parallel for schedule(static) if (jobs * P * P > 256)
  for (int64_t job = 0; job < jobs; ++job) {
    const int r = static_cast<int>(job / g.output_dim);
    const int ctop = static_cast<int>(job % g.output_dim);
    const T* roi = rois + static_cast<int64_t>(r) * 5;
    const int b = static_cast<int>(roi[0]);
    for (int ph = 0; ph < P; ++ph) {
      for (int pw = 0; pw < P; ++pw) {
        const PSRoIBinCells bin = psroi_cells(roi, static_cast<T>(g.spatial_scale), ctop, ph, pw,
                                              P, g.group, g.H, g.W);
        out[(job * P + ph) * P + pw] =
            psroi_mean(data + (static_cast<int64_t>(b) * g.C + bin.c) * plane, g.W, bin);
      }
    }
  }
}

template <typename T>
void psroi_backward(const PoolGeom& g, const T* grad_out, const T* rois, T* grad_data) {
  const int64_t plane = static_cast<int64_t>(g.H) * g.W;
  const int P = g.pooled;
  std::fill(grad_data, grad_data + static_cast<int64_t>(g.N) * g.C * plane, T(0));
#pragma omp parallel for schedule(dynamic, 1) if (static_cast<int64_t>(g.R) * P * P > 64)
  for (int ctop = 0; ctop < g.output_dim; ++ctop) {
    for (int r = 0; r < g.R; ++r) {
      const T* roi = rois + static_cast<int64_t>(r) * 5;
      const int b = static_cast<int>(roi[0]);
      for (int ph = 0; ph < P; ++ph) {
        for (int pw = 0; pw < P; ++pw) {
          const PSRoIBinCells bin = psroi_cells(roi, static_cast<T>(g.spatial_scale), ctop, ph,
                                                pw, P, g.group, g.H, g.W);
          const int area = psroi_area(bin);
          if (area == 0) continue;
          T* dst = grad_data + (static_cast<int64_t>(b) * g.C + bin.c) * plane;
          const T v = grad_out[((static_cast<int64_t>(r) * g.output_dim + ctop) * P + ph) * P + pw] /
                      static_cast<T>(area);
          for (int h = bin.hs; h < bin.he; ++h)
            for (int w = bin.ws; w < bin.we; ++w) dst[h * g.W + w] += v;
        }
      }
    }
  }
}

}  // namespace cpu
}  // namespace dcn

#endif  // DCN_CPU_KERNELS_H_
