// A real redis-server for a test: 127.0.0.1 on a free port, a temporary
// directory, no persistence (--save "" --appendonly no). Ready (answers PING)
// when the constructor returns; killed (SIGKILL) and waited for by PID when
// destroyed, and by the kernel if the test process dies first.
#pragma once

#include "support/test_util.hpp"

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace orgpatch::test {

/// `name`'s path, looked up in PATH; throws std::runtime_error when absent.
std::string find_in_path(const std::string& name);

class redis_server {
 public:
  /// Starts redis-server (from PATH); throws std::runtime_error with its log
  /// when it does not answer PING within 10 s.
  redis_server();
  ~redis_server();
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  std::uint16_t port() const noexcept { return port_; }
  std::string host() const { return "127.0.0.1"; }
  std::string url() const;
  pid_t pid() const noexcept { return pid_; }
  bool running() const noexcept { return pid_ > 0; }

  /// Kills the server now (SIGKILL) and waits for it: connections drop at once.
  void kill();

  /// Runs redis-cli against it with `args` (one command); its output, trimmed
  /// (an error reply comes back as text too).
  std::string cli(const std::vector<std::string>& args) const;

  /// The server's log so far (for failure messages).
  std::string log() const;

 private:
  bool start(std::uint16_t port);
  temp_dir dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace orgpatch::test
