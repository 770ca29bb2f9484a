#include "orgpatch/rate_limiter.hpp"
#include "orgpatch/retry.hpp"

#include <gtest/gtest.h>

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

TEST(RateLimiterTest, BucketAdmitsBurstThenRate) {
  const auto t0 = clock_type::time_point{} + 1h;
  rate_limiter limiter(10, 5, 0, 1);  // 10/s, burst 5, accounts unlimited
  int admitted = 0;
  for (int i = 0; i < 20; ++i)
    if (limiter.try_acquire("a", t0) == clock_type::duration::zero()) ++admitted;
  EXPECT_EQ(admitted, 5);
  const auto wait = limiter.try_acquire("a", t0);
  EXPECT_GT(wait, 90ms);
  EXPECT_LE(wait, 101ms);
  // In any window of W seconds at most b + r·W are admitted.
  admitted = 0;
  for (int ms = 1; ms <= 2000; ++ms)
    if (limiter.try_acquire("a", t0 + std::chrono::milliseconds(ms)) == clock_type::duration::zero()) ++admitted;
  EXPECT_EQ(admitted, 20);
}

TEST(RateLimiterTest, AccountsAreLimitedSeparately) {
  const auto t0 = clock_type::time_point{} + 1h;
  rate_limiter limiter(0, 1, 1, 2);  // token unlimited, 1/s per account, burst 2
  EXPECT_EQ(limiter.try_acquire("a", t0), clock_type::duration::zero());
  EXPECT_EQ(limiter.try_acquire("a", t0), clock_type::duration::zero());
  EXPECT_GT(limiter.try_acquire("a", t0), clock_type::duration::zero());
  EXPECT_EQ(limiter.try_acquire("b", t0), clock_type::duration::zero());
  EXPECT_EQ(limiter.try_acquire("a", t0 + 1001ms), clock_type::duration::zero());
}

TEST(RateLimiterTest, ZeroRateIsUnlimited) {
  rate_limiter limiter(0, 1, 0, 1);
  const auto t0 = clock_type::time_point{} + 1h;
  for (int i = 0; i < 100000; ++i) ASSERT_EQ(limiter.try_acquire("a", t0), clock_type::duration::zero());
}

}  // namespace
}  // namespace orgpatch
