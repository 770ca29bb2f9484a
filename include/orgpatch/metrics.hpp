/// Counters of a run, a log-scale latency histogram (Boost.Histogram), and the
/// summary printed at the end (text and JSON). Not thread-safe: the engine's
/// one I/O thread owns it.
#pragma once

#include "orgpatch/results.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace orgpatch {

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
  void rate_limited() noexcept { ++rate_limited_; }

  std::uint64_t jobs() const noexcept { return ok_ + failed_ + exhausted_ + invalid_; }
  std::uint64_t ok() const noexcept { return ok_; }
  std::uint64_t failed() const noexcept { return failed_; }
  std::uint64_t exhausted() const noexcept { return exhausted_; }
  std::uint64_t invalid() const noexcept { return invalid_; }
  std::uint64_t requests() const noexcept { return requests_; }
  std::uint64_t retries() const noexcept { return retries_; }
  std::uint64_t rate_limited_count() const noexcept { return rate_limited_; }
  const std::map<unsigned, std::uint64_t>& status_counts() const noexcept { return status_counts_; }

  /// Latency quantile in ms (q in [0,1]) from the histogram; 0 with no requests.
  double latency_quantile(double q) const;
  double latency_max() const noexcept { return latency_max_; }

 private:
  std::uint64_t ok_ = 0, failed_ = 0, exhausted_ = 0, invalid_ = 0;
  std::uint64_t requests_ = 0, retries_ = 0, rate_limited_ = 0;
  double latency_max_ = 0;
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

}  // namespace orgpatch
