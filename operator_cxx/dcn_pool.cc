/*
 * dcn_pool.cc - (deformable) PS RoI pooling and the fused 1x1 convolution +
 * pooling: arguments, shape and type inference, checks of a compute call.
 */
#include "dcn_pool.h"

#include "dcn_attrs.h"

namespace dcn_ext {

PoolParam parse_pool(Op k, const Attrs& attrs) {
  const bool fused = op_info(k).fused;
  const bool deformable = op_info(k).deformable;
  const std::string op = op_name(k);
  std::vector<std::string> known = {"spatial_scale", "output_dim", "pooled_size", "group_size"};
  if (deformable) {
    known.push_back("part_size");
    known.push_back("sample_per_part");
  }
  if (deformable && !fused) {
    known.push_back("trans_std");
    known.push_back("no_trans");
  }
  AttrReader r(op, attrs, known);
  PoolParam p;
  p.deformable = deformable;
  r.require("spatial_scale");
  r.require("output_dim");
  r.require("pooled_size");
  if (deformable) r.require("group_size");
  p.spatial_scale = r.get_double("spatial_scale", 0);
  if (!(p.spatial_scale > 0)) {
    std::ostringstream os;
    os << op << ": argument 'spatial_scale' must be > 0, got " << r.raw("spatial_scale");
    throw AttrError{os.str()};
  }
  p.output_dim = static_cast<int>(r.get_int("output_dim", 0, 1));
  p.pooled = static_cast<int>(r.get_int("pooled_size", 0, 1));
  p.group = static_cast<int>(r.get_int("group_size", deformable ? 1 : 0, deformable ? 1 : 0));
  if (p.group == 0) p.group = p.pooled;
  if (deformable) {
    p.part = static_cast<int>(r.get_int("part_size", 0, 0));
    if (p.part == 0) p.part = p.pooled;
    p.samples = static_cast<int>(r.get_int("sample_per_part", 1, 1));
    p.trans_std = fused ? 0.0 : r.get_double("trans_std", 0.0);
    p.no_trans = fused || r.get_bool("no_trans", false);
    p.n_in = fused ? 4 : (p.no_trans ? 2 : 3);  // fused: data, rois, weight, bias
    p.n_out = fused ? 1 : 2;
  } else {
    p.part = p.pooled;
    p.samples = 1;
    p.trans_std = 0;
    p.no_trans = true;
    p.n_in = 2;
    p.n_out = 1;
  }
  return p;
}

namespace {

/*! \brief false while the rois shape is unknown; throws unless it is (num_rois, 5) */
bool rois_shape_known(Op k, const std::vector<unsigned int>& rs) {
  if (rs.empty()) return false;
  if (rs.size() != 2 || (fully_known(rs) && rs[1] != 5)) {
    throw AttrError{op_name(k) + ": input 'rois' must have shape (num_rois, 5) with columns "
                    "[batch_index, x1, y1, x2, y2], got " + shape_str(rs)};
  }
  return fully_known(rs);
}

void fused_shapes(Op k, const PoolParam& p, Shapes* in, Shapes* out) {
  const auto& ds = (*in)[0];
  const auto& rs = (*in)[1];
  const unsigned rows = static_cast<unsigned>(p.output_dim) * p.group * p.group;
  if (check_rank(k, "data", ds, 4, "NCHW (batch, channel, height, width)")) {
    check_or_set(k, "weight", &(*in)[2], {rows, ds[1], 1u, 1u},
                 "output_dim * group_size^2, data channels, 1, 1");
  }
  check_or_set(k, "bias", &(*in)[3], {rows}, "output_dim * group_size^2");
  if (!rois_shape_known(k, rs)) return;
  (*out)[0] = {rs[0], static_cast<unsigned>(p.output_dim), static_cast<unsigned>(p.pooled),
               static_cast<unsigned>(p.pooled)};
}

void pool_shapes(Op k, const PoolParam& p, Shapes* in, Shapes* out) {
  if (op_info(k).fused) return fused_shapes(k, p, in, out);
  const std::string op = op_name(k);
  const auto& ds = (*in)[0];
  const auto& rs = (*in)[1];
  if (check_rank(k, "data", ds, 4, "NCHW (batch, channel, height, width)")) {
    const unsigned need = static_cast<unsigned>(p.output_dim) * p.group * p.group;
    if (ds[1] != need) {
      std::ostringstream os;
      os << op << ": input 'data' must have output_dim * group_size^2 = " << p.output_dim
         << " * " << p.group << "^2 = " << need << " channels, got " << ds[1];
      throw AttrError{os.str()};
    }
  }
  if (!rois_shape_known(k, rs)) return;
  const unsigned R = rs[0];
  if (p.deformable && !p.no_trans &&
      check_rank(k, "trans", (*in)[2], 4, "(num_rois, 2 * num_classes, part_size, part_size)")) {
    const auto& ts = (*in)[2];
    if (ts[0] != R || ts[1] % 2 != 0 || ts[2] != static_cast<unsigned>(p.part) ||
        ts[3] != static_cast<unsigned>(p.part)) {
      std::ostringstream os;
      os << op << ": input 'trans' must have shape (num_rois = " << R
         << ", 2 * num_classes, part_size = " << p.part << ", part_size = " << p.part
         << "), got " << shape_str(ts);
      throw AttrError{os.str()};
    }
    const unsigned ncls = ts[1] / 2;
    if (p.output_dim % ncls != 0) {
      std::ostringstream os;
      os << op << ": 'output_dim' (" << p.output_dim
         << ") must be divisible by the number of classes of 'trans' (trans.shape[1] / 2 = "
         << ncls << ")";
      throw AttrError{os.str()};
    }
  }
  const std::vector<unsigned> os = {R, static_cast<unsigned>(p.output_dim),
                                    static_cast<unsigned>(p.pooled),
                                    static_cast<unsigned>(p.pooled)};
  for (auto& o : *out) o = os;
}

}  // namespace

MXReturnValue pool_parse_attrs(Op k, const Attrs& attrs, int* num_in, int* num_out) {
  return guarded(k, [&] {
    const PoolParam p = parse_pool(k, attrs);
    *num_in = p.n_in;
    *num_out = p.n_out;
  });
}

MXReturnValue pool_infer_type(Op k, const Attrs& attrs, std::vector<int>* in,
                              std::vector<int>* out) {
  return guarded(k, [&] {
    std::vector<std::string> names = {"data", "rois"};
    if (op_info(k).fused) {
      names.push_back("weight");
      names.push_back("bias");
    } else {
      names.push_back("trans");
    }
    infer_same_float_type(k, names, in, out);
  });
}

MXReturnValue pool_infer_shape(Op k, const Attrs& attrs, Shapes* in, Shapes* out) {
  return guarded(k, [&] { pool_shapes(k, parse_pool(k, attrs), in, out); });
}

PoolParam pool_call(Op k, const Attrs& attrs, const std::vector<MXTensor>& in,
                    const std::vector<MXTensor>& out, bool backward) {
  const PoolParam p = parse_pool(k, attrs);
  // backward: [grad outputs (n_out), inputs (n_in), outputs (n_out)] -> one gradient per input
  check_count(k, "inputs", in.size(), backward ? 2 * p.n_out + p.n_in : p.n_in);
  check_count(k, "outputs", out.size(), backward ? p.n_in : p.n_out);
  std::vector<const MXTensor*> outs;
  for (int o = 0; o < p.n_out; ++o) outs.push_back(backward ? &in[o] : &out[o]);
  verify_shapes(k, [&](Shapes* i, Shapes* o) { pool_shapes(k, p, i, o); }, in,
                backward ? p.n_out : 0, p.n_in, outs);
  return p;
}

}  // namespace dcn_ext
