/*
 * dcn_attrs.h - reading operator attributes.  MXNet hands them over as the
 * Python str() of each value ("(3, 3)", "True", "4"); every reader names the
 * operator and the argument in its errors (AttrError).
 */
#ifndef DCN_ATTRS_H_
#define DCN_ATTRS_H_

#include <string>
#include <vector>

#include "dcn_params.h"

namespace dcn_ext {

std::string trim(const std::string& s);

/*! \brief "(3, 3)", "[3,3]", "(3,)", "3" -> integers; "()" / "[]" / "None" -> empty */
std::vector<long> parse_tuple(const std::string& op, const std::string& key,
                              const std::string& raw);

/*! \brief the attributes of one operator call: unknown names are rejected up front */
class AttrReader {
 public:
  AttrReader(const std::string& op, const Attrs& attrs, const std::vector<std::string>& known);
  /*! \brief present and not "None" */
  bool has(const std::string& k) const;
  const std::string& raw(const std::string& k) const { return attrs_.at(k); }
  void require(const std::string& k) const;
  long get_int(const std::string& k, long def, long min_value) const;
  double get_double(const std::string& k, double def) const;
  bool get_bool(const std::string& k, bool def) const;
  /*! \brief 2-D spatial tuple (one entry: both); default when absent or empty */
  void get_pair(const std::string& k, long def, long min_value, int* a, int* b) const;

 private:
  std::string op_;
  const Attrs& attrs_;
};

}  // namespace dcn_ext

#endif  // DCN_ATTRS_H_
