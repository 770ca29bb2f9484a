#include "orgpatch/metrics.hpp"

#include <boost/histogram.hpp>
#include <fmt/format.h>

#include <algorithm>

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

}  // namespace orgpatch
