#include "orgpatch/progress.hpp"

#include <fmt/format.h>
#include <spdlog/sinks/base_sink.h>

#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace orgpatch {
namespace {

// 1234567 → "1 234 567": long counts stay readable at a glance.
std::string grouped(std::uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i != 0 && (digits.size() - i) % 3 == 0) out += ' ';
    out += digits[i];
  }
  return out;
}

}  // namespace

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e9) return "–";
  const auto s = static_cast<std::uint64_t>(std::llround(seconds));
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

std::string format_progress(const progress_snapshot& s) {
  std::string out;
  if (s.total) {
    const std::uint64_t total = std::max(*s.total, s.done);
    const double pct = total == 0 ? 100.0 : 100.0 * static_cast<double>(s.done) / static_cast<double>(total);
    out = fmt::format("{}/{} jobs {:.0f}%", grouped(s.done), grouped(total), std::floor(pct));
  } else {
    out = fmt::format("{} jobs", grouped(s.done));
  }
  out += fmt::format(" · {} req/s", grouped(static_cast<std::uint64_t>(std::llround(s.requests_per_s))));
  if (s.total) {
    const std::uint64_t left = *s.total > s.done ? *s.total - s.done : 0;
    out += " · ETA ";
    out += left == 0 ? "0:00" : s.jobs_per_s > 0 ? format_duration(static_cast<double>(left) / s.jobs_per_s) : "–";
  }
  out += fmt::format(" · ok {} · failed {}", grouped(s.ok), grouped(s.failed));
  if (s.retrying > 0) out += fmt::format(" · retrying {}", grouped(s.retrying));
  if (s.throttled_accounts > 0) out += fmt::format(" · throttled accounts {}", grouped(s.throttled_accounts));
  out += " · " + format_duration(s.elapsed_s);
  return out;
}

void progress_rates::sample(double t_s, std::uint64_t jobs, std::uint64_t requests) {
  window_.push_back({t_s, jobs, requests});
  // Keep the oldest sample at most a window back, but always two to compare.
  while (window_.size() > 2 && window_[1].t <= t_s - k_window_s) window_.pop_front();
}

double progress_rates::jobs_per_s() const noexcept {
  if (window_.size() < 2) return 0;
  const double dt = window_.back().t - window_.front().t;
  return dt > 0 ? static_cast<double>(window_.back().jobs - window_.front().jobs) / dt : 0;
}

double progress_rates::requests_per_s() const noexcept {
  if (window_.size() < 2) return 0;
  const double dt = window_.back().t - window_.front().t;
  return dt > 0 ? static_cast<double>(window_.back().requests - window_.front().requests) / dt : 0;
}

void job_line_tally::add(std::string_view bytes) noexcept {
  std::size_t i = 0;
  while (i < bytes.size()) {
    if (!content_) {
      // White space until the line shows content (at once, as a rule) or ends.
      const char c = bytes[i++];
      if (c == '\n') continue;
      if (c != ' ' && c != '\t' && c != '\r') content_ = true;
      continue;
    }
    // The rest of a line with content: only its end matters.
    const auto end = bytes.find('\n', i);
    if (end == std::string_view::npos) return;
    ++lines_;
    content_ = false;
    i = end + 1;
  }
}

namespace {

bool g_drawn = false;  // a progress line is on the terminal now

// Log messages first take the progress line off the terminal.
class erase_first_sink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit erase_first_sink(std::shared_ptr<spdlog::sinks::sink> inner) : inner_(std::move(inner)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    progress_terminal::erase();
    inner_->log(msg);
  }
  void flush_() override { inner_->flush(); }
  void set_pattern_(const std::string& pattern) override { inner_->set_pattern(pattern); }
  void set_formatter_(std::unique_ptr<spdlog::formatter> f) override { inner_->set_formatter(std::move(f)); }

 private:
  std::shared_ptr<spdlog::sinks::sink> inner_;
};

void write_all(const std::string& text) {
  const char* p = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    const ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // a progress line is not worth failing for
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

std::size_t terminal_width() {
  winsize ws{};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

// Cuts UTF-8 text to `columns` characters (each code point one column here).
std::string fit(const std::string& text, std::size_t columns) {
  std::size_t chars = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) continue;  // continuation byte
    if (chars == columns) return text.substr(0, i);
    ++chars;
  }
  return text;
}

}  // namespace

bool progress_terminal::usable(int fd) {
  if (::isatty(fd) != 1) return false;
  const char* term = std::getenv("TERM");
  return term == nullptr || std::strcmp(term, "dumb") != 0;
}

void progress_terminal::draw(const std::string& text) {
  // Carriage return, the text, then erase what an older, longer line left.
  // One column is kept free: writing the last one wraps on some terminals.
  const std::size_t width = terminal_width();
  write_all("\r" + fit(text, width > 1 ? width - 1 : width) + "\x1b[K");
  g_drawn = true;
}

void progress_terminal::erase() {
  if (!g_drawn) return;
  write_all("\r\x1b[K");
  g_drawn = false;
}

std::shared_ptr<spdlog::sinks::sink> progress_terminal::wrap_log_sink(std::shared_ptr<spdlog::sinks::sink> inner) {
  return std::make_shared<erase_first_sink>(std::move(inner));
}

}  // namespace orgpatch
