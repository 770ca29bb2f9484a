// The emulator as the CLI tests use it: in-process, TLS with a self-signed
// certificate, one accepted token in a file; and the arguments of a run against it.
#pragma once

#include "emulator/cert.hpp"
#include "emulator/server.hpp"
#include "support/test_util.hpp"

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace orgpatch::test {

inline constexpr const char* k_cli_token = "cli-token-do-not-leak-7f3a";

struct cli_emulator {
  explicit cli_emulator(const temp_dir& dir) {
    auto paths = emulator::write_self_signed_cert(dir.path() / "cert");
    ca_file = paths.cert.string();
    emulator::server_options o;
    o.port = 0;
    o.cert_file = paths.cert.string();
    o.key_file = paths.key.string();
    o.api.token = k_cli_token;
    server = std::make_unique<emulator::server>(o);
    server->start();
    token_file = dir.file("token");
    write_file(token_file, std::string(k_cli_token) + "\n");
    std::filesystem::permissions(token_file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  }
  std::string ca_file, token_file;
  std::unique_ptr<emulator::server> server;
};

inline std::vector<std::string> run_args(const cli_emulator& e, const std::string& input) {
  return {"run", input, "--base-url", e.server->base_url(), "--ca-file", e.ca_file, "--token-file", e.token_file,
          "--rate", "0", "--account-rate", "0", "--connections", "4"};
}

}  // namespace orgpatch::test
