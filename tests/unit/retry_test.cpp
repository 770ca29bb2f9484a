#include "orgpatch/rate_limiter.hpp"
#include "orgpatch/retry.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace orgpatch {
namespace {

using namespace std::chrono_literals;

TEST(RetryTest, ClassifiesTheStatusTable) {
  EXPECT_EQ(classify(200, false), verdict::ok);
  EXPECT_EQ(classify(204, false), verdict::ok);
  EXPECT_EQ(classify(401, false), verdict::stop_run);
  EXPECT_EQ(classify(403, false), verdict::stop_run);
  EXPECT_EQ(classify(401, true), verdict::failed);
  EXPECT_EQ(classify(403, true), verdict::failed);
  for (unsigned s : {400u, 404u, 405u, 409u, 422u}) EXPECT_EQ(classify(s, false), verdict::failed) << s;
  EXPECT_EQ(classify(429, false), verdict::rate_limited);
  EXPECT_EQ(classify(429, true), verdict::rate_limited);
  for (unsigned s : {500u, 502u, 504u}) EXPECT_EQ(classify(s, false), verdict::retry) << s;
  EXPECT_EQ(classify(503, false), verdict::failed);
  EXPECT_EQ(classify(301, false), verdict::failed);  // redirects are not followed
}

TEST(RetryTest, RetryAfterSecondsAndHttpDate) {
  const auto now = std::chrono::system_clock::from_time_t(784111777);  // Sun, 06 Nov 1994 08:49:37 GMT
  EXPECT_EQ(parse_retry_after("10", now), 10000ms);
  EXPECT_EQ(parse_retry_after(" 0 ", now), 0ms);
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now), 10000ms);
  EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:49:57 GMT", now), 20000ms);
  EXPECT_EQ(parse_retry_after("Sun Nov  6 08:49:39 1994", now), 2000ms);
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), 0ms);  // in the past
  EXPECT_EQ(parse_retry_after("", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("soon", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("-5", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("99999999999999999999999", now), 86400000ms);  // capped, not wrapped
}

TEST(RetryTest, FullJitterBackoffIsCapped) {
  EXPECT_EQ(backoff_delay(1, 200ms, 30000ms, 0.5), 100ms);
  EXPECT_EQ(backoff_delay(3, 200ms, 30000ms, 0.5), 400ms);
  EXPECT_EQ(backoff_delay(30, 200ms, 30000ms, 0.5), 15000ms);
  EXPECT_EQ(backoff_delay(1000, 200ms, 30000ms, 0.999), 29970ms);
  EXPECT_EQ(backoff_delay(2, 200ms, 30000ms, 0.0), 0ms);
}

TEST(RateLimiterTest, GcraAdmitsBurstThenRate) {
  const auto t0 = clock_type::time_point{} + 1h;
  gcra g(10, 5);  // 10/s, burst 5
  int admitted = 0;
  for (int i = 0; i < 20; ++i) {
    if (g.wait(t0) == clock_type::duration::zero()) {
      g.take(t0);
      ++admitted;
    }
  }
  EXPECT_EQ(admitted, 5);
  EXPECT_GT(g.wait(t0), 99ms);
  EXPECT_LE(g.wait(t0), 100ms);
}

// In any window of W seconds a bucket of rate r and burst b admits at most b + r·W.
TEST(RateLimiterTest, NeverMoreThanBurstPlusRateTimesWindow) {
  const double rate = 4.5, burst = 5;
  gcra g(rate, burst);
  const auto t0 = clock_type::time_point{} + 1h;
  std::vector<clock_type::time_point> sent;
  // A greedy client asking every millisecond for 60 s.
  for (int ms = 0; ms < 60000; ++ms) {
    const auto now = t0 + std::chrono::milliseconds(ms);
    if (g.wait(now) == clock_type::duration::zero()) {
      g.take(now);
      sent.push_back(now);
    }
  }
  for (double window : {0.5, 1.0, 10.0, 30.0}) {
    const auto w = std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(window));
    std::size_t first = 0, most = 0;
    for (std::size_t i = 0; i < sent.size(); ++i) {
      while (sent[i] - sent[first] >= w) ++first;
      most = std::max(most, i - first + 1);
    }
    EXPECT_LE(most, static_cast<std::size_t>(burst + rate * window)) << window;
  }
  // And it is not slower than the rate over a long run.
  EXPECT_GE(sent.size(), static_cast<std::size_t>(burst + rate * 59.9));
}

TEST(RateLimiterTest, ZeroRateIsUnlimited) {
  gcra g(0, 1);
  const auto t0 = clock_type::time_point{} + 1h;
  for (int i = 0; i < 100000; ++i) {
    ASSERT_EQ(g.wait(t0), clock_type::duration::zero());
    g.take(t0);
  }
}

TEST(RateLimiterTest, AimdHalvesAndRecoversToTheCeiling) {
  aimd a;
  a.ceiling = 20;
  double r = 20;
  r = a.on_limited(r);
  EXPECT_DOUBLE_EQ(r, 10);
  for (int i = 0; i < 10; ++i) r = a.on_limited(r);
  EXPECT_DOUBLE_EQ(r, 1);  // never below 5 % of the ceiling
  for (int i = 0; i < 1000; ++i) r = a.on_success(r);
  EXPECT_DOUBLE_EQ(r, 20);  // never above the ceiling
  aimd unlimited;
  EXPECT_DOUBLE_EQ(unlimited.on_limited(0), 0);
}

TEST(RetryBudgetTest, RetriesAreAShareOfRecentRequestsPlusAFloor) {
  retry_budget b(20, 10);
  const auto t0 = retry_budget::clock::time_point{} + 1h;
  for (int i = 0; i < 100; ++i) b.on_request(t0);
  int retries = 0;
  while (b.try_spend(t0)) ++retries;
  EXPECT_EQ(retries, 30);  // 10 + 20 % of 100
  // The window moves on: after 10 s the old requests no longer count.
  int later = 0;
  while (b.try_spend(t0 + 11s)) ++later;
  EXPECT_EQ(later, 10);
}

}  // namespace
}  // namespace orgpatch

namespace orgpatch {
namespace {

TEST(RateLimiterTest, LoweringTheRateNeverLetsExtraRequestsThrough) {
  const auto t0 = clock_type::time_point{} + 1h;
  gcra g(10, 5);
  for (int i = 0; i < 5; ++i) g.take(t0);  // the whole burst
  g.set_rate(5, t0);                       // a 429: halved
  EXPECT_GT(g.wait(t0), clock_type::duration::zero());
  // At the new rate the next one is due 200 ms later, as if the burst had been sent at 5/s.
  EXPECT_GE(g.wait(t0), 199ms);
}

}  // namespace
}  // namespace orgpatch
