// The emulator's fault profile and its seeded draws.
#include "emulator/faults.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

namespace orgpatch::emulator {
namespace {

constexpr double k_max_latency_ms = 60'000;
constexpr double k_two_pi = 6.283185307179586476925286766559;

/// The exclusive faults in draw order, with their probabilities.
std::array<std::pair<fault_kind, double>, 9> exclusive(const fault_options& o) {
  return {{{fault_kind::status_429, o.status_429},
           {fault_kind::status_500, o.status_500},
           {fault_kind::status_502, o.status_502},
           {fault_kind::status_503, o.status_503},
           {fault_kind::status_504, o.status_504},
           {fault_kind::reset_before, o.reset_before},
           {fault_kind::reset_mid_body, o.reset_mid_body},
           {fault_kind::stall, o.stall},
           {fault_kind::invalid_json, o.invalid_json}}};
}

void check_probability(double p, const char* name) {
  if (!(p >= 0 && p <= 1)) throw std::invalid_argument(std::string(name) + ": probability must be 0 to 1");
}

}  // namespace

std::string_view fault_name(fault_counter c) noexcept {
  switch (c) {
    case fault_counter::status_429: return "status_429";
    case fault_counter::status_500: return "status_500";
    case fault_counter::status_502: return "status_502";
    case fault_counter::status_503: return "status_503";
    case fault_counter::status_504: return "status_504";
    case fault_counter::reset_before: return "reset_before";
    case fault_counter::reset_mid_body: return "reset_mid_body";
    case fault_counter::stall: return "stall";
    case fault_counter::invalid_json: return "invalid_json";
    case fault_counter::latency: return "latency";
    case fault_counter::chunked: return "chunked";
    case fault_counter::close_after: return "close_after";
  }
  return "unknown";
}

bool fault_options::any() const noexcept {
  for (const auto& [kind, p] : exclusive(*this))
    if (p > 0) return true;
  return latency.probability > 0 || chunked > 0 || (close_after > 0 && close_probability > 0);
}

void fault_options::validate() const {
  check_probability(status_429, "faults.status_429");
  check_probability(status_500, "faults.status_500");
  check_probability(status_502, "faults.status_502");
  check_probability(status_503, "faults.status_503");
  check_probability(status_504, "faults.status_504");
  check_probability(reset_before, "faults.reset_before");
  check_probability(reset_mid_body, "faults.reset_mid_body");
  check_probability(stall, "faults.stall");
  check_probability(invalid_json, "faults.invalid_json");
  check_probability(chunked, "faults.chunked");
  check_probability(latency.probability, "faults.latency");
  check_probability(close_probability, "faults.close_after");
  double total = 0;
  for (const auto& [kind, p] : exclusive(*this)) total += p;
  if (total > 1 + 1e-9)
    throw std::invalid_argument(
        "faults: the probabilities of status_*, reset_before, reset_mid_body, stall and invalid_json add up to " +
        std::to_string(total) + ", more than 1");
  if (retry_after_429.count() < 0) throw std::invalid_argument("faults.status_429.retry_after_s: must be >= 0");
  if (stall_time.count() < 0) throw std::invalid_argument("faults.stall.stall_ms: must be >= 0");
  const latency_fault& l = latency;
  if (!(l.fixed_ms >= 0) || !(l.min_ms >= 0) || !(l.max_ms >= l.min_ms) || !(l.median_ms >= 0) || !(l.sigma >= 0))
    throw std::invalid_argument("faults.latency: needs 0 <= min_ms <= max_ms and non-negative times and sigma");
}

fault_dice::fault_dice(const fault_options& options) : options_(options), state_(options.seed) {}

std::uint64_t fault_dice::next() noexcept {
  // splitmix64 (Steele, Lea, Flood 2014): tiny, fast, the same everywhere.
  std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double fault_dice::uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

fault_plan fault_dice::draw(std::uint64_t connection_request) {
  fault_plan plan;
  plan.retry_after = options_.retry_after_429;
  plan.stall = options_.stall_time;
  // Each kind draws only when it can fire, in a fixed order, so a profile's
  // sequence depends on the seed and the order of requests alone.
  const auto kinds = exclusive(options_);
  double total = 0;
  for (const auto& [kind, p] : kinds) total += p;
  if (total > 0) {
    const double u = uniform();
    double cumulative = 0;
    for (const auto& [kind, p] : kinds) {
      cumulative += p;
      if (p > 0 && u < cumulative) {
        plan.kind = kind;
        break;
      }
    }
  }
  const latency_fault& l = options_.latency;
  if (l.probability > 0 && uniform() < l.probability) {
    double ms = l.fixed_ms;
    if (l.kind == latency_fault::distribution::uniform) {
      ms = l.min_ms + (l.max_ms - l.min_ms) * uniform();
    } else if (l.kind == latency_fault::distribution::log_normal) {
      // Box-Muller: 1 - u is in (0, 1], so its log is finite.
      const double u1 = 1.0 - uniform();
      const double u2 = uniform();
      const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(k_two_pi * u2);
      ms = l.median_ms * std::exp(l.sigma * z);
    }
    ms = std::clamp(ms, 0.0, k_max_latency_ms);
    plan.latency = std::chrono::microseconds(static_cast<std::int64_t>(ms * 1000.0));
    plan.latency_drawn = true;
  }
  if (options_.chunked > 0) plan.chunked = uniform() < options_.chunked;
  if (options_.close_after > 0 && connection_request >= options_.close_after && options_.close_probability > 0)
    plan.close = uniform() < options_.close_probability;
  return plan;
}

}  // namespace orgpatch::emulator
