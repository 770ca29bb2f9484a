/// orgpatch-emulator's settings: the command line and its YAML config file (which
/// the command line overrides), with the rate limits and the fault profile.
#pragma once

#include "emulator/server.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace orgpatch::emulator {

/// How certificates are chosen: none named (a throwaway in-memory one), given
/// files, written to a directory, or plain HTTP.
enum class tls_mode { throwaway, files, write_cert, plain };

/// Everything `orgpatch-emulator` can be told. `server.api.token` is filled from
/// `token_file` by main. Unlike an in-process server_options, Truto's rate limits
/// are on by default (`--no-rate-limit` or `rate_limit: {enabled: false}` turn them off).
struct emulator_config {
  emulator_config() { server.api.rate_limit.enabled = true; }

  server_options server;
  tls_mode mode = tls_mode::throwaway;
  std::string write_cert_dir;             ///< with tls_mode::write_cert
  std::optional<std::string> token_file;  ///< only this file's token is accepted
};

/// Parses "HOST:PORT" or "[IPv6]:PORT" (port 0..65535). Throws std::invalid_argument
/// saying what is wrong.
std::pair<std::string, std::uint16_t> parse_listen(std::string_view text);

/// The token in `path`: its content without surrounding whitespace. Throws
/// std::runtime_error naming the file when it cannot be read or is empty.
std::string read_token_file(const std::string& path);

/// Applies the YAML file at `path` over `cfg`. Keys:
///
///     listen: 127.0.0.1:8443
///     plain: false
///     tls: {cert: cert.pem, key: key.pem}     # or
///     write_cert: DIR
///     token_file: token.txt
///     threads: 1
///     limits: {body_bytes: 1048576, header_bytes: 16384, idle_timeout_ms: 60000, request_timeout_ms: 30000}
///     idempotency: {max_keys: 4000000}
///     rate_limit:                   # Truto's limits; on unless --no-rate-limit
///       enabled: true
///       token: {requests: 500, window_ms: 10000}
///       account: {requests: 50, window_ms: 10000}
///       retry_after_s: 10           # 0: seconds until the window frees a slot
///       early_retry_grace_ms: 100   # in-flight requests after a 429 are not early retries
///     remote_limit:                 # off unless given (or enabled: false)
///       enabled: true
///       requests: 5000
///       window_ms: 3600000
///     faults:                       # every probability 0 unless given; see faults.hpp
///       seed: 1
///       status_429: {probability: 0.01, retry_after_s: 1}
///       status_500: 0.01            # a number is the probability
///       status_502: 0.01
///       status_503: 0.001
///       status_504: 0.01
///       reset_before: 0.01
///       reset_mid_body: 0.01
///       stall: {probability: 0.001, stall_ms: 65000}
///       invalid_json: 0.01
///       chunked: 0.1
///       latency: {probability: 1, fixed_ms: 5}   # or min_ms + max_ms, or median_ms + sigma
///       close_after: {requests: 100, probability: 1}
///
/// Relative paths are taken from the file's directory. An unknown key or a value of
/// the wrong type throws std::runtime_error naming the file, the key and the line.
void load_config_file(const std::string& path, emulator_config& cfg);

}  // namespace orgpatch::emulator
