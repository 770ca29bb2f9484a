#include "support/redis_server.hpp"

#include "support/process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <csignal>
#include <stdexcept>
#include <thread>
#include <vector>

namespace orgpatch::test {

namespace {

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

/// A port the kernel had free a moment ago (redis-server is then started on it;
/// start() retries with another one if it was taken meanwhile).
std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in a = loopback(0);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot find a free port");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

/// One PING over a fresh blocking connection.
bool answers_ping(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  timeval tv{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a = loopback(port);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    static constexpr char ping[] = "PING\r\n";
    if (::send(fd, ping, sizeof ping - 1, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof ping - 1)) {
      char buf[16] = {};
      const ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
      ok = n >= 5 && std::string(buf, 5) == "+PONG";
    }
  }
  ::close(fd);
  return ok;
}

/// redis-server's path, looked up in PATH before forking.
std::string find_redis_server() { return find_in_path("redis-server"); }

}  // namespace

redis_server::redis_server() {
  for (int attempt = 0; attempt < 5; ++attempt)
    if (start(free_port())) return;
  throw std::runtime_error("redis-server did not start; its log:\n" + log());
}

redis_server::~redis_server() { kill(); }

std::string redis_server::url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

std::string redis_server::log() const { return read_file(dir_.file("redis.log")); }

bool redis_server::start(std::uint16_t port) {
  port_ = port;
  std::vector<std::string> args{"redis-server", "--port",         std::to_string(port), "--bind", "127.0.0.1",
                                "--save",       "",               "--appendonly",       "no",     "--dir",
                                dir_.path().string(),              "--logfile",          dir_.file("redis.log"),
                                "--daemonize",  "no",             "--databases",        "1"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string out = dir_.file("redis.out");
  const std::string program = find_redis_server();
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    // The child: only async-signal-safe calls until exec. Dies with the test process.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    const int null_in = ::open("/dev/null", O_RDONLY);
    const int log_out = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (null_in >= 0) ::dup2(null_in, 0);
    if (log_out >= 0) {
      ::dup2(log_out, 1);
      ::dup2(log_out, 2);
    }
    ::execv(program.c_str(), argv.data());
    ::_exit(127);
  }
  pid_ = pid;

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (answers_ping(port)) return true;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;  // exited (the port was taken?): the caller tries another port
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill();
  throw std::runtime_error("redis-server did not answer PING within 10 s; its log:\n" + log());
}

void redis_server::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

std::string find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    const auto end = std::min(dirs.find(':', start), dirs.size());
    const std::filesystem::path candidate = std::filesystem::path(dirs.substr(start, end - start)) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    start = end + 1;
  }
  throw std::runtime_error(name + " not found in PATH (the set-up script installs the redis-server package)");
}

std::string redis_server::cli(const std::vector<std::string>& args) const {
  std::vector<std::string> argv{"-h", host(), "-p", std::to_string(port_)};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run_process(find_in_path("redis-cli"), argv);
  while (!r.out.empty() && (r.out.back() == '\n' || r.out.back() == ' ')) r.out.pop_back();
  return r.out;
}

}  // namespace orgpatch::test
