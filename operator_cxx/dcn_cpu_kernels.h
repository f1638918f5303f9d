/*
 * dcn_cpu_kernels.h - CPU implementations (OpenMP + BLAS) of the deformable
 * convolution and position-sensitive RoI pooling operators.
 *
 * Deformable convolution works image by image:
 *   1. a sampling plan (4 corner indices + 4 weights, mask folded in) is built
 *      once per (deformable group, kernel tap, output pixel); it is shared by
 *      all channels of the deformable group;
 *   2. the column matrix (C*kh*kw, Ho*Wo) is filled from the plan (OpenMP over
 *      rows);
 *   3. one GEMM per convolution group through the BLAS MXNet ships.
 * The backward pass reuses the same column buffer for the column gradient,
 * scatters it into the data gradient (OpenMP over channels: race free),
 * reduces offset / mask gradients per (deformable group, tap) (race free), then
 * re-fills the columns for the weight gradient GEMM.
 */
#ifndef DCN_CPU_KERNELS_H_
#define DCN_CPU_KERNELS_H_

#include <stdint.h>
#include <string.h>
#include <vector>
#include <algorithm>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "dcn_sampling.h"

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
#pragma omp parallel for schedule(static) if (tasks * L > 4096)
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

/*! \brief workspace bytes of deformable convolution (column buffer + plan) */
inline int64_t conv_workspace_bytes(const ConvGeom& g, int elem_size) {
  const int64_t col = g.col_rows() * g.L() * elem_size;
  const int64_t plan = g.plan_entries() * 4 * (static_cast<int64_t>(sizeof(int)) + elem_size);
  return col + plan + 256;
}

/*! \brief carve the workspace into (col, plan idx, plan wt), 64-byte aligned */
template <typename T>
void conv_workspace_split(const ConvGeom& g, void* ws, T** col, int** pidx, T** pwt) {
  uintptr_t p = (reinterpret_cast<uintptr_t>(ws) + 63) & ~static_cast<uintptr_t>(63);
  *col = reinterpret_cast<T*>(p);
  p += g.col_rows() * g.L() * sizeof(T);
  p = (p + 63) & ~static_cast<uintptr_t>(63);
  *pwt = reinterpret_cast<T*>(p);
  p += g.plan_entries() * 4 * sizeof(T);
  p = (p + 63) & ~static_cast<uintptr_t>(63);
  *pidx = reinterpret_cast<int*>(p);
}

template <typename T>
void conv_forward(const ConvGeom& g, const T* data, const T* offset, const T* mask,
                  const T* weight, const T* bias, T* out, void* ws) {
  T* col; int* pidx; T* pwt;
  conv_workspace_split(g, ws, &col, &pidx, &pwt);
  const int64_t L = g.L();
  const int M = g.F / g.groups;
  const int K = static_cast<int>(g.col_rows() / g.groups);
  for (int n = 0; n < g.N; ++n) {
    build_plan(g, n, offset, mask, pidx, pwt);
    im2col(g, n, data, pidx, pwt, col);
    for (int gr = 0; gr < g.groups; ++gr) {
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
    if (grad_weight) {
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

/*!
 * \brief visit the samples of output (r, ctop, ph, pw) of deformable PS RoI
 * pooling: f(channel plane index c, x, y) for every in-map sample; returns the
 * sample count.  Also reports geometry needed by the trans gradient.
 */
template <typename T, typename F>
inline int dpsroi_visit(const PoolGeom& g, const T* roi, const T* trans, int r, int ctop, int ph,
                        int pw, const F& f, T* roi_w_out = nullptr, T* roi_h_out = nullptr,
                        int64_t* trans_x_index = nullptr) {
  const DPSRoI<T> geo = dpsroi_geometry(roi, static_cast<T>(g.spatial_scale));
  const T bin_h = geo.height / static_cast<T>(g.pooled);
  const T bin_w = geo.width / static_cast<T>(g.pooled);
  const T sub_h = bin_h / static_cast<T>(g.samples);
  const T sub_w = bin_w / static_cast<T>(g.samples);
  const int part_h = dpsroi_part_index(ph, g.pooled, g.part);
  const int part_w = dpsroi_part_index(pw, g.pooled, g.part);
  const int channels_each_class = g.no_trans ? g.output_dim : g.output_dim / g.num_classes;
  const int class_id = ctop / channels_each_class;
  T tx = T(0), ty = T(0);
  const int64_t tix =
      ((static_cast<int64_t>(r) * g.num_classes + class_id) * 2 * g.part + part_h) * g.part +
      part_w;
  if (!g.no_trans) {
    tx = trans[tix] * static_cast<T>(g.trans_std);
    ty = trans[tix + static_cast<int64_t>(g.part) * g.part] * static_cast<T>(g.trans_std);
  }
  const T wstart = static_cast<T>(pw) * bin_w + geo.start_w + tx * geo.width;
  const T hstart = static_cast<T>(ph) * bin_h + geo.start_h + ty * geo.height;
  const int gw = ps_group_index(pw, g.pooled, g.group);
  const int gh = ps_group_index(ph, g.pooled, g.group);
  const int c = (ctop * g.group + gh) * g.group + gw;
  int count = 0;
  for (int ih = 0; ih < g.samples; ++ih) {
    for (int iw = 0; iw < g.samples; ++iw) {
      T w = wstart + static_cast<T>(iw) * sub_w;
      T h = hstart + static_cast<T>(ih) * sub_h;
      if (!dpsroi_sample(&w, &h, g.W, g.H)) continue;
      f(c, w, h);
      ++count;
    }
  }
  if (roi_w_out) *roi_w_out = geo.width;
  if (roi_h_out) *roi_h_out = geo.height;
  if (trans_x_index) *trans_x_index = tix;
  return count;
}

template <typename T>
void dpsroi_forward(const PoolGeom& g, const T* data, const T* rois, const T* trans, T* out,
                    T* top_count) {
  const int64_t plane = static_cast<int64_t>(g.H) * g.W;
  const int P = g.pooled;
  const int64_t jobs = static_cast<int64_t>(g.R) * g.output_dim;
#pragma omp parallel for schedule(static) if (jobs * P * P > 256)
  for (int64_t job = 0; job < jobs; ++job) {
    const int r = static_cast<int>(job / g.output_dim);
    const int ctop = static_cast<int>(job % g.output_dim);
    const T* roi = rois + static_cast<int64_t>(r) * 5;
    const int b = static_cast<int>(roi[0]);
    const T* base = data + static_cast<int64_t>(b) * g.C * plane;
    for (int ph = 0; ph < P; ++ph) {
      for (int pw = 0; pw < P; ++pw) {
        T sum = T(0);
        const int cnt = dpsroi_visit(g, roi, trans, r, ctop, ph, pw, [&](int c, T x, T y) {
          int idx[4]; T wt[4]; T dx, dy;
          dpsroi_record(x, y, g.W, idx, wt, &dx, &dy);
          const T* src = base + c * plane;
          sum += wt[0] * src[idx[0]] + wt[1] * src[idx[1]] + wt[2] * src[idx[2]] +
                 wt[3] * src[idx[3]];
        });
        const int64_t o = (job * P + ph) * P + pw;
        out[o] = cnt == 0 ? T(0) : sum / static_cast<T>(cnt);
        top_count[o] = static_cast<T>(cnt);
      }
    }
  }
}

template <typename T>
void dpsroi_backward(const PoolGeom& g, const T* grad_out, const T* data, const T* rois,
                     const T* trans, const T* top_count, T* grad_data, T* grad_trans) {
  const int64_t plane = static_cast<int64_t>(g.H) * g.W;
  const int P = g.pooled;
  if (grad_data) {
    std::fill(grad_data, grad_data + static_cast<int64_t>(g.N) * g.C * plane, T(0));
    // output channel ctop only touches input channels (ctop*group + gh)*group + gw:
    // parallel over ctop is race free.
#pragma omp parallel for schedule(dynamic, 1) if (static_cast<int64_t>(g.R) * P * P > 64)
    for (int ctop = 0; ctop < g.output_dim; ++ctop) {
      for (int r = 0; r < g.R; ++r) {
        const T* roi = rois + static_cast<int64_t>(r) * 5;
        const int b = static_cast<int>(roi[0]);
        T* base = grad_data + static_cast<int64_t>(b) * g.C * plane;
        for (int ph = 0; ph < P; ++ph) {
          for (int pw = 0; pw < P; ++pw) {
            const int64_t o = ((static_cast<int64_t>(r) * g.output_dim + ctop) * P + ph) * P + pw;
            const T cnt = top_count[o];
            if (!(cnt > T(0))) continue;
            const T diff = grad_out[o] / cnt;
            dpsroi_visit(g, roi, trans, r, ctop, ph, pw, [&](int c, T x, T y) {
              int idx[4]; T wt[4]; T dx, dy;
              dpsroi_record(x, y, g.W, idx, wt, &dx, &dy);
              T* dst = base + c * plane;
              dst[idx[0]] += wt[0] * diff;
              dst[idx[1]] += wt[1] * diff;
              dst[idx[2]] += wt[2] * diff;
              dst[idx[3]] += wt[3] * diff;
            });
          }
        }
      }
    }
  }
  if (grad_trans && !g.no_trans) {
    const int64_t per_roi = static_cast<int64_t>(g.num_classes) * 2 * g.part * g.part;
    // each RoI owns its trans entries: parallel over RoIs is race free.
#pragma omp parallel for schedule(dynamic, 1) if (static_cast<int64_t>(g.R) * g.output_dim * P * P > 256)
    for (int r = 0; r < g.R; ++r) {
      T* gt = grad_trans + r * per_roi;
      std::fill(gt, gt + per_roi, T(0));
      const T* roi = rois + static_cast<int64_t>(r) * 5;
      const int b = static_cast<int>(roi[0]);
      const T* base = data + static_cast<int64_t>(b) * g.C * plane;
      for (int ctop = 0; ctop < g.output_dim; ++ctop) {
        for (int ph = 0; ph < P; ++ph) {
          for (int pw = 0; pw < P; ++pw) {
            const int64_t o = ((static_cast<int64_t>(r) * g.output_dim + ctop) * P + ph) * P + pw;
            const T cnt = top_count[o];
            if (!(cnt > T(0))) continue;
            const T diff = grad_out[o] / cnt;
            T sx = T(0), sy = T(0), rw, rh;
            int64_t tix;
            dpsroi_visit(g, roi, trans, r, ctop, ph, pw, [&](int c, T x, T y) {
              int idx[4]; T wt[4]; T dx, dy;
              dpsroi_record(x, y, g.W, idx, wt, &dx, &dy);
              const T* src = base + c * plane;
              const T v[4] = {src[idx[0]], src[idx[1]], src[idx[2]], src[idx[3]]};
              T gx, gy;
              dpsroi_sample_grad(v, dx, dy, &gx, &gy);
              sx += gx;
              sy += gy;
            }, &rw, &rh, &tix);
            const T scale = static_cast<T>(g.trans_std) * diff;
            gt[tix - r * per_roi] += sx * scale * rw;
            gt[tix - r * per_roi + static_cast<int64_t>(g.part) * g.part] += sy * scale * rh;
          }
        }
      }
    }
  } else if (grad_trans) {
    // no trans input: nothing to do
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
        int hs, he, ws, we;
        psroi_bin(roi, static_cast<T>(g.spatial_scale), ph, pw, P, g.H, g.W, &hs, &he, &ws, &we);
        const int gw = ps_group_index(pw, P, g.group), gh = ps_group_index(ph, P, g.group);
        const int c = (ctop * g.group + gh) * g.group + gw;
        const T* src = data + (static_cast<int64_t>(b) * g.C + c) * plane;
        T sum = T(0);
        for (int h = hs; h < he; ++h)
          for (int w = ws; w < we; ++w) sum += src[h * g.W + w];
        const int area = (he - hs) * (we - ws);
        out[(job * P + ph) * P + pw] = (he <= hs || we <= ws) ? T(0) : sum / static_cast<T>(area);
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
          int hs, he, ws, we;
          psroi_bin(roi, static_cast<T>(g.spatial_scale), ph, pw, P, g.H, g.W, &hs, &he, &ws, &we);
          if (he <= hs || we <= ws) continue;
          const int gw = ps_group_index(pw, P, g.group), gh = ps_group_index(ph, P, g.group);
          const int c = (ctop * g.group + gh) * g.group + gw;
          T* dst = grad_data + (static_cast<int64_t>(b) * g.C + c) * plane;
          const T v = grad_out[((static_cast<int64_t>(r) * g.output_dim + ctop) * P + ph) * P + pw] /
                      static_cast<T>((he - hs) * (we - ws));
          for (int h = hs; h < he; ++h)
            for (int w = ws; w < we; ++w) dst[h * g.W + w] += v;
        }
      }
    }
  }
}

}  // namespace cpu
}  // namespace dcn

#endif  // DCN_CPU_KERNELS_H_
