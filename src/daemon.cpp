#include "orgpatch/daemon.hpp"

#include "orgpatch/asio.hpp"
#include "orgpatch/engine.hpp"
#include "orgpatch/metrics_server.hpp"
#include "orgpatch/sources/redis_source.hpp"

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <fcntl.h>
#include <stdio.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <string>
#include <unordered_set>
#include <vector>

namespace orgpatch {
namespace {

namespace fs = std::filesystem;

std::string utc_stamp() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  return stamp;
}

bool taken(const fs::path& p) {
  std::error_code ec;
  for (std::string_view suffix : {"", ".results.jsonl", ".failed.jsonl", ".error"})
    if (fs::exists(fs::symlink_status(p.string() + std::string(suffix), ec))) return true;
  return false;
}

// A name free in `dir` — and its outputs' names too: NAME, else NAME.STAMP, NAME.STAMP-2, …
fs::path free_name(const fs::path& dir, const std::string& name) {
  fs::path p = dir / name;
  if (!taken(p)) return p;
  const std::string stamp = utc_stamp();
  p = dir / (name + "." + stamp);
  for (int i = 2; taken(p); ++i) p = dir / (name + "." + stamp + "-" + std::to_string(i));
  return p;
}

// rename(2) that never replaces an existing file (two submitters, two services).
bool rename_no_replace(const fs::path& from, const fs::path& to) {
  return ::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0;
}

// A regular file, not a symbolic link: a link in the spool could make the service
// read (and copy into a group-readable dead-letter file) something it can read
// and the group cannot, such as its own credential.
bool is_plain_file(const fs::directory_entry& e) {
  std::error_code ec;
  return fs::is_regular_file(e.symlink_status(ec));
}

// Job files only: not hidden (submit's temporary names), not our own outputs.
bool is_job_file_name(const std::string& name) {
  if (name.empty() || name[0] == '.') return false;
  for (std::string_view suffix : {".results.jsonl", ".failed.jsonl", ".tmp"})
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      return false;
  return true;
}

void notify(const std::string& state) { sd_notify(0, state.c_str()); }

bool same_redis_settings(const config& a, const config& b) {
  const auto& x = a.serve.redis;
  const auto& y = b.serve.redis;
  return x.url == y.url && x.stream == y.stream && x.group == y.group && x.consumer == y.consumer &&
         x.max_deliveries == y.max_deliveries && x.claim_idle_ms == y.claim_idle_ms &&
         x.dead_letter_stream == y.dead_letter_stream && x.results_stream == y.results_stream;
}

class spool_daemon {
 public:
  explicit spool_daemon(serve_options o)
      : opt_(std::move(o)),
        spool_(opt_.cfg.serve.spool_dir),
        signals_(io_, SIGINT, SIGTERM, SIGHUP),
        status_timer_(io_),
        watchdog_timer_(io_),
        grace_timer_(io_),
        retry_timer_(io_),
        inotify_(io_) {}

  int run() {
    try {
      for (const char* sub : {"incoming", "processing", "done", "failed"}) {
        fs::create_directories(spool_ / sub);
      }
      open_inotify();
      // Files a stop or a crash left in processing/ first, then what waits in incoming/.
      std::vector<std::string> left;
      for (const auto& e : fs::directory_iterator(spool_ / "processing"))
        if (is_plain_file(e) && is_job_file_name(e.path().filename().string())) left.push_back(e.path().filename().string());
      std::sort(left.begin(), left.end());
      for (auto& name : left) {
        spdlog::info("spool: resuming processing/{}", name);
        queue_.push_back(name);
      }
      scan_incoming();
    } catch (const std::exception& e) {
      spdlog::error("spool {}: {}", spool_.string(), e.what());
      return 1;
    }
    // /metrics for the life of the service; a port in use is an error before
    // READY=1, as a spool that cannot be used is. Empty (or null): none.
    if (!opt_.cfg.serve.metrics_listen.empty()) {
      try {
        metrics_.emplace(io_, metrics_server_params{opt_.cfg.serve.metrics_listen}, [this] { return metrics_text(); });
      } catch (const std::exception& e) {
        spdlog::error("serve.metrics_listen: {}", e.what());
        return 1;
      }
    }
    if (opt_.cfg.serve.redis.url) {
      try {
        stream_ = std::make_unique<redis_source>(io_.get_executor(), redis_source_params_from(opt_.cfg));
      } catch (const std::exception& e) {
        spdlog::error("{}", e.what());
        return 1;
      }
      stream_->start();
      start_stream_session();
    }
    watch_signals();
    schedule_status();
    schedule_watchdog();
    notify(fmt::format("READY=1\nSTATUS=ready: spool {}, {} file(s) queued{}", spool_.string(), queue_.size(),
                       stream_ ? "; " + stream_->name() : std::string()));
    spdlog::info("serving spool {}{} → {}", spool_.string(), stream_ ? " and " + stream_->name() : std::string(),
                 opt_.cfg.api.base_url);
    next();
    io_.run();
    spdlog::info("stopped");
    return 0;
  }

 private:
  // --- the spool ---------------------------------------------------------------

  void open_inotify() {
    const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) throw std::runtime_error(fmt::format("inotify: {}", std::strerror(errno)));
    if (::inotify_add_watch(fd, (spool_ / "incoming").c_str(), IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
      const int e = errno;
      ::close(fd);
      throw std::runtime_error(fmt::format("inotify on {}: {}", (spool_ / "incoming").string(), std::strerror(e)));
    }
    inotify_.assign(fd);
    watch_inotify();
  }

  void watch_inotify() {
    inotify_.async_wait(net::posix::stream_descriptor::wait_read, [this](boost::system::error_code ec) {
      if (ec) return;
      // Drain the events; then claim whatever is in incoming/ (a scan is simpler
      // and catches names the events coalesced).
      alignas(inotify_event) char buf[16 * 1024];
      while (::read(inotify_.native_handle(), buf, sizeof buf) > 0) {
      }
      try {
        scan_incoming();
      } catch (const std::exception& e) {
        spdlog::error("spool: cannot read incoming/: {}", e.what());
      }
      next();
      if (!finished_) watch_inotify();
    });
  }

  void scan_incoming() {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(spool_ / "incoming"))
      if (is_plain_file(e) && is_job_file_name(e.path().filename().string())) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    for (const auto& name : names) claim(name);
  }

  // incoming/NAME → processing/NAME by an atomic rename: one service claims it.
  void claim(const std::string& name) {
    fs::path target;
    for (int tries = 0;; ++tries) {
      target = free_name(spool_ / "processing", name);
      if (rename_no_replace(spool_ / "incoming" / name, target)) break;
      if (errno == EEXIST && tries < 5) continue;
      if (errno != ENOENT) spdlog::error("spool: cannot claim incoming/{}: {}", name, std::strerror(errno));
      return;
    }
    spdlog::info("spool: claimed {}", target.filename().string());
    queue_.push_back(target.filename().string());
  }

  void next() {
    if (current_ || stopping_ || queue_.empty() || paused_) return;
    current_name_ = queue_.front();
    queue_.pop_front();
    run_options o;
    o.input = (spool_ / "processing" / current_name_).string();
    o.cfg = opt_.cfg;
    o.cfg.output.results = o.input + ".results.jsonl";
    o.cfg.output.dead_letter = o.input + ".failed.jsonl";
    o.token = opt_.token;
    o.handle_signals = false;
    spdlog::info("spool: running {}", current_name_);
    current_ = std::make_unique<run_session>(io_, std::move(o));
    current_->start([this] { net::post(io_, [this] { file_done(); }); });
  }

  void file_done() {
    const run_report& r = current_->report();
    const std::string name = current_name_;
    add_to_totals(r);
    if (!r.fatal_error.empty() && r.run_id.empty()) {
      // This file cannot run (unreadable, not ours to resume…): set it aside
      // with the reason, and go on with the others.
      spdlog::error("spool: {}: {} — moved to failed/", name, r.fatal_error);
      move_to("failed", name, r.fatal_error);
    } else if (!r.fatal_error.empty()) {
      // It could not run (the token refused, TLS…): it stays in processing/ and
      // is tried again later; the other files wait behind it.
      spdlog::error("spool: {}: {} — trying again in {} s", name, r.fatal_error, k_retry_s);
      queue_.push_front(name);
      paused_ = true;
      retry_timer_.expires_after(std::chrono::seconds(k_retry_s));
      retry_timer_.async_wait([this](boost::system::error_code ec) {
        if (ec || finished_) return;
        paused_ = false;
        next();
      });
    } else if (r.summary.unfinished > 0 || stopping_) {
      spdlog::info("spool: {} stopped with {} job(s) unfinished; resumed at the next start", name,
                   r.summary.unfinished);
    } else {
      finished_files_ += 1;
      finished_jobs_ += r.metrics.jobs();
      move_to("done", name, {});
      spdlog::info("spool: {} done: {} ok, {} failed, {} exhausted, {} invalid", name, r.metrics.ok(),
                   r.metrics.failed(), r.metrics.exhausted(), r.metrics.invalid());
    }
    current_.reset();
    current_name_.clear();
    if (stopping_) {
      maybe_finish();
      return;
    }
    next();
  }

  // processing/NAME and its outputs → done/ or failed/ (a taken name gets a
  // timestamp). The outputs go first and the job file last: a crash in between
  // leaves the job file in processing/ with what remains, resumed at start.
  void move_to(const char* where, const std::string& name, const std::string& reason) {
    try {
      const fs::path target = free_name(spool_ / where, name);
      if (!reason.empty()) {
        const fs::path why = target.string() + ".error";
        if (FILE* f = std::fopen(why.c_str(), "we")) {
          std::fprintf(f, "%s\n", reason.c_str());
          std::fclose(f);
        }
      }
      for (std::string_view suffix : {".results.jsonl", ".failed.jsonl", ""}) {
        const fs::path from = spool_ / "processing" / (name + std::string(suffix));
        std::error_code ec;
        if (!fs::exists(fs::symlink_status(from, ec))) continue;
        const fs::path to = target.string() + std::string(suffix);
        if (!rename_no_replace(from, to))
          spdlog::error("spool: cannot move {} to {}: {}", from.string(), to.string(), std::strerror(errno));
      }
    } catch (const std::exception& e) {
      spdlog::error("spool: cannot move {} to {}/: {}", name, where, e.what());
    }
  }

  // --- the Redis stream ----------------------------------------------------------

  // The stream's results go beside the spool unless output.* names them.
  std::string stream_output(const std::optional<std::string>& configured, const char* name) const {
    if (configured) return *configured;
    return (spool_.parent_path() / name).string();
  }

  void start_stream_session() {
    if (stream_session_ || stopping_) return;
    stream_->resume();
    run_options o;
    o.input = stream_->name();
    o.cfg = opt_.cfg;
    o.cfg.output.results = stream_output(opt_.cfg.output.results, "stream.results.jsonl");
    o.cfg.output.dead_letter = stream_output(opt_.cfg.output.dead_letter, "stream.failed.jsonl");
    o.token = opt_.token;
    o.handle_signals = false;
    spdlog::info("{}: consumer {} in group {}; results in {}", stream_->name(), stream_->consumer(),
                 opt_.cfg.serve.redis.group, *o.cfg.output.results);
    // Idempotency keys come from the stream's name and each job's key: the
    // same on every host that may take an entry over. (The stream read is the
    // one opened at start: serve.redis.* changes need a restart.)
    stream_session_ = std::make_unique<run_session>(io_, std::move(o), *stream_,
                                                    "redis-stream:" + stream_->stream_name());
    stream_session_->start([this] { net::post(io_, [this] { stream_session_done(); }); });
  }

  void stream_session_done() {
    const run_report r = stream_session_->take_report();
    stream_session_.reset();
    add_to_totals(r);
    stream_jobs_ += r.metrics.jobs();
    stream_not_ok_ += r.metrics.jobs() - r.metrics.ok();
    if (stopping_) {
      stream_->shutdown(std::chrono::seconds(5), [this] {
        stream_closed_ = true;
        maybe_finish();
      });
      return;
    }
    if (std::exchange(restart_stream_, false) && r.fatal_error.empty()) {
      stream_->release_unfinished(true);
      start_stream_session();
      return;
    }
    // It stopped on its own: the token refused, TLS, an unwritable results
    // file. What it held is released (taken over once idle) and it starts again.
    spdlog::error("{}: {} — trying again in {} s", stream_->name(),
                  r.fatal_error.empty() ? std::string("the run ended") : r.fatal_error, k_retry_s);
    stream_->release_unfinished(false);
    stream_retry_timer_.expires_after(std::chrono::seconds(k_retry_s));
    stream_retry_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec && !finished_) start_stream_session();
    });
  }

  // --- metrics --------------------------------------------------------------------

  // A run that ended: its counters stay in the service's totals (counters never
  // go back, whatever the runs do).
  void add_to_totals(const run_report& r) {
    totals_.merge(r.metrics);
    connections_opened_ += r.summary.connections_opened;
  }

  // The totals of the runs that ended, plus the counters and gauges of those in progress.
  std::string metrics_text() const {
    run_metrics m;
    m.merge(totals_);
    metrics_gauges g;
    g.connections_opened = connections_opened_;
    for (const run_session* s : {current_.get(), stream_session_.get()}) {
      if (!s) continue;
      m.merge(s->report().metrics);
      add_live(g, s->live());
    }
    // An account throttled in both runs (a spool file's and the stream's) is one account.
    if (current_ && stream_session_) {
      std::unordered_set<std::string> ids;
      for (const run_session* s : {current_.get(), stream_session_.get()})
        for (auto& id : s->throttled_account_ids()) ids.insert(std::move(id));
      g.throttled_accounts = ids.size();
    }
    return prometheus_text(m, g, ORGPATCH_VERSION);
  }

  // --- signals, status, watchdog ------------------------------------------------

  void watch_signals() {
    signals_.async_wait([this](boost::system::error_code ec, int signo) {
      if (ec || finished_) return;
      if (signo == SIGHUP) reload();
      else stop(signo);
      if (!finished_) watch_signals();
    });
  }

  void reload() {
    notify("RELOADING=1");
    if (opt_.config_path) {
      try {
        config c = load_config(*opt_.config_path);
        validate_config(c);
        const config c_before = std::exchange(opt_.cfg, std::move(c));
        spdlog::info("SIGHUP: {} read again (applies from the next file{})", *opt_.config_path,
                     stream_session_ ? "; the stream's run starts again with it" : "");
        if (stream_ && !same_redis_settings(c_before, opt_.cfg))
          spdlog::warn("SIGHUP: serve.redis.* changed: the stream keeps its settings until the service restarts");
        if (c_before.serve.metrics_listen != opt_.cfg.serve.metrics_listen)
          spdlog::warn("SIGHUP: serve.metrics_listen changed: /metrics stays where it is until the service restarts");
        // The stream's run takes the new limits by starting again; the entries
        // it held are read back from this consumer's pending list.
        if (stream_session_) {
          restart_stream_ = true;
          stream_session_->stop(false);
        }
      } catch (const std::exception& e) {
        spdlog::error("SIGHUP: {} (the old config stays)", e.what());
      }
    }
    // logrotate moved the outputs: continue in new files.
    if (current_) current_->reopen_outputs();
    if (stream_session_) stream_session_->reopen_outputs();
    notify("READY=1");
  }

  void stop(int signo) {
    if (stopping_) {
      if (current_) current_->stop(true);  // a second signal: at once
      if (stream_session_) stream_session_->stop(true);
      return;
    }
    stopping_ = true;
    notify("STOPPING=1");
    spdlog::info("{}: finishing the requests in flight (up to {} s)", signo == SIGINT ? "SIGINT" : "SIGTERM",
                 opt_.cfg.shutdown_grace_s);
    stream_retry_timer_.cancel();
    if (current_) current_->stop(false);
    if (stream_session_) stream_session_->stop(false);
    else if (stream_ && !stream_closed_) stream_->shutdown(std::chrono::seconds(5), [this] {
        stream_closed_ = true;
        maybe_finish();
      });
    grace_timer_.expires_after(std::chrono::seconds(opt_.cfg.shutdown_grace_s));
    grace_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      if (current_) current_->stop(true);
      if (stream_session_) stream_session_->stop(true);
    });
    maybe_finish();
  }

  // Stopping, and nothing runs any more: the spool's file and the stream are done.
  void maybe_finish() {
    if (!stopping_ || finished_ || current_ || stream_session_ || (stream_ && !stream_closed_)) return;
    finish();
  }

  void finish() {
    finished_ = true;
    boost::system::error_code ignored;
    signals_.cancel(ignored);
    status_timer_.cancel();
    watchdog_timer_.cancel();
    grace_timer_.cancel();
    retry_timer_.cancel();
    stream_retry_timer_.cancel();
    inotify_.close(ignored);
    if (metrics_) metrics_->close();
  }

  void schedule_status() {
    status_timer_.expires_after(std::chrono::seconds(k_status_s));
    status_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec || finished_) return;
      std::string status;
      std::uint64_t done = finished_jobs_;
      if (current_) done += current_->report().metrics.jobs();
      if (current_) {
        const auto& m = current_->report().metrics;
        status = fmt::format("STATUS=running {}: {} jobs done ({} ok, {} not ok); {} file(s) queued; {} done since start",
                             current_name_, m.jobs(), m.ok(), m.jobs() - m.ok(), queue_.size(), finished_files_);
      } else {
        status = fmt::format("STATUS=idle: {} file(s) and {} jobs done since start", finished_files_, finished_jobs_);
      }
      if (stream_) {
        const auto& st = stream_->stats();
        std::uint64_t jobs = stream_jobs_, not_ok = stream_not_ok_;
        if (stream_session_) {
          const auto& m = stream_session_->report().metrics;
          jobs += m.jobs();
          not_ok += m.jobs() - m.ok();
        }
        done += jobs;
        status += fmt::format("; stream {}: {} jobs done ({} not ok), {} held, {}", opt_.cfg.serve.redis.stream, jobs,
                              not_ok, stream_->held(), stream_->ready() ? "connected" : "Redis unreachable");
        if (st.claimed || st.dead_lettered)
          status += fmt::format(", {} taken over, {} dead-lettered", st.claimed, st.dead_lettered);
      }
      // The rate over the last interval (what an operator watching `systemctl status` wants).
      status += fmt::format("; {:.0f} jobs/s", static_cast<double>(done - std::min(done, status_done_)) / k_status_s);
      status_done_ = done;
      notify(status);
      schedule_status();
    });
  }

  void schedule_watchdog() {
    std::uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return;
    watchdog_interval_ = std::chrono::microseconds(usec / 2);
    watchdog_tick();
  }

  void watchdog_tick() {
    notify("WATCHDOG=1");
    watchdog_timer_.expires_after(watchdog_interval_);
    watchdog_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec && !finished_) watchdog_tick();
    });
  }

  static constexpr unsigned k_retry_s = 60;
  static constexpr unsigned k_status_s = 5;

  serve_options opt_;
  fs::path spool_;
  net::io_context io_{1};
  net::signal_set signals_;
  net::steady_timer status_timer_;
  net::steady_timer watchdog_timer_;
  net::steady_timer grace_timer_;
  net::steady_timer retry_timer_;
  net::posix::stream_descriptor inotify_;
  std::chrono::microseconds watchdog_interval_{0};
  std::deque<std::string> queue_;
  std::unique_ptr<run_session> current_;
  net::steady_timer stream_retry_timer_{io_};
  std::unique_ptr<redis_source> stream_;  // after io_: destroyed before it
  std::unique_ptr<run_session> stream_session_;
  run_metrics totals_;                     // of the runs that ended, for /metrics
  std::uint64_t connections_opened_ = 0;   // by the runs that ended
  std::optional<metrics_server> metrics_;  // after the sessions: closed first, before io_ goes
  std::uint64_t stream_jobs_ = 0;    // by stream runs that ended (SIGHUP, a fatal error)
  std::uint64_t stream_not_ok_ = 0;
  std::uint64_t status_done_ = 0;    // jobs done at the last STATUS=
  bool stream_closed_ = false;
  bool restart_stream_ = false;  // SIGHUP: the stream's run stops to start again with the new config
  std::string current_name_;
  std::uint64_t finished_files_ = 0;
  std::uint64_t finished_jobs_ = 0;
  bool stopping_ = false;
  bool finished_ = false;
  bool paused_ = false;
};

}  // namespace

int serve(serve_options options) {
  spool_daemon d(std::move(options));
  return d.run();
}

std::string submit_to_spool(const std::string& spool_dir, const std::string& file) {
  const fs::path incoming = fs::path(spool_dir) / "incoming";
  if (!fs::is_directory(incoming))
    throw std::runtime_error(fmt::format("{}: no such spool directory (is the service installed?)", incoming.string()));
  const int in = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) throw std::runtime_error(fmt::format("{}: cannot open: {}", file, std::strerror(errno)));
  std::string name = fs::path(file).filename().string();
  if (!is_job_file_name(name)) name = "job-" + utc_stamp() + ".jsonl";
  // A hidden temporary name the service ignores, synced, then renamed: the
  // service never sees half a file.
  const fs::path tmp = incoming / fmt::format(".{}.{}.tmp", name, ::getpid());
  const int out = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0660);
  if (out < 0) {
    const int e = errno;
    ::close(in);
    throw std::runtime_error(fmt::format("{}: cannot create: {}", tmp.string(), std::strerror(e)));
  }
  std::vector<char> buf(1 << 20);
  for (;;) {
    const ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = ::write(out, buf.data() + done, static_cast<std::size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        const int e = errno;
        ::close(in);
        ::close(out);
        ::unlink(tmp.c_str());
        throw std::runtime_error(fmt::format("{}: cannot write: {}", tmp.string(), std::strerror(e)));
      }
      done += w;
    }
  }
  ::close(in);
  // Readable by the service's group whatever the submitter's umask.
  if (::fchmod(out, 0660) != 0 || ::fsync(out) != 0 || ::close(out) != 0) {
    ::unlink(tmp.c_str());
    throw std::runtime_error(fmt::format("{}: cannot sync: {}", tmp.string(), std::strerror(errno)));
  }
  for (int tries = 0;; ++tries) {
    const fs::path target = free_name(incoming, name);
    if (rename_no_replace(tmp, target)) return target.string();
    if (errno == EEXIST && tries < 5) continue;
    const int e = errno;
    ::unlink(tmp.c_str());
    throw std::runtime_error(fmt::format("{}: cannot queue: {}", target.string(), std::strerror(e)));
  }
}

}  // namespace orgpatch
