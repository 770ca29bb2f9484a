/// Response bodies of the Unified API, parsed with simdjson On-Demand.
///
/// One `response_parser` per thread, reused; parsing is synchronous and the
/// result owns its strings.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace orgpatch {

/// What orgpatchd keeps of a response body. When `json_valid` is false every
/// other member keeps its default (empty, 0, false): nothing is taken from a
/// body that is not a complete JSON object.
struct response_info {
  bool json_valid = false;  ///< the body was a JSON object
  // A success (2xx): the organization as the API returned it (empty when absent).
  std::string id;
  std::string name;
  std::string updated_at;
  // An error (non-2xx): Truto's error body, when it had one.
  int status_code = 0;              ///< `statusCode`, 0 when absent
  std::string error;                ///< `error`, e.g. "Unprocessable Entity"
  std::string message;              ///< `message`; for a remote error without one, the
                                    ///< remote's `raw_response.detail` when present
  bool remote = false;              ///< `truto_is_remote_error: true`
};

class response_parser {
 public:
  /// The cap on each string copied out of a body, in bytes (cut on a UTF-8
  /// character boundary, so a capped string may be a few bytes shorter).
  static constexpr std::size_t max_string_bytes = 1024;

  /// `max_bytes`: the largest body it will parse (http.max_response_bytes).
  explicit response_parser(std::size_t max_bytes);
  ~response_parser();
  response_parser(const response_parser&) = delete;
  response_parser& operator=(const response_parser&) = delete;

  /// Parses `body` of a response with HTTP status `http_status`. `body` must have
  /// at least `padding()` spare bytes of capacity past its size (the caller's
  /// buffer is reused, so this costs no copy). Never throws on bad input: a body
  /// that is not a JSON object gives `json_valid == false`. Strings are copied
  /// out and capped at 1 KiB each.
  ///
  /// Details: fields are matched in any order and unknown fields are skipped,
  /// but the whole body is still validated (every nested value, no trailing
  /// bytes but whitespace, nesting at most 256 deep). A body longer than
  /// `max_bytes`, empty, or not valid UTF-8 is not valid. When `body` lacks the
  /// spare capacity it is grown with `reserve` (its contents are unchanged).
  /// For 2xx statuses only `id`, `name`, `updated_at` are taken (a numeric
  /// `id` as its text); otherwise only the error members. Wrong-typed members
  /// are left empty. May throw std::bad_alloc only.
  response_info parse(unsigned http_status, std::string& body);

  /// The same into `into`, whose strings keep their capacity: with one
  /// `response_info` reused, parsing allocates nothing.
  void parse(unsigned http_status, std::string& body, response_info& into);

  /// The spare capacity `parse` needs past the body (SIMDJSON_PADDING).
  static std::size_t padding() noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace orgpatch
