// The /metrics listener: one coroutine accepting, one per connection.
#include "orgpatch/metrics_server.hpp"

#include "orgpatch/asio.hpp"

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <exception>
#include <stdexcept>
#include <unordered_set>
#include <vector>

namespace orgpatch {

namespace http = beast::http;

listen_address parse_listen_address(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos)
    throw std::invalid_argument(fmt::format("\"{}\" is not HOST:PORT", text));
  std::string_view host = text.substr(0, colon);
  const std::string_view port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find_first_of("[]:") != std::string_view::npos) {
    throw std::invalid_argument(fmt::format("\"{}\": an IPv6 address goes in brackets, as in [::1]:9464", text));
  }
  unsigned value = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc{} || p != port.data() + port.size() || value > 65535)
    throw std::invalid_argument(fmt::format("\"{}\": the port is not a number from 0 to 65535", text));
  return {std::string(host), static_cast<std::uint16_t>(value)};
}

namespace {

constexpr std::uint32_t k_header_limit = 8 * 1024;
constexpr std::uint64_t k_body_limit = 1024;

tcp::endpoint endpoint_of(net::io_context& io, const listen_address& a) {
  if (a.host.empty()) return {tcp::v4(), a.port};
  boost::system::error_code ec;
  const auto address = net::ip::make_address(a.host, ec);
  if (!ec) return {address, a.port};
  // A host name: resolved once, at start.
  tcp::resolver resolver(io);
  const auto results = resolver.resolve(a.host, std::to_string(a.port), ec);
  if (ec || results.empty())
    throw std::runtime_error(fmt::format("cannot resolve {}: {}", a.host, ec ? ec.message() : "no address"));
  return results.begin()->endpoint();
}

std::string url_of(const tcp::endpoint& e) {
  const auto a = e.address();
  return fmt::format("http://{}:{}/metrics", a.is_v6() ? "[" + a.to_string() + "]" : a.to_string(), e.port());
}

}  // namespace

namespace detail {

struct metrics_server_state {
  metrics_server_state(net::io_context& io, metrics_server_params p, std::function<std::string()> r)
      : params(std::move(p)), render(std::move(r)), acceptor(io) {}

  metrics_server_params params;
  std::function<std::string()> render;
  tcp_acceptor acceptor;
  std::uint16_t port = 0;
  std::string url;
  std::unordered_set<tcp_stream*> open;  // the connections' streams, to close them
  bool closed = false;
};

}  // namespace detail

namespace {

using state_ptr = std::shared_ptr<detail::metrics_server_state>;

void log_exception(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    spdlog::warn("metrics: {}", ex.what());
  }
}

http::response<http::string_body> answer(detail::metrics_server_state& s, const http::request<http::string_body>& req) {
  http::response<http::string_body> res{http::status::ok, req.version()};
  res.set(http::field::server, "orgpatchd/" ORGPATCH_VERSION);
  std::string_view target = req.target();
  target = target.substr(0, target.find('?'));
  if (target != "/metrics") {
    res.result(http::status::not_found);
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.body() = "not found: the metrics are at /metrics\n";
  } else if (req.method() != http::verb::get) {
    res.result(http::status::method_not_allowed);
    res.set(http::field::allow, "GET");
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.body() = "method not allowed: GET /metrics\n";
  } else {
    try {
      res.body() = s.render();
      res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    } catch (const std::exception& e) {
      res.result(http::status::internal_server_error);
      res.set(http::field::content_type, "text/plain; charset=utf-8");
      res.body() = fmt::format("cannot render the metrics: {}\n", e.what());
    }
  }
  res.keep_alive(req.keep_alive());
  res.prepare_payload();
  return res;
}

// One connection: requests until the client closes, stays idle past the read
// timeout, or sends something broken.
net::awaitable<void> serve_connection(state_ptr s, tcp::socket socket) {
  // Accepted just before close(): this coroutine started after it, so close()
  // could not see the connection; it would otherwise wait out the read timeout.
  if (s->closed) co_return;
  tcp_stream stream{std::move(socket)};
  s->open.insert(&stream);
  struct forget {
    detail::metrics_server_state& s;
    tcp_stream& stream;
    ~forget() { s.open.erase(&stream); }
  } guard{*s, stream};

  beast::flat_buffer buffer{k_header_limit + k_body_limit};
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(k_header_limit);
    parser.body_limit(k_body_limit);
    // The whole request within the timeout: a slow or idle client is dropped.
    stream.expires_after(s->params.read_timeout);
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, use_tuple);
    if (ec || s->closed) break;  // closed, timed out, too large or malformed: no answer is owed
    const auto res = answer(*s, parser.get());
    stream.expires_after(s->params.read_timeout);
    auto [wec, wn] = co_await http::async_write(stream, res, use_tuple);
    if (wec || !res.keep_alive() || s->closed) break;
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream.close();
}

net::awaitable<void> accept_loop(state_ptr s) {
  for (;;) {
    auto [ec, socket] = co_await s->acceptor.async_accept();
    if (s->closed || ec == net::error::operation_aborted) co_return;
    if (ec) {
      // Out of descriptors and the like: pause instead of spinning.
      spdlog::warn("metrics: accept: {}", ec.message());
      steady_timer pause{s->acceptor.get_executor(), std::chrono::milliseconds(100)};
      co_await pause.async_wait();
      continue;
    }
    if (s->open.size() >= s->params.max_connections) {
      spdlog::debug("metrics: {} connections open already: one more closed", s->open.size());
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    net::co_spawn(s->acceptor.get_executor(), serve_connection(s, std::move(socket)), log_exception);
  }
}

}  // namespace

metrics_server::metrics_server(net::io_context& io, metrics_server_params params,
                               std::function<std::string()> render)
    : state_(std::make_shared<detail::metrics_server_state>(io, std::move(params), std::move(render))) {
  auto& s = *state_;
  const std::string& listen = s.params.listen;
  try {
    const auto endpoint = endpoint_of(io, parse_listen_address(listen));
    boost::system::error_code ec;
    if (s.acceptor.open(endpoint.protocol(), ec); !ec) s.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) s.acceptor.bind(endpoint, ec);
    if (!ec) s.acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error(ec.message());
    const auto bound = s.acceptor.local_endpoint();
    s.port = bound.port();
    s.url = url_of(bound);
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("{}: cannot listen: {}", listen, e.what()));
  }
  net::co_spawn(s.acceptor.get_executor(), accept_loop(state_), log_exception);
  spdlog::info("metrics: {}", s.url);
}

metrics_server::~metrics_server() { close(); }

std::uint16_t metrics_server::port() const noexcept { return state_->port; }

std::string metrics_server::url() const { return state_->url; }

void metrics_server::close() {
  auto& s = *state_;
  if (s.closed) return;
  s.closed = true;
  boost::system::error_code ignored;
  s.acceptor.close(ignored);
  // Each connection's coroutine sees its operation aborted and ends.
  for (tcp_stream* stream : std::vector<tcp_stream*>(s.open.begin(), s.open.end())) stream->close();
}

}  // namespace orgpatch
