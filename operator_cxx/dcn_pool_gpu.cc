/* dcn_pool_gpu.cc - (deformable) PS RoI pooling on the GPU (CUDA build only). */
#include <vector>

#include "dcn_gpu.h"
#include "dcn_pool.h"

namespace dcn_ext {

namespace {

dcn_pool_geom pool_geom_gpu(const PoolParam& p, const MXTensor& data, const MXTensor& rois,
                            const MXTensor* trans) {
  const int num_classes = (p.no_trans || !trans) ? 1 : static_cast<int>(trans->shape[1] / 2);
  dcn_pool_geom g = {static_cast<int>(data.shape[0]), static_cast<int>(data.shape[1]),
                     static_cast<int>(data.shape[2]), static_cast<int>(data.shape[3]),
                     static_cast<int>(rois.shape[0]), p.output_dim, p.group, p.pooled, p.part,
                     p.samples, num_classes, p.no_trans ? 1 : 0, p.deformable ? 1 : 0,
                     p.spatial_scale, p.trans_std};
  return g;
}

/*! \brief the RoI rule of the CPU (check_rois) on a host copy of the device RoIs */
void check_rois_gpu(Op k, const MXTensor& rois, int N, void* stream) {
  const int64_t n = rois.size();
  std::vector<char> raw(n * dtype_size(k, rois.dtype));
  cuda_ok(k, dcn_cuda_copy_to_host(raw.data(), rois.data_ptr,
                                   static_cast<int64_t>(raw.size()), stream));
  MXTensor host = rois;
  host.data_ptr = raw.data();
  dispatch_cpu(k, rois.dtype, [&](auto& io) {
    check_rois(k, io.in(host), static_cast<int>(rois.shape[0]), N);
  });
}

}  // namespace

/* The RoIs live in device memory: the forward pass checks a host copy (one small
 * copy, which waits for the stream); the kernels never read for a RoI outside
 * the batch either (dcn_cuda_api.h). */
MXReturnValue pool_forward_gpu(Op k, const Attrs& attrs, std::vector<MXTensor>* in,
                               std::vector<MXTensor>* out, const OpResource& res) {
  return guarded(k, [&] {
    const PoolParam p = pool_call(k, attrs, *in, *out, false);
    MXTensor& data = (*in)[0];
    const MXTensor* trans = (p.deformable && !p.no_trans) ? &(*in)[2] : nullptr;
    const dcn_pool_geom g = pool_geom_gpu(p, data, (*in)[1], trans);
    check_rois_gpu(k, (*in)[1], g.N, res.get_cuda_stream());
    cuda_ok(k, dcn_cuda_pool_forward(&g, cuda_dtype(k, data.dtype), data.data_ptr,
                                     (*in)[1].data_ptr, trans ? trans->data_ptr : nullptr,
                                     (*out)[0].data_ptr, p.deformable ? (*out)[1].data_ptr : nullptr,
                                     res.get_cuda_stream()));
  });
}

MXReturnValue pool_backward_gpu(Op k, const Attrs& attrs, std::vector<MXTensor>* in,
                                std::vector<MXTensor>* out, const OpResource& res) {
  return guarded(k, [&] {
    const PoolParam p = pool_call(k, attrs, *in, *out, true);
    // inputs: [grad outputs (n_out), data, rois, (trans), outputs (n_out)]
    const int base = p.n_out;
    MXTensor& data = (*in)[base];
    MXTensor& rois = (*in)[base + 1];
    MXTensor* trans = (p.deformable && !p.no_trans) ? &(*in)[base + 2] : nullptr;
    const dcn_pool_geom g = pool_geom_gpu(p, data, rois, trans);
    const int code = cuda_dtype(k, data.dtype);
    void* stream = res.get_cuda_stream();
    const int64_t bytes = dcn_cuda_pool_workspace_bytes(&g, code);
    if (bytes < 0) cuda_ok(k, 1);
    void* ws = bytes > 0 ? gpu_workspace(k, bytes, res, "the float32 gradient buffers") : nullptr;
    cuda_ok(k, dcn_cuda_zero((*out)[1].data_ptr, (*out)[1].size() * dtype_size(k, data.dtype),
                             stream));
    cuda_ok(k, dcn_cuda_pool_backward(&g, code, (*in)[0].data_ptr, data.data_ptr, rois.data_ptr,
                                      trans ? trans->data_ptr : nullptr,
                                      p.deformable ? (*in)[base + p.n_in + 1].data_ptr : nullptr,
                                      (*out)[0].data_ptr, trans ? (*out)[2].data_ptr : nullptr,
                                      ws, bytes, stream));
  });
}

}  // namespace dcn_ext
