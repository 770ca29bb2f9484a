/// The emulator's request handling (DESIGN.md §2, §8): routes, validation, the
/// organization store, idempotent replays and the counters behind
/// `GET /_emulator/stats`. No sockets and no Beast: the server turns an HTTP
/// message into a `request` and writes the `response` back, so all of this can be
/// unit tested directly.
#pragma once

#include "emulator/faults.hpp"
#include "emulator/limits.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
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
  /// This request's 1-based index on its connection (0: unknown); for `close_after`.
  std::uint64_t connection_request = 0;
};

/// Extra header fields of an answer, in order.
using header_fields = std::vector<std::pair<std::string, std::string>>;

/// One HTTP response. `headers` are extra fields besides Content-Type, Content-Length
/// or Transfer-Encoding, which the server sets.
struct response {
  unsigned status = 200;
  std::string body;
  std::string content_type = "application/json";
  header_fields headers;
  bool chunked = false;  ///< send the body with Transfer-Encoding: chunked
  /// What the server does with this answer besides writing it (faults).
  enum class transport { answer, reset_before, reset_mid_body, stall };
  transport action = transport::answer;
  std::chrono::microseconds delay{0};  ///< wait this long before answering (latency)
  std::chrono::milliseconds stall{0};  ///< with transport::stall: wait this long, then close
  bool close = false;                  ///< Connection: close on this answer
};

/// What the API layer is configured with: the token, the idempotency store, the rate
/// limits and the fault profile.
struct api_options {
  /// When set, only `Authorization: Bearer <token>` with exactly this token is
  /// accepted; otherwise any non-empty bearer token.
  std::optional<std::string> token;
  /// The most stored 2xx answers kept for Idempotency-Key replays; past it the
  /// oldest are forgotten first.
  std::size_t idempotency_max_keys = 4'000'000;
  /// Truto's limits per token and per account; OFF by default in-process (the
  /// binary turns them on unless --no-rate-limit).
  rate_limit_options rate_limit;
  /// The remote API's limit per token with `ratelimit-*` headers; off by default.
  remote_limit_options remote_limit;
  /// Fault injection on the PATCH route; none by default.
  fault_options faults;
};

/// The most distinct Idempotency-Key values remembered per organization: its
/// `org_counts::idempotency_keys` is exact up to this and stays at it past it.
inline constexpr std::size_t k_max_idempotency_keys_per_org = 8;

/// What one organization was sent (`stats::per_org`). Counted: every PATCH request
/// for a UUID organization that passed Truto's checks (token, query, Truto's limits,
/// Idempotency-Key syntax, Content-Type, a JSON object body with a valid
/// `remote_data`), however it was then answered: applied, replayed for its
/// Idempotency-Key, a remote 422, a remote-limit 429, or a fault (status faults,
/// reset_before and stall included). Not counted: GET, and requests answered before
/// that (401, 400, 415, Truto-limit 429s), or for a non-UUID id (remote 404).
struct org_counts {
  std::uint64_t requests = 0;          ///< PATCH requests counted as above
  /// Distinct Idempotency-Key values among them (a request without the header counts
  /// as the key ""); exact up to k_max_idempotency_keys_per_org, then stays at it.
  std::uint64_t idempotency_keys = 0;
  bool operator==(const org_counts&) const = default;
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
  std::uint64_t max_requests_per_org = 0;          ///< the most PATCH requests one organization received
  std::uint64_t max_idempotency_keys_per_org = 0;  ///< the most distinct Idempotency-Keys one organization saw
  /// "<account>/<id>" -> what it was sent (see org_counts), for every organization
  /// that received a counted request (also those never applied).
  std::map<std::string, org_counts> per_org;
  std::uint64_t dropped = 0;  ///< requests read but never answered (reset_before, stall faults)

  /// 429 answers by why they were given.
  struct rate_limited_counts {
    std::uint64_t token = 0;    ///< Truto's per-token limit
    std::uint64_t account = 0;  ///< Truto's per-account limit
    std::uint64_t remote = 0;   ///< the remote API's limit
    std::uint64_t fault = 0;    ///< the status_429 fault
  } rate_limited;
  /// Requests rejected by a limit (token + account + remote; faults excluded).
  std::uint64_t over_limit = 0;
  /// Requests that arrived while their token or account was held by an earlier 429
  /// (before its Retry-After, past the grace period): the client did not wait.
  std::uint64_t early_retries = 0;
  std::uint64_t early_retries_token = 0;    ///< of which for a held token
  std::uint64_t early_retries_account = 0;  ///< of which for a held account (a request may be both)
  /// Faults injected by kind (fault_name(); every kind present).
  std::map<std::string, std::uint64_t> faults;
};

/// The Truto-style JSON error body `{"statusCode","error","message"}`.
response truto_error(unsigned status, std::string_view message);

/// An error that came from the remote API: adds `truto_is_remote_error` and
/// `raw_response: {"detail": message}` (the shape of Juniper Mist's errors).
response remote_error(unsigned status, std::string_view message);

/// Truto's 429 (no `truto_is_remote_error`) with `Retry-After: <seconds>`. The body
/// does not say which limit answered, as Truto's does not.
response too_many_requests(std::chrono::seconds retry_after);

/// The HTTP reason phrase of `status` ("Unprocessable Entity"); "Unknown" if none.
std::string_view reason_phrase(unsigned status) noexcept;

/// Formats milliseconds since the Unix epoch as ISO 8601 UTC with milliseconds
/// ("2026-11-26T20:41:07.123Z").
std::string iso8601_ms(std::int64_t unix_ms);

/// Request handling and the shared store.
///
/// Thread-safe: every member may be called from any thread at once. The store is
/// sharded by integrated account, each shard behind its own mutex, held only while an
/// update is looked up, applied and its answer recorded; counters are atomics; the
/// limits have one mutex (taken only when a limit is on or a 429 held something), the
/// fault PRNG another (taken only when a fault is configured).
///
/// Order of checks for `PATCH /unified/...`: route, method, token (401), query
/// (400), Truto's limits (429, per token then per account), body (400, 415), the
/// organization id (remote 404), faults, idempotent replay, the remote limit
/// (remote 429), remote validation (remote 422), apply. Requests answered before the
/// limits are not counted in their windows; nor are the ones they reject. Every PATCH
/// that gets past the organization id is counted for its organization (org_counts),
/// whichever of the later steps answers it.
class api {
 public:
  using clock = std::chrono::system_clock;

  /// Throws std::invalid_argument naming the field when a limit or fault option is invalid.
  explicit api(api_options options = {});
  ~api();
  api(const api&) = delete;
  api& operator=(const api&) = delete;

  /// Answers one request (any route) and counts it. `now` stamps created/updated times
  /// and is the time the rate-limit windows see. A `response::action` other than
  /// `answer` (a fault) is counted among the faults and in `dropped`, not by status.
  response handle(const request& req, clock::time_point now);

  /// Counts an answer the server gave itself (malformed HTTP, body over the limit).
  void count_response(unsigned status) noexcept;
  /// Counts one accepted connection.
  void count_connection() noexcept;

  /// A copy of the counters; `with_applies` = false leaves `applies` and `per_org` empty.
  stats snapshot(bool with_applies = true) const;
  /// The stats as the JSON text `GET /_emulator/stats` answers.
  std::string stats_json(bool with_applies = true) const;
  /// The stored unified organization as JSON text, or nullopt if never touched.
  std::optional<std::string> organization_json(std::string_view integrated_account_id,
                                               std::string_view id) const;
  /// Clears organizations, stored idempotent answers, the limits' windows and holds,
  /// and every counter; the fault PRNG starts again from its seed.
  void reset();

  /// Replaces the fault profile (its PRNG starts from the new seed); `options().faults`
  /// keeps the one constructed with. Thread-safe; a request already drawn keeps its
  /// faults. Throws std::invalid_argument naming the field when `faults` is invalid.
  void set_faults(const fault_options& faults);

  const api_options& options() const noexcept { return options_; }

 private:
  struct shard;
  static constexpr std::size_t k_shards = 16;
  static constexpr unsigned k_max_status = 600;

  static api_options validated(api_options options);
  shard& shard_for(std::string_view integrated_account_id) const;
  void count_status(unsigned status) noexcept;
  response route(const request& req, clock::time_point now, bool& counted);
  response handle_organization(const request& req, std::string_view path, std::string_view query,
                               clock::time_point now);
  std::optional<response> gate(std::string_view token, std::string_view account, clock::time_point now);
  std::optional<response> remote_gate(std::string_view token, std::string_view account, clock::time_point now,
                                      header_fields& headers);
  fault_plan draw_faults(std::uint64_t connection_request);
  std::optional<response> pre_apply_fault(const fault_plan& plan, std::string_view account, clock::time_point now);
  void post_apply_faults(const fault_plan& plan, response& res);
  void count_fault(fault_counter c) noexcept;

  api_options options_;
  std::array<std::unique_ptr<shard>, k_shards> shards_;
  std::atomic<std::uint64_t> requests_{0};
  std::array<std::atomic<std::uint64_t>, k_max_status> by_status_{};
  std::atomic<std::uint64_t> connections_{0};
  std::atomic<std::uint64_t> applied_{0};
  std::atomic<std::uint64_t> replays_{0};
  std::atomic<std::uint64_t> dropped_{0};

  limiter limits_;
  std::mutex dice_mutex_;
  fault_dice dice_;  // guarded by dice_mutex_
  std::atomic<bool> faults_on_{false};
  std::atomic<std::uint64_t> limited_token_{0};
  std::atomic<std::uint64_t> limited_account_{0};
  std::atomic<std::uint64_t> limited_remote_{0};
  std::atomic<std::uint64_t> limited_fault_{0};
  std::atomic<std::uint64_t> early_{0};
  std::atomic<std::uint64_t> early_token_{0};
  std::atomic<std::uint64_t> early_account_{0};
  std::array<std::atomic<std::uint64_t>, k_fault_counters> faults_{};
};

}  // namespace orgpatch::emulator
