// Rate limiter: the admission decision made for every request, the token's
// bucket and its account's (DESIGN.md §4 defaults), on a simulated clock.
#include "orgpatch/rate_limiter.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace orgpatch::bench {
namespace {

// 200 accounts in turn, time advancing 1 ms per request (1 000 requests/s
// offered against 45/s): most decisions are refusals with a wait, some admits.
void BM_gcra_admit(benchmark::State& state) {
  gcra token(45, 50);
  std::vector<gcra> accounts(200, gcra(4.5, 5));
  auto now = clock_type::time_point{} + std::chrono::hours(1);
  std::size_t next = 0;
  std::int64_t admitted = 0;
  for (auto _ : state) {
    gcra& account = accounts[next];
    next = next + 1 == accounts.size() ? 0 : next + 1;
    now += std::chrono::milliseconds(1);
    const auto wait = std::max(token.wait(now), account.wait(now));
    if (wait == clock_type::duration::zero()) {
      token.take(now);
      account.take(now);
      ++admitted;
    }
    benchmark::DoNotOptimize(wait);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["admitted"] = benchmark::Counter(static_cast<double>(admitted), benchmark::Counter::kAvgIterations);
}

// Unlimited (the benchmarks' --rate 0): what the check costs when it never waits.
void BM_gcra_admit_unlimited(benchmark::State& state) {
  gcra token;
  auto now = clock_type::time_point{};
  for (auto _ : state) {
    now += std::chrono::microseconds(20);
    const auto wait = token.wait(now);
    token.take(now);
    benchmark::DoNotOptimize(wait);
  }
  state.SetItemsProcessed(state.iterations());
}

// AIMD on an account: a 429 halves its rate, successes raise it back.
void BM_gcra_aimd(benchmark::State& state) {
  const aimd policy{4.5};
  gcra account(4.5, 5);
  auto now = clock_type::time_point{} + std::chrono::hours(1);
  std::uint64_t n = 0;
  for (auto _ : state) {
    now += std::chrono::milliseconds(250);
    const double rate = ++n % 50 == 0 ? policy.on_limited(account.rate()) : policy.on_success(account.rate());
    account.set_rate(rate, now);
    benchmark::DoNotOptimize(account);
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_gcra_admit);
BENCHMARK(BM_gcra_admit_unlimited);
BENCHMARK(BM_gcra_aimd);

}  // namespace
}  // namespace orgpatch::bench
