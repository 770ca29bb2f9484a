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
};

/// Runs `program` with `args` (no shell), standard input from /dev/null, with the
/// current environment plus `env` overrides; waits for it.
process_result run_process(const std::string& program, const std::vector<std::string>& args,
                           const std::map<std::string, std::string>& env = {});

}  // namespace orgpatch::test
