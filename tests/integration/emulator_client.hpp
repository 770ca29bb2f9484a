// Test helpers for the emulator's integration tests: a small synchronous Beast client
// (plain or verified TLS), raw exchanges, request builders, error-body checks, and
// the emulator binary as a child process. Shared by emulator_*_test.cpp.
#pragma once

#include "emulator/api.hpp"
#include "emulator/server.hpp"
#include "orgpatch/asio.hpp"

#include <boost/asio/ssl.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

namespace orgpatch::emulator::test_client {

namespace http = beast::http;
namespace json = boost::json;
using namespace std::chrono_literals;

inline constexpr std::string_view k_account = "62f44730-dd91-461e-bd6a-aedd9e0ad79d";
inline constexpr std::string_view k_org = "2818e386-8dec-2562-9ede-5b8a0fbbdc71";
inline constexpr std::string_view k_org2 = "9a3c1b52-0d7e-4f4a-8c55-7b1f0e2d9c11";

using header_list = std::vector<std::pair<std::string, std::string>>;

/// One response as the client read it.
struct reply {
  unsigned status = 0;
  std::string body;
  bool chunked = false;
  bool keep_alive = true;
  http::fields headers;

  json::value json() const { return json::parse(body); }
  std::string header(std::string_view name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? std::string{} : std::string(it->value());
  }
};

/// What one exchange gave: the error that ended it (none for a complete answer) and
/// as much of the answer as arrived (`header` false and status 0 when no header did).
struct outcome {
  beast::error_code ec;
  bool header = false;
  reply r;
};

/// A keep-alive HTTP/1.1 client on one connection (plain, or TLS verifying the peer
/// against a CA file and a host name). Every step runs on the client's own
/// io_context with a wall-clock deadline.
class client {
 public:
  explicit client(std::uint16_t port) : port_(port) {}
  client(std::uint16_t port, const std::string& ca_file, std::string host) : port_(port), host_(std::move(host)) {
    tls_ctx_.emplace(ssl::context::tls_client);
    tls_ctx_->load_verify_file(ca_file);
    tls_ctx_->set_verify_mode(ssl::verify_peer);
  }

  /// Connects (and handshakes) if not connected yet; the error, if any.
  beast::error_code connect() {
    if (plain_ || tls_) return {};
    return run(do_connect());
  }

  /// One request and its answer; throws beast::system_error when the exchange fails.
  reply send(http::verb method, std::string target, std::string body = {}, header_list headers = {}) {
    outcome out = try_send(method, std::move(target), std::move(body), std::move(headers));
    if (out.ec) throw beast::system_error(out.ec, "exchange");
    return std::move(out.r);
  }

  /// One request and whatever came back. After an error the connection is dropped,
  /// so the next request connects afresh.
  outcome try_send(http::verb method, std::string target, std::string body = {}, header_list headers = {}) {
    if (const auto ec = connect()) {
      disconnect();
      return outcome{ec, false, {}};
    }
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, host_);
    for (const auto& [name, value] : headers) req.set(name, value);
    req.body() = std::move(body);
    req.prepare_payload();
    outcome out = tls_ ? run(do_send(tls_.get(), std::move(req))) : run(do_send(plain_.get(), std::move(req)));
    if (out.ec) disconnect();
    return out;
  }

  /// Drops the connection (the next request connects again).
  void disconnect() {
    plain_.reset();
    tls_.reset();
    buffer_.clear();
  }

  /// The deadline of each connect and exchange (default 10 s).
  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }

  /// Reads once more on a plain connection: the error the server's close gives.
  beast::error_code read_error() { return run(do_read_error()); }

 private:
  template <class T>
  T run(net::awaitable<T> work) {
    std::future<T> result = net::co_spawn(ioc_, std::move(work), net::use_future);
    ioc_.restart();
    ioc_.run_for(20s);
    if (result.wait_for(0s) != std::future_status::ready) throw std::runtime_error("client step timed out");
    return result.get();
  }

  net::awaitable<beast::error_code> do_connect() {
    const tcp::endpoint endpoint{net::ip::make_address("127.0.0.1"), port_};
    if (!tls_ctx_) {
      plain_ = std::make_unique<tcp_stream>(ioc_);
      plain_->expires_after(timeout_);
      auto [ec] = co_await plain_->async_connect(endpoint, use_tuple);
      co_return ec;
    }
    tls_ = std::make_unique<tls_stream>(ioc_, *tls_ctx_);
    tls_->set_verify_callback(ssl::host_name_verification(host_));
    beast::get_lowest_layer(*tls_).expires_after(timeout_);
    auto [ec] = co_await beast::get_lowest_layer(*tls_).async_connect(endpoint, use_tuple);
    if (ec) co_return ec;
    std::tie(ec) = co_await tls_->async_handshake(ssl::stream_base::client, use_tuple);
    co_return ec;
  }

  template <class Stream>
  net::awaitable<outcome> do_send(Stream* stream, http::request<http::string_body> req) {
    outcome out;
    beast::get_lowest_layer(*stream).expires_after(timeout_);
    auto [ec, n] = co_await http::async_write(*stream, req, use_tuple);
    http::response_parser<http::string_body> parser;
    parser.body_limit(16 * 1024 * 1024);
    if (!ec) std::tie(ec, n) = co_await http::async_read_header(*stream, buffer_, parser, use_tuple);
    if (!ec) {
      out.header = true;
      std::tie(ec, n) = co_await http::async_read(*stream, buffer_, parser, use_tuple);
    }
    out.ec = ec;
    if (!out.header) co_return out;
    const auto& msg = parser.get();
    out.r.status = msg.result_int();
    out.r.body = msg.body();
    out.r.chunked = msg.chunked();
    out.r.keep_alive = msg.keep_alive();
    out.r.headers = msg;
    co_return out;
  }

  net::awaitable<beast::error_code> do_read_error() {
    plain_->expires_after(5s);
    http::response_parser<http::string_body> parser;
    auto [ec, n] = co_await http::async_read(*plain_, buffer_, parser, use_tuple);
    co_return ec;
  }

  net::io_context ioc_;
  std::uint16_t port_;
  std::string host_ = "127.0.0.1";
  std::optional<ssl::context> tls_ctx_;
  std::unique_ptr<tcp_stream> plain_;
  std::unique_ptr<tls_stream> tls_;
  std::chrono::milliseconds timeout_{10'000};
  beast::flat_buffer buffer_;
};

/// Writes `text` on a fresh plain connection, then reads until the server closes it.
inline std::string raw_exchange(std::uint16_t port, std::string text) {
  net::io_context ioc;
  auto exchange = [](std::uint16_t port, std::string text) -> net::awaitable<std::string> {
    tcp_stream s{co_await net::this_coro::executor};
    s.expires_after(10s);
    co_await s.async_connect(tcp::endpoint{net::ip::make_address("127.0.0.1"), port}, net::use_awaitable);
    if (!text.empty()) co_await net::async_write(s, net::buffer(text), net::use_awaitable);
    std::string out;
    std::array<char, 4096> buf;
    for (;;) {
      auto [ec, n] = co_await s.async_read_some(net::buffer(buf), use_tuple);
      out.append(buf.data(), n);
      if (ec) break;
    }
    co_return out;
  };
  std::future<std::string> result = net::co_spawn(ioc, exchange(port, std::move(text)), net::use_future);
  ioc.run_for(20s);
  if (result.wait_for(0s) != std::future_status::ready) throw std::runtime_error("raw exchange timed out");
  return result.get();
}

inline server_options plain_options() {
  server_options o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.plain = true;
  o.threads = 2;
  return o;
}

inline std::string org_target(std::string_view id, std::string_view query = {}) {
  return "/unified/user-directory/organizations/" + std::string(id) +
         "?integrated_account_id=" + std::string(k_account) + std::string(query);
}

inline header_list auth_json(std::string token = "t") {
  return {{"Authorization", "Bearer " + token}, {"Content-Type", "application/json"}};
}

inline reply patch(client& c, std::string target, std::string body, header_list extra = {}) {
  header_list h = auth_json();
  for (auto& kv : extra) h.push_back(std::move(kv));
  return c.send(http::verb::patch, std::move(target), std::move(body), std::move(h));
}

inline reply get(client& c, std::string target, header_list headers = {{"Authorization", "Bearer t"}}) {
  return c.send(http::verb::get, std::move(target), {}, std::move(headers));
}

inline std::set<std::string> keys_of(const json::value& v) {
  std::set<std::string> keys;
  for (const auto& kv : v.as_object()) keys.emplace(kv.key());
  return keys;
}

/// The message of a Truto error body, checking its shape on the way.
inline std::string error_message(const reply& r, bool remote) {
  const json::object o = r.json().as_object();
  EXPECT_EQ(o.at("statusCode").to_number<unsigned>(), r.status) << r.body;
  EXPECT_EQ(std::string(o.at("error").as_string()), std::string(reason_phrase(r.status))) << r.body;
  EXPECT_EQ(o.contains("truto_is_remote_error"), remote) << r.body;
  if (remote) {
    EXPECT_TRUE(o.at("truto_is_remote_error").as_bool());
    EXPECT_EQ(o.at("raw_response").at("detail"), o.at("message")) << r.body;
  }
  return std::string(o.at("message").as_string());
}

/// The emulator binary as a child process with its stdout on a pipe.
class child_process {
 public:
  explicit child_process(std::vector<std::string> args) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    args.insert(args.begin(), ORGPATCH_EMULATOR_BINARY);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, ORGPATCH_EMULATOR_BINARY, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    out_ = fds[0];
    if (rc != 0) throw std::runtime_error("posix_spawn failed");
  }
  ~child_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(out_);
  }

  /// The first line on stdout (without '\n'), within `timeout`; empty on EOF or timeout.
  std::string read_line(std::chrono::milliseconds timeout) {
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return {};
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char ch;
      if (::read(out_, &ch, 1) != 1) return {};
      if (ch == '\n') return line;
      line.push_back(ch);
    }
  }

  /// Sends `sig` (0: none) and waits; the exit status, or -1 if it did not exit normally in time.
  int stop(int sig, std::chrono::milliseconds timeout = 10s) {
    if (sig != 0) ::kill(pid_, sig);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) return -1;
      std::this_thread::sleep_for(10ms);
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
};

}  // namespace orgpatch::emulator::test_client
