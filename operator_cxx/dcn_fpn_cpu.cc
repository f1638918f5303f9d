/*
 * dcn_fpn_cpu.cc - FPNROIPooling on the CPU.  Plain: ROIPooling max bins
 * (roi_max_bin / roi_max_scan of dcn_sampling.h; the bins of a RoI computed once for all
 * its channels).
 * Deformable: per level, the RoIs of that level are gathered and run through the
 * deformable PS RoI pooling kernels of dcn_cpu_kernels.h (no_trans, then with the offsets
 * of the level's fully connected layer, one GEMM).  From 8 channels on these are the
 * channels-last kernels, on one transposed copy of the level's map for both poolings; the
 * backward pass recomputes the first pooling and the offsets (not the second pooling:
 * its sample counts come from the grids) and adds both data gradients into one
 * channels-last buffer.
 */
#include <algorithm>
#include <type_traits>
#include <vector>

#include "dcn_cpu_kernels.h"
#include "dcn_fpn.h"

namespace dcn_ext {

namespace {

struct Maps {
  int N, C;
  std::vector<int> H, W;
};

Maps maps_of(const FPNParam& p, const std::vector<MXTensor>& in, int first) {
  Maps m;
  m.N = static_cast<int>(in[first].shape[0]);
  m.C = static_cast<int>(in[first].shape[1]);
  for (int l = 0; l < p.levels; ++l) {
    m.H.push_back(static_cast<int>(in[first + l].shape[2]));
    m.W.push_back(static_cast<int>(in[first + l].shape[3]));
  }
  return m;
}

/* ------------------------------------------------------------------------ */
/* plain: ROIPooling                                                         */
/* ------------------------------------------------------------------------ */

/*! \brief the P x P bins of each RoI on its level (the same for every channel) */
template <typename T>
std::vector<dcn::RoIMaxBin> roi_max_bins(const FPNParam& p, const Maps& m, const T* rois,
                                         int R, const int* level) {
  const int P = p.pooled, PP = P * P;
  std::vector<dcn::RoIMaxBin> bins(static_cast<size_t>(R) * PP);
  for (int r = 0; r < R; ++r) {
    const T* roi = rois + static_cast<int64_t>(r) * 5;
    const int l = level[r];
    const T scale = static_cast<T>(1.0 / p.strides[l]);
    for (int k = 0; k < PP; ++k)
      bins[static_cast<size_t>(r) * PP + k] =
          dcn::roi_max_bin(roi, scale, k / P, k % P, P, P, m.H[l], m.W[l]);
  }
  return bins;
}

template <typename T>
void roi_max_forward(const FPNParam& p, const Maps& m, const std::vector<const T*>& data,
                     const T* rois, int R, const int* level, T* out) {
  const int PP = p.pooled * p.pooled, C = m.C;
  const std::vector<dcn::RoIMaxBin> bins = roi_max_bins(p, m, rois, R, level);
#pragma omp parallel for schedule(static) if (static_cast<int64_t>(R) * C * PP > 4096)
  for (int64_t rc = 0; rc < static_cast<int64_t>(R) * C; ++rc) {
    const int r = static_cast<int>(rc / C), c = static_cast<int>(rc % C);
    const int l = level[r], W = m.W[l];
    const T* plane = data[l] + (static_cast<int64_t>(rois[r * 5]) * C + c) * m.H[l] * W;
    const dcn::RoIMaxBin* b = bins.data() + static_cast<size_t>(r) * PP;
    T* o = out + rc * PP;
    for (int k = 0; k < PP; ++k) {
      long arg;
      o[k] = dcn::roi_max_scan<T>(b[k], W, [&](long i) { return plane[i]; }, &arg);
    }
  }
}

/*! \brief the level of each of the R RoIs (fpn_rois_levels: an error names a bad row) */
template <typename T>
std::vector<int> rois_levels(const FPNParam& p, const Maps& m, const T* rois, int R) {
  std::vector<int> level(R);
  fpn_rois_levels(rois, R, m.N, p.levels, level.data());
  return level;
}

/*! \brief of[l]: the RoIs on level l, in RoI order */
std::vector<std::vector<int>> by_level(const FPNParam& p, const int* level, int R) {
  std::vector<std::vector<int>> of(p.levels);
  for (int r = 0; r < R; ++r) of[level[r]].push_back(r);
  return of;
}

/* one task per (level, channel): the gradient planes of a channel are written by one task */
template <typename T>
void roi_max_backward(const FPNParam& p, const Maps& m, const std::vector<const T*>& data,
                      const T* rois, int R, const int* level, const T* grad_out,
                      const std::vector<T*>& grad) {
  const int PP = p.pooled * p.pooled, C = m.C;
  for (int l = 0; l < p.levels; ++l)
    std::fill(grad[l], grad[l] + static_cast<int64_t>(m.N) * C * m.H[l] * m.W[l], T(0));
  const std::vector<std::vector<int>> of = by_level(p, level, R);
  const std::vector<dcn::RoIMaxBin> bins = roi_max_bins(p, m, rois, R, level);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t lc = 0; lc < static_cast<int64_t>(p.levels) * C; ++lc) {
    const int l = static_cast<int>(lc / C), c = static_cast<int>(lc % C);
    const int W = m.W[l];
    for (int r : of[l]) {
      const int64_t base = (static_cast<int64_t>(rois[r * 5]) * C + c) * m.H[l] * W;
      const T* plane = data[l] + base;
      const T* go = grad_out + (static_cast<int64_t>(r) * C + c) * PP;
      const dcn::RoIMaxBin* b = bins.data() + static_cast<size_t>(r) * PP;
      for (int k = 0; k < PP; ++k) {
        long arg;
        dcn::roi_max_scan<T>(b[k], W, [&](long i) { return plane[i]; }, &arg);
        if (arg >= 0) grad[l][base + arg] += go[k];
      }
    }
  }
}

/* ------------------------------------------------------------------------ */
/* deformable: per level DPSROI(no_trans) -> FC -> DPSROI(trans)             */
/* ------------------------------------------------------------------------ */

/*! \brief the forward intermediates of one level's RoIs */
template <typename T>
struct LevelPass {
  dcn::cpu::PoolGeom g1, g2;      // no_trans, trans
  std::vector<T> rois;            // (n, 5) gathered
  std::vector<T> t, cnt1;         // (n, C P P) no_trans pooling and its sample counts
  std::vector<T> off;             // (n, 2 P P) offsets (FC output)
  std::vector<T> pooled, cnt2;    // (n, C P P) result and its sample counts
  std::vector<char> ws;
  bool hwc = false;               // channels-last kernels (dpsroi_channels_last)
  std::vector<T> xt;              // (N, H W, C) the level's map, channels-last
};

/*! \brief the offset FC: off (n x O) = t (n x K) weight^T (weight: O x K) + bias */
template <typename T>
void fc_forward(int n, int O, int K, const T* t, const T* weight, const T* bias, T* off) {
  for (int i = 0; i < n; ++i) std::copy(bias, bias + O, off + static_cast<int64_t>(i) * O);
  dcn::cpu::gemm(false, true, n, O, K, T(1), t, K, weight, K, T(1), off, O);
}

/*! \brief the level's pooling; pooled: whether the second pooling's result is wanted (the
 *  backward pass needs only the first pooling and the offsets on the channels-last path) */
template <typename T>
void level_forward(const FPNParam& p, const Maps& m, int l, const T* data, const T* weight,
                   const T* bias, const T* rois, const std::vector<int>& idx, LevelPass<T>* s,
                   bool pooled = true) {
  const int n = static_cast<int>(idx.size());
  const int PP = p.pooled * p.pooled, K = PP * m.C, O = 2 * PP;
  dcn::cpu::PoolGeom g;
  g.N = m.N; g.C = m.C; g.H = m.H[l]; g.W = m.W[l]; g.R = n;
  g.output_dim = m.C; g.group = 1; g.pooled = p.pooled; g.part = p.pooled;
  g.samples = p.samples; g.num_classes = 1; g.no_trans = true;
  g.spatial_scale = 1.0 / p.strides[l]; g.trans_std = p.trans_std;
  s->g1 = g;
  g.no_trans = false;
  s->g2 = g;
  s->rois.resize(static_cast<size_t>(n) * 5);
  for (int i = 0; i < n; ++i)
    std::copy(rois + static_cast<int64_t>(idx[i]) * 5, rois + static_cast<int64_t>(idx[i]) * 5 + 5,
              s->rois.begin() + static_cast<int64_t>(i) * 5);
  const size_t vals = static_cast<size_t>(n) * K;
  s->off.resize(static_cast<size_t>(n) * O);
  s->hwc = dcn::cpu::dpsroi_channels_last(g);
  if (s->hwc) {  // one transposed map for both poolings
    s->t.resize(vals);
    s->xt.resize(static_cast<size_t>(m.N) * m.C * m.H[l] * m.W[l]);
    dcn::cpu::dpsroi_to_channels_last(g, data, s->xt.data());
    dcn::cpu::dpsroi_forward_hwc<T>(s->g1, s->xt.data(), s->rois.data(), nullptr, s->t.data(),
                                    nullptr);
    fc_forward(n, O, K, s->t.data(), weight, bias, s->off.data());
    if (!pooled) return;
    s->pooled.resize(vals);
    dcn::cpu::dpsroi_forward_hwc<T>(s->g2, s->xt.data(), s->rois.data(), s->off.data(),
                                    s->pooled.data(), nullptr);
    return;
  }
  s->t.resize(vals);
  s->cnt1.resize(vals);
  s->pooled.resize(vals);
  s->cnt2.resize(vals);
  const int threads = std::max(1, dcn::cpu::num_threads());
  const int64_t wsb = std::max(dcn::cpu::dpsroi_workspace_bytes<T>(s->g2, true, threads),
                               dcn::cpu::dpsroi_workspace_bytes<T>(s->g2, false, 1));
  s->ws.resize(static_cast<size_t>(wsb));
  dcn::cpu::dpsroi_forward<T>(s->g1, data, s->rois.data(), nullptr, s->t.data(), s->cnt1.data(),
                              s->ws.data());
  fc_forward(n, O, K, s->t.data(), weight, bias, s->off.data());
  dcn::cpu::dpsroi_forward<T>(s->g2, data, s->rois.data(), s->off.data(), s->pooled.data(),
                              s->cnt2.data(), s->ws.data());
}

/*! \brief the offset FC's backward: weight (O x K) = goff^T t, bias = column sums of goff
 *  (n x O), gradient of t (n x K, into *gt) = goff weight */
template <typename T>
void fc_backward(int n, int O, int K, const T* goff, const T* t, const T* weight, T* gweight,
                 T* gbias, std::vector<T>* gt) {
  dcn::cpu::gemm(true, false, O, K, n, T(1), goff, O, t, K, T(0), gweight, K);
  std::fill(gbias, gbias + O, T(0));
  for (int i = 0; i < n; ++i)
    for (int o = 0; o < O; ++o) gbias[o] += goff[static_cast<int64_t>(i) * O + o];
  gt->resize(static_cast<size_t>(n) * K);
  dcn::cpu::gemm(false, false, n, K, O, T(1), goff, O, weight, K, T(0), gt->data(), K);
}

template <typename T>
void level_backward(const FPNParam& p, const Maps& m, int l, const T* data, const T* weight,
                    const T* grad_out, LevelPass<T>* s, const std::vector<int>& idx, T* gdata,
                    T* gweight, T* gbias) {
  const int n = static_cast<int>(idx.size());
  const int PP = p.pooled * p.pooled, K = PP * m.C, O = 2 * PP;
  const int threads = std::max(1, dcn::cpu::num_threads());
  std::vector<T> go(static_cast<size_t>(n) * K);
  for (int i = 0; i < n; ++i)
    std::copy(grad_out + static_cast<int64_t>(idx[i]) * K,
              grad_out + static_cast<int64_t>(idx[i]) * K + K, go.begin() + static_cast<int64_t>(i) * K);
  std::vector<T> goff(static_cast<size_t>(n) * O);
  const int64_t map = static_cast<int64_t>(m.N) * m.C * m.H[l] * m.W[l];
  if (s->hwc) {
    // both poolings add their data gradient into one channels-last buffer
    std::vector<T> gxt(static_cast<size_t>(map), T(0));
    dcn::cpu::dpsroi_backward_hwc<T>(s->g2, go.data(), s->xt.data(), s->rois.data(),
                                     s->off.data(), gxt.data(), goff.data(), threads);
    fc_backward(n, O, K, goff.data(), s->t.data(), weight, gweight, gbias, &go);
    dcn::cpu::dpsroi_backward_hwc<T>(s->g1, go.data(), s->xt.data(), s->rois.data(), nullptr,
                                     gxt.data(), nullptr, threads);
    dcn::cpu::dpsroi_from_channels_last(s->g1, gxt.data(), gdata);
    return;
  }
  // second pooling: data gradient (written) and offset gradient
  dcn::cpu::dpsroi_backward<T>(s->g2, go.data(), data, s->rois.data(), s->off.data(),
                               s->cnt2.data(), gdata, goff.data(), s->ws.data(), threads);
  std::vector<T>& gt = s->pooled;  // reused: (n, K)
  fc_backward(n, O, K, goff.data(), s->t.data(), weight, gweight, gbias, &gt);
  // first pooling: its data gradient is added
  std::vector<T> gd1(static_cast<size_t>(map));
  dcn::cpu::dpsroi_backward<T>(s->g1, gt.data(), data, s->rois.data(), nullptr, s->cnt1.data(),
                               gd1.data(), nullptr, s->ws.data(), threads);
#pragma omp parallel for schedule(static) if (map > 65536)
  for (int64_t i = 0; i < map; ++i) gdata[i] += gd1[i];
}

}  // namespace

MXReturnValue fpn_forward_cpu(Op k, const Attrs& attrs, std::vector<MXTensor>* in,
                              std::vector<MXTensor>* out, const OpResource& res) {
  ThreadScope threads;
  return guarded(k, [&] {
    const FPNParam p = fpn_call(attrs, *in, *out, false);
    const Maps m = maps_of(p, *in, 0);
    MXTensor& rois = (*in)[fpn_rois_index(p)];
    const int R = static_cast<int>(rois.shape[0]);
    dispatch_cpu(k, rois.dtype, [&](auto& io) {
      typedef typename std::decay_t<decltype(io)>::type T;
      const T* r = io.in(rois);
      const std::vector<int> level = rois_levels(p, m, r, R);
      std::vector<const T*> data;
      for (int l = 0; l < p.levels; ++l) data.push_back(io.in((*in)[l]));
      T* o = io.out((*out)[0]);
      if (!p.deformable) return roi_max_forward<T>(p, m, data, r, R, level.data(), o);
      const int64_t K = static_cast<int64_t>(m.C) * p.pooled * p.pooled;
      const auto of = by_level(p, level.data(), R);
      for (int l = 0; l < p.levels; ++l) {
        if (of[l].empty()) continue;
        LevelPass<T> s;
        level_forward<T>(p, m, l, data[l], io.in((*in)[fpn_weight_index(p, l)]),
                         io.in((*in)[fpn_bias_index(p, l)]), r, of[l], &s);
        for (size_t i = 0; i < of[l].size(); ++i)
          std::copy(s.pooled.begin() + i * K, s.pooled.begin() + (i + 1) * K, o + of[l][i] * K);
      }
    });
  });
}

MXReturnValue fpn_backward_cpu(Op k, const Attrs& attrs, std::vector<MXTensor>* in,
                               std::vector<MXTensor>* out, const OpResource& res) {
  ThreadScope threads;
  return guarded(k, [&] {
    const FPNParam p = fpn_call(attrs, *in, *out, true);
    // inputs: [grad output, forward inputs (n_in), output]
    const int base = 1;
    const Maps m = maps_of(p, *in, base);
    MXTensor& rois = (*in)[base + fpn_rois_index(p)];
    const int R = static_cast<int>(rois.shape[0]);
    dispatch_cpu(k, rois.dtype, [&](auto& io) {
      typedef typename std::decay_t<decltype(io)>::type T;
      const T* r = io.in(rois);
      const std::vector<int> level = rois_levels(p, m, r, R);
      const T* go = io.in((*in)[0]);
      std::vector<const T*> data;
      std::vector<T*> gdata;
      for (int l = 0; l < p.levels; ++l) {
        data.push_back(io.in((*in)[base + l]));
        gdata.push_back(io.out((*out)[l]));
      }
      T* grois = io.out((*out)[fpn_rois_index(p)]);
      std::fill(grois, grois + (*out)[fpn_rois_index(p)].size(), T(0));  // no RoI gradient
      if (!p.deformable) return roi_max_backward<T>(p, m, data, r, R, level.data(), go, gdata);
      const auto of = by_level(p, level.data(), R);
      for (int l = 0; l < p.levels; ++l) {
        MXTensor& wt = (*in)[base + fpn_weight_index(p, l)];
        T* gw = io.out((*out)[fpn_weight_index(p, l)]);
        T* gb = io.out((*out)[fpn_bias_index(p, l)]);
        if (of[l].empty()) {
          std::fill(gdata[l], gdata[l] + (*out)[l].size(), T(0));
          std::fill(gw, gw + (*out)[fpn_weight_index(p, l)].size(), T(0));
          std::fill(gb, gb + (*out)[fpn_bias_index(p, l)].size(), T(0));
          continue;
        }
        const T* w = io.in(wt);
        LevelPass<T> s;
        level_forward<T>(p, m, l, data[l], w, io.in((*in)[base + fpn_bias_index(p, l)]), r,
                         of[l], &s, false);
        level_backward<T>(p, m, l, data[l], w, go, &s, of[l], gdata[l], gw, gb);
      }
    });
  });
}

}  // namespace dcn_ext
