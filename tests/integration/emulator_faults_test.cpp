// The emulator's fault injection: every fault kind with probability 1 over HTTP (which
// apply the update and which do not), idempotent replays after a cut answer, the
// seeded PRNG's repeatability, and the `faults:` config section.
#include "emulator/api.hpp"
#include "emulator/cert.hpp"
#include "emulator/config.hpp"
#include "emulator/faults.hpp"
#include "emulator/server.hpp"
#include "integration/emulator_client.hpp"
#include "support/test_util.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace orgpatch::emulator {
namespace {

using namespace test_client;
namespace http = beast::http;
namespace json = boost::json;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

server_options with_faults(const fault_options& f, unsigned threads = 2) {
  server_options o = plain_options();
  o.threads = threads;
  o.api.faults = f;
  return o;
}

bool is_json(const std::string& text) {
  boost::system::error_code ec;
  (void)json::parse(text, ec);
  return !ec;
}

header_list key(std::string k) { return {{"Idempotency-Key", std::move(k)}}; }

std::uint64_t fault_count(const server& srv, std::string_view kind) {
  return srv.stats_snapshot(false).faults.at(std::string(kind));
}

TEST(EmulatorFaultsTest, StatusFaultsAreTrutoErrorsAndNotApplied) {
  struct status_case {
    unsigned status;
    double fault_options::*probability;
    std::string_view kind;
  };
  const status_case cases[] = {{429, &fault_options::status_429, "status_429"},
                               {500, &fault_options::status_500, "status_500"},
                               {502, &fault_options::status_502, "status_502"},
                               {503, &fault_options::status_503, "status_503"},
                               {504, &fault_options::status_504, "status_504"}};
  for (const auto& tc : cases) {
    fault_options f;
    f.*tc.probability = 1;
    f.retry_after_429 = 2s;
    server srv(with_faults(f));
    srv.start();
    client c(srv.port());
    const reply r = patch(c, org_target(k_org), R"({"name":"Acme"})", key("job-1"));
    ASSERT_EQ(r.status, tc.status) << tc.kind;
    error_message(r, false);
    EXPECT_TRUE(r.keep_alive);
    if (tc.status == 429) {
      EXPECT_EQ(r.header("Retry-After"), "2");
    }
    if (tc.status == 503) {
      EXPECT_NE(r.json().at("message").as_string().find("blocked"), std::string::npos);
    }
    stats st = srv.stats_snapshot();
    EXPECT_EQ(st.applied, 0u) << tc.kind;
    EXPECT_FALSE(srv.organization_json(k_account, k_org).has_value());
    EXPECT_EQ(st.faults.at(std::string(tc.kind)), 1u);
    EXPECT_EQ(st.rate_limited.fault, tc.status == 429 ? 1u : 0u);
    EXPECT_EQ(st.over_limit, 0u) << "a fault is not a limit";
    EXPECT_EQ(st.by_status.at(tc.status), 1u);

    // Not stored: the same key applies once the fault is gone.
    srv.api().set_faults({});
    const reply again = patch(c, org_target(k_org), R"({"name":"Acme"})", key("job-1"));
    EXPECT_EQ(again.status, 200u);
    EXPECT_EQ(again.header("Idempotent-Replayed"), "");
    st = srv.stats_snapshot();
    EXPECT_EQ(st.applied, 1u);
    EXPECT_EQ(st.replays, 0u);
  }
}

TEST(EmulatorFaultsTest, Fault429HoldsTheAccountForEarlyRetries) {
  fault_options f;
  f.status_429 = 1;
  f.retry_after_429 = 1s;
  server_options o = with_faults(f);
  o.api.rate_limit.early_retry_grace = 0ms;
  server srv(o);
  srv.start();
  client c(srv.port());
  EXPECT_EQ(patch(c, org_target(k_org), "{}").status, 429u);
  srv.api().set_faults({});
  // Retried at once on the same connection: the client did not wait.
  EXPECT_EQ(patch(c, org_target(k_org), "{}").status, 200u);
  EXPECT_EQ(srv.stats_snapshot(false).early_retries, 1u);
  EXPECT_EQ(srv.stats_snapshot(false).early_retries_account, 1u);
  std::this_thread::sleep_for(1100ms);
  EXPECT_EQ(patch(c, org_target(k_org), "{}").status, 200u);
  EXPECT_EQ(srv.stats_snapshot(false).early_retries, 1u);
}

TEST(EmulatorFaultsTest, ResetBeforeTheAnswerIsNotApplied) {
  fault_options f;
  f.reset_before = 1;
  server srv(with_faults(f));
  srv.start();
  client c(srv.port());
  const outcome out = c.try_send(http::verb::patch, org_target(k_org), R"({"name":"Acme"})",
                                 {{"Authorization", "Bearer t"}, {"Content-Type", "application/json"},
                                  {"Idempotency-Key", "job-1"}});
  EXPECT_TRUE(out.ec);
  EXPECT_FALSE(out.header);
  stats st = srv.stats_snapshot();
  EXPECT_EQ(st.applied, 0u);
  EXPECT_EQ(st.dropped, 1u);
  EXPECT_EQ(st.requests, 0u) << "no answer was given";
  EXPECT_EQ(st.faults.at("reset_before"), 1u);
  EXPECT_FALSE(srv.organization_json(k_account, k_org).has_value());

  srv.api().set_faults({});
  const reply again = patch(c, org_target(k_org), R"({"name":"Acme"})", key("job-1"));
  EXPECT_EQ(again.status, 200u);
  EXPECT_EQ(again.header("Idempotent-Replayed"), "");
  EXPECT_EQ(srv.stats_snapshot().applied, 1u);
  EXPECT_EQ(srv.stats_snapshot().connections, 2u);
}

/// Sends a PATCH that the reset_mid_body fault cuts; the update is applied, and the
/// retry with the same key is a replay of the whole answer.
void check_cut_then_replayed(server& srv, client& c) {
  const outcome out = c.try_send(http::verb::patch, org_target(k_org), R"({"name":"Acme"})",
                                 {{"Authorization", "Bearer t"}, {"Content-Type", "application/json"},
                                  {"Idempotency-Key", "job-1"}});
  EXPECT_TRUE(out.ec);
  ASSERT_TRUE(out.header) << "the head arrives";
  EXPECT_EQ(out.r.status, 200u);
  EXPECT_FALSE(out.r.header("Content-Length").empty());
  EXPECT_LT(out.r.body.size(), std::stoul(out.r.header("Content-Length")));
  EXPECT_FALSE(is_json(out.r.body));
  stats st = srv.stats_snapshot();
  EXPECT_EQ(st.applied, 1u) << "cut after applying";
  EXPECT_EQ(st.faults.at("reset_mid_body"), 1u);
  EXPECT_EQ(st.by_status.at(200), 1u);

  srv.api().set_faults({});
  const reply again = patch(c, org_target(k_org), R"({"name":"Acme"})", key("job-1"));
  EXPECT_EQ(again.status, 200u);
  EXPECT_EQ(again.header("Idempotent-Replayed"), "true");
  EXPECT_EQ(again.json().at("name").as_string(), "Acme");
  EXPECT_EQ(again.body.substr(0, out.r.body.size()), out.r.body);
  st = srv.stats_snapshot();
  EXPECT_EQ(st.applied, 1u);
  EXPECT_EQ(st.replays, 1u);
  EXPECT_EQ(st.max_applies_per_org, 1u);
}

TEST(EmulatorFaultsTest, ResetMidBodyIsAppliedAndReplayed) {
  fault_options f;
  f.reset_mid_body = 1;
  server srv(with_faults(f));
  srv.start();
  client c(srv.port());
  check_cut_then_replayed(srv, c);
}

TEST(EmulatorFaultsTest, ResetMidBodyOverTls) {
  fault_options f;
  f.reset_mid_body = 1;
  server_options o = with_faults(f);
  o.plain = false;
  pem_pair pem = make_self_signed_cert({"localhost"}, {"127.0.0.1"});
  o.cert_pem = pem.cert_pem;
  o.key_pem = pem.key_pem;
  server srv(o);
  srv.start();
  test::temp_dir dir;
  test::write_file(dir.file("ca.pem"), pem.cert_pem);
  client c(srv.port(), dir.file("ca.pem"), "127.0.0.1");
  check_cut_then_replayed(srv, c);
}

TEST(EmulatorFaultsTest, StallPastTheClientTimeoutIsNotApplied) {
  fault_options f;
  f.stall = 1;
  f.stall_time = 1500ms;
  server srv(with_faults(f));
  srv.start();
  client c(srv.port());
  c.set_timeout(300ms);
  outcome out = c.try_send(http::verb::patch, org_target(k_org), "{}",
                           {{"Authorization", "Bearer t"}, {"Content-Type", "application/json"}});
  EXPECT_EQ(out.ec, beast::error::timeout);
  EXPECT_FALSE(out.header);
  EXPECT_EQ(srv.stats_snapshot().applied, 0u);

  // A client that waits longer sees the connection closed after stall_ms, unanswered.
  f.stall_time = 200ms;
  srv.api().set_faults(f);
  c.set_timeout(10s);
  const auto start = steady::now();
  out = c.try_send(http::verb::patch, org_target(k_org), "{}",
                   {{"Authorization", "Bearer t"}, {"Content-Type", "application/json"}});
  EXPECT_GE(steady::now() - start, 200ms);
  EXPECT_TRUE(out.ec);
  EXPECT_FALSE(out.header);
  stats st = srv.stats_snapshot();
  EXPECT_EQ(st.applied, 0u);
  EXPECT_EQ(st.dropped, 2u);
  EXPECT_EQ(st.faults.at("stall"), 2u);

  srv.api().set_faults({});
  EXPECT_EQ(patch(c, org_target(k_org), "{}").status, 200u);
  EXPECT_EQ(srv.stats_snapshot().applied, 1u);
}

TEST(EmulatorFaultsTest, LatencyDelaysTheAnswer) {
  fault_options f;
  f.latency.probability = 1;
  f.latency.kind = latency_fault::distribution::fixed;
  f.latency.fixed_ms = 250;
  server srv(with_faults(f));
  srv.start();
  client c(srv.port());
  const auto start = steady::now();
  const reply r = patch(c, org_target(k_org), R"({"name":"Slow"})");
  EXPECT_GE(steady::now() - start, 250ms);
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.json().at("name").as_string(), "Slow");
  EXPECT_EQ(srv.stats_snapshot().applied, 1u);
  EXPECT_EQ(fault_count(srv, "latency"), 1u);
}

TEST(EmulatorFaultsTest, LatencyDistributions) {
  fault_options f;
  f.latency.probability = 1;
  f.latency.kind = latency_fault::distribution::uniform;
  f.latency.min_ms = 10;
  f.latency.max_ms = 20;
  fault_dice uniform(f);
  double sum = 0;
  for (int i = 0; i < 2000; ++i) {
    const fault_plan p = uniform.draw(0);
    ASSERT_TRUE(p.latency_drawn);
    ASSERT_GE(p.latency, 10ms);
    ASSERT_LE(p.latency, 20ms);
    sum += std::chrono::duration<double, std::milli>(p.latency).count();
  }
  EXPECT_NEAR(sum / 2000, 15.0, 0.5);

  f.latency.kind = latency_fault::distribution::log_normal;
  f.latency.median_ms = 50;
  f.latency.sigma = 0.5;
  fault_dice log_normal(f);
  std::vector<double> ms;
  for (int i = 0; i < 2001; ++i) {
    const fault_plan p = log_normal.draw(0);
    ASSERT_GT(p.latency.count(), 0);
    ASSERT_LE(p.latency, 60s);
    ms.push_back(std::chrono::duration<double, std::milli>(p.latency).count());
  }
  std::nth_element(ms.begin(), ms.begin() + 1000, ms.end());
  EXPECT_NEAR(ms[1000], 50.0, 5.0) << "the median";
  EXPECT_GT(*std::max_element(ms.begin(), ms.end()), 100.0) << "a long tail";

  f.latency.probability = 0.25;
  f.latency.kind = latency_fault::distribution::fixed;
  f.latency.fixed_ms = 7;
  fault_dice some(f);
  int drawn = 0;
  for (int i = 0; i < 4000; ++i) {
    const fault_plan p = some.draw(0);
    if (p.latency_drawn) {
      ++drawn;
      EXPECT_EQ(p.latency, 7ms);
    }
  }
  EXPECT_NEAR(drawn, 1000, 120);
}

TEST(EmulatorFaultsTest, ChunkedAnswer) {
  fault_options f;
  f.chunked = 1;
  server srv(with_faults(f));
  srv.start();
  client c(srv.port());
  const reply r = patch(c, org_target(k_org), R"({"name":"Acme"})");
  EXPECT_EQ(r.status, 200u);
  EXPECT_TRUE(r.chunked);
  EXPECT_EQ(r.header("Content-Length"), "");
  EXPECT_EQ(r.json().at("name").as_string(), "Acme");
  EXPECT_EQ(patch(c, org_target(k_org), R"({"name":"Again"})").status, 200u) << "the connection stays usable";
  EXPECT_EQ(srv.stats_snapshot().applied, 2u);
  EXPECT_EQ(fault_count(srv, "chunked"), 2u);
}

TEST(EmulatorFaultsTest, InvalidJsonIn200IsApplied) {
  fault_options f;
  f.invalid_json = 1;
  server srv(with_faults(f));
  srv.start();
  client c(srv.port());
  const reply r = patch(c, org_target(k_org), R"({"name":"Acme"})", key("job-1"));
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  EXPECT_FALSE(r.body.empty());
  EXPECT_FALSE(is_json(r.body)) << r.body;
  EXPECT_TRUE(r.keep_alive);
  EXPECT_EQ(srv.stats_snapshot().applied, 1u);
  EXPECT_EQ(fault_count(srv, "invalid_json"), 1u);
  // GET is never faulted; the store holds the update.
  EXPECT_EQ(get(c, org_target(k_org)).json().at("name").as_string(), "Acme");
  // The stored answer is the real one.
  srv.api().set_faults({});
  const reply again = patch(c, org_target(k_org), R"({"name":"Acme"})", key("job-1"));
  EXPECT_EQ(again.header("Idempotent-Replayed"), "true");
  EXPECT_TRUE(is_json(again.body));
  EXPECT_EQ(srv.stats_snapshot().applied, 1u);
}

TEST(EmulatorFaultsTest, CloseAfterNRequests) {
  fault_options f;
  f.close_after = 3;
  server srv(with_faults(f));
  srv.start();
  client c(srv.port());
  EXPECT_TRUE(patch(c, org_target(k_org), "{}").keep_alive);
  EXPECT_TRUE(patch(c, org_target(k_org), "{}").keep_alive);
  const reply third = patch(c, org_target(k_org), "{}");
  EXPECT_EQ(third.status, 200u);
  EXPECT_FALSE(third.keep_alive);
  EXPECT_EQ(c.read_error(), http::error::end_of_stream);
  c.disconnect();
  EXPECT_TRUE(patch(c, org_target(k_org), "{}").keep_alive) << "a new connection counts from 1";
  const stats st = srv.stats_snapshot();
  EXPECT_EQ(st.applied, 4u);
  EXPECT_EQ(st.connections, 2u);
  EXPECT_EQ(st.faults.at("close_after"), 1u);
}

TEST(EmulatorFaultsTest, FaultsStrikeOnlyPatchesThatWouldSucceed) {
  fault_options f;
  f.reset_before = 1;
  server srv(with_faults(f));
  srv.start();
  client c(srv.port());
  EXPECT_EQ(c.send(http::verb::get, "/_emulator/stats").status, 200u);
  EXPECT_EQ(get(c, org_target(k_org)).status, 404u);
  EXPECT_EQ(patch(c, org_target(k_org), R"({"name":""})").status, 422u);
  EXPECT_EQ(patch(c, org_target("not-a-uuid"), "{}").status, 404u);
  EXPECT_EQ(patch(c, org_target(k_org), "[]").status, 400u);
  EXPECT_EQ(c.send(http::verb::patch, org_target(k_org), "{}", {{"Content-Type", "application/json"}}).status, 401u);
  EXPECT_EQ(fault_count(srv, "reset_before"), 0u);
  EXPECT_TRUE(c.try_send(http::verb::patch, org_target(k_org), "{}", auth_json()).ec);
  EXPECT_EQ(fault_count(srv, "reset_before"), 1u);
  // Stats list every kind, and reset clears them.
  const json::value st = client(srv.port()).send(http::verb::get, "/_emulator/stats").json();
  EXPECT_EQ(keys_of(st.at("faults")),
            (std::set<std::string>{"status_429", "status_500", "status_502", "status_503", "status_504", "reset_before",
                                   "reset_mid_body", "stall", "invalid_json", "latency", "chunked", "close_after"}));
  EXPECT_EQ(st.at("faults").at("reset_before").to_number<int>(), 1);
  EXPECT_EQ(st.at("dropped").to_number<int>(), 1);
  srv.reset();
  EXPECT_EQ(fault_count(srv, "reset_before"), 0u);
  EXPECT_EQ(srv.stats_snapshot().dropped, 0u);
}

/// Everything observable about one answer of the API.
using signature = std::tuple<unsigned, int, bool, std::int64_t, bool, bool>;

fault_options mixed_profile(std::uint64_t seed) {
  fault_options f;
  f.seed = seed;
  f.status_429 = 0.05;
  f.status_500 = 0.05;
  f.status_502 = 0.05;
  f.status_503 = 0.05;
  f.status_504 = 0.05;
  f.reset_before = 0.05;
  f.reset_mid_body = 0.05;
  f.stall = 0.05;
  f.invalid_json = 0.05;
  f.chunked = 0.2;
  f.latency.probability = 0.5;
  f.latency.kind = latency_fault::distribution::log_normal;
  f.latency.median_ms = 5;
  f.latency.sigma = 1;
  f.close_after = 2;
  f.close_probability = 0.1;
  return f;
}

std::vector<signature> run_sequence(api& a, int n) {
  std::vector<signature> out;
  const auto now = api::clock::time_point(std::chrono::milliseconds(1'795'725'667'123));
  const std::string target = org_target(k_org);
  for (int i = 0; i < n; ++i) {
    const std::string k = "k" + std::to_string(i);
    request req;
    req.method = "PATCH";
    req.target = target;
    req.authorization = "Bearer t";
    req.content_type = "application/json";
    req.idempotency_key = k;
    req.body = R"({"name":"Acme"})";
    req.connection_request = static_cast<std::uint64_t>(i % 5 + 1);
    const response r = a.handle(req, now);
    out.emplace_back(r.status, static_cast<int>(r.action), r.chunked, r.delay.count(), r.close, is_json(r.body));
  }
  return out;
}

TEST(EmulatorFaultsTest, SeededSequenceIsRepeatable) {
  api_options o;
  o.faults = mixed_profile(42);
  api first(o);
  api second(o);
  const std::vector<signature> a = run_sequence(first, 400);
  EXPECT_EQ(run_sequence(second, 400), a);
  first.reset();  // starts the PRNG again from its seed
  EXPECT_EQ(run_sequence(first, 400), a);
  o.faults.seed = 43;
  api other(o);
  EXPECT_NE(run_sequence(other, 400), a);

  // Each kind fired, about as often as asked (5 % each of 400 = 20).
  const stats st = second.snapshot(false);
  for (const auto& [kind, n] : st.faults) {
    if (kind == "chunked" || kind == "latency" || kind == "close_after") continue;
    EXPECT_GE(n, 5u) << kind;
    EXPECT_LE(n, 45u) << kind;
  }
  EXPECT_GE(st.faults.at("chunked"), 30u);
  EXPECT_GE(st.faults.at("close_after"), 5u);
}

TEST(EmulatorFaultsTest, SeededSequenceOverHttpSingleThread) {
  fault_options f;
  f.seed = 99;
  f.status_500 = 0.2;
  f.status_503 = 0.1;
  f.invalid_json = 0.1;
  f.chunked = 0.3;
  const auto run = [](const fault_options& profile) {
    server srv(with_faults(profile, 1));
    srv.start();
    client c(srv.port());
    std::vector<std::tuple<unsigned, bool, bool>> seen;
    for (int i = 0; i < 60; ++i) {
      const reply r = patch(c, org_target(k_org), R"({"name":"Acme"})", key("k" + std::to_string(i)));
      seen.emplace_back(r.status, r.chunked, is_json(r.body));
    }
    return seen;
  };
  const auto a = run(f);
  EXPECT_EQ(run(f), a);
  std::map<unsigned, int> statuses;
  for (const auto& s : a) ++statuses[std::get<0>(s)];
  EXPECT_GT(statuses[500], 0);
  EXPECT_GT(statuses[503], 0);
  EXPECT_GT(statuses[200], 0);
  f.seed = 100;
  EXPECT_NE(run(f), a);
}

TEST(EmulatorFaultsTest, RetryingClientAppliesEachUpdateOnce) {
  // About a quarter of requests faulted, over TLS and two threads; a client that
  // retries every transport error and 5xx with the same Idempotency-Key ends with
  // every organization applied exactly once.
  fault_options f;
  f.seed = 7;
  f.status_429 = 0.03;
  f.retry_after_429 = 0s;
  f.status_500 = 0.03;
  f.status_502 = 0.03;
  f.status_504 = 0.03;
  f.reset_before = 0.04;
  f.reset_mid_body = 0.04;
  f.stall = 0.02;
  f.stall_time = 100ms;
  f.invalid_json = 0.03;
  f.chunked = 0.1;
  f.latency.probability = 0.2;
  f.latency.kind = latency_fault::distribution::uniform;
  f.latency.min_ms = 0;
  f.latency.max_ms = 3;
  f.close_after = 5;
  f.close_probability = 0.5;
  server_options o = with_faults(f);
  o.plain = false;
  pem_pair pem = make_self_signed_cert({"localhost"}, {"127.0.0.1"});
  o.cert_pem = pem.cert_pem;
  o.key_pem = pem.key_pem;
  server srv(o);
  srv.start();
  test::temp_dir dir;
  test::write_file(dir.file("ca.pem"), pem.cert_pem);
  client c(srv.port(), dir.file("ca.pem"), "127.0.0.1");
  constexpr int k_jobs = 150;
  int attempts = 0;
  for (int i = 0; i < k_jobs; ++i) {
    const std::string id = test::test_uuid(3, static_cast<std::uint64_t>(i));
    for (;;) {
      ++attempts;
      ASSERT_LT(attempts, 20 * k_jobs);
      header_list h = auth_json();
      h.emplace_back("Idempotency-Key", "job-" + std::to_string(i));
      const outcome out = c.try_send(http::verb::patch, org_target(id), R"({"name":"Acme"})", h);
      if (!out.ec && !out.r.keep_alive) c.disconnect();
      if (!out.ec && out.r.status == 200) break;
    }
  }
  const stats st = srv.stats_snapshot(false);
  EXPECT_EQ(st.applied, static_cast<std::uint64_t>(k_jobs));
  EXPECT_EQ(st.organizations, static_cast<std::uint64_t>(k_jobs));
  EXPECT_EQ(st.max_applies_per_org, 1u);
  EXPECT_GE(st.replays, st.faults.at("reset_mid_body"));
  EXPECT_EQ(st.dropped, st.faults.at("reset_before") + st.faults.at("stall"));
  EXPECT_GT(attempts, k_jobs + 20);
}

TEST(EmulatorFaultsTest, ConfigFile) {
  test::temp_dir dir;
  test::write_file(dir.file("faults.yaml"),
                   "faults:\n"
                   "  seed: 1234\n"
                   "  status_429: {probability: 0.02, retry_after_s: 3}\n"
                   "  status_500: 0.01\n"
                   "  status_502: {probability: 0.02}\n"
                   "  status_503: 0.001\n"
                   "  status_504: 0.01\n"
                   "  reset_before: 0.03\n"
                   "  reset_mid_body: 0.04\n"
                   "  stall: {probability: 0.005, stall_ms: 5000}\n"
                   "  invalid_json: 0.05\n"
                   "  chunked: 0.5\n"
                   "  latency: {median_ms: 20, sigma: 0.7}\n"
                   "  close_after: {requests: 100, probability: 0.5}\n");
  emulator_config cfg;
  load_config_file(dir.file("faults.yaml"), cfg);
  const fault_options& f = cfg.server.api.faults;
  EXPECT_EQ(f.seed, 1234u);
  EXPECT_DOUBLE_EQ(f.status_429, 0.02);
  EXPECT_EQ(f.retry_after_429, 3s);
  EXPECT_DOUBLE_EQ(f.status_500, 0.01);
  EXPECT_DOUBLE_EQ(f.status_502, 0.02);
  EXPECT_DOUBLE_EQ(f.status_503, 0.001);
  EXPECT_DOUBLE_EQ(f.status_504, 0.01);
  EXPECT_DOUBLE_EQ(f.reset_before, 0.03);
  EXPECT_DOUBLE_EQ(f.reset_mid_body, 0.04);
  EXPECT_DOUBLE_EQ(f.stall, 0.005);
  EXPECT_EQ(f.stall_time, 5000ms);
  EXPECT_DOUBLE_EQ(f.invalid_json, 0.05);
  EXPECT_DOUBLE_EQ(f.chunked, 0.5);
  EXPECT_DOUBLE_EQ(f.latency.probability, 1.0) << "latency given means always, unless told";
  EXPECT_EQ(f.latency.kind, latency_fault::distribution::log_normal);
  EXPECT_DOUBLE_EQ(f.latency.median_ms, 20);
  EXPECT_DOUBLE_EQ(f.latency.sigma, 0.7);
  EXPECT_EQ(f.close_after, 100u);
  EXPECT_DOUBLE_EQ(f.close_probability, 0.5);
  EXPECT_TRUE(f.any());

  test::write_file(dir.file("short.yaml"), "faults: {latency: {min_ms: 1, max_ms: 9, probability: 0.5}, close_after: 7}\n");
  emulator_config short_cfg;
  load_config_file(dir.file("short.yaml"), short_cfg);
  EXPECT_EQ(short_cfg.server.api.faults.latency.kind, latency_fault::distribution::uniform);
  EXPECT_DOUBLE_EQ(short_cfg.server.api.faults.latency.max_ms, 9);
  EXPECT_DOUBLE_EQ(short_cfg.server.api.faults.latency.probability, 0.5);
  EXPECT_EQ(short_cfg.server.api.faults.close_after, 7u);
  EXPECT_DOUBLE_EQ(short_cfg.server.api.faults.close_probability, 1.0);

  const auto error_of = [&](const std::string& text) {
    test::write_file(dir.file("bad.yaml"), text);
    emulator_config c;
    try {
      load_config_file(dir.file("bad.yaml"), c);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of("faults: {bogus: 0.1}\n").find("faults.bogus: unknown key"), std::string::npos);
  EXPECT_NE(error_of("faults: {stall: {probability: 0.1, stall: 5}}\n").find("faults.stall.stall: unknown key"),
            std::string::npos);
  EXPECT_NE(error_of("faults: {status_500: {retry_after_s: 1}}\n").find("faults.status_500.retry_after_s: unknown key"),
            std::string::npos);
  EXPECT_NE(error_of("faults: {latency: {fixed_ms: 1, jitter: 2}}\n").find("faults.latency.jitter: unknown key"),
            std::string::npos);
  EXPECT_NE(error_of("faults: {close_after: {requests: 3, after: 2}}\n").find("faults.close_after.after: unknown key"),
            std::string::npos);
  EXPECT_NE(error_of("faults: {status_500: 1.5}\n").find("faults.status_500: expected a probability"),
            std::string::npos);
  EXPECT_NE(error_of("faults: {chunked: often}\n").find("faults.chunked: expected a probability"), std::string::npos);
  EXPECT_NE(error_of("faults: {status_429: {probability: -0.1}}\n").find("faults.status_429.probability"),
            std::string::npos);
  EXPECT_NE(error_of("faults: {status_500: 0.6, reset_before: 0.6}\n").find("more than 1"), std::string::npos);
  EXPECT_NE(error_of("faults: {latency: {fixed_ms: 1, min_ms: 1, max_ms: 2}}\n").find("faults.latency: give one of"),
            std::string::npos);
  EXPECT_NE(error_of("faults: {latency: {min_ms: 1}}\n").find("faults.latency: needs min_ms <= max_ms"),
            std::string::npos);
  EXPECT_NE(error_of("faults: {latency: {median_ms: 5}}\n").find("faults.latency: needs both"), std::string::npos);
  EXPECT_NE(error_of("faults: {latency: 5}\n").find("faults.latency: expected a mapping"), std::string::npos);
  EXPECT_NE(error_of("faults: {close_after: {probability: 0.5}}\n").find("faults.close_after: needs requests"),
            std::string::npos);
  EXPECT_NE(error_of("faults: {close_after: 0}\n").find("faults.close_after"), std::string::npos);
  EXPECT_NE(error_of("faults: {seed: -1}\n").find("faults.seed"), std::string::npos);
  EXPECT_NE(error_of("faults: {stall: {stall_ms: -5}}\n").find("faults.stall.stall_ms"), std::string::npos);
  EXPECT_NE(error_of("faults: [1, 2]\n").find("faults: expected a mapping"), std::string::npos);
}

TEST(EmulatorFaultsTest, BinaryLoadsAFaultProfileAndRejectsABadOne) {
  test::temp_dir dir;
  test::write_file(dir.file("bad.yaml"), "faults: {status_500: 0.1, typo: 1}\n");
  child_process bad({"--plain", "--listen", "127.0.0.1:0", "--config", dir.file("bad.yaml")});
  EXPECT_EQ(bad.stop(0), 2);

  test::write_file(dir.file("ok.yaml"), "faults: {status_502: 1}\nrate_limit: {enabled: false}\n");
  child_process p({"--plain", "--listen", "127.0.0.1:0", "--config", dir.file("ok.yaml")});
  std::smatch m;
  const std::string line = p.read_line(20s);
  ASSERT_TRUE(std::regex_match(line, m, std::regex(R"(listening on http://127\.0\.0\.1:(\d+))"))) << line;
  client c(static_cast<std::uint16_t>(std::stoi(m[1].str())));
  EXPECT_EQ(patch(c, org_target(k_org), "{}").status, 502u);
  EXPECT_EQ(c.send(http::verb::get, "/_emulator/stats?summary=1").json().at("faults").at("status_502").to_number<int>(),
            1);
  EXPECT_EQ(p.stop(SIGTERM), 0);
}

}  // namespace
}  // namespace orgpatch::emulator
