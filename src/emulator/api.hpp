/// The emulator's request handling (DESIGN.md §2, §8): routes, validation, the
/// organization store, idempotent replays and the counters behind
/// `GET /_emulator/stats`. No sockets and no Beast: the server turns an HTTP
/// message into a `request` and writes the `response` back, so all of this can be
/// unit tested directly.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace orgpatch::emulator {

/// One HTTP request, as far as the API looks at it. Views into the caller's message.
struct request {
  std::string_view method;                        ///< "PATCH", "GET", ...
  std::string_view target;                        ///< origin form: path, optionally "?query"
  std::optional<std::string_view> authorization;  ///< the Authorization header, if present
  std::optional<std::string_view> content_type;   ///< the Content-Type header, if present
  std::optional<std::string_view> idempotency_key;  ///< the Idempotency-Key header, if present
  std::string_view body;
};

/// One HTTP response. `headers` are extra fields besides Content-Type, Content-Length
/// or Transfer-Encoding, which the server sets.
struct response {
  unsigned status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  bool chunked = false;  ///< send the body with Transfer-Encoding: chunked
};

/// What the API layer is configured with. Grows with rate limits and faults.
struct api_options {
  /// When set, only `Authorization: Bearer <token>` with exactly this token is
  /// accepted; otherwise any non-empty bearer token.
  std::optional<std::string> token;
  /// The most stored 2xx answers kept for Idempotency-Key replays; past it the
  /// oldest are forgotten first.
  std::size_t idempotency_max_keys = 4'000'000;
};

/// A copy of the counters (`GET /_emulator/stats`).
struct stats {
  std::uint64_t requests = 0;                     ///< answers given, `/_emulator/*` excluded
  std::map<unsigned, std::uint64_t> by_status;    ///< answers by HTTP status
  std::uint64_t connections = 0;                  ///< connections accepted
  std::uint64_t applied = 0;                      ///< updates applied, over all organizations
  std::uint64_t replays = 0;                      ///< stored answers replayed for an Idempotency-Key
  std::uint64_t organizations = 0;                ///< organizations in the store
  std::uint64_t max_applies_per_org = 0;          ///< the most updates one organization received
  std::map<std::string, std::uint64_t> applies;   ///< "<account>/<id>" -> updates applied (>= 1 only)
};

/// The Truto-style JSON error body `{"statusCode","error","message"}`.
response truto_error(unsigned status, std::string_view message);

/// An error that came from the remote API: adds `truto_is_remote_error` and
/// `raw_response: {"detail": message}` (the shape of Juniper Mist's errors).
response remote_error(unsigned status, std::string_view message);

/// The HTTP reason phrase of `status` ("Unprocessable Entity"); "Unknown" if none.
std::string_view reason_phrase(unsigned status) noexcept;

/// Formats milliseconds since the Unix epoch as ISO 8601 UTC with milliseconds
/// ("2026-11-26T20:41:07.123Z").
std::string iso8601_ms(std::int64_t unix_ms);

/// Request handling and the shared store.
///
/// Thread-safe: every member may be called from any thread at once. The store is
/// sharded by integrated account, each shard behind its own mutex, held only while an
/// update is looked up, applied and its answer recorded; counters are atomics.
class api {
 public:
  using clock = std::chrono::system_clock;

  explicit api(api_options options = {});
  ~api();
  api(const api&) = delete;
  api& operator=(const api&) = delete;

  /// Answers one request (any route) and counts it. `now` stamps created/updated times.
  response handle(const request& req, clock::time_point now);

  /// Counts an answer the server gave itself (malformed HTTP, body over the limit).
  void count_response(unsigned status) noexcept;
  /// Counts one accepted connection.
  void count_connection() noexcept;

  /// A copy of the counters; `with_applies` = false leaves `applies` empty.
  stats snapshot(bool with_applies = true) const;
  /// The stats as the JSON text `GET /_emulator/stats` answers.
  std::string stats_json(bool with_applies = true) const;
  /// The stored unified organization as JSON text, or nullopt if never touched.
  std::optional<std::string> organization_json(std::string_view integrated_account_id,
                                               std::string_view id) const;
  /// Clears organizations, stored idempotent answers and every counter.
  void reset();

  const api_options& options() const noexcept { return options_; }

 private:
  struct shard;
  static constexpr std::size_t k_shards = 16;
  static constexpr unsigned k_max_status = 600;

  shard& shard_for(std::string_view integrated_account_id) const;
  void count_status(unsigned status) noexcept;
  response route(const request& req, clock::time_point now, bool& counted);
  response handle_organization(const request& req, std::string_view path, std::string_view query,
                               clock::time_point now);

  api_options options_;
  std::array<std::unique_ptr<shard>, k_shards> shards_;
  std::atomic<std::uint64_t> requests_{0};
  std::array<std::atomic<std::uint64_t>, k_max_status> by_status_{};
  std::atomic<std::uint64_t> connections_{0};
  std::atomic<std::uint64_t> applied_{0};
  std::atomic<std::uint64_t> replays_{0};
};

}  // namespace orgpatch::emulator
