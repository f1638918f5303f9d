/*
 * dcn_cuda_fpn.h - the GPU implementation of FPNROIPooling (C entry points
 * dcn_cuda_fpn_* of dcn_cuda_api.h), for the back ends of dcn_cuda_impl.h (CUDA and the
 * host emulation).  Sampling math, the RoI max bins and the level rule come from
 * ../dcn_sampling.h, shared with the CPU operator.
 *
 * Every element functor finds the level of its RoI itself (fpn_level), so no RoI is
 * gathered or sorted on the device.
 *   plain:      one thread per output value (RoI, channel, bin): ROIPooling max; the
 *               backward pass rescans the bin and adds the gradient at its maximum
 *               (atomics).
 *   deformable: t = no_trans pooling (R, C P P) in the compute type A; for each level l
 *               one GEMM off_l = t W_l^T over all RoIs, then off[r] = off_{level(r)}[r] +
 *               b_{level(r)}; the final pooling with trans = off.  Backward: the trans
 *               pooling's gradient gives the offset gradient goff; goff masked per level
 *               gives W_l's gradient (GEMM), b_l's (column sums) and t's (sum of GEMMs
 *               goff_l W_l); then the no_trans pooling's backward.  The level GEMMs cost
 *               `levels` times the FC of one level and keep every RoI in place.
 * float16 storage: every intermediate and accumulator is float32 (workspace), the
 * results are rounded once.
 */
#ifndef DCN_CUDA_FPN_H_
#define DCN_CUDA_FPN_H_

#include "dcn_cuda_impl.h"

namespace dcn {
namespace gpu {

/*! \brief the maps of the levels (device pointers) in a kernel argument */
template <typename P>
struct FpnMaps {
  P ptr[DCN_FPN_MAX_LEVELS];
};

inline void check_fpn_geom(const dcn_fpn_geom* g) {
  if (!g) throw Error("null geometry");
  if (g->levels < 1 || g->levels > DCN_FPN_MAX_LEVELS)
    throw Error("levels must be in [1, DCN_FPN_MAX_LEVELS]");
  if (g->N < 1 || g->C < 1 || g->R < 0 || g->pooled < 1 || g->samples < 1)
    throw Error("invalid FPN RoI pooling geometry (non-positive size)");
  for (int l = 0; l < g->levels; ++l)
    if (g->H[l] < 1 || g->W[l] < 1 || !(g->spatial_scale[l] > 0))
      throw Error("invalid FPN RoI pooling level geometry");
}

/*! \brief level and batch index of RoI r, or -1 (never read from) */
template <typename A>
DCN_DEV int fpn_roi_level(const dcn_fpn_geom& g, const A* roi, int* batch) {
  *batch = roi_batch(roi, g.N);
  if (*batch < 0) return -1;
  return fpn_level(roi, g.levels);
}

/*! \brief the set-up of flat output index i (RoI, channel, bin): its indices, the RoI's
 *  values, batch index and level l (-1: none, nothing is read), and with a level its map
 *  size H x W and the offset `plane` of the (batch, channel) plane in the level's maps */
template <typename S>
struct FpnBin : RoIBin<S> {
  int l, H, W;
  int64_t plane;
  DCN_DEV FpnBin(const dcn_fpn_geom& g, const S* rois, int64_t i)
      : RoIBin<S>(rois, i, g.pooled, g.C, g.N) {
    const int b = this->b;
    l = b < 0 ? -1 : fpn_level(this->roi.v, g.levels);
    H = l >= 0 ? g.H[l] : 0;
    W = l >= 0 ? g.W[l] : 0;
    plane = l >= 0 ? (static_cast<int64_t>(b) * g.C + this->at.ctop) * H * W : 0;
  }
};

template <typename S>
struct FpnMaxForward {
  typedef typename Acc<S>::type A;
  dcn_fpn_geom g;
  FpnMaps<const S*> data;
  const S* rois;
  S* out;
  DCN_DEV void operator()(int64_t i) const {
    const FpnBin<S> q(g, rois, i);
    A v = A(0);
    if (q.l >= 0) {
      const RoIMaxBin bin = roi_max_bin(q.roi.v, static_cast<A>(g.spatial_scale[q.l]), q.at.ph,
                                        q.at.pw, g.pooled, g.pooled, q.H, q.W);
      const S* plane = data.ptr[q.l] + q.plane;
      long arg;
      v = roi_max_scan<A>(bin, q.W, [&](long k) { return to_acc(plane[k]); }, &arg);
    }
    store(out + i, v);
  }
};

template <typename S>
struct FpnMaxBackward {
  typedef typename Acc<S>::type A;
  dcn_fpn_geom g;
  FpnMaps<const S*> data;
  FpnMaps<A*> grad;
  const S* rois;
  const S* grad_out;
  DCN_DEV void operator()(int64_t i) const {
    const FpnBin<S> q(g, rois, i);
    if (q.l < 0) return;
    const RoIMaxBin bin = roi_max_bin(q.roi.v, static_cast<A>(g.spatial_scale[q.l]), q.at.ph,
                                      q.at.pw, g.pooled, g.pooled, q.H, q.W);
    const S* plane = data.ptr[q.l] + q.plane;
    long arg;
    roi_max_scan<A>(bin, q.W, [&](long k) { return to_acc(plane[k]); }, &arg);
    if (arg >= 0) atomic_add(grad.ptr[q.l] + q.plane + arg, to_acc(grad_out[i]));
  }
};

/*! \brief index in trans (R, 2, P, P) of the x offset of bin (ph, pw) of RoI r */
DCN_DEV int64_t fpn_trans_index(int64_t r, int ph, int pw, int P) {
  return (r * 2 * P + dpsroi_part_index(ph, P, P)) * P + dpsroi_part_index(pw, P, P);
}

/*! \brief sampling grid of the deformable bin of q (group 1, part = pooled) */
template <typename S, typename A>
DCN_DEV DpsGrid<A> fpn_dps_bin(const dcn_fpn_geom& g, const FpnBin<S>& q, const A* trans) {
  const int P = g.pooled;
  A tx = A(0), ty = A(0);
  if (trans) {
    const int64_t t = fpn_trans_index(q.at.r, q.at.ph, q.at.pw, P);
    tx = trans[t] * static_cast<A>(g.trans_std);
    ty = trans[t + static_cast<int64_t>(P) * P] * static_cast<A>(g.trans_std);
  }
  return dps_grid(dpsroi_geometry(q.roi.v, static_cast<A>(g.spatial_scale[q.l])), q.at.ph,
                  q.at.pw, P, g.samples, tx, ty);
}

/*! \brief deformable PS RoI pooling of a RoI's level (trans: A values or nullptr) into O */
template <typename S, typename O>
struct FpnDpsForward {
  typedef typename Acc<S>::type A;
  dcn_fpn_geom g;
  FpnMaps<const S*> data;
  const S* rois;
  const A* trans;
  O* out;
  DCN_DEV void operator()(int64_t i) const {
    const FpnBin<S> q(g, rois, i);
    A result = A(0);
    if (q.l >= 0) {
      int cnt;
      result = dps_bin_mean(data.ptr[q.l] + q.plane, q.W, q.H, g.samples,
                            fpn_dps_bin(g, q, trans), &cnt);
    }
    store(out + i, result);
  }
};

/*! \brief backward of one bin: data gradient (atomics into grad), trans gradient (gtrans) */
template <typename S, typename G>
struct FpnDpsBackward {
  typedef typename Acc<S>::type A;
  dcn_fpn_geom g;
  FpnMaps<const S*> data;
  FpnMaps<A*> grad;
  const S* rois;
  const A* trans;
  const G* grad_out;
  A* gtrans;
  DCN_DEV void operator()(int64_t i) const {
    const FpnBin<S> q(g, rois, i);
    if (q.l < 0) return;
    const int H = q.H, W = q.W;
    const DpsGrid<A> bin = fpn_dps_bin(g, q, trans);
    int cnt = 0;
    for (int ih = 0; ih < g.samples; ++ih) {
      for (int iw = 0; iw < g.samples; ++iw) {
        A w = bin.wstart + static_cast<A>(iw) * bin.sub_w;
        A h = bin.hstart + static_cast<A>(ih) * bin.sub_h;
        if (dpsroi_sample(&w, &h, W, H)) ++cnt;
      }
    }
    if (cnt == 0) return;
    const A diff = to_acc(grad_out[i]) / static_cast<A>(cnt);
    A sx = A(0), sy = A(0);
    dps_bin_backward(data.ptr[q.l] + q.plane, grad.ptr[q.l] + q.plane, W, H, g.samples, bin, diff,
                     gtrans != nullptr, &sx, &sy);
    if (gtrans)
      dps_trans_grad(gtrans, fpn_trans_index(q.at.r, q.at.ph, q.at.pw, g.pooled),
                     static_cast<int64_t>(g.pooled) * g.pooled, bin, g.trans_std, diff, sx, sy);
  }
};

/*! \brief off[r, o] = off_all[level(r), r, o] + bias_{level(r)}[o] (0 without a level) */
template <typename S>
struct FpnSelectOffsets {
  typedef typename Acc<S>::type A;
  dcn_fpn_geom g;
  const S* rois;
  const A* off_all;  // (levels, R, O)
  FpnMaps<const S*> bias;
  A* off;
  DCN_DEV void operator()(int64_t i) const {
    const int O = 2 * g.pooled * g.pooled;
    const int64_t r = i / O;
    const int o = static_cast<int>(i % O);
    const RoIValues<S> roi(rois, r);
    int b;
    const int l = fpn_roi_level(g, roi.v, &b);
    off[i] = l < 0 ? A(0) : off_all[static_cast<int64_t>(l) * g.R * O + i] + to_acc(bias.ptr[l][o]);
  }
};

/*! \brief goff_l[l, r, o] = goff[r, o] when RoI r is on level l, else 0 */
template <typename S>
struct FpnMaskByLevel {
  typedef typename Acc<S>::type A;
  dcn_fpn_geom g;
  const S* rois;
  const A* goff;
  A* masked;  // (levels, R, O)
  DCN_DEV void operator()(int64_t i) const {
    const int64_t n = static_cast<int64_t>(g.R) * 2 * g.pooled * g.pooled;
    const int l = static_cast<int>(i / n);
    const int64_t ro = i % n;
    const RoIValues<S> roi(rois, ro / (2 * g.pooled * g.pooled));
    int b;
    masked[i] = fpn_roi_level(g, roi.v, &b) == l ? goff[ro] : A(0);
  }
};

/*! \brief gbias[l, o] = sum over the RoIs of goff_l[l, r, o] */
template <typename A>
struct FpnBiasGrad {
  int R, O;
  const A* masked;
  A* gbias;  // (levels, O)
  DCN_DEV void operator()(int64_t i) const {
    const int64_t l = i / O, o = i % O;
    A s = A(0);
    for (int r = 0; r < R; ++r) s += masked[(l * R + r) * O + o];
    gbias[i] = s;
  }
};

/*! \brief the workspace parts (compute type A) */
template <typename A>
struct FpnWorkspace {
  A* t;        // (R, K) no_trans pooling
  A* off;      // (R, O) offsets
  A* off_all;  // (levels, R, O) per-level FC outputs; backward: goff masked per level
  A* goff;     // (R, O) backward
  A* gt;       // (R, K) backward
  // half storage only
  A* weight;   // (levels, O, K) the weights in A
  A* gdata;    // sum of the maps: data gradient accumulators (backward; plain too)
  A* gweight;  // (levels, O, K) backward
  A* gbias;    // (levels, O) backward (all storage types)
};

template <typename S>
int64_t fpn_ws_layout(const dcn_fpn_geom& g, bool backward, void* ws, FpnWorkspace<typename Acc<S>::type>* w) {
  typedef typename Acc<S>::type A;
  const int64_t PP = static_cast<int64_t>(g.pooled) * g.pooled, K = PP * g.C, O = 2 * PP;
  const int64_t R = g.R, L = g.levels;
  int64_t maps = 0;
  for (int l = 0; l < g.levels; ++l) maps += static_cast<int64_t>(g.N) * g.C * g.H[l] * g.W[l];
  const bool half = !direct_type<S>();
  const bool def = g.deformable != 0;
  const int64_t sizes[9] = {def ? R * K : 0,
                            def ? R * O : 0,
                            def ? L * R * O : 0,
                            def && backward ? R * O : 0,
                            def && backward ? R * K : 0,
                            def && half ? L * O * K : 0,
                            half && backward ? maps : 0,
                            def && half && backward ? L * O * K : 0,
                            def && backward ? L * O : 0};
  A** const parts[9] = {&w->t, &w->off, &w->off_all, &w->goff, &w->gt, &w->weight, &w->gdata,
                        &w->gweight, &w->gbias};
  return ws_carve(ws, sizes, parts, 9);
}

/*! \brief off (R, O) of the deformable path: t, the level GEMMs, the selection */
template <typename S, class B>
void fpn_offsets(B& be, const dcn_fpn_geom& g, const FpnMaps<const S*>& data,
                 const FpnMaps<const typename Acc<S>::type*>& weight,
                 const FpnMaps<const S*>& bias, const S* rois, const FpnWorkspace<typename Acc<S>::type>& w) {
  typedef typename Acc<S>::type A;
  const int PP = g.pooled * g.pooled, K = PP * g.C, O = 2 * PP;
  const int64_t n = static_cast<int64_t>(g.R) * K;
  be.launch(FpnDpsForward<S, A>{g, data, rois, nullptr, w.t}, n);
  for (int l = 0; l < g.levels; ++l)  // column-major: off_l^T (O x R) = W_l (O x K) t^T
    be.gemm(true, false, O, g.R, K, A(1), weight.ptr[l], K, 0, w.t, K, 0, A(0),
            w.off_all + static_cast<int64_t>(l) * g.R * O, O, 0, 1);
  be.launch(FpnSelectOffsets<S>{g, rois, w.off_all, bias, w.off}, static_cast<int64_t>(g.R) * O);
}

template <typename S, class B>
FpnMaps<const typename Acc<S>::type*> fpn_weights(B& be, const dcn_fpn_geom& g,
                                                  const FpnMaps<const S*>& weight,
                                                  const FpnWorkspace<typename Acc<S>::type>& w) {
  typedef typename Acc<S>::type A;
  FpnMaps<const A*> out = {};
  const int64_t ok = 2 * static_cast<int64_t>(g.pooled) * g.pooled * g.pooled * g.pooled * g.C;
  for (int l = 0; l < g.levels; ++l) {
    if constexpr (direct_type<S>()) {
      out.ptr[l] = reinterpret_cast<const A*>(weight.ptr[l]);
    } else {
      A* dst = w.weight + l * ok;
      be.launch(LoadAcc<S>{dst, weight.ptr[l]}, ok);
      out.ptr[l] = dst;
    }
  }
  return out;
}

template <typename S, class B>
void fpn_forward(B& be, const dcn_fpn_geom& g, const FpnMaps<const S*>& data,
                 const FpnMaps<const S*>& weight, const FpnMaps<const S*>& bias, const S* rois,
                 S* out, void* ws, int64_t ws_bytes) {
  typedef typename Acc<S>::type A;
  const int64_t n = static_cast<int64_t>(g.R) * g.C * g.pooled * g.pooled;
  if (!g.deformable) {
    be.launch(FpnMaxForward<S>{g, data, rois, out}, n);
    return;
  }
  FpnWorkspace<A> w;
  check_ws(ws, ws_bytes, fpn_ws_layout<S>(g, false, nullptr, &w));
  fpn_ws_layout<S>(g, false, ws, &w);
  fpn_offsets<S>(be, g, data, fpn_weights<S>(be, g, weight, w), bias, rois, w);
  be.launch(FpnDpsForward<S, S>{g, data, rois, w.off, out}, n);
}

template <typename S, class B>
void fpn_backward(B& be, const dcn_fpn_geom& g, const S* grad_out, const FpnMaps<const S*>& data,
                  const FpnMaps<const S*>& weight, const FpnMaps<const S*>& bias, const S* rois,
                  const FpnMaps<S*>& grad_data, const FpnMaps<S*>& grad_weight,
                  const FpnMaps<S*>& grad_bias, void* ws, int64_t ws_bytes) {
  typedef typename Acc<S>::type A;
  FpnWorkspace<A> w;
  check_ws(ws, ws_bytes, fpn_ws_layout<S>(g, true, nullptr, &w));
  fpn_ws_layout<S>(g, true, ws, &w);
  const int PP = g.pooled * g.pooled, K = PP * g.C, O = 2 * PP;
  const int64_t n = static_cast<int64_t>(g.R) * K;
  // data gradient accumulators: the gradients themselves, or float32 buffers (half)
  FpnMaps<A*> gd = {};
  int64_t at = 0;
  for (int l = 0; l < g.levels; ++l) {
    const int64_t sz = static_cast<int64_t>(g.N) * g.C * g.H[l] * g.W[l];
    if constexpr (direct_type<S>()) gd.ptr[l] = reinterpret_cast<A*>(grad_data.ptr[l]);
    else gd.ptr[l] = w.gdata + at;
    at += sz;
    be.zero(gd.ptr[l], sz * static_cast<int64_t>(sizeof(A)));
  }
  if (!g.deformable) {
    be.launch(FpnMaxBackward<S>{g, data, gd, rois, grad_out}, n);
  } else {
    const FpnMaps<const A*> wt = fpn_weights<S>(be, g, weight, w);
    fpn_offsets<S>(be, g, data, wt, bias, rois, w);
    be.zero(w.goff, static_cast<int64_t>(g.R) * O * static_cast<int64_t>(sizeof(A)));
    be.launch(FpnDpsBackward<S, S>{g, data, gd, rois, w.off, grad_out, w.goff}, n);
    A* masked = w.off_all;  // reused: (levels, R, O)
    be.launch(FpnMaskByLevel<S>{g, rois, w.goff, masked},
              static_cast<int64_t>(g.levels) * g.R * O);
    be.launch(FpnBiasGrad<A>{g.R, O, masked, w.gbias}, static_cast<int64_t>(g.levels) * O);
    for (int l = 0; l < g.levels; ++l) {
      const A* ml = masked + static_cast<int64_t>(l) * g.R * O;
      A* gw;
      if constexpr (direct_type<S>()) gw = reinterpret_cast<A*>(grad_weight.ptr[l]);
      else gw = w.gweight + static_cast<int64_t>(l) * O * K;
      // column-major: gW_l^T (K x O) = t^T (K x R) goff_l (R x O)
      be.gemm(false, true, K, O, g.R, A(1), w.t, K, 0, ml, O, 0, A(0), gw, K, 0, 1);
      // column-major: gt^T (K x R) += W_l^T (K x O) goff_l^T (O x R)
      be.gemm(false, false, K, g.R, O, A(1), wt.ptr[l], K, 0, ml, O, 0, l == 0 ? A(0) : A(1),
              w.gt, K, 0, 1);
      be.launch(StoreAcc<S>{grad_bias.ptr[l], w.gbias + static_cast<int64_t>(l) * O, nullptr, 1, 1},
                O);
      if constexpr (!direct_type<S>())
        be.launch(StoreAcc<S>{grad_weight.ptr[l], gw, nullptr, 1, 1}, static_cast<int64_t>(O) * K);
    }
    be.launch(FpnDpsBackward<S, A>{g, data, gd, rois, nullptr, w.gt, nullptr}, n);
  }
  if constexpr (!direct_type<S>()) {
    for (int l = 0; l < g.levels; ++l)
      be.launch(StoreAcc<S>{grad_data.ptr[l], gd.ptr[l], nullptr, 1, 1},
                static_cast<int64_t>(g.N) * g.C * g.H[l] * g.W[l]);
  }
}

template <typename S, typename P>
FpnMaps<P> fpn_maps(const dcn_fpn_geom& g, const void* const* p, bool required, const char* what) {
  FpnMaps<P> m = {};
  for (int l = 0; l < g.levels; ++l) {
    if (p) m.ptr[l] = static_cast<P>(const_cast<void*>(p[l]));
    if (required && !m.ptr[l]) throw Error(std::string("null pointer: ") + what);
  }
  return m;
}

template <class B>
int capi_fpn_forward(B be, const dcn_fpn_geom* g, int dtype, const void* const* data,
                     const void* const* weight, const void* const* bias, const void* rois,
                     void* out, void* ws, int64_t ws_bytes) {
  return capi_guard("FPN RoI pooling forward", [&] {
    check_fpn_geom(g);
    if (!rois || !out || !data) throw Error("null input or output pointer");
    dispatch_dtype(dtype, [&](auto tag) {
      typedef decltype(tag) S;
      if (g->R == 0) return;
      const bool def = g->deformable != 0;
      fpn_forward<S>(be, *g, fpn_maps<S, const S*>(*g, data, true, "data"),
                     fpn_maps<S, const S*>(*g, weight, def, "weight"),
                     fpn_maps<S, const S*>(*g, bias, def, "bias"), cptr<S>(rois), ptr<S>(out),
                     ws, ws_bytes);
    });
    be.finish();
  });
}

template <class B>
int capi_fpn_backward(B be, const dcn_fpn_geom* g, int dtype, const void* grad_out,
                      const void* const* data, const void* const* weight,
                      const void* const* bias, const void* rois, void* const* grad_data,
                      void* const* grad_weight, void* const* grad_bias, void* ws,
                      int64_t ws_bytes) {
  return capi_guard("FPN RoI pooling backward", [&] {
    check_fpn_geom(g);
    if (!grad_out || !rois || !data || !grad_data) throw Error("null input pointer");
    dispatch_dtype(dtype, [&](auto tag) {
      typedef decltype(tag) S;
      const bool def = g->deformable != 0;
      auto gd = fpn_maps<S, S*>(*g, const_cast<const void* const*>(grad_data), true, "grad_data");
      if (g->R == 0) {
        for (int l = 0; l < g->levels; ++l)
          be.zero(gd.ptr[l], static_cast<int64_t>(g->N) * g->C * g->H[l] * g->W[l] *
                                 static_cast<int64_t>(sizeof(S)));
        return;
      }
      fpn_backward<S>(be, *g, cptr<S>(grad_out), fpn_maps<S, const S*>(*g, data, true, "data"),
                      fpn_maps<S, const S*>(*g, weight, def, "weight"),
                      fpn_maps<S, const S*>(*g, bias, def, "bias"), cptr<S>(rois), gd,
                      fpn_maps<S, S*>(*g, const_cast<const void* const*>(grad_weight), def,
                                      "grad_weight"),
                      fpn_maps<S, S*>(*g, const_cast<const void* const*>(grad_bias), def,
                                      "grad_bias"),
                      ws, ws_bytes);
    });
    be.finish();
  });
}

inline int64_t capi_fpn_workspace_bytes(const dcn_fpn_geom* g, int dtype, int backward) {
  return capi_ws_bytes("FPN RoI pooling workspace", dtype, [&] { check_fpn_geom(g); },
                       [&](auto tag) {
    typedef decltype(tag) S;
    FpnWorkspace<typename Acc<S>::type> w;
    return fpn_ws_layout<S>(*g, backward != 0, nullptr, &w);
  });
}

}  // namespace gpu
}  // namespace dcn

#endif  // DCN_CUDA_FPN_H_
