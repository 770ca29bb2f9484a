/// Frames HTTP/1.1 responses from bytes as they arrive, with Beast's parser
/// working straight on the caller's buffer: no header container, no body
/// copy but one into the reused `http_response::body`, no allocation per
/// response in steady state. Keeps only what orgpatchd uses.
///
/// Not thread-safe; one per connection, reused for every response on it.
#pragma once

#include <boost/system/error_code.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace orgpatch {

/// The parts of a response orgpatchd uses. Reused across responses: its
/// strings keep their capacity, and `body` spare capacity for simdjson's padding.
struct http_response {
  unsigned status = 0;
  std::string body;
  std::string retry_after;          ///< Retry-After, empty when absent
  std::string ratelimit_remaining;  ///< ratelimit-remaining
  std::string ratelimit_reset;      ///< ratelimit-reset
  std::string location;             ///< Location (of a redirect), its first 512 bytes
  bool chunked = false;
  bool keep_alive = true;
};

class http_reader {
 public:
  enum class state { need_more, done, failed };
  static constexpr unsigned k_max_fields = 200;

  /// `max_body`: http.max_response_bytes; `max_header`: the status line and
  /// fields together; `body_padding`: spare capacity kept past the body. More
  /// than `k_max_fields` header fields fail as header_limit too.
  http_reader(std::size_t max_body, std::size_t max_header, std::size_t body_padding);
  ~http_reader();
  http_reader(const http_reader&) = delete;
  http_reader& operator=(const http_reader&) = delete;

  /// Starts reading a new response into `out` (its fields cleared, capacity kept).
  void start(http_response& out);

  /// Parses a prefix of `data` and returns how many bytes it used; the rest
  /// must be offered again with more bytes appended. Interim 1xx answers
  /// (100, 103…, at most 8) are skipped. After `done`, bytes left over belong
  /// to no request: the connection cannot be reused.
  std::size_t put(std::string_view data);

  /// The peer closed the connection: a body delimited by the end of the
  /// stream is complete (`done`); anything else started is `failed`.
  void put_eof();

  state status() const noexcept { return state_; }
  /// Why it failed: Beast's http::error values (body_limit, header_limit,
  /// partial_message, bad_* …).
  boost::system::error_code error() const noexcept { return error_; }
  /// Some bytes of an answer (a skipped 1xx included) have been used: the
  /// server took the request up.
  bool got_some() const noexcept;
  /// The status line and header fields of the final answer have been read
  /// (what follows is body or chunk framing).
  bool header_done() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
  state state_ = state::need_more;
  boost::system::error_code error_;
};

}  // namespace orgpatch
