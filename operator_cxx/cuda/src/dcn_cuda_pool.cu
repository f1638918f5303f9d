/* dcn_cuda_pool.cu - C entry points of CUDA (deformable) PS RoI pooling. */
#include "../dcn_cuda_backend.cuh"

#define DCN_CUDA_ENTRIES_POOL
#include "../dcn_cuda_entries.h"
