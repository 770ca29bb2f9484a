// The API's limits and faults: Truto's gate, the remote limit's headers and 429,
// and what the drawn faults do to an answer (DESIGN.md §8).
#include "emulator/api.hpp"

#include <stdexcept>
#include <string>
#include <utility>

namespace orgpatch::emulator {
namespace {

void check_window(const window_limit& limit, const char* name) {
  if (limit.requests == 0 || limit.window.count() <= 0)
    throw std::invalid_argument(std::string(name) + ": requests and window_ms must be positive");
}

}  // namespace

response too_many_requests(std::chrono::seconds retry_after) {
  response res = truto_error(429, "Too many requests, retry after " + std::to_string(retry_after.count()) + " s");
  res.headers.emplace_back("Retry-After", std::to_string(retry_after.count()));
  return res;
}

api_options api::validated(api_options options) {
  const rate_limit_options& rl = options.rate_limit;
  if (rl.enabled) {
    check_window(rl.token, "rate_limit.token");
    check_window(rl.account, "rate_limit.account");
  }
  if (rl.retry_after.count() < 0) throw std::invalid_argument("rate_limit.retry_after_s: must be >= 0");
  if (rl.early_retry_grace.count() < 0) throw std::invalid_argument("rate_limit.early_retry_grace_ms: must be >= 0");
  if (options.remote_limit.enabled) check_window(options.remote_limit.limit, "remote_limit");
  options.faults.validate();
  return options;
}

std::optional<response> api::gate(std::string_view token, std::string_view account, clock::time_point now) {
  const gate_decision d = limits_.admit(token, account, now);
  if (d.early_token || d.early_account) {
    early_.fetch_add(1, std::memory_order_relaxed);
    if (d.early_token) early_token_.fetch_add(1, std::memory_order_relaxed);
    if (d.early_account) early_account_.fetch_add(1, std::memory_order_relaxed);
  }
  if (d.rejected == limit_reason::none) return std::nullopt;
  (d.rejected == limit_reason::token ? limited_token_ : limited_account_).fetch_add(1, std::memory_order_relaxed);
  return too_many_requests(d.retry_after);
}

std::optional<response> api::remote_gate(std::string_view token, std::string_view account, clock::time_point now,
                                         header_fields& headers) {
  if (!limits_.remote_enabled()) return std::nullopt;
  const remote_decision d = limits_.admit_remote(token, account, now);
  header_fields fields;
  fields.emplace_back("ratelimit-limit", std::to_string(d.limit) + ";w=" + std::to_string(d.window_s));
  fields.emplace_back("ratelimit-remaining", std::to_string(d.remaining));
  fields.emplace_back("ratelimit-reset", std::to_string(d.reset.count()));
  if (d.admitted) {
    for (auto& f : fields) headers.push_back(std::move(f));
    return std::nullopt;
  }
  limited_remote_.fetch_add(1, std::memory_order_relaxed);
  response res = remote_error(429, "Rate limit exceeded: " + std::to_string(d.limit) + " calls per " +
                                       std::to_string(d.window_s) + " s for this token");
  res.headers = std::move(fields);
  res.headers.emplace_back("Retry-After", std::to_string(d.reset.count()));
  return res;
}

fault_plan api::draw_faults(std::uint64_t connection_request) {
  if (!faults_on_.load(std::memory_order_relaxed)) return {};
  std::lock_guard lock(dice_mutex_);
  return dice_.draw(connection_request);
}

std::optional<response> api::pre_apply_fault(const fault_plan& plan, std::string_view account, clock::time_point now) {
  switch (plan.kind) {
    case fault_kind::status_429: {
      count_fault(fault_counter::status_429);
      limited_fault_.fetch_add(1, std::memory_order_relaxed);
      // The client is to pause this account, as after a limit 429.
      limits_.hold_account(account, now, plan.retry_after);
      return too_many_requests(plan.retry_after);
    }
    case fault_kind::status_500:
      count_fault(fault_counter::status_500);
      return truto_error(500, "Internal server error");
    case fault_kind::status_502:
      count_fault(fault_counter::status_502);
      return truto_error(502, "The remote API could not be reached");
    case fault_kind::status_503:
      count_fault(fault_counter::status_503);
      return truto_error(503, "The integrated account is blocked");
    case fault_kind::status_504:
      count_fault(fault_counter::status_504);
      return truto_error(504, "The remote API did not answer in time");
    case fault_kind::reset_before: {
      count_fault(fault_counter::reset_before);
      response res;
      res.action = response::transport::reset_before;
      return res;
    }
    case fault_kind::stall: {
      count_fault(fault_counter::stall);
      response res;
      res.action = response::transport::stall;
      res.stall = plan.stall;
      return res;
    }
    case fault_kind::none:
    case fault_kind::reset_mid_body:
    case fault_kind::invalid_json:
      break;
  }
  return std::nullopt;
}

void api::post_apply_faults(const fault_plan& plan, response& res) {
  if (res.action != response::transport::answer) return;  // nothing is written
  if (plan.kind == fault_kind::reset_mid_body) {
    count_fault(fault_counter::reset_mid_body);
    res.action = response::transport::reset_mid_body;
  } else if (plan.kind == fault_kind::invalid_json && res.status / 100 == 2) {
    // Half a JSON object is never JSON: its braces do not balance.
    count_fault(fault_counter::invalid_json);
    res.body.resize(res.body.size() / 2);
  }
  if (plan.latency_drawn) {
    count_fault(fault_counter::latency);
    res.delay = plan.latency;
  }
  if (plan.chunked) {
    count_fault(fault_counter::chunked);
    res.chunked = true;
  }
  if (plan.close) {
    count_fault(fault_counter::close_after);
    res.close = true;
  }
}

void api::set_faults(const fault_options& faults) {
  faults.validate();
  std::lock_guard lock(dice_mutex_);
  dice_ = fault_dice(faults);
  faults_on_.store(faults.any(), std::memory_order_relaxed);
}

void api::count_fault(fault_counter c) noexcept {
  faults_[static_cast<std::size_t>(c)].fetch_add(1, std::memory_order_relaxed);
}


}  // namespace orgpatch::emulator
