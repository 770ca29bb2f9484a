// Runs a program to completion and captures what it printed (for CLI tests).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace orgpatch::test {

struct process_result {
  int exit_code = -1;  ///< the exit status, or 128 + signal
  std::string out;
  std::string err;
  long max_rss_kb = 0;  ///< the child's peak resident set (run_process only)
};

/// Runs `program` with `args` (no shell), standard input from /dev/null, with the
/// current environment plus `env` overrides; waits for it.
process_result run_process(const std::string& program, const std::vector<std::string>& args,
                           const std::map<std::string, std::string>& env = {});

/// As `run_process`, but with standard error on a pseudo-terminal (200 columns,
/// TERM=xterm): `err` is everything the program wrote to it, controls included.
process_result run_process_on_terminal(const std::string& program, const std::vector<std::string>& args,
                                       const std::map<std::string, std::string>& env = {});

/// A program running in the background with a pipe to its standard input;
/// standard output and error go to files. Killed (SIGKILL) if still running when
/// destroyed.
class child_with_stdin {
 public:
  child_with_stdin(const std::string& program, const std::vector<std::string>& args,
                   const std::map<std::string, std::string>& env, const std::string& out_file,
                   const std::string& err_file);
  ~child_with_stdin();
  child_with_stdin(const child_with_stdin&) = delete;
  child_with_stdin& operator=(const child_with_stdin&) = delete;

  void write(const std::string& text);
  void close_stdin();
  void signal(int signo);
  /// Waits for it to exit; the exit status or 128 + signal.
  int wait();

 private:
  int pid_ = -1;
  int stdin_fd_ = -1;
};

}  // namespace orgpatch::test
