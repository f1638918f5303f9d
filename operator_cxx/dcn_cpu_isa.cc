/*
 * dcn_cpu_isa.cc - run-time selection of the CPU kernels (see dcn_cpu_isa.h).
 */
#include "dcn_cpu_isa.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>

namespace dcn {
namespace cpu {
namespace {

const char* const kNames[] = {"generic", "avx2", "avx512"};

int parse(const char* name) {
  if (!name) return -1;
  for (int i = 0; i < 3; ++i)
    if (strcmp(name, kNames[i]) == 0) return i;
  return -1;
}

// DCN_CPU_ISA_MAX caps what counts as supported (like oneDNN's DNNL_MAX_CPU_ISA): a
// machine with AVX-512 then behaves as one without, e.g. to check the fallbacks.
int isa_cap() {
  static const int cap = [] {
    const char* v = getenv("DCN_CPU_ISA_MAX");
    if (!v || !*v) return static_cast<int>(kIsaAvx512);
    const int c = parse(v);
    if (c < 0) {
      fprintf(stderr, "dcn.ops: DCN_CPU_ISA_MAX=%s is not one of generic, avx2, avx512; ignored\n", v);
      return static_cast<int>(kIsaAvx512);
    }
    return c;
  }();
  return cap;
}

bool cpu_has(int isa) {
  if (isa == kIsaGeneric) return true;
  if (isa > isa_cap()) return false;
#ifdef DCN_HAVE_X86_KERNELS
  // __builtin_cpu_supports reports AVX / AVX-512 only when the OS saves their
  // register state (XCR0), so a kernel using them cannot fault here.
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == kIsaAvx2) return avx2;
  if (isa == kIsaAvx512)
    return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
#endif
  return false;
}

int best() {
  for (int i = kIsaAvx512; i > kIsaGeneric; --i)
    if (cpu_has(i)) return i;
  return kIsaGeneric;
}


int initial() {
  const char* env = getenv("DCN_CPU_ISA");
  if (!env || !*env || strcmp(env, "auto") == 0) return best();
  const int want = parse(env);
  if (want < 0) {
    const int b = best();
    fprintf(stderr,
            "dcn.ops: DCN_CPU_ISA=%s is not one of generic, avx2, avx512, auto; using %s "
            "(the best this CPU supports)\n",
            env, kNames[b]);
    return b;
  }
  if (cpu_has(want)) return want;
  int fallback = want;
  while (fallback > kIsaGeneric && !cpu_has(fallback)) --fallback;
  if (want > isa_cap())
    fprintf(stderr, "dcn.ops: DCN_CPU_ISA=%s requested but DCN_CPU_ISA_MAX=%s excludes it; using %s\n",
            env, kNames[isa_cap()], kNames[fallback]);
  else
#ifdef DCN_HAVE_X86_KERNELS
    fprintf(stderr, "dcn.ops: DCN_CPU_ISA=%s requested but this CPU lacks %s; using %s\n", env,
            want == kIsaAvx512 ? "AVX-512 (avx512f, avx512vl)" : "AVX2 and FMA", kNames[fallback]);
#else
    fprintf(stderr, "dcn.ops: DCN_CPU_ISA=%s requested but this build has the generic kernels "
            "only; using generic\n", env);
#endif
  return fallback;
}

std::atomic<int>& state() {
  static std::atomic<int> s{initial()};
  return s;
}

// AVX-512 GEMM tile width (16 or 32 columns).  Auto: 32 on Intel (two 512-bit FMA units
// per core; a 12 x 16 tile issues 13 loads per 12 FMAs and is load bound there), 16
// elsewhere (Zen 4 splits 512-bit FMAs over its 256-bit units; the 12 x 16 tile was 2-5 %
// faster there).  DCN_CPU_GEMM_TILE=16|32|auto overrides it.
int tile_auto() {
#ifdef DCN_HAVE_X86_KERNELS
  __builtin_cpu_init();
  return __builtin_cpu_is("intel") ? 32 : 16;
#else
  return 16;
#endif
}

int tile_initial() {
  const char* env = getenv("DCN_CPU_GEMM_TILE");
  if (!env || !*env || strcmp(env, "auto") == 0) return tile_auto();
  if (strcmp(env, "16") == 0) return 16;
  if (strcmp(env, "32") == 0) return 32;
  fprintf(stderr, "dcn.ops: DCN_CPU_GEMM_TILE=%s is not one of 16, 32, auto; using %d\n", env,
          tile_auto());
  return tile_auto();
}

std::atomic<int>& tile_state() {
  static std::atomic<int> s{tile_initial()};
  return s;
}

// read the environment when the library is loaded, so that its message (if any)
// appears then and not at the first operator call
const int kLoaded = state().load() + tile_state().load();

}  // namespace

int isa_current() { return state().load(std::memory_order_relaxed); }
bool isa_supported(int isa) { return isa >= kIsaGeneric && isa <= kIsaAvx512 && cpu_has(isa); }
bool gemm_wide_tiles() { return tile_state().load(std::memory_order_relaxed) == 32; }
const char* isa_name(int isa) {
  return isa >= kIsaGeneric && isa <= kIsaAvx512 ? kNames[isa] : "unknown";
}

}  // namespace cpu
}  // namespace dcn

extern "C" {

__attribute__((visibility("default"))) int dcn_cpu_isa_set(const char* name) {
  using namespace dcn::cpu;
  int isa = name && strcmp(name, "auto") == 0 ? best() : parse(name);
  if (isa < 0) return -1;
  if (!cpu_has(isa)) return -2;
  state().store(isa);
  return 0;
}

__attribute__((visibility("default"))) const char* dcn_cpu_isa_get() {
  return dcn::cpu::isa_name(dcn::cpu::isa_current());
}

__attribute__((visibility("default"))) int dcn_cpu_isa_supported(const char* name) {
  if (name && strcmp(name, "auto") == 0) return 1;
  const int isa = dcn::cpu::parse(name);
  return isa < 0 ? -1 : (dcn::cpu::cpu_has(isa) ? 1 : 0);
}

__attribute__((visibility("default"))) int dcn_cpu_gemm_tile_set(int cols) {
  using namespace dcn::cpu;
  if (cols == 0) cols = tile_auto();
  if (cols != 16 && cols != 32) return -1;
  tile_state().store(cols);
  return 0;
}

__attribute__((visibility("default"))) int dcn_cpu_gemm_tile_get() {
  return dcn::cpu::tile_state().load();
}
}
