#include "orgpatch/scheduler.hpp"

#include "support/test_util.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace orgpatch {
namespace {

using namespace std::chrono_literals;

const clock_type::time_point t0 = clock_type::time_point{} + 1h;

std::unique_ptr<job_state> make(std::uint64_t line, const std::string& account, const std::string& id = {}) {
  auto s = std::make_unique<job_state>();
  s->j.line = line;
  s->j.key = std::to_string(line);
  s->j.integrated_account_id = account;
  s->j.id = id.empty() ? "org-" + std::to_string(line) : id;
  s->offset = line * 100;
  return s;
}

scheduler_params unlimited() {
  scheduler_params p;
  p.rate = 0;
  p.account_rate = 0;
  return p;
}

TEST(SchedulerTest, ServesInFileOrderWhenNothingIsLimited) {
  scheduler s(unlimited());
  for (std::uint64_t l = 1; l <= 6; ++l) s.add(make(l, l % 2 ? "a" : "b"), t0);
  for (std::uint64_t l = 1; l <= 6; ++l) {
    auto r = s.pick(t0);
    ASSERT_TRUE(r.job);
    EXPECT_EQ(r.job->j.line, l);
  }
  EXPECT_FALSE(s.pick(t0).job);
}

TEST(SchedulerTest, AThrottledAccountNeverHoldsUpTheOthers) {
  scheduler_params p = unlimited();
  p.account_rate = 1;
  p.account_burst = 1;
  scheduler s(p);
  for (std::uint64_t l = 1; l <= 5; ++l) s.add(make(l, "busy"), t0);
  s.add(make(6, "other"), t0);
  EXPECT_EQ(s.pick(t0).job->j.line, 1u);
  EXPECT_EQ(s.pick(t0).job->j.line, 6u);  // "busy" must wait a second; "other" goes
  auto r = s.pick(t0);
  EXPECT_FALSE(r.job);
  EXPECT_GT(r.wait, 990ms);
  EXPECT_LE(r.wait, 1000ms);
  EXPECT_EQ(s.pick(t0 + 1s).job->j.line, 2u);
}

TEST(SchedulerTest, OneJobPerOrganizationInFlightInInputOrder) {
  scheduler s(unlimited());
  s.add(make(1, "a", "x"), t0);
  s.add(make(2, "a", "x"), t0);
  s.add(make(3, "b", "y"), t0);
  auto first = s.pick(t0).job;
  EXPECT_EQ(first->j.line, 1u);
  EXPECT_EQ(s.pick(t0).job->j.line, 3u);  // line 2 waits for line 1
  EXPECT_FALSE(s.pick(t0).job);
  s.finished(*first, t0);
  EXPECT_EQ(s.pick(t0).job->j.line, 2u);
}

TEST(SchedulerTest, ARetryWaitsItsTimeThenGoesAheadOfLaterJobs) {
  scheduler s(unlimited());
  s.add(make(1, "a", "x"), t0);
  s.add(make(2, "a", "x"), t0);
  s.add(make(3, "a"), t0);
  auto first = s.pick(t0).job;
  s.requeue(std::move(first), t0 + 500ms);
  EXPECT_EQ(s.pick(t0).job->j.line, 3u);  // line 2 still waits for the same organization
  auto r = s.pick(t0 + 100ms);
  EXPECT_FALSE(r.job);
  EXPECT_EQ(r.wait, 400ms);
  EXPECT_EQ(s.pick(t0 + 500ms).job->j.line, 1u);
  EXPECT_EQ(s.waiting_retry(), 0u);
}

TEST(SchedulerTest, TrutoLimitForSeveralAccountsPausesEverything) {
  scheduler s(unlimited());
  for (std::uint64_t l = 1; l <= 6; ++l) s.add(make(l, std::string(1, static_cast<char>('a' + l % 3))), t0);
  s.on_rate_limited("a", false, 10s, t0);
  EXPECT_EQ(s.pause_left("a", t0), 10s);
  EXPECT_EQ(s.pause_left("b", t0), 0s);  // one account's 429: only that account
  s.on_rate_limited("b", false, 10s, t0 + 200ms);
  EXPECT_EQ(s.pause_left("c", t0 + 200ms), 10s);  // a second account within 1 s: the token's limit
  EXPECT_FALSE(s.pick(t0 + 5s).job);
  EXPECT_TRUE(s.pick(t0 + 10200ms).job);
}

TEST(SchedulerTest, RemoteLimitPausesOnlyItsAccount) {
  scheduler s(unlimited());
  s.add(make(1, "a"), t0);
  s.add(make(2, "b"), t0);
  s.on_rate_limited("a", true, 30s, t0);
  s.on_rate_limited("b", true, 30s, t0);
  s.add(make(3, "c"), t0);
  EXPECT_EQ(s.pick(t0).job->j.line, 3u);
  s.on_remaining_exhausted("c", 5s, t0);
  EXPECT_EQ(s.pause_left("c", t0 + 1s), 4s);
  // The paused accounts, by id: "c" until 5 s, "a" and "b" until 30 s.
  auto ids = s.throttled_account_ids(t0 + 1s);
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(s.throttled_account_ids(t0 + 10s).size(), s.throttled_accounts(t0 + 10s));
  EXPECT_EQ(s.throttled_accounts(t0 + 10s), 2u);
  EXPECT_TRUE(s.throttled_account_ids(t0 + 31s).empty());
}

TEST(SchedulerTest, AdaptiveRateHalvesOnA429AndRecovers) {
  scheduler_params p = unlimited();
  p.account_rate = 20;
  p.account_burst = 1;
  scheduler s(p);
  s.on_rate_limited("a", true, 1s, t0);
  EXPECT_DOUBLE_EQ(s.account_rate("a"), 10);
  EXPECT_EQ(s.throttled_accounts(t0 + 2s), 1u);
  for (int i = 0; i < 100; ++i) s.on_success("a", t0 + 2s);
  EXPECT_DOUBLE_EQ(s.account_rate("a"), 20);
  EXPECT_EQ(s.throttled_accounts(t0 + 2s), 0u);
}

TEST(SchedulerTest, PastTheLookAheadJobsSpillAndAreReloadedInOrder) {
  scheduler_params p = unlimited();
  p.max_parsed = 4;
  p.account_keep = 2;
  scheduler s(p);
  for (std::uint64_t l = 1; l <= 10; ++l) s.add(make(l, "a"), t0);
  EXPECT_EQ(s.parsed(), 4u);
  EXPECT_EQ(s.spilled(), 6u);
  std::vector<std::uint64_t> order;
  for (int round = 0; round < 20 && order.size() < 10; ++round) {
    for (const auto& [account, sj] : s.take_reloads()) {
      EXPECT_EQ(account, "a");
      s.load(make(sj.line, account), t0);
    }
    while (auto r = s.pick(t0).job) {
      order.push_back(r->j.line);
      s.finished(*r, t0);
    }
  }
  std::vector<std::uint64_t> expected{1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_EQ(order, expected);
  EXPECT_TRUE(s.empty());
}

TEST(SchedulerTest, StarvedSchedulerAsksForMoreInput) {
  scheduler_params p = unlimited();
  p.account_rate = 1;
  p.account_burst = 1;
  p.max_parsed = 2;
  p.account_keep = 1;
  scheduler s(p);
  s.add(make(1, "a"), t0);
  s.add(make(2, "a"), t0);
  EXPECT_FALSE(s.wants_more(t0));
  EXPECT_TRUE(s.pick(t0).job);
  EXPECT_FALSE(s.pick(t0).job);  // "a" throttled, nothing else: starved
  EXPECT_TRUE(s.wants_more(t0));
}

// The whole point of the order: with a skewed file, the busiest account runs at
// its full rate from start to end and the rest fill the token's budget, so the
// run takes close to max(jobs / token rate, busiest account's jobs / account rate).
// Simulated time; answers are instant.
double simulate(const std::vector<std::string>& accounts_of_jobs, double rate, double burst, double account_rate,
                double account_burst) {
  scheduler_params p;
  p.rate = rate;
  p.burst = burst;
  p.account_rate = account_rate;
  p.account_burst = account_burst;
  p.max_parsed = 1000;
  p.account_keep = 16;
  scheduler s(p);
  std::size_t next = 0;
  auto now = t0;
  std::size_t done = 0;
  while (done < accounts_of_jobs.size()) {
    while (next < accounts_of_jobs.size() && s.wants_more(now)) {
      s.add(make(next + 1, accounts_of_jobs[next], "o" + std::to_string(next)), now);
      ++next;
    }
    for (const auto& [account, sj] : s.take_reloads())
      s.load(make(sj.line, account, "o" + std::to_string(sj.line - 1)), now);
    auto r = s.pick(now);
    if (r.job) {
      s.finished(*r.job, now);
      ++done;
      continue;
    }
    if (next < accounts_of_jobs.size() && s.wants_more(now)) continue;
    now += std::min<clock_type::duration>(r.wait, 1s);
  }
  return std::chrono::duration<double>(now - t0).count();
}

std::vector<std::string> zipf_accounts(std::size_t jobs, std::size_t accounts, double exponent, unsigned seed) {
  std::vector<double> weights;
  for (std::size_t k = 1; k <= accounts; ++k) weights.push_back(1.0 / std::pow(static_cast<double>(k), exponent));
  std::discrete_distribution<std::size_t> pick(weights.begin(), weights.end());
  std::mt19937 rng(seed);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < jobs; ++i) out.push_back("acct-" + std::to_string(pick(rng)));
  return out;
}

double theoretical_minimum(const std::vector<std::string>& jobs, double rate, double account_rate) {
  std::map<std::string, std::size_t> per;
  for (const auto& a : jobs) ++per[a];
  std::size_t busiest = 0;
  for (const auto& [a, n] : per) busiest = std::max(busiest, n);
  return std::max(static_cast<double>(jobs.size()) / rate, static_cast<double>(busiest) / account_rate);
}

TEST(SchedulerTest, SkewedFileFinishesNearTheTheoreticalMinimum) {
  for (unsigned seed : {1u, 2u, 3u}) {
    const auto jobs = zipf_accounts(4000, 40, 1.1, seed);
    const double minimum = theoretical_minimum(jobs, 200, 20);
    const double took = simulate(jobs, 200, 5, 20, 1);
    EXPECT_LE(took, 1.05 * minimum) << "seed " << seed << ": " << took << " s vs minimum " << minimum;
    EXPECT_GE(took, 0.95 * minimum);
  }
}

TEST(SchedulerTest, UniformFileFinishesNearTheTokenRate) {
  std::vector<std::string> jobs;
  for (std::size_t i = 0; i < 4000; ++i) jobs.push_back("acct-" + std::to_string(i % 40));
  const double minimum = theoretical_minimum(jobs, 200, 20);
  const double took = simulate(jobs, 200, 5, 20, 1);
  EXPECT_LE(took, 1.05 * minimum) << took << " s vs minimum " << minimum;
}

}  // namespace
}  // namespace orgpatch

namespace orgpatch {
namespace {

TEST(SchedulerTest, AJobOfAFreeOrganizationDoesNotWaitBehindABlockedOne) {
  scheduler s(unlimited());
  s.add(make(1, "a", "x"), t0);
  s.add(make(2, "a", "x"), t0);
  auto first = s.pick(t0).job;
  s.requeue(std::move(first), t0 + 30s);  // line 1 retries in 30 s; line 2 waits for it
  EXPECT_FALSE(s.pick(t0).job);
  s.add(make(3, "a", "y"), t0);  // another organization of the same account
  auto r = s.pick(t0);
  ASSERT_TRUE(r.job);
  EXPECT_EQ(r.job->j.line, 3u);
}

TEST(SchedulerTest, AnUnsentPickGivesItsBudgetBack) {
  scheduler_params p = unlimited();
  p.account_rate = 1;
  p.account_burst = 1;
  scheduler s(p);
  s.add(make(1, "a"), t0);
  s.add(make(2, "a"), t0);
  auto first = s.pick(t0).job;
  s.requeue_unsent(std::move(first), t0, t0);
  auto again = s.pick(t0);
  ASSERT_TRUE(again.job);  // the slot came back: no one-second wait
  EXPECT_EQ(again.job->j.line, 1u);
}

}  // namespace
}  // namespace orgpatch
