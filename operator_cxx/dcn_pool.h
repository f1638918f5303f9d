/*
 * dcn_pool.h - DeformablePSROIPooling, PSROIPooling and the fused
 * Conv1x1DeformablePSROIPooling: the callbacks registered with MXNet
 * (dcn_register.cc).
 *
 *   dcn_pool.cc      arguments, shape and type inference, checks of a compute call
 *   dcn_pool_cpu.cc  CPU forward / backward (dcn_cpu_kernels.h)
 *   dcn_pool_gpu.cc  GPU forward / backward (cuda/dcn_cuda_api.h; CUDA build only)
 *
 * Inputs: data, rois[, trans] (fused: data, rois, weight, bias).  Outputs: the
 * pooled map; DeformablePSROIPooling also the per-bin sample count, used by its
 * backward.  Backward functions receive [grad outputs..., inputs...,
 * outputs...] and one gradient buffer per input (rois get zeros).
 */
#ifndef DCN_POOL_H_
#define DCN_POOL_H_

#include <cmath>
#include <sstream>

#include "dcn_ext.h"

namespace dcn_ext {

MXReturnValue pool_parse_attrs(Op k, const Attrs& attrs, int* num_in, int* num_out);
MXReturnValue pool_infer_type(Op k, const Attrs& attrs, std::vector<int>* in,
                              std::vector<int>* out);
MXReturnValue pool_infer_shape(Op k, const Attrs& attrs, Shapes* in, Shapes* out);

/*!
 * \brief the arguments of a forward / backward call, after checking the tensors
 * handed over against shape inference; throws AttrError.
 */
PoolParam pool_call(Op k, const Attrs& attrs, const std::vector<MXTensor>& in,
                    const std::vector<MXTensor>& out, bool backward);

/*!
 * \brief the RoI rule of both back ends (host memory): the batch index (column 0) is
 * truncated toward zero, as MXNet's built-ins convert it (so 0.999 and -0.5 name
 * image 0), and must then name an image of the batch; all five values finite.
 * The built-ins read outside the data for an index outside the batch; here that
 * is an error naming the row.
 */
template <typename T>
void check_rois(Op k, const T* rois, int R, int N) {
  for (int r = 0; r < R; ++r) {
    const T b = rois[static_cast<int64_t>(r) * 5];
    bool finite = true;
    for (int c = 0; c < 5; ++c)
      finite = finite && std::isfinite(rois[static_cast<int64_t>(r) * 5 + c]);
    if (!finite || !(std::trunc(b) >= 0) || !(std::trunc(b) < N)) {
      std::ostringstream os;
      os << op_name(k) << ": input 'rois' row " << r << " is invalid: column 0 (batch index), "
         << "truncated toward zero, must be in [0, " << N << ") (the batch size of 'data') "
         << "and all coordinates finite, got batch index " << b;
      throw AttrError{os.str()};
    }
  }
}

MXReturnValue pool_forward_cpu(Op k, const Attrs& attrs, std::vector<MXTensor>* in,
                               std::vector<MXTensor>* out, const OpResource& res);
MXReturnValue pool_backward_cpu(Op k, const Attrs& attrs, std::vector<MXTensor>* in,
                                std::vector<MXTensor>* out, const OpResource& res);

MXReturnValue pool_forward_gpu(Op k, const Attrs& attrs, std::vector<MXTensor>* in,
                               std::vector<MXTensor>* out, const OpResource& res);
MXReturnValue pool_backward_gpu(Op k, const Attrs& attrs, std::vector<MXTensor>* in,
                                std::vector<MXTensor>* out, const OpResource& res);

}  // namespace dcn_ext

#endif  // DCN_POOL_H_
