#include "orgpatch/metrics.hpp"

#include <boost/histogram.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <iterator>

namespace orgpatch {

// 0.01 ms to 10 minutes, 400 log-spaced bins (~4 % wide each).
struct run_metrics::histogram {
  using axis_t = boost::histogram::axis::regular<double, boost::histogram::axis::transform::log>;
  decltype(boost::histogram::make_histogram(axis_t(400, 0.01, 600000.0))) h =
      boost::histogram::make_histogram(axis_t(400, 0.01, 600000.0));
};

run_metrics::run_metrics() : histogram_(std::make_unique<histogram>()) {}
run_metrics::~run_metrics() = default;
run_metrics::run_metrics(run_metrics&&) noexcept = default;
run_metrics& run_metrics::operator=(run_metrics&&) noexcept = default;

void run_metrics::job_finished(outcome o) noexcept {
  switch (o) {
    case outcome::ok: ++ok_; break;
    case outcome::failed: ++failed_; break;
    case outcome::exhausted: ++exhausted_; break;
    case outcome::invalid: ++invalid_; break;
  }
}

void run_metrics::request_done(unsigned status, double latency_ms) {
  ++requests_;
  ++status_counts_[status];
  latency_max_ = std::max(latency_max_, latency_ms);
  histogram_->h(std::max(latency_ms, 0.01));
  latency_ms = std::max(latency_ms, 0.0);
  latency_sum_ms_ += latency_ms;
  // The first bucket whose bound is not below it (le: inclusive); past the last, +Inf.
  const double s = latency_ms / 1000.0;
  const auto it = std::lower_bound(duration_bounds_s.begin(), duration_bounds_s.end(), s);
  ++duration_buckets_[static_cast<std::size_t>(it - duration_bounds_s.begin())];
}

void run_metrics::merge(const run_metrics& other) {
  ok_ += other.ok_;
  failed_ += other.failed_;
  exhausted_ += other.exhausted_;
  invalid_ += other.invalid_;
  requests_ += other.requests_;
  retries_ += other.retries_;
  for (std::size_t i = 0; i < rate_limited_.size(); ++i) rate_limited_[i] += other.rate_limited_[i];
  latency_max_ = std::max(latency_max_, other.latency_max_);
  latency_sum_ms_ += other.latency_sum_ms_;
  for (std::size_t i = 0; i < duration_buckets_.size(); ++i) duration_buckets_[i] += other.duration_buckets_[i];
  for (const auto& [status, count] : other.status_counts_) status_counts_[status] += count;
  histogram_->h += other.histogram_->h;
}

double run_metrics::latency_quantile(double q) const {
  const auto& h = histogram_->h;
  double total = 0;
  for (auto&& x : boost::histogram::indexed(h, boost::histogram::coverage::all)) total += *x;
  if (total == 0) return 0;
  const double target = q * total;
  double seen = 0;
  for (auto&& x : boost::histogram::indexed(h, boost::histogram::coverage::all)) {
    seen += *x;
    if (seen >= target && *x > 0) {
      // The bin's upper edge, but never above the largest value seen.
      const double upper = x.index() >= h.axis().size() ? latency_max_ : x.bin().upper();
      return std::min(upper, latency_max_);
    }
  }
  return latency_max_;
}

namespace {

double throughput(const run_metrics& m, const summary_context& c) {
  return c.elapsed_s > 0 ? static_cast<double>(m.requests()) / c.elapsed_s : 0.0;
}

std::string status_name(unsigned status) { return status == 0 ? std::string("transport") : std::to_string(status); }

}  // namespace

std::string format_summary(const run_metrics& m, const summary_context& c) {
  std::string out;
  auto line = [&](const std::string& text) {
    out += text;
    out += '\n';
  };
  line(fmt::format("orgpatchd: {} jobs in {:.2f} s{}", m.jobs(), c.elapsed_s,
                   c.stopped_reason.empty() ? "" : fmt::format(" (stopped: {})", c.stopped_reason)));
  line(fmt::format("  ok {}   failed {}   exhausted {}   invalid {}", m.ok(), m.failed(), m.exhausted(),
                   m.invalid()));
  std::string statuses;
  for (const auto& [status, count] : m.status_counts())
    statuses += fmt::format("{}{} ×{}", statuses.empty() ? "" : "   ", status_name(status), count);
  line(fmt::format("  requests {} ({:.0f}/s)   retries {}   429s {}   connections {}{}", m.requests(),
                   throughput(m, c), m.retries(), m.rate_limited_count(), c.connections_opened,
                   c.tls_resumed ? fmt::format(" ({} resumed TLS sessions)", c.tls_resumed) : std::string()));
  if (!statuses.empty()) line(fmt::format("  HTTP status: {}", statuses));
  if (m.requests() > 0)
    line(fmt::format("  latency ms: p50 {:.1f}   p90 {:.1f}   p99 {:.1f}   max {:.1f}", m.latency_quantile(0.5),
                     m.latency_quantile(0.9), m.latency_quantile(0.99), m.latency_max()));
  if (c.resumed > 0)
    line(fmt::format("  resumed: {} jobs finished before this run ({} not ok), not sent again", c.resumed,
                     c.resumed_not_ok));
  if (c.unfinished > 0)
    line(fmt::format("  unfinished {} (read but not finished when the run stopped; they got no line)", c.unfinished));
  line(fmt::format("  results:      {}", c.results_path));
  if (c.dead_letters > 0)
    line(fmt::format("  dead letters: {} ({} jobs to fix or run again)", c.dead_letter_path, c.dead_letters));
  return out;
}

std::string summary_json(const run_metrics& m, const summary_context& c) {
  std::string statuses;
  for (const auto& [status, count] : m.status_counts())
    statuses += fmt::format("{}\"{}\":{}", statuses.empty() ? "" : ",", status_name(status), count);
  return fmt::format(
      "{{\"jobs\":{{\"total\":{},\"ok\":{},\"failed\":{},\"exhausted\":{},\"invalid\":{}}},"
      "\"requests\":{},\"retries\":{},\"rate_limited\":{},\"elapsed_s\":{:.3f},\"throughput_rps\":{:.1f},"
      "\"latency_ms\":{{\"p50\":{:.3f},\"p90\":{:.3f},\"p99\":{:.3f},\"max\":{:.3f}}},"
      "\"status_counts\":{{{}}},\"connections_opened\":{},\"tls_resumed\":{},\"unfinished\":{},\"resumed\":{}}}\n",
      m.jobs(), m.ok(), m.failed(), m.exhausted(), m.invalid(), m.requests(), m.retries(), m.rate_limited_count(),
      c.elapsed_s, throughput(m, c), m.latency_quantile(0.5), m.latency_quantile(0.9), m.latency_quantile(0.99),
      m.latency_max(), statuses, c.connections_opened, c.tls_resumed, c.unfinished, c.resumed);
}

std::string prometheus_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string prometheus_text(const run_metrics& m, const metrics_gauges& g, std::string_view version) {
  std::string out;
  out.reserve(4096);
  auto family = [&](std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  auto sample = [&](std::string_view name, std::uint64_t value) {
    fmt::format_to(std::back_inserter(out), "{} {}\n", name, value);
  };
  auto labelled = [&](std::string_view name, std::string_view label, std::string_view value, std::uint64_t n) {
    fmt::format_to(std::back_inserter(out), "{}{{{}=\"{}\"}} {}\n", name, label, prometheus_label_value(value), n);
  };

  family("orgpatchd_jobs_total", "counter", "Jobs that reached their final outcome, by outcome.");
  labelled("orgpatchd_jobs_total", "outcome", "ok", m.ok());
  labelled("orgpatchd_jobs_total", "outcome", "failed", m.failed());
  labelled("orgpatchd_jobs_total", "outcome", "exhausted", m.exhausted());
  labelled("orgpatchd_jobs_total", "outcome", "invalid", m.invalid());

  family("orgpatchd_requests_total", "counter",
         "HTTP requests sent to the API, by response status (transport: no response).");
  for (const auto& [status, count] : m.status_counts())
    labelled("orgpatchd_requests_total", "status", status_name(status), count);

  family("orgpatchd_retries_total", "counter", "Retries scheduled after a transient failure (429s not included).");
  sample("orgpatchd_retries_total", m.retries());

  family("orgpatchd_rate_limited_total", "counter",
         "429 answers, by the limit inferred: token (Truto, whole API token), account (Truto, one integrated "
         "account), remote (the remote API).");
  labelled("orgpatchd_rate_limited_total", "reason", "token", m.rate_limited_count(rate_limit_reason::token));
  labelled("orgpatchd_rate_limited_total", "reason", "account", m.rate_limited_count(rate_limit_reason::account));
  labelled("orgpatchd_rate_limited_total", "reason", "remote", m.rate_limited_count(rate_limit_reason::remote));

  family("orgpatchd_in_flight", "gauge", "Requests being sent or awaiting their answer.");
  sample("orgpatchd_in_flight", g.in_flight);
  family("orgpatchd_queued_jobs", "gauge", "Jobs read and held, waiting for their turn.");
  sample("orgpatchd_queued_jobs", g.queued);
  family("orgpatchd_retrying_jobs", "gauge", "Jobs waiting out a retry delay or a 429's pause.");
  sample("orgpatchd_retrying_jobs", g.retrying);
  family("orgpatchd_throttled_accounts", "gauge", "Integrated accounts paused or slowed below their rate ceiling.");
  sample("orgpatchd_throttled_accounts", g.throttled_accounts);
  family("orgpatchd_connections_open", "gauge", "Connections to the API open now.");
  sample("orgpatchd_connections_open", g.connections_open);
  family("orgpatchd_connections_opened_total", "counter", "Connections to the API opened.");
  sample("orgpatchd_connections_opened_total", g.connections_opened);

  family("orgpatchd_request_duration_seconds", "histogram",
         "Time from writing a request to reading its whole response (or the transport failure).");
  std::uint64_t cumulative = 0;
  const auto& buckets = m.duration_buckets();
  for (std::size_t i = 0; i < run_metrics::duration_bounds_s.size(); ++i) {
    cumulative += buckets[i];
    fmt::format_to(std::back_inserter(out), "orgpatchd_request_duration_seconds_bucket{{le=\"{}\"}} {}\n",
                   run_metrics::duration_bounds_s[i], cumulative);
  }
  cumulative += buckets.back();
  fmt::format_to(std::back_inserter(out), "orgpatchd_request_duration_seconds_bucket{{le=\"+Inf\"}} {}\n", cumulative);
  fmt::format_to(std::back_inserter(out), "orgpatchd_request_duration_seconds_sum {}\n", m.latency_sum_s());
  sample("orgpatchd_request_duration_seconds_count", cumulative);

  family("orgpatchd_build_info", "gauge", "Always 1; the version of orgpatchd as a label.");
  labelled("orgpatchd_build_info", "version", version, 1);
  return out;
}

}  // namespace orgpatch
