/*
 * dcn_params.h - parsed operator arguments shared by the CPU registration
 * (dcn_ops.cc) and the CUDA entry points (operator_cxx/cuda), which receive
 * the raw attribute map and can parse it with the same validation.
 */
#ifndef DCN_PARAMS_H_
#define DCN_PARAMS_H_

#include <string>
#include <unordered_map>

namespace dcn_ext {

typedef std::unordered_map<std::string, std::string> Attrs;

/*! \brief thrown by the parsers; msg names the argument and the expected value */
struct AttrError {
  std::string msg;
};

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

/*! \brief parse + validate (Modulated)DeformableConvolution arguments; throws AttrError */
ConvParam parse_conv(const Attrs& attrs, bool modulated);

/*! \brief parse + validate (Deformable)PSROIPooling arguments (fused: those of
 *  Conv1x1DeformablePSROIPooling, no_trans implied); throws AttrError */
PoolParam parse_pool(const Attrs& attrs, bool deformable, bool fused = false);

}  // namespace dcn_ext

#endif  // DCN_PARAMS_H_
