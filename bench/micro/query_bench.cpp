// Query serialisation: Truto's bracket form of a job's `query` and the id's
// path-segment encoding.
#include "samples.hpp"

#include "orgpatch/query.hpp"

#include <benchmark/benchmark.h>
#include <boost/json/parse.hpp>

#include <string>

namespace orgpatch::bench {
namespace {

void BM_query_serialise(benchmark::State& state) {
  const boost::json::object query = boost::json::parse(k_query_json).as_object();
  std::string out;
  for (auto _ : state) {
    out.clear();
    for (const auto& member : query) append_query_param(out, member.key(), member.value());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_encode_path_segment_uuid(benchmark::State& state) {
  const std::string id = "2818e386-8dec-2562-9ede-5b8a0fbbdc71";
  for (auto _ : state) {
    std::string encoded = encode_path_segment(id);
    benchmark::DoNotOptimize(encoded);
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_query_serialise);
BENCHMARK(BM_encode_path_segment_uuid);

}  // namespace
}  // namespace orgpatch::bench
