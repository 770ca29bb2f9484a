// The emulator's rate limits: Truto's per-token and per-account sliding windows, the
// optional remote limit with its ratelimit-* headers, early-retry counting; through
// the API with a fake clock (exact windows), in-process over HTTP, and the binary.
#include "emulator/api.hpp"
#include "emulator/config.hpp"
#include "emulator/limits.hpp"
#include "emulator/server.hpp"
#include "integration/emulator_client.hpp"
#include "support/test_util.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <regex>
#include <string>
#include <vector>

namespace orgpatch::emulator {
namespace {

using namespace test_client;
namespace http = beast::http;
namespace json = boost::json;
using namespace std::chrono_literals;
using time_point = api::clock::time_point;

const time_point t0 = time_point(std::chrono::milliseconds(1'795'725'667'000));

std::string account_n(std::uint64_t n) { return test::test_uuid(7, n); }

/// One request straight into the API at time `t`.
struct call {
  std::string account = std::string(k_account);
  std::string token = "t";
  std::string method = "PATCH";
  std::string id = std::string(k_org);
  std::string body = R"({"name":"Acme"})";
  std::optional<std::string> idempotency_key;

  response at(api& a, time_point t) const {
    const std::string target =
        "/unified/user-directory/organizations/" + id + "?integrated_account_id=" + account;
    const std::string auth = "Bearer " + token;
    request req;
    req.method = method;
    req.target = target;
    req.authorization = auth;
    req.content_type = "application/json";
    if (idempotency_key) req.idempotency_key = *idempotency_key;
    req.body = body;
    return a.handle(req, t);
  }
};

response patch_at(api& a, time_point t, std::string account = std::string(k_account), std::string token = "t") {
  call c;
  c.account = std::move(account);
  c.token = std::move(token);
  return c.at(a, t);
}

std::string header_of(const response& res, std::string_view name) {
  for (const auto& [n, v] : res.headers)
    if (n == name) return v;
  return {};
}

/// A Truto limit 429: Retry-After and the Truto body without the remote flag.
void expect_truto_429(const response& res, std::string_view retry_after) {
  ASSERT_EQ(res.status, 429u) << res.body;
  EXPECT_EQ(header_of(res, "Retry-After"), retry_after);
  const json::object o = json::parse(res.body).as_object();
  EXPECT_EQ(o.at("statusCode").to_number<int>(), 429);
  EXPECT_EQ(o.at("error").as_string(), "Too Many Requests");
  EXPECT_TRUE(o.at("message").is_string());
  EXPECT_FALSE(o.contains("truto_is_remote_error")) << res.body;
  EXPECT_FALSE(o.contains("raw_response")) << res.body;
}

api_options limited(std::uint64_t token_n, std::chrono::milliseconds token_w, std::uint64_t account_n,
                    std::chrono::milliseconds account_w) {
  api_options o;
  o.rate_limit.enabled = true;
  o.rate_limit.token = {token_n, token_w};
  o.rate_limit.account = {account_n, account_w};
  return o;
}

TEST(EmulatorLimitsTest, InProcessDefaultsAreOffTheBinaryDefaultsAreOn) {
  EXPECT_FALSE(server_options{}.api.rate_limit.enabled);
  EXPECT_FALSE(server_options{}.api.remote_limit.enabled);
  EXPECT_FALSE(server_options{}.api.faults.any());
  const emulator_config cfg;
  EXPECT_TRUE(cfg.server.api.rate_limit.enabled);
  EXPECT_EQ(cfg.server.api.rate_limit.token.requests, 500u);
  EXPECT_EQ(cfg.server.api.rate_limit.token.window, 10s);
  EXPECT_EQ(cfg.server.api.rate_limit.account.requests, 50u);
  EXPECT_EQ(cfg.server.api.rate_limit.account.window, 10s);
  EXPECT_EQ(cfg.server.api.rate_limit.retry_after, 10s);
  EXPECT_FALSE(cfg.server.api.remote_limit.enabled);

  // Off: a burst far over Truto's limits all passes.
  api a;
  for (int i = 0; i < 600; ++i) ASSERT_EQ(patch_at(a, t0).status, 200u) << i;
  EXPECT_EQ(a.snapshot(false).over_limit, 0u);
}

TEST(EmulatorLimitsTest, TokenLimitBurstWindowAndRecovery) {
  api a(limited(5, 1000ms, 100, 1000ms));
  // Exactly N in one instant pass (over several accounts), N + 1 is a 429.
  for (std::uint64_t i = 0; i < 5; ++i) EXPECT_EQ(patch_at(a, t0, account_n(i)).status, 200u) << i;
  expect_truto_429(patch_at(a, t0, account_n(9)), "10");
  // Still inside the window of the first five one millisecond before it ends ...
  expect_truto_429(patch_at(a, t0 + 999ms, account_n(9)), "10");
  // ... and out of it at W: five slots free, not six (the 429s were not counted).
  for (std::uint64_t i = 0; i < 5; ++i) EXPECT_EQ(patch_at(a, t0 + 1000ms, account_n(i)).status, 200u) << i;
  expect_truto_429(patch_at(a, t0 + 1000ms, account_n(9)), "10");

  // Another token has its own window.
  EXPECT_EQ(patch_at(a, t0 + 1000ms, account_n(9), "other").status, 200u);

  const stats st = a.snapshot(false);
  EXPECT_EQ(st.rate_limited.token, 3u);
  EXPECT_EQ(st.rate_limited.account, 0u);
  EXPECT_EQ(st.over_limit, 3u);
  EXPECT_EQ(st.by_status.at(429), 3u);
  EXPECT_EQ(st.applied, 11u);
}

TEST(EmulatorLimitsTest, SlidingWindowFreesSlotsAsTheyAge) {
  api a(limited(5, 1000ms, 100, 1000ms));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(patch_at(a, t0).status, 200u);
  for (int i = 0; i < 2; ++i) EXPECT_EQ(patch_at(a, t0 + 500ms).status, 200u);
  EXPECT_EQ(patch_at(a, t0 + 900ms).status, 429u);
  // At t0 + 1 s the three of t0 leave; the two of t0 + 0.5 s stay until t0 + 1.5 s.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(patch_at(a, t0 + 1000ms).status, 200u) << i;
  EXPECT_EQ(patch_at(a, t0 + 1400ms).status, 429u);
  for (int i = 0; i < 2; ++i) EXPECT_EQ(patch_at(a, t0 + 1500ms).status, 200u) << i;
  EXPECT_EQ(patch_at(a, t0 + 1500ms).status, 429u);
}

TEST(EmulatorLimitsTest, AccountLimitIsPerAccount) {
  api a(limited(1000, 10s, 3, 10s));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(patch_at(a, t0, account_n(1)).status, 200u);
  expect_truto_429(patch_at(a, t0, account_n(1)), "10");
  // Other accounts are independent, even for the same token.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(patch_at(a, t0, account_n(2)).status, 200u);
  expect_truto_429(patch_at(a, t0 + 5s, account_n(2)), "10");
  EXPECT_EQ(patch_at(a, t0 + 10s, account_n(1)).status, 200u);
  const stats st = a.snapshot(false);
  EXPECT_EQ(st.rate_limited.account, 2u);
  EXPECT_EQ(st.rate_limited.token, 0u);
  EXPECT_EQ(st.over_limit, 2u);
}

TEST(EmulatorLimitsTest, RequestsFailingBeforeTheLimitsAreNotCounted) {
  api a(limited(2, 10s, 2, 10s));
  call bad_query;
  bad_query.account = "not-a-uuid";
  call no_token;
  no_token.token = "";
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(bad_query.at(a, t0).status, 400u);
    EXPECT_EQ(no_token.at(a, t0).status, 401u);
  }
  EXPECT_EQ(patch_at(a, t0).status, 200u);
  EXPECT_EQ(patch_at(a, t0).status, 200u);
  EXPECT_EQ(patch_at(a, t0).status, 429u);
  // GET is limited as well (it is an API call like any other).
  call read;
  read.method = "GET";
  EXPECT_EQ(read.at(a, t0).status, 429u);
}

TEST(EmulatorLimitsTest, RetryAfterZeroMeansUntilASlotFrees) {
  api_options o = limited(100, 10s, 2, 10s);
  o.rate_limit.retry_after = 0s;
  api a(o);
  EXPECT_EQ(patch_at(a, t0).status, 200u);
  EXPECT_EQ(patch_at(a, t0 + 1s).status, 200u);
  expect_truto_429(patch_at(a, t0 + 2500ms), "8");  // the first leaves at t0 + 10 s
  expect_truto_429(patch_at(a, t0 + 9990ms), "1");
  EXPECT_EQ(patch_at(a, t0 + 10s).status, 200u);
}

TEST(EmulatorLimitsTest, NeverMoreThanNInAnyWindow) {
  // Random arrivals over many accounts, at a rate well over both limits: every
  // admitted request's window [t, t + W) holds at most N (token) and n (account).
  constexpr std::uint64_t token_n = 40, account_limit = 6;
  constexpr auto w = 1000ms;
  api a(limited(token_n, w, account_limit, w));
  std::mt19937_64 rng(12345);
  std::vector<std::pair<time_point, std::uint64_t>> admitted;
  time_point t = t0;
  for (int i = 0; i < 20'000; ++i) {
    t += std::chrono::microseconds(rng() % 1500);
    const std::uint64_t acct = rng() % 8;
    if (patch_at(a, t, account_n(acct)).status == 200) admitted.emplace_back(t, acct);
  }
  ASSERT_GT(admitted.size(), 500u);
  std::size_t end = 0;
  for (std::size_t begin = 0; begin < admitted.size(); ++begin) {
    while (end < admitted.size() && admitted[end].first < admitted[begin].first + w) ++end;
    ASSERT_LE(end - begin, token_n) << "token window at " << begin;
    std::vector<std::uint64_t> per_account(8, 0);
    for (std::size_t k = begin; k < end; ++k) ++per_account[admitted[k].second];
    for (std::uint64_t acct = 0; acct < 8; ++acct) ASSERT_LE(per_account[acct], account_limit) << begin;
  }
  // And the limit is reached, not just respected: ~40 per second over ~15 s.
  const double seconds = std::chrono::duration<double>(t - t0).count();
  EXPECT_GT(static_cast<double>(admitted.size()), 0.9 * token_n * seconds);
}

TEST(EmulatorLimitsTest, EarlyRetriesAreCountedPastTheGrace) {
  api_options o = limited(2, 10s, 100, 10s);
  o.rate_limit.retry_after = 3s;
  o.rate_limit.early_retry_grace = 100ms;
  api a(o);
  EXPECT_EQ(patch_at(a, t0, account_n(1)).status, 200u);
  EXPECT_EQ(patch_at(a, t0, account_n(2)).status, 200u);
  expect_truto_429(patch_at(a, t0, account_n(3)), "3");  // holds the token until t0 + 3 s
  EXPECT_EQ(a.snapshot(false).early_retries, 0u);
  // In flight when the 429 was given: within the grace, not early.
  EXPECT_EQ(patch_at(a, t0 + 50ms, account_n(4)).status, 429u);
  EXPECT_EQ(a.snapshot(false).early_retries, 0u);
  // Later, any account of that token: early (and answered 429 again).
  EXPECT_EQ(patch_at(a, t0 + 400ms, account_n(5)).status, 429u);
  stats st = a.snapshot(false);
  EXPECT_EQ(st.early_retries, 1u);
  EXPECT_EQ(st.early_retries_token, 1u);
  EXPECT_EQ(st.early_retries_account, 0u);
  // Another token was never held.
  EXPECT_EQ(patch_at(a, t0 + 500ms, account_n(5), "other").status, 200u);
  EXPECT_EQ(a.snapshot(false).early_retries, 1u);
  // After Retry-After (t0 + 0.4 s + 3 s, the last 429), not early; past the window, admitted.
  EXPECT_EQ(patch_at(a, t0 + 10s, account_n(6)).status, 200u);
  st = a.snapshot(false);
  EXPECT_EQ(st.early_retries, 1u);
  EXPECT_EQ(st.over_limit, 3u);
}

TEST(EmulatorLimitsTest, EarlyRetriesPerAccount) {
  api_options o = limited(100, 10s, 1, 2s);
  o.rate_limit.retry_after = 2s;
  o.rate_limit.early_retry_grace = 0ms;
  api a(o);
  EXPECT_EQ(patch_at(a, t0, account_n(1)).status, 200u);
  expect_truto_429(patch_at(a, t0 + 1ms, account_n(1)), "2");  // held until t0 + 2.001 s
  EXPECT_EQ(patch_at(a, t0 + 2ms, account_n(2)).status, 200u);  // another account: fine
  EXPECT_EQ(patch_at(a, t0 + 1s, account_n(1)).status, 429u);  // early
  stats st = a.snapshot(false);
  EXPECT_EQ(st.early_retries, 1u);
  EXPECT_EQ(st.early_retries_account, 1u);
  EXPECT_EQ(st.early_retries_token, 0u);
  // The second 429 held it until t0 + 3 s: a client that waited as told is on time.
  EXPECT_EQ(patch_at(a, t0 + 3s, account_n(1)).status, 200u);
  st = a.snapshot(false);
  EXPECT_EQ(st.early_retries, 1u);
  EXPECT_EQ(st.rate_limited.account, 2u);

  a.reset();
  st = a.snapshot(false);
  EXPECT_EQ(st.early_retries, 0u);
  EXPECT_EQ(st.over_limit, 0u);
  EXPECT_EQ(patch_at(a, t0 + 3s, account_n(1)).status, 200u) << "reset forgets windows";
}

TEST(EmulatorLimitsTest, RemoteLimitHeadersAndRemote429) {
  api_options o;
  o.remote_limit.enabled = true;
  o.remote_limit.limit = {3, 10s};
  o.rate_limit.early_retry_grace = 0ms;
  api a(o);
  for (int i = 0; i < 3; ++i) {
    const response res = patch_at(a, t0 + std::chrono::seconds(i), account_n(1));
    ASSERT_EQ(res.status, 200u);
    EXPECT_EQ(header_of(res, "ratelimit-limit"), "3;w=10");
    EXPECT_EQ(header_of(res, "ratelimit-remaining"), std::to_string(2 - i));
    EXPECT_EQ(header_of(res, "ratelimit-reset"), std::to_string(10 - i)) << "until the first call leaves the window";
    EXPECT_EQ(header_of(res, "Retry-After"), "");
  }
  // Per token: another account of the same token is over it too.
  const response over = patch_at(a, t0 + 4s, account_n(2));
  ASSERT_EQ(over.status, 429u);
  EXPECT_EQ(header_of(over, "Retry-After"), "6");
  EXPECT_EQ(header_of(over, "ratelimit-limit"), "3;w=10");
  EXPECT_EQ(header_of(over, "ratelimit-remaining"), "0");
  EXPECT_EQ(header_of(over, "ratelimit-reset"), "6");
  const json::object body = json::parse(over.body).as_object();
  EXPECT_EQ(body.at("statusCode").to_number<int>(), 429);
  EXPECT_EQ(body.at("error").as_string(), "Too Many Requests");
  EXPECT_TRUE(body.at("truto_is_remote_error").as_bool());
  EXPECT_EQ(body.at("raw_response").at("detail"), body.at("message"));
  // A remote 429 holds its account, not the token: account 1 is fine to ask (and is
  // refused by the remote), account 2 is early.
  EXPECT_EQ(patch_at(a, t0 + 5s, account_n(1)).status, 429u);
  EXPECT_EQ(patch_at(a, t0 + 5s, account_n(2)).status, 429u);
  stats st = a.snapshot(false);
  EXPECT_EQ(st.early_retries, 1u);
  EXPECT_EQ(st.early_retries_account, 1u);
  // Another token has its own remote budget; the first frees a slot at t0 + 10 s.
  EXPECT_EQ(patch_at(a, t0 + 5s, account_n(3), "other").status, 200u);
  const response later = patch_at(a, t0 + 10s, account_n(1));
  EXPECT_EQ(later.status, 200u);
  EXPECT_EQ(header_of(later, "ratelimit-remaining"), "0");
  EXPECT_EQ(header_of(later, "ratelimit-reset"), "1");
  st = a.snapshot(false);
  EXPECT_EQ(st.rate_limited.remote, 3u);
  EXPECT_EQ(st.over_limit, 3u);
  EXPECT_EQ(st.rate_limited.token + st.rate_limited.account, 0u);
}

TEST(EmulatorLimitsTest, RemoteLimitCountsRemoteCallsOnly) {
  api_options o;
  o.remote_limit.enabled = true;
  o.remote_limit.limit = {100, 60s};
  api a(o);
  call first;
  first.idempotency_key = "k1";
  EXPECT_EQ(header_of(first.at(a, t0), "ratelimit-remaining"), "99");
  // A replay is answered by Truto from its store: no remote call, no header.
  const response replay = first.at(a, t0);
  EXPECT_EQ(header_of(replay, "Idempotent-Replayed"), "true");
  EXPECT_EQ(header_of(replay, "ratelimit-remaining"), "");
  // Remote validation errors and unknown organizations are remote calls.
  call invalid;
  invalid.body = R"({"name":""})";
  const response r422 = invalid.at(a, t0);
  EXPECT_EQ(r422.status, 422u);
  EXPECT_EQ(header_of(r422, "ratelimit-remaining"), "98");
  call unknown;
  unknown.id = "nope";
  const response r404 = unknown.at(a, t0);
  EXPECT_EQ(r404.status, 404u);
  EXPECT_EQ(header_of(r404, "ratelimit-remaining"), "97");
  call read;
  read.method = "GET";
  EXPECT_EQ(header_of(read.at(a, t0), "ratelimit-remaining"), "96");
  // Requests Truto refuses itself never reach it.
  call bad;
  bad.body = "[]";
  const response r400 = bad.at(a, t0);
  EXPECT_EQ(r400.status, 400u);
  EXPECT_EQ(header_of(r400, "ratelimit-remaining"), "");
}

TEST(EmulatorLimitsTest, InvalidOptionsAreRefused) {
  api_options o = limited(0, 1s, 1, 1s);
  EXPECT_THROW(api{o}, std::invalid_argument);
  o = limited(1, 0ms, 1, 1s);
  EXPECT_THROW(api{o}, std::invalid_argument);
  o = {};
  o.remote_limit.enabled = true;
  o.remote_limit.limit = {0, 1s};
  EXPECT_THROW(api{o}, std::invalid_argument);
  o = {};
  o.faults.status_500 = 0.7;
  o.faults.reset_before = 0.7;
  EXPECT_THROW(api{o}, std::invalid_argument);
}

TEST(EmulatorLimitsTest, OverHttpWithSmallLimits) {
  server_options o = plain_options();
  o.api.rate_limit.enabled = true;
  o.api.rate_limit.token = {200, 60s};
  o.api.rate_limit.account = {20, 60s};
  o.api.rate_limit.retry_after = 1s;
  server srv(o);
  srv.start();
  client c(srv.port());
  for (int i = 0; i < 20; ++i) ASSERT_EQ(patch(c, org_target(k_org), R"({"name":"A"})").status, 200u) << i;
  const reply r = patch(c, org_target(k_org), R"({"name":"A"})");
  ASSERT_EQ(r.status, 429u);
  EXPECT_EQ(r.header("Retry-After"), "1");
  EXPECT_TRUE(r.keep_alive);
  error_message(r, false);
  // Another account still passes.
  const std::string other = "/unified/user-directory/organizations/" + std::string(k_org) +
                            "?integrated_account_id=" + account_n(1);
  EXPECT_EQ(patch(c, other, "{}").status, 200u);

  const json::value st = c.send(http::verb::get, "/_emulator/stats?summary=1").json();
  EXPECT_EQ(st.at("rate_limited"), json::parse(R"({"token":0,"account":1,"remote":0,"fault":0})"));
  EXPECT_EQ(st.at("over_limit").to_number<int>(), 1);
  EXPECT_EQ(st.at("early_retries").to_number<int>(), 0);
  EXPECT_EQ(st.at("by_status"), json::parse(R"({"200":21,"429":1})"));
  EXPECT_EQ(srv.stats_snapshot(false).applied, 21u);
}

TEST(EmulatorLimitsTest, RemoteHeadersOverHttp) {
  server_options o = plain_options();
  o.api.remote_limit.enabled = true;
  o.api.remote_limit.limit = {2, 3'600'000ms};
  server srv(o);
  srv.start();
  client c(srv.port());
  reply r = patch(c, org_target(k_org), "{}");
  EXPECT_EQ(r.header("ratelimit-limit"), "2;w=3600");
  EXPECT_EQ(r.header("ratelimit-remaining"), "1");
  EXPECT_EQ(r.header("ratelimit-reset"), "3600");
  EXPECT_EQ(patch(c, org_target(k_org), "{}").header("ratelimit-remaining"), "0");
  r = patch(c, org_target(k_org), "{}");
  ASSERT_EQ(r.status, 429u);
  EXPECT_EQ(r.header("Retry-After"), "3600");
  EXPECT_EQ(r.header("ratelimit-remaining"), "0");
  EXPECT_NE(error_message(r, true).find("2 calls per 3600 s"), std::string::npos);
  EXPECT_EQ(srv.stats_snapshot(false).rate_limited.remote, 1u);
}

TEST(EmulatorLimitsTest, ConfigFile) {
  test::temp_dir dir;
  test::write_file(dir.file("ok.yaml"),
                   "rate_limit: {token: {requests: 200, window_ms: 1000}, account: {requests: 20, window_ms: 1000},\n"
                   "             retry_after_s: 1, early_retry_grace_ms: 50}\n"
                   "remote_limit: {requests: 5000, window_ms: 3600000}\n");
  emulator_config cfg;
  load_config_file(dir.file("ok.yaml"), cfg);
  const api_options& a = cfg.server.api;
  EXPECT_TRUE(a.rate_limit.enabled);
  EXPECT_EQ(a.rate_limit.token.requests, 200u);
  EXPECT_EQ(a.rate_limit.token.window, 1000ms);
  EXPECT_EQ(a.rate_limit.account.requests, 20u);
  EXPECT_EQ(a.rate_limit.account.window, 1000ms);
  EXPECT_EQ(a.rate_limit.retry_after, 1s);
  EXPECT_EQ(a.rate_limit.early_retry_grace, 50ms);
  EXPECT_TRUE(a.remote_limit.enabled);
  EXPECT_EQ(a.remote_limit.limit.requests, 5000u);
  EXPECT_EQ(a.remote_limit.limit.window, 3'600'000ms);

  test::write_file(dir.file("off.yaml"), "rate_limit: {enabled: false}\nremote_limit: {enabled: false, requests: 3}\n");
  emulator_config off;
  load_config_file(dir.file("off.yaml"), off);
  EXPECT_FALSE(off.server.api.rate_limit.enabled);
  EXPECT_EQ(off.server.api.rate_limit.token.requests, 500u);
  EXPECT_FALSE(off.server.api.remote_limit.enabled);

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
  EXPECT_NE(error_of("rate_limit: {bogus: 1}\n").find("rate_limit.bogus: unknown key"), std::string::npos);
  EXPECT_NE(error_of("rate_limit: {token: {requests: 1, per: 2}}\n").find("rate_limit.token.per: unknown key"),
            std::string::npos);
  EXPECT_NE(error_of("rate_limit: {token: {requests: 0}}\n").find("rate_limit.token.requests"), std::string::npos);
  EXPECT_NE(error_of("rate_limit: {account: {window_ms: soon}}\n").find("rate_limit.account.window_ms"),
            std::string::npos);
  EXPECT_NE(error_of("rate_limit: {retry_after_s: -1}\n").find("rate_limit.retry_after_s"), std::string::npos);
  EXPECT_NE(error_of("rate_limit: {enabled: maybe}\n").find("rate_limit.enabled"), std::string::npos);
  EXPECT_NE(error_of("rate_limit: 5\n").find("rate_limit: expected a mapping"), std::string::npos);
  EXPECT_NE(error_of("remote_limit: {requests: 5, hourly: true}\n").find("remote_limit.hourly: unknown key"),
            std::string::npos);
  EXPECT_NE(error_of("\nremote_limit: {window_ms: 0}\n").find("bad.yaml:2:"), std::string::npos);
}

TEST(EmulatorLimitsTest, BinaryEnforcesLimitsUnlessNoRateLimit) {
  test::temp_dir dir;
  test::write_file(dir.file("limits.yaml"), "rate_limit: {account: {requests: 3, window_ms: 60000}, retry_after_s: 7}\n");
  {
    child_process p({"--plain", "--listen", "127.0.0.1:0", "--config", dir.file("limits.yaml")});
    std::smatch m;
    const std::string line = p.read_line(20s);
    ASSERT_TRUE(std::regex_match(line, m, std::regex(R"(listening on http://127\.0\.0\.1:(\d+))"))) << line;
    client c(static_cast<std::uint16_t>(std::stoi(m[1].str())));
    for (int i = 0; i < 3; ++i) EXPECT_EQ(patch(c, org_target(k_org), "{}").status, 200u);
    const reply r = patch(c, org_target(k_org), "{}");
    EXPECT_EQ(r.status, 429u);
    EXPECT_EQ(r.header("Retry-After"), "7");
    EXPECT_EQ(p.stop(SIGTERM), 0);
  }
  {
    // Truto's default 50 per 10 s per account is on without a config file ...
    child_process p({"--plain", "--listen", "127.0.0.1:0"});
    std::smatch m;
    const std::string line = p.read_line(20s);
    ASSERT_TRUE(std::regex_match(line, m, std::regex(R"(listening on http://127\.0\.0\.1:(\d+))"))) << line;
    client c(static_cast<std::uint16_t>(std::stoi(m[1].str())));
    int ok = 0, limited = 0;
    for (int i = 0; i < 51; ++i) {
      const unsigned status = patch(c, org_target(k_org), "{}").status;
      ok += status == 200;
      limited += status == 429;
    }
    // (51 requests take well under 10 s; were they slower, fewer would be refused.)
    EXPECT_EQ(ok + limited, 51);
    EXPECT_GE(ok, 50);
    EXPECT_LE(limited, 1);
    EXPECT_EQ(c.send(http::verb::get, "/_emulator/stats?summary=1").json().at("rate_limited").at("account"),
              json::value(limited));
    EXPECT_EQ(p.stop(SIGTERM), 0);
  }
  {
    // ... and --no-rate-limit turns it off, config file or not.
    child_process p({"--plain", "--listen", "127.0.0.1:0", "--config", dir.file("limits.yaml"), "--no-rate-limit"});
    std::smatch m;
    const std::string line = p.read_line(20s);
    ASSERT_TRUE(std::regex_match(line, m, std::regex(R"(listening on http://127\.0\.0\.1:(\d+))"))) << line;
    client c(static_cast<std::uint16_t>(std::stoi(m[1].str())));
    for (int i = 0; i < 60; ++i) ASSERT_EQ(patch(c, org_target(k_org), "{}").status, 200u) << i;
    EXPECT_EQ(p.stop(SIGTERM), 0);
  }
}

}  // namespace
}  // namespace orgpatch::emulator
