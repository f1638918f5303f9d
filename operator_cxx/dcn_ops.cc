/*
 * dcn_ops.cc - registration of the deformable operators with MXNet through
 * the extension-library API (mxnet/lib_api.h):
 *
 *   dcn_DeformableConvolution          (DCNv1, as mx.contrib DeformableConvolution)
 *   dcn_ModulatedDeformableConvolution (DCNv2, as mx.contrib ModulatedDeformableConvolution)
 *   dcn_DeformablePSROIPooling         (as mx.contrib DeformablePSROIPooling; outputs
 *                                       the pooled map and the per-bin sample count)
 *   dcn_PSROIPooling                   (as mx.contrib PSROIPooling)
 *   dcn_Conv1x1DeformablePSROIPooling  (forward only, CPU: DeformablePSROIPooling with
 *                                       no_trans of a 1x1 Convolution, without the
 *                                       convolution's output map; test networks)
 *
 * The extension API hands backward functions their inputs as
 *   [output gradients..., forward inputs..., forward outputs...]
 * and the input-gradient buffers as outputs.  It does not pass the gradient
 * request type: every gradient is written (never accumulated).
 */
#include <climits>
#include <cmath>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "mxnet/lib_api.h"
#include "dcn_cpu_kernels.h"
#include "dcn_params.h"

using mxnet::ext::MXContext;
using mxnet::ext::MXReturnValue;
using mxnet::ext::MXTensor;
using mxnet::ext::OpResource;
using mxnet::ext::MX_FAIL;
using mxnet::ext::MX_SUCCESS;

typedef std::vector<std::vector<unsigned int>> Shapes;

using dcn_ext::AttrError;
using dcn_ext::Attrs;
using dcn_ext::ConvParam;
using dcn_ext::PoolParam;
using dcn_ext::parse_conv;
using dcn_ext::parse_pool;

namespace {

/* ------------------------------------------------------------------------ */
/* attribute parsing                                                         */
/* ------------------------------------------------------------------------ */

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\n\r"), b = s.find_last_not_of(" \t\n\r");
  return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
}

long parse_long(const std::string& op, const std::string& key, const std::string& raw) {
  std::string s = trim(raw);
  if (!s.empty() && s.back() == 'L') s.pop_back();
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno != 0 || v > INT_MAX || v < INT_MIN)
    throw AttrError{op + ": argument '" + key + "' must be an integer, got '" + raw + "'"};
  return v;
}

double parse_double(const std::string& op, const std::string& key, const std::string& raw) {
  std::string s = trim(raw);
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || !std::isfinite(v))
    throw AttrError{op + ": argument '" + key + "' must be a finite number, got '" + raw + "'"};
  return v;
}

bool parse_bool(const std::string& op, const std::string& key, const std::string& raw) {
  std::string s = trim(raw);
  for (auto& ch : s) ch = static_cast<char>(std::tolower(ch));
  if (s == "1" || s == "true") return true;
  if (s == "0" || s == "false") return false;
  throw AttrError{op + ": argument '" + key + "' must be a boolean (True/False/1/0), got '" +
                  raw + "'"};
}

/*! \brief "(3, 3)", "[3,3]", "(3,)", "3" -> integers; "()" / "[]" / "None" -> empty */
std::vector<long> parse_tuple(const std::string& op, const std::string& key,
                              const std::string& raw) {
  std::string s = trim(raw);
  std::vector<long> out;
  if (s == "None") return out;
  if (!s.empty() && (s.front() == '(' || s.front() == '[')) {
    const char close = s.front() == '(' ? ')' : ']';
    if (s.back() != close)
      throw AttrError{op + ": argument '" + key + "' must be a tuple of integers, got '" + raw +
                      "'"};
    s = s.substr(1, s.size() - 2);
  }
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (trim(item).empty()) continue;
    out.push_back(parse_long(op, key, item));
  }
  return out;
}

class AttrReader {
 public:
  AttrReader(const std::string& op, const Attrs& attrs, std::vector<std::string> known)
      : op_(op), attrs_(attrs) {
    for (const auto& kv : attrs) {
      if (kv.first.compare(0, 2, "__") == 0) continue;  // MXNet-internal / user attributes
      bool ok = false;
      for (const auto& k : known) ok = ok || k == kv.first;
      if (!ok) throw AttrError{op + ": unknown argument '" + kv.first + "'"};
    }
  }
  bool has(const std::string& k) const {
    auto it = attrs_.find(k);
    return it != attrs_.end() && trim(it->second) != "None";
  }
  const std::string& raw(const std::string& k) const { return attrs_.at(k); }
  void require(const std::string& k) const {
    if (!has(k)) throw AttrError{op_ + ": required argument '" + k + "' is missing"};
  }
  long get_int(const std::string& k, long def, long min_value) const {
    long v = has(k) ? parse_long(op_, k, raw(k)) : def;
    if (v < min_value) {
      std::ostringstream os;
      os << op_ << ": argument '" << k << "' must be >= " << min_value << ", got " << v;
      throw AttrError{os.str()};
    }
    return v;
  }
  double get_double(const std::string& k, double def) const {
    return has(k) ? parse_double(op_, k, raw(k)) : def;
  }
  bool get_bool(const std::string& k, bool def) const {
    return has(k) ? parse_bool(op_, k, raw(k)) : def;
  }
  /*! \brief 2-D spatial tuple; default when absent or empty */
  void get_pair(const std::string& k, long def, long min_value, int* a, int* b) const {
    std::vector<long> v;
    if (has(k)) v = parse_tuple(op_, k, raw(k));
    if (v.empty()) v = {def, def};
    if (v.size() == 1) v.push_back(v[0]);
    if (v.size() != 2) {
      std::ostringstream os;
      os << op_ << ": argument '" << k << "' must have 2 entries (h, w) for 2-D NCHW input, got '"
         << raw(k) << "'";
      throw AttrError{os.str()};
    }
    for (long x : v) {
      if (x < min_value) {
        std::ostringstream os;
        os << op_ << ": argument '" << k << "' entries must be >= " << min_value << ", got '"
           << raw(k) << "'";
        throw AttrError{os.str()};
      }
    }
    *a = static_cast<int>(v[0]);
    *b = static_cast<int>(v[1]);
  }

 private:
  std::string op_;
  const Attrs& attrs_;
};

std::string shape_str(const std::vector<unsigned int>& s) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < s.size(); ++i) {
    os << (i ? ", " : "");
    if (s[i] == static_cast<unsigned>(-1)) os << "?";  // not inferred yet
    else os << s[i];
  }
  if (s.size() == 1) os << ",";
  os << ")";
  return os.str();
}

bool unknown_dim(unsigned d) { return d == 0 || d == static_cast<unsigned>(-1); }

/*!
 * \brief check or set an input shape: unknown (ndim 0) -> set to expected; partly
 * known (the expected rank, some dimensions 0 / -1, e.g. a variable declared with
 * shape=(512, 0, 3, 3)) -> the unknown dimensions filled in; the known dimensions
 * must equal the expected ones.
 */
void check_or_set(const std::string& op, const std::string& arg, std::vector<unsigned int>* s,
                  const std::vector<unsigned int>& expected, const std::string& how) {
  if (s->empty()) {
    *s = expected;
    return;
  }
  bool ok = s->size() == expected.size();
  for (size_t i = 0; ok && i < s->size(); ++i) ok = unknown_dim((*s)[i]) || (*s)[i] == expected[i];
  if (!ok)
    throw AttrError{op + ": input '" + arg + "' must have shape " + shape_str(expected) + " (" +
                    how + "), got " + shape_str(*s)};
  *s = expected;
}

/*! \brief all dimensions known (MXNet passes unknown / zero-size dimensions as 0 or -1) */
bool fully_known(const std::vector<unsigned int>& s) {
  if (s.empty()) return false;
  for (unsigned d : s)
    if (unknown_dim(d)) return false;
  return true;
}

/*!
 * \brief check the rank of an input; false when some dimension is still unknown
 * (then nothing can be inferred yet).
 */
bool check_rank(const std::string& op, const std::string& arg, const std::vector<unsigned int>& s,
                size_t ndim, const std::string& layout) {
  if (s.empty()) return false;
  if (s.size() != ndim) {
    std::ostringstream os;
    os << op << ": input '" << arg << "' must be " << ndim << "-D " << layout << ", got "
       << s.size() << "-D";
    throw AttrError{os.str()};
  }
  return fully_known(s);
}

/* ------------------------------------------------------------------------ */
/* deformable convolution                                                    */
/* ------------------------------------------------------------------------ */



}  // namespace

namespace dcn_ext {

ConvParam parse_conv(const Attrs& attrs, bool modulated) {
  const std::string op = modulated ? "ModulatedDeformableConvolution" : "DeformableConvolution";
  std::vector<std::string> known = {"kernel", "stride", "dilate", "pad", "num_filter", "num_group",
                                    "num_deformable_group", "workspace", "no_bias", "layout"};
  if (modulated) known.push_back("im2col_step");
  AttrReader r(op, attrs, known);
  ConvParam p;
  r.require("kernel");
  r.require("num_filter");
  {
    std::vector<long> k = parse_tuple(op, "kernel", r.raw("kernel"));
    if (k.size() != 2)
      throw AttrError{op + ": argument 'kernel' must have 2 entries (h, w) for 2-D NCHW input, "
                      "got '" + r.raw("kernel") + "'"};
  }
  r.get_pair("kernel", 1, 1, &p.kh, &p.kw);
  r.get_pair("stride", 1, 1, &p.sh, &p.sw);
  r.get_pair("dilate", 1, 1, &p.dh, &p.dw);
  r.get_pair("pad", 0, 0, &p.ph, &p.pw);
  p.num_filter = static_cast<int>(r.get_int("num_filter", 0, 1));
  p.num_group = static_cast<int>(r.get_int("num_group", 1, 1));
  p.num_dg = static_cast<int>(r.get_int("num_deformable_group", 1, 1));
  p.workspace = r.get_int("workspace", 1024, 0);
  p.no_bias = r.get_bool("no_bias", false);
  p.im2col_step = modulated ? static_cast<int>(r.get_int("im2col_step", 64, 1)) : 1;
  if (r.has("layout")) {
    std::string l = trim(r.raw("layout"));
    if (l != "NCHW")
      throw AttrError{op + ": argument 'layout' must be 'NCHW' (or None), got '" + l + "'"};
  }
  if (p.num_filter % p.num_group != 0) {
    std::ostringstream os;
    os << op << ": argument 'num_filter' (" << p.num_filter
       << ") must be divisible by 'num_group' (" << p.num_group << ")";
    throw AttrError{os.str()};
  }
  p.modulated = modulated;
  int i = 0;
  p.i_data = i++;
  p.i_offset = i++;
  p.i_mask = modulated ? i++ : -1;
  p.i_weight = i++;
  p.i_bias = p.no_bias ? -1 : i++;
  p.n_in = i;
  return p;
}

}  // namespace dcn_ext

namespace {

/*!
 * \brief OpenMP team size for one operator call.  MXNet leaves its engine
 * threads at one OpenMP thread unless OMP_NUM_THREADS is set (its own operators
 * pass an explicit count), so: DCN_NUM_THREADS if set, else OMP_NUM_THREADS if
 * set, else the number of processors.  The previous setting of the calling
 * thread is restored afterwards.
 */
class ThreadScope {
 public:
  ThreadScope() {
#ifdef _OPENMP
    saved_ = omp_get_max_threads();
    omp_set_num_threads(wanted());
#endif
  }
  ~ThreadScope() {
#ifdef _OPENMP
    omp_set_num_threads(saved_);
#endif
  }
  static int wanted() {
    static const int n = [] {
      for (const char* var : {"DCN_NUM_THREADS", "OMP_NUM_THREADS"}) {
        const char* v = std::getenv(var);
        if (v && std::atoi(v) > 0) return std::atoi(v);
      }
#ifdef _OPENMP
      return std::max(1, omp_get_num_procs());
#else
      return 1;
#endif
    }();
    return n;
  }

 private:
  int saved_ = 1;
};

template <typename F>
MXReturnValue guarded(const F& f) {
  try {
    f();
    return MX_SUCCESS;
  } catch (const AttrError& e) {
    MX_ERROR_MSG << e.msg;
    return MX_FAIL;
  } catch (const std::exception& e) {
    MX_ERROR_MSG << "dcn operator error: " << e.what();
    return MX_FAIL;
  }
}

template <bool MOD>
MXReturnValue conv_parse(const Attrs& attrs, int* num_in, int* num_out) {
  return guarded([&] {
    ConvParam p = parse_conv(attrs, MOD);
    *num_in = p.n_in;
    *num_out = 1;
  });
}

template <bool MOD>
MXReturnValue conv_infer_shape(const Attrs& attrs, Shapes* in, Shapes* out) {
  return guarded([&] {
    ConvParam p = parse_conv(attrs, MOD);
    const std::string op = MOD ? "ModulatedDeformableConvolution" : "DeformableConvolution";
    const auto& ds = (*in)[p.i_data];
    if (!check_rank(op, "data", ds, 4, "NCHW (batch, channel, height, width)")) return;
    const unsigned N = ds[0], C = ds[1], H = ds[2], W = ds[3];
    std::ostringstream os;
    if (C % p.num_group != 0) {
      os << op << ": data channels (" << C << ") must be divisible by 'num_group' ("
         << p.num_group << ")";
      throw AttrError{os.str()};
    }
    if (C % p.num_dg != 0) {
      os << op << ": data channels (" << C << ") must be divisible by 'num_deformable_group' ("
         << p.num_dg << ")";
      throw AttrError{os.str()};
    }
    const long Ho = dcn::conv_out_size(H, p.kh, p.ph, p.sh, p.dh);
    const long Wo = dcn::conv_out_size(W, p.kw, p.pw, p.sw, p.dw);
    if (Ho <= 0 || Wo <= 0 || H + 2L * p.ph < static_cast<long>(p.dh) * (p.kh - 1) + 1 ||
        W + 2L * p.pw < static_cast<long>(p.dw) * (p.kw - 1) + 1) {
      os << op << ": the dilated 'kernel' (" << p.kh << ", " << p.kw << ") with dilate (" << p.dh
         << ", " << p.dw << ") does not fit the padded input " << H + 2 * p.ph << "x"
         << W + 2 * p.pw << " (data " << shape_str(ds) << ", pad (" << p.ph << ", " << p.pw
         << "))";
      throw AttrError{os.str()};
    }
    const unsigned taps = static_cast<unsigned>(p.kh * p.kw);
    std::ostringstream how;
    how << "batch, 2 * num_deformable_group * kernel_h * kernel_w = " << 2 * p.num_dg * taps
        << ", out_height, out_width";
    check_or_set(op, "offset", &(*in)[p.i_offset],
                 {N, 2u * p.num_dg * taps, static_cast<unsigned>(Ho), static_cast<unsigned>(Wo)},
                 how.str());
    if (MOD) {
      std::ostringstream hm;
      hm << "batch, num_deformable_group * kernel_h * kernel_w = " << p.num_dg * taps
         << ", out_height, out_width";
      check_or_set(op, "mask", &(*in)[p.i_mask],
                   {N, p.num_dg * taps, static_cast<unsigned>(Ho), static_cast<unsigned>(Wo)},
                   hm.str());
    }
    check_or_set(op, "weight", &(*in)[p.i_weight],
                 {static_cast<unsigned>(p.num_filter), C / p.num_group,
                  static_cast<unsigned>(p.kh), static_cast<unsigned>(p.kw)},
                 "num_filter, channels / num_group, kernel_h, kernel_w");
    if (!p.no_bias)
      check_or_set(op, "bias", &(*in)[p.i_bias], {static_cast<unsigned>(p.num_filter)},
                   "num_filter");
    (*out)[0] = {N, static_cast<unsigned>(p.num_filter), static_cast<unsigned>(Ho),
                 static_cast<unsigned>(Wo)};
  });
}

/*!
 * \brief Re-check the tensors handed to forward/backward against shape
 * inference (MXNet may call with shapes it could not fully infer, e.g. 0-d
 * arrays); false (with MX_ERROR_MSG set) when anything is off.
 */
template <typename InferFn>
bool verify_shapes(const std::string& op, const Attrs& attrs, InferFn infer,
                   std::vector<MXTensor>* in, int first, int n_in,
                   const std::vector<const MXTensor*>& outs) {
  Shapes ins, os(outs.size());
  for (int i = 0; i < n_in; ++i) {
    const MXTensor& t = (*in)[first + i];
    std::vector<unsigned int> sh;
    for (int64_t d : t.shape) sh.push_back(d < 0 ? static_cast<unsigned>(-1) : static_cast<unsigned>(d));
    if (!fully_known(sh) || t.data_ptr == nullptr) {
      MX_ERROR_MSG << op << ": input #" << i << " (in the order of the operator's inputs) has an "
                   << "empty or unknown shape " << shape_str(sh);
      return false;
    }
    ins.push_back(sh);
  }
  if (infer(attrs, &ins, &os) != MX_SUCCESS) return false;
  for (size_t o = 0; o < outs.size(); ++o) {
    std::vector<unsigned int> sh;
    for (int64_t d : outs[o]->shape) sh.push_back(static_cast<unsigned>(d));
    if (sh != os[o]) {
      MX_ERROR_MSG << op << ": output #" << o << " has shape " << shape_str(sh) << ", expected "
                   << shape_str(os[o]);
      return false;
    }
  }
  return true;
}

/*! \brief all inputs share one floating type (float32 or float64) */
MXReturnValue same_float_type(const std::string& op, const std::vector<std::string>& names,
                              std::vector<int>* in, std::vector<int>* out) {
  return guarded([&] {
    int t = -1;
    for (size_t i = 0; i < in->size(); ++i) {
      if ((*in)[i] < 0 || (*in)[i] == mxnet::ext::kUNSET) continue;
      if (t < 0) t = (*in)[i];
      if ((*in)[i] != t)
        throw AttrError{op + ": input '" + names[i] + "' must have the same dtype as the other "
                        "inputs (float32 or float64)"};
    }
    if (t < 0) return;
    if (t != mxnet::ext::kFloat32 && t != mxnet::ext::kFloat64)
      throw AttrError{op + ": inputs must be float32 or float64"};
    for (auto& x : *in) x = t;
    for (auto& x : *out) x = t;
  });
}

template <bool MOD>
MXReturnValue conv_infer_type(const Attrs& attrs, std::vector<int>* in, std::vector<int>* out) {
  ConvParam p;
  try {
    p = parse_conv(attrs, MOD);
  } catch (const AttrError& e) {
    MX_ERROR_MSG << e.msg;
    return MX_FAIL;
  }
  std::vector<std::string> names = {"data", "offset"};
  if (MOD) names.push_back("mask");
  names.push_back("weight");
  if (!p.no_bias) names.push_back("bias");
  return same_float_type(MOD ? "ModulatedDeformableConvolution" : "DeformableConvolution", names,
                         in, out);
}

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

void* conv_workspace(const std::string& op, const dcn::cpu::ConvGeom& g, int elem,
                     const OpResource& res, bool need_col = true) {
  const int64_t bytes = dcn::cpu::conv_workspace_bytes(g, elem, need_col);
  if (bytes >= INT_MAX || g.L() * 4 >= INT_MAX || static_cast<int64_t>(g.H) * g.W >= INT_MAX) {
    std::ostringstream os;
    os << op << ": the column buffer of one image needs " << bytes
       << " bytes, more than the 2 GiB a single workspace allocation may have; reduce the "
          "input size";
    throw AttrError{os.str()};
  }
  void* ws = res.alloc_cpu(static_cast<int>(bytes));
  if (!ws) throw AttrError{op + ": could not allocate the workspace"};
  return ws;
}

template <bool MOD>
MXReturnValue conv_forward(const Attrs& attrs, std::vector<MXTensor>* in,
                           std::vector<MXTensor>* out, const OpResource& res) {
  ThreadScope threads;
  {
    ConvParam p;
    try { p = parse_conv(attrs, MOD); } catch (const AttrError& e) { MX_ERROR_MSG << e.msg; return MX_FAIL; }
    if (static_cast<int>(in->size()) != p.n_in || out->size() != 1 ||
        !verify_shapes(MOD ? "ModulatedDeformableConvolution" : "DeformableConvolution", attrs,
                       conv_infer_shape<MOD>, in, 0, p.n_in, {&(*out)[0]}))
      return MX_FAIL;
  }
  return guarded([&] {
    const std::string op = MOD ? "ModulatedDeformableConvolution" : "DeformableConvolution";
    ConvParam p = parse_conv(attrs, MOD);
    MXTensor& data = (*in)[p.i_data];
    MXTensor& y = (*out)[0];
    dcn::cpu::ConvGeom g = conv_geom(p, data, y);
    if (data.dtype == mxnet::ext::kFloat32) {
      void* ws = conv_workspace(op, g, 4, res, !dcn::cpu::fused_columns<float>());
      dcn::cpu::conv_forward<float>(
          g, data.data<float>(), (*in)[p.i_offset].data<float>(),
          MOD ? (*in)[p.i_mask].data<float>() : nullptr, (*in)[p.i_weight].data<float>(),
          p.no_bias ? nullptr : (*in)[p.i_bias].data<float>(), y.data<float>(), ws);
    } else if (data.dtype == mxnet::ext::kFloat64) {
      void* ws = conv_workspace(op, g, 8, res);
      dcn::cpu::conv_forward<double>(
          g, data.data<double>(), (*in)[p.i_offset].data<double>(),
          MOD ? (*in)[p.i_mask].data<double>() : nullptr, (*in)[p.i_weight].data<double>(),
          p.no_bias ? nullptr : (*in)[p.i_bias].data<double>(), y.data<double>(), ws);
    } else {
      throw AttrError{op + ": only float32 and float64 are supported"};
    }
  });
}

template <typename T>
T* ptr_or_null(std::vector<MXTensor>* v, int i) {
  return i < 0 ? nullptr : (*v)[i].data<T>();
}

template <bool MOD>
MXReturnValue conv_backward(const Attrs& attrs, std::vector<MXTensor>* in,
                            std::vector<MXTensor>* out, const OpResource& res) {
  ThreadScope threads;
  {
    ConvParam p;
    try { p = parse_conv(attrs, MOD); } catch (const AttrError& e) { MX_ERROR_MSG << e.msg; return MX_FAIL; }
    if (static_cast<int>(in->size()) != p.n_in + 2 || static_cast<int>(out->size()) != p.n_in ||
        !verify_shapes(MOD ? "ModulatedDeformableConvolution" : "DeformableConvolution", attrs,
                       conv_infer_shape<MOD>, in, 1, p.n_in, {&(*in)[0]}))
      return MX_FAIL;
  }
  return guarded([&] {
    const std::string op = MOD ? "ModulatedDeformableConvolution" : "DeformableConvolution";
    ConvParam p = parse_conv(attrs, MOD);
    // inputs: [grad_out, data, offset, (mask), weight, (bias), out]
    MXTensor& gout = (*in)[0];
    MXTensor& data = (*in)[1 + p.i_data];
    dcn::cpu::ConvGeom g = conv_geom(p, data, gout);
    auto run = [&](auto tag) {
      typedef decltype(tag) T;
      void* ws = conv_workspace(op, g, sizeof(T), res);
      dcn::cpu::conv_backward<T>(
          g, gout.data<T>(), data.data<T>(), (*in)[1 + p.i_offset].data<T>(),
          MOD ? (*in)[1 + p.i_mask].data<T>() : nullptr, (*in)[1 + p.i_weight].data<T>(),
          ptr_or_null<T>(out, p.i_data), ptr_or_null<T>(out, p.i_offset),
          ptr_or_null<T>(out, p.i_mask), ptr_or_null<T>(out, p.i_weight),
          ptr_or_null<T>(out, p.i_bias), ws);
    };
    if (data.dtype == mxnet::ext::kFloat32) run(float());
    else if (data.dtype == mxnet::ext::kFloat64) run(double());
    else throw AttrError{op + ": only float32 and float64 are supported"};
  });
}

/* ------------------------------------------------------------------------ */
/* position-sensitive RoI pooling                                            */
/* ------------------------------------------------------------------------ */



}  // namespace

namespace dcn_ext {

PoolParam parse_pool(const Attrs& attrs, bool deformable, bool fused) {
  deformable = deformable || fused;
  const std::string op = fused ? "Conv1x1DeformablePSROIPooling"
                               : (deformable ? "DeformablePSROIPooling" : "PSROIPooling");
  std::vector<std::string> known = {"spatial_scale", "output_dim", "pooled_size", "group_size"};
  if (deformable) {
    known.push_back("part_size");
    known.push_back("sample_per_part");
  }
  if (deformable && !fused) {
    known.push_back("trans_std");
    known.push_back("no_trans");
  }
  AttrReader r(op, attrs, known);
  PoolParam p;
  p.deformable = deformable;
  r.require("spatial_scale");
  r.require("output_dim");
  r.require("pooled_size");
  if (deformable) r.require("group_size");
  p.spatial_scale = r.get_double("spatial_scale", 0);
  if (!(p.spatial_scale > 0)) {
    std::ostringstream os;
    os << op << ": argument 'spatial_scale' must be > 0, got " << r.raw("spatial_scale");
    throw AttrError{os.str()};
  }
  p.output_dim = static_cast<int>(r.get_int("output_dim", 0, 1));
  p.pooled = static_cast<int>(r.get_int("pooled_size", 0, 1));
  p.group = static_cast<int>(r.get_int("group_size", deformable ? 1 : 0, deformable ? 1 : 0));
  if (p.group == 0) p.group = p.pooled;
  if (deformable) {
    p.part = static_cast<int>(r.get_int("part_size", 0, 0));
    if (p.part == 0) p.part = p.pooled;
    p.samples = static_cast<int>(r.get_int("sample_per_part", 1, 1));
    p.trans_std = fused ? 0.0 : r.get_double("trans_std", 0.0);
    p.no_trans = fused || r.get_bool("no_trans", false);
    p.n_in = fused ? 4 : (p.no_trans ? 2 : 3);  // fused: data, rois, weight, bias
    p.n_out = fused ? 1 : 2;
  } else {
    p.part = p.pooled;
    p.samples = 1;
    p.trans_std = 0;
    p.no_trans = true;
    p.n_in = 2;
    p.n_out = 1;
  }
  return p;
}

}  // namespace dcn_ext

namespace {

template <bool DEF>
MXReturnValue pool_parse(const Attrs& attrs, int* num_in, int* num_out) {
  return guarded([&] {
    PoolParam p = parse_pool(attrs, DEF);
    *num_in = p.n_in;
    *num_out = p.n_out;
  });
}

/*! \brief false while the rois shape is unknown; throws unless it is (num_rois, 5) */
bool rois_shape_known(const std::string& op, const std::vector<unsigned int>& rs) {
  if (rs.empty()) return false;
  if (rs.size() != 2 || (fully_known(rs) && rs[1] != 5)) {
    throw AttrError{op + ": input 'rois' must have shape (num_rois, 5) with columns "
                    "[batch_index, x1, y1, x2, y2], got " + shape_str(rs)};
  }
  return fully_known(rs);
}

template <bool DEF>
MXReturnValue pool_infer_shape(const Attrs& attrs, Shapes* in, Shapes* out) {
  return guarded([&] {
    PoolParam p = parse_pool(attrs, DEF);
    const std::string op = DEF ? "DeformablePSROIPooling" : "PSROIPooling";
    const auto& ds = (*in)[0];
    const auto& rs = (*in)[1];
    if (check_rank(op, "data", ds, 4, "NCHW (batch, channel, height, width)")) {
      const unsigned need = static_cast<unsigned>(p.output_dim) * p.group * p.group;
      if (ds[1] != need) {
        std::ostringstream os;
        os << op << ": input 'data' must have output_dim * group_size^2 = " << p.output_dim
           << " * " << p.group << "^2 = " << need << " channels, got " << ds[1];
        throw AttrError{os.str()};
      }
    }
    if (!rois_shape_known(op, rs)) return;
    const unsigned R = rs[0];
    if (DEF && !p.no_trans &&
        check_rank(op, "trans", (*in)[2], 4, "(num_rois, 2 * num_classes, part_size, part_size)")) {
      const auto& ts = (*in)[2];
      if (ts[0] != R || ts[1] % 2 != 0 || ts[2] != static_cast<unsigned>(p.part) ||
          ts[3] != static_cast<unsigned>(p.part)) {
        std::ostringstream os;
        os << op << ": input 'trans' must have shape (num_rois = " << R
           << ", 2 * num_classes, part_size = " << p.part << ", part_size = " << p.part
           << "), got " << shape_str(ts);
        throw AttrError{os.str()};
      }
      const unsigned ncls = ts[1] / 2;
      if (p.output_dim % ncls != 0) {
        std::ostringstream os;
        os << op << ": 'output_dim' (" << p.output_dim
           << ") must be divisible by the number of classes of 'trans' (trans.shape[1] / 2 = "
           << ncls << ")";
        throw AttrError{os.str()};
      }
    }
    const std::vector<unsigned> os = {R, static_cast<unsigned>(p.output_dim),
                                      static_cast<unsigned>(p.pooled),
                                      static_cast<unsigned>(p.pooled)};
    for (auto& o : *out) o = os;
  });
}

template <bool DEF>
MXReturnValue pool_infer_type(const Attrs& attrs, std::vector<int>* in, std::vector<int>* out) {
  std::vector<std::string> names = {"data", "rois", "trans"};
  names.resize(in->size());
  return same_float_type(DEF ? "DeformablePSROIPooling" : "PSROIPooling", names, in, out);
}

dcn::cpu::PoolGeom pool_geom(const PoolParam& p, const MXTensor& data, const MXTensor& rois,
                             const MXTensor* trans) {
  dcn::cpu::PoolGeom g;
  g.N = static_cast<int>(data.shape[0]);
  g.C = static_cast<int>(data.shape[1]);
  g.H = static_cast<int>(data.shape[2]);
  g.W = static_cast<int>(data.shape[3]);
  g.R = static_cast<int>(rois.shape[0]);
  g.output_dim = p.output_dim;
  g.group = p.group;
  g.pooled = p.pooled;
  g.part = p.part;
  g.samples = p.samples;
  g.no_trans = p.no_trans;
  g.num_classes = (p.no_trans || !trans) ? 1 : static_cast<int>(trans->shape[1] / 2);
  g.spatial_scale = p.spatial_scale;
  g.trans_std = p.trans_std;
  return g;
}

void* pool_workspace(const std::string& op, int64_t bytes, const OpResource& res) {
  if (bytes >= INT_MAX) {
    std::ostringstream os;
    os << op << ": the pooling workspace needs " << bytes
       << " bytes, more than the 2 GiB a single workspace allocation may have; pool fewer RoIs";
    throw AttrError{os.str()};
  }
  void* ws = res.alloc_cpu(static_cast<int>(bytes));
  if (!ws) throw AttrError{op + ": could not allocate the workspace"};
  return ws;
}

/*! \brief every RoI must name an image of the batch */
template <typename T>
void check_rois(const std::string& op, const T* rois, int R, int N) {
  for (int r = 0; r < R; ++r) {
    const T b = rois[static_cast<int64_t>(r) * 5];
    bool finite = true;
    for (int k = 0; k < 5; ++k) finite = finite && std::isfinite(rois[static_cast<int64_t>(r) * 5 + k]);
    if (!finite || !(b >= 0) || !(b < N) || b != std::floor(b)) {
      std::ostringstream os;
      os << op << ": input 'rois' row " << r << " is invalid: column 0 (batch index) must be an "
         << "integer in [0, " << N << ") and all coordinates finite, got batch index " << b;
      throw AttrError{os.str()};
    }
  }
}

template <bool DEF>
MXReturnValue pool_forward(const Attrs& attrs, std::vector<MXTensor>* in,
                           std::vector<MXTensor>* out, const OpResource& res) {
  ThreadScope threads;
  {
    PoolParam p;
    try { p = parse_pool(attrs, DEF); } catch (const AttrError& e) { MX_ERROR_MSG << e.msg; return MX_FAIL; }
    std::vector<const MXTensor*> outs;
    for (auto& t : *out) outs.push_back(&t);
    if (static_cast<int>(in->size()) != p.n_in || static_cast<int>(out->size()) != p.n_out ||
        !verify_shapes(DEF ? "DeformablePSROIPooling" : "PSROIPooling", attrs,
                       pool_infer_shape<DEF>, in, 0, p.n_in, outs))
      return MX_FAIL;
  }
  return guarded([&] {
    const std::string op = DEF ? "DeformablePSROIPooling" : "PSROIPooling";
    PoolParam p = parse_pool(attrs, DEF);
    MXTensor& data = (*in)[0];
    MXTensor& rois = (*in)[1];
    const MXTensor* trans = (DEF && !p.no_trans) ? &(*in)[2] : nullptr;
    dcn::cpu::PoolGeom g = pool_geom(p, data, rois, trans);
    auto run = [&](auto tag) {
      typedef decltype(tag) T;
      check_rois(op, rois.data<T>(), g.R, g.N);
      if (DEF) {
        const int64_t bytes = dcn::cpu::dpsroi_workspace_bytes<T>(g, false, 1);
        void* ws = pool_workspace(op, bytes, res);
        dcn::cpu::dpsroi_forward<T>(g, data.data<T>(), rois.data<T>(),
                                    trans ? const_cast<MXTensor*>(trans)->data<T>() : nullptr,
                                    (*out)[0].data<T>(), (*out)[1].data<T>(), ws);
      } else {
        dcn::cpu::psroi_forward<T>(g, data.data<T>(), rois.data<T>(), (*out)[0].data<T>());
      }
    };
    if (data.dtype == mxnet::ext::kFloat32) run(float());
    else if (data.dtype == mxnet::ext::kFloat64) run(double());
    else throw AttrError{op + ": only float32 and float64 are supported"};
  });
}

template <bool DEF>
MXReturnValue pool_backward(const Attrs& attrs, std::vector<MXTensor>* in,
                            std::vector<MXTensor>* out, const OpResource& res) {
  ThreadScope threads;
  {
    PoolParam p;
    try { p = parse_pool(attrs, DEF); } catch (const AttrError& e) { MX_ERROR_MSG << e.msg; return MX_FAIL; }
    if (static_cast<int>(in->size()) != 2 * p.n_out + p.n_in ||
        static_cast<int>(out->size()) != p.n_in) {
      MX_ERROR_MSG << (DEF ? "DeformablePSROIPooling" : "PSROIPooling")
                   << ": unexpected number of backward inputs/outputs";
      return MX_FAIL;
    }
    std::vector<const MXTensor*> outs;
    for (int o = 0; o < p.n_out; ++o) outs.push_back(&(*in)[o]);
    if (!verify_shapes(DEF ? "DeformablePSROIPooling" : "PSROIPooling", attrs,
                       pool_infer_shape<DEF>, in, p.n_out, p.n_in, outs))
      return MX_FAIL;
  }
  return guarded([&] {
    const std::string op = DEF ? "DeformablePSROIPooling" : "PSROIPooling";
    PoolParam p = parse_pool(attrs, DEF);
    // inputs: [grad outputs (n_out), data, rois, (trans), outputs (n_out)]
    const int base = p.n_out;
    MXTensor& gout = (*in)[0];
    MXTensor& data = (*in)[base];
    MXTensor& rois = (*in)[base + 1];
    MXTensor* trans = (DEF && !p.no_trans) ? &(*in)[base + 2] : nullptr;
    dcn::cpu::PoolGeom g = pool_geom(p, data, rois, trans);
    auto run = [&](auto tag) {
      typedef decltype(tag) T;
      T* gr = (*out)[1].data<T>();
      std::fill(gr, gr + (*out)[1].size(), T(0));  // rois get no gradient
      if (DEF) {
        const MXTensor& count = (*in)[base + p.n_in + 1];
        const int threads = std::max(1, dcn::cpu::num_threads());
        const int64_t bytes = dcn::cpu::dpsroi_workspace_bytes<T>(g, true, threads);
        void* ws = pool_workspace(op, bytes, res);
        dcn::cpu::dpsroi_backward<T>(g, gout.data<T>(), data.data<T>(), rois.data<T>(),
                                     trans ? trans->data<T>() : nullptr,
                                     const_cast<MXTensor&>(count).data<T>(), (*out)[0].data<T>(),
                                     trans ? (*out)[2].data<T>() : nullptr, ws, threads);
      } else {
        dcn::cpu::psroi_backward<T>(g, gout.data<T>(), rois.data<T>(), (*out)[0].data<T>());
      }
    };
    if (data.dtype == mxnet::ext::kFloat32) run(float());
    else if (data.dtype == mxnet::ext::kFloat64) run(double());
    else throw AttrError{op + ": only float32 and float64 are supported"};
  });
}

/* ------------------------------------------------------------------------ */
/* Conv1x1DeformablePSROIPooling: 1x1 convolution + no_trans pooling, fused  */
/* (forward only: test networks on the CPU)                                  */
/* ------------------------------------------------------------------------ */

const char kFusedOp[] = "Conv1x1DeformablePSROIPooling";

MXReturnValue fused_parse(const Attrs& attrs, int* num_in, int* num_out) {
  return guarded([&] {
    PoolParam p = parse_pool(attrs, true, true);
    *num_in = p.n_in;
    *num_out = p.n_out;
  });
}

MXReturnValue fused_infer_shape(const Attrs& attrs, Shapes* in, Shapes* out) {
  return guarded([&] {
    PoolParam p = parse_pool(attrs, true, true);
    const std::string op = kFusedOp;
    const auto& ds = (*in)[0];
    const auto& rs = (*in)[1];
    const unsigned rows = static_cast<unsigned>(p.output_dim) * p.group * p.group;
    if (check_rank(op, "data", ds, 4, "NCHW (batch, channel, height, width)")) {
      check_or_set(op, "weight", &(*in)[2], {rows, ds[1], 1u, 1u},
                   "output_dim * group_size^2, data channels, 1, 1");
    }
    check_or_set(op, "bias", &(*in)[3], {rows}, "output_dim * group_size^2");
    if (!rois_shape_known(op, rs)) return;
    (*out)[0] = {rs[0], static_cast<unsigned>(p.output_dim), static_cast<unsigned>(p.pooled),
                 static_cast<unsigned>(p.pooled)};
  });
}

MXReturnValue fused_infer_type(const Attrs& attrs, std::vector<int>* in, std::vector<int>* out) {
  return same_float_type(kFusedOp, {"data", "rois", "weight", "bias"}, in, out);
}

MXReturnValue fused_forward(const Attrs& attrs, std::vector<MXTensor>* in,
                            std::vector<MXTensor>* out, const OpResource& res) {
  ThreadScope threads;
  {
    PoolParam p;
    try { p = parse_pool(attrs, true, true); } catch (const AttrError& e) { MX_ERROR_MSG << e.msg; return MX_FAIL; }
    if (static_cast<int>(in->size()) != p.n_in || static_cast<int>(out->size()) != p.n_out ||
        !verify_shapes(kFusedOp, attrs, fused_infer_shape, in, 0, p.n_in, {&(*out)[0]}))
      return MX_FAIL;
  }
  return guarded([&] {
    PoolParam p = parse_pool(attrs, true, true);
    MXTensor& data = (*in)[0];
    MXTensor& rois = (*in)[1];
    dcn::cpu::PoolGeom g = pool_geom(p, data, rois, nullptr);
    auto run = [&](auto tag) {
      typedef decltype(tag) T;
      check_rois(kFusedOp, rois.data<T>(), g.R, g.N);
      void* ws = pool_workspace(kFusedOp, dcn::cpu::conv1x1_dpsroi_workspace_bytes<T>(g), res);
      dcn::cpu::conv1x1_dpsroi_forward<T>(g, data.data<T>(), rois.data<T>(),
                                          (*in)[2].data<T>(), (*in)[3].data<T>(),
                                          (*out)[0].data<T>(), ws);
    };
    if (data.dtype == mxnet::ext::kFloat32) run(float());
    else if (data.dtype == mxnet::ext::kFloat64) run(double());
    else throw AttrError{std::string(kFusedOp) + ": only float32 and float64 are supported"};
  });
}

}  // namespace

#ifdef DCN_WITH_CUDA
/* ------------------------------------------------------------------------ */
/* GPU (context "gpu"): CUDA kernels of cuda/ through their C entry points    */
/* ------------------------------------------------------------------------ */
#include "cuda/dcn_cuda_api.h"

namespace {

void cuda_ok(const std::string& op, int rc) {
  if (rc != 0) throw AttrError{op + " (gpu): " + dcn_cuda_last_error()};
}

int dtype_code(const std::string& op, int dtype) {
  if (dtype == mxnet::ext::kFloat32) return DCN_F32;
  if (dtype == mxnet::ext::kFloat64) return DCN_F64;
  throw AttrError{op + ": only float32 and float64 are supported"};
}

void* ptr_or_null(std::vector<MXTensor>* v, int i) { return i < 0 ? nullptr : (*v)[i].data_ptr; }

/*! \brief GPU geometry; images per column buffer bounded by im2col_step and 'workspace' (MB) */
dcn_conv_geom conv_geom_gpu(const ConvParam& p, const MXTensor& data, const MXTensor& out,
                            int64_t elem) {
  const dcn::cpu::ConvGeom c = conv_geom(p, data, out);
  dcn_conv_geom g = {c.N, c.C, c.H, c.W, c.F, c.Ho, c.Wo, c.kh, c.kw, c.sh, c.sw, c.ph, c.pw,
                     c.dh, c.dw, c.groups, c.dgroups, p.modulated ? 1 : 0, 1};
  const int64_t per_image = c.col_rows() * c.L() * elem;
  const int64_t limit = std::min<int64_t>(std::max<int64_t>(p.workspace << 20, per_image),
                                          INT_MAX / 2);
  int64_t step = p.modulated ? std::min(c.N, p.im2col_step) : c.N;
  step = std::max<int64_t>(1, std::min<int64_t>(step, limit / std::max<int64_t>(per_image, 1)));
  g.im2col_step = static_cast<int>(step);
  return g;
}

void* conv_workspace_gpu(const std::string& op, const dcn_conv_geom& g, int code,
                         const OpResource& res, int64_t* bytes) {
  *bytes = dcn_cuda_conv_workspace_bytes(&g, code);
  if (*bytes < 0) throw AttrError{op + " (gpu): " + dcn_cuda_last_error()};
  if (*bytes >= INT_MAX) {
    std::ostringstream os;
    os << op << ": the column buffer of one image needs " << *bytes
       << " bytes, more than the 2 GiB a single workspace allocation may have; reduce the "
          "input size";
    throw AttrError{os.str()};
  }
  void* ws = res.alloc_gpu(static_cast<int>(*bytes));
  if (!ws) throw AttrError{op + ": could not allocate the GPU workspace"};
  return ws;
}

template <bool MOD>
MXReturnValue conv_forward_gpu(const Attrs& attrs, std::vector<MXTensor>* in,
                               std::vector<MXTensor>* out, const OpResource& res) {
  return guarded([&] {
    const std::string op = MOD ? "ModulatedDeformableConvolution" : "DeformableConvolution";
    ConvParam p = parse_conv(attrs, MOD);
    MXTensor& data = (*in)[p.i_data];
    const int code = dtype_code(op, data.dtype);
    dcn_conv_geom g = conv_geom_gpu(p, data, (*out)[0], code == DCN_F32 ? 4 : 8);
    int64_t bytes = 0;
    void* ws = conv_workspace_gpu(op, g, code, res, &bytes);
    cuda_ok(op, dcn_cuda_conv_forward(&g, code, data.data_ptr, (*in)[p.i_offset].data_ptr,
                                      MOD ? (*in)[p.i_mask].data_ptr : nullptr,
                                      (*in)[p.i_weight].data_ptr,
                                      p.no_bias ? nullptr : (*in)[p.i_bias].data_ptr,
                                      (*out)[0].data_ptr, ws, bytes, res.get_cuda_stream()));
  });
}

template <bool MOD>
MXReturnValue conv_backward_gpu(const Attrs& attrs, std::vector<MXTensor>* in,
                                std::vector<MXTensor>* out, const OpResource& res) {
  return guarded([&] {
    const std::string op = MOD ? "ModulatedDeformableConvolution" : "DeformableConvolution";
    ConvParam p = parse_conv(attrs, MOD);
    // inputs: [grad_out, data, offset, (mask), weight, (bias), out]
    MXTensor& gout = (*in)[0];
    MXTensor& data = (*in)[1 + p.i_data];
    const int code = dtype_code(op, data.dtype);
    dcn_conv_geom g = conv_geom_gpu(p, data, gout, code == DCN_F32 ? 4 : 8);
    int64_t bytes = 0;
    void* ws = conv_workspace_gpu(op, g, code, res, &bytes);
    cuda_ok(op, dcn_cuda_conv_backward(
                    &g, code, gout.data_ptr, data.data_ptr, (*in)[1 + p.i_offset].data_ptr,
                    MOD ? (*in)[1 + p.i_mask].data_ptr : nullptr,
                    (*in)[1 + p.i_weight].data_ptr, ptr_or_null(out, p.i_data),
                    ptr_or_null(out, p.i_offset), ptr_or_null(out, p.i_mask),
                    ptr_or_null(out, p.i_weight), ptr_or_null(out, p.i_bias), ws, bytes,
                    res.get_cuda_stream()));
  });
}

dcn_pool_geom pool_geom_gpu(const PoolParam& p, const MXTensor& data, const MXTensor& rois,
                            const MXTensor* trans) {
  const dcn::cpu::PoolGeom c = pool_geom(p, data, rois, trans);
  dcn_pool_geom g = {c.N, c.C, c.H, c.W, c.R, c.output_dim, c.group, c.pooled, c.part,
                     c.samples, c.num_classes, c.no_trans ? 1 : 0, p.deformable ? 1 : 0,
                     c.spatial_scale, c.trans_std};
  return g;
}

/* RoIs live in device memory: a RoI whose batch index is not an integer in [0, N)
 * pools to zeros on the GPU (the CPU path reports an error). */
template <bool DEF>
MXReturnValue pool_forward_gpu(const Attrs& attrs, std::vector<MXTensor>* in,
                               std::vector<MXTensor>* out, const OpResource& res) {
  return guarded([&] {
    const std::string op = DEF ? "DeformablePSROIPooling" : "PSROIPooling";
    PoolParam p = parse_pool(attrs, DEF);
    MXTensor& data = (*in)[0];
    const MXTensor* trans = (DEF && !p.no_trans) ? &(*in)[2] : nullptr;
    const dcn_pool_geom g = pool_geom_gpu(p, data, (*in)[1], trans);
    cuda_ok(op, dcn_cuda_pool_forward(&g, dtype_code(op, data.dtype), data.data_ptr,
                                      (*in)[1].data_ptr, trans ? trans->data_ptr : nullptr,
                                      (*out)[0].data_ptr, DEF ? (*out)[1].data_ptr : nullptr,
                                      res.get_cuda_stream()));
  });
}

template <bool DEF>
MXReturnValue pool_backward_gpu(const Attrs& attrs, std::vector<MXTensor>* in,
                                std::vector<MXTensor>* out, const OpResource& res) {
  return guarded([&] {
    const std::string op = DEF ? "DeformablePSROIPooling" : "PSROIPooling";
    PoolParam p = parse_pool(attrs, DEF);
    // inputs: [grad outputs (n_out), data, rois, (trans), outputs (n_out)]
    const int base = p.n_out;
    MXTensor& data = (*in)[base];
    MXTensor& rois = (*in)[base + 1];
    MXTensor* trans = (DEF && !p.no_trans) ? &(*in)[base + 2] : nullptr;
    const dcn_pool_geom g = pool_geom_gpu(p, data, rois, trans);
    const int code = dtype_code(op, data.dtype);
    void* stream = res.get_cuda_stream();
    cuda_ok(op, dcn_cuda_zero((*out)[1].data_ptr,
                              (*out)[1].size() * (code == DCN_F32 ? 4 : 8), stream));
    cuda_ok(op, dcn_cuda_pool_backward(&g, code, (*in)[0].data_ptr, data.data_ptr,
                                       rois.data_ptr, trans ? trans->data_ptr : nullptr,
                                       DEF ? (*in)[base + p.n_in + 1].data_ptr : nullptr,
                                       (*out)[0].data_ptr, trans ? (*out)[2].data_ptr : nullptr,
                                       stream));
  });
}

}  // namespace
#define DCN_GPU(fwd, bwd) .setForward(fwd, "gpu").setBackward(bwd, "gpu")
#else
#define DCN_GPU(fwd, bwd)
#endif  // DCN_WITH_CUDA

REGISTER_OP(dcn_DeformableConvolution)
    .setParseAttrs(conv_parse<false>)
    .setInferType(conv_infer_type<false>)
    .setInferShape(conv_infer_shape<false>)
    .setForward(conv_forward<false>, "cpu")
    .setBackward(conv_backward<false>, "cpu")
    DCN_GPU(conv_forward_gpu<false>, conv_backward_gpu<false>);

REGISTER_OP(dcn_ModulatedDeformableConvolution)
    .setParseAttrs(conv_parse<true>)
    .setInferType(conv_infer_type<true>)
    .setInferShape(conv_infer_shape<true>)
    .setForward(conv_forward<true>, "cpu")
    .setBackward(conv_backward<true>, "cpu")
    DCN_GPU(conv_forward_gpu<true>, conv_backward_gpu<true>);

REGISTER_OP(dcn_DeformablePSROIPooling)
    .setParseAttrs(pool_parse<true>)
    .setInferType(pool_infer_type<true>)
    .setInferShape(pool_infer_shape<true>)
    .setForward(pool_forward<true>, "cpu")
    .setBackward(pool_backward<true>, "cpu")
    DCN_GPU(pool_forward_gpu<true>, pool_backward_gpu<true>);

REGISTER_OP(dcn_PSROIPooling)
    .setParseAttrs(pool_parse<false>)
    .setInferType(pool_infer_type<false>)
    .setInferShape(pool_infer_shape<false>)
    .setForward(pool_forward<false>, "cpu")
    .setBackward(pool_backward<false>, "cpu")
    DCN_GPU(pool_forward_gpu<false>, pool_backward_gpu<false>);

REGISTER_OP(dcn_Conv1x1DeformablePSROIPooling)
    .setParseAttrs(fused_parse)
    .setInferType(fused_infer_type)
    .setInferShape(fused_infer_shape)
    .setForward(fused_forward, "cpu");

MXReturnValue initialize(int version) {
  if (version < 10700) {
    MX_ERROR_MSG << "libdcn_ops requires MXNet >= 1.7 (extension API), found version " << version;
    return MX_FAIL;
  }
  return MX_SUCCESS;
}
