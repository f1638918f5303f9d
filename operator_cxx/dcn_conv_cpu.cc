/* dcn_conv_cpu.cc - deformable convolutions on the CPU (kernels: dcn_cpu_kernels.h). */
#include <climits>
#include <sstream>
#include <type_traits>

#include "dcn_conv.h"
#include "dcn_cpu_kernels.h"

namespace dcn_ext {

namespace {

dcn::cpu::ConvGeom conv_geom(const ConvParam& p, const MXTensor& data, const MXTensor& out) {
  dcn::cpu::ConvGeom g;
  g.N = static_cast<int>(data.shape[0]);
  g.C = static_cast<int>(data.shape[1]);
  g.H = static_cast<int>(data.shape[2]);
  g.W = static_cast<int>(data.shape[3]);
  g.F = p.num_filter;
  g.Ho = static_cast<int>(out.shape[2]);
  g.Wo = static_cast<int>(out.shape[3]);
  g.kh = p.kh; g.kw = p.kw; g.sh = p.sh; g.sw = p.sw;
  g.ph = p.ph; g.pw = p.pw; g.dh = p.dh; g.dw = p.dw;
  g.groups = p.num_group;
  g.dgroups = p.num_dg;
  g.modulated = p.modulated;
  return g;
}

/*! \brief column buffer (one image) + sampling plan, from MXNet's temporary space */
void* conv_workspace(Op k, const dcn::cpu::ConvGeom& g, int elem, const OpResource& res,
                     bool need_col) {
  const int64_t bytes = dcn::cpu::conv_workspace_bytes(g, elem, need_col);
  if (bytes >= INT_MAX || g.L() * 4 >= INT_MAX || static_cast<int64_t>(g.H) * g.W >= INT_MAX) {
    std::ostringstream os;
    os << op_name(k) << ": the column buffer of one image needs " << bytes
       << " bytes, more than the 2 GiB a single workspace allocation may have; reduce the "
          "input size";
    throw AttrError{os.str()};
  }
  return cpu_workspace(k, bytes, res);
}

/*! \brief io.in() / io.out() of tensor i, nullptr for an absent one (i < 0) */
template <class IO>
auto in_or_null(IO& io, std::vector<MXTensor>* v, int i) {
  return i < 0 ? nullptr : io.in((*v)[i]);
}
template <class IO>
auto out_or_null(IO& io, std::vector<MXTensor>* v, int i) {
  return i < 0 ? nullptr : io.out((*v)[i]);
}

}  // namespace

MXReturnValue conv_forward_cpu(Op k, const Attrs& attrs, std::vector<MXTensor>* in,
                               std::vector<MXTensor>* out, const OpResource& res) {
  ThreadScope threads;
  return guarded(k, [&] {
    const ConvParam p = conv_call(k, attrs, *in, *out, false);
    MXTensor& data = (*in)[p.i_data];
    MXTensor& y = (*out)[0];
    const dcn::cpu::ConvGeom g = conv_geom(p, data, y);
    dispatch_cpu(k, data.dtype, [&](auto& io) {
      typedef typename std::decay_t<decltype(io)>::type T;
      void* ws = conv_workspace(k, g, sizeof(T), res, !dcn::cpu::fused_columns<T>());
      dcn::cpu::conv_forward<T>(g, io.in(data), io.in((*in)[p.i_offset]),
                                in_or_null(io, in, p.i_mask), io.in((*in)[p.i_weight]),
                                in_or_null(io, in, p.i_bias), io.out(y), ws);
    });
  });
}

MXReturnValue conv_backward_cpu(Op k, const Attrs& attrs, std::vector<MXTensor>* in,
                                std::vector<MXTensor>* out, const OpResource& res) {
  ThreadScope threads;
  return guarded(k, [&] {
    const ConvParam p = conv_call(k, attrs, *in, *out, true);
    // inputs: [grad_out, data, offset, (mask), weight, (bias), out]
    MXTensor& gout = (*in)[0];
    MXTensor& data = (*in)[1 + p.i_data];
    const dcn::cpu::ConvGeom g = conv_geom(p, data, gout);
    dispatch_cpu(k, data.dtype, [&](auto& io) {
      typedef typename std::decay_t<decltype(io)>::type T;
      void* ws = conv_workspace(k, g, sizeof(T), res, true);
      dcn::cpu::conv_backward<T>(
          g, io.in(gout), io.in(data), io.in((*in)[1 + p.i_offset]),
          p.modulated ? io.in((*in)[1 + p.i_mask]) : nullptr, io.in((*in)[1 + p.i_weight]),
          out_or_null(io, out, p.i_data), out_or_null(io, out, p.i_offset),
          out_or_null(io, out, p.i_mask), out_or_null(io, out, p.i_weight),
          out_or_null(io, out, p.i_bias), ws);
    });
  });
}

}  // namespace dcn_ext
