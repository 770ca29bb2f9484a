// The response parser (simdjson On-Demand) on arbitrary bytes. The first byte
// picks the HTTP status, the body limit and whether the buffer already has
// simdjson's padding as spare capacity (the reader's buffers do); the rest is
// the body. Checks: nothing is taken from an invalid body, strings are capped
// UTF-8, a reused response_info equals a fresh one, the body is not changed,
// and `json_valid` agrees with the job scanner's validation of the same bytes
// as a job's `body` (two independent RFC 8259 + UTF-8 validators).
#include "orgpatch/job.hpp"
#include "orgpatch/response.hpp"

#include "fuzz_check.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

using orgpatch::fuzz::check;

namespace {

constexpr unsigned k_statuses[16] = {200, 201, 204, 299, 400, 401, 403, 404,
                                     409, 422, 429, 500, 503, 0, 100, 302};

std::string_view trim(std::string_view s) {
  const auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return s;
}

bool same(const orgpatch::response_info& a, const orgpatch::response_info& b) {
  return a.json_valid == b.json_valid && a.id == b.id && a.name == b.name && a.updated_at == b.updated_at &&
         a.status_code == b.status_code && a.error == b.error && a.message == b.message && a.remote == b.remote;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const unsigned status = k_statuses[data[0] & 15];
  const bool small_limit = (data[0] & 0x10) != 0;
  const bool padded = (data[0] & 0x20) != 0;
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);

  static orgpatch::response_parser big(1 << 20);
  static orgpatch::response_parser small(64);
  static orgpatch::response_info reused;
  auto& parser = small_limit ? small : big;
  const std::size_t limit = small_limit ? 64 : std::size_t{1} << 20;

  std::string body;
  if (padded) body.reserve(in.size() + orgpatch::response_parser::padding());
  body.assign(in);
  const orgpatch::response_info info = parser.parse(status, body);
  check(body == in, "parse changed the body", in);
  parser.parse(status, body, reused);
  check(same(info, reused), "a reused response_info differs from a fresh one", in);

  const bool success = status >= 200 && status < 300;
  if (!info.json_valid || !success) check(info.id.empty() && info.name.empty() && info.updated_at.empty(),
                                          "success fields taken from an invalid or error body", in);
  if (!info.json_valid || success)
    check(info.status_code == 0 && info.error.empty() && info.message.empty() && !info.remote,
          "error fields taken from an invalid or success body", in);
  for (const std::string* s : {&info.id, &info.name, &info.updated_at, &info.error, &info.message}) {
    check(s->size() <= orgpatch::response_parser::max_string_bytes, "a string over the cap", in);
    check(orgpatch::fuzz::is_utf8(*s), "a string that is not UTF-8", *s);
  }
  if (info.json_valid) check(!in.empty() && in.size() <= limit, "a body outside 1..limit was valid", in);

  // The job scanner sees the same bytes as a `body` member: an object it accepts
  // whole must be valid here, and the other way round (its depth limit, 64
  // levels with the line's own, is the stricter; such bodies are left out).
  if (in.empty() || in.size() > limit) return 0;
  std::string line = R"({"id":"x","integrated_account_id":"62f44730-dd91-461e-bd6a-aedd9e0ad79d","body":)";
  line += in;
  line += '}';
  const auto r = orgpatch::parse_job(line, 1, {});
  bool scanner_valid = false;
  if (const auto* j = std::get_if<orgpatch::job>(&r)) {
    scanner_valid = j->body == trim(in);
  } else if (std::get<orgpatch::input_error>(r).message.find("nested deeper") != std::string::npos) {
    return 0;
  }
  check(scanner_valid == info.json_valid, scanner_valid ? "the job scanner accepts a body simdjson rejects"
                                                        : "simdjson accepts a body the job scanner rejects",
        in);
  return 0;
}
