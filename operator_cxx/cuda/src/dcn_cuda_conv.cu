/* dcn_cuda_conv.cu - C entry points of the CUDA deformable convolutions. */
#include "../dcn_cuda_backend.cuh"

using dcn::gpu::CudaBackend;

extern "C" {

int64_t dcn_cuda_conv_workspace_bytes(const dcn_conv_geom* g, int dtype) {
  return dcn::gpu::capi_conv_workspace_bytes(g, dtype);
}

int dcn_cuda_conv_forward(const dcn_conv_geom* g, int dtype, const void* data, const void* offset,
                          const void* mask, const void* weight, const void* bias, void* out,
                          void* ws, int64_t ws_bytes, void* stream) {
  return dcn::gpu::capi_conv_forward(CudaBackend(stream), g, dtype, data, offset, mask, weight,
                                     bias, out, ws, ws_bytes);
}

int dcn_cuda_conv_backward(const dcn_conv_geom* g, int dtype, const void* grad_out,
                           const void* data, const void* offset, const void* mask,
                           const void* weight, void* grad_data, void* grad_offset,
                           void* grad_mask, void* grad_weight, void* grad_bias, void* ws,
                           int64_t ws_bytes, void* stream) {
  return dcn::gpu::capi_conv_backward(CudaBackend(stream), g, dtype, grad_out, data, offset,
                                      mask, weight, grad_data, grad_offset, grad_mask,
                                      grad_weight, grad_bias, ws, ws_bytes);
}

}  // extern "C"
