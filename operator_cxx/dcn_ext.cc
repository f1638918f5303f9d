/* dcn_ext.cc - glue shared by the operators (see dcn_ext.h). */
#include "dcn_ext.h"

#include "dcn_half.h"

#include <climits>
#include <cstdlib>
#include <mutex>
#include <sstream>

namespace dcn_ext {

/*
 * MXNet 1.9's extension API keeps the messages of failed calls in the list
 * MXerrorMsgs::messages of lib_api.cc (compiled into this library) and only ever
 * appends to it; after a failed call MXNet reports every message of the list, so
 * each error would repeat all earlier ones.  The list has no public way to be
 * cleared: its member is reached through an explicit template instantiation
 * (which, by the C++ rules on explicit instantiations, may name a private member)
 * and emptied before each new message.
 */
namespace {

typedef std::vector<std::stringstream*> mxnet::ext::MXerrorMsgs::*MessagesMember;

struct MessagesTag {
  friend MessagesMember messages_member(MessagesTag);
};

template <MessagesMember M>
struct MessagesAccess {
  friend MessagesMember messages_member(MessagesTag) { return M; }
};

template struct MessagesAccess<&mxnet::ext::MXerrorMsgs::messages>;

std::mutex g_messages_mutex;

}  // namespace

void report_error(const std::string& msg) {
  std::lock_guard<std::mutex> lock(g_messages_mutex);
  std::vector<std::stringstream*>& list =
      mxnet::ext::MXerrorMsgs::get()->*messages_member(MessagesTag());
  for (std::stringstream* m : list) delete m;
  list.clear();
  MX_ERROR_MSG << msg;
}

int ThreadScope::wanted() {
  static const int n = [] {
    for (const char* var : {"DCN_NUM_THREADS", "OMP_NUM_THREADS"}) {
      const char* v = std::getenv(var);
      if (v && std::atoi(v) > 0) return std::atoi(v);
    }
#ifdef _OPENMP
    return omp_get_num_procs() > 1 ? omp_get_num_procs() : 1;
#else
    return 1;
#endif
  }();
  return n;
}

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

bool fully_known(const std::vector<unsigned int>& s) {
  if (s.empty()) return false;
  for (unsigned d : s)
    if (unknown_dim(d)) return false;
  return true;
}

void check_or_set(Op k, const std::string& arg, std::vector<unsigned int>* s,
                  const std::vector<unsigned int>& expected, const std::string& how) {
  if (s->empty()) {
    *s = expected;
    return;
  }
  bool ok = s->size() == expected.size();
  for (size_t i = 0; ok && i < s->size(); ++i) ok = unknown_dim((*s)[i]) || (*s)[i] == expected[i];
  if (!ok)
    throw AttrError{op_name(k) + ": input '" + arg + "' must have shape " + shape_str(expected) +
                    " (" + how + "), got " + shape_str(*s)};
  *s = expected;
}

bool check_rank(Op k, const std::string& arg, const std::vector<unsigned int>& s, size_t ndim,
                const std::string& layout) {
  if (s.empty()) return false;
  if (s.size() != ndim) {
    std::ostringstream os;
    os << op_name(k) << ": input '" << arg << "' must be " << ndim << "-D " << layout << ", got "
       << s.size() << "-D";
    throw AttrError{os.str()};
  }
  return fully_known(s);
}

void verify_shapes(Op k, const ShapeFn& infer, const std::vector<MXTensor>& in, int first,
                   int n_in, const std::vector<const MXTensor*>& outs) {
  Shapes ins, os(outs.size());
  for (int i = 0; i < n_in; ++i) {
    const MXTensor& t = in[first + i];
    std::vector<unsigned int> sh;
    for (int64_t d : t.shape)
      sh.push_back(d < 0 ? static_cast<unsigned>(-1) : static_cast<unsigned>(d));
    if (!fully_known(sh) || t.data_ptr == nullptr) {
      std::ostringstream m;
      m << op_name(k) << ": input #" << i << " (in the order of the operator's inputs) has an "
        << "empty or unknown shape " << shape_str(sh);
      throw AttrError{m.str()};
    }
    ins.push_back(sh);
  }
  infer(&ins, &os);
  for (size_t o = 0; o < outs.size(); ++o) {
    std::vector<unsigned int> sh;
    for (int64_t d : outs[o]->shape) sh.push_back(static_cast<unsigned>(d));
    if (sh != os[o]) {
      std::ostringstream m;
      m << op_name(k) << ": output #" << o << " has shape " << shape_str(sh) << ", expected "
        << shape_str(os[o]);
      throw AttrError{m.str()};
    }
  }
}

void check_count(Op k, const char* what, size_t got, size_t expected) {
  if (got != expected) {
    std::ostringstream m;
    m << op_name(k) << ": unexpected number of " << what << " (" << got << ", expected "
      << expected << ")";
    throw AttrError{m.str()};
  }
}

float* HalfAsFloatTensors::in(MXTensor& t) {
  bufs_.emplace_back(t.size());
  dcn::half_to_float(t.data<uint16_t>(), bufs_.back().data(), t.size());
  return bufs_.back().data();
}

float* HalfAsFloatTensors::out(MXTensor& t) {
  bufs_.emplace_back(t.size());
  outs_.emplace_back(&t, bufs_.size() - 1);
  return bufs_.back().data();
}

void HalfAsFloatTensors::commit() {
  for (const auto& o : outs_)
    dcn::float_to_half(bufs_[o.second].data(), o.first->data<uint16_t>(), o.first->size());
}

void infer_same_float_type(Op k, const std::vector<std::string>& names, std::vector<int>* in,
                           std::vector<int>* out) {
  int t = -1;
  for (size_t i = 0; i < in->size(); ++i) {
    if ((*in)[i] < 0 || (*in)[i] == mxnet::ext::kUNSET) continue;
    if (t < 0) t = (*in)[i];
    if ((*in)[i] != t)
      throw AttrError{op_name(k) + ": input '" + (i < names.size() ? names[i] : "?") +
                      "' must have the same dtype as the other inputs (float32, float64 or "
                      "float16)"};
  }
  if (t < 0) return;
  dtype_size(k, t);  // throws unless supported
  for (auto& x : *in) x = t;
  for (auto& x : *out) x = t;
}

int dtype_size(Op k, int dtype) {
  switch (dtype) {
    case mxnet::ext::kFloat32: return 4;
    case mxnet::ext::kFloat64: return 8;
    case mxnet::ext::kFloat16: return 2;
    default: throw AttrError{op_name(k) + ": inputs must be float32, float64 or float16"};
  }
}

void* cpu_workspace(Op k, int64_t bytes, const OpResource& res) {
  if (bytes >= INT_MAX) throw AttrError{op_name(k) + ": workspace too large"};
  void* ws = res.alloc_cpu(static_cast<int>(bytes));
  if (!ws) throw AttrError{op_name(k) + ": could not allocate the workspace"};
  return ws;
}

}  // namespace dcn_ext
