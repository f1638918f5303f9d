/*
 * dcn_half.h - IEEE 754 binary16 (float16) <-> float32 conversions in portable
 * C++ (no F16C instructions needed), as numpy and MXNet convert: float32 ->
 * float16 rounds to nearest, ties to even; overflow gives infinity; NaN stays
 * NaN.  Used by the CPU glue (float16 tensors are computed in float32) and by
 * the host emulation of the CUDA code (cuda/emu).
 */
#ifndef DCN_HALF_H_
#define DCN_HALF_H_

#include <stdint.h>
#include <string.h>

namespace dcn {

inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0) {
    // zero or subnormal: mantissa * 2^-24, exact in float32
    const float v = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
    memcpy(&bits, &v, 4);
    bits |= sign;
  } else if (exponent == 31) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // infinity / NaN (payload kept)
  } else {
    bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);  // rebias 15 -> 127
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t float_to_half(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t a = x & 0x7fffffffu;
  if (a >= 0x7f800000u)  // infinity, NaN (kept quiet)
    return sign | 0x7c00u | (a > 0x7f800000u ? 0x200u | ((a >> 13) & 0x3ffu) : 0u);
  if (a >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to infinity
  if (a < 0x38800000u) {
    // below the smallest normal float16 (2^-14): a multiple of 2^-24.  Adding 0.5
    // (whose ulp is 2^-24) rounds to it, ties to even, in the float32 addition.
    float v;
    memcpy(&v, &a, 4);
    v += 0.5f;
    uint32_t b;
    memcpy(&b, &v, 4);
    return sign | static_cast<uint16_t>(b - 0x3f000000u);
  }
  // normal: drop 13 mantissa bits rounding to nearest even (a carry moves into
  // the exponent, as it should), rebias the exponent 127 -> 15
  const uint32_t odd = (a >> 13) & 1u;
  const uint32_t r = a + 0xfffu + odd - (112u << 23);
  return sign | static_cast<uint16_t>(r >> 13);
}

inline void half_to_float(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = half_to_float(src[i]);
}

inline void float_to_half(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = float_to_half(src[i]);
}

}  // namespace dcn

#endif  // DCN_HALF_H_
