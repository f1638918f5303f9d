/*
 * dcn_fpn.cc - FPNROIPooling: arguments, shape and type inference, checks of a
 * compute call.
 */
#include "dcn_fpn.h"

#include "dcn_attrs.h"

namespace dcn_ext {

namespace {
const Op kOp = Op::kFPNROIPooling;
}

FPNParam parse_fpn(const Attrs& attrs) {
  const std::string op = op_name(kOp);
  AttrReader r(op, attrs, {"feat_strides", "pooled_size", "output_dim", "with_deformable",
                           "sample_per_part", "trans_std"});
  FPNParam p;
  std::vector<long> s = {4, 8, 16, 32};
  if (r.has("feat_strides")) s = parse_tuple(op, "feat_strides", r.raw("feat_strides"));
  if (s.empty() || s.size() > static_cast<size_t>(kFPNMaxLevels)) {
    std::ostringstream os;
    os << op << ": argument 'feat_strides' must list 1 to " << kFPNMaxLevels
       << " strides (one per pyramid level, P2 first), got '"
       << (r.has("feat_strides") ? r.raw("feat_strides") : "") << "'";
    throw AttrError{os.str()};
  }
  for (long v : s) {
    if (v < 1 || v > (1L << 20)) {
      std::ostringstream os;
      os << op << ": argument 'feat_strides' must hold positive strides, got '"
         << r.raw("feat_strides") << "'";
      throw AttrError{os.str()};
    }
    p.strides.push_back(static_cast<int>(v));
  }
  p.levels = static_cast<int>(p.strides.size());
  p.pooled = static_cast<int>(r.get_int("pooled_size", 7, 1));
  p.output_dim = static_cast<int>(r.get_int("output_dim", 256, 1));
  p.deformable = r.get_bool("with_deformable", false);
  p.samples = static_cast<int>(r.get_int("sample_per_part", 4, 1));
  p.trans_std = r.get_double("trans_std", 0.1);
  if (!std::isfinite(p.trans_std)) throw AttrError{op + ": argument 'trans_std' must be finite"};
  // a float32 parameter of MXNet's DeformablePSROIPooling, as the original passes it on
  p.trans_std = static_cast<float>(p.trans_std);
  p.n_in = p.levels * (p.deformable ? 3 : 1) + 1;
  return p;
}

std::string fpn_input_name(const FPNParam& p, int i) {
  if (i < p.levels) return "data_p" + std::to_string(i + 2);
  if (i == fpn_rois_index(p)) return "rois";
  const int l = (i - p.levels) / 2;
  return "offset_p" + std::to_string(l + 2) + ((i - p.levels) % 2 ? "_bias" : "_weight");
}

namespace {

void fpn_shapes(const FPNParam& p, Shapes* in, Shapes* out) {
  const std::string op = op_name(kOp);
  unsigned N = 0, C = 0;
  int first = -1;
  for (int l = 0; l < p.levels; ++l) {
    const std::string name = fpn_input_name(p, l);
    if (!check_rank(kOp, name, (*in)[l], 4, "NCHW (batch, channel, height, width)")) continue;
    const auto& ds = (*in)[l];
    if (first < 0) {
      first = l;
      N = ds[0];
      C = ds[1];
    } else if (ds[0] != N || ds[1] != C) {
      std::ostringstream os;
      os << op << ": input '" << name << "' must have the batch size and channels of '"
         << fpn_input_name(p, first) << "' (" << N << ", " << C << "), got " << shape_str(ds);
      throw AttrError{os.str()};
    }
  }
  if (p.deformable) {
    if (first >= 0 && C != static_cast<unsigned>(p.output_dim)) {
      std::ostringstream os;
      os << op << ": with_deformable: the maps must have output_dim = " << p.output_dim
         << " channels, got " << C << " ('" << fpn_input_name(p, first) << "')";
      throw AttrError{os.str()};
    }
    const unsigned pp = static_cast<unsigned>(p.pooled) * p.pooled;
    for (int l = 0; l < p.levels; ++l) {
      check_or_set(kOp, fpn_input_name(p, fpn_weight_index(p, l)), &(*in)[fpn_weight_index(p, l)],
                   {2 * pp, pp * p.output_dim},
                   "2 * pooled_size^2 offsets, pooled_size^2 * output_dim pooled values");
      check_or_set(kOp, fpn_input_name(p, fpn_bias_index(p, l)), &(*in)[fpn_bias_index(p, l)],
                   {2 * pp}, "2 * pooled_size^2 offsets");
    }
  }
  const auto& rs = (*in)[fpn_rois_index(p)];
  if (rs.empty()) return;
  if (rs.size() != 2 || (fully_known(rs) && rs[1] != 5)) {
    throw AttrError{op + ": input 'rois' must have shape (num_rois, 5) with columns "
                    "[batch_index, x1, y1, x2, y2], got " + shape_str(rs)};
  }
  if (!fully_known(rs) || first < 0) return;
  const unsigned P = static_cast<unsigned>(p.pooled);
  (*out)[0] = {rs[0], C, P, P};
}

}  // namespace

MXReturnValue fpn_parse_attrs(Op k, const Attrs& attrs, int* num_in, int* num_out) {
  return guarded(k, [&] {
    const FPNParam p = parse_fpn(attrs);
    *num_in = p.n_in;
    *num_out = 1;
  });
}

MXReturnValue fpn_infer_type(Op k, const Attrs& attrs, std::vector<int>* in,
                             std::vector<int>* out) {
  return guarded(k, [&] {
    const FPNParam p = parse_fpn(attrs);
    std::vector<std::string> names;
    for (int i = 0; i < p.n_in; ++i) names.push_back(fpn_input_name(p, i));
    infer_same_float_type(k, names, in, out);
  });
}

MXReturnValue fpn_infer_shape(Op k, const Attrs& attrs, Shapes* in, Shapes* out) {
  return guarded(k, [&] {
    const FPNParam p = parse_fpn(attrs);
    check_count(k, "inputs", in->size(), p.n_in);
    fpn_shapes(p, in, out);
  });
}

FPNParam fpn_call(const Attrs& attrs, const std::vector<MXTensor>& in,
                  const std::vector<MXTensor>& out, bool backward) {
  const FPNParam p = parse_fpn(attrs);
  // backward: [grad output, inputs (n_in), output] -> one gradient per input
  check_count(kOp, "inputs", in.size(), backward ? 2 + p.n_in : p.n_in);
  check_count(kOp, "outputs", out.size(), backward ? p.n_in : 1);
  std::vector<const MXTensor*> outs = {backward ? &in[0] : &out[0]};
  verify_shapes(kOp, [&](Shapes* i, Shapes* o) { fpn_shapes(p, i, o); }, in, backward ? 1 : 0,
                p.n_in, outs);
  return p;
}

}  // namespace dcn_ext
