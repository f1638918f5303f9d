/*
 * dcn_params.h - the operators of the library (one table of names) and their
 * parsed arguments.  Each operator's arguments are parsed and validated by one
 * function: parse_conv (dcn_conv.cc) and parse_pool (dcn_pool.cc).
 */
#ifndef DCN_PARAMS_H_
#define DCN_PARAMS_H_

#include <string>
#include <unordered_map>
#include <vector>

namespace dcn_ext {

typedef std::unordered_map<std::string, std::string> Attrs;

/*! \brief thrown by parsing, validation and the glue; msg names the argument and the
 *  expected value (and starts with the operator's name) */
struct AttrError {
  std::string msg;
};

/*! \brief the operators of the library */
enum class Op : int {
  kDeformableConvolution,
  kModulatedDeformableConvolution,
  kDeformablePSROIPooling,
  kPSROIPooling,
  kConv1x1DeformablePSROIPooling,
  kFPNROIPooling,
};

struct OpInfo {
  const char* registered;  // name registered in MXNet ("dcn_" + name)
  const char* name;        // name of the mx.contrib counterpart, used in messages
  bool conv;               // a deformable convolution
  bool modulated;          // DCNv2: mask input
  bool deformable;         // deformable PS RoI pooling (part_size, sample_per_part)
  bool fused;              // Conv1x1DeformablePSROIPooling (1x1 convolution + no_trans pooling)
};

inline const OpInfo& op_info(Op k) {
  static const OpInfo table[] = {
      {"dcn_DeformableConvolution", "DeformableConvolution", true, false, false, false},
      {"dcn_ModulatedDeformableConvolution", "ModulatedDeformableConvolution", true, true, false,
       false},
      {"dcn_DeformablePSROIPooling", "DeformablePSROIPooling", false, false, true, false},
      {"dcn_PSROIPooling", "PSROIPooling", false, false, false, false},
      {"dcn_Conv1x1DeformablePSROIPooling", "Conv1x1DeformablePSROIPooling", false, false, true,
       true},
      {"dcn_FPNROIPooling", "FPNROIPooling", false, false, false, false},
  };
  return table[static_cast<int>(k)];
}

inline std::string op_name(Op k) { return op_info(k).name; }

struct ConvParam {
  int kh, kw, sh, sw, dh, dw, ph, pw;
  int num_filter, num_group, num_dg, im2col_step;
  long workspace;
  bool no_bias, modulated;
  // input indices
  int i_data, i_offset, i_mask, i_weight, i_bias, n_in;
};

struct PoolParam {
  double spatial_scale, trans_std;
  int output_dim, group, pooled, part, samples;
  bool no_trans, deformable;
  int n_in, n_out;
};

/*! \brief FPNROIPooling: levels P2, P3, ... with strides[i]; inputs data_p2.. (levels),
 *  then (deformable) offset_pX_weight, offset_pX_bias per level, then rois */
struct FPNParam {
  std::vector<int> strides;
  int levels, pooled, output_dim, samples;
  double trans_std;
  bool deformable;
  int n_in;
};

/*! \brief parse + validate the arguments of FPNROIPooling (dcn_fpn.cc); throws AttrError */
FPNParam parse_fpn(const Attrs& attrs);

/*! \brief parse + validate the arguments of a deformable convolution; throws AttrError */
ConvParam parse_conv(Op k, const Attrs& attrs);

/*! \brief parse + validate the arguments of a pooling operator (the fused one: no_trans
 *  implied, inputs data, rois, weight, bias); throws AttrError */
PoolParam parse_pool(Op k, const Attrs& attrs);

}  // namespace dcn_ext

#endif  // DCN_PARAMS_H_
