/*
 * bench_gemm.cc - the CPU GEMM of operator_cxx/dcn_gemm.h on this machine, per kernel set:
 *
 *   peak   the core's single-precision FMA rate (12 independent chains of vector FMAs in
 *          registers, one per thread): the ceiling every other row is read against;
 *   micro  the micro kernel alone on L1-resident panels (k = 256);
 *   sgemm  C = A B of stored row-major matrices (M x K times K x N), ours against the
 *          BLAS MXNet ships (OpenBLAS cblas_sgemm), interleaved, and their largest
 *          difference;
 *   res5   the deformable convolution forward of Deformable R-FCN's res5 layer (1x512x38x63
 *          -> 512, 3x3, dilate 2, 4 deformable groups) split into its parts: sampling every
 *          B panel once; the GEMM of those pre-sampled panels (read from memory: 44 MB);
 *          the GEMM alone (panels copied from cache-resident ones); and the fused forward
 *          (panels sampled while they are packed), as the operator runs it.
 *
 * Built and run by benchmarks/bench_gemm.py (same compiler flags as operator_cxx/build.sh);
 * OMP_NUM_THREADS sets the threads.  Usage: bench_gemm M N K REPEAT QUICK(0|1)
 * Prints one line per measurement ("name: key value ..."); exits 1 when our GEMM differs
 * from OpenBLAS by more than float rounding allows.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "dcn_cpu_kernels.h"

extern "C" int openblas_get_num_threads();  // exported by MXNet's OpenBLAS

using namespace dcn::cpu;
using namespace dcn::cpu::simd;

namespace {

double now_ms() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct Stats {
  std::vector<double> t;
  double min() const { return *std::min_element(t.begin(), t.end()); }
  /*! \brief the rounds as "t1,t2,..." (ms) */
  std::string joined() const {
    std::string out;
    char buf[32];
    for (size_t i = 0; i < t.size(); ++i) {
      snprintf(buf, sizeof(buf), "%s%.3f", i ? "," : "", t[i]);
      out += buf;
    }
    return out;
  }
  double median() const {
    std::vector<double> s = t;
    std::sort(s.begin(), s.end());
    const size_t h = s.size() / 2;
    return s.size() % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
  }
};

// ---- FMA peak: 12 independent accumulator chains per thread ----
template <typename V>
DCN_INLINE float peak_body(long iters) {
  V acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = V{} + 0.001f * i;
  const V x = V{} + 0.9999f, y = V{} + 1e-5f;
  for (long n = 0; n < iters; ++n) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = acc[i] * x + y;
  }
  V s = acc[0];
  for (int i = 1; i < 12; ++i) s += acc[i];
  return hsum(s);
}
DCN_TARGET_AVX2 float peak_avx2(long iters) { return peak_body<V8>(iters); }
DCN_TARGET_AVX512 float peak_avx512(long iters) { return peak_body<V16>(iters); }

/*! \brief GFLOP/s of `threads` threads together (each its own chains), best of `repeat` */
double peak_gflops(int isa, long iters, int repeat, int threads) {
  double best = 0;
  const int lanes = isa == kIsaAvx512 ? 16 : 8;
  float sink = 0;
  for (int r = 0; r < repeat; ++r) {
    const double t0 = now_ms();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    sink += isa == kIsaAvx512 ? peak_avx512(iters) : peak_avx2(iters);
    const double ms = now_ms() - t0;
    best = std::max(best, 2.0 * 12 * lanes * iters * threads / ms / 1e6);
  }
  if (sink == 12345.f) printf(" ");  // keeps the chains' results alive
  return best;
}

std::vector<float> randn(size_t n, float scale, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  std::vector<float> v(n);
  for (auto& x : v) x = scale * nd(rng);
  return v;
}

// ---- one kernel set ----
template <class Kn>
int run_kernels(const char* name, int M, int N, int K, int repeat, bool quick, double peak) {
  // micro kernel on L1-resident panels (one thread)
  {
    const int kc = Kn::KC;
    std::vector<float> a = randn(static_cast<size_t>(kc) * Kn::MR, 1.f, 1);
    std::vector<float> b = randn(static_cast<size_t>(kc) * Kn::NR, 1.f, 2);
    std::vector<float> c(static_cast<size_t>(Kn::MR) * Kn::NR, 0.f);
    const long calls = quick ? 20000 : 200000;
    double best = 0;
    for (int r = 0; r < std::max(3, repeat); ++r) {
      const double t0 = now_ms();
      for (long i = 0; i < calls; ++i)
        Kn::micro(kc, a.data(), b.data(), c.data(), Kn::NR, true, Kn::MR, Kn::NR);
      best = std::max(best, 2.0 * Kn::MR * Kn::NR * kc * calls / (now_ms() - t0) / 1e6);
    }
    printf("micro: kernels %s tile %dx%d gflops %.1f peak_1thread %.1f\n", name, Kn::MR, Kn::NR,
           best, peak);
  }
  // stored matrices, ours against OpenBLAS, interleaved
  int status = 0;
  {
    std::vector<float> a = randn(static_cast<size_t>(M) * K, 1.f, 3);
    std::vector<float> b = randn(static_cast<size_t>(K) * N, 1.f, 4);
    std::vector<float> c0(static_cast<size_t>(M) * N), c1(c0.size());
    Stats ours, blas;
    for (int r = 0; r <= repeat; ++r) {  // round 0: warm-up
      double t0 = now_ms();
      sgemm<Kn>(false, false, M, N, K, a.data(), K, b.data(), N, 0.f, c0.data(), N);
      const double t_ours = now_ms() - t0;
      t0 = now_ms();
      cblas_sgemm(kRowMajor, kNoTrans, kNoTrans, M, N, K, 1.f, a.data(), K, b.data(), N, 0.f,
                  c1.data(), N);
      const double t_blas = now_ms() - t0;
      if (r) {
        ours.t.push_back(t_ours);
        blas.t.push_back(t_blas);
      }
    }
    // |ours - blas| against the size of the sum's terms (sqrt(K) * |a| |b| for N(0,1) data)
    double worst = 0;
    for (size_t i = 0; i < c0.size(); ++i)
      worst = std::max(worst, static_cast<double>(fabsf(c0[i] - c1[i])));
    const double scale = sqrt(static_cast<double>(K)), rel = worst / scale;
    const double gf = 2.0 * M * N * K / 1e6;
    // every round of both, for the ratios (benchmarks/_timing.py)
    printf("sgemm: kernels %s m %d n %d k %d ours_gflops %.1f blas_gflops %.1f "
           "max_diff_rel %.2e ours_rounds_ms %s blas_rounds_ms %s\n",
           name, M, N, K, gf / ours.min(), gf / blas.min(), rel, ours.joined().c_str(),
           blas.joined().c_str());
    if (!(rel < 1e-5)) {
      fprintf(stderr, "bench_gemm: kernels %s differ from OpenBLAS by %.3g (relative to "
              "sqrt(k)); expected float rounding (< 1e-5)\n", name, rel);
      status = 1;
    }
  }
  // res5 deformable convolution forward, split into sampling and GEMM
  {
    const int C = quick ? 128 : 512, H = quick ? 19 : 38, W = quick ? 32 : 63, F = C, dg = 4;
    ConvGeom g{1, C, H, W, F, H, W, 3, 3, 1, 1, 2, 2, 2, 2, 1, dg, false};
    std::vector<float> data = randn(static_cast<size_t>(C) * H * W, 1.f, 5);
    std::vector<float> off = randn(static_cast<size_t>(2 * 9 * dg) * H * W, 2.f, 6);
    std::vector<float> wt = randn(static_cast<size_t>(F) * C * 9, 0.01f, 7);
    std::vector<int> pidx(g.plan_entries() * 4);
    std::vector<float> pwt(g.plan_entries() * 4), hwc(data.size());
    std::vector<float> out(static_cast<size_t>(F) * g.L()), out_pre(out.size());
    build_plan(g, 0, off.data(), static_cast<const float*>(nullptr), pidx.data(), pwt.data());
    const int L = static_cast<int>(g.L()), Kc = C * 9;
    const int64_t plane = static_cast<int64_t>(H) * W;
    const BlockedTapOrder order{C, 9, std::min(C, 128)};
    const HwcColumns cols{hwc.data(), pidx.data(), pwt.data(), L, 9, plane, C / dg, 0, order};
    const HwcPanel<Kn> panel{cols};
    const int NR = Kn::NR, KC = Kn::KC, np = (L + NR - 1) / NR, kb = (Kc + KC - 1) / KC;
    std::vector<float> pre(static_cast<size_t>(np) * NR * Kc);
    struct Presampled {  // the panels sampled beforehand, copied as they are packed
      const float* p;
      int np;
      void operator()(int k0, int kc, int j, int w, float* dst) const {
        memcpy(dst, p + static_cast<int64_t>(k0) * np * Kn::NR +
                        static_cast<int64_t>(j / Kn::NR) * kc * Kn::NR,
               sizeof(float) * kc * Kn::NR);
      }
    };
    // the GEMM alone: every B panel copied from one panel per k block, sampled beforehand
    // and cache resident (no sampling, no reads from memory; results not compared)
    struct CachedPanel {
      const float* p;
      int np;
      void operator()(int k0, int kc, int j, int w, float* dst) const {
        memcpy(dst, p + static_cast<int64_t>(k0) * np * Kn::NR, sizeof(float) * kc * Kn::NR);
      }
    };
    std::vector<float> out_cached(out.size());
    Stats sample, gemm_pre, gemm_cached, fused;
    for (int r = 0; r <= repeat; ++r) {
      double t0 = now_ms();
      to_blocked_channels_last(Kn::kIsa, data.data(), plane, C, C, order.cb, hwc.data());
#pragma omp parallel for schedule(static)
      for (int p = 0; p < np; ++p)
        for (int b = 0; b < kb; ++b) {
          const int k0 = b * KC, kc = std::min(KC, Kc - k0), j = p * NR;
          panel(k0, kc, j, std::min(NR, L - j),
                pre.data() + static_cast<int64_t>(k0) * np * NR + static_cast<int64_t>(p) * kc * NR);
        }
      const double t1 = now_ms();
      sgemm_gen<Kn>(F, L, Kc, BlockedTapWeights<Kn>{wt.data(), Kc, order},
                    Presampled{pre.data(), np}, 0.f, out_pre.data(), L);
      const double t2 = now_ms();
      sgemm_gen<Kn>(F, L, Kc, BlockedTapWeights<Kn>{wt.data(), Kc, order},
                    CachedPanel{pre.data(), np}, 0.f, out_cached.data(), L);
      const double t2c = now_ms();
      to_blocked_channels_last(Kn::kIsa, data.data(), plane, C, C, order.cb, hwc.data());
      sgemm_gen<Kn>(F, L, Kc, BlockedTapWeights<Kn>{wt.data(), Kc, order}, panel, 0.f,
                    out.data(), L);
      const double t3 = now_ms();
      if (r) {
        sample.t.push_back(t1 - t0);
        gemm_pre.t.push_back(t2 - t1);
        gemm_cached.t.push_back(t2c - t2);
        fused.t.push_back(t3 - t2c);
      }
    }
    if (out != out_pre) {  // the same panels in the same order: the same bits
      fprintf(stderr, "bench_gemm: kernels %s: the fused res5 forward differs from the GEMM of "
              "its pre-sampled panels\n", name);
      status = 1;
    }
    const double gf = 2.0 * F * L * Kc / 1e6;
    printf("res5: kernels %s shape 1x%dx%dx%d sampling_ms %.2f gemm_presampled_ms %.2f "
           "gemm_presampled_gflops %.1f gemm_cached_ms %.2f gemm_cached_gflops %.1f "
           "fused_ms %.2f fused_median_ms %.2f fused_gflops %.1f\n",
           name, C, H, W, sample.min(), gemm_pre.min(), gf / gemm_pre.min(), gemm_cached.min(),
           gf / gemm_cached.min(), fused.min(),
           fused.median(), gf / fused.min());
  }
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s M N K REPEAT QUICK(0|1)\n", argv[0]);
    return 2;
  }
  const int M = atoi(argv[1]), N = atoi(argv[2]), K = atoi(argv[3]), repeat = atoi(argv[4]);
  const bool quick = atoi(argv[5]) != 0;
  if (M <= 0 || N <= 0 || K <= 0 || repeat <= 0) {
    fprintf(stderr, "bench_gemm: M, N, K and REPEAT must be positive (got %d %d %d %d)\n", M, N,
            K, repeat);
    return 2;
  }
  printf("threads: ours %d openblas %d\n", num_threads(), openblas_get_num_threads());
  fflush(stdout);
  const long iters = quick ? 2000000 : 50000000;
  int status = 0;
  const int threads = num_threads();
  if (isa_supported(kIsaAvx2)) {
    const double p1 = peak_gflops(kIsaAvx2, iters, 3, 1);
    printf("peak: isa avx2 gflops_1thread %.1f gflops_all %.1f\n", p1,
           peak_gflops(kIsaAvx2, iters, 3, threads));
    status |= run_kernels<KernAvx2>("avx2", M, N, K, repeat, quick, p1);
  }
  if (isa_supported(kIsaAvx512)) {
    const double p1 = peak_gflops(kIsaAvx512, iters, 3, 1);
    printf("peak: isa avx512 gflops_1thread %.1f gflops_all %.1f\n", p1,
           peak_gflops(kIsaAvx512, iters, 3, threads));
    status |= run_kernels<KernAvx512>("avx512-tile16", M, N, K, repeat, quick, p1);
    status |= run_kernels<KernAvx512W>("avx512-tile32", M, N, K, repeat, quick, p1);
  }
  if (!isa_supported(kIsaAvx2)) printf("note: no AVX2 + FMA on this CPU, nothing to measure\n");
  return status;
}
