/*
 * dcn_simd.h - portable short vectors for the ISA-specific CPU kernels.
 *
 * Each tuned algorithm is written once, as an always-inline template over a
 * GCC vector type (V8 = 8 floats, V16 = 16 floats), and instantiated inside a
 * thin wrapper compiled for one instruction set with a function target
 * attribute (DCN_TARGET_AVX2 / DCN_TARGET_AVX512).  A body without a target of
 * its own may be inlined into a wrapper whose target is a superset, so the
 * same source becomes AVX2 code in one wrapper and AVX-512 code in the other,
 * while the rest of the library stays x86-64-v2.  The wrappers are called only
 * when dcn_cpu_isa.h says the CPU has that ISA.
 *
 * Vector values never cross a non-inlined call boundary (their ABI would
 * depend on the ISA), hence the -Wpsabi pragma below.
 */
#ifndef DCN_SIMD_H_
#define DCN_SIMD_H_

#include "dcn_cpu_isa.h"

#ifdef DCN_HAVE_X86_KERNELS
#include <stdint.h>
#include <string.h>

#pragma GCC diagnostic ignored "-Wpsabi"

#define DCN_INLINE inline __attribute__((always_inline))
#define DCN_TARGET_AVX2 __attribute__((target("avx2,fma"), noinline))
#define DCN_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx2,fma"), noinline))

namespace dcn {
namespace cpu {
namespace simd {

typedef float V8 __attribute__((vector_size(32)));
typedef float V16 __attribute__((vector_size(64)));

template <typename V>
struct Lanes {
  static constexpr int value = sizeof(V) / sizeof(float);
};

/*! \brief unaligned load / store (memcpy: no alignment is assumed) */
template <typename V>
DCN_INLINE V load(const float* p) {
  V v;
  memcpy(&v, p, sizeof(V));
  return v;
}
template <typename V>
DCN_INLINE void store(float* p, V v) {
  memcpy(p, &v, sizeof(V));
}
/*! \brief the first n (< lanes) values; the others 0 */
template <typename V>
DCN_INLINE V load_part(const float* p, int n) {
  float tmp[Lanes<V>::value] = {};
  for (int i = 0; i < n; ++i) tmp[i] = p[i];
  return load<V>(tmp);
}
template <typename V>
DCN_INLINE void store_part(float* p, V v, int n) {
  float tmp[Lanes<V>::value];
  store(tmp, v);
  for (int i = 0; i < n; ++i) p[i] = tmp[i];
}
template <typename V>
DCN_INLINE V splat(float x) {
  return V{} + x;
}

/*! \brief the sum of the lanes */
template <typename V>
DCN_INLINE float hsum(V v) {
  float tmp[Lanes<V>::value];
  store(tmp, v);
  float s = 0.f;
  for (int i = 0; i < Lanes<V>::value; ++i) s += tmp[i];
  return s;
}

/*! \brief in-place transpose of the 8 x 8 matrix r[row][lane] */
DCN_INLINE void transpose8(V8* r) {
  typedef int I8 __attribute__((vector_size(32)));
  const V8 t0 = __builtin_shuffle(r[0], r[1], I8{0, 8, 1, 9, 4, 12, 5, 13});
  const V8 t1 = __builtin_shuffle(r[0], r[1], I8{2, 10, 3, 11, 6, 14, 7, 15});
  const V8 t2 = __builtin_shuffle(r[2], r[3], I8{0, 8, 1, 9, 4, 12, 5, 13});
  const V8 t3 = __builtin_shuffle(r[2], r[3], I8{2, 10, 3, 11, 6, 14, 7, 15});
  const V8 t4 = __builtin_shuffle(r[4], r[5], I8{0, 8, 1, 9, 4, 12, 5, 13});
  const V8 t5 = __builtin_shuffle(r[4], r[5], I8{2, 10, 3, 11, 6, 14, 7, 15});
  const V8 t6 = __builtin_shuffle(r[6], r[7], I8{0, 8, 1, 9, 4, 12, 5, 13});
  const V8 t7 = __builtin_shuffle(r[6], r[7], I8{2, 10, 3, 11, 6, 14, 7, 15});
  const V8 u0 = __builtin_shuffle(t0, t2, I8{0, 1, 8, 9, 4, 5, 12, 13});
  const V8 u1 = __builtin_shuffle(t0, t2, I8{2, 3, 10, 11, 6, 7, 14, 15});
  const V8 u2 = __builtin_shuffle(t1, t3, I8{0, 1, 8, 9, 4, 5, 12, 13});
  const V8 u3 = __builtin_shuffle(t1, t3, I8{2, 3, 10, 11, 6, 7, 14, 15});
  const V8 u4 = __builtin_shuffle(t4, t6, I8{0, 1, 8, 9, 4, 5, 12, 13});
  const V8 u5 = __builtin_shuffle(t4, t6, I8{2, 3, 10, 11, 6, 7, 14, 15});
  const V8 u6 = __builtin_shuffle(t5, t7, I8{0, 1, 8, 9, 4, 5, 12, 13});
  const V8 u7 = __builtin_shuffle(t5, t7, I8{2, 3, 10, 11, 6, 7, 14, 15});
  r[0] = __builtin_shuffle(u0, u4, I8{0, 1, 2, 3, 8, 9, 10, 11});
  r[1] = __builtin_shuffle(u1, u5, I8{0, 1, 2, 3, 8, 9, 10, 11});
  r[2] = __builtin_shuffle(u2, u6, I8{0, 1, 2, 3, 8, 9, 10, 11});
  r[3] = __builtin_shuffle(u3, u7, I8{0, 1, 2, 3, 8, 9, 10, 11});
  r[4] = __builtin_shuffle(u0, u4, I8{4, 5, 6, 7, 12, 13, 14, 15});
  r[5] = __builtin_shuffle(u1, u5, I8{4, 5, 6, 7, 12, 13, 14, 15});
  r[6] = __builtin_shuffle(u2, u6, I8{4, 5, 6, 7, 12, 13, 14, 15});
  r[7] = __builtin_shuffle(u3, u7, I8{4, 5, 6, 7, 12, 13, 14, 15});
}

}  // namespace simd
}  // namespace cpu
}  // namespace dcn

#endif  // DCN_HAVE_X86_KERNELS
#endif  // DCN_SIMD_H_
