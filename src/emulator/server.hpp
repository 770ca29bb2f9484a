/// The emulator's HTTP/1.1 server: TLS or plain TCP, keep-alive, one coroutine per
/// connection, on its own threads. Tests run it in-process; `orgpatch-emulator`
/// wraps it in a command line.
#pragma once

#include "emulator/api.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace orgpatch::emulator {

/// How the server listens and serves. A plain aggregate; `orgpatch-emulator` fills it
/// from its flags and its config file.
struct server_options {
  std::string host = "127.0.0.1";  ///< address to bind (IPv4 or IPv6 literal)
  std::uint16_t port = 8443;       ///< 0: an ephemeral port, see server::port()
  bool plain = false;              ///< plain HTTP instead of TLS
  std::string cert_file;           ///< TLS certificate chain (PEM) ...
  std::string key_file;            ///< ... and its private key (PEM)
  std::string cert_pem;            ///< or both in memory (used when cert_file is empty)
  std::string key_pem;
  unsigned threads = 1;            ///< threads serving connections (>= 1)
  std::size_t body_limit = 1024 * 1024;   ///< larger request bodies are answered 413
  std::size_t header_limit = 16 * 1024;   ///< larger request headers are answered 431
  std::chrono::milliseconds idle_timeout{60'000};     ///< keep-alive connection idle before close
  std::chrono::milliseconds request_timeout{30'000};  ///< reading a body, writing an answer, handshake
  api_options api;                 ///< token, idempotency store, rate limits (off), faults (none)
};

/// A running emulator.
///
/// start() and stop() are for one controlling thread; stats_snapshot(),
/// organization_json() and reset() may be called from any thread while it serves.
class server {
 public:
  explicit server(server_options options);
  ~server();  ///< stop()s
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Loads the TLS certificate, binds, listens and starts serving on `threads`
  /// threads of its own (one io_context each; connections are handed out round
  /// robin). Returns once the socket listens. Throws std::runtime_error (naming the
  /// address or file) when it cannot.
  void start();

  /// The bound port (the ephemeral one when options.port was 0); 0 before start().
  std::uint16_t port() const noexcept;

  /// "https://HOST:PORT" or "http://HOST:PORT" (IPv6 hosts in brackets).
  std::string base_url() const;

  /// Stops accepting, drops every connection and joins the threads. Idempotent; the
  /// store and counters stay readable.
  void stop();

  /// A copy of the counters (what `GET /_emulator/stats` answers).
  stats stats_snapshot(bool with_applies = true) const;
  /// The stored unified organization as JSON text, or nullopt if never touched.
  std::optional<std::string> organization_json(std::string_view integrated_account_id,
                                               std::string_view id) const;
  /// Clears the store and counters (`POST /_emulator/reset`).
  void reset();

  /// The request handler and store itself.
  emulator::api& api() noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace orgpatch::emulator
