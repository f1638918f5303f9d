/*
 * dcn_cuda_backend.cuh - CUDA back end of dcn_cuda_impl.h: grid-stride
 * kernels running the element functors, cuBLAS GEMMs on the caller's stream.
 *
 * cuBLAS is resolved at run time (dlopen) from the library the host process
 * already uses (MXNet's or PyTorch's libcublas), else the newest one found, so
 * the build needs no cuBLAS headers and the library works with any cuBLAS
 * >= 11.  Handles are cached per (thread, device) and bound to the stream of
 * each call (cublasSetStream).
 */
#ifndef DCN_CUDA_BACKEND_CUH_
#define DCN_CUDA_BACKEND_CUH_

#include <cuda_runtime.h>

#include "dcn_cuda_impl.h"

namespace dcn {
namespace gpu {

inline void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    throw Error(std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) +
                ")");
  }
}

template <class F>
__global__ void __launch_bounds__(256) for_each_kernel(const F f, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    f(i);
}

/* GEMMs (cuBLAS semantics, column-major); defined in dcn_cuda_runtime.cu */
void cublas_gemm(cudaStream_t s, bool ta, bool tb, int m, int n, int k, float alpha,
                 const float* A, int lda, int64_t sA, const float* B, int ldb, int64_t sB,
                 float beta, float* C, int ldc, int64_t sC, int batch);
void cublas_gemm(cudaStream_t s, bool ta, bool tb, int m, int n, int k, double alpha,
                 const double* A, int lda, int64_t sA, const double* B, int ldb, int64_t sB,
                 double beta, double* C, int ldc, int64_t sC, int batch);

struct CudaBackend {
  cudaStream_t stream;
  explicit CudaBackend(void* s) : stream(static_cast<cudaStream_t>(s)) {}

  template <class F>
  void launch(const F& f, int64_t n) {
    if (n <= 0) return;
    const int threads = 256;
    int64_t blocks = (n + threads - 1) / threads;
    if (blocks > (int64_t(1) << 24)) blocks = int64_t(1) << 24;  // grid-stride beyond
    for_each_kernel<F><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(f, n);
    cuda_check(cudaGetLastError(), "kernel launch");
  }
  void zero(void* p, int64_t bytes) {
    if (bytes > 0) cuda_check(cudaMemsetAsync(p, 0, static_cast<size_t>(bytes), stream), "cudaMemsetAsync");
  }
  void copy_to_host(void* dst, const void* src, int64_t bytes) {
    if (bytes <= 0) return;
    cuda_check(cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyDeviceToHost,
                               stream), "cudaMemcpyAsync");
    cuda_check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  }
  void finish() { cuda_check(cudaGetLastError(), "CUDA"); }
  template <typename T>
  void gemm(bool ta, bool tb, int m, int n, int k, T alpha, const T* A, int lda, int64_t sA,
            const T* B, int ldb, int64_t sB, T beta, T* C, int ldc, int64_t sC, int batch) {
    cublas_gemm(stream, ta, tb, m, n, k, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch);
  }
};

/*! \brief the back end of the C entry points (dcn_cuda_entries.h) */
typedef CudaBackend EntryBackend;

}  // namespace gpu
}  // namespace dcn

#endif  // DCN_CUDA_BACKEND_CUH_
