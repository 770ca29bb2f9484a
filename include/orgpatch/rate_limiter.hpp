/// Token buckets for the API token's limit and each integrated account's.
/// Pure: time is passed in, nothing sleeps here.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <unordered_map>

namespace orgpatch {

using clock_type = std::chrono::steady_clock;

/// A token bucket of rate r per second and burst b: admits at most b + r·W
/// requests in any window of W seconds. Rate 0 means unlimited.
class token_bucket {
 public:
  token_bucket() = default;
  token_bucket(double rate, double burst, clock_type::time_point now) noexcept
      : rate_(rate), burst_(burst < 1 ? 1 : burst), tokens_(burst_), last_(now) {}

  /// How long until a token is available (zero: now).
  clock_type::duration wait_time(clock_type::time_point now) noexcept;
  /// Takes one token; call only when wait_time(now) is zero.
  void take(clock_type::time_point now) noexcept;
  bool unlimited() const noexcept { return rate_ <= 0; }

 private:
  void refill(clock_type::time_point now) noexcept;
  double rate_ = 0;
  double burst_ = 1;
  double tokens_ = 1;
  clock_type::time_point last_{};
};

/// The token's bucket and one bucket per integrated account.
class rate_limiter {
 public:
  rate_limiter(double rate, double burst, double account_rate, double account_burst) noexcept
      : rate_(rate), burst_(burst), account_rate_(account_rate), account_burst_(account_burst) {}

  /// Zero when a request for `account` may go now (and takes the tokens), else
  /// how long to wait before asking again.
  clock_type::duration try_acquire(std::string_view account, clock_type::time_point now);

 private:
  double rate_, burst_, account_rate_, account_burst_;
  bool started_ = false;
  token_bucket global_;
  std::unordered_map<std::string, token_bucket> accounts_;
};

}  // namespace orgpatch
