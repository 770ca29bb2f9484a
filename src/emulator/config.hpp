/// orgpatch-emulator's settings: the command line and its YAML config file (which
/// the command line overrides). The file is where rate limits and faults will go.
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
/// `token_file` by main.
struct emulator_config {
  server_options server;
  tls_mode mode = tls_mode::throwaway;
  std::string write_cert_dir;             ///< with tls_mode::write_cert
  std::optional<std::string> token_file;  ///< only this file's token is accepted
  bool rate_limit = true;                 ///< --no-rate-limit (no limits exist yet: a no-op)
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
///
/// Relative paths are taken from the file's directory. An unknown key or a value of
/// the wrong type throws std::runtime_error naming the file, the key and the line.
void load_config_file(const std::string& path, emulator_config& cfg);

}  // namespace orgpatch::emulator
