/* dcn_cuda_fpn.cu - C entry points of CUDA FPN RoI pooling (dcn_cuda_fpn.h). */
#include "../dcn_cuda_backend.cuh"
#include "../dcn_cuda_fpn.h"

using dcn::gpu::CudaBackend;

extern "C" {

int64_t dcn_cuda_fpn_workspace_bytes(const dcn_fpn_geom* g, int dtype, int backward) {
  return dcn::gpu::capi_fpn_workspace_bytes(g, dtype, backward);
}

int dcn_cuda_fpn_forward(const dcn_fpn_geom* g, int dtype, const void* const* data,
                         const void* const* weight, const void* const* bias, const void* rois,
                         void* out, void* ws, int64_t ws_bytes, void* stream) {
  return dcn::gpu::capi_fpn_forward(CudaBackend(stream), g, dtype, data, weight, bias, rois, out,
                                    ws, ws_bytes);
}

int dcn_cuda_fpn_backward(const dcn_fpn_geom* g, int dtype, const void* grad_out,
                          const void* const* data, const void* const* weight,
                          const void* const* bias, const void* rois, void* const* grad_data,
                          void* const* grad_weight, void* const* grad_bias, void* ws,
                          int64_t ws_bytes, void* stream) {
  return dcn::gpu::capi_fpn_backward(CudaBackend(stream), g, dtype, grad_out, data, weight, bias,
                                     rois, grad_data, grad_weight, grad_bias, ws, ws_bytes);
}

}  // extern "C"
