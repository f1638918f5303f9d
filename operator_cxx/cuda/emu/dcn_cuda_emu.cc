/*
 * dcn_cuda_emu.cc - host emulation of the CUDA back end of dcn_cuda_impl.h.
 *
 * Builds the conv / pool entry points of dcn_cuda_api.h on ordinary host
 * memory: element functors run in a sequential loop (atomics become plain
 * adds) and GEMMs implement cuBLAS's column-major contract literally.  It lets
 * the GPU code path (indexing, chunking, GEMM arguments) be tested against the
 * CPU operators on machines without a GPU; it is not meant to be fast.
 *
 *   g++ -std=c++17 -O2 -shared -fPIC dcn_cuda_emu.cc -o libdcn_cuda_emu.so
 */
#include <string.h>

#include "../dcn_cuda_fpn.h"
#include "../dcn_cuda_impl.h"

namespace {

struct EmuBackend {
  template <class F>
  void launch(const F& f, int64_t n) {
    for (int64_t i = 0; i < n; ++i) f(i);
  }
  void zero(void* p, int64_t bytes) { memset(p, 0, static_cast<size_t>(bytes)); }
  void copy_to_host(void* dst, const void* src, int64_t bytes) {
    if (bytes > 0) memcpy(dst, src, static_cast<size_t>(bytes));
  }
  void finish() {}
  /* C = alpha * op(A) op(B) + beta * C, column-major, as cublas<t>gemmStridedBatched */
  template <typename T>
  void gemm(bool ta, bool tb, int m, int n, int k, T alpha, const T* A, int lda, int64_t sA,
            const T* B, int ldb, int64_t sB, T beta, T* C, int ldc, int64_t sC, int batch) {
    if ((ta ? lda < k : lda < m) || (tb ? ldb < n : ldb < k) || ldc < m)
      throw dcn::gpu::Error("gemm: leading dimension too small");
    for (int q = 0; q < batch; ++q) {
      const T* a = A + q * sA;
      const T* b = B + q * sB;
      T* c = C + q * sC;
      for (int j = 0; j < n; ++j) {
        for (int i = 0; i < m; ++i) {
          T s = T(0);
          for (int p = 0; p < k; ++p) {
            const T av = ta ? a[static_cast<int64_t>(i) * lda + p] : a[static_cast<int64_t>(p) * lda + i];
            const T bv = tb ? b[static_cast<int64_t>(p) * ldb + j] : b[static_cast<int64_t>(j) * ldb + p];
            s += av * bv;
          }
          T* cij = c + static_cast<int64_t>(j) * ldc + i;
          *cij = beta == T(0) ? alpha * s : alpha * s + beta * *cij;
        }
      }
    }
  }
};

}  // namespace

extern "C" {

int64_t dcn_cuda_conv_workspace_bytes(const dcn_conv_geom* g, int dtype) {
  return dcn::gpu::capi_conv_workspace_bytes(g, dtype);
}

int dcn_cuda_conv_forward(const dcn_conv_geom* g, int dtype, const void* data, const void* offset,
                          const void* mask, const void* weight, const void* bias, void* out,
                          void* ws, int64_t ws_bytes, void* stream) {
  return dcn::gpu::capi_conv_forward(EmuBackend(), g, dtype, data, offset, mask, weight, bias,
                                     out, ws, ws_bytes);
}

int dcn_cuda_conv_backward(const dcn_conv_geom* g, int dtype, const void* grad_out,
                           const void* data, const void* offset, const void* mask,
                           const void* weight, void* grad_data, void* grad_offset,
                           void* grad_mask, void* grad_weight, void* grad_bias, void* ws,
                           int64_t ws_bytes, void* stream) {
  return dcn::gpu::capi_conv_backward(EmuBackend(), g, dtype, grad_out, data, offset, mask,
                                      weight, grad_data, grad_offset, grad_mask, grad_weight,
                                      grad_bias, ws, ws_bytes);
}

int dcn_cuda_pool_forward(const dcn_pool_geom* g, int dtype, const void* data, const void* rois,
                          const void* trans, void* out, void* top_count, void* stream) {
  return dcn::gpu::capi_pool_forward(EmuBackend(), g, dtype, data, rois, trans, out, top_count);
}

int64_t dcn_cuda_pool_workspace_bytes(const dcn_pool_geom* g, int dtype) {
  return dcn::gpu::capi_pool_workspace_bytes(g, dtype);
}

int dcn_cuda_pool_backward(const dcn_pool_geom* g, int dtype, const void* grad_out,
                           const void* data, const void* rois, const void* trans,
                           const void* top_count, void* grad_data, void* grad_trans, void* ws,
                           int64_t ws_bytes, void* stream) {
  return dcn::gpu::capi_pool_backward(EmuBackend(), g, dtype, grad_out, data, rois, trans,
                                      top_count, grad_data, grad_trans, ws, ws_bytes);
}

int64_t dcn_cuda_fpn_workspace_bytes(const dcn_fpn_geom* g, int dtype, int backward) {
  return dcn::gpu::capi_fpn_workspace_bytes(g, dtype, backward);
}

int dcn_cuda_fpn_forward(const dcn_fpn_geom* g, int dtype, const void* const* data,
                         const void* const* weight, const void* const* bias, const void* rois,
                         void* out, void* ws, int64_t ws_bytes, void* stream) {
  return dcn::gpu::capi_fpn_forward(EmuBackend(), g, dtype, data, weight, bias, rois, out, ws,
                                    ws_bytes);
}

int dcn_cuda_fpn_backward(const dcn_fpn_geom* g, int dtype, const void* grad_out,
                          const void* const* data, const void* const* weight,
                          const void* const* bias, const void* rois, void* const* grad_data,
                          void* const* grad_weight, void* const* grad_bias, void* ws,
                          int64_t ws_bytes, void* stream) {
  return dcn::gpu::capi_fpn_backward(EmuBackend(), g, dtype, grad_out, data, weight, bias, rois,
                                     grad_data, grad_weight, grad_bias, ws, ws_bytes);
}

int dcn_cuda_zero(void* ptr, int64_t bytes, void* stream) {
  if (bytes > 0) memset(ptr, 0, static_cast<size_t>(bytes));
  return 0;
}

int dcn_cuda_copy_to_host(void* host_dst, const void* device_src, int64_t bytes, void* stream) {
  EmuBackend().copy_to_host(host_dst, device_src, bytes);
  return 0;
}

/* test hooks of the emulation: the binary16 conversions the host code uses */
void dcn_emu_half_to_float(const uint16_t* src, float* dst, int64_t n) {
  dcn::half_to_float(src, dst, n);
}

void dcn_emu_float_to_half(const float* src, uint16_t* dst, int64_t n) {
  dcn::float_to_half(src, dst, n);
}

const char* dcn_cuda_last_error(void) { return dcn::gpu::last_error().c_str(); }

}  // extern "C"
