#include "orgpatch/connection_pool.hpp"

#include "orgpatch/asio.hpp"
#include "orgpatch/error.hpp"
#include "orgpatch/response.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <cstring>
#include <unordered_set>
#include <vector>

namespace orgpatch {

namespace http = beast::http;
using boost::system::error_code;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t k_read_chunk = 17 * 1024;  // a whole TLS record and its overhead
constexpr std::size_t k_max_header = 64 * 1024;

// The watchdog's period: fine enough for the shortest timeout, coarse enough
// to cost nothing.
clock_type::duration watch_period(const pool_params& p) {
  const clock_type::duration shortest = std::min(p.connect_timeout, p.request_timeout);
  return std::clamp<clock_type::duration>(shortest / 8, 1ms, 250ms);
}

// The first OpenSSL error of this thread as an error_code (Asio's SSL
// category, so its message is OpenSSL's reason), the queue left empty.
error_code take_ssl_error() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return ssl::error::stream_truncated;
  return error_code(static_cast<int>(e), net::error::get_ssl_category());
}

// Empties this thread's OpenSSL error queue; looks before clearing, since
// clearing walks every slot and the queue is empty as a rule.
void clear_ssl_errors() {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

}  // namespace

struct connection_pool::impl {
  impl(net::any_io_executor ex, pool_params p)
      : executor(ex), params(std::move(p)), available(ex), watchdog(ex), tick(watch_period(params)) {
    available.expires_at(net::steady_timer::time_point::max());
    error_code ec;
    (void)net::ip::make_address(params.target.host, ec);
    host_is_ip = !ec;
  }
  ~impl() {
    *alive = false;
    for (SSL_SESSION* s : sessions) SSL_SESSION_free(s);
  }

  /// Starts the watchdog unless it runs: it closes the connections past their
  /// deadline, and stops once no connection has one.
  void watch();

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
  // Sessions to resume, newest last; each offered once (RFC 8446 C.4: a TLS
  // 1.3 ticket should not be used twice), one kept per connection at most.
  std::vector<SSL_SESSION*> sessions;
  std::uint64_t opened = 0;
  std::uint64_t resumed = 0;
  net::steady_timer watchdog;
  clock_type::duration tick;
  bool watching = false;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);  // the watchdog's handler may outlive us
};

/// One connection: its socket, its TLS state, and its reused buffers.
///
/// TLS: OpenSSL works through a BIO of ours over two buffers, so that the
/// socket I/O stays Asio's (speculative, one syscall per step) and no layer
/// copies or allocates in between: ciphertext that arrived waits in `raw_`,
/// ciphertext to send collects in `cipher_out_`, plain text waits in `text_`.
class connection {
 public:
  explicit connection(connection_pool::impl& pool)
      : pool_(pool),
        socket_(pool.executor),
        reader_(pool.params.max_response_bytes, k_max_header, response_parser::padding()),
        raw_(k_read_chunk) {
    if (pool.params.target.tls) text_.resize(k_read_chunk);
  }
  ~connection() { free_tls(); }

  std::string request;
  http_response response;
  clock_type::time_point deadline = clock_type::time_point::max();

  void close() noexcept {
    error_code ignored;
    socket_.close(ignored);
    connected_ = false;
  }

  /// Past its deadline: abort what it is waiting for.
  void time_out() noexcept {
    timed_out_ = true;
    deadline = clock_type::time_point::max();
    close();
  }

  /// Whether the pool may lend it again: its last exchange succeeded and the
  /// server keeps the connection open.
  bool reusable() const noexcept { return !broken_; }

  /// One request and its response, on this connection or (once) a fresh one.
  /// One coroutine frame: the hot path calls no other coroutine.
  net::awaitable<std::optional<exchange_error>> exchange() {
    // A reused connection may have been closed by the server while idle: one
    // fresh retry when nothing of the response arrived.
    for (int round = 0;; ++round) {
      const bool reused = connected_ && requests_ > 0;
      if (!connected_) {
        auto err = co_await connect();
        if (err) {
          broken_ = true;
          co_return err;
        }
      }
      std::optional<exchange_error> result;
      do {
        arm(pool_.params.request_timeout);
        // One TLS record for the whole request (most requests), sent in one write.
        std::string_view out = request;
        if (ssl_) {
          cipher_out_.clear();
          // SSL_get_error reads this thread's error queue: it must start empty.
          clear_ssl_errors();
          if (SSL_write(ssl_, request.data(), static_cast<int>(request.size())) <= 0) {
            result = failure(take_ssl_error(), false, "sending the request");
            break;
          }
          out = cipher_out_;
        }
        error_code ec;
        const std::size_t sent = try_send(out, ec);
        if (!ec && sent < out.size()) {
          auto [wec, n] = co_await net::async_write(socket_, net::buffer(out.data() + sent, out.size() - sent));
          ec = wec;
        }
        if (ec) {
          result = failure(ec, false, "sending the request");
          break;
        }
        cipher_out_.clear();

        reader_.start(response);
        // No byte of the answer can be here yet when none waits, in our buffers
        // or OpenSSL's: wait for the socket first rather than ask OpenSSL in vain.
        const bool nothing_yet = raw_begin_ == raw_end_ && text_begin_ == text_end_ && !peer_eof_ &&
                                 (!ssl_ || SSL_has_pending(ssl_) == 0);
        for (bool parse = !nothing_yet;; parse = true) {
          if (parse) {
            const feed_result fed = ssl_ ? feed_tls() : feed_plain();
            if (fed == feed_result::tls_error) {
              result = failure(tls_error_, reader_.got_some(), "reading the response");
              break;
            }
            if (fed == feed_result::need_bytes && peer_eof_) reader_.put_eof();
            if (reader_.status() == http_reader::state::failed) {
              result = failure(reader_.error(), reader_.got_some(), "reading the response");
              break;
            }
            if (reader_.status() == http_reader::state::done) break;
          }
          // Nothing more to parse: wait for the socket (unless what waits is
          // already more than any header or chunk line may be).
          if (!make_room(raw_, raw_begin_, raw_end_)) {
            result = failure(too_long(), true, "reading the response");
            break;
          }
          auto [rec, n] = co_await socket_.async_read_some(net::buffer(raw_.data() + raw_end_, raw_.size() - raw_end_));
          raw_end_ += n;
          if (rec == net::error::eof) {
            peer_eof_ = true;
          } else if (rec) {
            result = failure(rec, reader_.got_some() || n > 0, "reading the response");
            break;
          }
        }
      } while (false);
      deadline = clock_type::time_point::max();
      if (!result) {
        // Bytes past the response answer nothing we sent: do not reuse the connection.
        if (raw_end_ != raw_begin_ || text_end_ != text_begin_ || (ssl_ && SSL_has_pending(ssl_)))
          response.keep_alive = false;
        if (ssl_ && requests_ == 0) keep_session();
        ++requests_;
        broken_ = !response.keep_alive;
        co_return std::nullopt;
      }
      close();
      broken_ = true;
      // Only a connection the server closed while idle is retried on a fresh one:
      // after a timeout the request may be under way.
      if (reused && !result->response_started && result->peer_closed && round == 0 && !pool_.closed) continue;
      co_return result;
    }
  }

  static BIO_METHOD* bio_method();

 private:
  // --- the request and its response -----------------------------------------

  enum class feed_result { progress, need_bytes, tls_error };

  // Plain HTTP: the reader parses the received bytes in place.
  feed_result feed_plain() {
    raw_begin_ += reader_.put(std::string_view(raw_.data() + raw_begin_, raw_end_ - raw_begin_));
    if (raw_begin_ == raw_end_) raw_begin_ = raw_end_ = 0;
    return feed_result::need_bytes;
  }

  // TLS: decrypt what arrived and parse it, until the response is complete or
  // OpenSSL needs more bytes from the socket.
  feed_result feed_tls() {
    for (;;) {
      text_begin_ += reader_.put(std::string_view(text_.data() + text_begin_, text_end_ - text_begin_));
      if (text_begin_ == text_end_) text_begin_ = text_end_ = 0;
      if (reader_.status() != http_reader::state::need_more) return feed_result::progress;
      if (!make_room(text_, text_begin_, text_end_)) {
        tls_error_ = too_long();
        return feed_result::tls_error;
      }
      clear_ssl_errors();
      const int n = SSL_read(ssl_, text_.data() + text_end_, static_cast<int>(text_.size() - text_end_));
      // A key update or an alert may want to go out.
      if (!cipher_out_.empty() && !flush_cipher_now()) {
        tls_error_ = net::error::would_block;
        return feed_result::tls_error;
      }
      if (n > 0) {
        text_end_ += static_cast<std::size_t>(n);
        continue;
      }
      switch (SSL_get_error(ssl_, n)) {
        case SSL_ERROR_WANT_READ:
          return feed_result::need_bytes;
        case SSL_ERROR_ZERO_RETURN:  // close_notify: the server closed
          peer_eof_ = true;
          return feed_result::need_bytes;
        default:
          if (peer_eof_) {
            ERR_clear_error();
            return feed_result::need_bytes;  // closed without close_notify
          }
          tls_error_ = take_ssl_error();
          return feed_result::tls_error;
      }
    }
  }

  // Moves unread bytes to the front, or grows the buffer when it is full of
  // them (a header across reads); false past the header limit.
  static bool make_room(std::vector<char>& buf, std::size_t& begin, std::size_t& end) {
    if (end < buf.size()) return true;
    if (begin > 0) {
      std::memmove(buf.data(), buf.data() + begin, end - begin);
      end -= begin;
      begin = 0;
      return true;
    }
    if (buf.size() >= k_max_header + k_read_chunk) return false;
    buf.resize(buf.size() * 2);
    return true;
  }

  // Writes what the socket takes at once (the rule: all of it); the caller
  // sends the rest through the reactor.
  std::size_t try_send(std::string_view data, error_code& ec) {
    const std::size_t sent = socket_.write_some(net::buffer(data.data(), data.size()), ec);
    if (ec == net::error::would_block || ec == net::error::try_again) {
      ec = {};
      return 0;
    }
    return ec ? 0 : sent;
  }

  // Sends `data` whole (the handshake's messages).
  net::awaitable<error_code> send_all(std::string_view data) {
    error_code ec;
    const std::size_t sent = try_send(data, ec);
    if (!ec && sent < data.size()) {
      auto [wec, n] = co_await net::async_write(socket_, net::buffer(data.data() + sent, data.size() - sent));
      ec = wec;
    }
    co_return ec;
  }

  // Ciphertext produced while reading (rare: a TLS 1.3 key update's answer):
  // written without waiting; the socket's buffer has room for such a record.
  // False when it could not (the exchange then fails).
  bool flush_cipher_now() {
    error_code ec;
    const std::size_t n = socket_.write_some(net::buffer(cipher_out_), ec);
    const bool whole = !ec && n == cipher_out_.size();
    cipher_out_.clear();
    return whole;
  }

  // --- connecting -------------------------------------------------------------

  net::awaitable<std::optional<exchange_error>> connect() {
    auto& p = pool_.params;
    // A new socket and TLS state each time: an SSL object that carried a
    // session cannot start another.
    close();
    free_tls();
    socket_ = tcp_socket(pool_.executor);
    raw_begin_ = raw_end_ = text_begin_ = text_end_ = 0;
    peer_eof_ = false;
    if (!pool_.resolved) {
      tcp_resolver resolver(pool_.executor);
      auto [ec, results] = co_await resolver.async_resolve(p.target.host, p.target.port);
      if (ec)
        co_return exchange_error{ec, fmt::format("cannot resolve {}: {}", p.target.host, ec.message())};
      if (!pool_.resolved) pool_.resolved = std::move(results);
    }
    if (pool_.closed) co_return exchange_error{errc::stopped, "stopped"};
    arm(p.connect_timeout);
    // Each address in turn, within the one connect timeout.
    error_code ec = net::error::host_not_found;
    for (const auto& entry : *pool_.resolved) {
      if (timed_out_ || pool_.closed) break;
      error_code ignored;
      socket_.close(ignored);
      auto [cec] = co_await socket_.async_connect(entry.endpoint());
      ec = cec;
      if (!ec) break;
    }
    if (!ec && pool_.closed) ec = errc::stopped;
    if (ec) {
      if (timed_out_) ec = errc::request_timeout;
      co_return exchange_error{ec, fmt::format("connect to {}: {}", p.target.origin, ec.message())};
    }
    ++pool_.opened;
    error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    socket_.non_blocking(true, ignored);
    if (p.target.tls) {
      if (auto err = co_await handshake()) {
        close();
        co_return err;
      }
    }
    deadline = clock_type::time_point::max();
    connected_ = true;
    requests_ = 0;
    co_return std::nullopt;
  }

  net::awaitable<std::optional<exchange_error>> handshake() {
    auto& p = pool_.params;
    ssl_ = SSL_new(pool_.tls_ctx.native_handle());
    BIO* bio = ssl_ ? BIO_new(bio_method()) : nullptr;
    if (!bio) co_return exchange_error{take_ssl_error(), "TLS: cannot create a session"};
    BIO_set_data(bio, this);
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl_, bio, bio);
    SSL_set_connect_state(ssl_);
    SSL_set_read_ahead(ssl_, 1);
    // SNI only for names (RFC 6066); the certificate is checked against the
    // name or the IP address by OpenSSL itself, so its verify result says why.
    if (!pool_.host_is_ip) SSL_set_tlsext_host_name(ssl_, p.target.host.c_str());
    if (p.verify) {
      X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      const int ok = pool_.host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, p.target.host.c_str())
                                      : X509_VERIFY_PARAM_set1_host(param, p.target.host.c_str(), 0);
      if (ok != 1) co_return exchange_error{errc::tls_verification_failed, "TLS: cannot set the host to verify", true};
    }
    while (!pool_.sessions.empty()) {
      SSL_SESSION* offered = pool_.sessions.back();
      pool_.sessions.pop_back();
      const bool usable = SSL_SESSION_is_resumable(offered) == 1;
      if (usable) SSL_set_session(ssl_, offered);  // takes its own reference
      SSL_SESSION_free(offered);
      if (usable) break;
    }
    for (;;) {
      cipher_out_.clear();
      clear_ssl_errors();
      const int r = SSL_do_handshake(ssl_);
      if (!cipher_out_.empty()) {
        if (auto ec = co_await send_all(cipher_out_)) {
          ERR_clear_error();
          co_return handshake_failure(ec);
        }
        cipher_out_.clear();
      }
      if (r == 1) break;
      if (SSL_get_error(ssl_, r) == SSL_ERROR_WANT_READ && !peer_eof_) {
        make_room(raw_, raw_begin_, raw_end_);
        auto [ec, n] = co_await socket_.async_read_some(net::buffer(raw_.data() + raw_end_, raw_.size() - raw_end_));
        raw_end_ += n;
        if (ec == net::error::eof) peer_eof_ = true;
        else if (ec) co_return handshake_failure(ec);
        continue;
      }
      const long verify = SSL_get_verify_result(ssl_);
      if (p.verify && verify != X509_V_OK) {
        ERR_clear_error();
        co_return exchange_error{errc::tls_verification_failed,
                                 fmt::format("TLS: certificate verification of {} failed: {}", p.target.origin,
                                             X509_verify_cert_error_string(verify)),
                                 true};
      }
      const error_code failed = take_ssl_error();  // empties the queue either way
      co_return handshake_failure(peer_eof_ ? error_code(net::error::eof) : failed);
    }
    if (SSL_session_reused(ssl_)) ++pool_.resumed;
    co_return std::nullopt;
  }

  exchange_error handshake_failure(error_code ec) {
    if (timed_out_) ec = errc::request_timeout;
    return exchange_error{ec, fmt::format("TLS handshake with {}: {}", pool_.params.target.origin, ec.message())};
  }

  // TLS 1.3 tickets arrive after the handshake: keep the newest session.
  void keep_session() {
    // A copy: the connection's own session stops being resumable when the
    // connection is freed without a TLS shutdown (OpenSSL 3), as ours are.
    if (SSL_SESSION* s = SSL_SESSION_dup(SSL_get0_session(ssl_))) {
      auto& kept = pool_.sessions;
      if (kept.size() >= std::max(1u, pool_.params.max_connections)) {
        SSL_SESSION_free(kept.front());
        kept.erase(kept.begin());
      }
      kept.push_back(s);
    }
  }

  void free_tls() noexcept {
    if (ssl_) SSL_free(ssl_);  // frees the BIO too
    ssl_ = nullptr;
    cipher_out_.clear();
  }

  void arm(clock_type::duration timeout) {
    timed_out_ = false;
    deadline = clock_type::now() + timeout;
    if (!pool_.watching) pool_.watch();
  }

  // What waits unparsed outgrew the buffer: a header line, or a chunk line.
  error_code too_long() const {
    return reader_.header_done() ? http::error::body_limit : http::error::header_limit;
  }

  exchange_error failure(error_code ec, bool started, std::string_view step) {
    const auto& origin = pool_.params.target.origin;
    // Closed or reset by the server: on a reused connection before any byte of
    // the answer, the idle keep-alive race, worth one fresh connection.
    const bool peer_closed = ec == net::error::eof || ec == http::error::end_of_stream ||
                             ec == net::error::connection_reset || ec == net::error::broken_pipe ||
                             ec == ssl::error::stream_truncated;
    if (timed_out_) ec = errc::request_timeout;
    else if (ec == http::error::header_limit)
      ec = errc::response_header_too_large;
    else if (ec == http::error::body_limit || ec == http::error::buffer_overflow)
      ec = errc::response_too_large;
    else if (peer_closed || ec == http::error::partial_message)
      ec = started ? error_code(errc::response_truncated) : ec;
    else if (ec.category() == http::make_error_code(http::error::bad_target).category())
      ec = errc::response_malformed;
    exchange_error e{ec, fmt::format("{} {}: {}", step, origin, ec.message()), false, started};
    e.peer_closed = peer_closed && !timed_out_;
    return e;
  }

  // --- the BIO between OpenSSL and the buffers --------------------------------

  static int bio_write(BIO* b, const char* data, std::size_t n, std::size_t* written) {
    auto* c = static_cast<connection*>(BIO_get_data(b));
    c->cipher_out_.append(data, n);
    *written = n;
    return 1;
  }

  static int bio_read(BIO* b, char* out, std::size_t n, std::size_t* got) {
    auto* c = static_cast<connection*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    const std::size_t avail = c->raw_end_ - c->raw_begin_;
    *got = 0;
    if (avail == 0) {
      if (!c->peer_eof_) BIO_set_retry_read(b);
      return 0;
    }
    const std::size_t k = std::min(n, avail);
    std::memcpy(out, c->raw_.data() + c->raw_begin_, k);
    c->raw_begin_ += k;
    if (c->raw_begin_ == c->raw_end_) c->raw_begin_ = c->raw_end_ = 0;
    *got = k;
    return 1;
  }

  static long bio_ctrl(BIO* b, int cmd, long, void*) {
    auto* c = static_cast<connection*>(BIO_get_data(b));
    switch (cmd) {
      case BIO_CTRL_FLUSH:
        return 1;
      case BIO_CTRL_EOF:
        return c && c->peer_eof_ && c->raw_begin_ == c->raw_end_;
      default:
        return 0;
    }
  }

  static int bio_create(BIO* b) {
    BIO_set_init(b, 0);
    return 1;
  }

  connection_pool::impl& pool_;
  tcp_socket socket_;
  SSL* ssl_ = nullptr;
  http_reader reader_;
  std::vector<char> raw_;  // bytes from the socket (ciphertext under TLS) not yet used
  std::size_t raw_begin_ = 0, raw_end_ = 0;
  std::vector<char> text_;  // TLS: decrypted bytes not yet parsed
  std::size_t text_begin_ = 0, text_end_ = 0;
  std::string cipher_out_;  // TLS: ciphertext to send
  error_code tls_error_;
  bool peer_eof_ = false;
  bool timed_out_ = false;
  bool connected_ = false;
  bool broken_ = false;  // its last exchange failed, or the server closes it
  unsigned requests_ = 0;
};

BIO_METHOD* connection::bio_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "orgpatchd connection");
    BIO_meth_set_write_ex(m, &connection::bio_write);
    BIO_meth_set_read_ex(m, &connection::bio_read);
    BIO_meth_set_ctrl(m, &connection::bio_ctrl);
    BIO_meth_set_create(m, &connection::bio_create);
    return m;
  }();
  return method;
}

void connection_pool::impl::watch() {
  watching = true;
  watchdog.expires_after(tick);
  watchdog.async_wait([this, alive = alive](error_code ec) {
    if (ec || !*alive) return;  // cancelled, or the pool is gone
    const auto now = clock_type::now();
    bool any = false;
    for (connection* c : all) {
      if (c->deadline == clock_type::time_point::max()) continue;
      if (now >= c->deadline) c->time_out();
      else any = true;
    }
    if (any && !closed) watch();
    else watching = false;
  });
}

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

std::string& lease::request() noexcept { return conn_->request; }
http_response& lease::response() noexcept { return conn_->response; }

net::awaitable<std::optional<exchange_error>> lease::exchange() { return conn_->exchange(); }

// --- pool --------------------------------------------------------------------

connection_pool::connection_pool(net::any_io_executor ex, pool_params params)
    : impl_(std::make_unique<impl>(ex, std::move(params))) {
  auto& ctx = impl_->tls_ctx;
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                  ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  // The pool keeps its own sessions: none in the context's cache, which would only grow.
  SSL_CTX_set_session_cache_mode(ctx.native_handle(), SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_set_options(ctx.native_handle(), SSL_OP_NO_RENEGOTIATION);
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

std::optional<lease> connection_pool::try_acquire() {
  auto& s = *impl_;
  if (s.closed) return std::nullopt;
  if (!s.idle.empty()) {
    auto c = std::move(s.idle.back());
    s.idle.pop_back();
    return lease(this, std::move(c));
  }
  if (s.open < s.params.max_connections) {
    ++s.open;
    auto c = std::make_unique<connection>(s);
    s.all.insert(c.get());
    return lease(this, std::move(c));
  }
  return std::nullopt;
}

net::awaitable<lease> connection_pool::acquire() {
  auto& s = *impl_;
  for (;;) {
    if (s.closed) throw boost::system::system_error(make_error_code(errc::stopped));
    if (auto l = try_acquire()) co_return std::move(*l);
    // Wait until a lease comes back (give_back cancels one waiter).
    co_await s.available.async_wait();
  }
}

void connection_pool::give_back(std::unique_ptr<connection> c, bool discard) noexcept {
  auto& s = *impl_;
  c->deadline = clock_type::time_point::max();
  if (discard || s.closed || !c->reusable()) {
    c->close();
    s.all.erase(c.get());
    --s.open;
  } else {
    s.idle.push_back(std::move(c));
  }
  s.available.cancel_one();
}

void connection_pool::close_all() {
  auto& s = *impl_;
  s.closed = true;
  for (connection* c : s.all) c->close();
  s.available.cancel();
  s.watchdog.cancel();
}

std::uint64_t connection_pool::connections_opened() const noexcept { return impl_->opened; }
std::uint64_t connection_pool::tls_resumed() const noexcept { return impl_->resumed; }
unsigned connection_pool::connections_open() const noexcept { return impl_->open; }

}  // namespace orgpatch
