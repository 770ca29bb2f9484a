/// An asynchronous Redis client: one hiredis `redisAsyncContext` driven by Asio
/// (Boost.Redis is not in Boost 1.81, DESIGN.md §10). hiredis writes the
/// commands and parses the replies; Asio waits on its socket.
///
/// Not thread-safe: a connection and everything awaiting it run on one
/// io_context thread (the engine's). Several coroutines may await commands on
/// one connection at the same time: the commands are pipelined, and hiredis
/// hands each reply to its own command (replies come in order).
///
/// A connection must be destroyed before its io_context.
///
/// SIGPIPE: hiredis writes with write(2), so creating a connection sets SIGPIPE
/// to SIG_IGN when it still has the default disposition (otherwise a write to a
/// server that has just gone away would kill the process).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace orgpatch {

/// Transport errors of a Redis connection (a Redis error *reply* is a value,
/// not one of these).
enum class redis_errc {
  disconnected = 1,  ///< the server closed the connection or it failed; pending commands fail
  timeout,           ///< connect or command over its time (the connection is then closed)
  not_connected,     ///< a command on a connection that is not (or no longer) connected
  connect_failed,    ///< the TCP connection was refused or could not be made
  closed,            ///< close() was called while the command was pending
  unexpected_reply,  ///< a reply of a shape the caller cannot use
};

/// The category of `redis_errc` ("orgpatch.redis"); thread-safe.
const boost::system::error_category& redis_category() noexcept;

inline boost::system::error_code make_error_code(redis_errc e) noexcept {
  return {static_cast<int>(e), redis_category()};
}

}  // namespace orgpatch

template <>
struct boost::system::is_error_code_enum<orgpatch::redis_errc> : std::true_type {};

namespace orgpatch {

/// One Redis reply, owned (copied out of hiredis's reply object).
struct redis_reply {
  enum class kind { nil, status, error, integer, string, array };

  kind type = kind::nil;
  std::string str;                   ///< status, error or string
  long long integer = 0;             ///< integer
  std::vector<redis_reply> elements; ///< array

  bool is_nil() const noexcept { return type == kind::nil; }
  bool is_error() const noexcept { return type == kind::error; }
  bool is_string() const noexcept { return type == kind::string; }
  bool is_integer() const noexcept { return type == kind::integer; }
  bool is_array() const noexcept { return type == kind::array; }
  bool is_status() const noexcept { return type == kind::status; }
  /// An error reply whose first word is `code` (e.g. "NOSCRIPT", "BUSYGROUP").
  bool is_error(std::string_view code) const noexcept;
  /// A short description for messages ("error NOSCRIPT …", "integer 3", "array of 2").
  std::string describe() const;
};

/// A reply, or the transport error that kept it from arriving.
using redis_result = boost::system::result<redis_reply>;

/// Where a Redis server is.
struct redis_endpoint {
  std::string host;
  std::uint16_t port = 6379;
};

/// Parses `redis://host[:port][/]` (an IPv6 host in brackets; port 6379 by
/// default). Throws std::invalid_argument naming what is wrong for anything
/// else: another scheme (`rediss://` — hiredis 0.14 has no TLS — or
/// `unix://`), a user or password, a database number, a query.
redis_endpoint parse_redis_url(std::string_view url);

/// One connection to a Redis server. Movable, not copyable.
class redis_connection {
 public:
  explicit redis_connection(boost::asio::any_io_executor ex);
  ~redis_connection();
  redis_connection(redis_connection&&) noexcept;
  redis_connection& operator=(redis_connection&&) noexcept;
  redis_connection(const redis_connection&) = delete;
  redis_connection& operator=(const redis_connection&) = delete;

  /// Connects (closing the current connection first, if any): resolves `host`
  /// (an IP address is used as is) and makes the TCP connection within
  /// `timeout`. Fails with `redis_errc::connect_failed` or `redis_errc::timeout`
  /// (`last_error()` says why). Cancellation: aborts the attempt.
  boost::asio::awaitable<boost::system::error_code> connect(std::string host, std::uint16_t port,
                                                            std::chrono::milliseconds timeout);

  /// Sends one command (`argv[0]` is its name; arguments are binary-safe) and
  /// awaits its reply. A zero `timeout` means none (a blocking command such as
  /// XREADGROUP BLOCK should pass one longer than its block time). Transport
  /// errors: `not_connected`, `disconnected`, `closed`, `invalid_argument` (an
  /// empty argv), and `timeout` — after a
  /// timeout or a cancellation of the awaiting coroutine the connection is
  /// closed (every other pending command fails with `closed`), because the
  /// command may still be under way on the server.
  boost::asio::awaitable<redis_result> command(std::vector<std::string> argv,
                                               std::chrono::milliseconds timeout = std::chrono::milliseconds{0});

  /// Sends all `commands` at once (nothing else can come between them, so a
  /// MULTI … EXEC is safe here even on a shared connection) and awaits their
  /// replies, in order. `timeout` bounds the whole exchange; zero means none.
  /// On a transport error every reply is that error.
  boost::asio::awaitable<std::vector<redis_result>> pipeline(std::vector<std::vector<std::string>> commands,
                                                             std::chrono::milliseconds timeout = std::chrono::milliseconds{0});

  /// Closes the connection now; pending commands complete with `redis_errc::closed`.
  /// connect() may be called again afterwards.
  void close() noexcept;

  /// Connected, and not closed or disconnected since.
  bool connected() const noexcept;

  /// Why the connection was lost or could not be made (hiredis's message), or "".
  const std::string& last_error() const noexcept;

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace orgpatch
