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

/// What orgpatchd keeps of a response body.
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
  response_info parse(unsigned http_status, std::string& body);

  /// The spare capacity `parse` needs past the body (SIMDJSON_PADDING).
  static std::size_t padding() noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace orgpatch
