/// The batch engine behind `orgpatchd run`: a job file in, one result line per
/// job out, through N workers sharing a connection pool and the rate limits.
///
/// Runs its own io_context on the calling thread; returns when the run ends.
#pragma once

#include "orgpatch/config.hpp"
#include "orgpatch/metrics.hpp"

#include <optional>
#include <string>

namespace orgpatch {

struct run_options {
  std::string input;   ///< a path, or "-" for standard input
  config cfg;          ///< flags already applied
  std::string token;   ///< checked by check_token; never logged
  bool handle_signals = true;  ///< SIGINT/SIGTERM stop the run gracefully; SIGHUP reopens the outputs
  bool resume = false;         ///< --resume: a results file to continue must exist
  bool force = false;          ///< --force: start a new run, moving old outputs aside
};

struct run_report {
  int exit_code = 0;            ///< DESIGN.md §7: 0, 2, 1, 130, 143
  run_metrics metrics;
  summary_context summary;
  std::string fatal_error;      ///< why the run could not go on (exit 1)
  std::string run_id;
};

/// Output paths named after the input: `x.jsonl` → `x.results.jsonl`, `x.failed.jsonl`.
std::string default_results_path(const std::string& input);
std::string default_dead_letter_path(const std::string& input);

/// Runs the whole batch. Problems that stop the run before or during it (an
/// unreadable input, an output path equal to the input, a refused token, a TLS
/// verification failure) give exit code 1 and `fatal_error`; it never throws.
run_report run_batch(const run_options& options);

}  // namespace orgpatch
