// Request building: a parsed job becomes the bytes of one PATCH in a reused
// buffer, as the engine does per attempt.
#include "samples.hpp"

#include "orgpatch/config.hpp"
#include "orgpatch/job.hpp"
#include "orgpatch/request.hpp"

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace orgpatch::bench {
namespace {

job parsed(std::string_view line) { return std::get<job>(parse_job(line, 1, {})); }

void build(benchmark::State& state, std::string_view line) {
  api_config api;
  api.base_url = "https://127.0.0.1:8443";
  const endpoint ep = make_endpoint(api);
  const std::string headers = common_headers(ep, "0123456789abcdef0123456789abcdef0123456789abcdef");
  const job j = parsed(line);
  const std::string key = derive_idempotency_key("0123456789abcdef0123456789abcdef", j.key);
  std::string request;
  for (auto _ : state) {
    build_request(request, request_target(ep, j), headers, key, j.body);
    benchmark::DoNotOptimize(request.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(request.size()));
}

void BM_build_request_typical(benchmark::State& state) { build(state, k_typical_line); }
void BM_build_request_with_query(benchmark::State& state) { build(state, k_query_line); }

// The engine derives an Idempotency-Key (SHA-256) once per job without one.
void BM_derive_idempotency_key(benchmark::State& state) {
  std::uint64_t n = 0;
  for (auto _ : state) {
    std::string key = derive_idempotency_key("0123456789abcdef0123456789abcdef", std::to_string(++n));
    benchmark::DoNotOptimize(key);
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_build_request_typical);
BENCHMARK(BM_build_request_with_query);
BENCHMARK(BM_derive_idempotency_key);

}  // namespace
}  // namespace orgpatch::bench
