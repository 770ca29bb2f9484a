// /metrics as Prometheus sees it: `orgpatchd run --metrics-listen` scraped while
// it runs, `orgpatchd serve` scraped across several spool files, each scrape
// checked by `promtool check metrics` (scripts/setup.sh installs the
// `prometheus` package for it; a missing promtool fails the test).
#include "emulator/cert.hpp"
#include "emulator/server.hpp"
#include "support/notify_socket.hpp"
#include "support/process.hpp"
#include "support/test_util.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <functional>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>
#include <vector>

namespace orgpatch {
namespace {

namespace emu = orgpatch::emulator;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::temp_dir;
using test::write_file;

constexpr const char* k_token = "metrics-token-never-shown";

struct http_reply {
  unsigned status = 0;
  std::string headers;  // lower-cased
  std::string body;
};

// One request on its own connection (Connection: close), read to the end;
// nullopt when nothing listens.
std::optional<http_reply> http_request(std::uint16_t port, const std::string& method, const std::string& target) {
  namespace net = boost::asio;
  net::io_context io;
  net::ip::tcp::socket socket(io);
  boost::system::error_code ec;
  socket.connect({net::ip::make_address("127.0.0.1"), port}, ec);
  if (ec) return std::nullopt;
  const std::string request =
      method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
  net::write(socket, net::buffer(request), ec);
  std::string raw;
  net::read(socket, net::dynamic_buffer(raw), ec);  // to end of stream
  const auto head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos || raw.size() < 12) return std::nullopt;
  http_reply r;
  r.status = static_cast<unsigned>(std::stoul(raw.substr(9, 3)));
  r.headers = raw.substr(0, head_end);
  for (auto& c : r.headers) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  r.body = raw.substr(head_end + 4);
  return r;
}

// The value of the sample line `name` (with its labels, as written), or nullopt.
std::optional<double> sample(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.size() > name.size() && line.compare(0, name.size(), name) == 0 && line[name.size()] == ' ')
      return std::stod(line.substr(name.size() + 1));
  return std::nullopt;
}

// The port orgpatchd logged in "metrics: http://127.0.0.1:PORT/metrics".
std::uint16_t wait_for_metrics_port(const std::string& log_file, std::chrono::milliseconds limit) {
  static const std::regex re(R"(metrics: http://127\.0\.0\.1:(\d+)/metrics)");
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    std::smatch m;
    const std::string log = test::read_file(log_file);
    if (std::regex_search(log, m, re)) return static_cast<std::uint16_t>(std::stoul(m[1].str()));
    std::this_thread::sleep_for(20ms);
  }
  return 0;
}

// `promtool check metrics` on the text: its exit status and what it said.
test::process_result promtool_check(const temp_dir& dir, const std::string& text) {
  const std::string file = dir.file("scrape.txt");
  write_file(file, text);
  return test::run_process("/bin/sh", {"-c", "promtool check metrics < \"$0\"", file});
}

void expect_promtool_accepts(const temp_dir& dir, const std::string& text) {
  const auto r = promtool_check(dir, text);
  ASSERT_NE(r.exit_code, 127) << "promtool not found: scripts/setup.sh installs it (Debian package prometheus)";
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err << "\n" << text;
}

// Jobs for the accounts given, one line each: account index → test_uuid(0xacc7, index).
std::string jobs_for_accounts(const std::vector<unsigned>& accounts, std::uint32_t kind) {
  std::string text;
  for (std::size_t i = 0; i < accounts.size(); ++i) {
    boost::json::object o;
    o["id"] = test::test_uuid(kind, i + 1);
    o["integrated_account_id"] = test::test_uuid(0xacc7, accounts[i]);
    o["body"] = boost::json::object{{"name", "m" + std::to_string(i)}};
    text += boost::json::serialize(o) + "\n";
  }
  return text;
}

struct emulator_setup {
  explicit emulator_setup(double latency_ms = 0, const std::function<void(emu::server_options&)>& tweak = {}) {
    cert = emu::write_self_signed_cert(dir.path() / "cert");
    emu::server_options o;
    o.port = 0;
    o.cert_file = cert.cert.string();
    o.key_file = cert.key.string();
    o.api.token = k_token;
    if (latency_ms > 0) {
      // Every answer a little late: the run lasts long enough to be scraped.
      o.api.faults.latency.probability = 1;
      o.api.faults.latency.kind = emu::latency_fault::distribution::fixed;
      o.api.faults.latency.fixed_ms = latency_ms;
    }
    if (tweak) tweak(o);
    server = std::make_unique<emu::server>(o);
    server->start();
    write_file(dir.file("token"), k_token);
    fs::permissions(dir.file("token"), fs::perms::owner_read | fs::perms::owner_write);
  }
  // `count` jobs over 4 accounts in turn.
  std::string jobs_text(std::size_t count, std::uint32_t kind) const {
    std::vector<unsigned> accounts;
    for (std::size_t i = 0; i < count; ++i) accounts.push_back(static_cast<unsigned>(i % 4));
    return jobs_for_accounts(accounts, kind);
  }

  std::vector<std::string> run_args(const std::string& input, const std::string& listen) const {
    return {"run",          input,      "--base-url", server->base_url(), "--ca-file",       cert.cert.string(),
            "--token-file", dir.file("token"), "--rate", "0",             "--account-rate", "0",
            "--connections", "2",       "--metrics-listen", listen};
  }

  temp_dir dir;
  emu::cert_paths cert;
  std::unique_ptr<emu::server> server;
};

TEST(MetricsEndpointTest, RunServesMetricsWhileItRuns) {
  emulator_setup s(100);  // 60 jobs, 2 at a time, 100 ms each: about 3 s
  write_file(s.dir.file("u.jsonl"), s.jobs_text(60, 0xd1));
  test::child_with_stdin child(ORGPATCHD_BINARY, s.run_args(s.dir.file("u.jsonl"), "127.0.0.1:0"), {},
                               s.dir.file("out"), s.dir.file("err"));
  const std::uint16_t port = wait_for_metrics_port(s.dir.file("err"), 10s);
  ASSERT_NE(port, 0) << test::read_file(s.dir.file("err"));

  // Scraped until a scrape shows requests in flight and some jobs done.
  std::string text;
  bool busy_seen = false;
  for (int i = 0; i < 50 && !busy_seen; ++i) {
    const auto r = http_request(port, "GET", "/metrics");
    ASSERT_TRUE(r) << "the run ended before it could be scraped: " << test::read_file(s.dir.file("err"));
    ASSERT_EQ(r->status, 200u) << r->body;
    EXPECT_NE(r->headers.find("content-type: text/plain; version=0.0.4"), std::string::npos) << r->headers;
    text = r->body;
    busy_seen = sample(text, "orgpatchd_in_flight").value_or(0) >= 1 &&
                sample(text, "orgpatchd_jobs_total{outcome=\"ok\"}").value_or(0) >= 1;
    if (!busy_seen) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(busy_seen) << text;
  EXPECT_EQ(sample(text, "orgpatchd_build_info{version=\"" ORGPATCH_VERSION "\"}"), 1.0) << text;
  EXPECT_LE(sample(text, "orgpatchd_in_flight").value_or(99), 2.0);
  EXPECT_GE(sample(text, "orgpatchd_requests_total{status=\"200\"}").value_or(0), 1.0) << text;
  EXPECT_EQ(sample(text, "orgpatchd_request_duration_seconds_bucket{le=\"0.05\"}"), 0.0) << text;  // all ≥ 100 ms
  EXPECT_EQ(sample(text, "orgpatchd_request_duration_seconds_bucket{le=\"+Inf\"}"),
            sample(text, "orgpatchd_request_duration_seconds_count"));
  EXPECT_EQ(text.find(k_token), std::string::npos);
  expect_promtool_accepts(s.dir, text);

  // Another path, another method.
  const auto other = http_request(port, "GET", "/");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404u);
  const auto post = http_request(port, "POST", "/metrics");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405u);

  EXPECT_EQ(child.wait(), 0) << test::read_file(s.dir.file("err"));
  EXPECT_EQ(s.server->stats_snapshot(false).applied, 60u);
  // The run is over: nothing listens any more.
  EXPECT_FALSE(http_request(port, "GET", "/metrics"));
}

TEST(MetricsEndpointTest, RunWithThePortInUseExitsOneBeforeSendingAnything) {
  emulator_setup s;
  write_file(s.dir.file("u.jsonl"), s.jobs_text(5, 0xd2));
  // The emulator's own port is taken.
  const std::string taken = "127.0.0.1:" + std::to_string(s.server->port());
  const auto r = test::run_process(ORGPATCHD_BINARY, s.run_args(s.dir.file("u.jsonl"), taken));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--metrics-listen " + taken), std::string::npos) << r.err;
  EXPECT_EQ(s.server->stats_snapshot(false).requests, 0u);
  EXPECT_FALSE(fs::exists(s.dir.file("u.results.jsonl")));
  const auto bad = test::run_process(ORGPATCHD_BINARY, s.run_args(s.dir.file("u.jsonl"), "localhost"));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("not HOST:PORT"), std::string::npos) << bad.err;
}

struct serve_setup : emulator_setup {
  explicit serve_setup(const std::string& metrics_listen,
                       const std::function<void(emu::server_options&)>& tweak = {})
      : emulator_setup(0, tweak) {
    spool = dir.path() / "spool";
    write_file(dir.file("orgpatchd.yaml"),
               "api: {base_url: \"" + server->base_url() + "\"}\n"
               "tls: {ca_file: \"" + cert.cert.string() + "\"}\n"
               "rate_limit: {requests_per_second: 0, per_account_requests_per_second: 0}\n"
               "http: {connections: 4}\n"
               "output: {fsync: none}\n"
               "shutdown_grace_s: 5\n"
               "serve: {spool_dir: \"" + spool.string() + "\", metrics_listen: \"" + metrics_listen + "\"}\n");
  }
  std::vector<std::string> args() const {
    return {"serve", "--config", dir.file("orgpatchd.yaml"), "--token-file", dir.file("token")};
  }
  fs::path spool;
};

// `orgpatchd serve` started on a serve_setup, with the socket it notifies.
struct serve_process {
  explicit serve_process(const serve_setup& s)
      : notify(s.dir.file("notify.sock")),
        child(ORGPATCHD_BINARY, s.args(), {{"NOTIFY_SOCKET", notify.path()}}, s.dir.file("out"), s.dir.file("err")) {}
  test::notify_socket notify;
  test::child_with_stdin child;
};

// Waits for READY=1 and the port serve logged for /metrics; 0 (with a failure
// recorded) when either does not come.
std::uint16_t ready_metrics_port(const serve_setup& s, serve_process& p) {
  if (!p.notify.wait_for("READY=1", 10s)) {
    ADD_FAILURE() << "no READY=1: " << test::read_file(s.dir.file("err"));
    return 0;
  }
  const std::uint16_t port = wait_for_metrics_port(s.dir.file("err"), 5s);
  if (port == 0) ADD_FAILURE() << "no metrics port: " << test::read_file(s.dir.file("err"));
  return port;
}

// Scrapes until every file of `done` exists and `ok` jobs are counted ok (or
// 30 s pass); the last scrape.
std::string scrape_when_done(std::uint16_t port, const std::vector<fs::path>& done, double ok) {
  std::string text;
  const auto end = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < end) {
    const auto r = http_request(port, "GET", "/metrics");
    if (!r) {
      ADD_FAILURE() << "GET /metrics failed";
      break;
    }
    text = r->body;
    const bool all_done = std::all_of(done.begin(), done.end(), [](const fs::path& f) { return fs::exists(f); });
    if (all_done && sample(text, "orgpatchd_jobs_total{outcome=\"ok\"}") == ok) break;
    std::this_thread::sleep_for(50ms);
  }
  return text;
}

TEST(MetricsEndpointTest, ServeCountersAddUpOverEveryFileItRan) {
  serve_setup s("127.0.0.1:0");
  fs::create_directories(s.spool / "incoming");
  write_file((s.spool / "incoming" / "a.jsonl").string(), s.jobs_text(30, 0xe1));
  write_file((s.spool / "incoming" / "b.jsonl").string(), s.jobs_text(20, 0xe2) + "{\"id\":\"broken\"}\n");
  serve_process p(s);
  const std::uint16_t port = ready_metrics_port(s, p);
  ASSERT_NE(port, 0);

  // Both files done (each its own run): the counters hold both.
  const std::string text = scrape_when_done(port, {s.spool / "done" / "a.jsonl", s.spool / "done" / "b.jsonl"}, 50);
  EXPECT_EQ(sample(text, "orgpatchd_jobs_total{outcome=\"ok\"}"), 50.0) << text;
  EXPECT_EQ(sample(text, "orgpatchd_jobs_total{outcome=\"invalid\"}"), 1.0) << text;
  EXPECT_EQ(sample(text, "orgpatchd_jobs_total{outcome=\"failed\"}"), 0.0) << text;
  EXPECT_EQ(sample(text, "orgpatchd_requests_total{status=\"200\"}"), 50.0) << text;
  EXPECT_EQ(sample(text, "orgpatchd_request_duration_seconds_count"), 50.0) << text;
  EXPECT_EQ(sample(text, "orgpatchd_in_flight"), 0.0) << text;
  EXPECT_GE(sample(text, "orgpatchd_connections_opened_total").value_or(0), 2.0) << text;  // one run per file
  EXPECT_EQ(sample(text, "orgpatchd_build_info{version=\"" ORGPATCH_VERSION "\"}"), 1.0) << text;
  expect_promtool_accepts(s.dir, text);
  const auto other = http_request(port, "GET", "/health");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 404u);

  p.child.signal(SIGTERM);
  EXPECT_EQ(p.child.wait(), 0) << test::read_file(s.dir.file("err"));
}


// End to end, the limit each 429 is put down to: Truto's 429s for one account
// alone are that account's limit; 429s for several accounts within a second
// are taken for the token's (Truto's body does not say which limit answered).
TEST(MetricsEndpointTest, ServeCounts429sByTheLimitTheyArePutDownTo) {
  serve_setup s("127.0.0.1:0", [](emu::server_options& o) {
    o.api.rate_limit.enabled = true;
    o.api.rate_limit.token = {1000, 1000ms};
    o.api.rate_limit.account = {2, 1000ms};
    o.api.rate_limit.retry_after = 1s;
  });
  fs::create_directories(s.spool / "incoming");
  serve_process p(s);
  const std::uint16_t port = ready_metrics_port(s, p);
  ASSERT_NE(port, 0);

  // Five updates of one account, sent at once (no local limits): past its two a
  // second, the emulator answers 429.
  write_file((s.spool / "incoming" / "one.jsonl").string(), jobs_for_accounts({0, 0, 0, 0, 0}, 0xf1));
  std::string text = scrape_when_done(port, {s.spool / "done" / "one.jsonl"}, 5);
  ASSERT_EQ(sample(text, "orgpatchd_jobs_total{outcome=\"ok\"}"), 5.0) << text << test::read_file(s.dir.file("err"));
  EXPECT_GE(sample(text, "orgpatchd_rate_limited_total{reason=\"account\"}").value_or(0), 1.0) << text;
  EXPECT_EQ(sample(text, "orgpatchd_rate_limited_total{reason=\"token\"}"), 0.0) << text;
  EXPECT_EQ(sample(text, "orgpatchd_rate_limited_total{reason=\"remote\"}"), 0.0) << text;
  const double account_429s = sample(text, "orgpatchd_rate_limited_total{reason=\"account\"}").value_or(0);

  // Three accounts over their limits at the same moment: the token's limit.
  write_file((s.spool / "incoming" / "three.jsonl").string(),
             jobs_for_accounts({1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3}, 0xf2));
  text = scrape_when_done(port, {s.spool / "done" / "three.jsonl"}, 17);
  ASSERT_EQ(sample(text, "orgpatchd_jobs_total{outcome=\"ok\"}"), 17.0) << text << test::read_file(s.dir.file("err"));
  EXPECT_GE(sample(text, "orgpatchd_rate_limited_total{reason=\"token\"}").value_or(0), 1.0) << text;
  EXPECT_GE(sample(text, "orgpatchd_rate_limited_total{reason=\"account\"}").value_or(0), account_429s) << text;
  EXPECT_EQ(sample(text, "orgpatchd_rate_limited_total{reason=\"remote\"}"), 0.0) << text;
  // 429s are not requests that failed: every job is ok, none retried as a failure.
  EXPECT_EQ(sample(text, "orgpatchd_retries_total"), 0.0) << text;
  expect_promtool_accepts(s.dir, text);

  p.child.signal(SIGTERM);
  EXPECT_EQ(p.child.wait(), 0) << test::read_file(s.dir.file("err"));
}

TEST(MetricsEndpointTest, ServeWithThePortInUseFailsNamingTheKey) {
  emulator_setup busy;
  serve_setup s("127.0.0.1:" + std::to_string(busy.server->port()));
  const auto r = test::run_process(ORGPATCHD_BINARY, s.args());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("serve.metrics_listen: 127.0.0.1:" + std::to_string(busy.server->port())), std::string::npos)
      << r.err;
}

TEST(MetricsEndpointTest, ServeWithoutMetricsListenServesNone) {
  serve_setup s("");
  serve_process p(s);
  ASSERT_TRUE(p.notify.wait_for("READY=1", 10s)) << test::read_file(s.dir.file("err"));
  EXPECT_EQ(test::read_file(s.dir.file("err")).find("metrics:"), std::string::npos);
  p.child.signal(SIGTERM);
  EXPECT_EQ(p.child.wait(), 0);
}

}  // namespace
}  // namespace orgpatch
