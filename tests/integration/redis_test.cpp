// The Redis building blocks against a real redis-server (tests/support/redis_server):
// the async client, the shared GCRA, the consumer-group primitives.
#include "orgpatch/asio.hpp"
#include "orgpatch/redis.hpp"
#include "orgpatch/redis_limiter.hpp"
#include "orgpatch/sources/redis_stream.hpp"
#include "support/redis_server.hpp"

#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <future>
#include <iostream>
#include <random>
#include <set>

#include <unistd.h>

// g++ 12 reports Asio's awaitable frame allocation (its class-specific operator
// new and delete) as mismatched once a coroutine lambda is inlined into a test
// body: a false positive of g++ 12's -Wmismatched-new-delete with coroutines.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace orgpatch {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

/// A command's arguments, as a function call: g++ 12 rejects a braced list of
/// literals inside a co_await expression ("array used as initializer").
template <class... A>
std::vector<std::string> args(A&&... a) {
  return {std::string(std::forward<A>(a))...};
}

// ASSERT_* returns, which a coroutine cannot: this fails the test and co_returns.
#define CO_ASSERT(cond)                                   \
  if (!(cond)) {                                          \
    ADD_FAILURE() << "required: " #cond;                  \
    co_return;                                            \
  } else                                                  \
    (void)0

/// Runs `work` on `ioc` (on this thread) until it finishes; fails the test
/// (throws) if it takes longer than `limit` of wall-clock time.
template <class T>
T run(net::io_context& ioc, net::awaitable<T> work, std::chrono::seconds limit = 30s) {
  std::future<T> result = net::co_spawn(ioc, std::move(work), net::use_future);
  const auto deadline = steady_clock::now() + limit;
  while (result.wait_for(0s) != std::future_status::ready) {
    if (steady_clock::now() > deadline) throw std::runtime_error("the test's coroutine timed out");
    if (ioc.stopped()) ioc.restart();
    ioc.run_one_for(50ms);
  }
  return result.get();
}

void report_exception(std::exception_ptr e) {
  if (e) ADD_FAILURE() << "a coroutine threw";
}

net::awaitable<void> sleep_for(milliseconds d) {
  steady_timer t(co_await net::this_coro::executor);
  t.expires_after(d);
  co_await t.async_wait();
}

net::awaitable<bool> connect_to(redis_connection& c, const test::redis_server& s) {
  const auto ec = co_await c.connect(s.host(), s.port(), 2s);
  EXPECT_FALSE(ec) << ec.message() << ": " << c.last_error();
  co_return !ec;
}

/// A command whose transport must not fail; its reply.
net::awaitable<redis_reply> must(redis_connection& c, std::vector<std::string> argv) {
  const std::string name = argv.empty() ? "" : argv[0];
  auto r = co_await c.command(std::move(argv), 5s);
  EXPECT_TRUE(r.has_value()) << name << ": " << (r ? "" : r.error().message()) << " " << c.last_error();
  if (!r) co_return redis_reply{};
  co_return std::move(*r);
}

// --- URL ---------------------------------------------------------------------

TEST(RedisUrl, ParsesHostAndPort) {
  auto e = parse_redis_url("redis://127.0.0.1:6380");
  EXPECT_EQ(e.host, "127.0.0.1");
  EXPECT_EQ(e.port, 6380);
  e = parse_redis_url("redis://redis.internal");
  EXPECT_EQ(e.host, "redis.internal");
  EXPECT_EQ(e.port, 6379);
  e = parse_redis_url("redis://[::1]:7000/");
  EXPECT_EQ(e.host, "::1");
  EXPECT_EQ(e.port, 7000);
}

TEST(RedisUrl, RejectsWhatItCannotServeWithAMessage) {
  const std::pair<const char*, const char*> bad[] = {
      {"rediss://h:6379", "TLS"},          {"unix:///run/redis.sock", "Unix"},
      {"redis://user:pw@h:6379", "password"}, {"redis://h:6379/2", "database"},
      {"redis://h:0", "port"},             {"redis://h:99999", "port"},
      {"redis://h:", "port"},              {"redis://", "host"},
      {"http://h:6379", "redis://"},       {"redis://::1:6379", "brackets"},
      {"redis://h?x=1", "query"},
  };
  for (const auto& [url, why] : bad) {
    try {
      (void)parse_redis_url(url);
      ADD_FAILURE() << url << " was accepted";
    } catch (const std::invalid_argument& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(url), std::string::npos) << msg;
      EXPECT_NE(msg.find(why), std::string::npos) << msg;
    }
  }
}

// --- the GCRA step, pure -----------------------------------------------------

TEST(RedisGcraStep, BurstThenRate) {
  const double t0 = 1.7e15;  // µs, as Redis TIME gives
  // rate 10/s (100 ms per token), burst 5: a fresh key grants the burst at once.
  auto s = gcra_step(std::nullopt, t0, 10, 5, 10);
  EXPECT_EQ(s.granted, 5u);
  EXPECT_TRUE(s.store);
  EXPECT_DOUBLE_EQ(s.tat_us, t0 + 500000);
  EXPECT_EQ(s.ttl_ms, 501);
  EXPECT_EQ(s.wait_ms, 100);
  // Then one token per 100 ms.
  auto s2 = gcra_step(s.tat_us, t0 + 50000, 10, 5, 1);
  EXPECT_EQ(s2.granted, 0u);
  EXPECT_FALSE(s2.store);
  EXPECT_EQ(s2.wait_ms, 50);
  auto s3 = gcra_step(s.tat_us, t0 + 100000, 10, 5, 3);
  EXPECT_EQ(s3.granted, 1u);
  EXPECT_EQ(s3.wait_ms, 100);
  // After a long pause the bucket is full again (an old tat counts as now).
  auto s4 = gcra_step(s3.tat_us, t0 + 60e6, 10, 5, 2);
  EXPECT_EQ(s4.granted, 2u);
  EXPECT_EQ(s4.wait_ms, 0);
  // Unlimited.
  auto s5 = gcra_step(std::nullopt, t0, 0, 5, 7);
  EXPECT_EQ(s5.granted, 7u);
  EXPECT_FALSE(s5.store);
}

// Random demand against the step function: in every window of W seconds at
// most b + r·W tokens are granted (the bound DESIGN.md §4 promises).
TEST(RedisGcraStep, NeverMoreThanBurstPlusRateTimesWindow) {
  for (const auto& [rate, burst] : {std::pair{4.5, 5.0}, std::pair{45.0, 50.0}, std::pair{100.0, 4.75}}) {
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<int> gap_us(0, 40000), want(1, 8);
    std::optional<double> tat;
    double now = 1.7e15;
    std::vector<double> grants;  // one entry per token
    while (now < 1.7e15 + 60e6) {
      auto s = gcra_step(tat, now, rate, burst, static_cast<std::uint64_t>(want(rng)));
      if (s.store) tat = s.tat_us;
      for (std::uint64_t i = 0; i < s.granted; ++i) grants.push_back(now);
      now += gap_us(rng);
    }
    const double window = 10e6;
    std::size_t j = 0, most = 0;
    for (std::size_t i = 0; i < grants.size(); ++i) {
      while (grants[i] - grants[j] > window) ++j;
      most = std::max(most, i - j + 1);
    }
    EXPECT_LE(static_cast<double>(most), burst + rate * 10) << "rate " << rate << " burst " << burst;
    EXPECT_GE(static_cast<double>(grants.size()), 0.95 * rate * 60) << "rate " << rate;
  }
}

// --- the client --------------------------------------------------------------

TEST(RedisClient, CommandsAndEveryReplyType) {
  test::redis_server server;
  net::io_context ioc;
  redis_connection c(ioc.get_executor());
  EXPECT_FALSE(c.connected());
  run(ioc, [&]() -> net::awaitable<void> {
    // Before connecting: an error, at once.
    auto early = co_await c.command(args("PING"));
    EXPECT_EQ(early.error(), make_error_code(redis_errc::not_connected));
    if (!co_await connect_to(c, server)) co_return;
    EXPECT_TRUE(c.connected());

    auto r = co_await must(c, args("SET", "k", "v"));
    EXPECT_TRUE(r.is_status());
    EXPECT_EQ(r.str, "OK");
    r = co_await must(c, args("GET", "k"));
    EXPECT_TRUE(r.is_string());
    EXPECT_EQ(r.str, "v");
    r = co_await must(c, args("GET", "missing"));
    EXPECT_TRUE(r.is_nil());
    r = co_await must(c, args("INCRBY", "n", "41"));
    EXPECT_TRUE(r.is_integer());
    EXPECT_EQ(r.integer, 41);
    r = co_await must(c, args("RPUSH", "l", "a", "b"));
    r = co_await must(c, args("LRANGE", "l", "0", "-1"));
    CO_ASSERT(r.is_array());
    EXPECT_EQ(r.elements.size(), 2u);
    CO_ASSERT((r.elements.size()) == (2u));
    EXPECT_EQ(r.elements[1].str, "b");
    // An error reply is a value; the connection goes on.
    r = co_await must(c, args("NOSUCHCOMMAND", "x"));
    EXPECT_TRUE(r.is_error());
    EXPECT_TRUE(r.is_error("ERR"));
    r = co_await must(c, args("INCR", "k"));
    EXPECT_TRUE(r.is_error("ERR"));
    // Binary-safe arguments.
    const std::string binary("a\0b\r\n\xff", 6);
    r = co_await must(c, args("SET", "bin", binary));
    r = co_await must(c, args("GET", "bin"));
    EXPECT_EQ(r.str, binary);
    // A reply far larger than hiredis's 16 KB reads.
    std::string big(4 << 20, 'z');
    big[12345] = 'q';
    co_await must(c, args("SET", "big", big));
    r = co_await must(c, args("GET", "big"));
    EXPECT_TRUE(r.str == big);
    EXPECT_TRUE(c.connected());
  }());
}

TEST(RedisClient, ConnectFailsFastWhenNothingListens) {
  std::uint16_t port = 0;
  {
    test::redis_server s;  // a port that was just in use, now closed
    port = s.port();
  }
  net::io_context ioc;
  redis_connection c(ioc.get_executor());
  const auto started = steady_clock::now();
  const auto ec = run(ioc, c.connect("127.0.0.1", port, 2s));
  EXPECT_EQ(ec, make_error_code(redis_errc::connect_failed));
  EXPECT_NE(c.last_error(), "");
  EXPECT_LT(steady_clock::now() - started, 1s);
  EXPECT_FALSE(c.connected());
  // A name is resolved first (hiredis would block on it).
  const auto ec2 = run(ioc, c.connect("localhost", port, 2s));
  EXPECT_TRUE(ec2) << "connected to a closed port?";
}

net::awaitable<void> echo_and_count(redis_connection* c, int i, int* ok, int* done, steady_timer* all_done,
                                    int total) {
  const std::string text = "message-" + std::to_string(i);
  auto r = co_await c->command(args("ECHO", text), 10s);
  if (r && r->is_string() && r->str == text) ++*ok;
  auto n = co_await c->command(args("INCR", "counter"), 10s);
  if (!n || !n->is_integer()) --*ok;
  if (++*done == total) all_done->cancel();
}

TEST(RedisClient, PipelinesAThousandConcurrentCommands) {
  test::redis_server server;
  net::io_context ioc;
  redis_connection c(ioc.get_executor());
  run(ioc, [&]() -> net::awaitable<void> {
    if (!co_await connect_to(c, server)) co_return;
    // 1000 coroutines, each with its own commands in flight on one connection:
    // every one gets its own reply.
    constexpr int n = 1000;
    int ok = 0, done = 0;
    steady_timer all_done(co_await net::this_coro::executor);
    all_done.expires_at(steady_timer::time_point::max());
    for (int i = 0; i < n; ++i)
      net::co_spawn(co_await net::this_coro::executor, echo_and_count(&c, i, &ok, &done, &all_done, n),
                    [](std::exception_ptr e) {
                      if (e) ADD_FAILURE() << "a command coroutine threw";
                    });
    if (done < n) co_await all_done.async_wait();  // (they may all be done already)
    EXPECT_EQ(done, n);
    EXPECT_EQ(ok, n);
    auto r = co_await must(c, args("GET", "counter"));
    EXPECT_EQ(r.str, std::to_string(n));

    // pipeline(): 1000 commands sent at once, replies in order.
    std::vector<std::vector<std::string>> sets, gets;
    for (int i = 0; i < n; ++i) {
      sets.push_back({"SET", "key:" + std::to_string(i), std::to_string(i * 7)});
      gets.push_back({"GET", "key:" + std::to_string(i)});
    }
    auto set_replies = co_await c.pipeline(std::move(sets), 10s);
    auto get_replies = co_await c.pipeline(std::move(gets), 10s);
    EXPECT_EQ(get_replies.size(), static_cast<std::size_t>(n));
    CO_ASSERT((get_replies.size()) == (static_cast<std::size_t>(n)));
    int good = 0;
    for (int i = 0; i < n; ++i)
      if (set_replies[i] && get_replies[i] && get_replies[i]->str == std::to_string(i * 7)) ++good;
    EXPECT_EQ(good, n);
  }());
}

TEST(RedisClient, CommandTimeoutFailsTheCallerAndClosesTheConnection) {
  test::redis_server server;
  net::io_context ioc;
  redis_connection c(ioc.get_executor());
  run(ioc, [&]() -> net::awaitable<void> {
    if (!co_await connect_to(c, server)) co_return;
    const auto started = steady_clock::now();
    auto r = co_await c.command(args("BLPOP", "nothing-here", "10"), 200ms);
    const auto took = steady_clock::now() - started;
    CO_ASSERT(!(r.has_value()));
    EXPECT_EQ(r.error(), make_error_code(redis_errc::timeout));
    EXPECT_GE(took, 190ms);
    EXPECT_LT(took, 2s);
    EXPECT_FALSE(c.connected());
    EXPECT_NE(c.last_error().find("200 ms"), std::string::npos) << c.last_error();
    // Connecting again works.
    if (!co_await connect_to(c, server)) co_return;
    auto pong = co_await must(c, args("PING"));
    EXPECT_EQ(pong.str, "PONG");
  }());
}

net::awaitable<void> blpop_expect_error(redis_connection* c, std::string key, int* failed, int* done,
                                        steady_timer* all_done, int total) {
  auto r = co_await c->command(args("BLPOP", key, "0"));  // no timeout: only the disconnect ends it
  if (!r && r.error() == make_error_code(redis_errc::disconnected)) ++*failed;
  if (++*done == total) all_done->cancel();
}

TEST(RedisClient, ServerKilledPendingCommandsFailWithoutHanging) {
  auto server = std::make_unique<test::redis_server>();
  net::io_context ioc;
  redis_connection c(ioc.get_executor());
  run(ioc, [&]() -> net::awaitable<void> {
    if (!co_await connect_to(c, *server)) co_return;
    constexpr int n = 10;
    int failed = 0, done = 0;
    steady_timer all_done(co_await net::this_coro::executor);
    all_done.expires_at(steady_timer::time_point::max());
    for (int i = 0; i < n; ++i)
      net::co_spawn(co_await net::this_coro::executor,
                    blpop_expect_error(&c, "list-" + std::to_string(i), &failed, &done, &all_done, n),
                    [](std::exception_ptr e) {
                      if (e) ADD_FAILURE() << "a command coroutine threw";
                    });
    co_await sleep_for(200ms);
    EXPECT_EQ(done, 0);
    const auto killed = steady_clock::now();
    server->kill();
    if (done < n) co_await all_done.async_wait();
    EXPECT_LT(steady_clock::now() - killed, 2s);
    EXPECT_EQ(failed, n);
    EXPECT_FALSE(c.connected());
    EXPECT_NE(c.last_error(), "");
    // Afterwards: an immediate error, not a hang.
    auto r = co_await c.command(args("PING"), 1s);
    EXPECT_EQ(r.error(), make_error_code(redis_errc::not_connected));
    // The same object reconnects to a new server.
    server = std::make_unique<test::redis_server>();
    if (!co_await connect_to(c, *server)) co_return;
    auto pong = co_await must(c, args("PING"));
    EXPECT_EQ(pong.str, "PONG");
  }());
}

// hiredis writes with write(2): a write to a connection whose server died must
// be an error, not a SIGPIPE that kills the process.
TEST(RedisClient, WritingToADeadServerIsAnErrorNotASignal) {
  auto server = std::make_unique<test::redis_server>();
  net::io_context ioc;
  redis_connection c(ioc.get_executor());
  run(ioc, [&]() -> net::awaitable<void> {
    if (!co_await connect_to(c, *server)) co_return;
    co_await must(c, args("SET", "k", std::string(100000, 'x')));
    server->kill();
    // Sent before the event loop has seen the connection drop.
    std::vector<std::vector<std::string>> many;
    for (int i = 0; i < 50; ++i) many.push_back(args("SET", "k" + std::to_string(i), std::string(100000, 'y')));
    auto replies = co_await c.pipeline(std::move(many), 5s);
    for (const auto& r : replies) EXPECT_FALSE(r.has_value());
    EXPECT_FALSE(c.connected());
  }());
}

TEST(RedisClient, CloseFailsPendingCommands) {
  test::redis_server server;
  net::io_context ioc;
  redis_connection c(ioc.get_executor());
  run(ioc, [&]() -> net::awaitable<void> {
    if (!co_await connect_to(c, server)) co_return;
    int failed = 0, done = 0;
    steady_timer all_done(co_await net::this_coro::executor);
    all_done.expires_at(steady_timer::time_point::max());
    net::co_spawn(co_await net::this_coro::executor, [&]() -> net::awaitable<void> {
      auto r = co_await c.command(args("BLPOP", "x", "0"));
      if (!r && r.error() == make_error_code(redis_errc::closed)) ++failed;
      ++done;
      all_done.cancel();
    }, report_exception);
    co_await sleep_for(100ms);
    c.close();
    if (done < 1) co_await all_done.async_wait();
    EXPECT_EQ(done, 1);
    EXPECT_EQ(failed, 1);
  }());
}

// --- the shared GCRA ---------------------------------------------------------

TEST(RedisLimiter, ScriptGivesTheBurstThenTheRate) {
  test::redis_server server;
  net::io_context ioc;
  redis_connection c(ioc.get_executor());
  redis_limiter limiter(c);
  run(ioc, [&]() -> net::awaitable<void> {
    if (!co_await connect_to(c, server)) co_return;
    // rate 10/s, burst 5: five at once, then one per 100 ms.
    auto g = co_await limiter.acquire("acct-1", 10, 5, 10);
    EXPECT_FALSE(g.ec) << limiter.last_error();
    EXPECT_EQ(g.granted, 5u);
    EXPECT_GT(g.wait, 0ms);
    EXPECT_LE(g.wait, 100ms);
    g = co_await limiter.acquire("acct-1", 10, 5, 1);
    EXPECT_EQ(g.granted, 0u);
    EXPECT_LE(g.wait, 100ms);
    co_await sleep_for(g.wait + 1ms);
    g = co_await limiter.acquire("acct-1", 10, 5, 3);
    EXPECT_EQ(g.granted, 1u);
    // One key, with an expiry (idle keys go away once the bucket is full again).
    auto ttl = co_await must(c, args("PTTL", "orgpatch:gcra:acct-1"));
    EXPECT_GT(ttl.integer, 0);
    EXPECT_LE(ttl.integer, 601);
    auto keys = co_await must(c, args("KEYS", "*"));
    EXPECT_EQ(keys.elements.size(), 1u);
    // Another name, another bucket.
    g = co_await limiter.acquire("acct-2", 10, 5, 2);
    EXPECT_EQ(g.granted, 2u);
    EXPECT_EQ(g.wait, 0ms);
    // A flushed script cache (NOSCRIPT) is loaded again transparently.
    co_await must(c, args("SCRIPT", "FLUSH"));
    g = co_await limiter.acquire("acct-2", 10, 5, 1);
    EXPECT_FALSE(g.ec) << limiter.last_error();
    EXPECT_EQ(g.granted, 1u);
    // Unlimited: no Redis at all.
    g = co_await limiter.acquire("free", 0, 1, 9);
    EXPECT_EQ(g.granted, 9u);
    auto exists = co_await must(c, args("EXISTS", "orgpatch:gcra:free"));
    EXPECT_EQ(exists.integer, 0);
    // The key expires when the bucket is full again.
    co_await sleep_for(700ms);
    exists = co_await must(c, args("EXISTS", "orgpatch:gcra:acct-1"));
    EXPECT_EQ(exists.integer, 0);
  }());
  EXPECT_EQ(token_limit_name("secret-token").find("secret"), std::string::npos);
  EXPECT_EQ(token_limit_name("secret-token").size(), 6u + 32u);
}

// The derived parameters of DESIGN.md's default limits (see the bound in redis_limiter.hpp).
TEST(RedisSharedBucket, DerivesHoldBurstAndBatchFromTheLimit) {
  net::io_context ioc;
  redis_connection c(ioc.get_executor());
  redis_limiter limiter(c);
  shared_bucket token(limiter, ioc.get_executor(), {"t", 45, 50});
  EXPECT_EQ(token.hold(), 50ms);
  EXPECT_DOUBLE_EQ(token.redis_burst(), 50 - 45 * 0.05);
  EXPECT_EQ(token.max_batch(), 2u);
  shared_bucket account(limiter, ioc.get_executor(), {"a", 4.5, 5});
  EXPECT_EQ(account.max_batch(), 1u);
  EXPECT_DOUBLE_EQ(account.redis_burst(), 5 - 4.5 * 0.05);
  // No burst to spare: nothing is held, the script gets the whole burst.
  shared_bucket tight(limiter, ioc.get_executor(), {"x", 100, 1});
  EXPECT_EQ(tight.hold(), 0ms);
  EXPECT_DOUBLE_EQ(tight.redis_burst(), 1);
  EXPECT_EQ(tight.max_batch(), 1u);
  // A small burst caps the hold time: τ ≤ (b − 1)/(2r), half the spare burst.
  shared_bucket small(limiter, ioc.get_executor(), {"y", 100, 3});
  EXPECT_EQ(small.hold(), 10ms);
  EXPECT_DOUBLE_EQ(small.redis_burst(), 2);
  // AIMD lowers the rate: the batch follows.
  token.set_rate(10);
  EXPECT_EQ(token.max_batch(), 1u);
  // Unlimited: no Redis, no waiting, even unconnected.
  shared_bucket unlimited(limiter, ioc.get_executor(), {"u", 0, 1});
  EXPECT_FALSE(run(ioc, unlimited.take()));
  // Unconnected: an error, not a hang.
  EXPECT_EQ(run(ioc, token.take()), make_error_code(redis_errc::not_connected));
}

struct instance_run {
  std::vector<steady_clock::time_point> admitted;
  boost::system::error_code ec;
};

net::awaitable<void> take_until(shared_bucket* bucket, steady_clock::time_point end, instance_run* out) {
  for (;;) {
    const auto ec = co_await bucket->take();
    const auto now = steady_clock::now();
    if (ec) {
      out->ec = ec;
      co_return;
    }
    if (now >= end) co_return;
    out->admitted.push_back(now);
  }
}

// Three instances (connections, limiters, batching buckets) share one limit of
// 100/s with burst 10 for 3 s: together they never exceed b + r·W (the bucket's
// documented bound: slack 0), in the whole run and in every 1 s window, and
// they get at least 95 % of r·W.
TEST(RedisLimiter, ThreeInstancesShareOneLimit) {
  test::redis_server server;
  net::io_context ioc;
  constexpr double rate = 100, burst = 10;
  constexpr auto window = 3s;
  std::vector<std::unique_ptr<redis_connection>> conns;
  std::vector<std::unique_ptr<redis_limiter>> limiters;
  std::vector<std::unique_ptr<shared_bucket>> buckets;
  for (int i = 0; i < 3; ++i) {
    conns.push_back(std::make_unique<redis_connection>(ioc.get_executor()));
    limiters.push_back(std::make_unique<redis_limiter>(*conns.back()));
    buckets.push_back(std::make_unique<shared_bucket>(*limiters.back(), ioc.get_executor(),
                                                      shared_bucket_params{"shared-test", rate, burst}));
  }
  EXPECT_EQ(buckets[0]->max_batch(), 4u);  // ⌊r·τ⌋, τ = (b − 1)/(2r) = 45 ms
  EXPECT_DOUBLE_EQ(buckets[0]->redis_burst(), 5.5);  // b − r·τ
  std::vector<instance_run> runs(3);
  steady_clock::time_point start;
  run(ioc, [&]() -> net::awaitable<void> {
    for (auto& c : conns)
      if (!co_await connect_to(*c, server)) co_return;
    int finished = 0;
    steady_timer all_done(co_await net::this_coro::executor);
    all_done.expires_at(steady_timer::time_point::max());
    start = steady_clock::now();
    for (int i = 0; i < 3; ++i)
      net::co_spawn(co_await net::this_coro::executor, take_until(buckets[i].get(), start + window, &runs[i]),
                    [&](std::exception_ptr e) {
                      if (e) ADD_FAILURE() << "an instance threw";
                      if (++finished == 3) all_done.cancel();
                    });
    if (finished < 3) co_await all_done.async_wait();
  }());

  std::vector<steady_clock::time_point> all;
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(runs[i].ec) << runs[i].ec.message();
    EXPECT_GT(runs[i].admitted.size(), 0u) << "instance " << i << " got nothing";
    all.insert(all.end(), runs[i].admitted.begin(), runs[i].admitted.end());
  }
  std::sort(all.begin(), all.end());
  const double w = std::chrono::duration<double>(window).count();
  const double bound = burst + rate * w;
  EXPECT_LE(static_cast<double>(all.size()), bound);
  EXPECT_GE(static_cast<double>(all.size()), 0.95 * rate * w);
  // Every 1 s window: at most b + r·1.
  std::size_t j = 0, most = 0;
  for (std::size_t i = 0; i < all.size(); ++i) {
    while (all[i] - all[j] > 1s) ++j;
    most = std::max(most, i - j + 1);
  }
  EXPECT_LE(static_cast<double>(most), burst + rate * 1.0);
  std::uint64_t trips = 0, fetched = 0, wasted = 0;
  for (auto& b : buckets) {
    trips += b->round_trips();
    fetched += b->fetched();
    wasted += b->wasted();
  }
  std::cout << "[ shared  ] admitted " << all.size() << " in " << w << " s (bound " << bound << ", 95 % of r·W "
            << 0.95 * rate * w << "); per instance " << runs[0].admitted.size() << "/" << runs[1].admitted.size()
            << "/" << runs[2].admitted.size() << "; busiest 1 s window " << most << "; round trips " << trips
            << ", tokens fetched " << fetched << ", wasted " << wasted << "\n";
}

// --- the stream --------------------------------------------------------------

std::vector<std::string> ids_of(const std::vector<stream_entry>& entries) {
  std::vector<std::string> ids;
  for (const auto& e : entries) ids.push_back(e.id);
  return ids;
}

redis_stream_params stream_params(std::string consumer) {
  redis_stream_params p;
  p.stream = "test:jobs";
  p.group = "workers";
  p.consumer = std::move(consumer);
  p.dead_letter_stream = "test:dead";
  return p;
}

TEST(RedisStream, TwoConsumersGetDistinctEntriesAndAckEmptiesPending) {
  test::redis_server server;
  net::io_context ioc;
  redis_connection reader_a(ioc.get_executor()), reader_b(ioc.get_executor()), commands(ioc.get_executor());
  redis_stream a(reader_a, commands, stream_params("a"));
  redis_stream b(reader_b, commands, stream_params("b"));
  run(ioc, [&]() -> net::awaitable<void> {
    const std::array<redis_connection*, 3> all{&reader_a, &reader_b, &commands};
    for (auto* c : all)
      if (!co_await connect_to(*c, server)) co_return;
    // Jobs added before the group exists are read too (group created at 0).
    std::vector<std::string> jobs;
    for (int i = 0; i < 10; ++i) jobs.push_back("{\"id\":\"job-" + std::to_string(i) + "\"}");
    auto added = co_await a.add(jobs);
    EXPECT_TRUE(added.has_value()) << a.last_error();
    CO_ASSERT(added.has_value());
    EXPECT_FALSE(co_await a.ensure_group()) << a.last_error();
    EXPECT_FALSE(co_await b.ensure_group()) << b.last_error();  // BUSYGROUP is fine

    auto ra = co_await a.read(3, 100ms);
    EXPECT_TRUE(ra.has_value()) << a.last_error();
    CO_ASSERT(ra.has_value());
    auto rb = co_await b.read(100, 100ms);
    EXPECT_TRUE(rb.has_value()) << b.last_error();
    CO_ASSERT(rb.has_value());
    EXPECT_EQ(ra->size(), 3u);
    EXPECT_EQ(rb->size(), 7u);
    std::set<std::string> seen;
    for (const auto* part : {&*ra, &*rb})
      for (const auto& e : *part) {
        EXPECT_TRUE(seen.insert(e.id).second) << "delivered twice: " << e.id;
        EXPECT_EQ(e.deliveries, 1u);
        EXPECT_NE(e.job(), nullptr);
        CO_ASSERT((e.job()) != (nullptr));
      }
    EXPECT_EQ(seen.size(), 10u);
    EXPECT_EQ(*(*ra)[0].job(), jobs[0]);
    // Nothing new: an empty answer after the block time.
    const auto started = steady_clock::now();
    auto none = co_await a.read(10, 150ms);
    EXPECT_TRUE(none.has_value()) << a.last_error();
    CO_ASSERT(none.has_value());
    EXPECT_TRUE(none->empty());
    EXPECT_GE(steady_clock::now() - started, 140ms);

    auto pending = co_await a.pending_count();
    EXPECT_EQ(pending.value(), 10u);
    auto acked = co_await a.ack(ids_of(*ra));
    EXPECT_EQ(acked.value(), 3u);
    acked = co_await b.ack(ids_of(*rb));
    EXPECT_EQ(acked.value(), 7u);
    pending = co_await a.pending_count();
    EXPECT_EQ(pending.value(), 0u);

    // A blocking read wakes up as soon as a job arrives.
    std::optional<boost::system::result<std::vector<stream_entry>>> woke;
    steady_timer read_done(co_await net::this_coro::executor);
    read_done.expires_at(steady_timer::time_point::max());
    net::co_spawn(co_await net::this_coro::executor, [&]() -> net::awaitable<void> {
      woke = co_await a.read(10, 5000ms);
      read_done.cancel();
    }, report_exception);
    co_await sleep_for(100ms);
    const auto sent = steady_clock::now();
    auto one = co_await b.add(args("{\"id\":\"late\"}"));
    EXPECT_TRUE(one.has_value());
    if (!woke) co_await read_done.async_wait();  // (the read may have finished first)
    EXPECT_LT(steady_clock::now() - sent, 1s);
    CO_ASSERT(woke && woke->has_value());
    EXPECT_EQ((*woke)->size(), 1u);
    CO_ASSERT(((*woke)->size()) == (1u));
    EXPECT_EQ(*(**woke)[0].job(), "{\"id\":\"late\"}");
  }());
}

TEST(RedisStream, AutoclaimTakesOverADeadConsumerAndDeadLetters) {
  test::redis_server server;
  net::io_context ioc;
  redis_connection reader_dead(ioc.get_executor()), commands(ioc.get_executor());
  redis_connection reader_alive(ioc.get_executor()), reader_third(ioc.get_executor());
  redis_stream dead(reader_dead, commands, stream_params("dead-consumer"));
  redis_stream alive(reader_alive, commands, stream_params("alive"));
  redis_stream third(reader_third, commands, stream_params("third"));
  run(ioc, [&]() -> net::awaitable<void> {
    const std::array<redis_connection*, 4> all{&reader_dead, &reader_alive, &reader_third, &commands};
    for (auto* c : all)
      if (!co_await connect_to(*c, server)) co_return;
    EXPECT_FALSE(co_await alive.ensure_group());
    auto added = co_await alive.add(args("j1", "j2", "j3", "j4", "j5"));
    CO_ASSERT(added.has_value());
    // The dead consumer reads everything and never acks.
    auto taken = co_await dead.read(10, 100ms);
    CO_ASSERT(taken.has_value());
    EXPECT_EQ(taken->size(), 5u);
    reader_dead.close();

    // Not idle long enough yet: nothing to claim.
    auto early = co_await alive.claim_idle(300ms, 10);
    EXPECT_TRUE(early.has_value()) << alive.last_error();
    CO_ASSERT(early.has_value());
    EXPECT_TRUE(early->entries.empty());

    co_await sleep_for(350ms);
    auto claimed = co_await alive.claim_idle(300ms, 10);
    EXPECT_TRUE(claimed.has_value()) << alive.last_error();
    CO_ASSERT(claimed.has_value());
    EXPECT_EQ(claimed->entries.size(), 5u);
    CO_ASSERT((claimed->entries.size()) == (5u));
    EXPECT_EQ(claimed->next, "0-0");
    for (std::size_t i = 0; i < 5; ++i) {
      EXPECT_EQ(claimed->entries[i].id, (*added)[i]);
      EXPECT_NE(claimed->entries[i].job(), nullptr);
      CO_ASSERT((claimed->entries[i].job()) != (nullptr));
      EXPECT_EQ(*claimed->entries[i].job(), "j" + std::to_string(i + 1));
      EXPECT_EQ(claimed->entries[i].deliveries, 2u);
    }
    auto owned = co_await must(commands, args("XPENDING", "test:jobs", "workers", "-", "+", "10", "alive"));
    EXPECT_EQ(owned.elements.size(), 5u);

    // The claimer dies too: a third consumer takes over; the count goes on.
    co_await sleep_for(350ms);
    auto again = co_await third.claim_idle(300ms, 2);
    EXPECT_TRUE(again.has_value()) << third.last_error();
    CO_ASSERT(again.has_value());
    EXPECT_EQ(again->entries.size(), 2u);
    CO_ASSERT((again->entries.size()) == (2u));
    EXPECT_EQ(again->entries[0].deliveries, 3u);
    EXPECT_NE(again->next, "0-0");  // COUNT 2: more to scan
    auto rest = co_await third.claim_idle(300ms, 10, again->next);
    EXPECT_TRUE(rest.has_value()) << third.last_error();
    CO_ASSERT(rest.has_value());
    EXPECT_EQ(rest->entries.size(), 3u);

    // An entry deleted from the stream while pending is reported, not returned.
    co_await must(commands, args("XDEL", "test:jobs", (*added)[4]));
    co_await sleep_for(350ms);
    auto after_delete = co_await alive.claim_idle(300ms, 10);
    EXPECT_TRUE(after_delete.has_value()) << alive.last_error();
    CO_ASSERT(after_delete.has_value());
    EXPECT_EQ(after_delete->entries.size(), 4u);
    EXPECT_EQ(after_delete->deleted.size(), 1u);
    CO_ASSERT((after_delete->deleted.size()) == (1u));
    EXPECT_EQ(after_delete->deleted[0], (*added)[4]);

    // Too many deliveries: to the dead-letter stream, with the reason, and acked.
    auto victim = after_delete->entries[0];
    EXPECT_EQ(victim.deliveries, 4u);
    auto dl = co_await alive.dead_letter(victim, "delivered 4 times (max_deliveries 3)");
    EXPECT_TRUE(dl.has_value()) << alive.last_error();
    CO_ASSERT(dl.has_value());
    auto dead_entries = co_await must(commands, args("XRANGE", "test:dead", "-", "+"));
    EXPECT_EQ(dead_entries.elements.size(), 1u);
    CO_ASSERT((dead_entries.elements.size()) == (1u));
    stream_entry moved;
    const auto& fields = dead_entries.elements[0].elements[1].elements;
    for (std::size_t i = 0; i + 1 < fields.size(); i += 2) moved.fields.emplace_back(fields[i].str, fields[i + 1].str);
    EXPECT_NE(moved.job(), nullptr);
    CO_ASSERT((moved.job()) != (nullptr));
    EXPECT_EQ(*moved.job(), "j1");
    EXPECT_NE(moved.field("reason"), nullptr);
    CO_ASSERT((moved.field("reason")) != (nullptr));
    EXPECT_EQ(*moved.field("reason"), "delivered 4 times (max_deliveries 3)");
    EXPECT_EQ(*moved.field("id"), victim.id);
    EXPECT_EQ(*moved.field("deliveries"), "4");
    auto pending = co_await alive.pending_count();
    EXPECT_EQ(pending.value(), 3u);

    // The consumer's own pending entries, re-read after a reconnect.
    auto own = co_await alive.read_own_pending(10);
    EXPECT_TRUE(own.has_value()) << alive.last_error();
    CO_ASSERT(own.has_value());
    EXPECT_EQ(own->size(), 3u);
    for (const auto& e : *own) EXPECT_GE(e.deliveries, 4u) << e.id;
    for (const auto& e : *own) EXPECT_NE(e.job(), nullptr) << e.id;
    // Reading them back counts no delivery, and pages with `after`.
    auto first_two = co_await alive.read_own_pending(2);
    CO_ASSERT(first_two.has_value());
    EXPECT_EQ(first_two->size(), 2u);
    for (std::size_t i = 0; i < first_two->size(); ++i) {
      EXPECT_EQ((*first_two)[i].id, (*own)[i].id);
      EXPECT_EQ((*first_two)[i].deliveries, (*own)[i].deliveries) << "a read-back raised the delivery count";
    }
    auto the_rest = co_await alive.read_own_pending(10, first_two->back().id);
    CO_ASSERT(the_rest.has_value());
    EXPECT_EQ(the_rest->size(), 1u);
    // Touching keeps this consumer's entries, and never takes one another consumer holds.
    co_await must(commands, args("XADD", "test:jobs", "*", "job", "other's"));
    auto theirs = co_await must(commands, args("XREADGROUP", "GROUP", "workers", "other", "COUNT", "1", "STREAMS",
                                               "test:jobs", ">"));
    CO_ASSERT(theirs.is_array() && !theirs.elements.empty());
    const std::string their_id = theirs.elements[0].elements[1].elements[0].elements[0].str;
    std::vector<std::string> to_touch{own->front().id, their_id};
    auto kept = co_await alive.touch(std::move(to_touch));
    EXPECT_TRUE(kept.has_value()) << alive.last_error();
    CO_ASSERT(kept.has_value());
    EXPECT_EQ(*kept, std::vector<std::string>{own->front().id});
    auto owner = co_await must(commands, args("XPENDING", "test:jobs", "workers", their_id, their_id, "1"));
    CO_ASSERT(owner.is_array() && owner.elements.size() == 1u);
    EXPECT_EQ(owner.elements[0].elements[1].str, "other");
  }());
}

TEST(RedisStream, SubmitIsPipelined) {
  test::redis_server server;
  net::io_context ioc;
  redis_connection reader(ioc.get_executor()), commands(ioc.get_executor());
  redis_stream s(reader, commands, stream_params(""));
  EXPECT_EQ(s.params().consumer, default_consumer_name());
  EXPECT_NE(default_consumer_name().find("-" + std::to_string(::getpid())), std::string::npos);
  run(ioc, [&]() -> net::awaitable<void> {
    if (!co_await connect_to(commands, server)) co_return;
    std::vector<std::string> jobs;
    for (int i = 0; i < 1000; ++i) jobs.push_back("{\"n\":" + std::to_string(i) + "}");
    auto ids = co_await s.add(jobs);
    EXPECT_TRUE(ids.has_value()) << s.last_error();
    CO_ASSERT(ids.has_value());
    EXPECT_EQ(ids->size(), 1000u);
    CO_ASSERT((ids->size()) == (1000u));
    auto len = co_await must(commands, args("XLEN", "test:jobs"));
    EXPECT_EQ(len.integer, 1000);
    auto last = co_await must(commands, args("XREVRANGE", "test:jobs", "+", "-", "COUNT", "1"));
    EXPECT_EQ(last.elements.size(), 1u);
    CO_ASSERT((last.elements.size()) == (1u));
    EXPECT_EQ(last.elements[0].elements[0].str, ids->back());
    EXPECT_EQ(last.elements[0].elements[1].elements[1].str, "{\"n\":999}");
    // Without a connection: an error naming the step, not an exception.
    commands.close();
    auto failed = co_await s.add(args("x"));
    EXPECT_FALSE(failed.has_value());
    EXPECT_NE(s.last_error().find("XADD"), std::string::npos) << s.last_error();
  }());
}

}  // namespace
}  // namespace orgpatch

namespace orgpatch {
namespace {

// Consumers of instances long gone are removed; one with pending entries, and
// this instance itself, are kept.
TEST(RedisStream, ForgetsIdleConsumersWithNothingPending) {
  test::redis_server server;
  net::io_context ioc;
  redis_connection reader(ioc.get_executor()), commands(ioc.get_executor());
  redis_stream s(reader, commands, stream_params("me"));
  run(ioc, [&]() -> net::awaitable<void> {
    if (!co_await connect_to(commands, server)) co_return;
    EXPECT_FALSE(co_await s.ensure_group());
    co_await must(commands, args("XADD", "test:jobs", "*", "job", "{}"));
    // "busy" holds the entry; "gone" and "me" read nothing.
    co_await must(commands, args("XREADGROUP", "GROUP", "workers", "busy", "COUNT", "1", "STREAMS", "test:jobs", ">"));
    co_await must(commands, args("XGROUP", "CREATECONSUMER", "test:jobs", "workers", "gone"));
    co_await must(commands, args("XGROUP", "CREATECONSUMER", "test:jobs", "workers", "me"));
    auto removed = co_await s.forget_idle_consumers(std::chrono::milliseconds(0));
    EXPECT_TRUE(removed.has_value()) << s.last_error();
    CO_ASSERT(removed.has_value());
    EXPECT_EQ(*removed, 1u);
    auto left = co_await must(commands, args("XINFO", "CONSUMERS", "test:jobs", "workers"));
    std::set<std::string> names;
    for (const auto& c : left.elements) names.insert(c.elements[1].str);
    EXPECT_EQ(names, (std::set<std::string>{"busy", "me"}));
    // Not idle long enough: nobody is removed.
    co_await must(commands, args("XGROUP", "CREATECONSUMER", "test:jobs", "workers", "fresh"));
    auto none = co_await s.forget_idle_consumers(std::chrono::hours(1));
    CO_ASSERT(none.has_value());
    EXPECT_EQ(*none, 0u);
  }());
}

}  // namespace
}  // namespace orgpatch
