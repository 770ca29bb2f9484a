/// The batch engine behind `orgpatchd run`: a job file in, one result line per
/// job out, through N workers sharing a connection pool and the rate limits.
///
/// Runs its own io_context on the calling thread; returns when the run ends.
#pragma once

#include "orgpatch/config.hpp"
#include "orgpatch/metrics.hpp"

#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace orgpatch {

class job_source;

struct run_options {
  std::string input;   ///< a path, or "-" for standard input
  config cfg;          ///< flags already applied
  std::string token;   ///< checked by check_token; never logged
  bool handle_signals = true;  ///< SIGINT/SIGTERM stop the run gracefully; SIGHUP reopens the outputs
  bool resume = false;         ///< --resume: a results file to continue must exist
  bool force = false;          ///< --force: start a new run, moving old outputs aside
  bool progress = false;       ///< draw the progress line on standard error (a terminal)
  /// --metrics-listen HOST:PORT: run_batch serves /metrics there while the run
  /// lasts (a bind failure: exit 1 before anything is sent).
  std::optional<std::string> metrics_listen = std::nullopt;
};

/// What a run is doing at this moment, for the progress line and /metrics.
struct live_stats {
  std::uint64_t jobs_read = 0;          ///< read from the input by this run (finished or not)
  unsigned in_flight = 0;               ///< jobs being sent or awaiting their answer
  std::size_t queued = 0;               ///< held, waiting for their turn (parsed or spilled)
  std::size_t retrying = 0;             ///< waiting out a retry delay or a 429's pause
  std::size_t throttled_accounts = 0;   ///< accounts paused or slowed below their ceiling
  unsigned connections_open = 0;
  std::uint64_t connections_opened = 0;
  double token_rate = 0;                ///< the token's requests/s now (0: unlimited)
  double elapsed_s = 0;                 ///< since the run started
  bool input_ended = false;             ///< every line of the input has been read
};

/// Adds a run's live counters to the gauges of /metrics.
void add_live(metrics_gauges& g, const live_stats& l);

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

/// One run of a job file on an io_context that the caller runs (the daemon's):
/// the checks, the fingerprint and resume of `run_batch`, then the batch.
/// Not thread-safe: use it on the io_context's thread.
class run_session {
 public:
  /// Prepares the run (never throws): when it cannot run, report().exit_code is
  /// 1 and report().fatal_error says why, and start() only calls `on_done`.
  run_session(boost::asio::io_context& io, run_options options);

  /// A run over a source that does not end by itself (the Redis stream of
  /// `serve`): no fingerprint and no resume (the stream's pending entries are
  /// its journal); the results and dead-letter files (`cfg.output`, both
  /// required) are appended to. `options.input` names the source in the header
  /// and messages; `identity` is the run id, from which (with each job's key)
  /// idempotency keys are derived, so it must be the same on every host (the
  /// stream's name). `source` must outlive the session; it receives the
  /// finished entries to acknowledge, the last ones when the run is over.
  run_session(boost::asio::io_context& io, run_options options, job_source& source, std::string identity);
  ~run_session();
  run_session(const run_session&) = delete;
  run_session& operator=(const run_session&) = delete;

  /// Starts it; `on_done` is called on the io_context when it is over and its
  /// report is final.
  void start(std::function<void()> on_done);

  /// Closes and opens again the results and dead-letter files (logrotate's
  /// SIGHUP); a new file starts with a continuation header. A failure stops
  /// the run (exit 1).
  void reopen_outputs();

  /// Take no more jobs and let those in flight finish (`hard` false), or abort
  /// them (they get no line; the file can be resumed).
  void stop(bool hard);

  const run_report& report() const noexcept;
  /// The counters of the run so far (report().metrics holds the finished jobs'
  /// outcomes and the requests). Cheap enough for a few calls a second; O(accounts).
  live_stats live() const;
  /// The input file's lines that hold a job (non-blank), counted in the pass
  /// that takes its fingerprint (the progress line's total); empty for
  /// standard input, anything but a regular file, and a stream.
  std::optional<std::uint64_t> input_job_lines() const noexcept;
  /// The accounts live().throttled_accounts counts, by id (serve counts an
  /// account throttled in both its runs once).
  std::vector<std::string> throttled_account_ids() const;
  /// The report, moved out (after the run).
  run_report take_report() noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Runs the whole batch on an io_context of its own, on the calling thread. Problems that stop the run before or during it (an
/// unreadable input, an output path equal to the input, a refused token, a TLS
/// verification failure) give exit code 1 and `fatal_error`; it never throws.
run_report run_batch(const run_options& options);

/// `run --dry-run`: everything but sending. Checks the config, reads and checks
/// every line, builds every request, and prints to `out` each broken line
/// (`FILE:LINE: field: message`), the first `show` requests as they would go
/// out (method, URL, headers with the token redacted, body), and what a run
/// would send. Jobs that the results file of an earlier run of the same input
/// finished are skipped, as a run would. Sends nothing, writes no file, never
/// reads `options.token`. Returns 0 when every line is valid, else 2; throws
/// std::runtime_error (or config_error) when the input or config cannot be used.
int dry_run(const run_options& options, std::FILE* out, std::size_t show = 3);

}  // namespace orgpatch
