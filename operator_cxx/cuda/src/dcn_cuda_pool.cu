/* dcn_cuda_pool.cu - C entry points of CUDA (deformable) PS RoI pooling. */
#include "../dcn_cuda_backend.cuh"

using dcn::gpu::CudaBackend;

extern "C" {

int dcn_cuda_pool_forward(const dcn_pool_geom* g, int dtype, const void* data, const void* rois,
                          const void* trans, void* out, void* top_count, void* stream) {
  return dcn::gpu::capi_pool_forward(CudaBackend(stream), g, dtype, data, rois, trans, out,
                                     top_count);
}

int64_t dcn_cuda_pool_workspace_bytes(const dcn_pool_geom* g, int dtype) {
  return dcn::gpu::capi_pool_workspace_bytes(g, dtype);
}

int dcn_cuda_pool_backward(const dcn_pool_geom* g, int dtype, const void* grad_out,
                           const void* data, const void* rois, const void* trans,
                           const void* top_count, void* grad_data, void* grad_trans, void* ws,
                           int64_t ws_bytes, void* stream) {
  return dcn::gpu::capi_pool_backward(CudaBackend(stream), g, dtype, grad_out, data, rois, trans,
                                      top_count, grad_data, grad_trans, ws, ws_bytes);
}

}  // extern "C"
