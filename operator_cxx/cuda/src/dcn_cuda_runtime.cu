/*
 * dcn_cuda_runtime.cu - cuBLAS binding (loaded at run time), GPU NMS and the
 * small C entry points shared by the CUDA libraries.
 */
#include <dlfcn.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <numeric>
#include <vector>

#include "../dcn_cuda_backend.cuh"

namespace dcn {
namespace gpu {
namespace {

/* ---- cuBLAS, resolved with dlopen (C ABI of cuBLAS >= 11) ---------------- */

typedef void* Handle;
typedef int (*CreateFn)(Handle*);
typedef int (*SetStreamFn)(Handle, cudaStream_t);
typedef int (*SetMathModeFn)(Handle, int);
typedef int (*SgemmFn)(Handle, int, int, int, int, int, const float*, const float*, int,
                       const float*, int, const float*, float*, int);
typedef int (*DgemmFn)(Handle, int, int, int, int, int, const double*, const double*, int,
                       const double*, int, const double*, double*, int);
typedef int (*SgemmBatchedFn)(Handle, int, int, int, int, int, const float*, const float*, int,
                              long long, const float*, int, long long, const float*, float*, int,
                              long long, int);
typedef int (*DgemmBatchedFn)(Handle, int, int, int, int, int, const double*, const double*,
                              int, long long, const double*, int, long long, const double*,
                              double*, int, long long, int);

enum { kOpN = 0, kOpT = 1, kDefaultMath = 0, kTF32Math = 3 };

struct Cublas {
  CreateFn create = nullptr;
  SetStreamFn set_stream = nullptr;
  SetMathModeFn set_math_mode = nullptr;
  SgemmFn sgemm = nullptr;
  DgemmFn dgemm = nullptr;
  SgemmBatchedFn sgemm_batched = nullptr;
  DgemmBatchedFn dgemm_batched = nullptr;
  std::string error;
};

std::atomic<int> g_allow_tf32(0);

const Cublas& cublas() {
  static Cublas lib;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* names[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so.11",
                           "libcublas.so"};
    void* h = nullptr;
    const char* env = getenv("DCN_CUBLAS_LIBRARY");
    if (env && *env) h = dlopen(env, RTLD_NOW | RTLD_GLOBAL);
    // prefer a cuBLAS the process has already loaded (MXNet's, PyTorch's)
    for (const char* n : names)
      if (!h) h = dlopen(n, RTLD_NOW | RTLD_NOLOAD);
    for (const char* n : names)
      if (!h) h = dlopen(n, RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
      lib.error = "cannot load cuBLAS (libcublas.so.13/.12/.11); install the CUDA toolkit's "
                  "cuBLAS or set DCN_CUBLAS_LIBRARY to its path";
      return;
    }
    lib.create = reinterpret_cast<CreateFn>(dlsym(h, "cublasCreate_v2"));
    lib.set_stream = reinterpret_cast<SetStreamFn>(dlsym(h, "cublasSetStream_v2"));
    lib.set_math_mode = reinterpret_cast<SetMathModeFn>(dlsym(h, "cublasSetMathMode"));
    lib.sgemm = reinterpret_cast<SgemmFn>(dlsym(h, "cublasSgemm_v2"));
    lib.dgemm = reinterpret_cast<DgemmFn>(dlsym(h, "cublasDgemm_v2"));
    lib.sgemm_batched = reinterpret_cast<SgemmBatchedFn>(dlsym(h, "cublasSgemmStridedBatched"));
    lib.dgemm_batched = reinterpret_cast<DgemmBatchedFn>(dlsym(h, "cublasDgemmStridedBatched"));
    if (!lib.create || !lib.set_stream || !lib.set_math_mode || !lib.sgemm || !lib.dgemm ||
        !lib.sgemm_batched || !lib.dgemm_batched)
      lib.error = "the loaded cuBLAS lacks a required function (cuBLAS >= 11 needed)";
  });
  if (!lib.error.empty()) throw Error(lib.error);
  return lib;
}

/*! \brief cuBLAS handle of this thread for the current device, bound to s */
Handle handle_for(cudaStream_t s, bool fp32) {
  const Cublas& lib = cublas();
  static thread_local std::map<int, Handle> handles;
  int dev = 0;
  cuda_check(cudaGetDevice(&dev), "cudaGetDevice");
  Handle& h = handles[dev];
  if (!h) {
    const int st = lib.create(&h);
    if (st != 0) {
      h = nullptr;
      throw Error("cublasCreate failed with status " + std::to_string(st));
    }
  }
  int st = lib.set_stream(h, s);
  if (st == 0)
    st = lib.set_math_mode(h, fp32 && g_allow_tf32.load() ? kTF32Math : kDefaultMath);
  if (st != 0) throw Error("cublasSetStream/SetMathMode failed with status " + std::to_string(st));
  return h;
}

void gemm_status(int st) {
  if (st != 0) throw Error("cuBLAS GEMM failed with status " + std::to_string(st));
}

/*! \brief the cuBLAS GEMMs of element type T (one, strided batched); TF32 math for float */
template <typename T>
struct GemmOf;
template <>
struct GemmOf<float> {
  static constexpr bool fp32 = true;
  static SgemmFn one(const Cublas& lib) { return lib.sgemm; }
  static SgemmBatchedFn batched(const Cublas& lib) { return lib.sgemm_batched; }
};
template <>
struct GemmOf<double> {
  static constexpr bool fp32 = false;
  static DgemmFn one(const Cublas& lib) { return lib.dgemm; }
  static DgemmBatchedFn batched(const Cublas& lib) { return lib.dgemm_batched; }
};

template <typename T>
void gemm_any(cudaStream_t s, bool ta, bool tb, int m, int n, int k, T alpha, const T* A, int lda,
              int64_t sA, const T* B, int ldb, int64_t sB, T beta, T* C, int ldc, int64_t sC,
              int batch) {
  if (m <= 0 || n <= 0 || batch <= 0) return;
  const Cublas& lib = cublas();
  Handle h = handle_for(s, GemmOf<T>::fp32);
  if (batch == 1)
    gemm_status(GemmOf<T>::one(lib)(h, ta ? kOpT : kOpN, tb ? kOpT : kOpN, m, n, k, &alpha, A,
                                    lda, B, ldb, &beta, C, ldc));
  else
    gemm_status(GemmOf<T>::batched(lib)(h, ta ? kOpT : kOpN, tb ? kOpT : kOpN, m, n, k, &alpha,
                                        A, lda, sA, B, ldb, sB, &beta, C, ldc, sC, batch));
}

}  // namespace

void cublas_gemm(cudaStream_t s, bool ta, bool tb, int m, int n, int k, float alpha,
                 const float* A, int lda, int64_t sA, const float* B, int ldb, int64_t sB,
                 float beta, float* C, int ldc, int64_t sC, int batch) {
  gemm_any(s, ta, tb, m, n, k, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch);
}

void cublas_gemm(cudaStream_t s, bool ta, bool tb, int m, int n, int k, double alpha,
                 const double* A, int lda, int64_t sA, const double* B, int ldb, int64_t sB,
                 double beta, double* C, int ldc, int64_t sC, int batch) {
  gemm_any(s, ta, tb, m, n, k, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch);
}

/* ---- NMS: IoU bitmask on the GPU, greedy reduction on the host ----------- */

namespace {

constexpr int kNmsBlock = 64;  // boxes per block = bits per mask word

/* IoU with the legacy +1 pixel convention, rounded exactly as the float32 CPU
 * NMS computes it (no fused multiply-add). */
__device__ __forceinline__ float nms_iou(const float* a, const float* b) {
  const float xx1 = fmaxf(a[0], b[0]), yy1 = fmaxf(a[1], b[1]);
  const float xx2 = fminf(a[2], b[2]), yy2 = fminf(a[3], b[3]);
  const float w = fmaxf(0.f, __fadd_rn(__fsub_rn(xx2, xx1), 1.f));
  const float h = fmaxf(0.f, __fadd_rn(__fsub_rn(yy2, yy1), 1.f));
  const float inter = __fmul_rn(w, h);
  const float area_a = __fmul_rn(__fadd_rn(__fsub_rn(a[2], a[0]), 1.f),
                                 __fadd_rn(__fsub_rn(a[3], a[1]), 1.f));
  const float area_b = __fmul_rn(__fadd_rn(__fsub_rn(b[2], b[0]), 1.f),
                                 __fadd_rn(__fsub_rn(b[3], b[1]), 1.f));
  return __fdiv_rn(inter, __fsub_rn(__fadd_rn(area_a, area_b), inter));
}

/* mask[i * col_blocks + cb] bit j: box i suppresses box cb*64 + j (j > i) */
__global__ void __launch_bounds__(kNmsBlock)
    nms_mask_kernel(int n, double thresh, const float* boxes, unsigned long long* mask) {
  const int rb = blockIdx.y, cb = blockIdx.x;
  if (cb < rb) return;  // never read by the reduction
  const int col_blocks = (n + kNmsBlock - 1) / kNmsBlock;
  const int rows = min(n - rb * kNmsBlock, kNmsBlock);
  const int cols = min(n - cb * kNmsBlock, kNmsBlock);
  __shared__ float sb[kNmsBlock * 4];
  if (threadIdx.x < cols) {
    for (int k = 0; k < 4; ++k)
      sb[threadIdx.x * 4 + k] = boxes[(cb * kNmsBlock + threadIdx.x) * 5 + k];
  }
  __syncthreads();
  if (threadIdx.x >= rows) return;
  const int cur = rb * kNmsBlock + threadIdx.x;
  float me[4];
  for (int k = 0; k < 4; ++k) me[k] = boxes[cur * 5 + k];
  unsigned long long bits = 0;
  for (int j = (rb == cb ? threadIdx.x + 1 : 0); j < cols; ++j)
    if (static_cast<double>(nms_iou(me, sb + j * 4)) >= thresh) bits |= 1ULL << j;
  mask[static_cast<int64_t>(cur) * col_blocks + cb] = bits;
}

struct DeviceGuard {
  int prev = -1;
  explicit DeviceGuard(int dev) {
    cuda_check(cudaGetDevice(&prev), "cudaGetDevice");
    cuda_check(cudaSetDevice(dev), "cudaSetDevice");
  }
  ~DeviceGuard() {
    if (prev >= 0) cudaSetDevice(prev);
  }
};

template <typename T>
struct DeviceBuffer {
  T* p = nullptr;
  explicit DeviceBuffer(size_t n) { cuda_check(cudaMalloc(&p, n * sizeof(T)), "cudaMalloc"); }
  ~DeviceBuffer() { if (p) cudaFree(p); }
};

void nms(const float* boxes, int n, double thresh, int device_id, int* keep, int* num_kept) {
  *num_kept = 0;
  if (n <= 0) return;
  int count = 0;
  cuda_check(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  if (device_id < 0 || device_id >= count)
    throw Error("device_id " + std::to_string(device_id) + " is not a visible CUDA device (" +
                std::to_string(count) + " visible)");
  const int col_blocks = (n + kNmsBlock - 1) / kNmsBlock;
  if (col_blocks > 65535) throw Error("too many boxes for GPU NMS");
  // highest score first, ties in input order
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return boxes[a * 5 + 4] > boxes[b * 5 + 4]; });
  std::vector<float> sorted(static_cast<size_t>(n) * 5);
  for (int i = 0; i < n; ++i)
    std::copy(boxes + static_cast<size_t>(order[i]) * 5, boxes + static_cast<size_t>(order[i]) * 5 + 5,
              sorted.begin() + static_cast<size_t>(i) * 5);
  DeviceGuard guard(device_id);
  DeviceBuffer<float> d_boxes(sorted.size());
  const size_t words = static_cast<size_t>(n) * col_blocks;
  DeviceBuffer<unsigned long long> d_mask(words);
  cuda_check(cudaMemcpy(d_boxes.p, sorted.data(), sorted.size() * sizeof(float),
                        cudaMemcpyHostToDevice), "cudaMemcpy");
  nms_mask_kernel<<<dim3(col_blocks, col_blocks), kNmsBlock>>>(n, thresh, d_boxes.p, d_mask.p);
  cuda_check(cudaGetLastError(), "NMS kernel launch");
  std::vector<unsigned long long> mask(words);
  cuda_check(cudaMemcpy(mask.data(), d_mask.p, words * sizeof(unsigned long long),
                        cudaMemcpyDeviceToHost), "cudaMemcpy");
  std::vector<unsigned long long> removed(col_blocks, 0ULL);
  int kept = 0;
  for (int i = 0; i < n; ++i) {
    const int blk = i / kNmsBlock, bit = i % kNmsBlock;
    if (removed[blk] & (1ULL << bit)) continue;
    keep[kept++] = order[i];
    const unsigned long long* row = mask.data() + static_cast<size_t>(i) * col_blocks;
    for (int j = blk; j < col_blocks; ++j) removed[j] |= row[j];
  }
  *num_kept = kept;
}

}  // namespace
}  // namespace gpu
}  // namespace dcn

extern "C" {

int dcn_cuda_nms(const float* boxes, int n, double thresh, int device_id, int* keep,
                 int* num_kept) {
  return dcn::gpu::capi_guard("GPU NMS", [&] {
    if (n > 0 && (!boxes || !keep || !num_kept)) throw dcn::gpu::Error("null pointer");
    if (!num_kept) throw dcn::gpu::Error("null pointer");
    dcn::gpu::nms(boxes, n, thresh, device_id, keep, num_kept);
  });
}

int dcn_cuda_zero(void* ptr, int64_t bytes, void* stream) {
  return dcn::gpu::capi_guard("zero fill", [&] {
    dcn::gpu::CudaBackend(stream).zero(ptr, bytes);
  });
}

int dcn_cuda_copy_to_host(void* host_dst, const void* device_src, int64_t bytes, void* stream) {
  return dcn::gpu::capi_guard("copy to host", [&] {
    dcn::gpu::CudaBackend(stream).copy_to_host(host_dst, device_src, bytes);
  });
}

int dcn_cuda_device_count(void) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

int dcn_cuda_set_allow_tf32(int allow) { return dcn::gpu::g_allow_tf32.exchange(allow ? 1 : 0); }

const char* dcn_cuda_last_error(void) { return dcn::gpu::last_error().c_str(); }

}  // extern "C"
