/// Counters of a run, a log-scale latency histogram (Boost.Histogram), the
/// summary printed at the end (text and JSON), and the Prometheus text of
/// `/metrics`. Not thread-safe: the engine's one I/O thread owns it.
#pragma once

#include "orgpatch/results.hpp"

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace orgpatch {

/// Why a 429 came: Truto's limit for the whole API token (inferred: 429s for
/// several accounts within a second), an integrated account's limit, or the
/// remote API's (`truto_is_remote_error`).
enum class rate_limit_reason { token, account, remote };

class run_metrics {
 public:
  run_metrics();
  ~run_metrics();
  run_metrics(run_metrics&&) noexcept;
  run_metrics& operator=(run_metrics&&) noexcept;

  void job_finished(outcome o) noexcept;
  /// One HTTP exchange: its status (0 for a transport failure) and latency.
  void request_done(unsigned status, double latency_ms);
  void retried() noexcept { ++retries_; }
  void rate_limited(rate_limit_reason why) noexcept { ++rate_limited_[static_cast<std::size_t>(why)]; }
  /// Adds another run's counters and histograms to these (the service's totals).
  void merge(const run_metrics& other);

  std::uint64_t jobs() const noexcept { return ok_ + failed_ + exhausted_ + invalid_; }
  std::uint64_t ok() const noexcept { return ok_; }
  std::uint64_t failed() const noexcept { return failed_; }
  std::uint64_t exhausted() const noexcept { return exhausted_; }
  std::uint64_t invalid() const noexcept { return invalid_; }
  std::uint64_t requests() const noexcept { return requests_; }
  std::uint64_t retries() const noexcept { return retries_; }
  std::uint64_t rate_limited_count() const noexcept { return rate_limited_[0] + rate_limited_[1] + rate_limited_[2]; }
  std::uint64_t rate_limited_count(rate_limit_reason why) const noexcept {
    return rate_limited_[static_cast<std::size_t>(why)];
  }
  const std::map<unsigned, std::uint64_t>& status_counts() const noexcept { return status_counts_; }

  /// Latency quantile in ms (q in [0,1]) from the histogram; 0 with no requests.
  double latency_quantile(double q) const;
  double latency_max() const noexcept { return latency_max_; }

  /// Upper bounds (seconds, inclusive) of the fixed latency buckets of
  /// `orgpatchd_request_duration_seconds`; a last bucket, +Inf, follows.
  static constexpr std::array<double, 13> duration_bounds_s = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                               1,     2.5,  5,     10,   30,  60};
  /// Requests per fixed bucket (not cumulative), the last one above 60 s: exact
  /// counts, which the log-scale histogram cannot give at these bounds.
  const std::array<std::uint64_t, duration_bounds_s.size() + 1>& duration_buckets() const noexcept {
    return duration_buckets_;
  }
  /// The sum of all request latencies, in seconds.
  double latency_sum_s() const noexcept { return latency_sum_ms_ / 1000.0; }

 private:
  std::uint64_t ok_ = 0, failed_ = 0, exhausted_ = 0, invalid_ = 0;
  std::uint64_t requests_ = 0, retries_ = 0;
  std::array<std::uint64_t, 3> rate_limited_{};  // by rate_limit_reason
  double latency_max_ = 0;
  double latency_sum_ms_ = 0;
  std::array<std::uint64_t, duration_bounds_s.size() + 1> duration_buckets_{};
  std::map<unsigned, std::uint64_t> status_counts_;
  struct histogram;
  std::unique_ptr<histogram> histogram_;
};

/// What the summary says besides the counters.
struct summary_context {
  double elapsed_s = 0;
  std::string results_path;
  std::string dead_letter_path;
  std::uint64_t dead_letters = 0;
  std::uint64_t connections_opened = 0;
  std::uint64_t tls_resumed = 0;     ///< of which resumed an earlier TLS session
  std::string stopped_reason;  ///< empty when the run finished
  std::uint64_t unfinished = 0;  ///< jobs read that got no line (stopped: run again)
  std::uint64_t resumed = 0;         ///< jobs finished by earlier runs of a resumed run
  std::uint64_t resumed_not_ok = 0;  ///< of which not ok
};

/// The one-screen summary for people.
std::string format_summary(const run_metrics& m, const summary_context& c);

/// The summary as JSON (`--summary-json`): jobs{total,ok,failed,exhausted,invalid},
/// requests, retries, elapsed_s, throughput_rps, latency_ms{p50,p90,p99,max}, status_counts.
std::string summary_json(const run_metrics& m, const summary_context& c);

/// What `/metrics` shows besides a run_metrics: the runs in progress, summed.
struct metrics_gauges {
  std::uint64_t in_flight = 0;           ///< requests being sent or awaiting their answer
  std::uint64_t queued = 0;              ///< jobs held, waiting for their turn
  std::uint64_t retrying = 0;            ///< jobs waiting out a retry delay or a 429's pause
  std::uint64_t throttled_accounts = 0;  ///< accounts paused or slowed below their ceiling
  std::uint64_t connections_open = 0;
  std::uint64_t connections_opened = 0;  ///< a counter: since the process started
};

/// The Prometheus text exposition format (version 0.0.4) of `m` and `g`, with
/// HELP and TYPE lines, and `orgpatchd_build_info{version=...} 1`. A pure
/// function; docs/metrics.md lists the metrics.
std::string prometheus_text(const run_metrics& m, const metrics_gauges& g, std::string_view version);

/// A label value escaped for the exposition format: backslash, double quote
/// and line feed become `\\`, `\"` and `\n`.
std::string prometheus_label_value(std::string_view v);

}  // namespace orgpatch
