#include "orgpatch/connection_pool.hpp"

#include "orgpatch/asio.hpp"
#include "orgpatch/error.hpp"
#include "orgpatch/response.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <unordered_set>
#include <variant>

namespace orgpatch {

namespace http = beast::http;
using boost::system::error_code;

struct connection_pool::impl {
  impl(net::any_io_executor ex, pool_params p) : executor(ex), params(std::move(p)), available(ex) {
    available.expires_at(net::steady_timer::time_point::max());
    error_code ec;
    (void)net::ip::make_address(params.target.host, ec);
    host_is_ip = !ec;
  }
  ~impl() {
    if (session) SSL_SESSION_free(session);
  }

  net::any_io_executor executor;
  pool_params params;
  ssl::context tls_ctx{ssl::context::tls_client};
  bool host_is_ip = false;
  std::optional<tcp::resolver::results_type> resolved;
  std::vector<std::unique_ptr<connection>> idle;
  std::unordered_set<connection*> all;  // every existing connection, leased or idle
  unsigned open = 0;
  steady_timer available;
  bool closed = false;
  SSL_SESSION* session = nullptr;  // the last session, offered on reconnect
  std::uint64_t opened = 0;
  std::uint64_t resumed = 0;
};

/// One connection: a TLS or a plain stream, its read buffer, and how many
/// requests it has carried.
class connection {
 public:
  connection(connection_pool::impl& pool) : pool_(pool) {
    if (pool.params.target.tls) tls_.emplace(pool.executor, pool.tls_ctx);
    else plain_.emplace(pool.executor);
  }

  tcp_stream& lowest() { return tls_ ? tls_->next_layer() : *plain_; }

  void close() noexcept {
    error_code ignored;
    lowest().socket().close(ignored);
    connected_ = false;
  }

  net::awaitable<std::optional<exchange_error>> exchange(const std::string& request, http_response& out) {
    // A reused connection may have been closed by the server while idle: one
    // fresh retry when nothing of the response arrived.
    for (int round = 0;; ++round) {
      const bool reused = connected_ && requests_ > 0;
      if (!connected_) {
        if (auto err = co_await connect()) co_return err;
      }
      // (Not a conditional expression: g++ 12 destroys a co_await result in ?: twice.)
      std::optional<exchange_error> result;
      if (tls_) result = co_await exchange_on(*tls_, request, out);
      else result = co_await exchange_on(*plain_, request, out);
      if (!result) {
        ++requests_;
        co_return std::nullopt;
      }
      close();
      // Only a connection the server closed while idle is retried on a fresh one:
      // after a timeout the request may be under way.
      if (reused && !result->response_started && result->peer_closed && round == 0 && !pool_.closed) continue;
      co_return result;
    }
  }

 private:
  net::awaitable<std::optional<exchange_error>> connect() {
    auto& p = pool_.params;
    // A new stream each time: an SSL object that carried a session cannot start another.
    if (used_) {
      if (tls_) tls_.emplace(pool_.executor, pool_.tls_ctx);
      else plain_.emplace(pool_.executor);
      buffer_.clear();
    }
    used_ = true;
    if (!pool_.resolved) {
      tcp_resolver resolver(pool_.executor);
      auto [ec, results] = co_await resolver.async_resolve(p.target.host, p.target.port);
      if (ec)
        co_return exchange_error{ec, fmt::format("cannot resolve {}: {}", p.target.host, ec.message())};
      if (!pool_.resolved) pool_.resolved = std::move(results);
    }
    if (pool_.closed) co_return exchange_error{errc::stopped, "stopped"};
    auto& tcp = lowest();
    tcp.expires_after(p.connect_timeout);
    auto [ec, ep] = co_await tcp.async_connect(*pool_.resolved, use_tuple);
    if (!ec && pool_.closed) ec = errc::stopped;
    if (ec) {
      if (ec == beast::error::timeout) ec = errc::request_timeout;
      co_return exchange_error{ec, fmt::format("connect to {}: {}", p.target.origin, ec.message())};
    }
    ++pool_.opened;
    error_code ignored;
    tcp.socket().set_option(tcp::no_delay(true), ignored);
    if (tls_) {
      SSL* ssl = tls_->native_handle();
      // SNI only for names (RFC 6066); the certificate is checked against the
      // name or the IP address by OpenSSL itself, so its verify result says why.
      if (!pool_.host_is_ip) SSL_set_tlsext_host_name(ssl, p.target.host.c_str());
      if (p.verify) {
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        const int ok = pool_.host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, p.target.host.c_str())
                                        : X509_VERIFY_PARAM_set1_host(param, p.target.host.c_str(), 0);
        if (ok != 1) co_return exchange_error{errc::tls_verification_failed, "TLS: cannot set the host to verify", true};
      }
      if (pool_.session) SSL_set_session(ssl, pool_.session);
      tcp.expires_after(p.connect_timeout);
      auto [hec] = co_await tls_->async_handshake(ssl::stream_base::client, use_tuple);
      if (hec) {
        const long verify = SSL_get_verify_result(ssl);
        close();
        if (p.verify && verify != X509_V_OK) {
          co_return exchange_error{errc::tls_verification_failed,
                                   fmt::format("TLS: certificate verification of {} failed: {}", p.target.origin,
                                               X509_verify_cert_error_string(verify)),
                                   true};
        }
        if (hec == beast::error::timeout) hec = errc::request_timeout;
        co_return exchange_error{hec, fmt::format("TLS handshake with {}: {}", p.target.origin, hec.message())};
      }
      if (SSL_session_reused(ssl)) ++pool_.resumed;
    }
    connected_ = true;
    requests_ = 0;
    co_return std::nullopt;
  }

  template <class Stream>
  net::awaitable<std::optional<exchange_error>> exchange_on(Stream& stream, const std::string& request,
                                                           http_response& out) {
    auto& p = pool_.params;
    auto& tcp = lowest();
    tcp.expires_after(p.request_timeout);
    auto [wec, written] = co_await net::async_write(stream, net::buffer(request), use_tuple);
    if (wec) co_return failure(wec, false, "sending the request");

    // Interim 1xx answers (103 Early Hints…) come before the real one: skip them.
    std::optional<http::response_parser<http::string_body>> parser;
    for (int interim = 0;; ++interim) {
      parser.emplace();
      parser->body_limit(p.max_response_bytes);
      parser->header_limit(64 * 1024);
      auto [rec, n] = co_await http::async_read(stream, buffer_, *parser, use_tuple);
      if (rec) co_return failure(rec, interim > 0 || parser->got_some() || buffer_.size() > 0, "reading the response");
      const unsigned status = parser->get().result_int();
      if (status < 100 || status >= 200 || status == 101) break;
      if (interim >= 8) co_return failure(errc::response_malformed, true, "reading the response (too many 1xx)");
    }
    tcp.expires_never();

    auto& msg = parser->get();
    out.status = msg.result_int();
    out.chunked = msg.chunked();
    out.keep_alive = msg.keep_alive();
    auto header = [&](std::string_view name, std::string& into) {
      auto it = msg.find(name);
      if (it == msg.end()) into.clear();
      else into.assign(it->value().data(), it->value().size());
    };
    header("Retry-After", out.retry_after);
    header("ratelimit-remaining", out.ratelimit_remaining);
    header("ratelimit-reset", out.ratelimit_reset);
    // Keep the body in the caller's reused buffer, with simdjson's padding.
    const auto& body = msg.body();
    out.body.reserve(body.size() + response_parser::padding());
    out.body.assign(body.data(), body.size());

    // TLS 1.3 tickets arrive after the handshake: keep the newest session.
    if constexpr (std::is_same_v<Stream, tls_stream>) {
      if (requests_ == 0) {
        if (SSL_SESSION* s = SSL_get1_session(stream.native_handle())) {
          if (pool_.session) SSL_SESSION_free(pool_.session);
          pool_.session = s;
        }
      }
    }
    co_return std::nullopt;
  }

  exchange_error failure(error_code ec, bool started, std::string_view step) {
    const auto& origin = pool_.params.target.origin;
    // Closed or reset by the server: on a reused connection before any byte of
    // the answer, the idle keep-alive race, worth one fresh connection.
    const bool peer_closed = ec == net::error::eof || ec == http::error::end_of_stream ||
                             ec == net::error::connection_reset || ec == net::error::broken_pipe ||
                             ec == ssl::error::stream_truncated;
    if (ec == beast::error::timeout) ec = errc::request_timeout;
    else if (ec == http::error::body_limit || ec == http::error::header_limit || ec == http::error::buffer_overflow)
      ec = errc::response_too_large;
    else if (peer_closed || ec == http::error::partial_message)
      ec = started ? error_code(errc::response_truncated) : ec;
    else if (ec.category() == http::make_error_code(http::error::bad_target).category())
      ec = errc::response_malformed;
    exchange_error e{ec, fmt::format("{} {}: {}", step, origin, ec.message()), false, started};
    e.peer_closed = peer_closed;
    return e;
  }

  connection_pool::impl& pool_;
  std::optional<tls_stream> tls_;
  std::optional<tcp_stream> plain_;
  beast::flat_buffer buffer_;
  bool connected_ = false;
  bool used_ = false;  // the stream has been connected before
  unsigned requests_ = 0;
};

// --- lease -------------------------------------------------------------------

lease::lease(connection_pool* pool, std::unique_ptr<connection> c) noexcept : pool_(pool), conn_(std::move(c)) {}
lease::lease(lease&& o) noexcept : pool_(o.pool_), conn_(std::move(o.conn_)), discard_(o.discard_) { o.pool_ = nullptr; }
lease& lease::operator=(lease&& o) noexcept {
  if (this != &o) {
    if (pool_ && conn_) pool_->give_back(std::move(conn_), discard_);
    pool_ = o.pool_;
    conn_ = std::move(o.conn_);
    discard_ = o.discard_;
    o.pool_ = nullptr;
  }
  return *this;
}
lease::~lease() {
  if (pool_ && conn_) pool_->give_back(std::move(conn_), discard_);
}

net::awaitable<std::optional<exchange_error>> lease::exchange(const std::string& request, http_response& out) {
  auto err = co_await conn_->exchange(request, out);
  if (err || !out.keep_alive) discard_ = true;
  co_return err;
}

// --- pool --------------------------------------------------------------------

connection_pool::connection_pool(net::any_io_executor ex, pool_params params)
    : impl_(std::make_unique<impl>(ex, std::move(params))) {
  auto& ctx = impl_->tls_ctx;
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                  ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  SSL_CTX_set_session_cache_mode(ctx.native_handle(), SSL_SESS_CACHE_CLIENT);
  if (impl_->params.verify) {
    ctx.set_verify_mode(ssl::verify_peer);
    error_code ec;
    if (impl_->params.ca_file) {
      ctx.load_verify_file(*impl_->params.ca_file, ec);
      if (ec) throw std::runtime_error(fmt::format("tls.ca_file {}: cannot load: {}", *impl_->params.ca_file, ec.message()));
    } else {
      ctx.set_default_verify_paths(ec);
      if (ec) throw std::runtime_error(fmt::format("cannot load the system CA certificates: {}", ec.message()));
    }
  } else {
    ctx.set_verify_mode(ssl::verify_none);
  }
}

connection_pool::~connection_pool() = default;

net::awaitable<lease> connection_pool::acquire() {
  auto& s = *impl_;
  for (;;) {
    if (s.closed) throw boost::system::system_error(make_error_code(errc::stopped));
    if (!s.idle.empty()) {
      auto c = std::move(s.idle.back());
      s.idle.pop_back();
      co_return lease(this, std::move(c));
    }
    if (s.open < s.params.max_connections) {
      ++s.open;
      auto c = std::make_unique<connection>(s);
      s.all.insert(c.get());
      co_return lease(this, std::move(c));
    }
    // Wait until a lease comes back (give_back cancels one waiter).
    co_await s.available.async_wait();
  }
}

void connection_pool::give_back(std::unique_ptr<connection> c, bool discard) noexcept {
  auto& s = *impl_;
  if (discard || s.closed) {
    c->close();
    s.all.erase(c.get());
    --s.open;
  } else {
    c->lowest().expires_never();
    s.idle.push_back(std::move(c));
  }
  s.available.cancel_one();
}

void connection_pool::close_all() {
  auto& s = *impl_;
  s.closed = true;
  for (connection* c : s.all) c->close();
  s.available.cancel();
}

std::uint64_t connection_pool::connections_opened() const noexcept { return impl_->opened; }
std::uint64_t connection_pool::tls_resumed() const noexcept { return impl_->resumed; }
unsigned connection_pool::connections_open() const noexcept { return impl_->open; }

}  // namespace orgpatch
