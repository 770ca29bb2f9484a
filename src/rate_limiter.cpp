#include "orgpatch/rate_limiter.hpp"

#include <algorithm>
#include <cmath>

namespace orgpatch {

void token_bucket::refill(clock_type::time_point now) noexcept {
  if (now <= last_) return;
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
  last_ = now;
}

clock_type::duration token_bucket::wait_time(clock_type::time_point now) noexcept {
  if (unlimited()) return clock_type::duration::zero();
  refill(now);
  if (tokens_ >= 1) return clock_type::duration::zero();
  const double seconds = (1 - tokens_) / rate_;
  return std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds)) +
         clock_type::duration(1);
}

void token_bucket::take(clock_type::time_point now) noexcept {
  if (unlimited()) return;
  refill(now);
  tokens_ -= 1;
}

clock_type::duration rate_limiter::try_acquire(std::string_view account, clock_type::time_point now) {
  if (!started_) {
    global_ = token_bucket(rate_, burst_, now);
    started_ = true;
  }
  token_bucket* acct = nullptr;
  if (account_rate_ > 0) {
    auto it = accounts_.find(std::string(account));
    if (it == accounts_.end()) it = accounts_.emplace(std::string(account), token_bucket(account_rate_, account_burst_, now)).first;
    acct = &it->second;
  }
  // Both must admit; take from neither unless both can.
  const auto wait = std::max(global_.wait_time(now), acct ? acct->wait_time(now) : clock_type::duration::zero());
  if (wait > clock_type::duration::zero()) return wait;
  global_.take(now);
  if (acct) acct->take(now);
  return clock_type::duration::zero();
}

}  // namespace orgpatch
