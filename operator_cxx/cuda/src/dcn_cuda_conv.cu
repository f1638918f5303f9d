/* dcn_cuda_conv.cu - C entry points of the CUDA deformable convolutions. */
#include "../dcn_cuda_backend.cuh"

#define DCN_CUDA_ENTRIES_CONV
#include "../dcn_cuda_entries.h"
