#include "support/process.hpp"

#include "support/test_util.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <pty.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <stdexcept>

extern char** environ;

namespace orgpatch::test {

namespace {

std::vector<std::string> environment_with(const std::map<std::string, std::string>& env) {
  std::map<std::string, std::string> merged;
  for (char** e = environ; *e; ++e) {
    std::string kv(*e);
    const auto eq = kv.find('=');
    if (eq != std::string::npos) merged[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : env) merged[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : merged) out.push_back(k + "=" + v);
  return out;
}

// posix_spawn of `program` with `args` and the environment plus `env`; the
// spawn's error number (0 on success).
int spawn(pid_t& pid, const std::string& program, const std::vector<std::string>& args,
          const std::map<std::string, std::string>& env, const posix_spawn_file_actions_t* actions) {
  std::vector<std::string> argv_s{program};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  auto env_s = environment_with(env);
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  return posix_spawn(&pid, program.c_str(), actions, nullptr, argv.data(), envp.data());
}

}  // namespace

child_with_stdin::child_with_stdin(const std::string& program, const std::vector<std::string>& args,
                                   const std::map<std::string, std::string>& env, const std::string& out_file,
                                   const std::string& err_file) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[0], 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, 2, err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  const int rc = spawn(pid_, program, args, env, &actions);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[0]);
  stdin_fd_ = fds[1];
  if (rc != 0) {
    ::close(stdin_fd_);
    throw std::runtime_error("cannot start " + program);
  }
}

child_with_stdin::~child_with_stdin() {
  close_stdin();
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
}

void child_with_stdin::write(const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(stdin_fd_, text.data() + done, text.size() - done);
    if (n <= 0) throw std::runtime_error("write to child failed");
    done += static_cast<std::size_t>(n);
  }
}

void child_with_stdin::close_stdin() {
  if (stdin_fd_ >= 0) ::close(stdin_fd_);
  stdin_fd_ = -1;
}

void child_with_stdin::signal(int signo) { ::kill(pid_, signo); }

int child_with_stdin::wait() {
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
  }
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

process_result run_process(const std::string& program, const std::vector<std::string>& args,
                           const std::map<std::string, std::string>& env) {
  temp_dir dir;
  const std::string out = dir.file("out"), err = dir.file("err");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = 0;
  const int rc = spawn(pid, program, args, env, &actions);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start " + program);
  int status = 0;
  rusage usage{};
  while (::wait4(pid, &status, 0, &usage) < 0) {
  }
  process_result r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.max_rss_kb = usage.ru_maxrss;
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

process_result run_process_on_terminal(const std::string& program, const std::vector<std::string>& args,
                                       const std::map<std::string, std::string>& env) {
  temp_dir dir;
  const std::string out = dir.file("out");
  int master = -1, slave = -1;
  winsize ws{};
  ws.ws_row = 50;
  ws.ws_col = 200;
  if (::openpty(&master, &slave, nullptr, nullptr, &ws) != 0) throw std::runtime_error("openpty failed");
  ::fcntl(master, F_SETFD, FD_CLOEXEC);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, slave, 2);
  posix_spawn_file_actions_addclose(&actions, slave);
  auto with_term = env;
  with_term.emplace("TERM", "xterm");
  pid_t pid = 0;
  const int rc = spawn(pid, program, args, with_term, &actions);
  posix_spawn_file_actions_destroy(&actions);
  ::close(slave);  // the child's copy is the only one left: reading ends with EIO when it exits
  if (rc != 0) {
    ::close(master);
    throw std::runtime_error("cannot start " + program);
  }
  // Read while it runs, so that a full terminal buffer never blocks it.
  process_result r;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(master, buf, sizeof buf);
    if (n > 0) {
      r.err.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;  // EIO: the child and every copy of the terminal are gone
  }
  ::close(master);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(out);
  return r;
}

}  // namespace orgpatch::test
