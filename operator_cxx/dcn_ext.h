/*
 * dcn_ext.h - glue shared by the operators: the MXNet extension-API types,
 * error reporting, OpenMP team size, shape and dtype checks, and the one CPU
 * dtype dispatch.
 *
 * Every callback registered with MXNet runs its body through guarded(op, ...):
 * parsing, validation and computation throw AttrError (messages start with
 * the operator's name) and guarded() hands the message to MXNet.
 */
#ifndef DCN_EXT_H_
#define DCN_EXT_H_

#include <stdint.h>

#include <exception>
#include <functional>
#include <string>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "mxnet/lib_api.h"
#include "dcn_params.h"

namespace dcn_ext {

using mxnet::ext::MXReturnValue;
using mxnet::ext::MXTensor;
using mxnet::ext::OpResource;
using mxnet::ext::MX_FAIL;
using mxnet::ext::MX_SUCCESS;

typedef std::vector<std::vector<unsigned int>> Shapes;

/* ------------------------------------------------------------------------ */
/* errors                                                                    */
/* ------------------------------------------------------------------------ */

/*! \brief hand the message of a failing call to MXNet */
void report_error(const std::string& msg);

template <typename F>
MXReturnValue guarded(Op k, const F& f) {
  try {
    f();
    return MX_SUCCESS;
  } catch (const AttrError& e) {
    report_error(e.msg);
  } catch (const std::exception& e) {
    report_error(op_name(k) + ": dcn operator error: " + e.what());
  }
  return MX_FAIL;
}

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
  static int wanted();

 private:
  int saved_ = 1;
};

/* ------------------------------------------------------------------------ */
/* shapes                                                                    */
/* ------------------------------------------------------------------------ */

std::string shape_str(const std::vector<unsigned int>& s);

/*! \brief MXNet passes unknown / zero-size dimensions as 0 or -1 */
inline bool unknown_dim(unsigned d) { return d == 0 || d == static_cast<unsigned>(-1); }

/*! \brief all dimensions known */
bool fully_known(const std::vector<unsigned int>& s);

/*!
 * \brief check or set an input shape: unknown (ndim 0) -> set to expected; partly
 * known (the expected rank, some dimensions 0 / -1, e.g. a variable declared with
 * shape=(512, 0, 3, 3)) -> the unknown dimensions filled in; the known dimensions
 * must equal the expected ones.
 */
void check_or_set(Op k, const std::string& arg, std::vector<unsigned int>* s,
                  const std::vector<unsigned int>& expected, const std::string& how);

/*!
 * \brief check the rank of an input; false when some dimension is still unknown
 * (then nothing can be inferred yet).
 */
bool check_rank(Op k, const std::string& arg, const std::vector<unsigned int>& s, size_t ndim,
                const std::string& layout);

/*! \brief shape inference of one operator: fills/checks inputs, sets outputs; throws */
typedef std::function<void(Shapes* in, Shapes* out)> ShapeFn;

/*!
 * \brief re-check the tensors handed to forward/backward against shape inference
 * (MXNet may call with shapes it could not fully infer, e.g. 0-d arrays): inputs
 * in[first, first + n_in) and the tensors `outs` in output order; throws.
 */
void verify_shapes(Op k, const ShapeFn& infer, const std::vector<MXTensor>& in, int first,
                   int n_in, const std::vector<const MXTensor*>& outs);

/*! \brief the number of tensors handed to a compute callback */
void check_count(Op k, const char* what, size_t got, size_t expected);

/* ------------------------------------------------------------------------ */
/* dtypes                                                                    */
/* ------------------------------------------------------------------------ */

/*! \brief all inputs share one supported floating type; outputs get it too */
void infer_same_float_type(Op k, const std::vector<std::string>& names, std::vector<int>* in,
                           std::vector<int>* out);

/*! \brief bytes per element of a supported dtype; throws for others */
int dtype_size(Op k, int dtype);

/*! \brief tensors of a float32 / float64 call: the kernels work on them directly */
template <typename T>
struct DirectTensors {
  typedef T type;
  T* in(MXTensor& t) { return t.data<T>(); }
  T* out(MXTensor& t) { return t.data<T>(); }
};

/*!
 * \brief tensors of a float16 call on the CPU, computed in float32: in() gives a
 * float32 copy of a tensor that is read, out() a float32 buffer for a tensor
 * that is written, converted into it (rounded to nearest even) by commit().
 */
class HalfAsFloatTensors {
 public:
  typedef float type;
  float* in(MXTensor& t);
  float* out(MXTensor& t);
  void commit();

 private:
  std::vector<std::vector<float>> bufs_;  // one per call of in() / out()
  std::vector<std::pair<MXTensor*, size_t>> outs_;
};

/*!
 * \brief the one CPU dtype dispatch: f(io) where io.in(t) / io.out(t) give the
 * pointers the kernels read / write, of compute type
 * std::decay_t<decltype(io)>::type: float32 -> float, float64 -> double, float16 ->
 * float (float32 copies, results rounded back to float16 when f returns).
 */
template <typename F>
void dispatch_cpu(Op k, int dtype, const F& f) {
  switch (dtype) {
    case mxnet::ext::kFloat32: {
      DirectTensors<float> io;
      f(io);
      break;
    }
    case mxnet::ext::kFloat64: {
      DirectTensors<double> io;
      f(io);
      break;
    }
    case mxnet::ext::kFloat16: {
      HalfAsFloatTensors io;
      f(io);
      io.commit();
      break;
    }
    default: dtype_size(k, dtype);  // throws
  }
}

/*!
 * \brief a CPU workspace from MXNet's temporary space.  One per call: a second
 * request may move the first.  `bytes` must be below INT_MAX (the callers say
 * what to reduce when it is not).
 */
void* cpu_workspace(Op k, int64_t bytes, const OpResource& res);

}  // namespace dcn_ext

#endif  // DCN_EXT_H_
