/*
 * dcn_cuda_impl.h - the GPU implementation of the deformable operators,
 * written once for two back ends:
 *
 *   - CUDA (dcn_cuda_backend.cuh, compiled by nvcc): every element functor
 *     below runs as one thread of a grid-stride kernel, GEMMs go to cuBLAS;
 *   - a host emulation (emu/dcn_cuda_emu.cc, compiled by a C++ compiler):
 *     the functors run in a plain loop and GEMMs follow cuBLAS's column-major
 *     contract, so that the indexing, chunking and GEMM arguments of the GPU
 *     code can be checked against the CPU operators on a machine without GPU.
 *
 * All sampling math comes from ../dcn_sampling.h.
 *
 * A back end B provides
 *   template <class F> void launch(const F& f, int64_t n);   // f(i), i in [0, n)
 *   void zero(void* p, int64_t bytes);
 *   void gemm(bool ta, bool tb, int m, int n, int k, T alpha, const T* A, int lda,
 *             int64_t strideA, const T* B, int ldb, int64_t strideB, T beta, T* C,
 *             int ldc, int64_t strideC, int batch);          // cuBLAS semantics
 *
 * Deformable convolution, per chunk of `step` images (im2col_step):
 *   forward:  im2col (one thread per (image, channel, output pixel), looping
 *             over the kernel taps) into col (step, C*kh*kw, Ho*Wo); one
 *             strided-batched GEMM per group writes the output directly.
 *   backward: col = W^T * grad_out (strided-batched GEMM per group); one fused
 *             kernel (one thread per (image, deformable group, tap, pixel),
 *             looping over the group's channels) writes the offset / mask
 *             gradients and scatters the data gradient with atomics; im2col
 *             again and a GEMM per image and group accumulates the weight
 *             gradient; the bias gradient is a GEMM against a vector of ones.
 */
#ifndef DCN_CUDA_IMPL_H_
#define DCN_CUDA_IMPL_H_

#include <stdint.h>
#include <string.h>
#include <string>
#include <stdexcept>
#include <sstream>

#include "../dcn_sampling.h"
#include "dcn_cuda_api.h"

#ifdef __CUDACC__
#define DCN_DEV __device__ __forceinline__
#else
#define DCN_DEV inline
#endif

namespace dcn {
namespace gpu {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& m) : std::runtime_error(m) {}
};

template <typename T>
DCN_DEV void atomic_add(T* p, T v) {
#ifdef __CUDA_ARCH__
  atomicAdd(p, v);
#else
  *p += v;
#endif
}

/* ------------------------------------------------------------------------ */
/* deformable convolution: element functors                                  */
/* ------------------------------------------------------------------------ */

/*! \brief col[b, c*taps + t, p] = sample of channel c at tap t of pixel p */
template <typename T>
struct Im2col {
  dcn_conv_geom g;
  int n0;
  const T* data;
  const T* offset;
  const T* mask;
  T* col;
  DCN_DEV void operator()(int64_t i) const {
    const int64_t L = static_cast<int64_t>(g.Ho) * g.Wo;
    const int taps = g.kh * g.kw;
    const int p = static_cast<int>(i % L);
    const int64_t bc = i / L;
    const int c = static_cast<int>(bc % g.C);
    const int b = static_cast<int>(bc / g.C);
    const int64_t n = n0 + b;
    const int dg = c / (g.C / g.dgroups);
    const int ho = p / g.Wo, wo = p % g.Wo;
    const T* src = data + (n * g.C + c) * static_cast<int64_t>(g.H) * g.W;
    const T* off = offset + (n * g.dgroups + dg) * 2 * taps * L + p;
    const T* msk = g.modulated ? mask + (n * g.dgroups + dg) * taps * L + p : nullptr;
    T* dst = col + (static_cast<int64_t>(b) * g.C + c) * taps * L + p;
    for (int t = 0; t < taps; ++t) {
      T h, w;
      conv_tap_position(ho, wo, t / g.kw, t % g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw,
                        off[2 * t * L], off[(2 * t + 1) * L], &h, &w);
      int idx[4];
      T wt[4];
      T v = T(0);
      if (g.modulated) {
        if (v2_record(h, w, g.H, g.W, idx, wt)) {
          const T m = msk[t * L];
          for (int k = 0; k < 4; ++k) wt[k] *= m;
          v = wt[0] * src[idx[0]] + wt[1] * src[idx[1]] + wt[2] * src[idx[2]] +
              wt[3] * src[idx[3]];
        }
      } else if (v1_record(h, w, g.H, g.W, idx, wt)) {
        v = wt[0] * src[idx[0]] + wt[1] * src[idx[1]] + wt[2] * src[idx[2]] + wt[3] * src[idx[3]];
      }
      dst[t * L] = v;
    }
  }
};

/*!
 * \brief from the column gradient: offset (and mask) gradient of one
 * (image, deformable group, tap, pixel), and the data gradient scattered with
 * atomics.  Every offset / mask gradient element has exactly one writer.
 */
template <typename T>
struct Col2ImCoord {
  dcn_conv_geom g;
  int n0;
  const T* col;
  const T* data;
  const T* offset;
  const T* mask;
  T* grad_data;
  T* grad_offset;
  T* grad_mask;
  DCN_DEV void operator()(int64_t i) const {
    const int64_t L = static_cast<int64_t>(g.Ho) * g.Wo;
    const int taps = g.kh * g.kw;
    const int p = static_cast<int>(i % L);
    int64_t r = i / L;
    const int t = static_cast<int>(r % taps);
    r /= taps;
    const int dg = static_cast<int>(r % g.dgroups);
    const int b = static_cast<int>(r / g.dgroups);
    const int64_t n = n0 + b;
    const int ho = p / g.Wo, wo = p % g.Wo;
    const int64_t oi = ((n * g.dgroups + dg) * 2 * taps + 2 * t) * L + p;
    const int64_t mi = ((n * g.dgroups + dg) * taps + t) * L + p;
    T h, w;
    conv_tap_position(ho, wo, t / g.kw, t % g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, offset[oi],
                      offset[oi + L], &h, &w);
    int idx[4], gidx[4];
    T wt[4], dh[4], dw[4];
    T m = T(1);
    bool inside;
    if (g.modulated) {
      m = mask[mi];
      inside = v2_record(h, w, g.H, g.W, idx, wt);
      v2_grad_record(h, w, g.H, g.W, gidx, dh, dw);
    } else {
      inside = v1_record(h, w, g.H, g.W, idx, wt);
      v1_grad_record(h, w, g.H, g.W, gidx, dh, dw);
    }
    T acc_h = T(0), acc_w = T(0), acc_m = T(0);
    if (inside) {
      const int cpg = g.C / g.dgroups;
      const int64_t plane = static_cast<int64_t>(g.H) * g.W;
      for (int cc = 0; cc < cpg; ++cc) {
        const int c = dg * cpg + cc;
        const T s = col[((static_cast<int64_t>(b) * g.C + c) * taps + t) * L + p];
        const T* src = data + (n * g.C + c) * plane;
        const T v0 = src[idx[0]], v1 = src[idx[1]], v2 = src[idx[2]], v3 = src[idx[3]];
        acc_h += s * (dh[0] * v0 + dh[1] * v1 + dh[2] * v2 + dh[3] * v3);
        acc_w += s * (dw[0] * v0 + dw[1] * v1 + dw[2] * v2 + dw[3] * v3);
        if (g.modulated) acc_m += s * (wt[0] * v0 + wt[1] * v1 + wt[2] * v2 + wt[3] * v3);
        if (grad_data) {
          T* dst = grad_data + (n * g.C + c) * plane;
          const T sm = s * m;
          for (int k = 0; k < 4; ++k)
            if (wt[k] != T(0)) atomic_add(dst + idx[k], wt[k] * sm);
        }
      }
    }
    if (grad_offset) {
      grad_offset[oi] = acc_h * m;
      grad_offset[oi + L] = acc_w * m;
    }
    if (g.modulated && grad_mask) grad_mask[mi] = acc_m;
  }
};

template <typename T>
struct AddBias {
  T* out;
  const T* bias;
  int F;
  int64_t L;
  DCN_DEV void operator()(int64_t i) const { out[i] += bias[(i / L) % F]; }
};

template <typename T>
struct Fill {
  T* p;
  T v;
  DCN_DEV void operator()(int64_t i) const { p[i] = v; }
};

/* ------------------------------------------------------------------------ */
/* deformable convolution: drivers                                           */
/* ------------------------------------------------------------------------ */

inline void check_conv_geom(const dcn_conv_geom* g) {
  if (!g) throw Error("null geometry");
  std::ostringstream os;
  if (g->N < 1 || g->C < 1 || g->H < 1 || g->W < 1 || g->F < 1 || g->kh < 1 || g->kw < 1 ||
      g->sh < 1 || g->sw < 1 || g->dh < 1 || g->dw < 1 || g->ph < 0 || g->pw < 0 ||
      g->groups < 1 || g->dgroups < 1) {
    throw Error("invalid deformable convolution geometry (non-positive size)");
  }
  if (g->C % g->groups || g->F % g->groups || g->C % g->dgroups)
    throw Error("channels / filters not divisible by the (deformable) groups");
  if (g->Ho != conv_out_size(g->H, g->kh, g->ph, g->sh, g->dh) ||
      g->Wo != conv_out_size(g->W, g->kw, g->pw, g->sw, g->dw) || g->Ho < 1 || g->Wo < 1) {
    os << "output size " << g->Ho << "x" << g->Wo << " does not match the convolution geometry";
    throw Error(os.str());
  }
  const int64_t L = static_cast<int64_t>(g->Ho) * g->Wo;
  const int64_t K = static_cast<int64_t>(g->C) * g->kh * g->kw;
  if (L >= INT32_MAX || K >= INT32_MAX || static_cast<int64_t>(g->H) * g->W >= INT32_MAX)
    throw Error("deformable convolution too large for 32-bit GEMM sizes");
}

inline int conv_step(const dcn_conv_geom& g) {
  return g.im2col_step < 1 ? 1 : (g.im2col_step > g.N ? g.N : g.im2col_step);
}

inline int64_t align64(int64_t x) { return (x + 63) & ~static_cast<int64_t>(63); }

inline int64_t conv_ws_bytes(const dcn_conv_geom& g, int64_t elem) {
  const int64_t L = static_cast<int64_t>(g.Ho) * g.Wo;
  const int64_t col = static_cast<int64_t>(conv_step(g)) * g.C * g.kh * g.kw * L * elem;
  return align64(col) + align64(L * elem) + 64;
}

template <typename T>
void conv_ws_split(const dcn_conv_geom& g, void* ws, int64_t ws_bytes, T** col, T** ones) {
  if (!ws || ws_bytes < conv_ws_bytes(g, sizeof(T))) {
    std::ostringstream os;
    os << "workspace of " << ws_bytes << " bytes is too small (need "
       << conv_ws_bytes(g, sizeof(T)) << ")";
    throw Error(os.str());
  }
  const int64_t L = static_cast<int64_t>(g.Ho) * g.Wo;
  uintptr_t p = (reinterpret_cast<uintptr_t>(ws) + 63) & ~static_cast<uintptr_t>(63);
  *col = reinterpret_cast<T*>(p);
  p += align64(static_cast<int64_t>(conv_step(g)) * g.C * g.kh * g.kw * L * sizeof(T));
  *ones = reinterpret_cast<T*>(p);
}

template <typename T, class B>
void conv_forward(B& be, const dcn_conv_geom& g, const T* data, const T* offset, const T* mask,
                  const T* weight, const T* bias, T* out, void* ws, int64_t ws_bytes) {
  T *col, *ones;
  conv_ws_split(g, ws, ws_bytes, &col, &ones);
  const int step = conv_step(g);
  const int64_t L = static_cast<int64_t>(g.Ho) * g.Wo;
  const int taps = g.kh * g.kw;
  const int M = g.F / g.groups;
  const int Kg = g.C / g.groups * taps;
  const int64_t col_img = static_cast<int64_t>(g.C) * taps * L;
  for (int n0 = 0; n0 < g.N; n0 += step) {
    const int nb = g.N - n0 < step ? g.N - n0 : step;
    be.launch(Im2col<T>{g, n0, data, offset, mask, col}, static_cast<int64_t>(nb) * g.C * L);
    for (int gr = 0; gr < g.groups; ++gr) {
      be.gemm(false, false, static_cast<int>(L), M, Kg, T(1), col + gr * Kg * L,
              static_cast<int>(L), col_img, weight + static_cast<int64_t>(gr) * M * Kg, Kg, 0,
              T(0), out + (static_cast<int64_t>(n0) * g.F + gr * M) * L, static_cast<int>(L),
              static_cast<int64_t>(g.F) * L, nb);
    }
  }
  if (bias) be.launch(AddBias<T>{out, bias, g.F, L}, static_cast<int64_t>(g.N) * g.F * L);
}

template <typename T, class B>
void conv_backward(B& be, const dcn_conv_geom& g, const T* grad_out, const T* data,
                   const T* offset, const T* mask, const T* weight, T* grad_data, T* grad_offset,
                   T* grad_mask, T* grad_weight, T* grad_bias, void* ws, int64_t ws_bytes) {
  T *col, *ones;
  conv_ws_split(g, ws, ws_bytes, &col, &ones);
  if (!g.modulated) grad_mask = nullptr;
  const int step = conv_step(g);
  const int64_t L = static_cast<int64_t>(g.Ho) * g.Wo;
  const int taps = g.kh * g.kw;
  const int M = g.F / g.groups;
  const int Kg = g.C / g.groups * taps;
  const int64_t col_img = static_cast<int64_t>(g.C) * taps * L;
  if (grad_data)
    be.zero(grad_data, static_cast<int64_t>(g.N) * g.C * g.H * g.W * static_cast<int64_t>(sizeof(T)));
  for (int n0 = 0; n0 < g.N; n0 += step) {
    const int nb = g.N - n0 < step ? g.N - n0 : step;
    if (grad_data || grad_offset || grad_mask) {
      for (int gr = 0; gr < g.groups; ++gr) {
        be.gemm(false, true, static_cast<int>(L), Kg, M, T(1),
                grad_out + (static_cast<int64_t>(n0) * g.F + gr * M) * L, static_cast<int>(L),
                static_cast<int64_t>(g.F) * L, weight + static_cast<int64_t>(gr) * M * Kg, Kg, 0,
                T(0), col + gr * Kg * L, static_cast<int>(L), col_img, nb);
      }
      be.launch(Col2ImCoord<T>{g, n0, col, data, offset, mask, grad_data, grad_offset, grad_mask},
                static_cast<int64_t>(nb) * g.dgroups * taps * L);
    }
    if (grad_weight) {
      be.launch(Im2col<T>{g, n0, data, offset, mask, col}, static_cast<int64_t>(nb) * g.C * L);
      for (int b = 0; b < nb; ++b) {
        for (int gr = 0; gr < g.groups; ++gr) {
          be.gemm(true, false, Kg, M, static_cast<int>(L), T(1), col + b * col_img + gr * Kg * L,
                  static_cast<int>(L), 0,
                  grad_out + (static_cast<int64_t>(n0 + b) * g.F + gr * M) * L,
                  static_cast<int>(L), 0, n0 + b == 0 ? T(0) : T(1),
                  grad_weight + static_cast<int64_t>(gr) * M * Kg, Kg, 0, 1);
        }
      }
    }
  }
  if (grad_bias) {
    be.launch(Fill<T>{ones, T(1)}, L);
    for (int n = 0; n < g.N; ++n) {
      be.gemm(true, false, 1, g.F, static_cast<int>(L), T(1), ones, static_cast<int>(L), 0,
              grad_out + static_cast<int64_t>(n) * g.F * L, static_cast<int>(L), 0,
              n == 0 ? T(0) : T(1), grad_bias, 1, 0, 1);
    }
  }
}

/* ------------------------------------------------------------------------ */
/* (deformable) position-sensitive RoI pooling                               */
/* ------------------------------------------------------------------------ */

/*! \brief batch index of a RoI truncated toward zero (MXNet's conversion), or -1 when
 *  that is outside [0, N) or the index is NaN: such a RoI is never read from */
template <typename T>
DCN_DEV int roi_batch(const T* roi, int N) {
  const T b = roi[0];
  if (!(b > T(-1) && b < T(N))) return -1;
  return static_cast<int>(b);
}

/*! \brief geometry of one output bin of deformable PS RoI pooling */
template <typename T>
struct DPSBin {
  T wstart, hstart, sub_w, sub_h, roi_w, roi_h;
  int c;          // input channel
  int64_t tix;    // index of the x offset in trans
};

template <typename T>
DCN_DEV DPSBin<T> dpsroi_bin(const dcn_pool_geom& g, const T* roi, const T* trans, int64_t r,
                             int ctop, int ph, int pw) {
  DPSBin<T> o;
  const DPSRoI<T> geo = dpsroi_geometry(roi, static_cast<T>(g.spatial_scale));
  const T bin_h = geo.height / static_cast<T>(g.pooled);
  const T bin_w = geo.width / static_cast<T>(g.pooled);
  o.sub_h = bin_h / static_cast<T>(g.samples);
  o.sub_w = bin_w / static_cast<T>(g.samples);
  const int part_h = dpsroi_part_index(ph, g.pooled, g.part);
  const int part_w = dpsroi_part_index(pw, g.pooled, g.part);
  const int per_class = g.no_trans ? g.output_dim : g.output_dim / g.num_classes;
  const int class_id = ctop / per_class;
  o.tix = ((r * g.num_classes + class_id) * 2 * g.part + part_h) * g.part + part_w;
  T tx = T(0), ty = T(0);
  if (!g.no_trans) {
    tx = trans[o.tix] * static_cast<T>(g.trans_std);
    ty = trans[o.tix + static_cast<int64_t>(g.part) * g.part] * static_cast<T>(g.trans_std);
  }
  o.wstart = static_cast<T>(pw) * bin_w + geo.start_w + tx * geo.width;
  o.hstart = static_cast<T>(ph) * bin_h + geo.start_h + ty * geo.height;
  const int gw = ps_group_index(pw, g.pooled, g.group);
  const int gh = ps_group_index(ph, g.pooled, g.group);
  o.c = (ctop * g.group + gh) * g.group + gw;
  o.roi_w = geo.width;
  o.roi_h = geo.height;
  return o;
}

/*! \brief (RoI, output channel, bin row, bin column) of flat output index i of a pooling op */
struct PoolIndex {
  int64_t r;
  int ctop, ph, pw;
};

DCN_DEV PoolIndex pool_index(const dcn_pool_geom& g, int64_t i) {
  const int P = g.pooled;
  PoolIndex o;
  o.pw = static_cast<int>(i % P);
  o.ph = static_cast<int>((i / P) % P);
  o.ctop = static_cast<int>((i / P / P) % g.output_dim);
  o.r = i / P / P / g.output_dim;
  return o;
}

template <typename T>
struct PoolForward {
  dcn_pool_geom g;
  const T* data;
  const T* rois;
  const T* trans;
  T* out;
  T* top_count;
  DCN_DEV void operator()(int64_t i) const {
    const int P = g.pooled;
    const PoolIndex pi = pool_index(g, i);
    const int pw = pi.pw, ph = pi.ph, ctop = pi.ctop;
    const int64_t r = pi.r;
    const T* roi = rois + r * 5;
    const int b = roi_batch(roi, g.N);
    const int64_t plane = static_cast<int64_t>(g.H) * g.W;
    T result = T(0);
    int cnt = 0;
    if (b >= 0 && g.deformable) {
      const DPSBin<T> bin = dpsroi_bin(g, roi, trans, r, ctop, ph, pw);
      const T* src = data + (static_cast<int64_t>(b) * g.C + bin.c) * plane;
      T sum = T(0);
      for (int ih = 0; ih < g.samples; ++ih) {
        for (int iw = 0; iw < g.samples; ++iw) {
          T w = bin.wstart + static_cast<T>(iw) * bin.sub_w;
          T h = bin.hstart + static_cast<T>(ih) * bin.sub_h;
          if (!dpsroi_sample(&w, &h, g.W, g.H)) continue;
          int idx[4];
          T wt[4], dx, dy;
          dpsroi_record(w, h, g.W, idx, wt, &dx, &dy);
          sum += wt[0] * src[idx[0]] + wt[1] * src[idx[1]] + wt[2] * src[idx[2]] +
                 wt[3] * src[idx[3]];
          ++cnt;
        }
      }
      result = cnt == 0 ? T(0) : sum / static_cast<T>(cnt);
    } else if (b >= 0) {
      const PSRoIBinCells bin = psroi_cells(roi, static_cast<T>(g.spatial_scale), ctop, ph, pw, P,
                                            g.group, g.H, g.W);
      result = psroi_mean(data + (static_cast<int64_t>(b) * g.C + bin.c) * plane, g.W, bin);
    }
    out[i] = result;
    if (top_count) top_count[i] = static_cast<T>(cnt);
  }
};

template <typename T>
struct PoolBackward {
  dcn_pool_geom g;
  const T* grad_out;
  const T* data;
  const T* rois;
  const T* trans;
  const T* top_count;
  T* grad_data;
  T* grad_trans;
  DCN_DEV void operator()(int64_t i) const {
    const int P = g.pooled;
    const PoolIndex pi = pool_index(g, i);
    const int pw = pi.pw, ph = pi.ph, ctop = pi.ctop;
    const int64_t r = pi.r;
    const T* roi = rois + r * 5;
    const int b = roi_batch(roi, g.N);
    if (b < 0) return;
    const int64_t plane = static_cast<int64_t>(g.H) * g.W;
    if (g.deformable) {
      const T cnt = top_count[i];
      if (!(cnt > T(0))) return;
      const T diff = grad_out[i] / cnt;
      const DPSBin<T> bin = dpsroi_bin(g, roi, trans, r, ctop, ph, pw);
      const T* src = data + (static_cast<int64_t>(b) * g.C + bin.c) * plane;
      T* dst = grad_data ? grad_data + (static_cast<int64_t>(b) * g.C + bin.c) * plane : nullptr;
      const bool want_trans = grad_trans && !g.no_trans;
      T sx = T(0), sy = T(0);
      for (int ih = 0; ih < g.samples; ++ih) {
        for (int iw = 0; iw < g.samples; ++iw) {
          T w = bin.wstart + static_cast<T>(iw) * bin.sub_w;
          T h = bin.hstart + static_cast<T>(ih) * bin.sub_h;
          if (!dpsroi_sample(&w, &h, g.W, g.H)) continue;
          int idx[4];
          T wt[4], dx, dy;
          dpsroi_record(w, h, g.W, idx, wt, &dx, &dy);
          if (dst)
            for (int k = 0; k < 4; ++k) atomic_add(dst + idx[k], wt[k] * diff);
          if (want_trans) {
            const T v[4] = {src[idx[0]], src[idx[1]], src[idx[2]], src[idx[3]]};
            T gx, gy;
            dpsroi_sample_grad(v, dx, dy, &gx, &gy);
            sx += gx;
            sy += gy;
          }
        }
      }
      if (want_trans) {
        const T scale = static_cast<T>(g.trans_std) * diff;
        atomic_add(grad_trans + bin.tix, sx * scale * bin.roi_w);
        atomic_add(grad_trans + bin.tix + static_cast<int64_t>(g.part) * g.part,
                   sy * scale * bin.roi_h);
      }
    } else if (grad_data) {
      const PSRoIBinCells bin = psroi_cells(roi, static_cast<T>(g.spatial_scale), ctop, ph, pw, P,
                                            g.group, g.H, g.W);
      const int area = psroi_area(bin);
      if (area == 0) return;
      T* dst = grad_data + (static_cast<int64_t>(b) * g.C + bin.c) * plane;
      const T v = grad_out[i] / static_cast<T>(area);
      for (int y = bin.hs; y < bin.he; ++y)
        for (int x = bin.ws; x < bin.we; ++x)
          atomic_add(dst + static_cast<int64_t>(y) * g.W + x, v);
    }
  }
};

inline void check_pool_geom(const dcn_pool_geom* g) {
  if (!g) throw Error("null geometry");
  if (g->N < 1 || g->C < 1 || g->H < 1 || g->W < 1 || g->R < 0 || g->output_dim < 1 ||
      g->group < 1 || g->pooled < 1 || (g->deformable && (g->part < 1 || g->samples < 1)) ||
      g->num_classes < 1)
    throw Error("invalid PS RoI pooling geometry (non-positive size)");
  if (static_cast<int64_t>(g->output_dim) * g->group * g->group != g->C)
    throw Error("data channels must equal output_dim * group_size^2");
  if (g->deformable && !g->no_trans && g->output_dim % g->num_classes)
    throw Error("output_dim must be divisible by the number of trans classes");
}

template <typename T, class B>
void pool_forward(B& be, const dcn_pool_geom& g, const T* data, const T* rois, const T* trans,
                  T* out, T* top_count) {
  if (g.deformable && !g.no_trans && !trans) throw Error("trans is required (no_trans = 0)");
  const int64_t n = static_cast<int64_t>(g.R) * g.output_dim * g.pooled * g.pooled;
  be.launch(PoolForward<T>{g, data, rois, trans, out, g.deformable ? top_count : nullptr}, n);
}

template <typename T, class B>
void pool_backward(B& be, const dcn_pool_geom& g, const T* grad_out, const T* data,
                   const T* rois, const T* trans, const T* top_count, T* grad_data,
                   T* grad_trans) {
  if (g.deformable && !top_count) throw Error("top_count is required");
  if (g.deformable && !g.no_trans && !trans) throw Error("trans is required (no_trans = 0)");
  if (grad_data)
    be.zero(grad_data, static_cast<int64_t>(g.N) * g.C * g.H * g.W * static_cast<int64_t>(sizeof(T)));
  if (grad_trans && g.deformable && !g.no_trans)
    be.zero(grad_trans, static_cast<int64_t>(g.R) * 2 * g.num_classes * g.part * g.part *
                            static_cast<int64_t>(sizeof(T)));
  else
    grad_trans = nullptr;
  if (!grad_data && !grad_trans) return;
  const int64_t n = static_cast<int64_t>(g.R) * g.output_dim * g.pooled * g.pooled;
  be.launch(PoolBackward<T>{g, grad_out, data, rois, trans, top_count, grad_data, grad_trans}, n);
}

/* ------------------------------------------------------------------------ */
/* C entry points, shared by the back ends                                   */
/* ------------------------------------------------------------------------ */

inline std::string& last_error() {
  static thread_local std::string msg;
  return msg;
}

template <typename F>
int capi_guard(const char* what, const F& f) {
  try {
    f();
    last_error().clear();
    return 0;
  } catch (const std::exception& e) {
    last_error() = std::string(what) + ": " + e.what();
  } catch (...) {
    last_error() = std::string(what) + ": unknown error";
  }
  return 1;
}

inline void check_dtype(int dtype) {
  if (dtype != DCN_F32 && dtype != DCN_F64) throw Error("dtype must be float32 or float64");
}

template <class B>
int capi_conv_forward(B be, const dcn_conv_geom* g, int dtype, const void* data,
                      const void* offset, const void* mask, const void* weight, const void* bias,
                      void* out, void* ws, int64_t ws_bytes) {
  return capi_guard("deformable convolution forward", [&] {
    check_conv_geom(g);
    check_dtype(dtype);
    if (!data || !offset || !weight || !out || (g->modulated && !mask))
      throw Error("null input or output pointer");
    if (dtype == DCN_F32)
      conv_forward<float>(be, *g, static_cast<const float*>(data),
                          static_cast<const float*>(offset), static_cast<const float*>(mask),
                          static_cast<const float*>(weight), static_cast<const float*>(bias),
                          static_cast<float*>(out), ws, ws_bytes);
    else
      conv_forward<double>(be, *g, static_cast<const double*>(data),
                           static_cast<const double*>(offset), static_cast<const double*>(mask),
                           static_cast<const double*>(weight), static_cast<const double*>(bias),
                           static_cast<double*>(out), ws, ws_bytes);
    be.finish();
  });
}

template <class B>
int capi_conv_backward(B be, const dcn_conv_geom* g, int dtype, const void* grad_out,
                       const void* data, const void* offset, const void* mask, const void* weight,
                       void* grad_data, void* grad_offset, void* grad_mask, void* grad_weight,
                       void* grad_bias, void* ws, int64_t ws_bytes) {
  return capi_guard("deformable convolution backward", [&] {
    check_conv_geom(g);
    check_dtype(dtype);
    if (!grad_out || !data || !offset || !weight || (g->modulated && !mask))
      throw Error("null input pointer");
    if (dtype == DCN_F32)
      conv_backward<float>(be, *g, static_cast<const float*>(grad_out),
                           static_cast<const float*>(data), static_cast<const float*>(offset),
                           static_cast<const float*>(mask), static_cast<const float*>(weight),
                           static_cast<float*>(grad_data), static_cast<float*>(grad_offset),
                           static_cast<float*>(grad_mask), static_cast<float*>(grad_weight),
                           static_cast<float*>(grad_bias), ws, ws_bytes);
    else
      conv_backward<double>(be, *g, static_cast<const double*>(grad_out),
                            static_cast<const double*>(data), static_cast<const double*>(offset),
                            static_cast<const double*>(mask), static_cast<const double*>(weight),
                            static_cast<double*>(grad_data), static_cast<double*>(grad_offset),
                            static_cast<double*>(grad_mask), static_cast<double*>(grad_weight),
                            static_cast<double*>(grad_bias), ws, ws_bytes);
    be.finish();
  });
}

template <class B>
int capi_pool_forward(B be, const dcn_pool_geom* g, int dtype, const void* data,
                      const void* rois, const void* trans, void* out, void* top_count) {
  return capi_guard("PS RoI pooling forward", [&] {
    check_pool_geom(g);
    check_dtype(dtype);
    if (!data || !rois || !out || (g->deformable && !top_count))
      throw Error("null input or output pointer");
    if (g->R == 0) return;
    if (dtype == DCN_F32)
      pool_forward<float>(be, *g, static_cast<const float*>(data),
                          static_cast<const float*>(rois), static_cast<const float*>(trans),
                          static_cast<float*>(out), static_cast<float*>(top_count));
    else
      pool_forward<double>(be, *g, static_cast<const double*>(data),
                           static_cast<const double*>(rois), static_cast<const double*>(trans),
                           static_cast<double*>(out), static_cast<double*>(top_count));
    be.finish();
  });
}

template <class B>
int capi_pool_backward(B be, const dcn_pool_geom* g, int dtype, const void* grad_out,
                       const void* data, const void* rois, const void* trans,
                       const void* top_count, void* grad_data, void* grad_trans) {
  return capi_guard("PS RoI pooling backward", [&] {
    check_pool_geom(g);
    check_dtype(dtype);
    if (!grad_out || !data || !rois) throw Error("null input pointer");
    if (dtype == DCN_F32)
      pool_backward<float>(be, *g, static_cast<const float*>(grad_out),
                           static_cast<const float*>(data), static_cast<const float*>(rois),
                           static_cast<const float*>(trans), static_cast<const float*>(top_count),
                           static_cast<float*>(grad_data), static_cast<float*>(grad_trans));
    else
      pool_backward<double>(be, *g, static_cast<const double*>(grad_out),
                            static_cast<const double*>(data), static_cast<const double*>(rois),
                            static_cast<const double*>(trans),
                            static_cast<const double*>(top_count),
                            static_cast<double*>(grad_data), static_cast<double*>(grad_trans));
    be.finish();
  });
}

inline int64_t capi_conv_workspace_bytes(const dcn_conv_geom* g, int dtype) {
  try {
    check_conv_geom(g);
    check_dtype(dtype);
    return conv_ws_bytes(*g, dtype == DCN_F32 ? 4 : 8);
  } catch (const std::exception& e) {
    last_error() = std::string("deformable convolution workspace: ") + e.what();
    return -1;
  }
}

}  // namespace gpu
}  // namespace dcn

#endif  // DCN_CUDA_IMPL_H_
