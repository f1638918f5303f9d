/* dcn_attrs.cc - attribute readers (see dcn_attrs.h). */
#include "dcn_attrs.h"

#include <cctype>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace dcn_ext {

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\n\r"), b = s.find_last_not_of(" \t\n\r");
  return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
}

namespace {

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

}  // namespace

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

AttrReader::AttrReader(const std::string& op, const Attrs& attrs,
                       const std::vector<std::string>& known)
    : op_(op), attrs_(attrs) {
  for (const auto& kv : attrs) {
    if (kv.first.compare(0, 2, "__") == 0) continue;  // MXNet-internal / user attributes
    bool ok = false;
    for (const auto& k : known) ok = ok || k == kv.first;
    if (!ok) throw AttrError{op + ": unknown argument '" + kv.first + "'"};
  }
}

bool AttrReader::has(const std::string& k) const {
  auto it = attrs_.find(k);
  return it != attrs_.end() && trim(it->second) != "None";
}

void AttrReader::require(const std::string& k) const {
  if (!has(k)) throw AttrError{op_ + ": required argument '" + k + "' is missing"};
}

long AttrReader::get_int(const std::string& k, long def, long min_value) const {
  long v = has(k) ? parse_long(op_, k, raw(k)) : def;
  if (v < min_value) {
    std::ostringstream os;
    os << op_ << ": argument '" << k << "' must be >= " << min_value << ", got " << v;
    throw AttrError{os.str()};
  }
  return v;
}

double AttrReader::get_double(const std::string& k, double def) const {
  return has(k) ? parse_double(op_, k, raw(k)) : def;
}

bool AttrReader::get_bool(const std::string& k, bool def) const {
  return has(k) ? parse_bool(op_, k, raw(k)) : def;
}

void AttrReader::get_pair(const std::string& k, long def, long min_value, int* a, int* b) const {
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

}  // namespace dcn_ext
