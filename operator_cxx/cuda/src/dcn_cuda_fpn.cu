/* dcn_cuda_fpn.cu - C entry points of CUDA FPN RoI pooling (dcn_cuda_fpn.h). */
#include "../dcn_cuda_backend.cuh"
#include "../dcn_cuda_fpn.h"

#define DCN_CUDA_ENTRIES_FPN
#include "../dcn_cuda_entries.h"
