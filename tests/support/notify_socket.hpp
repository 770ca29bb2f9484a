// A notify socket like systemd's, for tests of `orgpatchd serve`: collects the
// datagrams (READY=1, STATUS=…, STOPPING=1) the service sends to NOTIFY_SOCKET.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>

namespace orgpatch::test {

class notify_socket {
 public:
  explicit notify_socket(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) throw std::runtime_error("bind notify socket");
  }
  ~notify_socket() { ::close(fd_); }
  /// Waits until a message containing `text` arrived (true) or the time is up.
  bool wait_for(const std::string& text, std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    for (;;) {
      char buf[4096];
      for (ssize_t n; (n = ::recv(fd_, buf, sizeof buf, 0)) > 0;) received_ += std::string(buf, static_cast<std::size_t>(n)) + "\n";
      if (received_.find(text) != std::string::npos) return true;
      if (std::chrono::steady_clock::now() > end) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  const std::string& received() const { return received_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  std::string received_;
};

}  // namespace orgpatch::test
