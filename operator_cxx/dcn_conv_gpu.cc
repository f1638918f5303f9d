/* dcn_conv_gpu.cc - deformable convolutions on the GPU (CUDA build only). */
#include <algorithm>
#include <climits>

#include "dcn_conv.h"
#include "dcn_gpu.h"
#include "dcn_sampling.h"

namespace dcn_ext {

namespace {

/*! \brief GPU geometry; images per column buffer bounded by im2col_step and 'workspace' (MB) */
dcn_conv_geom conv_geom_gpu(Op k, const ConvParam& p, const MXTensor& data,
                            const MXTensor& out) {
  // the column buffer holds the compute type: float32 for float16 tensors
  const int64_t elem = data.dtype == mxnet::ext::kFloat16 ? 4 : dtype_size(k, data.dtype);
  dcn_conv_geom g = {static_cast<int>(data.shape[0]), static_cast<int>(data.shape[1]),
                     static_cast<int>(data.shape[2]), static_cast<int>(data.shape[3]),
                     p.num_filter, static_cast<int>(out.shape[2]), static_cast<int>(out.shape[3]),
                     p.kh, p.kw, p.sh, p.sw, p.ph, p.pw, p.dh, p.dw, p.num_group, p.num_dg,
                     p.modulated ? 1 : 0, 1};
  const int64_t per_image =
      static_cast<int64_t>(g.C) * g.kh * g.kw * static_cast<int64_t>(g.Ho) * g.Wo * elem;
  const int64_t limit = std::min<int64_t>(std::max<int64_t>(p.workspace << 20, per_image),
                                          INT_MAX / 2);
  int64_t step = p.modulated ? std::min<int64_t>(g.N, p.im2col_step) : g.N;
  step = std::max<int64_t>(1, std::min<int64_t>(step, limit / std::max<int64_t>(per_image, 1)));
  g.im2col_step = static_cast<int>(step);
  return g;
}

void* conv_workspace_gpu(Op k, const dcn_conv_geom& g, int code, const OpResource& res,
                         int64_t* bytes) {
  *bytes = dcn_cuda_conv_workspace_bytes(&g, code);
  if (*bytes < 0) cuda_ok(k, 1);
  return gpu_workspace(k, *bytes, res, "the column buffer of one image");
}

}  // namespace

MXReturnValue conv_forward_gpu(Op k, const Attrs& attrs, std::vector<MXTensor>* in,
                               std::vector<MXTensor>* out, const OpResource& res) {
  return guarded(k, [&] {
    const ConvParam p = conv_call(k, attrs, *in, *out, false);
    MXTensor& data = (*in)[p.i_data];
    const int code = cuda_dtype(k, data.dtype);
    const dcn_conv_geom g = conv_geom_gpu(k, p, data, (*out)[0]);
    int64_t bytes = 0;
    void* ws = conv_workspace_gpu(k, g, code, res, &bytes);
    cuda_ok(k, dcn_cuda_conv_forward(&g, code, data.data_ptr, (*in)[p.i_offset].data_ptr,
                                     ptr_or_null(in, p.i_mask), (*in)[p.i_weight].data_ptr,
                                     ptr_or_null(in, p.i_bias), (*out)[0].data_ptr, ws, bytes,
                                     res.get_cuda_stream()));
  });
}

MXReturnValue conv_backward_gpu(Op k, const Attrs& attrs, std::vector<MXTensor>* in,
                                std::vector<MXTensor>* out, const OpResource& res) {
  return guarded(k, [&] {
    const ConvParam p = conv_call(k, attrs, *in, *out, true);
    // inputs: [grad_out, data, offset, (mask), weight, (bias), out]
    MXTensor& gout = (*in)[0];
    MXTensor& data = (*in)[1 + p.i_data];
    const int code = cuda_dtype(k, data.dtype);
    const dcn_conv_geom g = conv_geom_gpu(k, p, data, gout);
    int64_t bytes = 0;
    void* ws = conv_workspace_gpu(k, g, code, res, &bytes);
    cuda_ok(k, dcn_cuda_conv_backward(
                   &g, code, gout.data_ptr, data.data_ptr, (*in)[1 + p.i_offset].data_ptr,
                   p.modulated ? (*in)[1 + p.i_mask].data_ptr : nullptr,
                   (*in)[1 + p.i_weight].data_ptr, ptr_or_null(out, p.i_data),
                   ptr_or_null(out, p.i_offset), ptr_or_null(out, p.i_mask),
                   ptr_or_null(out, p.i_weight), ptr_or_null(out, p.i_bias), ws, bytes,
                   res.get_cuda_stream()));
  });
}

}  // namespace dcn_ext
