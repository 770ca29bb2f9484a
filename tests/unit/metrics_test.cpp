#include "orgpatch/metrics.hpp"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

namespace orgpatch {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

bool has_line(const std::string& text, const std::string& line) {
  for (const auto& l : lines_of(text))
    if (l == line) return true;
  return false;
}

// A small run with known numbers: 3 ok, 1 failed, 1 invalid; five requests.
run_metrics small_run() {
  run_metrics m;
  m.request_done(200, 4);      // 0.004 s: first bucket
  m.request_done(200, 5);      // exactly 0.005 s: le is inclusive
  m.request_done(200, 120);    // 0.12 s
  m.request_done(422, 30);     // 0.03 s
  m.request_done(0, 61000);    // transport failure after 61 s: only +Inf
  m.job_finished(outcome::ok);
  m.job_finished(outcome::ok);
  m.job_finished(outcome::ok);
  m.job_finished(outcome::failed);
  m.job_finished(outcome::invalid);
  m.retried();
  m.rate_limited(rate_limit_reason::account);
  m.rate_limited(rate_limit_reason::account);
  m.rate_limited(rate_limit_reason::remote);
  return m;
}

TEST(MetricsTest, PrometheusTextHasExactLinesForAKnownRun) {
  metrics_gauges g;
  g.in_flight = 2;
  g.queued = 7;
  g.retrying = 1;
  g.throttled_accounts = 3;
  g.connections_open = 4;
  g.connections_opened = 9;
  const std::string text = prometheus_text(small_run(), g, "1.2.3");
  for (const char* line : {
           "# TYPE orgpatchd_jobs_total counter",
           "orgpatchd_jobs_total{outcome=\"ok\"} 3",
           "orgpatchd_jobs_total{outcome=\"failed\"} 1",
           "orgpatchd_jobs_total{outcome=\"exhausted\"} 0",  // every outcome, even at 0
           "orgpatchd_jobs_total{outcome=\"invalid\"} 1",
           "# TYPE orgpatchd_requests_total counter",
           "orgpatchd_requests_total{status=\"transport\"} 1",
           "orgpatchd_requests_total{status=\"200\"} 3",
           "orgpatchd_requests_total{status=\"422\"} 1",
           "orgpatchd_retries_total 1",
           "orgpatchd_rate_limited_total{reason=\"token\"} 0",
           "orgpatchd_rate_limited_total{reason=\"account\"} 2",
           "orgpatchd_rate_limited_total{reason=\"remote\"} 1",
           "# TYPE orgpatchd_in_flight gauge",
           "orgpatchd_in_flight 2",
           "orgpatchd_queued_jobs 7",
           "orgpatchd_retrying_jobs 1",
           "orgpatchd_throttled_accounts 3",
           "orgpatchd_connections_open 4",
           "# TYPE orgpatchd_connections_opened_total counter",
           "orgpatchd_connections_opened_total 9",
           "# TYPE orgpatchd_request_duration_seconds histogram",
           "orgpatchd_request_duration_seconds_bucket{le=\"0.005\"} 2",
           "orgpatchd_request_duration_seconds_bucket{le=\"0.01\"} 2",
           "orgpatchd_request_duration_seconds_bucket{le=\"0.05\"} 3",
           "orgpatchd_request_duration_seconds_bucket{le=\"0.1\"} 3",
           "orgpatchd_request_duration_seconds_bucket{le=\"0.25\"} 4",
           "orgpatchd_request_duration_seconds_bucket{le=\"1\"} 4",
           "orgpatchd_request_duration_seconds_bucket{le=\"60\"} 4",
           "orgpatchd_request_duration_seconds_bucket{le=\"+Inf\"} 5",
           "orgpatchd_request_duration_seconds_sum 61.159",
           "orgpatchd_request_duration_seconds_count 5",
           "# TYPE orgpatchd_build_info gauge",
           "orgpatchd_build_info{version=\"1.2.3\"} 1",
       }) {
    EXPECT_TRUE(has_line(text, line)) << "missing: " << line << "\n" << text;
  }
}

TEST(MetricsTest, EveryFamilyHasHelpAndTypeBeforeItsSamples) {
  const std::string text = prometheus_text(small_run(), {}, "0.1.0");
  std::string current;  // the family whose TYPE came last
  std::string helped;
  for (const auto& line : lines_of(text)) {
    ASSERT_FALSE(line.empty());
    if (line.rfind("# HELP ", 0) == 0) {
      helped = line.substr(7, line.find(' ', 7) - 7);
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      current = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_EQ(current, helped) << line;
      continue;
    }
    const std::string name = line.substr(0, line.find_first_of("{ "));
    EXPECT_EQ(name.rfind(current, 0), 0u) << "sample " << name << " under family " << current;
  }
  EXPECT_EQ(text.back(), '\n');
}

TEST(MetricsTest, HistogramBucketsAreCumulativeAndInfEqualsCount) {
  run_metrics m;
  for (int i = 0; i < 1000; ++i) m.request_done(200, (i * 37) % 70000);  // 0 ms to 70 s
  const std::string text = prometheus_text(m, {}, "0.1.0");
  std::uint64_t previous = 0, inf = 0, count = 0;
  int buckets = 0;
  for (const auto& line : lines_of(text)) {
    const auto value = [&] { return std::stoull(line.substr(line.rfind(' ') + 1)); };
    if (line.rfind("orgpatchd_request_duration_seconds_bucket", 0) == 0) {
      ++buckets;
      EXPECT_GE(value(), previous) << line;
      previous = value();
      if (line.find("le=\"+Inf\"") != std::string::npos) inf = value();
    } else if (line.rfind("orgpatchd_request_duration_seconds_count", 0) == 0) {
      count = value();
    }
  }
  EXPECT_EQ(buckets, static_cast<int>(run_metrics::duration_bounds_s.size()) + 1);
  EXPECT_EQ(inf, 1000u);
  EXPECT_EQ(count, 1000u);
}

TEST(MetricsTest, LabelValuesAreEscaped) {
  EXPECT_EQ(prometheus_label_value("plain"), "plain");
  EXPECT_EQ(prometheus_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  const std::string text = prometheus_text(run_metrics{}, {}, "1.0\"x");
  EXPECT_TRUE(has_line(text, "orgpatchd_build_info{version=\"1.0\\\"x\"} 1")) << text;
}

TEST(MetricsTest, MergeAddsCountersAndHistograms) {
  run_metrics total;
  total.merge(small_run());
  total.merge(small_run());
  EXPECT_EQ(total.ok(), 6u);
  EXPECT_EQ(total.failed(), 2u);
  EXPECT_EQ(total.invalid(), 2u);
  EXPECT_EQ(total.requests(), 10u);
  EXPECT_EQ(total.retries(), 2u);
  EXPECT_EQ(total.rate_limited_count(), 6u);
  EXPECT_EQ(total.rate_limited_count(rate_limit_reason::account), 4u);
  EXPECT_EQ(total.status_counts().at(200), 6u);
  EXPECT_EQ(total.status_counts().at(0), 2u);
  EXPECT_EQ(total.duration_buckets()[0], 4u);
  EXPECT_EQ(total.duration_buckets().back(), 2u);
  EXPECT_DOUBLE_EQ(total.latency_sum_s(), 2 * 61.159);
  EXPECT_DOUBLE_EQ(total.latency_max(), 61000);
  // The log-scale histogram merged too: the median is that of either run.
  EXPECT_DOUBLE_EQ(total.latency_quantile(0.5), small_run().latency_quantile(0.5));
}

}  // namespace
}  // namespace orgpatch
