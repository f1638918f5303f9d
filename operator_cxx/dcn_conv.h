/*
 * dcn_conv.h - DeformableConvolution (DCNv1) and ModulatedDeformableConvolution
 * (DCNv2): the callbacks registered with MXNet (dcn_register.cc).
 *
 *   dcn_conv.cc      arguments, shape and type inference, checks of a compute call
 *   dcn_conv_cpu.cc  CPU forward / backward (dcn_cpu_kernels.h)
 *   dcn_conv_gpu.cc  GPU forward / backward (cuda/dcn_cuda_api.h; CUDA build only)
 *
 * Inputs: data, offset, [mask,] weight[, bias]; one output.  Backward functions
 * receive [grad_out, inputs..., output] and one gradient buffer per input.
 */
#ifndef DCN_CONV_H_
#define DCN_CONV_H_

#include "dcn_ext.h"

namespace dcn_ext {

MXReturnValue conv_parse_attrs(Op k, const Attrs& attrs, int* num_in, int* num_out);
MXReturnValue conv_infer_type(Op k, const Attrs& attrs, std::vector<int>* in,
                              std::vector<int>* out);
MXReturnValue conv_infer_shape(Op k, const Attrs& attrs, Shapes* in, Shapes* out);

/*!
 * \brief the arguments of a forward / backward call, after checking the tensors
 * handed over against shape inference; throws AttrError.
 */
ConvParam conv_call(Op k, const Attrs& attrs, const std::vector<MXTensor>& in,
                    const std::vector<MXTensor>& out, bool backward);

MXReturnValue conv_forward_cpu(Op k, const Attrs& attrs, std::vector<MXTensor>* in,
                               std::vector<MXTensor>* out, const OpResource& res);
MXReturnValue conv_backward_cpu(Op k, const Attrs& attrs, std::vector<MXTensor>* in,
                                std::vector<MXTensor>* out, const OpResource& res);

MXReturnValue conv_forward_gpu(Op k, const Attrs& attrs, std::vector<MXTensor>* in,
                               std::vector<MXTensor>* out, const OpResource& res);
MXReturnValue conv_backward_gpu(Op k, const Attrs& attrs, std::vector<MXTensor>* in,
                                std::vector<MXTensor>* out, const OpResource& res);

}  // namespace dcn_ext

#endif  // DCN_CONV_H_
