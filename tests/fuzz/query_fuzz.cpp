// Query serialisation (DESIGN.md §2) on arbitrary JSON values:
//  - through the project's own path: the bytes become `query.remote_query` of a
//    job line, parse_job validates them and serialises the query;
//  - directly: whatever Boost.JSON makes of the bytes goes to append_query_param;
//  - and the emulator's reading side, parse_bracket_query, on the raw bytes and
//    on every serialised query.
// Every serialised query is `&name=value` pairs of unreserved bytes and %XX only,
// and for values qs can express, parse_bracket_query reads back what was written.
#include "orgpatch/job.hpp"
#include "orgpatch/query.hpp"

#include "fuzz_check.hpp"

#include <boost/json/parse.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

using orgpatch::fuzz::check;

namespace {

/// `&name=value` pairs, both sides canonically percent-encoded, names not empty.
void check_query(std::string_view q) {
  std::size_t at = 0;
  while (at < q.size()) {
    check(q[at] == '&', "a query parameter does not start with '&'", q);
    std::size_t end = q.find('&', at + 1);
    if (end == std::string_view::npos) end = q.size();
    const std::string_view pair = q.substr(at + 1, end - at - 1);
    const std::size_t eq = pair.find('=');
    check(eq != std::string_view::npos && eq > 0, "a query parameter without a name or '='", q);
    check(orgpatch::fuzz::is_encoded(pair.substr(0, eq)), "a parameter name is not percent-encoded", q);
    check(orgpatch::fuzz::is_encoded(pair.substr(eq + 1)), "a parameter value is not percent-encoded", q);
    at = end;
  }
  if (!q.empty()) (void)orgpatch::parse_bracket_query(q.substr(1));
}

/// True when `v` is in the class where Truto's (qs's) reading gives back what
/// was serialised: keys without brackets that qs would not take for array
/// indices or drop, at most 5 bracket groups, arrays of scalars only.
bool round_trips(const boost::json::value& v, int groups) {
  if (groups > 5) return false;
  if (const auto* o = v.if_object()) {
    for (const auto& kv : *o) {
      const std::string_view k = kv.key();
      const bool index_like = !k.empty() && k.size() <= 2 && k.find_first_not_of("0123456789") == k.npos &&
                              (k.size() == 1 || k[0] != '0') && std::stoi(std::string(k)) <= 20;
      if (k.empty() || k.find_first_of("[]") != k.npos || k == "__proto__" || (groups > 0 && index_like))
        return false;
      if (!round_trips(kv.value(), groups + 1)) return false;
    }
    return true;
  }
  if (const auto* a = v.if_array()) {
    for (const auto& e : *a)
      if (e.is_structured()) return false;
    return true;
  }
  return true;
}

/// What qs reads back: scalars as text, null as "", empty containers gone.
boost::json::value as_read(const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::object: {
      boost::json::object out;
      for (const auto& kv : v.get_object()) {
        boost::json::value r = as_read(kv.value());
        if (!r.is_null()) out[kv.key()] = std::move(r);
      }
      return out.empty() ? boost::json::value() : boost::json::value(std::move(out));
    }
    case boost::json::kind::array: {
      boost::json::array out;
      for (const auto& e : v.get_array()) out.push_back(as_read(e));
      return out.empty() ? boost::json::value() : boost::json::value(std::move(out));
    }
    default: {
      // The text the serialiser writes for a scalar, read back by qs.
      std::string q;
      orgpatch::append_query_param(q, "x", v);
      const boost::json::object r = orgpatch::parse_bracket_query(q.substr(1));
      return r.at("x");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  // The emulator reads whatever query string a client sends.
  (void)orgpatch::parse_bracket_query(in);

  // The job parser's own JSON path.
  std::string line =
      R"({"id":"x","integrated_account_id":"62f44730-dd91-461e-bd6a-aedd9e0ad79d","body":{},"query":{"remote_query":)";
  line += in;
  line += "}}";
  const auto r = orgpatch::parse_job(line, 1, {});
  if (const auto* j = std::get_if<orgpatch::job>(&r)) check_query(j->query);

  // Any JSON value Boost.JSON reads, under any name.
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(in, ec);
  if (!ec) {
    std::string out;
    if (v.is_object()) {
      // Top-level names come from the four allowed ones or the config: never empty.
      for (const auto& kv : v.get_object())
        if (!kv.key().empty()) orgpatch::append_query_param(out, kv.key(), kv.value());
    } else {
      orgpatch::append_query_param(out, "q", v);
    }
    check_query(out);
    // Serialised, then read as Truto reads it: the same value.
    if (v.is_object() && round_trips(v, 0)) {
      const boost::json::value expect = as_read(v);
      const boost::json::object got = out.empty() ? boost::json::object() : orgpatch::parse_bracket_query(out.substr(1));
      check(expect.is_null() ? got.empty() : expect == got, "qs does not read back what was serialised", out);
    }
  }
  return 0;
}
