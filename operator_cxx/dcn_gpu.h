/*
 * dcn_gpu.h - glue shared by the GPU callbacks (CUDA build only): the C entry
 * points of cuda/dcn_cuda_api.h, their error codes and dtype codes.
 */
#ifndef DCN_GPU_H_
#define DCN_GPU_H_

#include "cuda/dcn_cuda_api.h"
#include "dcn_ext.h"

namespace dcn_ext {

/*! \brief throws the CUDA library's message when rc is an error */
void cuda_ok(Op k, int rc);

/*! \brief DCN_F32 / DCN_F64 / DCN_F16 of an MXNet dtype; throws for others */
int cuda_dtype(Op k, int dtype);

/*! \brief a GPU workspace from MXNet's temporary space (one per call) */
void* gpu_workspace(Op k, int64_t bytes, const OpResource& res, const char* what);

inline void* ptr_or_null(std::vector<MXTensor>* v, int i) {
  return i < 0 ? nullptr : (*v)[i].data_ptr;
}

}  // namespace dcn_ext

#endif  // DCN_GPU_H_
