/*
 * dcn_sampling.h - device-agnostic sampling math shared by the CPU and CUDA
 * implementations of the deformable operators.
 *
 * Every function here is a pure function of its arguments (no allocation, no
 * global state), so that CUDA kernels can include this header unchanged: under
 * __CUDACC__ the DCN_HD macro marks them __host__ __device__.
 *
 * Conventions
 *  - A "sampling record" for one fractional position (h, w) in an H x W plane
 *    is four flat corner indices idx[k] (row-major, within the plane) and four
 *    weights wt[k], so that sample = sum_k wt[k] * plane[idx[k]].  Corners that
 *    must not contribute get weight 0 and a safe index (0).  Corner order is
 *    (h_low, w_low), (h_low, w_high), (h_high, w_low), (h_high, w_high).
 *  - Derivative records dh[k], dw[k] give d(sample)/dh = sum_k dh[k] * v[k] and
 *    d(sample)/dw = sum_k dw[k] * v[k] over the same corners.
 *  - The data gradient of a sample is the transpose of the forward record:
 *    grad_plane[idx[k]] += wt[k] * grad_sample.
 */
#ifndef DCN_SAMPLING_H_
#define DCN_SAMPLING_H_

#include <math.h>

#ifdef __CUDACC__
#define DCN_HD __host__ __device__ __forceinline__
#else
#define DCN_HD inline
#endif

namespace dcn {

template <typename T>
DCN_HD T dcn_min(T a, T b) { return a < b ? a : b; }
template <typename T>
DCN_HD T dcn_max(T a, T b) { return a > b ? a : b; }

/*! \brief output extent of a (dilated) convolution along one axis */
DCN_HD long conv_out_size(long in, long kernel, long pad, long stride, long dilate) {
  return (in + 2 * pad - dilate * (kernel - 1) - 1) / stride + 1;
}

template <typename T>
DCN_HD void zero_record(int* idx, T* wt) {
  for (int k = 0; k < 4; ++k) { idx[k] = 0; wt[k] = T(0); }
}

/*!
 * \brief DCNv1 sampling (MXNet DeformableConvolution).
 * Positions outside [0, H) x [0, W) read 0.  Inside, a coordinate whose floor
 * is at or beyond the last row/column is clamped to it (so the last row/column
 * is replicated over the final half-open pixel).  NaN positions read 0.
 * \return true when the position is inside the map.
 */
template <typename T>
DCN_HD bool v1_record(T h, T w, int H, int W, int* idx, T* wt) {
  if (!(h >= T(0) && w >= T(0) && h < T(H) && w < T(W))) {
    zero_record(idx, wt);
    return false;
  }
  int hl = static_cast<int>(floor(h));
  int wl = static_cast<int>(floor(w));
  int hh, wh;
  if (hl >= H - 1) { hl = hh = H - 1; h = static_cast<T>(hl); } else { hh = hl + 1; }
  if (wl >= W - 1) { wl = wh = W - 1; w = static_cast<T>(wl); } else { wh = wl + 1; }
  const T lh = h - hl, lw = w - wl, uh = T(1) - lh, uw = T(1) - lw;
  idx[0] = hl * W + wl; idx[1] = hl * W + wh; idx[2] = hh * W + wl; idx[3] = hh * W + wh;
  wt[0] = uh * uw; wt[1] = uh * lw; wt[2] = lh * uw; wt[3] = lh * lw;
  return true;
}

/*!
 * \brief DCNv1 derivative record (the gradient MXNet's DeformableConvolution
 * propagates to offsets): zero outside the map and along a clamped axis.
 */
template <typename T>
DCN_HD bool v1_grad_record(T h, T w, int H, int W, int* idx, T* dh, T* dw) {
  if (!(h >= T(0) && w >= T(0) && h < T(H) && w < T(W))) {
    zero_record(idx, dh);
    for (int k = 0; k < 4; ++k) dw[k] = T(0);
    return false;
  }
  int hl = static_cast<int>(floor(h));
  int wl = static_cast<int>(floor(w));
  int hh, wh;
  bool h_clamped = false, w_clamped = false;
  if (hl >= H - 1) { hl = hh = H - 1; h = static_cast<T>(hl); h_clamped = true; } else { hh = hl + 1; }
  if (wl >= W - 1) { wl = wh = W - 1; w = static_cast<T>(wl); w_clamped = true; } else { wh = wl + 1; }
  const T lh = h - hl, lw = w - wl, uh = T(1) - lh, uw = T(1) - lw;
  idx[0] = hl * W + wl; idx[1] = hl * W + wh; idx[2] = hh * W + wl; idx[3] = hh * W + wh;
  if (h_clamped) {
    for (int k = 0; k < 4; ++k) dh[k] = T(0);
  } else {
    dh[0] = -uw; dh[1] = -lw; dh[2] = uw; dh[3] = lw;
  }
  if (w_clamped) {
    for (int k = 0; k < 4; ++k) dw[k] = T(0);
  } else {
    dw[0] = -uh; dw[1] = uh; dw[2] = -lh; dw[3] = lh;
  }
  return true;
}

/*!
 * \brief DCNv2 sampling (modulated deformable convolution): bilinear
 * interpolation on the zero-padded map.  Positions with h in (-1, H) and w in
 * (-1, W) get a record with the out-of-map corners zeroed; others read 0.
 */
template <typename T>
DCN_HD bool v2_record(T h, T w, int H, int W, int* idx, T* wt) {
  if (!(h > T(-1) && w > T(-1) && h < T(H) && w < T(W))) {
    zero_record(idx, wt);
    return false;
  }
  const int hl = static_cast<int>(floor(h));
  const int wl = static_cast<int>(floor(w));
  const int hh = hl + 1, wh = wl + 1;
  const T lh = h - hl, lw = w - wl, uh = T(1) - lh, uw = T(1) - lw;
  const bool hl_ok = hl >= 0, hh_ok = hh <= H - 1, wl_ok = wl >= 0, wh_ok = wh <= W - 1;
  idx[0] = (hl_ok && wl_ok) ? hl * W + wl : 0;
  idx[1] = (hl_ok && wh_ok) ? hl * W + wh : 0;
  idx[2] = (hh_ok && wl_ok) ? hh * W + wl : 0;
  idx[3] = (hh_ok && wh_ok) ? hh * W + wh : 0;
  wt[0] = (hl_ok && wl_ok) ? uh * uw : T(0);
  wt[1] = (hl_ok && wh_ok) ? uh * lw : T(0);
  wt[2] = (hh_ok && wl_ok) ? lh * uw : T(0);
  wt[3] = (hh_ok && wh_ok) ? lh * lw : T(0);
  return true;
}

/*! \brief DCNv2 derivative record (exact derivative of v2_record's sample). */
template <typename T>
DCN_HD bool v2_grad_record(T h, T w, int H, int W, int* idx, T* dh, T* dw) {
  if (!(h > T(-1) && w > T(-1) && h < T(H) && w < T(W))) {
    zero_record(idx, dh);
    for (int k = 0; k < 4; ++k) dw[k] = T(0);
    return false;
  }
  const int hl = static_cast<int>(floor(h));
  const int wl = static_cast<int>(floor(w));
  const int hh = hl + 1, wh = wl + 1;
  const T lh = h - hl, lw = w - wl, uh = T(1) - lh, uw = T(1) - lw;
  const bool ok[4] = {hl >= 0 && wl >= 0, hl >= 0 && wh <= W - 1,
                      hh <= H - 1 && wl >= 0, hh <= H - 1 && wh <= W - 1};
  const int id[4] = {hl * W + wl, hl * W + wh, hh * W + wl, hh * W + wh};
  const T gh[4] = {-uw, -lw, uw, lw};
  const T gw[4] = {-uh, uh, -lh, lh};
  for (int k = 0; k < 4; ++k) {
    idx[k] = ok[k] ? id[k] : 0;
    dh[k] = ok[k] ? gh[k] : T(0);
    dw[k] = ok[k] ? gw[k] : T(0);
  }
  return true;
}

/*! \brief sampling position of kernel tap (i, j) for output pixel (ho, wo) */
template <typename T>
DCN_HD void conv_tap_position(int ho, int wo, int i, int j, int stride_h, int stride_w,
                              int pad_h, int pad_w, int dil_h, int dil_w,
                              T off_h, T off_w, T* h, T* w) {
  *h = static_cast<T>(ho * stride_h - pad_h + i * dil_h) + off_h;
  *w = static_cast<T>(wo * stride_w - pad_w + j * dil_w) + off_w;
}

/* ------------------------------------------------------------------------ */
/* Position-sensitive RoI pooling                                            */
/* ------------------------------------------------------------------------ */

/*! \brief RoI geometry of deformable PS RoI pooling (legacy pixel convention) */
template <typename T>
struct DPSRoI {
  int batch;
  T start_w, start_h, width, height;
};

template <typename T>
DCN_HD DPSRoI<T> dpsroi_geometry(const T* roi, T spatial_scale) {
  DPSRoI<T> r;
  r.batch = static_cast<int>(roi[0]);
  r.start_w = static_cast<T>(round(roi[1])) * spatial_scale - T(0.5);
  r.start_h = static_cast<T>(round(roi[2])) * spatial_scale - T(0.5);
  const T end_w = static_cast<T>(round(roi[3]) + T(1)) * spatial_scale - T(0.5);
  const T end_h = static_cast<T>(round(roi[4]) + T(1)) * spatial_scale - T(0.5);
  r.width = dcn_max(end_w - r.start_w, T(0.1));
  r.height = dcn_max(end_h - r.start_h, T(0.1));
  return r;
}

/*! \brief position-sensitive group cell of pooled bin (ph, pw) */
DCN_HD int ps_group_index(int p, int pooled, int group) {
  int g = static_cast<int>(floor(static_cast<float>(p) * group / pooled));
  return dcn_min(dcn_max(g, 0), group - 1);
}

/*! \brief part cell of pooled bin p (for the trans lookup) */
DCN_HD int dpsroi_part_index(int p, int pooled, int part_size) {
  return static_cast<int>(floor(static_cast<float>(p) / pooled * part_size));
}

/*!
 * \brief Clamp a deformable PS RoI pooling sample into the map.
 * Samples more than half a pixel outside are skipped (return false).
 */
template <typename T>
DCN_HD bool dpsroi_sample(T* w, T* h, int W, int H) {
  if (*w < T(-0.5) || *w > T(W) - T(0.5) || *h < T(-0.5) || *h > T(H) - T(0.5)) return false;
  *w = dcn_min(dcn_max(*w, T(0)), T(W - 1));
  *h = dcn_min(dcn_max(*h, T(0)), T(H - 1));
  return true;
}

/*!
 * \brief floor/ceil bilinear record of deformable PS RoI pooling for an
 * in-map position (x = w, y = h).  Also gives the interpolation distances.
 */
template <typename T>
DCN_HD void dpsroi_record(T x, T y, int W, int* idx, T* wt, T* dist_x, T* dist_y) {
  const int x0 = static_cast<int>(floor(x)), x1 = static_cast<int>(ceil(x));
  const int y0 = static_cast<int>(floor(y)), y1 = static_cast<int>(ceil(y));
  const T dx = x - x0, dy = y - y0;
  idx[0] = y0 * W + x0; idx[1] = y1 * W + x0; idx[2] = y0 * W + x1; idx[3] = y1 * W + x1;
  wt[0] = (T(1) - dx) * (T(1) - dy); wt[1] = (T(1) - dx) * dy;
  wt[2] = dx * (T(1) - dy);          wt[3] = dx * dy;
  *dist_x = dx; *dist_y = dy;
}

/*!
 * \brief derivative of a dpsroi sample w.r.t. x and y given the corner values
 * v[] in dpsroi_record order (y0x0, y1x0, y0x1, y1x1).
 */
template <typename T>
DCN_HD void dpsroi_sample_grad(const T* v, T dist_x, T dist_y, T* gx, T* gy) {
  *gx = v[3] * dist_y + v[2] * (T(1) - dist_y) - v[1] * dist_y - v[0] * (T(1) - dist_y);
  *gy = v[3] * dist_x + v[1] * (T(1) - dist_x) - v[2] * dist_x - v[0] * (T(1) - dist_x);
}

/*!
 * \brief One axis of a deformable PS RoI pooling sample.  The sampling grid of a
 * bin is separable: a sample is used iff both of its coordinates are within
 * half a pixel of the map, and its bilinear record is the product of the two
 * axis records (lo, hi = floor, ceil of the clamped coordinate; d = distance to lo).
 * Equivalent to dpsroi_sample + dpsroi_record.
 */
template <typename T>
DCN_HD bool dpsroi_axis(T v, int size, int* lo, int* hi, T* d) {
  if (v < T(-0.5) || v > T(size) - T(0.5)) return false;
  v = dcn_min(dcn_max(v, T(0)), T(size - 1));
  *lo = static_cast<int>(floor(v));
  *hi = static_cast<int>(ceil(v));
  *d = v - *lo;
  return true;
}

/*! \brief bin bounds of plain PS RoI pooling (integer cells, clipped to map) */
template <typename T>
DCN_HD void psroi_bin(const T* roi, T spatial_scale, int ph, int pw, int pooled, int H, int W,
                      int* hstart, int* hend, int* wstart, int* wend) {
  const T rsw = static_cast<T>(round(roi[1])) * spatial_scale;
  const T rsh = static_cast<T>(round(roi[2])) * spatial_scale;
  const T rew = static_cast<T>(round(roi[3]) + T(1)) * spatial_scale;
  const T reh = static_cast<T>(round(roi[4]) + T(1)) * spatial_scale;
  const T rw = dcn_max(rew - rsw, T(0.1));
  const T rh = dcn_max(reh - rsh, T(0.1));
  const T bh = rh / static_cast<T>(pooled);
  const T bw = rw / static_cast<T>(pooled);
  // clamp in floating point before converting, so that huge boxes cannot overflow
  const T hs = floor(static_cast<T>(ph) * bh + rsh);
  const T ws = floor(static_cast<T>(pw) * bw + rsw);
  const T he = ceil(static_cast<T>(ph + 1) * bh + rsh);
  const T we = ceil(static_cast<T>(pw + 1) * bw + rsw);
  *hstart = static_cast<int>(dcn_min(dcn_max(hs, T(0)), T(H)));
  *hend = static_cast<int>(dcn_min(dcn_max(he, T(0)), T(H)));
  *wstart = static_cast<int>(dcn_min(dcn_max(ws, T(0)), T(W)));
  *wend = static_cast<int>(dcn_min(dcn_max(we, T(0)), T(W)));
}

/*! \brief one bin of plain PS RoI pooling: the input channel it reads and its clipped cells */
struct PSRoIBinCells {
  int c, hs, he, ws, we;
};

template <typename T>
DCN_HD PSRoIBinCells psroi_cells(const T* roi, T spatial_scale, int ctop, int ph, int pw,
                                 int pooled, int group, int H, int W) {
  PSRoIBinCells b;
  psroi_bin(roi, spatial_scale, ph, pw, pooled, H, W, &b.hs, &b.he, &b.ws, &b.we);
  b.c = (ctop * group + ps_group_index(ph, pooled, group)) * group +
        ps_group_index(pw, pooled, group);
  return b;
}

/*! \brief number of cells of a bin (0 when it is empty after clipping) */
DCN_HD int psroi_area(const PSRoIBinCells& b) {
  return (b.he <= b.hs || b.we <= b.ws) ? 0 : (b.he - b.hs) * (b.we - b.ws);
}

/*! \brief mean of one input plane (row stride W) over the cells of a bin; 0 for an empty bin */
template <typename T>
DCN_HD T psroi_mean(const T* plane, int W, const PSRoIBinCells& b) {
  const int area = psroi_area(b);
  if (area == 0) return T(0);
  T sum = T(0);
  for (int y = b.hs; y < b.he; ++y)
    for (int x = b.ws; x < b.we; ++x) sum += plane[static_cast<int64_t>(y) * W + x];
  return sum / static_cast<T>(area);
}


/* ------------------------------------------------------------------------ */
/* RoI max pooling (MXNet ROIPooling) and FPN level assignment               */
/* ------------------------------------------------------------------------ */

/*! \brief round half away from zero to an integer, clamped to +-2^30 first (no overflow) */
template <typename T>
DCN_HD long roi_round(T v) {
  const T lim = T(1073741824.0);
  return static_cast<long>(round(dcn_min(dcn_max(v, -lim), lim)));
}

/*!
 * \brief Cells [hs, he) x [ws, we) of output bin (ph, pw) of MXNet's ROIPooling: corners
 * rounded after scaling, a RoI of at least 1 x 1 cell, bin b covering
 * [floor(b * size / pooled), ceil((b + 1) * size / pooled)) from the rounded start, clipped
 * to the map.  The bin is empty when he <= hs or we <= ws (the built-in outputs 0 there).
 */
struct RoIMaxBin {
  int hs, he, ws, we;
};

template <typename T>
DCN_HD RoIMaxBin roi_max_bin(const T* roi, T spatial_scale, int ph, int pw, int pooled_h,
                             int pooled_w, int H, int W) {
  const long sw = roi_round(roi[1] * spatial_scale), sh = roi_round(roi[2] * spatial_scale);
  const long ew = roi_round(roi[3] * spatial_scale), eh = roi_round(roi[4] * spatial_scale);
  const long rh = dcn_max(eh - sh + 1, 1L), rw = dcn_max(ew - sw + 1, 1L);
  const T bh = static_cast<T>(rh) / static_cast<T>(pooled_h);
  const T bw = static_cast<T>(rw) / static_cast<T>(pooled_w);
  const long hs = static_cast<long>(floor(static_cast<T>(ph) * bh)) + sh;
  const long ws = static_cast<long>(floor(static_cast<T>(pw) * bw)) + sw;
  const long he = static_cast<long>(ceil(static_cast<T>(ph + 1) * bh)) + sh;
  const long we = static_cast<long>(ceil(static_cast<T>(pw + 1) * bw)) + sw;
  RoIMaxBin b;
  b.hs = static_cast<int>(dcn_min(dcn_max(hs, 0L), static_cast<long>(H)));
  b.he = static_cast<int>(dcn_min(dcn_max(he, 0L), static_cast<long>(H)));
  b.ws = static_cast<int>(dcn_min(dcn_max(ws, 0L), static_cast<long>(W)));
  b.we = static_cast<int>(dcn_min(dcn_max(we, 0L), static_cast<long>(W)));
  return b;
}

/*!
 * \brief Max over the cells of a ROIPooling bin as the built-in scans them: start value
 * -FLT_MAX, row by row, a cell replaces the maximum only when strictly greater (NaN never
 * does; the first of equal maxima wins).  *arg gets the flat cell index in the plane, -1
 * when the bin is empty or no cell exceeded -FLT_MAX; the value is then 0 for an empty bin
 * and -FLT_MAX otherwise (as the built-in).
 */
template <typename V, typename Load>
DCN_HD V roi_max_scan(const RoIMaxBin& b, int W, const Load& load, long* arg) {
  *arg = -1;
  if (b.he <= b.hs || b.we <= b.ws) return V(0);
  V m = V(-3.402823466e+38f);  // -FLT_MAX in every type (as the built-in)
  for (int y = b.hs; y < b.he; ++y) {
    for (int x = b.ws; x < b.we; ++x) {
      const long i = static_cast<long>(y) * W + x;
      const V v = load(i);
      if (v > m) {
        m = v;
        *arg = i;
      }
    }
  }
  return m;
}

/*!
 * \brief FPN level index of a RoI (x1, y1, x2, y2 = roi[1..4]), as the original's
 * fpn_roi_pooling.py: w = x2 - x1 + 1, h = y2 - y1 + 1,
 * k = clip(floor(2 + log2(sqrt(w * h) / 224)), 0, num_levels - 1), level P(k + 2), computed
 * in the type T of the RoIs like numpy on them (log2 correctly rounded to T).  A negative
 * area (or NaN) has no level: returns -1 (the operators reject such a RoI first).
 */
template <typename T>
DCN_HD int fpn_level(const T* roi, int num_levels) {
  const T w = roi[3] - roi[1] + T(1);
  const T h = roi[4] - roi[2] + T(1);
  const T area = w * h;
  if (!(area >= T(0))) return -1;
  const T s = sqrt(area) / T(224);
  const T l = static_cast<T>(log2(static_cast<double>(s)));
  const T k = floor(T(2) + l);
  if (!(k >= T(0))) return 0;  // also -inf (zero area)
  if (k >= static_cast<T>(num_levels - 1)) return num_levels - 1;
  return static_cast<int>(k);
}

}  // namespace dcn

#endif  // DCN_SAMPLING_H_
