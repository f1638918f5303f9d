/*
 * dcn_cuda_entries.h - the C entry points of dcn_cuda_api.h for the operators, written once
 * for both back ends.  The including file defines dcn::gpu::EntryBackend (the back end, built
 * from the stream argument: CudaBackend in src/, the host emulation in emu/) and selects
 * the operators by defining, before the include,
 *   DCN_CUDA_ENTRIES_CONV   dcn_cuda_conv_*  (deformable convolutions)
 *   DCN_CUDA_ENTRIES_POOL   dcn_cuda_pool_*  ((deformable) PS RoI pooling)
 *   DCN_CUDA_ENTRIES_FPN    dcn_cuda_fpn_*   (FPN RoI pooling; needs dcn_cuda_fpn.h)
 * No include guard: one inclusion per translation unit.
 */
#include "dcn_cuda_impl.h"

extern "C" {

#ifdef DCN_CUDA_ENTRIES_CONV
int64_t dcn_cuda_conv_workspace_bytes(const dcn_conv_geom* g, int dtype) {
  return dcn::gpu::capi_conv_workspace_bytes(g, dtype);
}

int dcn_cuda_conv_forward(const dcn_conv_geom* g, int dtype, const void* data, const void* offset,
                          const void* mask, const void* weight, const void* bias, void* out,
                          void* ws, int64_t ws_bytes, void* stream) {
  return dcn::gpu::capi_conv_forward(dcn::gpu::EntryBackend(stream), g, dtype, data, offset, mask,
                                     weight, bias, out, ws, ws_bytes);
}

int dcn_cuda_conv_backward(const dcn_conv_geom* g, int dtype, const void* grad_out,
                           const void* data, const void* offset, const void* mask,
                           const void* weight, void* grad_data, void* grad_offset,
                           void* grad_mask, void* grad_weight, void* grad_bias, void* ws,
                           int64_t ws_bytes, void* stream) {
  return dcn::gpu::capi_conv_backward(dcn::gpu::EntryBackend(stream), g, dtype, grad_out, data,
                                      offset, mask, weight, grad_data, grad_offset, grad_mask,
                                      grad_weight, grad_bias, ws, ws_bytes);
}
#endif  // DCN_CUDA_ENTRIES_CONV

#ifdef DCN_CUDA_ENTRIES_POOL
int dcn_cuda_pool_forward(const dcn_pool_geom* g, int dtype, const void* data, const void* rois,
                          const void* trans, void* out, void* top_count, void* stream) {
  return dcn::gpu::capi_pool_forward(dcn::gpu::EntryBackend(stream), g, dtype, data, rois, trans,
                                     out, top_count);
}

int64_t dcn_cuda_pool_workspace_bytes(const dcn_pool_geom* g, int dtype) {
  return dcn::gpu::capi_pool_workspace_bytes(g, dtype);
}

int dcn_cuda_pool_backward(const dcn_pool_geom* g, int dtype, const void* grad_out,
                           const void* data, const void* rois, const void* trans,
                           const void* top_count, void* grad_data, void* grad_trans, void* ws,
                           int64_t ws_bytes, void* stream) {
  return dcn::gpu::capi_pool_backward(dcn::gpu::EntryBackend(stream), g, dtype, grad_out, data,
                                      rois, trans, top_count, grad_data, grad_trans, ws,
                                      ws_bytes);
}
#endif  // DCN_CUDA_ENTRIES_POOL

#ifdef DCN_CUDA_ENTRIES_FPN
int64_t dcn_cuda_fpn_workspace_bytes(const dcn_fpn_geom* g, int dtype, int backward) {
  return dcn::gpu::capi_fpn_workspace_bytes(g, dtype, backward);
}

int dcn_cuda_fpn_forward(const dcn_fpn_geom* g, int dtype, const void* const* data,
                         const void* const* weight, const void* const* bias, const void* rois,
                         void* out, void* ws, int64_t ws_bytes, void* stream) {
  return dcn::gpu::capi_fpn_forward(dcn::gpu::EntryBackend(stream), g, dtype, data, weight, bias,
                                    rois, out, ws, ws_bytes);
}

int dcn_cuda_fpn_backward(const dcn_fpn_geom* g, int dtype, const void* grad_out,
                          const void* const* data, const void* const* weight,
                          const void* const* bias, const void* rois, void* const* grad_data,
                          void* const* grad_weight, void* const* grad_bias, void* ws,
                          int64_t ws_bytes, void* stream) {
  return dcn::gpu::capi_fpn_backward(dcn::gpu::EntryBackend(stream), g, dtype, grad_out, data,
                                     weight, bias, rois, grad_data, grad_weight, grad_bias, ws,
                                     ws_bytes);
}
#endif  // DCN_CUDA_ENTRIES_FPN

}  // extern "C"
