// Response parsing: one reused simdjson parser over a reused, padded body buffer.
#include "samples.hpp"

#include "orgpatch/response.hpp"

#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

namespace orgpatch::bench {
namespace {

void parse_body(benchmark::State& state, unsigned status, std::string_view text) {
  response_parser parser(1 << 20);
  std::string body;
  body.reserve(text.size() + response_parser::padding());
  body.assign(text);
  for (auto _ : state) {
    response_info info = parser.parse(status, body);
    benchmark::DoNotOptimize(info);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(text.size()));
}

void BM_parse_response_200(benchmark::State& state) { parse_body(state, 200, k_ok_body); }
void BM_parse_response_422(benchmark::State& state) { parse_body(state, 422, k_error_body); }

BENCHMARK(BM_parse_response_200);
BENCHMARK(BM_parse_response_422);

}  // namespace
}  // namespace orgpatch::bench
