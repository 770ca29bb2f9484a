/// The progress line of `orgpatchd run` on a terminal (DESIGN.md §4 metrics):
/// jobs done / total, requests/s, ETA, outcomes, retrying jobs and throttled
/// accounts, redrawn in place.
///
/// The formatting and the rates are pure (time is passed in); the line counter
/// reads the input on a thread of its own; the drawing is the engine's (a timer).
#pragma once

#include <spdlog/sinks/sink.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace orgpatch {

/// What one redraw shows.
struct progress_snapshot {
  std::uint64_t done = 0;                ///< jobs with a final outcome (earlier runs' included)
  std::optional<std::uint64_t> total;    ///< jobs in the input, once counted
  std::uint64_t ok = 0, failed = 0;      ///< failed: every outcome but ok
  std::size_t retrying = 0;              ///< jobs waiting out a retry delay
  std::size_t throttled_accounts = 0;
  double requests_per_s = 0;             ///< over the last seconds
  double jobs_per_s = 0;                 ///< over the last seconds, for the ETA
  double elapsed_s = 0;
};

/// The line without terminal controls, e.g.
/// `41 200/100 000 jobs 41% · 9 870 req/s · ETA 0:06 · ok 41 190 · failed 10 · retrying 2 · throttled accounts 3`.
std::string format_progress(const progress_snapshot& s);

/// "1:02:03" or "4:05" (minutes:seconds under an hour).
std::string format_duration(double seconds);

/// Rates over a sliding window of samples (about five seconds), so that the ETA
/// follows the current speed rather than the run's average. Pure.
class progress_rates {
 public:
  /// Records the counters at time `t_s` (seconds since the run started).
  void sample(double t_s, std::uint64_t jobs, std::uint64_t requests);
  double jobs_per_s() const noexcept;
  double requests_per_s() const noexcept;

 private:
  struct point {
    double t;
    std::uint64_t jobs, requests;
  };
  std::deque<point> window_;
  static constexpr double k_window_s = 5.0;
};

/// Counts the lines a job reader reads as jobs: those holding anything but
/// white space (blank lines are skipped), the last one even without its
/// newline. Fed a file's bytes in pieces of any size, as the pass that takes
/// the input's fingerprint reads them, so the file is not read again. Pure.
class job_line_tally {
 public:
  void add(std::string_view bytes) noexcept;
  std::uint64_t lines() const noexcept { return lines_ + (content_ ? 1 : 0); }

 private:
  std::uint64_t lines_ = 0;
  bool content_ = false;  // the current line has held something
};

/// Where the progress line is drawn: a terminal file descriptor. Log lines
/// written to the same terminal through `wrap_log_sink` erase the line first,
/// so a warning never lands in the middle of it; the next redraw puts it back.
/// One per process; use from one thread (the engine's).
class progress_terminal {
 public:
  /// True when `fd` is a terminal that understands cursor controls (TERM is not "dumb").
  static bool usable(int fd);

  /// Draws `text` in place of the current line (cut to the terminal's width).
  static void draw(const std::string& text);
  /// Removes the line, leaving the cursor at the start of an empty line.
  static void erase();
  /// A sink that calls erase() before each message it passes to `inner`.
  static std::shared_ptr<spdlog::sinks::sink> wrap_log_sink(std::shared_ptr<spdlog::sinks::sink> inner);
};

}  // namespace orgpatch
