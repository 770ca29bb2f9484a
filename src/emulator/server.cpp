// The emulator's listener and HTTP/1.1 sessions (one coroutine per connection).
#include "emulator/server.hpp"

#include "orgpatch/asio.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <exception>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <vector>

namespace orgpatch::emulator {
namespace {

namespace http = beast::http;

using socket_type = net::basic_stream_socket<tcp, net::any_io_executor>;

/// Logs what a detached coroutine threw; the server keeps running.
struct log_exception {
  const char* what;
  void operator()(const std::exception_ptr& e) const {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      spdlog::warn("orgpatch-emulator: {}: {}", what, ex.what());
    }
  }
};

bool is_http_error(const beast::error_code& ec) {
  return ec.category() == make_error_code(http::error::bad_method).category();
}

/// The status line and header fields of an answer.
template <class Body>
void fill_head(http::response<Body>& head, const response& res, bool keep_alive, unsigned version) {
  head.version(version);
  head.result(res.status);
  head.set(http::field::server, "orgpatch-emulator");
  head.set(http::field::content_type, res.content_type);
  for (const auto& [name, value] : res.headers) head.set(name, value);
  head.keep_alive(keep_alive);
}

/// Closes a connection with a TCP reset (SO_LINGER 0): the reset_before fault.
void abort_connection(tcp_stream& stream) {
  beast::error_code ignored;
  stream.socket().set_option(net::socket_base::linger(true, 0), ignored);
  stream.socket().close(ignored);
}

/// Splits a body into up to three chunks, so that a client meets real chunk framing.
std::vector<std::string_view> chunk_pieces(std::string_view body) {
  std::vector<std::string_view> pieces;
  const std::size_t step = std::max<std::size_t>(1, (body.size() + 2) / 3);
  for (std::size_t at = 0; at < body.size(); at += step) pieces.push_back(body.substr(at, step));
  return pieces;
}

}  // namespace

struct server::impl {
  explicit impl(server_options o) : opts(std::move(o)), handler(opts.api) {}

  server_options opts;
  emulator::api handler;
  std::optional<ssl::context> tls;  // outlives the io_contexts and their TLS streams
  std::vector<std::unique_ptr<net::io_context>> contexts;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards;
  std::optional<tcp_acceptor> acceptor;  // on contexts[0]
  std::vector<std::thread> threads;
  std::uint16_t bound_port = 0;
  bool running = false;

  void load_tls();
  net::awaitable<void> accept_loop();
  net::awaitable<void> run_session(socket_type socket);
  template <class Stream>
  net::awaitable<bool> serve_http(Stream& stream);
  net::awaitable<void> linger(tcp_stream& stream);
  template <class Stream>
  net::awaitable<beast::error_code> write_response(Stream& stream, response res, bool keep_alive,
                                                   unsigned version);
  template <class Stream>
  net::awaitable<void> write_cut(Stream& stream, response res, bool keep_alive, unsigned version);
};

void server::impl::load_tls() {
  ssl::context ctx{ssl::context::tls_server};
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                  ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  beast::error_code ec;
  if (!opts.cert_file.empty()) {
    if (ctx.use_certificate_chain_file(opts.cert_file, ec); ec)
      throw std::runtime_error("cannot load TLS certificate " + opts.cert_file + ": " + ec.message());
    if (ctx.use_private_key_file(opts.key_file, ssl::context::pem, ec); ec)
      throw std::runtime_error("cannot load TLS key " + opts.key_file + ": " + ec.message());
  } else if (!opts.cert_pem.empty()) {
    if (ctx.use_certificate_chain(net::buffer(opts.cert_pem), ec); ec)
      throw std::runtime_error("cannot load the TLS certificate: " + ec.message());
    if (ctx.use_private_key(net::buffer(opts.key_pem), ssl::context::pem, ec); ec)
      throw std::runtime_error("cannot load the TLS key: " + ec.message());
  } else {
    throw std::runtime_error("TLS needs a certificate and key (or plain HTTP)");
  }
  tls.emplace(std::move(ctx));
}

net::awaitable<void> server::impl::accept_loop() {
  std::size_t next = 0;
  for (;;) {
    // Hand connections out round robin, each to one io_context (and its one thread).
    net::any_io_executor ex = contexts[next++ % contexts.size()]->get_executor();
    auto [ec, socket] = co_await acceptor->async_accept(ex);
    if (ec == net::error::operation_aborted || !acceptor->is_open()) co_return;
    if (ec) {
      // Out of descriptors and the like: pause instead of spinning.
      spdlog::warn("orgpatch-emulator: accept: {}", ec.message());
      steady_timer pause{acceptor->get_executor(), std::chrono::milliseconds(50)};
      co_await pause.async_wait();
      continue;
    }
    handler.count_connection();
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    net::co_spawn(ex, run_session(std::move(socket)), log_exception{"session"});
  }
}

net::awaitable<void> server::impl::run_session(socket_type socket) {
  tcp_stream stream{std::move(socket)};
  if (opts.plain) {
    co_await serve_http(stream);
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    co_return;
  }
  tls_stream secure{std::move(stream), *tls};
  beast::get_lowest_layer(secure).expires_after(opts.request_timeout);
  auto [ec] = co_await secure.async_handshake(ssl::stream_base::server, use_tuple);
  if (ec) co_return;  // a client that gave up, or one that does not trust us
  if (co_await serve_http(secure)) {
    // close_notify; async_shutdown can hang in 1.81, so bound it, and any answer is fine.
    beast::get_lowest_layer(secure).expires_after(std::chrono::seconds(2));
    (void)co_await secure.async_shutdown(use_tuple);
  }
}

// Serves requests on one connection until it closes; true when a TLS close_notify
// is worth sending (the exchange ended cleanly). `stream` (here and in the helpers
// below) lives in the calling coroutine's frame, which awaits the call.
template <class Stream>
net::awaitable<bool> server::impl::serve_http(Stream& stream) {
  beast::flat_buffer buffer;
  std::uint64_t served = 0;  // requests on this connection, for the close_after fault
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(opts.header_limit, UINT32_MAX)));
    parser.body_limit(opts.body_limit);

    // An idle keep-alive connection is closed after idle_timeout.
    beast::get_lowest_layer(stream).expires_after(opts.idle_timeout);
    auto [ec, n] = co_await http::async_read_header(stream, buffer, parser, use_tuple);
    if (!ec && !parser.is_done()) {
      // curl and others wait for "100 Continue" before sending a larger body.
      const auto expect = parser.get()[http::field::expect];
      if (expect.size() == 12 && beast::iequals(expect, "100-continue")) {
        http::response<http::empty_body> cont{http::status::continue_, parser.get().version()};
        beast::get_lowest_layer(stream).expires_after(opts.request_timeout);
        std::tie(ec, n) = co_await http::async_write(stream, cont, use_tuple);
        if (ec) co_return false;
      }
      beast::get_lowest_layer(stream).expires_after(opts.request_timeout);
      std::tie(ec, n) = co_await http::async_read(stream, buffer, parser, use_tuple);
    }
    if (ec) {
      if (ec == http::error::end_of_stream) co_return true;
      if (!is_http_error(ec) || ec == http::error::partial_message) co_return false;
      // A broken request: answer it, then close (the framing cannot be trusted).
      const unsigned status = ec == http::error::body_limit     ? 413u
                              : ec == http::error::header_limit ? 431u
                                                                : 400u;
      const std::string message = status == 413   ? "Request body exceeds " + std::to_string(opts.body_limit) + " bytes"
                                  : status == 431 ? "Request header too large"
                                                  : "Malformed HTTP request: " + ec.message();
      handler.count_response(status);
      if (!co_await write_response(stream, truto_error(status, message), false, 11))
        co_await linger(beast::get_lowest_layer(stream));
      co_return false;
    }

    const auto& msg = parser.get();
    request req;
    req.method = msg.method_string();
    req.target = msg.target();
    if (auto it = msg.find(http::field::authorization); it != msg.end()) req.authorization = it->value();
    if (auto it = msg.find(http::field::content_type); it != msg.end()) req.content_type = it->value();
    if (auto it = msg.find("Idempotency-Key"); it != msg.end()) req.idempotency_key = it->value();
    req.body = msg.body();
    req.connection_request = ++served;
    const bool keep_alive = msg.keep_alive();
    response res = handler.handle(req, emulator::api::clock::now());

    // Faults: latency first, then whatever the answer's transport says.
    if (res.delay.count() > 0) {
      steady_timer wait{stream.get_executor(), res.delay};
      (void)co_await wait.async_wait();
    }
    if (res.action == response::transport::reset_before) {
      // No answer, and a reset rather than a clean close.
      abort_connection(beast::get_lowest_layer(stream));
      co_return false;
    }
    if (res.action == response::transport::stall) {
      // Past the client's timeout, then a plain close; nothing was applied.
      steady_timer wait{stream.get_executor(), res.stall};
      (void)co_await wait.async_wait();
      co_return false;
    }
    if (res.action == response::transport::reset_mid_body) {
      co_await write_cut(stream, std::move(res), keep_alive, msg.version());
      co_return false;
    }
    const bool keep = keep_alive && !res.close;
    ec = co_await write_response(stream, std::move(res), keep, msg.version());
    if (ec) co_return false;
    if (!keep) co_return true;
  }
}

template <class Stream>
net::awaitable<beast::error_code> server::impl::write_response(Stream& stream, response res, bool keep_alive,
                                                               unsigned version) {
  beast::get_lowest_layer(stream).expires_after(opts.request_timeout);
  // An HTTP/1.0 client cannot take chunks.
  if (!res.chunked || version < 11) {
    http::response<http::string_body> msg;
    fill_head(msg, res, keep_alive, version);
    msg.body() = std::move(res.body);
    msg.prepare_payload();
    auto [ec, n] = co_await http::async_write(stream, msg, use_tuple);
    co_return ec;
  }

  http::response<http::empty_body> head;
  fill_head(head, res, keep_alive, version);
  head.chunked(true);
  http::response_serializer<http::empty_body> sr{head};
  auto [ec, n] = co_await http::async_write_header(stream, sr, use_tuple);
  if (ec) co_return ec;
  for (std::string_view piece : chunk_pieces(res.body)) {
    std::tie(ec, n) = co_await net::async_write(stream, http::make_chunk(net::buffer(piece)), use_tuple);
    if (ec) co_return ec;
  }
  std::tie(ec, n) = co_await net::async_write(stream, http::make_chunk_last(), use_tuple);
  co_return ec;
}

// The reset_mid_body fault: the head (with the full Content-Length) and half the
// body, then the connection closes. The update was applied.
template <class Stream>
net::awaitable<void> server::impl::write_cut(Stream& stream, response res, bool keep_alive, unsigned version) {
  beast::get_lowest_layer(stream).expires_after(opts.request_timeout);
  http::response<http::string_body> msg;
  fill_head(msg, res, keep_alive, version);
  msg.body() = std::move(res.body);
  msg.prepare_payload();
  http::response_serializer<http::string_body> sr{msg};
  auto [ec, n] = co_await http::async_write_header(stream, sr, use_tuple);
  if (!ec) {
    const std::size_t part = msg.body().size() / 2;
    if (part > 0) std::tie(ec, n) = co_await net::async_write(stream, net::buffer(msg.body().data(), part), use_tuple);
  }
  // A clean TCP close (no TLS close_notify): what arrived stays readable, and is short.
  beast::error_code ignored;
  beast::get_lowest_layer(stream).socket().shutdown(tcp::socket::shutdown_both, ignored);
  beast::get_lowest_layer(stream).socket().close(ignored);
}

// After answering a request whose body was not read (413, 400): stop sending, then
// read and drop what the client still sends for a moment, so that closing with
// unread data does not reset the connection before the client has read the answer.
net::awaitable<void> server::impl::linger(tcp_stream& stream) {
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (ec) co_return;
  std::array<char, 16 * 1024> scratch;
  std::size_t total = 0;
  stream.expires_after(std::chrono::seconds(1));
  while (total < 4 * opts.body_limit + 65536) {
    auto [err, n] = co_await stream.async_read_some(net::buffer(scratch), use_tuple);
    if (err) break;
    total += n;
  }
}

server::server(server_options options) : impl_(std::make_unique<impl>(std::move(options))) {}

server::~server() { stop(); }

void server::start() {
  impl& s = *impl_;
  if (s.running) return;
  if (!s.opts.plain) s.load_tls();

  const unsigned n = std::max(1u, s.opts.threads);
  for (unsigned i = 0; i < n; ++i) {
    s.contexts.push_back(std::make_unique<net::io_context>(1));
    s.guards.push_back(net::make_work_guard(*s.contexts.back()));
  }

  const std::string where = s.opts.host + ":" + std::to_string(s.opts.port);
  beast::error_code ec;
  tcp::resolver resolver{*s.contexts.front()};
  const auto endpoints = resolver.resolve(s.opts.host, std::to_string(s.opts.port),
                                          tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty())
    throw std::runtime_error("cannot listen on " + where + ": " + (ec ? ec.message() : "no address"));
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();

  s.acceptor.emplace(*s.contexts.front());
  if (s.acceptor->open(endpoint.protocol(), ec); !ec)
    if (s.acceptor->set_option(net::socket_base::reuse_address(true), ec); !ec)
      if (s.acceptor->bind(endpoint, ec); !ec) s.acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    s.acceptor.reset();
    s.guards.clear();
    s.contexts.clear();
    throw std::runtime_error("cannot listen on " + where + ": " + ec.message());
  }
  s.bound_port = s.acceptor->local_endpoint().port();

  net::co_spawn(*s.contexts.front(), s.accept_loop(), log_exception{"accept"});
  for (auto& ctx : s.contexts) {
    s.threads.emplace_back([io = ctx.get()] {
      for (;;) {
        try {
          io->run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("orgpatch-emulator: {}", e.what());
        }
      }
    });
  }
  s.running = true;
}

std::uint16_t server::port() const noexcept { return impl_->bound_port; }

std::string server::base_url() const {
  const std::string& host = impl_->opts.host;
  const std::string shown = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return (impl_->opts.plain ? "http://" : "https://") + shown + ":" + std::to_string(port());
}

void server::stop() {
  impl& s = *impl_;
  if (!s.running) return;
  for (auto& ctx : s.contexts) ctx->stop();
  for (auto& t : s.threads) t.join();
  s.threads.clear();
  // The first context holds the acceptor and its pending accept (whose socket names
  // another context): destroy it first, then the others with their sessions.
  s.acceptor.reset();
  s.guards.clear();
  for (auto& ctx : s.contexts) ctx.reset();
  s.contexts.clear();
  s.running = false;
}

stats server::stats_snapshot(bool with_applies) const { return impl_->handler.snapshot(with_applies); }

std::optional<std::string> server::organization_json(std::string_view integrated_account_id,
                                                     std::string_view id) const {
  return impl_->handler.organization_json(integrated_account_id, id);
}

void server::reset() { impl_->handler.reset(); }

emulator::api& server::api() noexcept { return impl_->handler; }

}  // namespace orgpatch::emulator
