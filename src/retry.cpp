#include "orgpatch/retry.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <ctime>
#include <string>

namespace orgpatch {

verdict classify(unsigned status, bool remote) noexcept {
  if (status >= 200 && status < 300) return verdict::ok;
  if (status == 429) return verdict::rate_limited;
  if ((status == 401 || status == 403) && !remote) return verdict::stop_run;
  if (status == 408 || status == 500 || status == 502 || status == 504) return verdict::retry;
  if (status == 503) return verdict::failed;  // the integrated account is blocked
  if (status >= 500 && status != 501 && status != 505) return verdict::retry;
  return verdict::failed;
}

namespace {

// IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", and the two obsolete forms RFC 9110
// asks recipients to accept.
std::optional<std::time_t> parse_http_date(std::string_view s) {
  std::string text(s);
  std::tm tm{};
  for (const char* format : {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %d %H:%M:%S %Y"}) {
    tm = {};
    const char* end = strptime(text.c_str(), format, &tm);
    if (end && *end == '\0') return timegm(&tm);
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value,
                                                           std::chrono::system_clock::time_point now) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    std::uint64_t seconds = 0;
    auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (ec != std::errc{} || p != value.data() + value.size()) seconds = 86400;  // absurdly large
    seconds = std::min<std::uint64_t>(seconds, 86400);
    return std::chrono::milliseconds(seconds * 1000);
  }
  auto date = parse_http_date(value);
  if (!date) return std::nullopt;
  const auto at = std::chrono::system_clock::from_time_t(*date);
  if (at <= now) return std::chrono::milliseconds(0);
  return std::min(std::chrono::duration_cast<std::chrono::milliseconds>(at - now), std::chrono::milliseconds(86400000));
}

std::chrono::milliseconds backoff_delay(unsigned attempt, std::chrono::milliseconds base,
                                        std::chrono::milliseconds cap, double random01) noexcept {
  const double exp = std::ldexp(static_cast<double>(base.count()), static_cast<int>(std::min(attempt, 60u)) - 1);
  const double ceiling = std::min(static_cast<double>(cap.count()), exp);
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::clamp(random01, 0.0, 1.0) * ceiling));
}

retry_budget::bucket& retry_budget::current(clock::time_point now) noexcept {
  const auto second = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  bucket& b = buckets_[static_cast<std::size_t>(second) % k_buckets];
  if (b.second != second) b = bucket{second, 0, 0};
  return b;
}

double retry_budget::available(clock::time_point now) noexcept {
  const auto second = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  (void)current(now);
  std::uint64_t requests = 0, retries = 0;
  for (const bucket& b : buckets_) {
    if (b.second > second - static_cast<std::int64_t>(k_buckets) && b.second <= second) {
      requests += b.requests;
      retries += b.retries;
    }
  }
  return floor_ + percent_ / 100.0 * static_cast<double>(requests) - static_cast<double>(retries);
}

void retry_budget::on_request(clock::time_point now) noexcept { ++current(now).requests; }

bool retry_budget::try_spend(clock::time_point now) noexcept {
  if (available(now) < 1.0) return false;
  ++current(now).retries;
  return true;
}

}  // namespace orgpatch
