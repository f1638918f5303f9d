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
 * Element types: every functor is templated on the storage type S of the
 * tensors (float, double, or half = IEEE binary16) and computes in
 * A = Acc<S>::type (S itself, float for half).  For half, the column buffer,
 * the GEMMs and every accumulation (atomics included) are float32: the
 * workspace holds float32 copies of the weight and of one chunk of the output
 * gradient, and float32 accumulators of the data / weight / bias (pooling: data
 * / trans) gradients, rounded to half (to nearest even) once at the end.
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
#include <type_traits>

#include "../dcn_sampling.h"
#include "dcn_cuda_api.h"

#ifdef __CUDACC__
#include <cuda_fp16.h>
#define DCN_DEV __device__ __forceinline__
#else
#include "../dcn_half.h"
#define DCN_DEV inline
#endif

namespace dcn {
namespace gpu {

#ifdef __CUDACC__
typedef __half half;
DCN_DEV float to_acc(half v) { return __half2float(v); }
DCN_DEV void store(half* p, float v) { *p = __float2half_rn(v); }
#else
/*! \brief binary16 storage on the host (emulation); conversions of ../dcn_half.h */
struct half {
  uint16_t bits;
};
DCN_DEV float to_acc(half v) { return half_to_float(v.bits); }
DCN_DEV void store(half* p, float v) { p->bits = float_to_half(v); }
#endif
DCN_DEV float to_acc(float v) { return v; }
DCN_DEV double to_acc(double v) { return v; }
DCN_DEV void store(float* p, float v) { *p = v; }
DCN_DEV void store(double* p, double v) { *p = v; }

/*! \brief compute (accumulation) type of storage type S */
template <typename S>
struct Acc {
  typedef S type;
};
template <>
struct Acc<half> {
  typedef float type;
};

/*! \brief true when the storage type is its own compute type (float, double) */
template <typename S>
constexpr bool direct_type() {
  return std::is_same<S, typename Acc<S>::type>::value;
}

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
template <typename S>
struct Im2col {
  typedef typename Acc<S>::type A;
  dcn_conv_geom g;
  int n0;
  const S* data;
  const S* offset;
  const S* mask;
  A* col;
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
    const S* src = data + (n * g.C + c) * static_cast<int64_t>(g.H) * g.W;
    const S* off = offset + (n * g.dgroups + dg) * 2 * taps * L + p;
    const S* msk = g.modulated ? mask + (n * g.dgroups + dg) * taps * L + p : nullptr;
    A* dst = col + (static_cast<int64_t>(b) * g.C + c) * taps * L + p;
    for (int t = 0; t < taps; ++t) {
      A h, w;
      conv_tap_position(ho, wo, t / g.kw, t % g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw,
                        to_acc(off[2 * t * L]), to_acc(off[(2 * t + 1) * L]), &h, &w);
      int idx[4];
      A wt[4];
      A v = A(0);
      if (g.modulated) {
        if (v2_record(h, w, g.H, g.W, idx, wt)) {
          const A m = to_acc(msk[t * L]);
          for (int k = 0; k < 4; ++k) wt[k] *= m;
          v = wt[0] * to_acc(src[idx[0]]) + wt[1] * to_acc(src[idx[1]]) +
              wt[2] * to_acc(src[idx[2]]) + wt[3] * to_acc(src[idx[3]]);
        }
      } else if (v1_record(h, w, g.H, g.W, idx, wt)) {
        v = wt[0] * to_acc(src[idx[0]]) + wt[1] * to_acc(src[idx[1]]) +
            wt[2] * to_acc(src[idx[2]]) + wt[3] * to_acc(src[idx[3]]);
      }
      dst[t * L] = v;
    }
  }
};

/*!
 * \brief from the column gradient: offset (and mask) gradient of one
 * (image, deformable group, tap, pixel), and the data gradient scattered with
 * atomics into grad_data (compute type; its first image is grad_n0).  Every
 * offset / mask gradient element has exactly one writer.
 */
template <typename S>
struct Col2ImCoord {
  typedef typename Acc<S>::type A;
  dcn_conv_geom g;
  int n0;
  const A* col;
  const S* data;
  const S* offset;
  const S* mask;
  A* grad_data;
  int grad_n0;
  S* grad_offset;
  S* grad_mask;
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
    A h, w;
    conv_tap_position(ho, wo, t / g.kw, t % g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw,
                      to_acc(offset[oi]), to_acc(offset[oi + L]), &h, &w);
    int idx[4], gidx[4];
    A wt[4], dh[4], dw[4];
    A m = A(1);
    bool inside;
    if (g.modulated) {
      m = to_acc(mask[mi]);
      inside = v2_record(h, w, g.H, g.W, idx, wt);
      v2_grad_record(h, w, g.H, g.W, gidx, dh, dw);
    } else {
      inside = v1_record(h, w, g.H, g.W, idx, wt);
      v1_grad_record(h, w, g.H, g.W, gidx, dh, dw);
    }
    A acc_h = A(0), acc_w = A(0), acc_m = A(0);
    if (inside) {
      const int cpg = g.C / g.dgroups;
      const int64_t plane = static_cast<int64_t>(g.H) * g.W;
      for (int cc = 0; cc < cpg; ++cc) {
        const int c = dg * cpg + cc;
        const A s = col[((static_cast<int64_t>(b) * g.C + c) * taps + t) * L + p];
        const S* src = data + (n * g.C + c) * plane;
        const A v0 = to_acc(src[idx[0]]), v1 = to_acc(src[idx[1]]), v2 = to_acc(src[idx[2]]),
                v3 = to_acc(src[idx[3]]);
        acc_h += s * (dh[0] * v0 + dh[1] * v1 + dh[2] * v2 + dh[3] * v3);
        acc_w += s * (dw[0] * v0 + dw[1] * v1 + dw[2] * v2 + dw[3] * v3);
        if (g.modulated) acc_m += s * (wt[0] * v0 + wt[1] * v1 + wt[2] * v2 + wt[3] * v3);
        if (grad_data) {
          A* dst = grad_data + ((n - grad_n0) * g.C + c) * plane;
          const A sm = s * m;
          for (int k = 0; k < 4; ++k)
            if (wt[k] != A(0)) atomic_add(dst + idx[k], wt[k] * sm);
        }
      }
    }
    if (grad_offset) {
      store(grad_offset + oi, acc_h * m);
      store(grad_offset + oi + L, acc_w * m);
    }
    if (g.modulated && grad_mask) store(grad_mask + mi, acc_m);
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

/*! \brief out[i] = acc[i] (+ bias of its filter), rounded to the storage type */
template <typename S>
struct StoreAcc {
  typedef typename Acc<S>::type A;
  S* out;
  const A* acc;
  const S* bias;  // or nullptr
  int F;
  int64_t L;
  DCN_DEV void operator()(int64_t i) const {
    store(out + i, bias ? acc[i] + to_acc(bias[(i / L) % F]) : acc[i]);
  }
};

/*! \brief acc[i] = the storage value in the compute type */
template <typename S>
struct LoadAcc {
  typedef typename Acc<S>::type A;
  A* acc;
  const S* src;
  DCN_DEV void operator()(int64_t i) const { acc[i] = to_acc(src[i]); }
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

/*!
 * \brief lay out n workspace parts of sizes[k] elements of A, each 64-byte aligned, from
 * the first 64-byte boundary of ws: *parts[k] = the part, or nullptr where sizes[k] is 0 or
 * ws is nullptr (only sizing); returns the bytes needed (64 for the alignment included)
 */
template <typename A>
int64_t ws_carve(void* ws, const int64_t* sizes, A** const* parts, int n) {
  const uintptr_t base = (reinterpret_cast<uintptr_t>(ws) + 63) & ~static_cast<uintptr_t>(63);
  int64_t off = 0;
  for (int k = 0; k < n; ++k) {
    *parts[k] = sizes[k] && ws ? reinterpret_cast<A*>(base + off) : nullptr;
    off += align64(sizes[k] * static_cast<int64_t>(sizeof(A)));
  }
  return off + 64;
}

/*! \brief throws unless ws holds ws_bytes >= need bytes */
inline void check_ws(const void* ws, int64_t ws_bytes, int64_t need) {
  if (!ws || ws_bytes < need) {
    std::ostringstream os;
    os << "workspace of " << ws_bytes << " bytes is too small (need " << need << ")";
    throw Error(os.str());
  }
}

/*! \brief the parts of the convolution workspace (compute type A) */
template <typename A>
struct ConvWorkspace {
  A* col;   // (step, C*kh*kw, Ho*Wo) column buffer
  A* ones;  // (Ho*Wo) ones for the bias gradient
  // half storage only:
  A* weight;       // (F, C/groups*kh*kw) the weight in A
  A* out;          // (step, F, Ho*Wo) forward: GEMM output; backward: the output gradient
  A* grad_data;    // (step, C, H, W) data gradient accumulator of one chunk
  A* grad_weight;  // (F, C/groups*kh*kw)
  A* grad_bias;    // (F)
};

/*!
 * \brief lay out the workspace of storage type S at ws (nullptr: only size it);
 * returns the bytes needed.  float / double: column buffer and ones only.
 */
template <typename S>
int64_t conv_ws_layout(const dcn_conv_geom& g, void* ws, ConvWorkspace<typename Acc<S>::type>* w) {
  typedef typename Acc<S>::type A;
  const int64_t L = static_cast<int64_t>(g.Ho) * g.Wo;
  const int64_t step = conv_step(g);
  const int64_t wsize = static_cast<int64_t>(g.F) * (g.C / g.groups) * g.kh * g.kw;
  const bool half = !direct_type<S>();
  const int64_t sizes[7] = {step * g.C * g.kh * g.kw * L,
                            L,
                            half ? wsize : 0,
                            half ? step * g.F * L : 0,
                            half ? step * g.C * static_cast<int64_t>(g.H) * g.W : 0,
                            half ? wsize : 0,
                            half ? g.F : 0};
  A** const parts[7] = {&w->col, &w->ones, &w->weight, &w->out, &w->grad_data, &w->grad_weight,
                        &w->grad_bias};
  return ws_carve(ws, sizes, parts, 7);
}

template <typename S>
ConvWorkspace<typename Acc<S>::type> conv_ws_split(const dcn_conv_geom& g, void* ws,
                                                   int64_t ws_bytes) {
  ConvWorkspace<typename Acc<S>::type> w;
  check_ws(ws, ws_bytes, conv_ws_layout<S>(g, nullptr, &w));
  conv_ws_layout<S>(g, ws, &w);
  return w;
}

template <typename S, class B>
void conv_forward(B& be, const dcn_conv_geom& g, const S* data, const S* offset, const S* mask,
                  const S* weight, const S* bias, S* out, void* ws, int64_t ws_bytes) {
  typedef typename Acc<S>::type A;
  const ConvWorkspace<A> w = conv_ws_split<S>(g, ws, ws_bytes);
  const int step = conv_step(g);
  const int64_t L = static_cast<int64_t>(g.Ho) * g.Wo;
  const int taps = g.kh * g.kw;
  const int M = g.F / g.groups;
  const int Kg = g.C / g.groups * taps;
  const int64_t col_img = static_cast<int64_t>(g.C) * taps * L;
  const A* wa;
  if constexpr (direct_type<S>()) {
    wa = weight;
  } else {
    be.launch(LoadAcc<S>{w.weight, weight}, static_cast<int64_t>(g.F) * Kg);
    wa = w.weight;
  }
  for (int n0 = 0; n0 < g.N; n0 += step) {
    const int nb = g.N - n0 < step ? g.N - n0 : step;
    be.launch(Im2col<S>{g, n0, data, offset, mask, w.col}, static_cast<int64_t>(nb) * g.C * L);
    A* y;  // GEMM output of the chunk: the output itself, or the float32 buffer for half
    if constexpr (direct_type<S>()) y = out + static_cast<int64_t>(n0) * g.F * L;
    else y = w.out;
    for (int gr = 0; gr < g.groups; ++gr) {
      be.gemm(false, false, static_cast<int>(L), M, Kg, A(1), w.col + gr * Kg * L,
              static_cast<int>(L), col_img, wa + static_cast<int64_t>(gr) * M * Kg, Kg, 0,
              A(0), y + static_cast<int64_t>(gr) * M * L, static_cast<int>(L),
              static_cast<int64_t>(g.F) * L, nb);
    }
    if constexpr (!direct_type<S>())
      be.launch(StoreAcc<S>{out + static_cast<int64_t>(n0) * g.F * L, w.out, bias, g.F, L},
                static_cast<int64_t>(nb) * g.F * L);
  }
  if constexpr (direct_type<S>())
    if (bias) be.launch(AddBias<S>{out, bias, g.F, L}, static_cast<int64_t>(g.N) * g.F * L);
}

template <typename S, class B>
void conv_backward(B& be, const dcn_conv_geom& g, const S* grad_out, const S* data,
                   const S* offset, const S* mask, const S* weight, S* grad_data, S* grad_offset,
                   S* grad_mask, S* grad_weight, S* grad_bias, void* ws, int64_t ws_bytes) {
  typedef typename Acc<S>::type A;
  constexpr bool direct = direct_type<S>();
  const ConvWorkspace<A> w = conv_ws_split<S>(g, ws, ws_bytes);
  if (!g.modulated) grad_mask = nullptr;
  const int step = conv_step(g);
  const int64_t L = static_cast<int64_t>(g.Ho) * g.Wo;
  const int64_t plane = static_cast<int64_t>(g.H) * g.W;
  const int taps = g.kh * g.kw;
  const int M = g.F / g.groups;
  const int Kg = g.C / g.groups * taps;
  const int64_t col_img = static_cast<int64_t>(g.C) * taps * L;
  // compute-type views: the tensors themselves (float, double) or the workspace (half)
  const A* wa;
  A *gw, *gb;
  if constexpr (direct) {
    wa = weight;
    gw = grad_weight;
    gb = grad_bias;
    if (grad_data)
      be.zero(grad_data, static_cast<int64_t>(g.N) * g.C * plane * static_cast<int64_t>(sizeof(S)));
  } else {
    be.launch(LoadAcc<S>{w.weight, weight}, static_cast<int64_t>(g.F) * Kg);
    wa = w.weight;
    gw = grad_weight ? w.grad_weight : nullptr;
    gb = grad_bias ? w.grad_bias : nullptr;
  }
  if (gb) be.launch(Fill<A>{w.ones, A(1)}, L);
  for (int n0 = 0; n0 < g.N; n0 += step) {
    const int nb = g.N - n0 < step ? g.N - n0 : step;
    const A* go;  // output gradient of the chunk
    if constexpr (direct) {
      go = grad_out + static_cast<int64_t>(n0) * g.F * L;
    } else {
      be.launch(LoadAcc<S>{w.out, grad_out + static_cast<int64_t>(n0) * g.F * L},
                static_cast<int64_t>(nb) * g.F * L);
      go = w.out;
    }
    if (grad_data || grad_offset || grad_mask) {
      for (int gr = 0; gr < g.groups; ++gr) {
        be.gemm(false, true, static_cast<int>(L), Kg, M, A(1), go + static_cast<int64_t>(gr) * M * L,
                static_cast<int>(L), static_cast<int64_t>(g.F) * L,
                wa + static_cast<int64_t>(gr) * M * Kg, Kg, 0, A(0), w.col + gr * Kg * L,
                static_cast<int>(L), col_img, nb);
      }
      A* gd = nullptr;
      int gd_n0 = 0;
      if (grad_data) {
        if constexpr (direct) {
          gd = grad_data;
        } else {
          gd = w.grad_data;
          gd_n0 = n0;
          be.zero(gd, static_cast<int64_t>(nb) * g.C * plane * static_cast<int64_t>(sizeof(A)));
        }
      }
      be.launch(Col2ImCoord<S>{g, n0, w.col, data, offset, mask, gd, gd_n0, grad_offset,
                               grad_mask},
                static_cast<int64_t>(nb) * g.dgroups * taps * L);
      if constexpr (!direct)
        if (grad_data)
          be.launch(StoreAcc<S>{grad_data + static_cast<int64_t>(n0) * g.C * plane, gd, nullptr,
                                1, 1},
                    static_cast<int64_t>(nb) * g.C * plane);
    }
    if (gw) {
      be.launch(Im2col<S>{g, n0, data, offset, mask, w.col}, static_cast<int64_t>(nb) * g.C * L);
      for (int b = 0; b < nb; ++b) {
        for (int gr = 0; gr < g.groups; ++gr) {
          be.gemm(true, false, Kg, M, static_cast<int>(L), A(1), w.col + b * col_img + gr * Kg * L,
                  static_cast<int>(L), 0, go + (static_cast<int64_t>(b) * g.F + gr * M) * L,
                  static_cast<int>(L), 0, n0 + b == 0 ? A(0) : A(1),
                  gw + static_cast<int64_t>(gr) * M * Kg, Kg, 0, 1);
        }
      }
    }
    if (gb) {
      for (int b = 0; b < nb; ++b) {
        be.gemm(true, false, 1, g.F, static_cast<int>(L), A(1), w.ones, static_cast<int>(L), 0,
                go + static_cast<int64_t>(b) * g.F * L, static_cast<int>(L), 0,
                n0 + b == 0 ? A(0) : A(1), gb, 1, 0, 1);
      }
    }
  }
  if constexpr (!direct) {
    if (grad_weight)
      be.launch(StoreAcc<S>{grad_weight, gw, nullptr, 1, 1}, static_cast<int64_t>(g.F) * Kg);
    if (grad_bias) be.launch(StoreAcc<S>{grad_bias, gb, nullptr, 1, 1}, g.F);
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

/*! \brief sampling grid of one output bin of deformable PS RoI pooling (PS and FPN) */
template <typename T>
struct DpsGrid {
  T wstart, hstart, sub_w, sub_h, roi_w, roi_h;
};

/*! \brief the grid of bin (ph, pw) of P x P bins, `samples` x `samples` samples each, of a
 *  RoI of geometry geo shifted by (tx, ty) RoI sizes */
template <typename T>
DCN_DEV DpsGrid<T> dps_grid(const DPSRoI<T>& geo, int ph, int pw, int P, int samples, T tx,
                            T ty) {
  DpsGrid<T> o;
  const T bin_h = geo.height / static_cast<T>(P);
  const T bin_w = geo.width / static_cast<T>(P);
  o.sub_h = bin_h / static_cast<T>(samples);
  o.sub_w = bin_w / static_cast<T>(samples);
  o.wstart = static_cast<T>(pw) * bin_w + geo.start_w + tx * geo.width;
  o.hstart = static_cast<T>(ph) * bin_h + geo.start_h + ty * geo.height;
  o.roi_w = geo.width;
  o.roi_h = geo.height;
  return o;
}

/*! \brief mean of the bilinear samples of a bin that fall inside the W x H plane src (0 when
 *  none does); *count: how many did */
template <typename A, typename S>
DCN_DEV A dps_bin_mean(const S* src, int W, int H, int samples, const DpsGrid<A>& bin,
                       int* count) {
  A sum = A(0);
  int cnt = 0;
  for (int ih = 0; ih < samples; ++ih) {
    for (int iw = 0; iw < samples; ++iw) {
      A w = bin.wstart + static_cast<A>(iw) * bin.sub_w;
      A h = bin.hstart + static_cast<A>(ih) * bin.sub_h;
      if (!dpsroi_sample(&w, &h, W, H)) continue;
      int idx[4];
      A wt[4], dx, dy;
      dpsroi_record(w, h, W, idx, wt, &dx, &dy);
      sum += wt[0] * to_acc(src[idx[0]]) + wt[1] * to_acc(src[idx[1]]) +
             wt[2] * to_acc(src[idx[2]]) + wt[3] * to_acc(src[idx[3]]);
      ++cnt;
    }
  }
  *count = cnt;
  return cnt == 0 ? A(0) : sum / static_cast<A>(cnt);
}

/*! \brief backward of a bin's samples with the gradient diff of each: adds the bilinear
 *  weights times diff to dst (atomics; skipped when dst is nullptr) and, when want_trans,
 *  the sums of the sample position gradients to *sx, *sy */
template <typename A, typename S>
DCN_DEV void dps_bin_backward(const S* src, A* dst, int W, int H, int samples,
                              const DpsGrid<A>& bin, A diff, bool want_trans, A* sx, A* sy) {
  for (int ih = 0; ih < samples; ++ih) {
    for (int iw = 0; iw < samples; ++iw) {
      A w = bin.wstart + static_cast<A>(iw) * bin.sub_w;
      A h = bin.hstart + static_cast<A>(ih) * bin.sub_h;
      if (!dpsroi_sample(&w, &h, W, H)) continue;
      int idx[4];
      A wt[4], dx, dy;
      dpsroi_record(w, h, W, idx, wt, &dx, &dy);
      if (dst)
        for (int k = 0; k < 4; ++k) atomic_add(dst + idx[k], wt[k] * diff);
      if (want_trans) {
        const A v[4] = {to_acc(src[idx[0]]), to_acc(src[idx[1]]), to_acc(src[idx[2]]),
                        to_acc(src[idx[3]])};
        A gx, gy;
        dpsroi_sample_grad(v, dx, dy, &gx, &gy);
        *sx += gx;
        *sy += gy;
      }
    }
  }
}

/*! \brief adds a bin's trans gradient: x at gtrans[t], y at gtrans[t + y_stride] */
template <typename A>
DCN_DEV void dps_trans_grad(A* gtrans, int64_t t, int64_t y_stride, const DpsGrid<A>& bin,
                            double trans_std, A diff, A sx, A sy) {
  const A scale = static_cast<A>(trans_std) * diff;
  atomic_add(gtrans + t, sx * scale * bin.roi_w);
  atomic_add(gtrans + t + y_stride, sy * scale * bin.roi_h);
}

/*! \brief geometry of one output bin of deformable PS RoI pooling */
template <typename T>
struct DPSBin : DpsGrid<T> {
  int c;          // input channel
  int64_t tix;    // index of the x offset in trans
};

/*! \brief roi: the five RoI values in the compute type T; trans in its storage type */
template <typename T, typename S>
DCN_DEV DPSBin<T> dpsroi_bin(const dcn_pool_geom& g, const T* roi, const S* trans, int64_t r,
                             int ctop, int ph, int pw) {
  const int part_h = dpsroi_part_index(ph, g.pooled, g.part);
  const int part_w = dpsroi_part_index(pw, g.pooled, g.part);
  const int per_class = g.no_trans ? g.output_dim : g.output_dim / g.num_classes;
  const int class_id = ctop / per_class;
  const int64_t tix = ((r * g.num_classes + class_id) * 2 * g.part + part_h) * g.part + part_w;
  T tx = T(0), ty = T(0);
  if (!g.no_trans) {
    tx = to_acc(trans[tix]) * static_cast<T>(g.trans_std);
    ty = to_acc(trans[tix + static_cast<int64_t>(g.part) * g.part]) *
         static_cast<T>(g.trans_std);
  }
  DPSBin<T> o;
  static_cast<DpsGrid<T>&>(o) = dps_grid(
      dpsroi_geometry(roi, static_cast<T>(g.spatial_scale)), ph, pw, g.pooled, g.samples, tx, ty);
  const int gw = ps_group_index(pw, g.pooled, g.group);
  const int gh = ps_group_index(ph, g.pooled, g.group);
  o.c = (ctop * g.group + gh) * g.group + gw;
  o.tix = tix;
  return o;
}

/*! \brief (RoI, channel, bin row, bin column) of flat output index i of a pooling op with
 *  C channels of P x P bins */
struct PoolIndex {
  int64_t r;
  int ctop, ph, pw;
};

DCN_DEV PoolIndex pool_index(int64_t i, int P, int C) {
  PoolIndex o;
  o.pw = static_cast<int>(i % P);
  o.ph = static_cast<int>((i / P) % P);
  o.ctop = static_cast<int>((i / P / P) % C);
  o.r = i / P / P / C;
  return o;
}

/*! \brief the five values of RoI r in the compute type */
template <typename S>
struct RoIValues {
  typename Acc<S>::type v[5];
  DCN_DEV RoIValues(const S* rois, int64_t r) {
    for (int k = 0; k < 5; ++k) v[k] = to_acc(rois[r * 5 + k]);
  }
};

/*! \brief the set-up of flat output index i of a RoI pooling op (C channels of P x P bins,
 *  N images): its indices, the RoI's values and batch index b (-1: nothing is read) */
template <typename S>
struct RoIBin {
  PoolIndex at;
  RoIValues<S> roi;
  int b;
  DCN_DEV RoIBin(const S* rois, int64_t i, int P, int C, int N)
      : at(pool_index(i, P, C)), roi(rois, at.r), b(roi_batch(roi.v, N)) {}
};

/*! \brief plain PS RoI pooling: mean of a bin's cells in the compute type A (psroi_mean
 *  of ../dcn_sampling.h, reading storage type S) */
template <typename A, typename S>
DCN_DEV A cells_mean(const S* plane, int W, const PSRoIBinCells& b) {
  const int area = psroi_area(b);
  if (area == 0) return A(0);
  A sum = A(0);
  for (int y = b.hs; y < b.he; ++y)
    for (int x = b.ws; x < b.we; ++x) sum += to_acc(plane[static_cast<int64_t>(y) * W + x]);
  return sum / static_cast<A>(area);
}

template <typename S>
struct PoolForward {
  typedef typename Acc<S>::type A;
  dcn_pool_geom g;
  const S* data;
  const S* rois;
  const S* trans;
  S* out;
  S* top_count;
  DCN_DEV void operator()(int64_t i) const {
    const int P = g.pooled;
    const RoIBin<S> q(rois, i, P, g.output_dim, g.N);
    const int64_t plane = static_cast<int64_t>(g.H) * g.W;
    A result = A(0);
    int cnt = 0;
    if (q.b >= 0 && g.deformable) {
      const DPSBin<A> bin = dpsroi_bin(g, q.roi.v, trans, q.at.r, q.at.ctop, q.at.ph, q.at.pw);
      result = dps_bin_mean(data + (static_cast<int64_t>(q.b) * g.C + bin.c) * plane, g.W, g.H,
                            g.samples, bin, &cnt);
    } else if (q.b >= 0) {
      const PSRoIBinCells bin = psroi_cells(q.roi.v, static_cast<A>(g.spatial_scale), q.at.ctop,
                                            q.at.ph, q.at.pw, P, g.group, g.H, g.W);
      result = cells_mean<A>(data + (static_cast<int64_t>(q.b) * g.C + bin.c) * plane, g.W, bin);
    }
    store(out + i, result);
    if (top_count) store(top_count + i, static_cast<A>(cnt));
  }
};

/*! \brief backward of one output bin: the data / trans gradients are accumulated with
 *  atomics in the compute type (the gradients themselves, or float32 buffers for half) */
template <typename S>
struct PoolBackward {
  typedef typename Acc<S>::type A;
  dcn_pool_geom g;
  const S* grad_out;
  const S* data;
  const S* rois;
  const S* trans;
  const S* top_count;
  A* grad_data;
  A* grad_trans;
  DCN_DEV void operator()(int64_t i) const {
    const int P = g.pooled;
    const RoIBin<S> q(rois, i, P, g.output_dim, g.N);
    if (q.b < 0) return;
    const int64_t plane = static_cast<int64_t>(g.H) * g.W;
    if (g.deformable) {
      const A cnt = to_acc(top_count[i]);
      if (!(cnt > A(0))) return;
      const A diff = to_acc(grad_out[i]) / cnt;
      const DPSBin<A> bin = dpsroi_bin(g, q.roi.v, trans, q.at.r, q.at.ctop, q.at.ph, q.at.pw);
      const S* src = data + (static_cast<int64_t>(q.b) * g.C + bin.c) * plane;
      A* dst = grad_data ? grad_data + (static_cast<int64_t>(q.b) * g.C + bin.c) * plane : nullptr;
      const bool want_trans = grad_trans && !g.no_trans;
      A sx = A(0), sy = A(0);
      dps_bin_backward(src, dst, g.W, g.H, g.samples, bin, diff, want_trans, &sx, &sy);
      if (want_trans)
        dps_trans_grad(grad_trans, bin.tix, static_cast<int64_t>(g.part) * g.part, bin,
                       g.trans_std, diff, sx, sy);
    } else if (grad_data) {
      const PSRoIBinCells bin = psroi_cells(q.roi.v, static_cast<A>(g.spatial_scale), q.at.ctop,
                                            q.at.ph, q.at.pw, P, g.group, g.H, g.W);
      const int area = psroi_area(bin);
      if (area == 0) return;
      A* dst = grad_data + (static_cast<int64_t>(q.b) * g.C + bin.c) * plane;
      const A v = to_acc(grad_out[i]) / static_cast<A>(area);
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

/*! \brief float32 gradient buffers of half pooling (data, then trans); bytes needed */
inline int64_t pool_ws_bytes(const dcn_pool_geom& g, int dtype) {
  if (dtype != DCN_F16) return 0;
  const int64_t data = static_cast<int64_t>(g.N) * g.C * g.H * g.W;
  const int64_t trans = (g.deformable && !g.no_trans)
                            ? static_cast<int64_t>(g.R) * 2 * g.num_classes * g.part * g.part
                            : 0;
  return align64(data * 4) + align64(trans * 4) + 64;
}

template <typename S, class B>
void pool_forward(B& be, const dcn_pool_geom& g, const S* data, const S* rois, const S* trans,
                  S* out, S* top_count) {
  if (g.deformable && !g.no_trans && !trans) throw Error("trans is required (no_trans = 0)");
  const int64_t n = static_cast<int64_t>(g.R) * g.output_dim * g.pooled * g.pooled;
  be.launch(PoolForward<S>{g, data, rois, trans, out, g.deformable ? top_count : nullptr}, n);
}

template <typename S, class B>
void pool_backward(B& be, const dcn_pool_geom& g, const S* grad_out, const S* data,
                   const S* rois, const S* trans, const S* top_count, S* grad_data,
                   S* grad_trans, void* ws, int64_t ws_bytes) {
  typedef typename Acc<S>::type A;
  if (g.deformable && !top_count) throw Error("top_count is required");
  if (g.deformable && !g.no_trans && !trans) throw Error("trans is required (no_trans = 0)");
  if (!(g.deformable && !g.no_trans)) grad_trans = nullptr;
  const int64_t data_n = static_cast<int64_t>(g.N) * g.C * g.H * g.W;
  const int64_t trans_n = static_cast<int64_t>(g.R) * 2 * g.num_classes * g.part * g.part;
  A *gd, *gt;  // compute-type accumulators
  if constexpr (direct_type<S>()) {
    gd = grad_data;
    gt = grad_trans;
  } else {
    check_ws(ws, ws_bytes, pool_ws_bytes(g, DCN_F16));
    uintptr_t p = (reinterpret_cast<uintptr_t>(ws) + 63) & ~static_cast<uintptr_t>(63);
    gd = grad_data ? reinterpret_cast<A*>(p) : nullptr;
    p += align64(data_n * 4);
    gt = grad_trans ? reinterpret_cast<A*>(p) : nullptr;
  }
  if (gd) be.zero(gd, data_n * static_cast<int64_t>(sizeof(A)));
  if (gt) be.zero(gt, trans_n * static_cast<int64_t>(sizeof(A)));
  if (gd || gt) {
    const int64_t n = static_cast<int64_t>(g.R) * g.output_dim * g.pooled * g.pooled;
    be.launch(PoolBackward<S>{g, grad_out, data, rois, trans, top_count, gd, gt}, n);
  }
  if constexpr (!direct_type<S>()) {
    if (gd) be.launch(StoreAcc<S>{grad_data, gd, nullptr, 1, 1}, data_n);
    if (gt) be.launch(StoreAcc<S>{grad_trans, gt, nullptr, 1, 1}, trans_n);
  }
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

/*! \brief f(S()) for the storage type S of a dtype code */
template <typename F>
void dispatch_dtype(int dtype, const F& f) {
  switch (dtype) {
    case DCN_F32: f(float()); break;
    case DCN_F64: f(double()); break;
    case DCN_F16: f(half()); break;
    default: throw Error("dtype must be float32, float64 or float16");
  }
}

template <typename S>
const S* cptr(const void* p) {
  return static_cast<const S*>(p);
}
template <typename S>
S* ptr(void* p) {
  return static_cast<S*>(p);
}

template <class B>
int capi_conv_forward(B be, const dcn_conv_geom* g, int dtype, const void* data,
                      const void* offset, const void* mask, const void* weight, const void* bias,
                      void* out, void* ws, int64_t ws_bytes) {
  return capi_guard("deformable convolution forward", [&] {
    check_conv_geom(g);
    if (!data || !offset || !weight || !out || (g->modulated && !mask))
      throw Error("null input or output pointer");
    dispatch_dtype(dtype, [&](auto tag) {
      typedef decltype(tag) S;
      conv_forward<S>(be, *g, cptr<S>(data), cptr<S>(offset), cptr<S>(mask), cptr<S>(weight),
                      cptr<S>(bias), ptr<S>(out), ws, ws_bytes);
    });
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
    if (!grad_out || !data || !offset || !weight || (g->modulated && !mask))
      throw Error("null input pointer");
    dispatch_dtype(dtype, [&](auto tag) {
      typedef decltype(tag) S;
      conv_backward<S>(be, *g, cptr<S>(grad_out), cptr<S>(data), cptr<S>(offset), cptr<S>(mask),
                       cptr<S>(weight), ptr<S>(grad_data), ptr<S>(grad_offset),
                       ptr<S>(grad_mask), ptr<S>(grad_weight), ptr<S>(grad_bias), ws, ws_bytes);
    });
    be.finish();
  });
}

template <class B>
int capi_pool_forward(B be, const dcn_pool_geom* g, int dtype, const void* data,
                      const void* rois, const void* trans, void* out, void* top_count) {
  return capi_guard("PS RoI pooling forward", [&] {
    check_pool_geom(g);
    dispatch_dtype(dtype, [&](auto tag) {
      typedef decltype(tag) S;
      if (!data || !rois || !out || (g->deformable && !top_count))
        throw Error("null input or output pointer");
      if (g->R == 0) return;
      pool_forward<S>(be, *g, cptr<S>(data), cptr<S>(rois), cptr<S>(trans), ptr<S>(out),
                      ptr<S>(top_count));
    });
    be.finish();
  });
}

template <class B>
int capi_pool_backward(B be, const dcn_pool_geom* g, int dtype, const void* grad_out,
                       const void* data, const void* rois, const void* trans,
                       const void* top_count, void* grad_data, void* grad_trans, void* ws,
                       int64_t ws_bytes) {
  return capi_guard("PS RoI pooling backward", [&] {
    check_pool_geom(g);
    if (!grad_out || !data || !rois) throw Error("null input pointer");
    dispatch_dtype(dtype, [&](auto tag) {
      typedef decltype(tag) S;
      pool_backward<S>(be, *g, cptr<S>(grad_out), cptr<S>(data), cptr<S>(rois), cptr<S>(trans),
                       cptr<S>(top_count), ptr<S>(grad_data), ptr<S>(grad_trans), ws, ws_bytes);
    });
    be.finish();
  });
}

/*! \brief check(), then f(S()) for the storage type S of dtype: the workspace bytes f gives,
 *  or -1 with the error (prefixed by what) in last_error() */
template <typename C, typename F>
int64_t capi_ws_bytes(const char* what, int dtype, const C& check, const F& f) {
  try {
    check();
    int64_t bytes = 0;
    dispatch_dtype(dtype, [&](auto tag) { bytes = f(tag); });
    return bytes;
  } catch (const std::exception& e) {
    last_error() = std::string(what) + ": " + e.what();
    return -1;
  }
}

inline int64_t capi_conv_workspace_bytes(const dcn_conv_geom* g, int dtype) {
  return capi_ws_bytes("deformable convolution workspace", dtype, [&] { check_conv_geom(g); },
                       [&](auto tag) {
    typedef decltype(tag) S;
    ConvWorkspace<typename Acc<S>::type> w;
    return conv_ws_layout<S>(*g, nullptr, &w);
  });
}

inline int64_t capi_pool_workspace_bytes(const dcn_pool_geom* g, int dtype) {
  return capi_ws_bytes("PS RoI pooling workspace", dtype, [&] { check_pool_geom(g); },
                       [&](auto) { return pool_ws_bytes(*g, dtype); });
}

}  // namespace gpu
}  // namespace dcn

#endif  // DCN_CUDA_IMPL_H_
