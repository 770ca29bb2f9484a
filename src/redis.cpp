#include "orgpatch/redis.hpp"

#include "orgpatch/asio.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <fmt/format.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <charconv>
#include <csignal>
#include <mutex>
#include <stdexcept>

namespace orgpatch {

using boost::system::error_code;
using std::chrono::milliseconds;

// --- errors ------------------------------------------------------------------

namespace {

class redis_error_category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "orgpatch.redis"; }
  std::string message(int ev) const override {
    switch (static_cast<redis_errc>(ev)) {
      case redis_errc::disconnected: return "connection to Redis lost";
      case redis_errc::timeout: return "Redis did not answer in time";
      case redis_errc::not_connected: return "not connected to Redis";
      case redis_errc::connect_failed: return "cannot connect to Redis";
      case redis_errc::closed: return "Redis connection closed";
      case redis_errc::unexpected_reply: return "unexpected reply from Redis";
    }
    return "unknown Redis error";
  }
};

}  // namespace

const boost::system::error_category& redis_category() noexcept {
  static const redis_error_category instance;
  return instance;
}

// --- replies -----------------------------------------------------------------

bool redis_reply::is_error(std::string_view code) const noexcept {
  if (type != kind::error || str.size() < code.size()) return false;
  if (std::string_view(str).substr(0, code.size()) != code) return false;
  return str.size() == code.size() || str[code.size()] == ' ';
}

std::string redis_reply::describe() const {
  switch (type) {
    case kind::nil: return "nil";
    case kind::status: return "status " + str;
    case kind::error: return "error " + str;
    case kind::integer: return fmt::format("integer {}", integer);
    case kind::string: return fmt::format("string of {} bytes", str.size());
    case kind::array: return fmt::format("array of {}", elements.size());
  }
  return "?";
}

namespace {

redis_reply convert(const redisReply& r) {
  redis_reply out;
  switch (r.type) {
    case REDIS_REPLY_STRING:
      out.type = redis_reply::kind::string;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = redis_reply::kind::status;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = redis_reply::kind::error;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = redis_reply::kind::integer;
      out.integer = r.integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = redis_reply::kind::array;
      out.elements.reserve(r.elements);
      for (std::size_t i = 0; i < r.elements; ++i) out.elements.push_back(convert(*r.element[i]));
      break;
    default:
      out.type = redis_reply::kind::nil;
      break;
  }
  return out;
}

}  // namespace

// --- URL ---------------------------------------------------------------------

redis_endpoint parse_redis_url(std::string_view url) {
  auto fail = [&](std::string_view why) {
    throw std::invalid_argument(fmt::format("Redis URL \"{}\": {}", url, why));
  };
  constexpr std::string_view scheme = "redis://";
  if (url.substr(0, scheme.size()) != scheme) {
    if (url.substr(0, 9) == "rediss://")
      fail("TLS (rediss://) is not supported: hiredis 0.14 has no TLS; use redis:// through a TLS tunnel");
    if (url.substr(0, 7) == "unix://") fail("Unix sockets are not supported; use redis://host:port");
    fail("expected redis://host[:port]");
  }
  std::string_view rest = url.substr(scheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find_first_of("?#") != std::string_view::npos) fail("query or fragment not supported");
  if (rest.find('@') != std::string_view::npos) fail("a user or password is not supported");
  if (rest.find('/') != std::string_view::npos) fail("a database number or path is not supported");

  redis_endpoint e;
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) fail("unterminated '[' in the host");
    e.host = std::string(rest.substr(1, close - 1));
    const auto after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') fail("expected ':port' after ']'");
      port = after.substr(1);
      if (port.empty()) fail("empty port");
    }
  } else {
    const auto colon = rest.find(':');
    e.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = rest.substr(colon + 1);
      if (port.find(':') != std::string_view::npos) fail("an IPv6 address goes in brackets: redis://[::1]:6379");
      if (port.empty()) fail("empty port");
    }
  }
  if (e.host.empty()) fail("no host");
  if (!port.empty()) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc{} || end != port.data() + port.size() || value == 0 || value > 65535)
      fail(fmt::format("\"{}\" is not a port number (1-65535)", port));
    e.port = static_cast<std::uint16_t>(value);
  }
  return e;
}

// --- the connection ----------------------------------------------------------

namespace {

/// The awaiting side of one pipeline: a timer parked at its deadline (or never)
/// and cancelled when the last reply arrives.
struct command_state {
  command_state(const net::any_io_executor& ex, std::size_t n) : done(ex), remaining(n) {
    results.resize(n, redis_result(make_error_code(redis_errc::disconnected)));
  }
  steady_timer done;
  std::vector<redis_result> results;
  std::size_t remaining;
  error_code if_dropped;  ///< set before closing on a timeout: what the dropped replies report
};

/// hiredis's privdata of one command (owned by hiredis until its callback).
struct reply_slot {
  std::shared_ptr<command_state> state;
  std::size_t index;
};

struct connect_state {
  explicit connect_state(const net::any_io_executor& ex) : timer(ex) {}
  steady_timer timer;
  enum { pending, ok, failed } status = pending;
};

}  // namespace

struct redis_connection::impl : std::enable_shared_from_this<impl> {
  explicit impl(net::any_io_executor ex) : executor(std::move(ex)), descriptor(executor) {}
  ~impl() {
    if (ctx) {
      // Only the cleanup hook may run now (no shared_from_this in a destructor).
      ctx->ev.addRead = ctx->ev.delRead = ctx->ev.addWrite = ctx->ev.delWrite = nullptr;
      close();
    }
  }

  net::any_io_executor executor;
  net::posix::stream_descriptor descriptor;  // the context's fd, never owned (hiredis closes it)
  redisAsyncContext* ctx = nullptr;
  bool is_connected = false;
  bool closing = false;
  bool want_read = false, want_write = false;
  bool read_waiting = false, write_waiting = false;
  std::uint64_t generation = 0;  // bumped per context: stale wait handlers ignore themselves
  std::shared_ptr<connect_state> connecting;
  std::string last_error;

  void close() noexcept {
    if (!ctx) return;
    closing = true;
    // Pending callbacks run with a NULL reply, then the cleanup hook, then hiredis closes the fd.
    redisAsyncFree(ctx);
    closing = false;
  }

  /// Gives the connection up after an error of our own (pending commands fail
  /// with `disconnected`).
  void drop(std::string why) noexcept {
    if (!ctx) return;
    last_error = std::move(why);
    redisAsyncFree(ctx);
  }

  // hiredis's event hooks.
  void start_read() {
    if (read_waiting || !ctx) return;
    read_waiting = true;
    descriptor.async_wait(net::posix::descriptor_base::wait_read,
                          [self = shared_from_this(), gen = generation](error_code ec) {
                            if (gen != self->generation) return;
                            self->read_waiting = false;
                            if (!self->ctx) return;
                            if (ec) return self->drop("waiting to read: " + ec.message());
                            if (self->want_read) redisAsyncHandleRead(self->ctx);
                            // The context may be gone now (the server closed the connection).
                            if (self->ctx && self->want_read) self->start_read();
                          });
  }

  void start_write() {
    if (write_waiting || !ctx) return;
    write_waiting = true;
    descriptor.async_wait(net::posix::descriptor_base::wait_write,
                          [self = shared_from_this(), gen = generation](error_code ec) {
                            if (gen != self->generation) return;
                            self->write_waiting = false;
                            if (!self->ctx) return;
                            if (ec) return self->drop("waiting to write: " + ec.message());
                            if (self->want_write) redisAsyncHandleWrite(self->ctx);
                            if (self->ctx && self->want_write) self->start_write();
                          });
  }

  void on_cleanup() noexcept {
    if (ctx && ctx->err && ctx->errstr[0] != '\0') last_error = ctx->errstr;
    ++generation;
    want_read = want_write = read_waiting = write_waiting = false;
    // Cancels our waits and gives the fd back without closing it: hiredis closes it next.
    if (descriptor.is_open()) (void)descriptor.release();
    ctx = nullptr;
    is_connected = false;
    if (connecting) {
      if (connecting->status == connect_state::pending) connecting->status = connect_state::failed;
      connecting->timer.cancel();
    }
  }

  static impl* from(const redisAsyncContext* ac) { return static_cast<impl*>(ac->data); }
};

namespace {

using impl_t = redis_connection::impl;

void ev_add_read(void* p) {
  auto* s = static_cast<impl_t*>(p);
  s->want_read = true;
  s->start_read();
}
void ev_del_read(void* p) { static_cast<impl_t*>(p)->want_read = false; }
void ev_add_write(void* p) {
  auto* s = static_cast<impl_t*>(p);
  s->want_write = true;
  s->start_write();
}
void ev_del_write(void* p) { static_cast<impl_t*>(p)->want_write = false; }
void ev_cleanup(void* p) { static_cast<impl_t*>(p)->on_cleanup(); }

void on_connect(const redisAsyncContext* ac, int status) {
  auto* s = impl_t::from(ac);
  if (status == REDIS_OK) {
    s->is_connected = true;
  } else if (ac->errstr[0] != '\0') {
    s->last_error = ac->errstr;
  }
  if (s->connecting) {
    s->connecting->status = status == REDIS_OK ? connect_state::ok : connect_state::failed;
    s->connecting->timer.cancel();
  }
}

void on_disconnect(const redisAsyncContext* ac, int status) {
  if (status != REDIS_OK && ac->errstr[0] != '\0') impl_t::from(ac)->last_error = ac->errstr;
}

void on_reply(redisAsyncContext* ac, void* reply, void* privdata) {
  std::unique_ptr<reply_slot> slot(static_cast<reply_slot*>(privdata));
  auto& st = *slot->state;
  if (reply) {
    st.results[slot->index] = convert(*static_cast<redisReply*>(reply));
  } else if (st.if_dropped) {
    st.results[slot->index] = st.if_dropped;
  } else {
    st.results[slot->index] = make_error_code(impl_t::from(ac)->closing && ac->err == 0 ? redis_errc::closed
                                                                                       : redis_errc::disconnected);
  }
  // Wake the awaiting coroutine (through the timer: never resumed inside hiredis).
  if (--st.remaining == 0) st.done.cancel();
}

net::awaitable<std::vector<redis_result>> run_pipeline(std::shared_ptr<impl_t> self,
                                                       std::vector<std::vector<std::string>> commands,
                                                       milliseconds timeout) {
  const std::size_t n = commands.size();
  if (n == 0) co_return std::vector<redis_result>{};
  if (!self || !self->ctx || !self->is_connected)
    co_return std::vector<redis_result>(n, redis_result(make_error_code(redis_errc::not_connected)));

  auto st = std::make_shared<command_state>(self->executor, n);
  if (timeout.count() > 0) st->done.expires_after(timeout);
  else st->done.expires_at(net::steady_timer::time_point::max());

  // All commands go into hiredis's output buffer now, with nothing in between.
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  for (std::size_t i = 0; i < n; ++i) {
    argv.clear();
    lengths.clear();
    for (const auto& a : commands[i]) {
      argv.push_back(a.data());
      lengths.push_back(a.size());
    }
    auto slot = std::make_unique<reply_slot>(reply_slot{st, i});
    const int rc = self->ctx && !argv.empty()
                       ? redisAsyncCommandArgv(self->ctx, on_reply, slot.get(), static_cast<int>(argv.size()),
                                               argv.data(), lengths.data())
                       : REDIS_ERR;
    if (rc == REDIS_OK) {
      (void)slot.release();  // hiredis calls on_reply exactly once
    } else {
      st->results[i] = argv.empty() ? error_code(net::error::invalid_argument)
                                    : make_error_code(redis_errc::not_connected);
      --st->remaining;
    }
  }

  while (st->remaining > 0) {
    auto [ec] = co_await st->done.async_wait();
    if (st->remaining == 0) break;
    // Timed out or cancelled: the replies could still come, so give up the
    // connection rather than leave it busy with a command nobody awaits.
    st->if_dropped = ec ? error_code(net::error::operation_aborted) : error_code(redis_errc::timeout);
    if (!ec) self->last_error = fmt::format("no reply from Redis within {} ms", timeout.count());
    self->close();
    break;
  }
  co_return std::move(st->results);
}

net::awaitable<redis_result> run_command(std::shared_ptr<impl_t> self, std::vector<std::string> argv,
                                         milliseconds timeout) {
  std::vector<std::vector<std::string>> one;
  one.push_back(std::move(argv));
  auto results = co_await run_pipeline(std::move(self), std::move(one), timeout);
  co_return std::move(results.front());
}

/// One TCP connection attempt to an address (a literal IP) before `deadline`.
net::awaitable<error_code> connect_to(std::shared_ptr<impl_t> self, std::string address, std::uint16_t port,
                                      steady_timer::clock_type::time_point deadline) {
  redisAsyncContext* ac = redisAsyncConnect(address.c_str(), port);
  if (!ac) {
    self->last_error = "out of memory";
    co_return redis_errc::connect_failed;
  }
  if (ac->err) {
    self->last_error = fmt::format("connect to {} port {}: {}", address, port, ac->errstr);
    redisAsyncFree(ac);
    co_return redis_errc::connect_failed;
  }
  self->ctx = ac;
  ac->data = self.get();
  ac->ev.data = self.get();
  ac->ev.addRead = ev_add_read;
  ac->ev.delRead = ev_del_read;
  ac->ev.addWrite = ev_add_write;
  ac->ev.delWrite = ev_del_write;
  ac->ev.cleanup = ev_cleanup;
  error_code aec;
  self->descriptor.assign(ac->c.fd, aec);
  if (aec) {
    self->last_error = fmt::format("connect to {} port {}: {}", address, port, aec.message());
    self->close();
    co_return redis_errc::connect_failed;
  }
  redisAsyncSetDisconnectCallback(ac, on_disconnect);

  auto cs = std::make_shared<connect_state>(self->executor);
  cs->timer.expires_at(deadline);
  self->connecting = cs;
  // Setting the connect callback makes hiredis wait for writability: the end of connect(2).
  redisAsyncSetConnectCallback(ac, on_connect);
  auto [ec] = co_await cs->timer.async_wait();
  self->connecting.reset();

  if (cs->status == connect_state::ok) {
    if (!self->ctx) co_return redis_errc::disconnected;
    redisEnableKeepAlive(&self->ctx->c);
    co_return error_code{};
  }
  if (cs->status == connect_state::failed) {
    if (self->last_error.empty()) self->last_error = "connection refused";
    self->last_error = fmt::format("connect to {} port {}: {}", address, port, self->last_error);
    co_return redis_errc::connect_failed;
  }
  self->close();
  if (ec) co_return net::error::operation_aborted;
  self->last_error = fmt::format("connect to {} port {}: timed out", address, port);
  co_return redis_errc::timeout;
}

net::awaitable<error_code> run_connect(std::shared_ptr<impl_t> self, std::string host, std::uint16_t port,
                                       milliseconds timeout) {
  if (!self) co_return redis_errc::not_connected;  // a moved-from connection
  self->close();
  self->last_error.clear();
  const auto deadline = steady_timer::clock_type::now() + timeout;

  // hiredis resolves names synchronously: resolve here, hand it addresses.
  std::vector<std::string> addresses;
  error_code aec;
  const auto literal = net::ip::make_address(host, aec);
  if (!aec) {
    addresses.push_back(literal.to_string());
  } else {
    tcp_resolver resolver(self->executor);
    auto [ec, results] = co_await resolver.async_resolve(host, std::to_string(port));
    if (ec) {
      self->last_error = fmt::format("cannot resolve {}: {}", host, ec.message());
      co_return redis_errc::connect_failed;
    }
    for (const auto& r : results) addresses.push_back(r.endpoint().address().to_string());
  }

  error_code last = redis_errc::connect_failed;
  for (const auto& address : addresses) {
    if (steady_timer::clock_type::now() >= deadline) {
      self->last_error = fmt::format("connect to {} port {}: timed out", host, port);
      co_return redis_errc::timeout;
    }
    last = co_await connect_to(self, address, port, deadline);
    if (!last || last != make_error_code(redis_errc::connect_failed)) co_return last;
  }
  co_return last;
}

/// hiredis writes with write(2), not send(MSG_NOSIGNAL): without this, a write
/// to a connection the server has just closed raises SIGPIPE and kills the
/// process. Only a default disposition is changed (a handler someone installed stays).
void ignore_sigpipe_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction current {};
    if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
      struct sigaction ignore {};
      ignore.sa_handler = SIG_IGN;
      sigemptyset(&ignore.sa_mask);
      ::sigaction(SIGPIPE, &ignore, nullptr);
    }
  });
}

}  // namespace

redis_connection::redis_connection(net::any_io_executor ex) : impl_(std::make_shared<impl>(std::move(ex))) {
  ignore_sigpipe_once();
}

redis_connection::~redis_connection() {
  if (impl_) impl_->close();
}

redis_connection::redis_connection(redis_connection&&) noexcept = default;

redis_connection& redis_connection::operator=(redis_connection&& other) noexcept {
  if (this != &other) {
    if (impl_) impl_->close();
    impl_ = std::move(other.impl_);
  }
  return *this;
}

net::awaitable<error_code> redis_connection::connect(std::string host, std::uint16_t port, milliseconds timeout) {
  return run_connect(impl_, std::move(host), port, timeout);
}

net::awaitable<redis_result> redis_connection::command(std::vector<std::string> argv, milliseconds timeout) {
  return run_command(impl_, std::move(argv), timeout);
}

net::awaitable<std::vector<redis_result>> redis_connection::pipeline(std::vector<std::vector<std::string>> commands,
                                                                     milliseconds timeout) {
  return run_pipeline(impl_, std::move(commands), timeout);
}

void redis_connection::close() noexcept {
  if (impl_) impl_->close();
}

bool redis_connection::connected() const noexcept { return impl_ && impl_->ctx && impl_->is_connected; }

const std::string& redis_connection::last_error() const noexcept {
  static const std::string none;
  return impl_ ? impl_->last_error : none;
}

}  // namespace orgpatch
