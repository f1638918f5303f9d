/*
 * dcn_register.cc - registration of the operators with MXNet through the
 * extension-library API (mxnet/lib_api.h), names from the table of
 * dcn_params.h:
 *
 *   dcn_DeformableConvolution          (DCNv1, as mx.contrib DeformableConvolution)
 *   dcn_ModulatedDeformableConvolution (DCNv2, as mx.contrib ModulatedDeformableConvolution)
 *   dcn_DeformablePSROIPooling         (as mx.contrib DeformablePSROIPooling; outputs
 *                                       the pooled map and the per-bin sample count)
 *   dcn_PSROIPooling                   (as mx.contrib PSROIPooling)
 *   dcn_Conv1x1DeformablePSROIPooling  (forward only, CPU: DeformablePSROIPooling with
 *                                       no_trans of a 1x1 Convolution, without the
 *                                       convolution's output map; test networks)
 *   dcn_FPNROIPooling                  (the original FPN's fpn_roi_pooling: each RoI pooled
 *                                       from one pyramid level; plain or deformable)
 *
 * Compiled twice: for libdcn_ops.so (CPU) and, with -DDCN_WITH_CUDA, for
 * libdcn_ops_cuda.so, which registers the GPU functions too.  The extension API
 * does not pass the gradient request: every gradient is written (never
 * accumulated).
 */
#include "dcn_conv.h"
#include "dcn_fpn.h"
#include "dcn_pool.h"

using dcn_ext::Attrs;
using dcn_ext::MXReturnValue;
using dcn_ext::MXTensor;
using dcn_ext::Op;
using dcn_ext::OpResource;
using dcn_ext::Shapes;

namespace {

/* MXNet's callbacks take no user data: one instance per (operator, function) */
typedef MXReturnValue (*ParseFn)(Op, const Attrs&, int*, int*);
typedef MXReturnValue (*TypeFn)(Op, const Attrs&, std::vector<int>*, std::vector<int>*);
typedef MXReturnValue (*ShapeFn)(Op, const Attrs&, Shapes*, Shapes*);
typedef MXReturnValue (*ComputeFn)(Op, const Attrs&, std::vector<MXTensor>*,
                                   std::vector<MXTensor>*, const OpResource&);

template <Op K, ParseFn F>
MXReturnValue parse_cb(const Attrs& a, int* ni, int* no) { return F(K, a, ni, no); }
template <Op K, TypeFn F>
MXReturnValue type_cb(const Attrs& a, std::vector<int>* i, std::vector<int>* o) {
  return F(K, a, i, o);
}
template <Op K, ShapeFn F>
MXReturnValue shape_cb(const Attrs& a, Shapes* i, Shapes* o) { return F(K, a, i, o); }
template <Op K, ComputeFn F>
MXReturnValue compute_cb(const Attrs& a, std::vector<MXTensor>* i, std::vector<MXTensor>* o,
                         const OpResource& r) {
  return F(K, a, i, o, r);
}

mxnet::ext::CustomOp& add_op(Op k) {
  return mxnet::ext::Registry<mxnet::ext::CustomOp>::get()->add(dcn_ext::op_info(k).registered);
}

/* the GPU functions exist in the CUDA build only (nullptr: not registered) */
#ifdef DCN_WITH_CUDA
#define DCN_GPU_FN(f) f
#else
#define DCN_GPU_FN(f) nullptr
#endif

/*! \brief registers operator K: its attribute parser, type and shape inference, CPU forward
 *  and backward, GPU forward and backward (a nullptr backward / GPU function is left out) */
template <Op K, ParseFn Parse, TypeFn Type, ShapeFn Shape, ComputeFn FwdCpu, ComputeFn BwdCpu,
          ComputeFn FwdGpu, ComputeFn BwdGpu>
mxnet::ext::CustomOp& register_op() {
  mxnet::ext::CustomOp& op = add_op(K)
      .setParseAttrs(parse_cb<K, Parse>)
      .setInferType(type_cb<K, Type>)
      .setInferShape(shape_cb<K, Shape>)
      .setForward(compute_cb<K, FwdCpu>, "cpu");
  if constexpr (BwdCpu != nullptr) op.setBackward(compute_cb<K, BwdCpu>, "cpu");
  if constexpr (FwdGpu != nullptr) op.setForward(compute_cb<K, FwdGpu>, "gpu");
  if constexpr (BwdGpu != nullptr) op.setBackward(compute_cb<K, BwdGpu>, "gpu");
  return op;
}

template <Op K>
mxnet::ext::CustomOp& conv_op() {
  using namespace dcn_ext;
  return register_op<K, conv_parse_attrs, conv_infer_type, conv_infer_shape, conv_forward_cpu,
                     conv_backward_cpu, DCN_GPU_FN(conv_forward_gpu),
                     DCN_GPU_FN(conv_backward_gpu)>();
}

template <Op K>
mxnet::ext::CustomOp& pool_op() {
  using namespace dcn_ext;
  if (op_info(K).fused)  // forward only, CPU only
    return register_op<K, pool_parse_attrs, pool_infer_type, pool_infer_shape, pool_forward_cpu,
                       nullptr, nullptr, nullptr>();
  return register_op<K, pool_parse_attrs, pool_infer_type, pool_infer_shape, pool_forward_cpu,
                     pool_backward_cpu, DCN_GPU_FN(pool_forward_gpu),
                     DCN_GPU_FN(pool_backward_gpu)>();
}

mxnet::ext::CustomOp& fpn_op() {
  using namespace dcn_ext;
  return register_op<Op::kFPNROIPooling, fpn_parse_attrs, fpn_infer_type, fpn_infer_shape,
                     fpn_forward_cpu, fpn_backward_cpu, DCN_GPU_FN(fpn_forward_gpu),
                     DCN_GPU_FN(fpn_backward_gpu)>();
}

#undef DCN_GPU_FN

mxnet::ext::CustomOp& reg_conv = conv_op<Op::kDeformableConvolution>();
mxnet::ext::CustomOp& reg_mconv = conv_op<Op::kModulatedDeformableConvolution>();
mxnet::ext::CustomOp& reg_dpsroi = pool_op<Op::kDeformablePSROIPooling>();
mxnet::ext::CustomOp& reg_psroi = pool_op<Op::kPSROIPooling>();
mxnet::ext::CustomOp& reg_fused = pool_op<Op::kConv1x1DeformablePSROIPooling>();
mxnet::ext::CustomOp& reg_fpn = fpn_op();

}  // namespace

MXReturnValue initialize(int version) {
  if (version < 10700) {
    dcn_ext::report_error("libdcn_ops requires MXNet >= 1.7 (extension API), found version " +
                          std::to_string(version));
    return dcn_ext::MX_FAIL;
  }
  return dcn_ext::MX_SUCCESS;
}
