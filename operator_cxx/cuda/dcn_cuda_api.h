/*
 * dcn_cuda_api.h - C interface of the CUDA implementation of the deformable
 * operators (and of GPU NMS).
 *
 * Plain C: usable from C++ compiled without the CUDA headers (the GPU glue, dcn_*_gpu.cc) and
 * through ctypes (tests, benchmarks).  All tensor pointers are device pointers
 * (except the host boxes of dcn_cuda_nms), contiguous, row-major, of the dtype
 * named by `dtype` (DCN_F32, DCN_F64 or DCN_F16, MXNet's type codes).  float16
 * tensors are computed in float32 (column buffers, GEMMs, accumulations; see
 * dcn_cuda_impl.h) and the results rounded to float16.  `stream` is a
 * cudaStream_t (NULL: the legacy default stream); every kernel and cuBLAS call
 * is queued on it and nothing synchronises it.
 *
 * Functions return 0 on success and a non-zero code on failure;
 * dcn_cuda_last_error() then describes the failure (per thread).
 *
 * Layouts and semantics are those of the CPU operators (dcn_cpu_kernels.h):
 *   conv:   data (N,C,H,W), offset (N, 2*dg*kh*kw, Ho, Wo) with (y, x) pairs per
 *           kernel tap, mask (N, dg*kh*kw, Ho, Wo) [modulated only], weight
 *           (F, C/groups, kh, kw), bias (F) or NULL, out (N,F,Ho,Wo).
 *   pool:   data (N,C,H,W), rois (R,5) [batch, x1, y1, x2, y2], trans
 *           (R, 2*num_classes, part, part) or NULL, out/top_count
 *           (R, output_dim, pooled, pooled).
 * Backward: any gradient pointer may be NULL (not needed); every non-NULL
 * gradient is overwritten (never accumulated).
 */
#ifndef DCN_CUDA_API_H_
#define DCN_CUDA_API_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { DCN_F32 = 0, DCN_F64 = 1, DCN_F16 = 2 };

typedef struct dcn_conv_geom {
  int N, C, H, W;        /* input */
  int F, Ho, Wo;         /* output */
  int kh, kw, sh, sw, ph, pw, dh, dw;
  int groups, dgroups;
  int modulated;         /* 1: DCNv2 sampling and mask input */
  int im2col_step;       /* images per column buffer (clamped to [1, N]) */
} dcn_conv_geom;

typedef struct dcn_pool_geom {
  int N, C, H, W;        /* data */
  int R;                 /* rois */
  int output_dim, group, pooled, part, samples;
  int num_classes;       /* classes of trans (1 when no_trans) */
  int no_trans;          /* 1: plain sampling grid (trans ignored) */
  int deformable;        /* 0: PSROIPooling, 1: DeformablePSROIPooling */
  double spatial_scale, trans_std;
} dcn_pool_geom;

/* Workspace (device bytes) needed by conv forward/backward; -1 if g is invalid. */
int64_t dcn_cuda_conv_workspace_bytes(const dcn_conv_geom* g, int dtype);

int dcn_cuda_conv_forward(const dcn_conv_geom* g, int dtype, const void* data,
                          const void* offset, const void* mask, const void* weight,
                          const void* bias, void* out, void* workspace, int64_t workspace_bytes,
                          void* stream);

int dcn_cuda_conv_backward(const dcn_conv_geom* g, int dtype, const void* grad_out,
                           const void* data, const void* offset, const void* mask,
                           const void* weight, void* grad_data, void* grad_offset,
                           void* grad_mask, void* grad_weight, void* grad_bias, void* workspace,
                           int64_t workspace_bytes, void* stream);

/* Deformable PS RoI pooling (g->deformable = 1) or PS RoI pooling (0; top_count may
 * be NULL).  The batch index of a RoI (column 0) is truncated toward zero, as MXNet's
 * built-ins convert it; a RoI whose truncated index is outside [0, N) (or NaN) is never
 * read from: it pools to zeros and gets no gradient.  The operators check the RoIs on
 * the host first (dcn_cuda_copy_to_host) and report such a RoI as an error, as on the
 * CPU. */
int dcn_cuda_pool_forward(const dcn_pool_geom* g, int dtype, const void* data, const void* rois,
                          const void* trans, void* out, void* top_count, void* stream);

/* Workspace (device bytes) needed by pool backward (0 for float32 / float64: the
 * gradients accumulate in place); -1 if g is invalid. */
int64_t dcn_cuda_pool_workspace_bytes(const dcn_pool_geom* g, int dtype);

int dcn_cuda_pool_backward(const dcn_pool_geom* g, int dtype, const void* grad_out,
                           const void* data, const void* rois, const void* trans,
                           const void* top_count, void* grad_data, void* grad_trans,
                           void* workspace, int64_t workspace_bytes, void* stream);

/* FPN RoI pooling (the FPNROIPooling operator): RoI r is pooled from level
 * fpn_level(roi, levels) of ../dcn_sampling.h only.  data[l] (N, C, H[l], W[l]);
 * deformable: weight[l] (2 P^2, P^2 C), bias[l] (2 P^2), C = output channels.  `data`,
 * `weight`, `bias`, `grad_data`, `grad_weight`, `grad_bias` are host arrays of `levels`
 * device pointers (weight / bias: NULL when not deformable).  out / grad_out (R, C, P, P).
 * Plain: ROIPooling (max); deformable: DeformablePSROIPooling no_trans (group 1, part P)
 * -> FullyConnected (the level's weight, bias) -> DeformablePSROIPooling with that trans.
 * A RoI without a level (negative area) or outside the batch pools to zeros and gets no
 * gradient; the operator rejects such RoIs on the host first. */
#define DCN_FPN_MAX_LEVELS 8
typedef struct dcn_fpn_geom {
  int levels, N, C;
  int H[DCN_FPN_MAX_LEVELS], W[DCN_FPN_MAX_LEVELS];
  double spatial_scale[DCN_FPN_MAX_LEVELS]; /* 1 / stride of each level */
  int R, pooled, samples, deformable;
  double trans_std;
} dcn_fpn_geom;

/* Workspace (device bytes) of forward (backward = 0) or backward (1); -1 if g is invalid. */
int64_t dcn_cuda_fpn_workspace_bytes(const dcn_fpn_geom* g, int dtype, int backward);

int dcn_cuda_fpn_forward(const dcn_fpn_geom* g, int dtype, const void* const* data,
                         const void* const* weight, const void* const* bias, const void* rois,
                         void* out, void* workspace, int64_t workspace_bytes, void* stream);

int dcn_cuda_fpn_backward(const dcn_fpn_geom* g, int dtype, const void* grad_out,
                          const void* const* data, const void* const* weight,
                          const void* const* bias, const void* rois, void* const* grad_data,
                          void* const* grad_weight, void* const* grad_bias, void* workspace,
                          int64_t workspace_bytes, void* stream);

/* Fill `bytes` bytes at device pointer `ptr` with zeros (on `stream`). */
int dcn_cuda_zero(void* ptr, int64_t bytes, void* stream);

/* Copy `bytes` bytes from device pointer `device_src` to host memory `host_dst` after
 * the work queued on `stream`; returns when the copy is done (synchronises `stream`). */
int dcn_cuda_copy_to_host(void* host_dst, const void* device_src, int64_t bytes, void* stream);

/* GPU non-maximum suppression on device `device_id`.  `boxes` is a host (n, 5)
 * float32 array [x1, y1, x2, y2, score] (legacy +1 pixel convention); a box is
 * dropped when its IoU with a kept, higher-scored box is >= thresh.  Writes the
 * kept indices (into `boxes`, highest score first, ties in input order) to the
 * host array `keep` (room for n) and their count to *num_kept.  Synchronous. */
int dcn_cuda_nms(const float* boxes, int n, double thresh, int device_id, int* keep,
                 int* num_kept);

/* Number of visible CUDA devices (0 when none or no usable driver). */
int dcn_cuda_device_count(void);

/* 1: let cuBLAS use TF32 tensor cores for float32 GEMMs (faster, ~1e-3 relative
 * error); 0 (default): full float32.  Returns the previous setting. */
int dcn_cuda_set_allow_tf32(int allow);

/* Message of the last failure of this thread ("" if none). */
const char* dcn_cuda_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* DCN_CUDA_API_H_ */
