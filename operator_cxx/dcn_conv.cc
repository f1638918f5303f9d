/*
 * dcn_conv.cc - deformable convolutions: arguments, shape and type inference,
 * checks of the tensors of a compute call.
 */
#include "dcn_conv.h"

#include <sstream>

#include "dcn_attrs.h"
#include "dcn_sampling.h"

namespace dcn_ext {

ConvParam parse_conv(Op k, const Attrs& attrs) {
  const bool modulated = op_info(k).modulated;
  const std::string op = op_name(k);
  std::vector<std::string> known = {"kernel", "stride", "dilate", "pad", "num_filter", "num_group",
                                    "num_deformable_group", "workspace", "no_bias", "layout"};
  if (modulated) known.push_back("im2col_step");
  AttrReader r(op, attrs, known);
  ConvParam p;
  r.require("kernel");
  r.require("num_filter");
  if (parse_tuple(op, "kernel", r.raw("kernel")).size() != 2)
    throw AttrError{op + ": argument 'kernel' must have 2 entries (h, w) for 2-D NCHW input, "
                    "got '" + r.raw("kernel") + "'"};
  r.get_pair("kernel", 1, 1, &p.kh, &p.kw);
  r.get_pair("stride", 1, 1, &p.sh, &p.sw);
  r.get_pair("dilate", 1, 1, &p.dh, &p.dw);
  r.get_pair("pad", 0, 0, &p.ph, &p.pw);
  p.num_filter = static_cast<int>(r.get_int("num_filter", 0, 1));
  p.num_group = static_cast<int>(r.get_int("num_group", 1, 1));
  p.num_dg = static_cast<int>(r.get_int("num_deformable_group", 1, 1));
  p.workspace = r.get_int("workspace", 1024, 0);
  p.no_bias = r.get_bool("no_bias", false);
  p.im2col_step = modulated ? static_cast<int>(r.get_int("im2col_step", 64, 1)) : 1;
  if (r.has("layout")) {
    std::string l = trim(r.raw("layout"));
    if (l != "NCHW")
      throw AttrError{op + ": argument 'layout' must be 'NCHW' (or None), got '" + l + "'"};
  }
  if (p.num_filter % p.num_group != 0) {
    std::ostringstream os;
    os << op << ": argument 'num_filter' (" << p.num_filter
       << ") must be divisible by 'num_group' (" << p.num_group << ")";
    throw AttrError{os.str()};
  }
  p.modulated = modulated;
  int i = 0;
  p.i_data = i++;
  p.i_offset = i++;
  p.i_mask = modulated ? i++ : -1;
  p.i_weight = i++;
  p.i_bias = p.no_bias ? -1 : i++;
  p.n_in = i;
  return p;
}

namespace {

void conv_shapes(Op k, const ConvParam& p, Shapes* in, Shapes* out) {
  const std::string op = op_name(k);
  const auto& ds = (*in)[p.i_data];
  if (!check_rank(k, "data", ds, 4, "NCHW (batch, channel, height, width)")) return;
  const unsigned N = ds[0], C = ds[1], H = ds[2], W = ds[3];
  std::ostringstream os;
  if (C % p.num_group != 0) {
    os << op << ": data channels (" << C << ") must be divisible by 'num_group' ("
       << p.num_group << ")";
    throw AttrError{os.str()};
  }
  if (C % p.num_dg != 0) {
    os << op << ": data channels (" << C << ") must be divisible by 'num_deformable_group' ("
       << p.num_dg << ")";
    throw AttrError{os.str()};
  }
  const long Ho = dcn::conv_out_size(H, p.kh, p.ph, p.sh, p.dh);
  const long Wo = dcn::conv_out_size(W, p.kw, p.pw, p.sw, p.dw);
  if (Ho <= 0 || Wo <= 0 || H + 2L * p.ph < static_cast<long>(p.dh) * (p.kh - 1) + 1 ||
      W + 2L * p.pw < static_cast<long>(p.dw) * (p.kw - 1) + 1) {
    os << op << ": the dilated 'kernel' (" << p.kh << ", " << p.kw << ") with dilate (" << p.dh
       << ", " << p.dw << ") does not fit the padded input " << H + 2 * p.ph << "x"
       << W + 2 * p.pw << " (data " << shape_str(ds) << ", pad (" << p.ph << ", " << p.pw
       << "))";
    throw AttrError{os.str()};
  }
  const unsigned taps = static_cast<unsigned>(p.kh * p.kw);
  std::ostringstream how;
  how << "batch, 2 * num_deformable_group * kernel_h * kernel_w = " << 2 * p.num_dg * taps
      << ", out_height, out_width";
  check_or_set(k, "offset", &(*in)[p.i_offset],
               {N, 2u * p.num_dg * taps, static_cast<unsigned>(Ho), static_cast<unsigned>(Wo)},
               how.str());
  if (p.modulated) {
    std::ostringstream hm;
    hm << "batch, num_deformable_group * kernel_h * kernel_w = " << p.num_dg * taps
       << ", out_height, out_width";
    check_or_set(k, "mask", &(*in)[p.i_mask],
                 {N, p.num_dg * taps, static_cast<unsigned>(Ho), static_cast<unsigned>(Wo)},
                 hm.str());
  }
  check_or_set(k, "weight", &(*in)[p.i_weight],
               {static_cast<unsigned>(p.num_filter), C / p.num_group,
                static_cast<unsigned>(p.kh), static_cast<unsigned>(p.kw)},
               "num_filter, channels / num_group, kernel_h, kernel_w");
  if (!p.no_bias)
    check_or_set(k, "bias", &(*in)[p.i_bias], {static_cast<unsigned>(p.num_filter)},
                 "num_filter");
  (*out)[0] = {N, static_cast<unsigned>(p.num_filter), static_cast<unsigned>(Ho),
               static_cast<unsigned>(Wo)};
}

}  // namespace

MXReturnValue conv_parse_attrs(Op k, const Attrs& attrs, int* num_in, int* num_out) {
  return guarded(k, [&] {
    *num_in = parse_conv(k, attrs).n_in;
    *num_out = 1;
  });
}

MXReturnValue conv_infer_type(Op k, const Attrs& attrs, std::vector<int>* in,
                              std::vector<int>* out) {
  return guarded(k, [&] {
    const ConvParam p = parse_conv(k, attrs);
    std::vector<std::string> names = {"data", "offset"};
    if (p.modulated) names.push_back("mask");
    names.push_back("weight");
    if (!p.no_bias) names.push_back("bias");
    infer_same_float_type(k, names, in, out);
  });
}

MXReturnValue conv_infer_shape(Op k, const Attrs& attrs, Shapes* in, Shapes* out) {
  return guarded(k, [&] { conv_shapes(k, parse_conv(k, attrs), in, out); });
}

ConvParam conv_call(Op k, const Attrs& attrs, const std::vector<MXTensor>& in,
                    const std::vector<MXTensor>& out, bool backward) {
  const ConvParam p = parse_conv(k, attrs);
  // backward: [grad_out, inputs..., output] -> one gradient per input
  check_count(k, "inputs", in.size(), backward ? p.n_in + 2 : p.n_in);
  check_count(k, "outputs", out.size(), backward ? p.n_in : 1);
  verify_shapes(k, [&](Shapes* i, Shapes* o) { conv_shapes(k, p, i, o); }, in, backward ? 1 : 0,
                p.n_in, {backward ? &in[0] : &out[0]});
  return p;
}

}  // namespace dcn_ext
