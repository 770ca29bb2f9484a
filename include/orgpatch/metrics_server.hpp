/// The `/metrics` endpoint: a small HTTP/1.1 server on the caller's io_context
/// that answers `GET /metrics` with the text a function gives it (Prometheus
/// text format 0.0.4), 404 for other paths and 405 for other methods.
///
/// Bounded: at most `max_connections` connections at once (more are closed at
/// once), a request must arrive within `read_timeout` (an idle keep-alive
/// connection is closed after it too), request headers are limited to 8 KiB and
/// bodies to 1 KiB. Not thread-safe: use it on the io_context's thread, where
/// `render` is called too.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace boost::asio {
class io_context;
}

namespace orgpatch {

namespace detail {
struct metrics_server_state;
}

/// "HOST:PORT" split: an IPv4 or IPv6 address (`[::1]:9464`), a host name, or
/// nothing (`:9464`, every interface); port 0 to 65535 (0: any free port).
/// Throws std::invalid_argument saying what is wrong.
struct listen_address {
  std::string host;
  std::uint16_t port = 0;
};
listen_address parse_listen_address(std::string_view text);

struct metrics_server_params {
  std::string listen;  ///< HOST:PORT, see parse_listen_address
  std::size_t max_connections = 16;
  std::chrono::milliseconds read_timeout{10'000};
};

class metrics_server {
 public:
  /// Binds and listens at once, then serves on `io` until close(). Throws
  /// std::runtime_error naming the address when it cannot (a bad address, a
  /// port in use); the caller adds the config key or flag. Logs
  /// "metrics: http://HOST:PORT/metrics" once it listens.
  metrics_server(boost::asio::io_context& io, metrics_server_params params, std::function<std::string()> render);
  /// close()s.
  ~metrics_server();
  metrics_server(const metrics_server&) = delete;
  metrics_server& operator=(const metrics_server&) = delete;

  /// The port bound (the chosen one when the port given was 0).
  std::uint16_t port() const noexcept;
  /// "http://HOST:PORT/metrics" as bound.
  std::string url() const;

  /// Stops accepting and closes every connection; the coroutines end on the
  /// io_context's next turns (so that a run's io_context can run out of work).
  /// Idempotent; render is not called afterwards.
  void close();

 private:
  // Shared with the coroutines, which may end after the server is gone.
  std::shared_ptr<detail::metrics_server_state> state_;
};

}  // namespace orgpatch
