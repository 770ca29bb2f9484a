/// A pool of keep-alive HTTP/1.1 connections to one origin, over TLS (OpenSSL
/// driven directly on the socket's bytes: peer and host-name verification on by
/// default, SNI, session resumption) or plain TCP for `http://`.
///
/// The request path is lean by design: each connection owns its request
/// buffer, its read buffers and its `http_response`, all reused; a request is
/// one TLS write and, as a rule, one `sendmsg`; the response is framed by
/// Beast's parser straight from the connection's buffer. Timeouts are a
/// deadline per connection checked by one watchdog timer for the pool, so no
/// timer is armed per request.
///
/// Not thread-safe: every member runs on the engine's one I/O thread.
/// Cancellation: `close_all()` aborts every connection's pending I/O (the run
/// is stopping); each operation then completes with an error.
#pragma once

#include "orgpatch/http_reader.hpp"
#include "orgpatch/request.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace orgpatch {

/// How the pool connects (a plain aggregate beside the class, as boostorg/mysql's pool_params).
struct pool_params {
  endpoint target;
  bool verify = true;                      ///< tls.verify
  std::optional<std::string> ca_file;      ///< tls.ca_file; else the system CAs
  unsigned max_connections = 32;           ///< http.connections
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{60000};
  std::size_t max_response_bytes = 1 << 20;
};

/// What went wrong in an exchange, for the results line; never holds the token.
struct exchange_error {
  boost::system::error_code code;
  std::string message;  ///< e.g. "TLS: certificate verify failed: hostname mismatch"
  bool tls_verification = false;  ///< the peer was refused: stop the run
  bool response_started = false;  ///< some response bytes arrived (may have been applied)
  bool peer_closed = false;       ///< the server closed or reset the connection
};

class connection;

class connection_pool;

/// A leased connection; returned to the pool when destroyed, unless discarded.
class lease {
 public:
  lease() = default;
  lease(lease&& other) noexcept;
  lease& operator=(lease&& other) noexcept;
  ~lease();

  /// The connection's request buffer: lay the exact request bytes out in it
  /// (it keeps its capacity from one request to the next).
  std::string& request() noexcept;

  /// Sends `request()` and reads the whole response into `response()`,
  /// connecting first when needed. A reused connection that fails before any
  /// response byte is retried once on a fresh one. On failure the connection
  /// is discarded and the error returned.
  boost::asio::awaitable<std::optional<exchange_error>> exchange();

  /// The last response; valid until the lease is returned. Its body has
  /// simdjson's padding as spare capacity.
  http_response& response() noexcept;

  /// Do not return this connection to the pool (after an error or `Connection: close`).
  void discard() noexcept { discard_ = true; }

 private:
  friend class connection_pool;
  lease(connection_pool* pool, std::unique_ptr<connection> c) noexcept;
  connection_pool* pool_ = nullptr;
  std::unique_ptr<connection> conn_;
  bool discard_ = false;
};

class connection_pool {
 public:
  /// Builds the TLS context (throws std::runtime_error naming the CA file when it
  /// cannot be loaded). Connects nothing yet.
  connection_pool(boost::asio::any_io_executor ex, pool_params params);
  ~connection_pool();
  connection_pool(const connection_pool&) = delete;
  connection_pool& operator=(const connection_pool&) = delete;

  /// An idle connection, or a new (not yet connected) one when fewer than
  /// `max_connections` exist; nothing when all are leased. Never suspends.
  std::optional<lease> try_acquire();

  /// As `try_acquire`, but waits for a connection to be returned. Throws
  /// boost::system::system_error(errc::stopped) after `close_all()`.
  boost::asio::awaitable<lease> acquire();

  /// Aborts all I/O and refuses further leases.
  void close_all();

  std::uint64_t connections_opened() const noexcept;  ///< TCP connections established
  std::uint64_t tls_resumed() const noexcept;         ///< handshakes that resumed a session
  unsigned connections_open() const noexcept;         ///< existing now

  struct impl;

 private:
  friend class lease;
  void give_back(std::unique_ptr<connection> c, bool discard) noexcept;
  std::unique_ptr<impl> impl_;
};

}  // namespace orgpatch
