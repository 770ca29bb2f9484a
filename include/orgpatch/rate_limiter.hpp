/// Rate limits as GCRA (the generic cell rate algorithm: a token bucket kept as
/// one "theoretical arrival time"), with the rate adjustable at run time for
/// AIMD. Pure: time is passed in, nothing sleeps here. Not thread-safe.
#pragma once

#include <chrono>

namespace orgpatch {

using clock_type = std::chrono::steady_clock;

/// Admits at most `burst + rate·W` requests in any window of W seconds.
/// A rate of 0 means unlimited.
class gcra {
 public:
  gcra() = default;
  gcra(double rate, double burst) noexcept { configure(rate, burst); }

  /// Changes rate and burst; the time already earned is kept.
  void configure(double rate, double burst) noexcept;
  /// Changes only the rate (AIMD), keeping the burst. The requests already
  /// counted keep their weight: the debt ahead of `now` is rescaled to the new
  /// rate, so lowering the rate never lets extra requests through at once.
  void set_rate(double rate, clock_type::time_point now) noexcept;

  /// Zero when a request may go at `now`, else how long until one may.
  clock_type::duration wait(clock_type::time_point now) const noexcept;
  /// Counts one request at `now` (call when wait(now) is zero).
  void take(clock_type::time_point now) noexcept;
  /// Undoes one `take` whose request was not sent.
  void give_back(clock_type::time_point now) noexcept;

  double rate() const noexcept { return rate_; }
  double burst() const noexcept { return burst_; }
  bool unlimited() const noexcept { return rate_ <= 0; }

 private:
  double rate_ = 0;
  double burst_ = 1;
  clock_type::duration interval_{};   // 1 / rate
  clock_type::duration tolerance_{};  // (burst - 1) / rate
  clock_type::time_point tat_{};      // theoretical arrival time of the next request
};

/// Additive-increase / multiplicative-decrease around a configured ceiling.
struct aimd {
  double ceiling = 0;        ///< the configured rate (0: unlimited, never adapted)
  double decrease = 0.5;     ///< rate × this on a 429
  double floor_share = 0.05; ///< never below ceiling × this
  double increase_share = 0.02;  ///< + ceiling × this per success

  double on_limited(double rate) const noexcept;
  double on_success(double rate) const noexcept;
};

}  // namespace orgpatch
