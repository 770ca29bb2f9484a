// The engine under faults and rate limits, against the in-process emulator.
#include "emulator/cert.hpp"
#include "emulator/server.hpp"
#include "orgpatch/engine.hpp"
#include "support/test_util.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <set>

namespace orgpatch {
namespace {

namespace emu = orgpatch::emulator;
using namespace std::chrono_literals;
using test::read_lines;
using test::temp_dir;
using test::write_file;

constexpr const char* k_token = "resilience-token";

std::unique_ptr<emu::server> start_emulator(const temp_dir& dir, const emu::api_options& api, std::string& ca_file,
                                            unsigned threads = 1) {
  auto paths = emu::write_self_signed_cert(dir.path() / "cert");
  ca_file = paths.cert.string();
  emu::server_options o;
  o.port = 0;
  o.cert_file = paths.cert.string();
  o.key_file = paths.key.string();
  o.threads = threads;
  o.api = api;
  o.api.token = k_token;
  auto s = std::make_unique<emu::server>(o);
  s->start();
  return s;
}

run_options options_for(const std::string& input, const emu::server& s, const std::string& ca_file) {
  run_options o;
  o.input = input;
  o.cfg.api.base_url = s.base_url();
  o.cfg.tls.ca_file = ca_file;
  o.cfg.http.connections = 8;
  o.cfg.rate_limit.requests_per_second = 0;
  o.cfg.rate_limit.per_account_requests_per_second = 0;
  o.cfg.output.fsync = fsync_mode::none;
  o.token = k_token;
  o.handle_signals = false;
  return o;
}

std::map<std::uint64_t, boost::json::object> results_by_line(const std::string& path) {
  std::map<std::uint64_t, boost::json::object> out;
  const auto lines = read_lines(path);
  for (std::size_t i = 1; i < lines.size(); ++i) {
    auto o = boost::json::parse(lines[i]).as_object();
    const auto line = o.at("line").to_number<std::uint64_t>();
    EXPECT_TRUE(out.emplace(line, std::move(o)).second) << "two result lines for line " << line;
  }
  return out;
}

// Every fault kind at about 25 % of requests: each job gets exactly one line,
// permanent errors fail without a retry, everything else ends ok, nothing is
// applied twice, and no request comes back before its Retry-After.
TEST(ResilienceTest, FaultsProfileEveryJobOneLineNothingAppliedTwice) {
  temp_dir dir;
  emu::api_options api;
  api.faults.seed = 7;
  api.faults.status_429 = 0.01;
  api.faults.retry_after_429 = 1s;
  api.faults.status_500 = 0.04;
  api.faults.status_502 = 0.04;
  api.faults.status_503 = 0.01;
  api.faults.status_504 = 0.04;
  api.faults.reset_before = 0.03;
  api.faults.reset_mid_body = 0.03;
  api.faults.stall = 0.02;
  api.faults.stall_time = 1500ms;
  api.faults.invalid_json = 0.03;
  api.faults.chunked = 0.05;
  api.faults.close_after = 5;
  api.faults.close_probability = 0.2;
  std::string ca;
  auto server = start_emulator(dir, api, ca);

  const std::size_t n = 1000;
  const auto jobs = test::generate_jobs(n, 20);
  std::string text;
  std::set<std::uint64_t> not_found_lines;
  for (std::size_t i = 0; i < n; ++i) {
    if (i % 100 == 50) {  // a permanent error: an organization id the remote API does not know
      text += "{\"id\":\"no-such-org-" + std::to_string(i) + "\",\"integrated_account_id\":\"" + jobs[i].account +
              "\",\"body\":{\"name\":\"x\"}}\n";
      not_found_lines.insert(i + 1);
    } else {
      text += jobs[i].line + "\n";
    }
  }
  const std::string input = dir.file("faults.jsonl");
  write_file(input, text);
  run_options o = options_for(input, *server, ca);
  o.cfg.http.request_timeout_ms = 500;
  o.cfg.retry.base_delay_ms = 10;
  o.cfg.retry.max_delay_ms = 200;
  o.cfg.retry.max_attempts = 10;
  o.cfg.retry.budget_percent = 100;
  const run_report report = run_batch(o);
  ASSERT_EQ(report.fatal_error, "");

  const auto results = results_by_line(dir.file("faults.results.jsonl"));
  ASSERT_EQ(results.size(), n);
  std::size_t ok = 0, failed_503 = 0, warnings = 0;
  for (const auto& [line, r] : results) {
    const std::string outcome(r.at("outcome").as_string());
    if (not_found_lines.count(line)) {
      EXPECT_EQ(outcome, "failed") << line;
      EXPECT_EQ(r.at("http_status").as_int64(), 404);
      EXPECT_EQ(r.at("attempts").as_int64(), 1) << "a permanent error is not retried";
    } else if (outcome == "failed") {
      EXPECT_EQ(r.at("http_status").as_int64(), 503) << boost::json::serialize(r);  // account blocked: permanent
      ++failed_503;
    } else {
      EXPECT_EQ(outcome, "ok") << boost::json::serialize(r);
      ++ok;
      if (r.contains("warning")) ++warnings;
    }
  }
  EXPECT_EQ(report.exit_code, 2);
  EXPECT_GT(report.metrics.retries(), 50u);  // the faults really fired
  EXPECT_GT(warnings, 0u);                   // invalid JSON in a 200 is ok, with a warning

  const auto stats = server->stats_snapshot(false);
  EXPECT_EQ(stats.max_applies_per_org, 1u) << "an update was applied twice";
  // Every ok job applied exactly once; a job that ended failed (a 503 fault on
  // its retry) may still have been applied by an earlier attempt cut off mid-answer.
  EXPECT_GE(stats.applied, ok);
  EXPECT_LE(stats.applied, ok + failed_503);
  EXPECT_GT(stats.replays, 0u);  // reset mid-body: applied, then answered by replay
  EXPECT_EQ(stats.early_retries, 0u) << "a request came back before its Retry-After";
  EXPECT_GT(stats.faults.at("stall"), 0u);
  EXPECT_GT(stats.faults.at("reset_before"), 0u);
  EXPECT_EQ(failed_503 + ok + not_found_lines.size(), n);
}

std::vector<std::size_t> zipf_accounts(std::size_t jobs, std::size_t accounts, double exponent, unsigned seed) {
  std::vector<double> weights;
  for (std::size_t k = 1; k <= accounts; ++k) weights.push_back(1.0 / std::pow(static_cast<double>(k), exponent));
  std::discrete_distribution<std::size_t> pick(weights.begin(), weights.end());
  std::mt19937 rng(seed);
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < jobs; ++i) out.push_back(pick(rng));
  return out;
}

// Truto's two limits, scaled down: every job ends ok, and the client waits as
// told (the time against the theoretical minimum is measured by bench/limits.sh).
void run_under_limits(const std::vector<std::size_t>& account_of_job) {
  temp_dir dir;
  emu::api_options api;
  api.rate_limit.enabled = true;
  api.rate_limit.token = {1000, 1000ms};
  api.rate_limit.account = {100, 1000ms};
  api.rate_limit.retry_after = 1s;
  std::string ca;
  auto server = start_emulator(dir, api, ca, 2);

  std::string text;
  for (std::size_t i = 0; i < account_of_job.size(); ++i) {
    boost::json::object o;
    o["id"] = test::test_uuid(0x0b0b, i + 1);
    o["integrated_account_id"] = test::test_uuid(0xacc1, account_of_job[i]);
    o["body"] = boost::json::object{{"name", "org " + std::to_string(i)}};
    text += boost::json::serialize(o) + "\n";
  }
  const std::string input = dir.file("limits.jsonl");
  write_file(input, text);
  run_options o = options_for(input, *server, ca);
  o.cfg.http.connections = 16;
  // b + r·W within N for every window W ≤ 1 s.
  o.cfg.rate_limit.requests_per_second = 950;
  o.cfg.rate_limit.burst = 10;
  o.cfg.rate_limit.per_account_requests_per_second = 95;
  o.cfg.rate_limit.per_account_burst = 2;
  const run_report report = run_batch(o);
  ASSERT_EQ(report.fatal_error, "");
  EXPECT_EQ(report.exit_code, 0);
  EXPECT_EQ(report.metrics.ok(), account_of_job.size());
  const auto stats = server->stats_snapshot(false);
  EXPECT_EQ(stats.applied, account_of_job.size());
  EXPECT_EQ(stats.early_retries, 0u);
  std::map<std::size_t, std::size_t> per_account;
  for (auto a : account_of_job) ++per_account[a];
  std::size_t busiest = 0;
  for (const auto& [a, count] : per_account) busiest = std::max(busiest, count);
  const double minimum = std::max(static_cast<double>(account_of_job.size()) / 1000.0, busiest / 100.0);
  std::printf("[ limits ] %zu jobs in %.2f s (minimum %.2f s: %.3f x), %llu 429s of %llu requests\n",
              account_of_job.size(), report.summary.elapsed_s, minimum, report.summary.elapsed_s / minimum,
              static_cast<unsigned long long>(report.metrics.rate_limited_count()),
              static_cast<unsigned long long>(report.metrics.requests()));
}

TEST(ResilienceTest, UniformLoadUnderTrutoLimitsAllOk) {
  std::vector<std::size_t> accounts;
  for (std::size_t i = 0; i < 4000; ++i) accounts.push_back(i % 40);
  run_under_limits(accounts);
}

TEST(ResilienceTest, ZipfSkewedLoadUnderTrutoLimitsAllOk) { run_under_limits(zipf_accounts(4000, 40, 1.1, 5)); }

}  // namespace
}  // namespace orgpatch
