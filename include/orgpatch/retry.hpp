/// The retry policy (DESIGN.md §2 status table, §4): pure functions of their
/// inputs; randomness and time are passed in.
#pragma once

#include <chrono>
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

}  // namespace orgpatch
