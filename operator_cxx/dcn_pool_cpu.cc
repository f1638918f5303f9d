/*
 * dcn_pool_cpu.cc - (deformable) PS RoI pooling and the fused 1x1 convolution +
 * pooling on the CPU (kernels: dcn_cpu_kernels.h).
 */
#include <algorithm>
#include <climits>
#include <type_traits>

#include "dcn_cpu_kernels.h"
#include "dcn_pool.h"

namespace dcn_ext {

namespace {

dcn::cpu::PoolGeom pool_geom(const PoolParam& p, const MXTensor& data, const MXTensor& rois,
                             const MXTensor* trans) {
  dcn::cpu::PoolGeom g;
  g.N = static_cast<int>(data.shape[0]);
  g.C = static_cast<int>(data.shape[1]);
  g.H = static_cast<int>(data.shape[2]);
  g.W = static_cast<int>(data.shape[3]);
  g.R = static_cast<int>(rois.shape[0]);
  g.output_dim = p.output_dim;
  g.group = p.group;
  g.pooled = p.pooled;
  g.part = p.part;
  g.samples = p.samples;
  g.no_trans = p.no_trans;
  g.num_classes = (p.no_trans || !trans) ? 1 : static_cast<int>(trans->shape[1] / 2);
  g.spatial_scale = p.spatial_scale;
  g.trans_std = p.trans_std;
  return g;
}

void* pool_workspace(Op k, int64_t bytes, const OpResource& res) {
  if (bytes >= INT_MAX) {
    std::ostringstream os;
    os << op_name(k) << ": the pooling workspace needs " << bytes
       << " bytes, more than the 2 GiB a single workspace allocation may have; pool fewer RoIs";
    throw AttrError{os.str()};
  }
  return cpu_workspace(k, bytes, res);
}

void fused_forward(Op k, const PoolParam& p, std::vector<MXTensor>* in,
                   std::vector<MXTensor>* out, const OpResource& res) {
  MXTensor& data = (*in)[0];
  MXTensor& rois = (*in)[1];
  const dcn::cpu::PoolGeom g = pool_geom(p, data, rois, nullptr);
  dispatch_cpu(k, data.dtype, [&](auto& io) {
    typedef typename std::decay_t<decltype(io)>::type T;
    const T* r = io.in(rois);
    check_rois(k, r, g.R, g.N);
    void* ws = pool_workspace(k, dcn::cpu::conv1x1_dpsroi_workspace_bytes<T>(g), res);
    dcn::cpu::conv1x1_dpsroi_forward<T>(g, io.in(data), r, io.in((*in)[2]), io.in((*in)[3]),
                                        io.out((*out)[0]), ws);
  });
}

}  // namespace

MXReturnValue pool_forward_cpu(Op k, const Attrs& attrs, std::vector<MXTensor>* in,
                               std::vector<MXTensor>* out, const OpResource& res) {
  ThreadScope threads;
  return guarded(k, [&] {
    const PoolParam p = pool_call(k, attrs, *in, *out, false);
    if (op_info(k).fused) return fused_forward(k, p, in, out, res);
    MXTensor& data = (*in)[0];
    MXTensor& rois = (*in)[1];
    MXTensor* trans = (p.deformable && !p.no_trans) ? &(*in)[2] : nullptr;
    const dcn::cpu::PoolGeom g = pool_geom(p, data, rois, trans);
    dispatch_cpu(k, data.dtype, [&](auto& io) {
      typedef typename std::decay_t<decltype(io)>::type T;
      const T* r = io.in(rois);
      check_rois(k, r, g.R, g.N);
      if (p.deformable) {
        void* ws = pool_workspace(k, dcn::cpu::dpsroi_workspace_bytes<T>(g, false, 1), res);
        dcn::cpu::dpsroi_forward<T>(g, io.in(data), r, trans ? io.in(*trans) : nullptr,
                                    io.out((*out)[0]), io.out((*out)[1]), ws);
      } else {
        dcn::cpu::psroi_forward<T>(g, io.in(data), r, io.out((*out)[0]));
      }
    });
  });
}

MXReturnValue pool_backward_cpu(Op k, const Attrs& attrs, std::vector<MXTensor>* in,
                                std::vector<MXTensor>* out, const OpResource& res) {
  ThreadScope threads;
  return guarded(k, [&] {
    const PoolParam p = pool_call(k, attrs, *in, *out, true);
    // inputs: [grad outputs (n_out), data, rois, (trans), outputs (n_out)]
    const int base = p.n_out;
    MXTensor& gout = (*in)[0];
    MXTensor& data = (*in)[base];
    MXTensor& rois = (*in)[base + 1];
    MXTensor* trans = (p.deformable && !p.no_trans) ? &(*in)[base + 2] : nullptr;
    const dcn::cpu::PoolGeom g = pool_geom(p, data, rois, trans);
    dispatch_cpu(k, data.dtype, [&](auto& io) {
      typedef typename std::decay_t<decltype(io)>::type T;
      const T* r = io.in(rois);
      check_rois(k, r, g.R, g.N);  // the kernels index data with them
      T* gr = io.out((*out)[1]);
      std::fill(gr, gr + (*out)[1].size(), T(0));  // rois get no gradient
      if (p.deformable) {
        MXTensor& count = (*in)[base + p.n_in + 1];
        const int threads = std::max(1, dcn::cpu::num_threads());
        void* ws = pool_workspace(k, dcn::cpu::dpsroi_workspace_bytes<T>(g, true, threads), res);
        dcn::cpu::dpsroi_backward<T>(g, io.in(gout), io.in(data), r,
                                     trans ? io.in(*trans) : nullptr, io.in(count),
                                     io.out((*out)[0]), trans ? io.out((*out)[2]) : nullptr, ws,
                                     threads);
      } else {
        dcn::cpu::psroi_backward<T>(g, io.in(gout), r, io.out((*out)[0]));
      }
    });
  });
}

}  // namespace dcn_ext
