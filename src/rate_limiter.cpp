#include "orgpatch/rate_limiter.hpp"

#include <algorithm>

namespace orgpatch {

namespace {
clock_type::duration seconds_to_duration(double s) {
  return std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(s));
}
}  // namespace

void gcra::configure(double rate, double burst) noexcept {
  rate_ = rate > 0 ? rate : 0;
  burst_ = burst >= 1 ? burst : 1;
  if (rate_ > 0) {
    interval_ = seconds_to_duration(1.0 / rate_);
    tolerance_ = seconds_to_duration((burst_ - 1.0) / rate_);
  }
}

void gcra::set_rate(double rate, clock_type::time_point now) noexcept {
  const double old_rate = rate_;
  configure(rate, burst_);
  if (old_rate > 0 && rate_ > 0 && tat_ > now) {
    const double debt = std::chrono::duration<double>(tat_ - now).count() * old_rate / rate_;
    tat_ = now + seconds_to_duration(debt);
  }
}

clock_type::duration gcra::wait(clock_type::time_point now) const noexcept {
  if (unlimited()) return clock_type::duration::zero();
  // Admissible when the next arrival is due no later than now + tolerance.
  const auto earliest = tat_ - tolerance_;
  return earliest > now ? earliest - now : clock_type::duration::zero();
}

void gcra::take(clock_type::time_point now) noexcept {
  if (unlimited()) return;
  tat_ = std::max(tat_, now) + interval_;
}

void gcra::give_back(clock_type::time_point now) noexcept {
  if (unlimited()) return;
  tat_ = std::max(now, tat_ - interval_);
}

double aimd::on_limited(double rate) const noexcept {
  if (ceiling <= 0) return rate;
  return std::max(ceiling * floor_share, rate * decrease);
}

double aimd::on_success(double rate) const noexcept {
  if (ceiling <= 0) return rate;
  return std::min(ceiling, rate + ceiling * increase_share);
}

}  // namespace orgpatch
