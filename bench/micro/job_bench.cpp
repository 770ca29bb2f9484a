// parse_job: the validation every line of a job file goes through.
#include "samples.hpp"

#include "orgpatch/job.hpp"

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string_view>

namespace orgpatch::bench {
namespace {

void parse_line(benchmark::State& state, std::string_view line) {
  const job_parse_options options;
  std::uint64_t line_no = 1;
  for (auto _ : state) {
    auto parsed = parse_job(line, line_no++, options);
    benchmark::DoNotOptimize(parsed);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(line.size()));
}

void BM_parse_job_typical(benchmark::State& state) { parse_line(state, k_typical_line); }
void BM_parse_job_with_query(benchmark::State& state) { parse_line(state, k_query_line); }
void BM_parse_job_invalid(benchmark::State& state) { parse_line(state, k_invalid_line); }

BENCHMARK(BM_parse_job_typical);
BENCHMARK(BM_parse_job_with_query);
BENCHMARK(BM_parse_job_invalid);

}  // namespace
}  // namespace orgpatch::bench
