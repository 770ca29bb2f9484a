// Results lines: what the results sink appends per finished job, into a
// buffer that is flushed (here: cleared) every 64 lines, as one event-loop turn would.
#include "orgpatch/results.hpp"

#include <benchmark/benchmark.h>

#include <chrono>
#include <string>

namespace orgpatch::bench {
namespace {

job_result ok_result() {
  job_result r;
  r.key = "17";
  r.line = 17;
  r.id = "2818e386-8dec-2562-9ede-5b8a0fbbdc71";
  r.integrated_account_id = "62f44730-dd91-461e-bd6a-aedd9e0ad79d";
  r.result = outcome::ok;
  r.http_status = 200;
  r.attempts = 1;
  r.latency_ms = 12.4;
  r.finished_at = std::chrono::system_clock::time_point{std::chrono::milliseconds{1795725667123}};
  r.response_id = r.id;
  r.response_name = "Acme";
  r.response_updated_at = "2026-11-26T20:41:07.123Z";
  return r;
}

job_result failed_result() {
  job_result r = ok_result();
  r.result = outcome::failed;
  r.http_status = 422;
  r.error_kind = "http";
  r.error_message = "Email is invalid";
  r.error_remote = true;
  return r;
}

void format(benchmark::State& state, const job_result& r) {
  std::string out;
  int lines = 0;
  for (auto _ : state) {
    if (++lines == 64) {
      out.clear();
      lines = 0;
    }
    append_result_line(out, r);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_result_line_ok(benchmark::State& state) { format(state, ok_result()); }
void BM_result_line_failed(benchmark::State& state) { format(state, failed_result()); }

// The finished_at timestamp alone: a share of every result line.
void BM_utc_timestamp(benchmark::State& state) {
  auto tp = std::chrono::system_clock::time_point{std::chrono::milliseconds{1795725667123}};
  std::string out;
  for (auto _ : state) {
    out.clear();
    append_utc_timestamp(out, tp);
    tp += std::chrono::milliseconds(1);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_result_line_ok);
BENCHMARK(BM_result_line_failed);
BENCHMARK(BM_utc_timestamp);

}  // namespace
}  // namespace orgpatch::bench
