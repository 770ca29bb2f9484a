// Truto's bracket serialisation of query parameters (DESIGN.md §2) and
// path-segment encoding. parse_bracket_query lives in query_parse.cpp.
#include "orgpatch/query.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/string.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include <array>
#include <charconv>
#include <cstddef>
#include <string>
#include <string_view>

namespace orgpatch {
namespace {

/// Appends `s` with every byte outside RFC 3986 unreserved as %XX (upper case).
void append_encoded(std::string& out, std::string_view s) {
  // Ids are UUIDs as a rule: nothing to encode, one append.
  static constexpr auto unreserved = [] {
    std::array<bool, 256> t{};
    for (int c = 0; c < 256; ++c)
      t[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
             c == '_' || c == '~';
    return t;
  }();
  bool plain = true;
  for (unsigned char c : s) plain &= unreserved[c];
  if (plain) {
    out += s;
    return;
  }
  const std::size_t n = boost::urls::encoded_size(s, boost::urls::unreserved_chars);
  const std::size_t at = out.size();
  out.resize(at + n);
  boost::urls::encode(out.data() + at, n, s, boost::urls::unreserved_chars);
}

template <class T>
void append_number(std::string& out, T v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

/// Appends the pairs of `v` under the already encoded parameter name `name`
/// (extended in place for nested values and restored before returning).
void append_value(std::string& out, std::string& name, const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::object:
      for (const auto& kv : v.get_object()) {
        const std::size_t mark = name.size();
        name += "%5B";
        append_encoded(name, kv.key());
        name += "%5D";
        append_value(out, name, kv.value());
        name.resize(mark);
      }
      return;
    case boost::json::kind::array: {
      const std::size_t mark = name.size();
      name += "%5B%5D";
      for (const auto& e : v.get_array()) append_value(out, name, e);
      name.resize(mark);
      return;
    }
    default:
      break;
  }
  out += '&';
  out += name;
  out += '=';
  switch (v.kind()) {
    case boost::json::kind::string: append_encoded(out, v.get_string()); break;
    case boost::json::kind::bool_: out += v.get_bool() ? "true" : "false"; break;
    case boost::json::kind::int64: append_number(out, v.get_int64()); break;
    case boost::json::kind::uint64: append_number(out, v.get_uint64()); break;
    // Shortest text that reads back as the same double ('+' of an exponent encoded).
    case boost::json::kind::double_: {
      std::string text;
      append_number(text, v.get_double());
      append_encoded(out, text);
      break;
    }
    default: break;  // null: an empty value
  }
}

}  // namespace

void append_query_param(std::string& out, std::string_view name, const boost::json::value& value) {
  // Reused per thread: the name grows and shrinks as nested keys are visited.
  thread_local std::string encoded_name;
  encoded_name.clear();
  append_encoded(encoded_name, name);
  append_value(out, encoded_name, value);
}

std::string encode_path_segment(std::string_view segment) {
  std::string out;
  append_encoded(out, segment);
  return out;
}

void append_path_segment(std::string& out, std::string_view segment) { append_encoded(out, segment); }

}  // namespace orgpatch
