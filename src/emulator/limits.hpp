/// The emulator's rate limits (DESIGN.md §2, §8): Truto's two limits (per API token
/// and per integrated account) and the optional remote limit (Juniper Mist's calls
/// per hour per token), each over an exact sliding window; and the "not before"
/// instants its 429s gave, so that requests that arrive too early are counted.
/// Time is passed in: no clock, no sockets.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace orgpatch::emulator {

/// N requests in any window of W.
struct window_limit {
  std::uint64_t requests = 0;       ///< N (> 0)
  std::chrono::milliseconds window{0};  ///< W (> 0)
};

/// Truto's own limits. In-process servers default to off (tests and the demo are
/// not about limits); `orgpatch-emulator` turns them on unless `--no-rate-limit`.
struct rate_limit_options {
  bool enabled = false;
  window_limit token{500, std::chrono::milliseconds(10'000)};   ///< per API token
  window_limit account{50, std::chrono::milliseconds(10'000)};  ///< per integrated account
  /// The Retry-After of a limit 429 (Truto sends 10). Zero: the seconds until the
  /// window frees a slot, rounded up (at least 1).
  std::chrono::seconds retry_after{10};
  /// A request for a held token or account that arrives within this long after the
  /// 429 that held it is not an early retry: the client may have sent it before it
  /// read the 429 (another connection). Applies to every 429 (limit, remote, fault).
  std::chrono::milliseconds early_retry_grace{100};
};

/// The remote API's limit, per API token, answered with `ratelimit-*` headers.
struct remote_limit_options {
  bool enabled = false;
  window_limit limit{5000, std::chrono::milliseconds(3'600'000)};
};

/// An exact sliding log: a request at t is admitted when fewer than N were admitted
/// in (t - W, t], so no window of length W ever holds more than N. Rejected requests
/// are not recorded. Not thread-safe.
class sliding_log {
 public:
  using time_point = std::chrono::system_clock::time_point;

  /// Forgets admissions at or before now - W; how many remain in (now - W, now].
  std::uint64_t count(const window_limit& limit, time_point now);
  /// Records an admission at `now`.
  void record(time_point now) { admitted_.push_back(now); }
  /// The instant the oldest admission leaves the window (a slot frees); `now` when empty.
  time_point next_free(const window_limit& limit, time_point now) const;
  bool empty() const noexcept { return admitted_.empty(); }

 private:
  std::deque<time_point> admitted_;
};

/// Seconds from `now` until `at`, rounded up, at least 1.
std::chrono::seconds ceil_seconds(std::chrono::system_clock::time_point at,
                                  std::chrono::system_clock::time_point now) noexcept;

/// Which limit answered a request.
enum class limit_reason { none, token, account, remote };

/// What Truto's gate decided for one request.
struct gate_decision {
  limit_reason rejected = limit_reason::none;  ///< token or account when answered 429
  std::chrono::seconds retry_after{0};         ///< with a rejection
  bool early_token = false;    ///< arrived while its token was held by an earlier 429
  bool early_account = false;  ///< arrived while its account was held by an earlier 429
};

/// What the remote limit decided for one request that reaches the remote API.
struct remote_decision {
  bool admitted = true;
  std::uint64_t limit = 0;      ///< N
  std::uint64_t window_s = 0;   ///< W in seconds (rounded up)
  std::uint64_t remaining = 0;  ///< slots left in the window after this request
  std::chrono::seconds reset{0};  ///< until the window frees a slot (Retry-After when rejected)
};

/// The limits and holds of one emulator.
///
/// Thread-safe: one mutex guards the windows and holds; it is taken only when a
/// limit is on or a 429 has held something.
class limiter {
 public:
  using time_point = std::chrono::system_clock::time_point;

  limiter(rate_limit_options rate, remote_limit_options remote);

  /// Truto's gate for a request of `token` for `account`: first whether it arrived
  /// before a Retry-After given to either, then (when on) both windows; admitted
  /// requests are recorded in both, rejected ones in neither and hold what rejected
  /// them until now + Retry-After.
  gate_decision admit(std::string_view token, std::string_view account, time_point now);

  /// The remote window of `token` (when on). A rejection holds `account` (the client
  /// pauses only the account on a remote 429) until the window frees a slot.
  remote_decision admit_remote(std::string_view token, std::string_view account, time_point now);

  /// A 429 the emulator gave for another reason (a fault) holds `account`.
  void hold_account(std::string_view account, time_point now, std::chrono::seconds retry_after);

  /// Forgets every window and hold.
  void reset();

  bool remote_enabled() const noexcept { return remote_.enabled; }

 private:
  /// Until when a token or account should not be sent to, and since when it knew.
  struct hold {
    time_point issued{};
    time_point not_before{};
  };
  using log_map = std::unordered_map<std::string, sliding_log>;
  using hold_map = std::unordered_map<std::string, hold>;

  bool early(const hold_map& holds, std::string_view key, time_point now) const;
  void set_hold(hold_map& holds, std::string_view key, time_point now, time_point not_before);
  void sweep(time_point now);

  rate_limit_options rate_;
  remote_limit_options remote_;
  std::mutex mutex_;
  std::atomic<bool> holds_used_{false};  // set once a 429 held something
  std::uint64_t calls_ = 0;              // guarded by mutex_: sweeps stale entries now and then
  log_map token_logs_;
  log_map account_logs_;
  log_map remote_logs_;
  hold_map token_holds_;
  hold_map account_holds_;
};

}  // namespace orgpatch::emulator
