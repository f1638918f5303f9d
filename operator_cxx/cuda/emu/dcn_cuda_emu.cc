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

namespace dcn {
namespace gpu {
namespace {

struct EmuBackend {
  explicit EmuBackend(void* /*stream*/ = nullptr) {}
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
      throw Error("gemm: leading dimension too small");
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

/*! \brief the back end of the C entry points (dcn_cuda_entries.h) */
typedef EmuBackend EntryBackend;

}  // namespace gpu
}  // namespace dcn

#define DCN_CUDA_ENTRIES_CONV
#define DCN_CUDA_ENTRIES_POOL
#define DCN_CUDA_ENTRIES_FPN
#include "../dcn_cuda_entries.h"

extern "C" {

int dcn_cuda_zero(void* ptr, int64_t bytes, void* stream) {
  if (bytes > 0) memset(ptr, 0, static_cast<size_t>(bytes));
  return 0;
}

int dcn_cuda_copy_to_host(void* host_dst, const void* device_src, int64_t bytes, void* stream) {
  dcn::gpu::EntryBackend().copy_to_host(host_dst, device_src, bytes);
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
