// The job parser/validator (DESIGN.md §5) on arbitrary bytes as one line, with
// and without a default integrated account and default query. Every job it
// accepts must keep the rules of §5, and the request built from it must be one
// well-formed HTTP/1.1 PATCH whose id is exactly one path segment (§2).
#include "orgpatch/config.hpp"
#include "orgpatch/job.hpp"
#include "orgpatch/request.hpp"

#include "fuzz_check.hpp"

#include <boost/json/parse.hpp>

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

using orgpatch::fuzz::check;

namespace {

constexpr std::string_view k_account = "62f44730-dd91-461e-bd6a-aedd9e0ad79d";

const orgpatch::endpoint& fixed_endpoint() {
  static const orgpatch::endpoint ep = orgpatch::make_endpoint(orgpatch::api_config{});
  return ep;
}

const std::string& headers() {
  static const std::string h = orgpatch::common_headers(fixed_endpoint(), "fuzz-token");
  return h;
}

bool is_lower_uuid(std::string_view s) {
  if (!orgpatch::is_uuid(s)) return false;
  for (char c : s)
    if (c >= 'A' && c <= 'F') return false;
  return true;
}

bool visible_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x21 || c > 0x7E) return false;
  return true;
}

void check_job(const orgpatch::job& j, std::string_view line, std::uint64_t line_no) {
  check(j.source == line, "source is not the line", line);
  check(j.line == line_no, "line number not kept", line);
  check(!j.id.empty() && j.id.size() <= 1024, "id length outside 1..1024", line);
  check(j.id.find_first_not_of('.') != std::string::npos, "an id of only dots was accepted", line);
  check(is_lower_uuid(j.integrated_account_id), "integrated_account_id is not a lower-case UUID", line);
  check(j.body.size() >= 2 && j.body.front() == '{' && j.body.back() == '}', "body is not an object's text", line);
  check(line.find(j.body) != std::string_view::npos, "body is not bytes of the line", line);
  if (j.key_given) {
    check(!j.key.empty() && j.key.size() <= 256, "key length outside 1..256", line);
    check(j.key.find_first_not_of("0123456789") != std::string::npos, "an all-digit key was accepted", line);
    const auto found = orgpatch::find_job_key(line);
    check(found && *found == j.key, "find_job_key disagrees with parse_job", line);
  } else {
    check(j.key == std::to_string(line_no), "default key is not the line number", line);
  }
  if (!j.idempotency_key.empty())
    check(j.idempotency_key.size() <= 255 && visible_ascii(j.idempotency_key),
          "idempotency_key not 1..255 visible ASCII", line);

  // The request: "PATCH <target> HTTP/1.1\r\n", our headers, Content-Length, body.
  const std::string idem =
      j.idempotency_key.empty() ? orgpatch::derive_idempotency_key("fuzz-run", j.key) : j.idempotency_key;
  std::string req;
  orgpatch::build_request(req, fixed_endpoint(), j, headers(), idem);
  const std::string target = orgpatch::request_target(fixed_endpoint(), j);
  check(req.starts_with("PATCH " + target + " HTTP/1.1\r\n"), "request line is not PATCH <target>", req);
  const std::string& prefix = fixed_endpoint().path_prefix;
  check(target.starts_with(prefix), "target does not start with the path prefix", target);
  const std::size_t q = target.find('?', prefix.size());
  check(q != std::string::npos, "target has no query", target);
  const std::string_view segment = std::string_view(target).substr(prefix.size(), q - prefix.size());
  check(orgpatch::fuzz::is_encoded(segment), "id segment holds a byte outside unreserved and %XX", target);
  check(orgpatch::fuzz::pct_decode(segment) == j.id, "id segment does not decode to the id", target);
  const std::string_view query = std::string_view(target).substr(q + 1);
  const std::string expect_account = "integrated_account_id=" + j.integrated_account_id;
  check(query.starts_with(expect_account), "query does not start with integrated_account_id", target);
  std::string_view rest = query.substr(expect_account.size());
  check(rest == j.query, "query tail is not the job's query", target);
  while (!rest.empty()) {
    check(rest.front() == '&', "query parameter without '&'", target);
    std::size_t end = rest.find('&', 1);
    if (end == std::string_view::npos) end = rest.size();
    const std::string_view pair = rest.substr(1, end - 1);
    const std::size_t eq = pair.find('=');
    check(eq != std::string_view::npos && eq > 0, "query parameter without name or '='", target);
    check(orgpatch::fuzz::is_encoded(pair.substr(0, eq)) && orgpatch::fuzz::is_encoded(pair.substr(eq + 1)),
          "query parameter not percent-encoded", target);
    rest.remove_prefix(end);
  }

  const std::size_t head_end = req.find("\r\n\r\n");
  check(head_end != std::string::npos, "request has no end of header", req);
  const std::string_view head = std::string_view(req).substr(0, head_end + 2);
  for (std::size_t i = 0; i < head.size(); ++i) {
    const auto c = static_cast<unsigned char>(head[i]);
    const bool crlf = c == '\r' && i + 1 < head.size() && head[i + 1] == '\n';
    const bool lf = c == '\n' && i > 0 && head[i - 1] == '\r';
    check(crlf || lf || (c >= 0x20 && c < 0x7F), "request head has a control or non-ASCII byte", req);
  }
  check(head.find("\r\nIdempotency-Key: " + idem + "\r\n") != std::string_view::npos, "Idempotency-Key missing", req);
  const std::string_view body = std::string_view(req).substr(head_end + 4);
  check(body == j.body, "request body is not the job's body", req);
  constexpr std::string_view cl = "\r\nContent-Length: ";
  const std::size_t at = head.find(cl);
  check(at != std::string_view::npos, "no Content-Length", req);
  std::size_t length = 0;
  const char* digits = head.data() + at + cl.size();
  const auto [end, ec] = std::from_chars(digits, head.data() + head.size(), length);
  check(ec == std::errc() && end[0] == '\r' && length == body.size(), "Content-Length is not the body's size", req);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);

  static const boost::json::object default_query =
      boost::json::parse(R"({"truto_response_format":"raw","remote_query":{"a b":[1,"x/y",{"k":true}],"n":null}})")
          .as_object();
  static const orgpatch::job_parse_options no_defaults;
  static const orgpatch::job_parse_options with_defaults{std::string(k_account), &default_query};

  for (const auto* options : {&no_defaults, &with_defaults}) {
    const auto r = orgpatch::parse_job(line, 42, *options);
    if (const auto* j = std::get_if<orgpatch::job>(&r)) {
      check_job(*j, line, 42);
    } else {
      const auto& e = std::get<orgpatch::input_error>(r);
      check(!e.message.empty(), "an input error without a message", line);
      // Field names in messages are cut to ~100 bytes ("query." and "..." around).
      check(e.field.size() <= 110 && e.message.size() <= 200, "an input error too long to read", e.to_string());
      check(orgpatch::fuzz::is_utf8(e.to_string()), "an error message that is not UTF-8", e.to_string());
    }
  }
  (void)orgpatch::find_job_key(line);
  return 0;
}
