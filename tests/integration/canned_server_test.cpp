// The lean connection against a server that answers with canned bytes: what
// it does with answers no well-behaved server sends.
#include "orgpatch/engine.hpp"
#include "support/test_util.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <atomic>
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

// A plain HTTP server on 127.0.0.1 that reads each request and writes back
// `answer` (the exact bytes); counts the connections it accepted.
class canned_server {
 public:
  explicit canned_server(std::string answer)
      : answer_(std::move(answer)), acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}) {
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
        asio::write(socket, asio::buffer(answer_), ec);
        if (ec) break;
      }
    }
  }

  std::string answer_;
  asio::io_context io_;
  asio::ip::tcp::acceptor acceptor_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<unsigned> connections_{0};
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

}  // namespace
}  // namespace orgpatch
