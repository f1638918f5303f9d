/* dcn_fpn_gpu.cc - FPNROIPooling on the GPU (CUDA build only; cuda/dcn_cuda_fpn.h). */
#include <vector>

#include "dcn_fpn.h"
#include "dcn_gpu.h"

namespace dcn_ext {

namespace {

dcn_fpn_geom fpn_geom_gpu(const FPNParam& p, const std::vector<MXTensor>& in, int first) {
  dcn_fpn_geom g = {};
  g.levels = p.levels;
  g.N = static_cast<int>(in[first].shape[0]);
  g.C = static_cast<int>(in[first].shape[1]);
  for (int l = 0; l < p.levels; ++l) {
    g.H[l] = static_cast<int>(in[first + l].shape[2]);
    g.W[l] = static_cast<int>(in[first + l].shape[3]);
    g.spatial_scale[l] = 1.0 / p.strides[l];
  }
  g.R = static_cast<int>(in[first + fpn_rois_index(p)].shape[0]);
  g.pooled = p.pooled;
  g.samples = p.samples;
  g.deformable = p.deformable ? 1 : 0;
  g.trans_std = p.trans_std;
  return g;
}

/*! \brief the RoI rule of the CPU (fpn_rois_levels) on a host copy of the device RoIs */
void check_rois_gpu(const MXTensor& rois, int N, int levels, void* stream) {
  const Op k = Op::kFPNROIPooling;
  std::vector<char> raw(rois.size() * dtype_size(k, rois.dtype));
  cuda_ok(k, dcn_cuda_copy_to_host(raw.data(), rois.data_ptr,
                                   static_cast<int64_t>(raw.size()), stream));
  MXTensor host = rois;
  host.data_ptr = raw.data();
  const int R = static_cast<int>(rois.shape[0]);
  std::vector<int> level(R);
  dispatch_cpu(k, rois.dtype, [&](auto& io) { fpn_rois_levels(io.in(host), R, N, levels, level.data()); });
}

}  // namespace

MXReturnValue fpn_forward_gpu(Op k, const Attrs& attrs, std::vector<MXTensor>* in,
                              std::vector<MXTensor>* out, const OpResource& res) {
  return guarded(k, [&] {
    const FPNParam p = fpn_call(attrs, *in, *out, false);
    const dcn_fpn_geom g = fpn_geom_gpu(p, *in, 0);
    void* stream = res.get_cuda_stream();
    check_rois_gpu((*in)[fpn_rois_index(p)], g.N, p.levels, stream);
    const int code = cuda_dtype(k, (*in)[0].dtype);
    std::vector<const void*> data, weight, bias;
    for (int l = 0; l < p.levels; ++l) {
      data.push_back((*in)[l].data_ptr);
      if (p.deformable) {
        weight.push_back((*in)[fpn_weight_index(p, l)].data_ptr);
        bias.push_back((*in)[fpn_bias_index(p, l)].data_ptr);
      }
    }
    const int64_t bytes = dcn_cuda_fpn_workspace_bytes(&g, code, 0);
    if (bytes < 0) cuda_ok(k, 1);
    void* ws = p.deformable ? gpu_workspace(k, bytes, res, "the offset branch") : nullptr;
    cuda_ok(k, dcn_cuda_fpn_forward(&g, code, data.data(), p.deformable ? weight.data() : nullptr,
                                    p.deformable ? bias.data() : nullptr,
                                    (*in)[fpn_rois_index(p)].data_ptr, (*out)[0].data_ptr, ws,
                                    bytes, stream));
  });
}

MXReturnValue fpn_backward_gpu(Op k, const Attrs& attrs, std::vector<MXTensor>* in,
                               std::vector<MXTensor>* out, const OpResource& res) {
  return guarded(k, [&] {
    const FPNParam p = fpn_call(attrs, *in, *out, true);
    // inputs: [grad output, forward inputs (n_in), output]
    const int base = 1;
    const dcn_fpn_geom g = fpn_geom_gpu(p, *in, base);
    void* stream = res.get_cuda_stream();
    const int code = cuda_dtype(k, (*in)[base].dtype);
    std::vector<const void*> data, weight, bias;
    std::vector<void*> gdata, gweight, gbias;
    for (int l = 0; l < p.levels; ++l) {
      data.push_back((*in)[base + l].data_ptr);
      gdata.push_back((*out)[l].data_ptr);
      if (p.deformable) {
        weight.push_back((*in)[base + fpn_weight_index(p, l)].data_ptr);
        bias.push_back((*in)[base + fpn_bias_index(p, l)].data_ptr);
        gweight.push_back((*out)[fpn_weight_index(p, l)].data_ptr);
        gbias.push_back((*out)[fpn_bias_index(p, l)].data_ptr);
      }
    }
    const int64_t bytes = dcn_cuda_fpn_workspace_bytes(&g, code, 1);
    if (bytes < 0) cuda_ok(k, 1);
    void* ws = gpu_workspace(k, bytes, res, "the FPN pooling backward buffers");
    MXTensor& grois = (*out)[fpn_rois_index(p)];
    cuda_ok(k, dcn_cuda_zero(grois.data_ptr, grois.size() * dtype_size(k, grois.dtype), stream));
    cuda_ok(k, dcn_cuda_fpn_backward(&g, code, (*in)[0].data_ptr, data.data(),
                                     p.deformable ? weight.data() : nullptr,
                                     p.deformable ? bias.data() : nullptr,
                                     (*in)[base + fpn_rois_index(p)].data_ptr, gdata.data(),
                                     p.deformable ? gweight.data() : nullptr,
                                     p.deformable ? gbias.data() : nullptr, ws, bytes, stream));
  });
}

}  // namespace dcn_ext
