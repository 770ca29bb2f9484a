// The emulator's sliding-window limits and Retry-After holds.
#include "emulator/limits.hpp"

#include <algorithm>
#include <utility>

namespace orgpatch::emulator {

std::uint64_t sliding_log::count(const window_limit& limit, time_point now) {
  const time_point horizon = now - limit.window;
  while (!admitted_.empty() && admitted_.front() <= horizon) admitted_.pop_front();
  return admitted_.size();
}

sliding_log::time_point sliding_log::next_free(const window_limit& limit, time_point now) const {
  if (admitted_.empty()) return now;
  return admitted_.front() + limit.window;
}

std::chrono::seconds ceil_seconds(std::chrono::system_clock::time_point at,
                                  std::chrono::system_clock::time_point now) noexcept {
  const auto left = std::chrono::ceil<std::chrono::seconds>(at - now);
  return std::max(left, std::chrono::seconds(1));
}

limiter::limiter(rate_limit_options rate, remote_limit_options remote)
    : rate_(std::move(rate)), remote_(std::move(remote)) {}

bool limiter::early(const hold_map& holds, std::string_view key, time_point now) const {
  const auto it = holds.find(std::string(key));
  if (it == holds.end()) return false;
  return now >= it->second.issued + rate_.early_retry_grace && now < it->second.not_before;
}

void limiter::set_hold(hold_map& holds, std::string_view key, time_point now, time_point not_before) {
  hold& h = holds[std::string(key)];
  h.issued = now;
  h.not_before = std::max(h.not_before, not_before);
  holds_used_.store(true, std::memory_order_relaxed);
}

// Drops windows that are empty and holds that have passed, so that the maps stay
// as large as the tokens and accounts seen in the last window, not all ever seen.
void limiter::sweep(time_point now) {
  if (++calls_ % 4096 != 0) return;
  const auto sweep_logs = [now](log_map& logs, const window_limit& limit) {
    for (auto it = logs.begin(); it != logs.end();) {
      if (it->second.count(limit, now) == 0)
        it = logs.erase(it);
      else
        ++it;
    }
  };
  sweep_logs(token_logs_, rate_.token);
  sweep_logs(account_logs_, rate_.account);
  sweep_logs(remote_logs_, remote_.limit);
  const auto sweep_holds = [now](hold_map& holds) {
    std::erase_if(holds, [now](const auto& kv) { return kv.second.not_before <= now; });
  };
  sweep_holds(token_holds_);
  sweep_holds(account_holds_);
}

gate_decision limiter::admit(std::string_view token, std::string_view account, time_point now) {
  gate_decision d;
  if (!rate_.enabled && !holds_used_.load(std::memory_order_relaxed)) return d;
  std::lock_guard lock(mutex_);
  sweep(now);
  // Early first: a request is early whatever the windows then say about it.
  d.early_token = early(token_holds_, token, now);
  d.early_account = early(account_holds_, account, now);
  if (!rate_.enabled) return d;

  sliding_log& by_token = token_logs_[std::string(token)];
  sliding_log& by_account = account_logs_[std::string(account)];
  const bool token_full = by_token.count(rate_.token, now) >= rate_.token.requests;
  const bool account_full = by_account.count(rate_.account, now) >= rate_.account.requests;
  if (!token_full && !account_full) {
    by_token.record(now);
    by_account.record(now);
    return d;
  }
  // The token's limit answers first: it is the wider one, and pauses everything.
  d.rejected = token_full ? limit_reason::token : limit_reason::account;
  const window_limit& limit = token_full ? rate_.token : rate_.account;
  const sliding_log& log = token_full ? by_token : by_account;
  d.retry_after = rate_.retry_after.count() > 0 ? rate_.retry_after : ceil_seconds(log.next_free(limit, now), now);
  if (token_full)
    set_hold(token_holds_, token, now, now + d.retry_after);
  else
    set_hold(account_holds_, account, now, now + d.retry_after);
  return d;
}

remote_decision limiter::admit_remote(std::string_view token, std::string_view account, time_point now) {
  remote_decision d;
  if (!remote_.enabled) return d;
  d.limit = remote_.limit.requests;
  d.window_s = static_cast<std::uint64_t>(std::chrono::ceil<std::chrono::seconds>(remote_.limit.window).count());
  std::lock_guard lock(mutex_);
  sweep(now);
  sliding_log& log = remote_logs_[std::string(token)];
  const std::uint64_t used = log.count(remote_.limit, now);
  if (used >= remote_.limit.requests) {
    d.admitted = false;
    d.remaining = 0;
    d.reset = ceil_seconds(log.next_free(remote_.limit, now), now);
    set_hold(account_holds_, account, now, now + d.reset);
    return d;
  }
  log.record(now);
  d.remaining = remote_.limit.requests - used - 1;
  d.reset = ceil_seconds(log.next_free(remote_.limit, now), now);
  return d;
}

void limiter::hold_account(std::string_view account, time_point now, std::chrono::seconds retry_after) {
  std::lock_guard lock(mutex_);
  set_hold(account_holds_, account, now, now + retry_after);
}

void limiter::reset() {
  std::lock_guard lock(mutex_);
  token_logs_.clear();
  account_logs_.clear();
  remote_logs_.clear();
  token_holds_.clear();
  account_holds_.clear();
  holds_used_.store(false, std::memory_order_relaxed);
  calls_ = 0;
}

}  // namespace orgpatch::emulator
