/* dcn_gpu.cc - glue shared by the GPU callbacks (see dcn_gpu.h). */
#include "dcn_gpu.h"

#include <climits>
#include <sstream>

namespace dcn_ext {

void cuda_ok(Op k, int rc) {
  if (rc != 0) throw AttrError{op_name(k) + " (gpu): " + dcn_cuda_last_error()};
}

int cuda_dtype(Op k, int dtype) {
  switch (dtype) {
    case mxnet::ext::kFloat32: return DCN_F32;
    case mxnet::ext::kFloat64: return DCN_F64;
    case mxnet::ext::kFloat16: return DCN_F16;
    default: dtype_size(k, dtype);  // throws
  }
  return -1;
}

void* gpu_workspace(Op k, int64_t bytes, const OpResource& res, const char* what) {
  if (bytes >= INT_MAX) {
    std::ostringstream os;
    os << op_name(k) << ": " << what << " needs " << bytes
       << " bytes, more than the 2 GiB a single workspace allocation may have; reduce the "
          "input size";
    throw AttrError{os.str()};
  }
  void* ws = res.alloc_gpu(static_cast<int>(bytes));
  if (!ws) throw AttrError{op_name(k) + ": could not allocate the GPU workspace"};
  return ws;
}

}  // namespace dcn_ext
