// The lean connection against a server that answers with canned bytes: what
// it does with answers no well-behaved server sends.
#include "orgpatch/engine.hpp"
#include "support/process.hpp"
#include "support/test_util.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

namespace orgpatch {
namespace {

using test::read_lines;
using test::temp_dir;
using test::write_file;

namespace asio = boost::asio;
namespace http = boost::beast::http;

// A plain HTTP server on 127.0.0.1 that reads each request and answers it:
// with `answer` (the exact bytes), or by calling `respond` with the socket
// (which returns false to close the connection). Counts the connections it
// accepted and the requests it read.
class canned_server {
 public:
  using responder = std::function<bool(asio::ip::tcp::socket&, const std::atomic<bool>& stopping)>;

  explicit canned_server(std::string answer)
      : canned_server([answer = std::move(answer)](asio::ip::tcp::socket& s, const std::atomic<bool>&) {
          boost::system::error_code ec;
          asio::write(s, asio::buffer(answer), ec);
          return !ec;
        }) {}

  explicit canned_server(responder respond)
      : respond_(std::move(respond)), acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}) {
    thread_ = std::thread([this] { serve(); });
  }
  ~canned_server() {
    stopping_ = true;
    // Unblock accept() with one last connection of our own.
    boost::system::error_code ec;
    asio::ip::tcp::socket poke(io_);
    poke.connect({asio::ip::make_address("127.0.0.1"), port()}, ec);
    thread_.join();
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  unsigned connections() const { return connections_; }
  unsigned requests() const { return requests_; }

 private:
  void serve() {
    while (!stopping_) {
      asio::ip::tcp::socket socket(io_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      if (ec || stopping_) return;
      ++connections_;
      boost::beast::flat_buffer buffer;
      for (;;) {
        http::request<http::string_body> req;
        http::read(socket, buffer, req, ec);
        if (ec) break;
        ++requests_;
        if (!respond_(socket, stopping_)) break;
      }
    }
  }

  responder respond_;
  asio::io_context io_;
  asio::ip::tcp::acceptor acceptor_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<unsigned> connections_{0};
  std::atomic<unsigned> requests_{0};
};

run_options plain_options(const std::string& input, std::uint16_t port, unsigned jobs_attempts) {
  run_options o;
  o.input = input;
  o.cfg.api.base_url = "http://127.0.0.1:" + std::to_string(port);
  o.cfg.api.allow_http = true;
  o.cfg.http.connections = 1;
  o.cfg.http.request_timeout_ms = 30000;
  o.cfg.rate_limit.requests_per_second = 0;
  o.cfg.rate_limit.per_account_requests_per_second = 0;
  o.cfg.retry.max_attempts = jobs_attempts;
  o.cfg.retry.base_delay_ms = 1;
  o.cfg.retry.max_delay_ms = 1;
  o.cfg.output.fsync = fsync_mode::none;
  o.token = "test-token";
  o.handle_signals = false;
  return o;
}

// `n` generated jobs of one account in `dir`'s j.jsonl; its path.
std::string write_jobs(const temp_dir& dir, std::size_t n) {
  std::string text;
  for (const auto& j : test::generate_jobs(n, 1)) text += j.line + "\n";
  const std::string input = dir.file("j.jsonl");
  write_file(input, text);
  return input;
}

const std::string k_ok_answer =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"id\":\"x\"}\n";

// A chunk line longer than any buffer (Beast limits neither chunk extensions
// nor trailers): the job fails on the size at once, not after the request
// timeout, and the reading does not spin.
TEST(CannedServerTest, AnEndlessChunkLineIsTooLargeNotATimeout) {
  temp_dir dir;
  canned_server server("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;ext=" + std::string(300 * 1024, 'a'));
  const run_report report = run_batch(plain_options(write_jobs(dir, 1), server.port(), 2));
  ASSERT_EQ(report.fatal_error, "");
  EXPECT_EQ(report.metrics.exhausted(), 1u);
  const auto lines = read_lines(dir.file("j.results.jsonl"));
  ASSERT_EQ(lines.size(), 2u);
  const auto r = boost::json::parse(lines[1]).as_object();
  EXPECT_EQ(r.at("attempts").as_int64(), 2);
  const std::string message(r.at("error").at("message").as_string());
  EXPECT_NE(message.find("larger than http.max_response_bytes"), std::string::npos) << message;
}

// Bytes after a complete answer answer nothing that was sent: the connection
// is not used again, so the next job reads its own answer, not those bytes.
TEST(CannedServerTest, BytesPastAnAnswerAreNeverTakenForTheNextOne) {
  temp_dir dir;
  canned_server server(k_ok_answer + "HTTP/1.1 500 Stale\r\nContent-Length: 0\r\n\r\n");
  const run_report report = run_batch(plain_options(write_jobs(dir, 3), server.port(), 1));
  ASSERT_EQ(report.fatal_error, "");
  EXPECT_EQ(report.metrics.ok(), 3u);
  EXPECT_EQ(report.metrics.requests(), 3u);
  EXPECT_EQ(server.connections(), 3u);
}

// The control: a well-behaved answer keeps the one connection.
TEST(CannedServerTest, AWholeAnswerKeepsTheConnection) {
  temp_dir dir;
  canned_server server(k_ok_answer);
  const run_report report = run_batch(plain_options(write_jobs(dir, 3), server.port(), 1));
  ASSERT_EQ(report.fatal_error, "");
  EXPECT_EQ(report.metrics.ok(), 3u);
  EXPECT_EQ(server.connections(), 1u);
}

// --- hostile servers (issue 8): each ends its job with a clear error, the
// connection discarded, memory bounded. -------------------------------------

// The one job's result line.
boost::json::object only_result(const temp_dir& dir) {
  const auto lines = read_lines(dir.file("j.results.jsonl"));
  EXPECT_EQ(lines.size(), 2u);
  return lines.size() < 2 ? boost::json::object{} : boost::json::parse(lines[1]).as_object();
}

std::string error_message(const boost::json::object& r) {
  if (!r.contains("error")) return {};
  return std::string(r.at("error").at("message").as_string());
}

// Writes `total` bytes of `x` in 64 KiB blocks (never held whole), until the
// client goes away or the server stops.
bool write_filler(asio::ip::tcp::socket& s, std::uint64_t total, const std::atomic<bool>& stopping) {
  const std::string block(64 * 1024, 'x');
  boost::system::error_code ec;
  for (std::uint64_t sent = 0; sent < total && !stopping; sent += block.size()) {
    asio::write(s, asio::buffer(block.data(), std::min<std::uint64_t>(block.size(), total - sent)), ec);
    if (ec) return false;
  }
  return true;
}

// orgpatchd itself against `server` (plain HTTP allowed by its config), two
// attempts per job: what it printed, and its peak RSS.
test::process_result run_binary_against(const temp_dir& dir, const canned_server& server) {
  write_file(dir.file("c.yaml"), "api: {allow_http: true}\nretry: {max_attempts: 2, base_delay_ms: 1, max_delay_ms: 1}\n");
  write_file(dir.file("token"), "test-token\n");
  std::filesystem::permissions(dir.file("token"), std::filesystem::perms::owner_read);
  return test::run_process(ORGPATCHD_BINARY, {"run", dir.file("j.jsonl"), "--config", dir.file("c.yaml"), "--base-url",
                                              "http://127.0.0.1:" + std::to_string(server.port()), "--token-file",
                                              dir.file("token"), "--rate", "0", "--account-rate", "0"});
}

// orgpatchd's peak RSS for one job against a well-behaved server: the bound
// for the hostile ones is relative to it (a sanitizer build starts far higher).
long baseline_rss_kb() {
  static const long kb = [] {
    temp_dir dir;
    canned_server server(k_ok_answer);
    write_jobs(dir, 1);
    const auto p = run_binary_against(dir, server);
    EXPECT_EQ(p.exit_code, 0) << p.err;
    return p.max_rss_kb;
  }();
  return kb;
}

TEST(HostileServerTest, AFiftyMegabyteBodyIsRefusedWithoutBeingHeld) {
  temp_dir dir;
  constexpr std::uint64_t k_body = 50ull * 1024 * 1024;
  canned_server server([](asio::ip::tcp::socket& s, const std::atomic<bool>& stopping) {
    boost::system::error_code ec;
    // Declared up front, and then (were it read) sent in full.
    asio::write(s, asio::buffer("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(k_body) + "\r\n\r\n"), ec);
    return !ec && write_filler(s, k_body, stopping);
  });
  write_jobs(dir, 1);
  const auto p = run_binary_against(dir, server);
  EXPECT_EQ(p.exit_code, 2) << p.err;
  const auto r = only_result(dir);
  EXPECT_EQ(r.at("outcome").as_string(), "exhausted");
  EXPECT_EQ(r.at("attempts").as_int64(), 2);
  EXPECT_NE(error_message(r).find("larger than http.max_response_bytes"), std::string::npos) << error_message(r);
  EXPECT_EQ(server.connections(), 2u);  // each attempt's connection was discarded
  // http.max_response_bytes (1 MiB) bounds what is held, never the 50 MB.
  EXPECT_LT(p.max_rss_kb, baseline_rss_kb() + 16 * 1024);
}

// The same without a length: 64 MB of chunks, read until the limit.
TEST(HostileServerTest, AnEndlessChunkedBodyIsReadOnlyToTheLimit) {
  temp_dir dir;
  canned_server server([](asio::ip::tcp::socket& s, const std::atomic<bool>& stopping) {
    boost::system::error_code ec;
    asio::write(s, asio::buffer(std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")), ec);
    const std::string chunk = "1000\r\n" + std::string(0x1000, 'y') + "\r\n";
    for (int i = 0; i < 16384 && !ec && !stopping; ++i) asio::write(s, asio::buffer(chunk), ec);
    return false;
  });
  write_jobs(dir, 1);
  const auto p = run_binary_against(dir, server);
  EXPECT_EQ(p.exit_code, 2) << p.err;
  const auto r = only_result(dir);
  EXPECT_EQ(r.at("outcome").as_string(), "exhausted");
  EXPECT_NE(error_message(r).find("larger than http.max_response_bytes"), std::string::npos) << error_message(r);
  EXPECT_EQ(server.connections(), 2u);
  EXPECT_LT(p.max_rss_kb, baseline_rss_kb() + 16 * 1024);
}

TEST(HostileServerTest, AHundredKilobyteHeaderLineIsRefused) {
  temp_dir dir;
  canned_server server("HTTP/1.1 200 OK\r\nX-Long: " + std::string(100 * 1024, 'h') +
                       "\r\nContent-Length: 2\r\n\r\n{}");
  const run_report report = run_batch(plain_options(write_jobs(dir, 1), server.port(), 2));
  ASSERT_EQ(report.fatal_error, "");
  EXPECT_EQ(report.metrics.exhausted(), 1u);
  const auto r = only_result(dir);
  EXPECT_NE(error_message(r).find("response header too large"), std::string::npos) << error_message(r);
  EXPECT_EQ(server.connections(), 2u);
}

TEST(HostileServerTest, ManyHeadersPastTheHeaderLimitAreRefused) {
  temp_dir dir;
  std::string answer = "HTTP/1.1 200 OK\r\n";
  for (int i = 0; i < 5000; ++i) answer += "X-" + std::to_string(i) + ": v\r\n";
  canned_server server(answer + "Content-Length: 2\r\n\r\n{}");
  const run_report report = run_batch(plain_options(write_jobs(dir, 1), server.port(), 1));
  ASSERT_EQ(report.fatal_error, "");
  EXPECT_EQ(report.metrics.exhausted(), 1u);
  const auto r = only_result(dir);
  EXPECT_NE(error_message(r).find("response header too large"), std::string::npos) << error_message(r);
}

TEST(HostileServerTest, GarbageInsteadOfHttpFails) {
  temp_dir dir;
  canned_server server(std::string("SSH-2.0-OpenSSH_9.2\r\n\x01\x02garbage\r\n\r\n"));
  const run_report report = run_batch(plain_options(write_jobs(dir, 1), server.port(), 2));
  ASSERT_EQ(report.fatal_error, "");
  EXPECT_EQ(report.metrics.exhausted(), 1u);
  const auto r = only_result(dir);
  EXPECT_NE(error_message(r).find("malformed"), std::string::npos) << error_message(r);
  EXPECT_EQ(server.connections(), 2u);
}

TEST(HostileServerTest, AContentLengthLongerThanTheBodyIsACutOffAnswer) {
  temp_dir dir;
  canned_server server([](asio::ip::tcp::socket& s, const std::atomic<bool>&) {
    boost::system::error_code ec;
    asio::write(s, asio::buffer(std::string("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"id\":\"x\"}")), ec);
    return false;  // and close: 89 bytes never come
  });
  const run_report report = run_batch(plain_options(write_jobs(dir, 1), server.port(), 2));
  ASSERT_EQ(report.fatal_error, "");
  EXPECT_EQ(report.metrics.exhausted(), 1u);  // unknown whether it was applied: retried, then exhausted
  const auto r = only_result(dir);
  EXPECT_EQ(r.at("attempts").as_int64(), 2);
  EXPECT_NE(error_message(r).find("connection closed before the response was complete"), std::string::npos)
      << error_message(r);
}

TEST(HostileServerTest, AContentLengthShorterThanTheBodyLeavesTheRestUnread) {
  temp_dir dir;
  // 5 bytes counted of an 11-byte body: the answer is those 5 bytes (a 2xx
  // whose body is not JSON is ok, with a warning); the other 6 are never read
  // as the next answer: the connection is not used again.
  canned_server server("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{\"id\":\"x\"}\n");
  const run_report report = run_batch(plain_options(write_jobs(dir, 2), server.port(), 1));
  ASSERT_EQ(report.fatal_error, "");
  EXPECT_EQ(report.metrics.ok(), 2u);
  EXPECT_EQ(server.connections(), 2u);
}

TEST(HostileServerTest, AServerThatDripsBytesIsCutOffByTheRequestTimeout) {
  temp_dir dir;
  canned_server server([](asio::ip::tcp::socket& s, const std::atomic<bool>& stopping) {
    // One byte of a header every 20 ms: each read succeeds, the answer never ends.
    boost::system::error_code ec;
    asio::write(s, asio::buffer(std::string("HTTP/1.1 200 OK\r\nX-Slow: ")), ec);
    for (int i = 0; i < 500 && !ec && !stopping; ++i) {
      asio::write(s, asio::buffer("a", 1), ec);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  });
  auto o = plain_options(write_jobs(dir, 1), server.port(), 2);
  o.cfg.http.request_timeout_ms = 300;
  const auto started = std::chrono::steady_clock::now();
  const run_report report = run_batch(o);
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_EQ(report.fatal_error, "");
  EXPECT_EQ(report.metrics.exhausted(), 1u);
  const auto r = only_result(dir);
  EXPECT_NE(error_message(r).find("timed out"), std::string::npos) << error_message(r);
  EXPECT_LT(took, std::chrono::seconds(5));  // two attempts of 0.3 s, not the drip's 10 s
}

TEST(HostileServerTest, ARedirectIsNotFollowed) {
  temp_dir dir;
  canned_server other(k_ok_answer);  // where the redirect points
  canned_server server("HTTP/1.1 301 Moved Permanently\r\nLocation: http://127.0.0.1:" +
                       std::to_string(other.port()) + "/steal\r\nContent-Length: 0\r\n\r\n");
  const run_report report = run_batch(plain_options(write_jobs(dir, 1), server.port(), 3));
  ASSERT_EQ(report.fatal_error, "");
  EXPECT_EQ(report.metrics.ok(), 0u);
  EXPECT_EQ(report.metrics.jobs(), 1u);
  EXPECT_EQ(other.requests(), 0u);
  const auto r = only_result(dir);
  EXPECT_EQ(r.at("http_status").as_int64(), 301);
  EXPECT_EQ(r.at("outcome").as_string(), "failed");
  EXPECT_EQ(error_message(r), "HTTP 301: redirect to http://127.0.0.1:" + std::to_string(other.port()) +
                                  "/steal not followed (check api.base_url)");
}

}  // namespace
}  // namespace orgpatch
