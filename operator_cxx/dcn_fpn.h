/*
 * dcn_fpn.h - FPNROIPooling (the original's fpn_roi_pooling): every RoI is pooled from
 * one level of a feature pyramid, chosen by its size (fpn_level, dcn_sampling.h).
 *
 *   dcn_fpn.cc      arguments, shape and type inference, checks of a compute call
 *   dcn_fpn_cpu.cc  CPU forward / backward
 *   dcn_fpn_gpu.cc  GPU forward / backward (cuda/dcn_cuda_api.h; CUDA build only)
 *
 * Inputs: data_p2 .. (one map per level, same batch and channels), for the deformable
 * variant offset_pX_weight (2 P^2, P^2 C) and offset_pX_bias (2 P^2) per level, then rois
 * (R, 5).  Output: (R, C, P, P) in input RoI order.
 *   plain:      MXNet ROIPooling (max, P x P, spatial_scale 1 / stride of the level);
 *   deformable: DeformablePSROIPooling no_trans (group 1, part P) -> FullyConnected with
 *               the level's weight and bias (2 P^2 outputs) -> reshape (R, 2, P, P) ->
 *               DeformablePSROIPooling with that trans (trans_std).
 */
#ifndef DCN_FPN_H_
#define DCN_FPN_H_

#include <cmath>
#include <sstream>
#include <string>

#include "dcn_ext.h"
#include "dcn_pool.h"
#include "dcn_sampling.h"

namespace dcn_ext {

constexpr int kFPNMaxLevels = 8;

/*! \brief name of input i of FPNROIPooling ("data_p2", "offset_p3_weight", "rois") */
std::string fpn_input_name(const FPNParam& p, int i);
inline int fpn_weight_index(const FPNParam& p, int l) { return p.levels + 2 * l; }
inline int fpn_bias_index(const FPNParam& p, int l) { return p.levels + 2 * l + 1; }
inline int fpn_rois_index(const FPNParam& p) { return p.n_in - 1; }

MXReturnValue fpn_parse_attrs(Op k, const Attrs& attrs, int* num_in, int* num_out);
MXReturnValue fpn_infer_type(Op k, const Attrs& attrs, std::vector<int>* in,
                             std::vector<int>* out);
MXReturnValue fpn_infer_shape(Op k, const Attrs& attrs, Shapes* in, Shapes* out);

/*! \brief the arguments of a forward / backward call after checking the tensors */
FPNParam fpn_call(const Attrs& attrs, const std::vector<MXTensor>& in,
                  const std::vector<MXTensor>& out, bool backward);

/*!
 * \brief the RoI rule (host memory): check_rois (batch index, finite values) and a
 * non-negative area (x2 - x1 + 1) * (y2 - y1 + 1), without which the original's level
 * formula has no value; fills level[r] (fpn_level).
 */
template <typename T>
void fpn_rois_levels(const T* rois, int R, int N, int levels, int* level) {
  check_rois(Op::kFPNROIPooling, rois, R, N);
  for (int r = 0; r < R; ++r) {
    level[r] = dcn::fpn_level(rois + static_cast<int64_t>(r) * 5, levels);
    if (level[r] < 0) {
      std::ostringstream os;
      os << "FPNROIPooling: input 'rois' row " << r << " has a negative area "
         << "(x2 - x1 + 1) * (y2 - y1 + 1): its pyramid level is undefined";
      throw AttrError{os.str()};
    }
  }
}

MXReturnValue fpn_forward_cpu(Op k, const Attrs& attrs, std::vector<MXTensor>* in,
                              std::vector<MXTensor>* out, const OpResource& res);
MXReturnValue fpn_backward_cpu(Op k, const Attrs& attrs, std::vector<MXTensor>* in,
                               std::vector<MXTensor>* out, const OpResource& res);
MXReturnValue fpn_forward_gpu(Op k, const Attrs& attrs, std::vector<MXTensor>* in,
                              std::vector<MXTensor>* out, const OpResource& res);
MXReturnValue fpn_backward_gpu(Op k, const Attrs& attrs, std::vector<MXTensor>* in,
                               std::vector<MXTensor>* out, const OpResource& res);

}  // namespace dcn_ext

#endif  // DCN_FPN_H_
