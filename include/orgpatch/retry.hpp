/// The retry policy (DESIGN.md §2 status table, §4): pure functions of their
/// inputs; randomness and time are passed in.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace orgpatch {

/// What to do with an HTTP answer.
enum class verdict {
  ok,            ///< 2xx: applied
  failed,        ///< permanent: no retry
  retry,         ///< transient: retry with backoff
  rate_limited,  ///< 429: wait as told, retry; costs no attempt
  stop_run,      ///< Truto refused the token: every other job would fail too
};

/// Classifies a status; `remote` is the body's `truto_is_remote_error`.
verdict classify(unsigned status, bool remote) noexcept;

/// Parses Retry-After: delay-seconds or an HTTP-date (RFC 9110 §10.2.3),
/// relative to `now`. Nullopt when absent or unreadable; a past date is zero.
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value,
                                                           std::chrono::system_clock::time_point now);

/// Full-jitter backoff: `random01` ∈ [0,1) times min(cap, base·2^(attempt-1)).
std::chrono::milliseconds backoff_delay(unsigned attempt, std::chrono::milliseconds base,
                                        std::chrono::milliseconds cap, double random01) noexcept;

/// The retry budget: retries may be at most `percent` of the requests of the
/// last 10 seconds, plus a floor, so an outage slows a run down instead of
/// multiplying its load. Counted in one-second buckets. Pure; not thread-safe.
class retry_budget {
 public:
  using clock = std::chrono::steady_clock;
  /// `floor`: retries always allowed per 10 s window whatever the traffic (the
  /// default, 100, is 10 retries a second, as Finagle's minimum).
  explicit retry_budget(double percent, unsigned floor = 100) noexcept : percent_(percent), floor_(floor) {}

  /// Every request sent (first attempts and retries).
  void on_request(clock::time_point now) noexcept;
  /// True (and counted) when a retry may be sent now.
  bool try_spend(clock::time_point now) noexcept;
  /// Retries the window still allows now.
  double available(clock::time_point now) noexcept;

 private:
  static constexpr std::size_t k_buckets = 10;
  struct bucket {
    std::int64_t second = -1;
    std::uint64_t requests = 0;
    std::uint64_t retries = 0;
  };
  bucket& current(clock::time_point now) noexcept;
  double percent_;
  unsigned floor_;
  std::array<bucket, k_buckets> buckets_{};
};

}  // namespace orgpatch
