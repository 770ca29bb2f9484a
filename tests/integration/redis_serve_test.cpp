// `orgpatchd serve` on a Redis stream shared by several instances (DESIGN.md §6,
// §9), each a real process against a real redis-server and the emulator over
// TLS: every job done once, nothing left pending, a killed instance's jobs taken
// over, connections dropped and made again, poison entries dead-lettered, and
// one limit shared by three instances.
#include "emulator/cert.hpp"
#include "emulator/server.hpp"
#include "support/notify_socket.hpp"
#include "support/process.hpp"
#include "support/redis_server.hpp"
#include "support/test_util.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

namespace orgpatch {
namespace {

namespace emu = orgpatch::emulator;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::notify_socket;
using test::write_file;

constexpr const char* k_token = "redis-serve-token";

std::string redis_cli(const test::redis_server& redis, const std::vector<std::string>& args) {
  return redis.cli(args);
}

std::uint64_t redis_number(const test::redis_server& redis, const std::vector<std::string>& args) {
  const std::string out = redis_cli(redis, args);
  try {
    return std::stoull(out);
  } catch (const std::exception&) {
    ADD_FAILURE() << "redis-cli " << args.front() << ": " << out;
    return 0;
  }
}

// XPENDING stream group: the first line is the count.
std::uint64_t pending(const test::redis_server& redis) {
  const std::string out = redis_cli(redis, {"XPENDING", "orgpatch:jobs", "orgpatchd"});
  return out.empty() ? 0 : std::stoull(out.substr(0, out.find('\n')));
}

struct instance {
  std::string name;
  fs::path home;
  std::unique_ptr<notify_socket> notify;
  std::unique_ptr<test::child_with_stdin> child;

  fs::path results() const { return home / "stream.results.jsonl"; }
  fs::path log() const { return home / "err"; }
};

struct redis_setup {
  explicit redis_setup(emu::server_options o = {}) {
    cert = emu::write_self_signed_cert(dir.path() / "cert");
    o.port = 0;
    o.cert_file = cert.cert.string();
    o.key_file = cert.key.string();
    o.api.token = k_token;
    server = std::make_unique<emu::server>(o);
    server->start();
    write_file(dir.file("token"), k_token);
    fs::permissions(dir.file("token"), fs::perms::owner_read);
  }

  // The config of one instance; `extra` is added at the top level.
  std::string config_text(const fs::path& home, const std::string& rate_limit, const std::string& redis_extra) const {
    return "api: {base_url: \"" + server->base_url() + "\"}\n"
           "tls: {ca_file: \"" + cert.cert.string() + "\"}\n"
           "rate_limit: " + rate_limit + "\n"
           "http: {connections: 4}\n"
           "output: {fsync: none}\n"
           "shutdown_grace_s: 5\n"
           "serve: {spool_dir: \"" + (home / "spool").string() + "\", metrics_listen: \"127.0.0.1:0\", redis: {url: \"" + redis.url() + "\"" +
           redis_extra + "}}\n";
  }

  instance start(const std::string& name, const std::string& rate_limit = "{requests_per_second: 0, per_account_requests_per_second: 0}",
                 const std::string& redis_extra = "", const std::string& token_file = "") {
    instance in;
    in.name = name;
    in.home = dir.path() / name;
    fs::create_directories(in.home);
    write_file((in.home / "orgpatchd.yaml").string(), config_text(in.home, rate_limit, redis_extra));
    in.notify = std::make_unique<notify_socket>((in.home / "notify.sock").string());
    in.child = std::make_unique<test::child_with_stdin>(
        ORGPATCHD_BINARY,
        std::vector<std::string>{"serve", "--config", (in.home / "orgpatchd.yaml").string(), "--token-file",
                                 token_file.empty() ? dir.file("token") : token_file},
        std::map<std::string, std::string>{{"NOTIFY_SOCKET", in.notify->path()}}, (in.home / "out").string(),
        in.log().string());
    EXPECT_TRUE(in.notify->wait_for("READY=1", 10s)) << test::read_file(in.log().string());
    return in;
  }

  // Adds `count` jobs through `orgpatchd submit` (one organization each, over 10 accounts).
  void submit(std::size_t count, std::uint32_t kind, const std::string& config) {
    std::string text;
    for (std::size_t i = 0; i < count; ++i) {
      boost::json::object o;
      o["id"] = test::test_uuid(kind, i + 1);
      o["integrated_account_id"] = test::test_uuid(0xacc5, i % 10);
      o["body"] = boost::json::object{{"name", "n" + std::to_string(i)}};
      text += boost::json::serialize(o) + "\n";
    }
    const std::string file = dir.file("jobs-" + std::to_string(kind) + ".jsonl");
    write_file(file, text);
    const auto r = test::run_process(ORGPATCHD_BINARY, {"submit", file, "--config", config});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("added " + std::to_string(count) + " job(s)"), std::string::npos) << r.out;
  }

  // entry id → how many result lines name it, over the instances' results files.
  static std::map<std::string, std::size_t> lines_by_entry(const std::vector<const instance*>& instances,
                                                           std::map<std::string, std::size_t>* per_instance = nullptr) {
    std::map<std::string, std::size_t> out;
    for (const instance* in : instances) {
      if (!fs::exists(in->results())) continue;
      const auto all = test::read_lines(in->results().string());
      for (std::size_t i = 0; i < all.size(); ++i) {
        const auto& line = all[i];
        boost::system::error_code ec;
        const auto parsed = boost::json::parse(line, ec);
        if (ec || !parsed.is_object()) {
          // The last line may be caught half written while the instance runs.
          if (i + 1 != all.size()) ADD_FAILURE() << in->results() << ": not JSON: " << line;
          continue;
        }
        const auto& v = parsed.as_object();
        if (v.contains("orgpatchd")) continue;  // the header
        EXPECT_EQ(v.at("outcome").as_string(), "ok") << line;
        ++out[std::string(v.at("entry").as_string())];
        if (per_instance) ++(*per_instance)[in->name];
      }
    }
    return out;
  }

  // Waits until `count` entries have a line and nothing is pending.
  bool wait_all_done(const std::vector<const instance*>& instances, std::size_t count, std::chrono::seconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    for (;;) {
      if (lines_by_entry(instances).size() >= count && pending(redis) == 0) return true;
      if (std::chrono::steady_clock::now() > end) return false;
      std::this_thread::sleep_for(100ms);
    }
  }

  // The finished jobs' count and the seconds from the first finished_at to the
  // last, over the instances' results files (lines per instance in `per_instance`).
  static std::pair<std::size_t, double> finished_span(const std::vector<const instance*>& instances,
                                                      std::map<std::string, std::size_t>* per_instance = nullptr) {
    std::vector<std::string> stamps;
    for (const instance* in : instances)
      for (const auto& line : test::read_lines(in->results().string())) {
        const auto v = boost::json::parse(line).as_object();
        if (!v.contains("finished_at")) continue;
        stamps.emplace_back(v.at("finished_at").as_string());
        if (per_instance) ++(*per_instance)[in->name];
      }
    if (stamps.size() < 2) return {stamps.size(), 0.0};
    std::sort(stamps.begin(), stamps.end());
    const auto seconds = [](const std::string& t) {  // 2026-11-26T20:41:07.123Z → seconds of the day
      return std::stoi(t.substr(11, 2)) * 3600.0 + std::stoi(t.substr(14, 2)) * 60.0 + std::stod(t.substr(17, 6));
    };
    double span = seconds(stamps.back()) - seconds(stamps.front());
    if (span < 0) span += 86400;
    return {stamps.size(), span};
  }

  static std::string logs(const std::vector<const instance*>& instances) {
    std::string all;
    for (const instance* in : instances) all += "--- " + in->name + "\n" + test::read_file(in->log().string());
    return all;
  }

  static void stop(instance& in) {
    in.child->signal(SIGTERM);
    EXPECT_EQ(in.child->wait(), 0) << test::read_file(in.log().string());
    EXPECT_TRUE(in.notify->wait_for("STOPPING=1", 1s));
  }

  test::temp_dir dir;
  test::redis_server redis;
  emu::cert_paths cert;
  std::unique_ptr<emu::server> server;
};

TEST(RedisServeTest, TwoInstancesDoEveryJobOnceAndLeaveNothingPending) {
  redis_setup s;
  // Paced (shared through Redis) so that the work spreads over both.
  instance a = s.start("a", "{requests_per_second: 400, burst: 10, per_account_requests_per_second: 0}",
                       ", results_stream: \"orgpatch:results\"");
  instance b = s.start("b", "{requests_per_second: 400, burst: 10, per_account_requests_per_second: 0}",
                       ", results_stream: \"orgpatch:results\"");
  constexpr std::size_t n = 1200;
  s.submit(n, 0xd1, (a.home / "orgpatchd.yaml").string());
  ASSERT_TRUE(s.wait_all_done({&a, &b}, n, 60s)) << redis_setup::logs({&a, &b});

  std::map<std::string, std::size_t> per_instance;
  const auto lines = redis_setup::lines_by_entry({&a, &b}, &per_instance);
  EXPECT_EQ(lines.size(), n);
  for (const auto& [entry, count] : lines) EXPECT_EQ(count, 1u) << entry;
  EXPECT_GT(per_instance["a"], 0u) << "instance a did no work";
  EXPECT_GT(per_instance["b"], 0u) << "instance b did no work";
  EXPECT_EQ(pending(s.redis), 0u);
  EXPECT_EQ(redis_number(s.redis, {"XLEN", "orgpatch:results"}), n);  // each result published once
  const auto st = s.server->stats_snapshot(false);
  EXPECT_EQ(st.applied, n);
  EXPECT_EQ(st.max_applies_per_org, 1u);
  EXPECT_EQ(st.max_requests_per_org, 1u);
  redis_setup::stop(a);
  redis_setup::stop(b);
}

TEST(RedisServeTest, AKilledInstancesJobsAreTakenOverByTheOther) {
  redis_setup s;
  const std::string limits = "{requests_per_second: 300, burst: 10, per_account_requests_per_second: 0}";
  instance a = s.start("a", limits, ", claim_idle_ms: 1000");
  instance b = s.start("b", limits, ", claim_idle_ms: 1000");
  constexpr std::size_t n = 1500;
  s.submit(n, 0xd2, (a.home / "orgpatchd.yaml").string());
  // Kill a mid-run, once it has finished some jobs: what it held is pending for a dead consumer.
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (redis_setup::lines_by_entry({&a}).size() < 100 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(20ms);
  a.child->signal(SIGKILL);
  a.child->wait();
  const std::size_t a_done = redis_setup::lines_by_entry({&a}).size();
  ASSERT_GE(a_done, 100u) << redis_setup::logs({&a, &b});
  ASSERT_LT(a_done, n);

  ASSERT_TRUE(s.wait_all_done({&a, &b}, n, 60s)) << redis_setup::logs({&a, &b});
  const auto lines = redis_setup::lines_by_entry({&a, &b});
  EXPECT_EQ(lines.size(), n);  // every job has its line
  std::size_t twice = 0;
  for (const auto& [entry, count] : lines) twice += count > 1;
  // Only what a had in hand (written, not yet acknowledged) may have run twice.
  EXPECT_LE(twice, 64u);
  EXPECT_NE(test::read_file(b.log().string()).find("took over entry"), std::string::npos);
  const auto st = s.server->stats_snapshot(false);
  EXPECT_EQ(st.applied, n);                           // applied once each, whoever sent it
  EXPECT_EQ(st.max_applies_per_org, 1u);
  EXPECT_EQ(st.max_idempotency_keys_per_org, 1u);     // both hosts sent the same key
  redis_setup::stop(b);
}

TEST(RedisServeTest, DroppedConnectionsAreMadeAgainWithoutLosingAcknowledgements) {
  redis_setup s;
  instance a = s.start("a", "{requests_per_second: 300, burst: 10, per_account_requests_per_second: 0}");
  constexpr std::size_t n = 900;
  s.submit(n, 0xd3, (a.home / "orgpatchd.yaml").string());
  // Redis drops every client connection, three times during the run.
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(700ms);
    redis_cli(s.redis, {"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"});
  }
  ASSERT_TRUE(s.wait_all_done({&a}, n, 60s)) << redis_setup::logs({&a});
  const auto lines = redis_setup::lines_by_entry({&a});
  EXPECT_EQ(lines.size(), n);
  for (const auto& [entry, count] : lines) EXPECT_EQ(count, 1u) << entry;
  EXPECT_NE(test::read_file(a.log().string()).find("connected again"), std::string::npos)
      << test::read_file(a.log().string());
  EXPECT_EQ(s.server->stats_snapshot(false).max_requests_per_org, 1u);  // nothing sent twice
  // Reading back its own pending entries after each reconnection counted no delivery.
  EXPECT_EQ(redis_number(s.redis, {"XLEN", "orgpatch:dead"}), 0u);
  redis_setup::stop(a);
}

// logrotate then SIGHUP mid-run: the results continue in a new file (with its
// header), the stream's run starts again with the config read again, and every
// job still gets exactly one line.
TEST(RedisServeTest, ReloadMidRunReopensTheResultsAndLosesNoJob) {
  redis_setup s;
  instance a = s.start("a", "{requests_per_second: 300, burst: 10, per_account_requests_per_second: 0}");
  constexpr std::size_t n = 900;
  s.submit(n, 0xd6, (a.home / "orgpatchd.yaml").string());
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (redis_setup::lines_by_entry({&a}).size() < 150 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(20ms);
  const fs::path rotated = a.home / "stream.results.jsonl.1";
  fs::rename(a.results(), rotated);
  a.child->signal(SIGHUP);
  ASSERT_TRUE(a.notify->wait_for("RELOADING=1", 5s));
  ASSERT_TRUE(s.wait_all_done({&a}, 1, 30s));  // pending 0 once all is done; lines counted below
  const auto end = std::chrono::steady_clock::now() + 30s;
  std::map<std::string, std::size_t> lines;
  for (;;) {
    lines.clear();
    for (const fs::path& f : {rotated, a.results()})
      if (fs::exists(f))
        for (const auto& line : test::read_lines(f.string())) {
          boost::system::error_code ec;
          const auto v = boost::json::parse(line, ec);
          if (!ec && v.is_object() && v.as_object().contains("entry"))
            ++lines[std::string(v.as_object().at("entry").as_string())];
        }
    if ((lines.size() == n && pending(s.redis) == 0) || std::chrono::steady_clock::now() > end) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(lines.size(), n) << redis_setup::logs({&a});
  for (const auto& [entry, count] : lines) EXPECT_EQ(count, 1u) << entry;
  const auto fresh = test::read_lines(a.results().string());
  ASSERT_FALSE(fresh.empty());
  EXPECT_NE(fresh.front().find("\"orgpatchd\""), std::string::npos) << "the new file starts with a header";
  EXPECT_GT(fresh.size(), 1u);
  EXPECT_NE(test::read_file(a.log().string()).find("starts again"), std::string::npos);
  EXPECT_EQ(s.server->stats_snapshot(false).max_requests_per_org, 1u);  // the restart sent nothing twice
  redis_setup::stop(a);
}

// An instance whose runs fail (the API refuses its token) lets go of what it
// took: the healthy instance takes it over once idle and does every job.
TEST(RedisServeTest, AnInstanceThatCannotRunLetsTheOthersTakeItsJobs) {
  redis_setup s;
  write_file(s.dir.file("wrong-token"), "not-the-token");
  fs::permissions(s.dir.file("wrong-token"), fs::perms::owner_read);
  const std::string unlimited = "{requests_per_second: 0, per_account_requests_per_second: 0}";
  instance bad = s.start("bad", unlimited, ", claim_idle_ms: 500", s.dir.file("wrong-token"));
  constexpr std::size_t n = 300;
  s.submit(n, 0xd7, (bad.home / "orgpatchd.yaml").string());
  // It read entries and failed on them before the healthy one starts.
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (test::read_file(bad.log().string()).find("trying again") == std::string::npos &&
         std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(20ms);
  ASSERT_NE(test::read_file(bad.log().string()).find("trying again"), std::string::npos)
      << test::read_file(bad.log().string());
  instance good = s.start("good", unlimited, ", claim_idle_ms: 500");
  ASSERT_TRUE(s.wait_all_done({&good}, n, 30s)) << redis_setup::logs({&bad, &good});
  std::map<std::string, std::size_t> per_instance;
  const auto lines = redis_setup::lines_by_entry({&bad, &good}, &per_instance);
  EXPECT_EQ(lines.size(), n);
  EXPECT_EQ(per_instance["bad"], 0u);
  EXPECT_EQ(per_instance["good"], n);
  redis_setup::stop(bad);
  redis_setup::stop(good);
}

TEST(RedisServeTest, AnEntryDeliveredTooOftenGoesToTheDeadLetterStream) {
  redis_setup s;
  // An entry a consumer took and never acknowledged (it died), already delivered once.
  redis_cli(s.redis, {"XGROUP", "CREATE", "orgpatch:jobs", "orgpatchd", "0", "MKSTREAM"});
  const std::string job = R"({"id":")" + test::test_uuid(0xd4, 1) + R"(","integrated_account_id":")" +
                          test::test_uuid(0xacc5, 1) + R"(","body":{}})";
  const std::string id = redis_cli(s.redis, {"XADD", "orgpatch:jobs", "*", "job", job});
  redis_cli(s.redis, {"XREADGROUP", "GROUP", "orgpatchd", "ghost", "COUNT", "1", "STREAMS", "orgpatch:jobs", ">"});
  instance a = s.start("a", "{requests_per_second: 0, per_account_requests_per_second: 0}",
                       ", max_deliveries: 1, claim_idle_ms: 300");
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (redis_number(s.redis, {"XLEN", "orgpatch:dead"}) == 0 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(50ms);
  const std::string dead = redis_cli(s.redis, {"XRANGE", "orgpatch:dead", "-", "+"});
  EXPECT_NE(dead.find("delivered 2 times"), std::string::npos) << dead << redis_setup::logs({&a});
  EXPECT_NE(dead.find(id), std::string::npos) << dead;
  EXPECT_NE(dead.find(job), std::string::npos) << dead;
  std::this_thread::sleep_for(1s);  // several take-over scans later
  EXPECT_EQ(redis_number(s.redis, {"XLEN", "orgpatch:dead"}), 1u);  // once, not once per scan
  EXPECT_EQ(pending(s.redis), 0u);
  EXPECT_EQ(s.server->stats_snapshot(false).requests, 0u);  // never sent
  redis_setup::stop(a);
}

TEST(RedisServeTest, SubmitRefusesAFileWithABrokenLineAndAddsNothing) {
  redis_setup s;
  fs::create_directories(s.dir.path() / "c");
  write_file(s.dir.file("c.yaml"), s.config_text(s.dir.path() / "c", "{requests_per_second: 0}", ""));
  write_file(s.dir.file("broken.jsonl"),
             R"({"id":"x","integrated_account_id":")" + test::test_uuid(1, 1) + R"(","body":{}})" "\n"
             R"({"id":"y","integrated_account_id":"not-a-uuid","body":{}})" "\n");
  const auto r = test::run_process(ORGPATCHD_BINARY, {"submit", s.dir.file("broken.jsonl"), "--config", s.dir.file("c.yaml")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("broken.jsonl:2: integrated_account_id"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nothing was added"), std::string::npos) << r.err;
  EXPECT_EQ(redis_number(s.redis, {"XLEN", "orgpatch:jobs"}), 0u);
}

// Three instances, one token limit of 100 requests per second (burst 5) shared
// through Redis: together within 2 % of it, and never over what such a bucket
// admits (b + r·W = 105 in any 1 s window, which the emulator enforces).
TEST(RedisServeTest, ThreeInstancesShareOneLimit) {
  emu::server_options o;
  o.api.rate_limit.enabled = true;
  o.api.rate_limit.token = {105, 1000ms};
  o.api.rate_limit.account = {1000000, 1000ms};
  redis_setup s(o);
  const std::string limits = "{requests_per_second: 100, burst: 5, per_account_requests_per_second: 0}";
  instance a = s.start("a", limits);
  instance b = s.start("b", limits);
  instance c = s.start("c", limits);
  constexpr std::size_t n = 1000;
  s.submit(n, 0xd5, (a.home / "orgpatchd.yaml").string());
  ASSERT_TRUE(s.wait_all_done({&a, &b, &c}, n, 60s)) << redis_setup::logs({&a, &b, &c});

  // The combined rate from the first to the last finished request.
  std::map<std::string, std::size_t> per_instance;
  const auto [finished, span] = redis_setup::finished_span({&a, &b, &c}, &per_instance);
  ASSERT_EQ(finished, n);
  const double rate = static_cast<double>(n - 1) / span;
  std::printf("three instances under one shared limit of 100/s: %.2f requests/s (a %zu, b %zu, c %zu)\n", rate,
              per_instance["a"], per_instance["b"], per_instance["c"]);
  const auto st = s.server->stats_snapshot(false);
  EXPECT_EQ(st.over_limit, 0u) << "a request went over the shared limit";
  EXPECT_GE(rate, 98.0);
  EXPECT_LE(rate, 102.0);
  for (const char* name : {"a", "b", "c"}) EXPECT_GT(per_instance[name], 0u) << name;
  redis_setup::stop(a);
  redis_setup::stop(b);
  redis_setup::stop(c);
}

// Each account's limit shared too: two instances, ten accounts at 20 requests/s
// (burst 2) each, against an emulator that allows b + r·W = 22 per account in
// any 1 s window: never over, and each account near its rate. Jobs of an account
// whose shared budget is being waited for step aside instead of holding the
// connections.
TEST(RedisServeTest, TwoInstancesShareEachAccountsLimit) {
  emu::server_options o;
  o.api.rate_limit.enabled = true;
  o.api.rate_limit.token = {1000000, 1000ms};
  o.api.rate_limit.account = {22, 1000ms};
  redis_setup s(o);
  const std::string limits = "{requests_per_second: 0, per_account_requests_per_second: 20, per_account_burst: 2}";
  instance a = s.start("a", limits);
  instance b = s.start("b", limits);
  constexpr std::size_t n = 400;  // test_uuid(0xacc5, i % 10): 10 accounts, 40 jobs each
  s.submit(n, 0xd8, (a.home / "orgpatchd.yaml").string());
  ASSERT_TRUE(s.wait_all_done({&a, &b}, n, 60s)) << redis_setup::logs({&a, &b});
  const auto [finished, span] = redis_setup::finished_span({&a, &b});
  ASSERT_EQ(finished, n);
  // 40 jobs per account at 20/s after a burst of 2: about 1.9 s whatever the split.
  std::printf("ten accounts at a shared 20/s each over two instances: %.2f s for %zu jobs\n", span, n);
  const auto st = s.server->stats_snapshot(false);
  EXPECT_EQ(st.over_limit, 0u) << "an account went over its shared limit";
  EXPECT_GE(span, 1.7);
  EXPECT_LE(span, 3.0);
  redis_setup::stop(a);
  redis_setup::stop(b);
}

}  // namespace
}  // namespace orgpatch
