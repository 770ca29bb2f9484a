#include "orgpatch/engine.hpp"

#include "orgpatch/asio.hpp"
#include "orgpatch/connection_pool.hpp"
#include "orgpatch/error.hpp"
#include "orgpatch/metrics_server.hpp"
#include "orgpatch/progress.hpp"
#include "orgpatch/rate_limiter.hpp"
#include "orgpatch/redis.hpp"
#include "orgpatch/redis_limiter.hpp"
#include "orgpatch/scheduler.hpp"
#include "orgpatch/request.hpp"
#include "orgpatch/response.hpp"
#include "orgpatch/results.hpp"
#include "orgpatch/retry.hpp"
#include "orgpatch/sources/file_source.hpp"
#include "orgpatch/sources/job_source.hpp"

#include <boost/asio/detached.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <deque>
#include <functional>
#include <filesystem>
#include <random>
#include <unordered_map>
#include <unordered_set>

namespace orgpatch {
namespace {

using namespace std::chrono_literals;

std::string strip_jsonl(const std::string& input) {
  for (std::string_view ext : {".jsonl", ".ndjson", ".json"}) {
    if (input.size() > ext.size() && input.compare(input.size() - ext.size(), ext.size(), ext) == 0)
      return input.substr(0, input.size() - ext.size());
  }
  return input;
}

std::string random_run_id() {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    std::random_device rd;
    for (auto& b : bytes) b = static_cast<unsigned char>(rd());
  }
  std::string out;
  for (unsigned char b : bytes) out += fmt::format("{:02x}", b);
  return out;
}

struct input_fingerprint {
  std::uint64_t size = 0;
  std::string sha256;
  std::optional<std::uint64_t> job_lines;  ///< non-blank lines (the progress line's total)

  /// Whether an earlier run's results log is of this same input.
  bool matches(const run_header& h) const { return h.input_size == size && h.input_sha256 == sha256; }
};

// The input's size, SHA-256 and lines that hold a job, in one pass (a regular
// file only; standard input cannot be read twice).
input_fingerprint fingerprint(const std::string& path) {
  input_fingerprint fp;
  if (path == "-") return fp;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return fp;
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<char> block(1 << 20);
  job_line_tally lines;
  for (;;) {
    const ssize_t n = ::read(fd, block.data(), block.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      EVP_MD_CTX_free(ctx);
      ::close(fd);
      throw std::runtime_error(fmt::format("{}: cannot read: {}", path, std::strerror(e)));
    }
    if (n == 0) break;
    EVP_DigestUpdate(ctx, block.data(), static_cast<std::size_t>(n));
    lines.add(std::string_view(block.data(), static_cast<std::size_t>(n)));
    fp.size += static_cast<std::uint64_t>(n);
  }
  fp.job_lines = lines.lines();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx, digest, &len);
  EVP_MD_CTX_free(ctx);
  ::close(fd);
  for (unsigned i = 0; i < len; ++i) fp.sha256 += fmt::format("{:02x}", digest[i]);
  return fp;
}

// The same file, even when spelled differently or not created yet.
bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {}, sb {};
  if (::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0)
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  std::error_code ea, eb;
  const auto ca = std::filesystem::weakly_canonical(std::filesystem::absolute(a), ea);
  const auto cb = std::filesystem::weakly_canonical(std::filesystem::absolute(b), eb);
  if (ea || eb) return a == b;
  return ca == cb;
}

bool non_empty_file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && st.st_size > 0;
}

/// A job file or standard input as the engine's source: a quiet pipe is waited
/// for on the io_context, never read in a blocking way.
class file_job_source final : public job_source {
 public:
  file_job_source(net::io_context& io, std::unique_ptr<file_source> file) : io_(io), file_(std::move(file)) {
    if (!file_->seekable()) file_->make_nonblocking();
  }

  std::optional<source_item> next() override { return file_->next(); }
  bool ended() const noexcept override { return !file_->would_block(); }

  void wait_readable(std::function<void()> wake) override {
    wake_ = std::move(wake);
    if (desc_) return;
    const int fd = ::dup(file_->native_handle());
    if (fd < 0) {
      wake_ = {};
      throw std::runtime_error(fmt::format("{}: cannot wait for input: {}", file_->path(), std::strerror(errno)));
    }
    desc_.emplace(io_, fd);
    desc_->async_wait(net::posix::stream_descriptor::wait_read, [this](boost::system::error_code) {
      desc_.reset();
      woken();
    });
  }

  void cancel_wait() override {
    if (desc_) desc_->cancel();
  }

  bool seekable() const noexcept override { return file_->seekable(); }
  std::variant<job, input_error> reread(std::uint64_t offset, std::uint64_t line) const override {
    return file_->reread(offset, line);
  }
  std::string where(std::uint64_t line, const std::string&) const override {
    return fmt::format("{}:{}", file_->path(), line);
  }

 private:
  void woken() {
    if (auto w = std::exchange(wake_, {})) w();
  }

  net::io_context& io_;
  std::unique_ptr<file_source> file_;
  std::optional<net::posix::stream_descriptor> desc_;
  std::function<void()> wake_;
};

/// One batch run: a dispatcher feeds the scheduler from the input and starts an
/// attempt for each job it picks, up to http.connections at once; attempts hand
/// retries back to the scheduler. One thread, no locks.
class batch {
 public:
  batch(net::io_context& io, const run_options& o, run_report& report, job_source& source, results_sink& sink,
        std::string run_id, const results_log* earlier)
      : opt_(o),
        earlier_(earlier),
        cfg_(o.cfg),
        report_(report),
        source_(source),
        sink_(sink),
        run_id_(std::move(run_id)),
        io_(io),
        endpoint_(make_endpoint(cfg_.api)),
        common_headers_(common_headers(endpoint_, o.token)),
        pool_(io_.get_executor(), pool_params{endpoint_, cfg_.tls.verify, cfg_.tls.ca_file, cfg_.http.connections,
                                              std::chrono::milliseconds(cfg_.http.connect_timeout_ms),
                                              std::chrono::milliseconds(cfg_.http.request_timeout_ms),
                                              cfg_.http.max_response_bytes}),
        scheduler_(scheduler_params{cfg_.rate_limit.requests_per_second, cfg_.rate_limit.burst,
                                    cfg_.rate_limit.per_account_requests_per_second,
                                    cfg_.rate_limit.per_account_burst, cfg_.rate_limit.adaptive,
                                    look_ahead(source, cfg_.http.connections), k_account_keep, source.seekable()}),
        budget_(cfg_.retry.budget_percent),
        parser_(cfg_.http.max_response_bytes),
        signals_(io_),
        grace_timer_(io_),
        sync_timer_(io_),
        wakeup_(io_),
        rng_(std::random_device{}()) {
    if (cfg_.serve.redis.url && (cfg_.rate_limit.requests_per_second > 0 || cfg_.rate_limit.per_account_requests_per_second > 0))
      shared_.emplace(io_.get_executor(), shared_limits_params{redis_url_of(cfg_), token_limit_name(o.token),
                                                              cfg_.rate_limit.requests_per_second, cfg_.rate_limit.burst,
                                                              cfg_.rate_limit.per_account_requests_per_second,
                                                              cfg_.rate_limit.per_account_burst});
  }

  /// Starts the run on the io_context; `on_done` is posted when it is over
  /// (then call finish()).
  void start(std::function<void()> on_done) {
    on_done_ = std::move(on_done);
    started_ = clock_type::now();
    if (opt_.handle_signals) {
      signals_.add(SIGINT);
      signals_.add(SIGTERM);
      signals_.add(SIGHUP);
      watch_signals();
    }
    if (cfg_.output.fsync == fsync_mode::interval) schedule_sync();
    net::co_spawn(io_, dispatcher(), [this](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          stop_run(fmt::format("internal error: {}", ex.what()));
        }
      }
      dispatcher_done_ = true;
      maybe_all_done();
    });
  }

  /// After the run is over: the last lines out, the exit code and the summary.
  void finish() {
    try {
      sink_.flush();
      if (!acks_.empty()) source_.acknowledge(std::exchange(acks_, {}));
    } catch (const std::exception& e) {
      if (report_.fatal_error.empty()) report_.fatal_error = e.what();
    }
    set_exit_code();
    report_.summary.unfinished = jobs_read_ - report_.metrics.jobs();
    report_.summary.elapsed_s = std::chrono::duration<double>(clock_type::now() - started_).count();
    report_.summary.connections_opened = pool_.connections_opened();
    report_.summary.tls_resumed = pool_.tls_resumed();
    report_.summary.dead_letters = sink_.dead_letters();
  }

  live_stats live() const {
    live_stats l;
    const auto now = clock_type::now();
    l.jobs_read = jobs_read_;
    l.in_flight = in_flight_;
    l.queued = scheduler_.parsed() + scheduler_.spilled();
    l.retrying = scheduler_.waiting_retry();
    l.throttled_accounts = scheduler_.throttled_accounts(now);
    l.connections_open = pool_.connections_open();
    l.connections_opened = pool_.connections_opened();
    l.token_rate = scheduler_.token_rate();
    l.elapsed_s = started_ == clock_type::time_point{} ? 0.0 : std::chrono::duration<double>(now - started_).count();
    l.input_ended = eof_;
    return l;
  }

  std::vector<std::string> throttled_account_ids() const { return scheduler_.throttled_account_ids(clock_type::now()); }

  /// logrotate moved the files: continue in new ones.
  void reopen_outputs() {
    if (done_) return;
    try {
      sink_.reopen();
      spdlog::info("SIGHUP: reopened {} and {}", sink_.results_path(), sink_.dead_letter_path());
    } catch (const std::exception& e) {
      stop_run(e.what());
    }
  }

  /// Stops the run: take no more jobs and let those in flight finish (`hard`
  /// false), or abort them (they get no line). Call on the io_context's thread.
  void stop(bool hard) {
    if (hard) {
      hard_stop();
      return;
    }
    if (stopping_) return;
    stopping_ = true;
    report_.summary.stopped_reason = "stopped";
    notify();
  }

 private:
  // --- the dispatcher --------------------------------------------------------

  net::awaitable<void> dispatcher() {
    const unsigned max_in_flight = cfg_.http.connections;
    for (;;) {
      if (hard_stop_) break;
      auto now = clock_type::now();
      if (!stopping_) {
        read_input(now);
        reload_spilled(now);
      }
      if (stopping_) {
        // Take no more jobs; what is queued stays unfinished (resumable).
        if (in_flight_ == 0) break;
      } else if (eof_ && scheduler_.empty() && in_flight_ == 0) {
        break;
      }
      auto wait = clock_type::duration::max();
      if (!stopping_ && in_flight_ < max_in_flight) {
        auto picked = scheduler_.pick(now);
        if (picked.job) {
          ++in_flight_;
          net::co_spawn(io_, runner(std::move(picked.job)), [this](std::exception_ptr e) {
            if (e) {
              try {
                std::rethrow_exception(e);
              } catch (const std::exception& ex) {
                stop_run(fmt::format("internal error in a request: {}", ex.what()));
              }
            }
          });
          continue;
        }
        wait = picked.wait;
        // Starved for jobs an account may send: read further before waiting,
        // letting answers, timers and signals in between the blocks.
        if (!eof_ && !waiting_input_ && scheduler_.wants_more(now)) {
          co_await net::post(io_.get_executor(), net::use_awaitable);
          continue;
        }
      }
      // Sleep until the scheduler's next instant or an event (a finished
      // attempt, a retry handed back) wakes us.
      wakeup_.expires_after(std::min<clock_type::duration>(wait, std::chrono::seconds(1)));
      co_await wakeup_.async_wait();
    }
  }

  void notify() { wakeup_.cancel(); }

  // A quiet pipe or stream: wake the dispatcher when it has more.
  void wait_for_input() {
    if (waiting_input_) return;
    waiting_input_ = true;
    try {
      source_.wait_readable([this] {
        waiting_input_ = false;
        notify();
      });
    } catch (const std::exception& e) {
      waiting_input_ = false;
      stop_run(e.what());
    }
  }

  // serve.redis.url, or an error naming the key.
  static redis_endpoint redis_url_of(const config& c) {
    try {
      return parse_redis_url(*c.serve.redis.url);
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error(fmt::format("serve.redis.url: {}", e.what()));
    }
  }

  // Streams hold few jobs ahead: what one instance holds, the others cannot take.
  static std::size_t look_ahead(const job_source& source, unsigned connections) {
    if (source.acknowledges()) return std::max<std::size_t>(k_stream_look_ahead, 4 * std::size_t{connections});
    return std::max<std::size_t>(k_look_ahead, 4 * std::size_t{connections});
  }

  // Reads input while the scheduler wants more, a bounded batch per turn so that
  // answers keep being processed.
  void read_input(clock_type::time_point now) {
    for (unsigned n = 0; n < k_read_batch && !eof_ && scheduler_.wants_more(now); ++n) {
      std::optional<source_item> item;
      try {
        item = source_.next();
      } catch (const std::exception& e) {
        stop_run(e.what());
        return;
      }
      if (!item) {
        if (source_.ended()) eof_ = true;
        else wait_for_input();
        return;
      }
      if (earlier_ && earlier_->has(item->line)) continue;  // finished before: never sent again
      ++jobs_read_;
      if (auto* err = std::get_if<input_error>(&item->parsed)) {
        record_invalid(item->line, item->key, item->source, *err, item->entry_id);
        continue;
      }
      auto s = std::make_unique<job_state>();
      s->j = std::move(std::get<job>(item->parsed));
      s->offset = item->offset;
      s->entry_id = std::move(item->entry_id);
      scheduler_.add(std::move(s), now);
    }
  }

  // Jobs that were kept only as their offset, read again now that their account
  // is about to need them.
  void reload_spilled(clock_type::time_point now) {
    for (const auto& [account, spilled] : scheduler_.take_reloads()) {
      std::variant<job, input_error> parsed;
      try {
        parsed = source_.reread(spilled.offset, spilled.line);
      } catch (const std::exception& e) {
        stop_run(e.what());
        return;
      }
      if (auto* err = std::get_if<input_error>(&parsed)) {
        scheduler_.load_failed(spilled, account);
        record_invalid(spilled.line, std::to_string(spilled.line), {}, *err);
        continue;
      }
      auto s = std::make_unique<job_state>();
      s->j = std::move(std::get<job>(parsed));
      s->offset = spilled.offset;
      if (s->j.integrated_account_id != account) {
        scheduler_.load_failed(spilled, account);
        record_invalid(spilled.line, s->j.key, s->j.source,
                       input_error{"", "the input changed while it was being read"});
        continue;
      }
      scheduler_.load(std::move(s), now);
    }
  }

  // --- one attempt of one job ------------------------------------------------

  // Sends one job, then the next ones the scheduler has ready at once, in this
  // one coroutine: under load no coroutine is spawned and the dispatcher is not
  // woken per job. Left to the dispatcher: waiting, the end, stopping.
  net::awaitable<void> runner(std::unique_ptr<job_state> s) {
    // Whatever happens, this runner no longer counts against the connections.
    struct in_flight_guard {
      batch* b;
      ~in_flight_guard() {
        --b->in_flight_;
        b->notify();
        b->maybe_all_done();
      }
    } guard{this};
    while (s) {
      co_await attempt(std::move(s));
      s = next_ready();
    }
  }

  // What the dispatcher's turn would pick now, reading input as it would.
  std::unique_ptr<job_state> next_ready() {
    if (hard_stop_ || stopping_) return nullptr;
    const auto now = clock_type::now();
    read_input(now);
    reload_spilled(now);
    if (hard_stop_ || stopping_) return nullptr;
    return std::move(scheduler_.pick(now).job);
  }

  net::awaitable<void> attempt(std::unique_ptr<job_state> s) {
    job_state& st = *s;
    const job& j = st.j;
    auto now = clock_type::now();
    if (st.first_attempt == clock_type::time_point{}) {
      st.first_attempt = now;
      st.idempotency_key = j.idempotency_key.empty() ? derive_idempotency_key(run_id_, j.key) : j.idempotency_key;
    }
    const auto deadline = st.first_attempt + std::chrono::seconds(cfg_.retry.job_deadline_s);
    // A retry spends retry budget; when there is none, it waits instead of adding load.
    if (st.attempts > 0 && !budget_.try_spend(now)) {
      if (now + k_budget_poll > deadline) {
        finish(st, outcome::exhausted, 0, -1, "budget", "retry budget spent past retry.job_deadline_s", false);
        co_return;
      }
      scheduler_.requeue_unsent(std::move(s), now + k_budget_poll, now);
      co_return;
    }

    // With Redis, every instance draws on the same budgets (local ones still
    // apply). An account whose shared budget is already being waited for goes
    // back for a moment rather than hold a connection slot the others could use.
    if (shared_) {
      if (shared_->would_wait(j.integrated_account_id)) {
        scheduler_.requeue_unsent(std::move(s), now + k_shared_poll, now);
        co_return;
      }
      co_await shared_->take(j.integrated_account_id);
      if (hard_stop_) co_return;
      now = clock_type::now();
    }

    // A connection is free as a rule: attempts never outnumber connections.
    std::optional<lease> conn = pool_.try_acquire();
    if (!conn) {
      try {
        conn.emplace(co_await pool_.acquire());
      } catch (const boost::system::system_error&) {
        co_return;  // the pool is closed: the run is stopping; no line, resumable
      }
      now = clock_type::now();
    }
    // The pause is checked again right before writing, not only when picked.
    if (auto pause = scheduler_.pause_left(st, now); pause > clock_type::duration::zero()) {
      conn.reset();
      scheduler_.requeue_unsent(std::move(s), now + pause, now);
      co_return;
    }
    ++st.attempts;
    budget_.on_request(now);
    // The request is laid out in the connection's own buffer, the answer read
    // into its own response: nothing allocated per request.
    build_request(conn->request(), endpoint_, j, common_headers_, st.idempotency_key);
    const auto t0 = now;
    auto err = co_await conn->exchange();
    now = clock_type::now();
    const double latency_ms = std::chrono::duration<double, std::milli>(now - t0).count();
    if (hard_stop_) co_return;  // aborted: no line, the job stays resumable

    if (err) {
      conn.reset();
      report_.metrics.request_done(0, latency_ms);
      spdlog::debug("job {} (line {}) attempt {}: {} after {:.1f} ms", j.key, j.line, st.attempts, err->message,
                    latency_ms);
      if (err->tls_verification) {
        stop_run(err->message);
        co_return;
      }
      const bool timeout = err->code == errc::request_timeout;
      retry_or_exhaust(std::move(s), now, deadline, 0, latency_ms, timeout ? "timeout" : "transport", err->message,
                       false, std::nullopt);
      co_return;
    }

    // What is needed of the answer is taken before the connection goes back.
    const http_response& answer = conn->response();
    const unsigned status = answer.status;
    report_.metrics.request_done(status, latency_ms);
    spdlog::debug("job {} (line {}) attempt {}: PATCH {} of account {}: HTTP {} in {:.1f} ms", j.key, j.line,
                  st.attempts, j.id, j.integrated_account_id, status, latency_ms);
    // Parsed into one reused response_info: nothing below suspends, so no
    // other attempt can parse in between.
    parser_.parse(status, conn->response().body, info_);
    const response_info& info = info_;
    note_rate_headers(j.integrated_account_id, answer, now);
    std::optional<std::chrono::milliseconds> retry_after;
    if (!answer.retry_after.empty()) retry_after = parse_retry_after(answer.retry_after, std::chrono::system_clock::now());
    std::string location;  // of a redirect, for its message (rare: copied)
    if (status >= 300 && status < 400) location = answer.location;
    conn.reset();
    switch (classify(status, info.remote)) {
      case verdict::ok:
        scheduler_.on_success(st, now);
        finish_ok(st, status, latency_ms, info, now);
        co_return;
      case verdict::stop_run:
        stop_run(fmt::format("the API answered {} {} for job {} (line {}): {} — check the API token and its scopes",
                             status, info.error, j.key, j.line, info.message.empty() ? "no message" : info.message));
        co_return;
      case verdict::failed:
        finish(st, outcome::failed, status, latency_ms, "http", http_message(status, info, location), info.remote);
        co_return;
      case verdict::rate_limited: {
        // A 429 costs no attempt and no retry budget: wait as told, send again.
        --st.attempts;
        const auto wait = std::max<clock_type::duration>(retry_after.value_or(k_default_retry_after), k_min_retry_after);
        const bool token_wide = scheduler_.on_rate_limited(j.integrated_account_id, info.remote, wait, now);
        report_.metrics.rate_limited(info.remote  ? rate_limit_reason::remote
                                     : token_wide ? rate_limit_reason::token
                                                  : rate_limit_reason::account);
        if (stopping_) co_return;  // unfinished: resumable
        if (now + wait > deadline) {
          ++st.attempts;
          finish(st, outcome::exhausted, status, latency_ms, "http",
                 "rate limited past retry.job_deadline_s: " + http_message(status, info), info.remote);
          co_return;
        }
        scheduler_.requeue(std::move(s), now + wait);
        co_return;
      }
      case verdict::retry:
        retry_or_exhaust(std::move(s), now, deadline, status, latency_ms, "http", http_message(status, info),
                         info.remote, retry_after);
        co_return;
    }
  }

  // A transient failure: back to the scheduler after the backoff (or Retry-After,
  // whichever is longer), or `exhausted` when attempts or the deadline are spent.
  void retry_or_exhaust(std::unique_ptr<job_state> s, clock_type::time_point now, clock_type::time_point deadline,
                        unsigned status, double latency_ms, std::string_view kind, const std::string& message,
                        bool remote, std::optional<std::chrono::milliseconds> retry_after) {
    job_state& st = *s;
    if (stopping_) return;  // unfinished: resumable
    if (st.attempts >= cfg_.retry.max_attempts) {
      finish(st, outcome::exhausted, status, latency_ms, kind, message, remote);
      return;
    }
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    auto delay = std::chrono::duration_cast<clock_type::duration>(
        backoff_delay(st.attempts, std::chrono::milliseconds(cfg_.retry.base_delay_ms),
                      std::chrono::milliseconds(cfg_.retry.max_delay_ms), uniform(rng_)));
    if (retry_after) delay = std::max<clock_type::duration>(delay, *retry_after);
    if (now + delay > deadline) {
      finish(st, outcome::exhausted, status, latency_ms, kind, message + " (retry.job_deadline_s reached)", remote);
      return;
    }
    report_.metrics.retried();
    scheduler_.requeue(std::move(s), now + delay);
  }

  // `ratelimit-remaining: 0` pauses the account until `ratelimit-reset`.
  void note_rate_headers(const std::string& account, const http_response& r, clock_type::time_point now) {
    if (r.ratelimit_remaining != "0") return;
    double reset = 1;
    const auto& v = r.ratelimit_reset;
    if (auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), reset); ec != std::errc{} || reset < 0)
      reset = 1;
    reset = std::min(reset, 86400.0);
    scheduler_.on_remaining_exhausted(
        account, std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(reset)), now);
  }

  static std::string http_message(unsigned status, const response_info& info, std::string_view location = {}) {
    if (!info.message.empty()) return info.message;
    if (!info.error.empty()) return info.error;
    // Never followed: the token would go to wherever a server points.
    if (status >= 300 && status < 400)
      return fmt::format("HTTP {}: redirect{}{} not followed (check api.base_url)", status,
                         location.empty() ? "" : " to ", location);
    return fmt::format("HTTP {}", status);
  }

  // --- results ---------------------------------------------------------------

  // What every final line of a job says.
  static job_result result_of(const job_state& st, outcome o, unsigned status, double latency_ms) {
    const job& j = st.j;
    job_result r;
    r.key = j.key;
    r.line = st.entry_id.empty() ? j.line : 0;
    r.entry = st.entry_id;
    r.id = j.id;
    r.integrated_account_id = j.integrated_account_id;
    r.result = o;
    r.http_status = status;
    r.attempts = st.attempts;
    r.latency_ms = latency_ms;
    r.finished_at = std::chrono::system_clock::now();
    return r;
  }

  void finish_ok(const job_state& st, unsigned status, double latency_ms, const response_info& info,
                 clock_type::time_point now) {
    job_result r = result_of(st, outcome::ok, status, latency_ms);
    r.response_id = info.id;
    r.response_name = info.name;
    r.response_updated_at = info.updated_at;
    if (!info.json_valid) r.warning = "the 2xx response body was not valid JSON";
    sink_.add(r, {}, {}, {});
    note_entry(st.entry_id, r);
    report_.metrics.job_finished(outcome::ok);
    scheduler_.finished(st, now);
    schedule_flush();
  }

  void finish(const job_state& st, outcome o, unsigned status, double latency_ms, std::string_view kind,
              const std::string& message, bool remote) {
    const job& j = st.j;
    job_result r = result_of(st, o, status, latency_ms);
    r.error_kind = kind;
    r.error_message = message;
    r.error_remote = remote;
    // Dead letter: the job as given, with the identity it ran under, so running
    // the dead-letter file again cannot apply it twice. (An added key cannot be
    // the bare line number: explicit keys may not be all digits.)
    // A stream's job without its own key keeps its entry id.
    const std::string added_key =
        j.key_given ? std::string() : (st.entry_id.empty() ? fmt::format("line-{}", j.line) : j.key);
    sink_.add(r, j.source, added_key, j.idempotency_key.empty() ? std::string_view(st.idempotency_key) : "");
    note_entry(st.entry_id, r);
    report_.metrics.job_finished(o);
    scheduler_.finished(st, clock_type::now());
    note_failure(fmt::format("{}: job {}: {}{}", source_.where(j.line, st.entry_id), j.key, to_string(o),
                             status ? fmt::format(" (HTTP {})", status) : std::string()),
                 message);
    schedule_flush();
  }

  void record_invalid(std::uint64_t line, const std::string& key, const std::string& source, const input_error& err,
                      const std::string& entry_id = {}) {
    const std::string message = err.to_string();
    job_result r;
    r.key = key;
    r.line = entry_id.empty() ? line : 0;
    r.entry = entry_id;
    r.result = outcome::invalid;
    r.finished_at = std::chrono::system_clock::now();
    r.error_kind = "input";
    r.error_message = message;
    sink_.add(r, source, {}, {});
    note_entry(entry_id, r);
    report_.metrics.job_finished(outcome::invalid);
    note_failure(fmt::format("{}: invalid", source_.where(line, entry_id)), message);
    schedule_flush();
  }

  // A stream's entry is acknowledged once its line is written (see flush_lines).
  void note_entry(const std::string& entry_id, const job_result& r) {
    if (entry_id.empty() || !source_.acknowledges()) return;
    finished_entry e{entry_id, {}};
    if (source_.publishes_results()) {
      append_result_line(e.result_line, r);
      if (!e.result_line.empty() && e.result_line.back() == '\n') e.result_line.pop_back();
    }
    acks_.push_back(std::move(e));
  }

  // Writes the gathered lines; then (and only then) their entries are acknowledged.
  bool flush_lines() {
    try {
      sink_.flush();
    } catch (const std::exception& e) {
      stop_run(e.what());
      return false;
    }
    if (!acks_.empty()) source_.acknowledge(std::exchange(acks_, {}));
    return true;
  }

  // The first failures are logged; the rest are in the results file.
  void note_failure(const std::string& where, const std::string& message) {
    if (++failures_logged_ <= k_failures_logged) {
      spdlog::warn("{}: {}", where, message);
      if (failures_logged_ == k_failures_logged) spdlog::warn("further failures are only in the results file");
    } else {
      spdlog::debug("{}: {}", where, message);
    }
  }

  // Lines finished in this turn of the event loop go out in one write.
  void schedule_flush() {
    if (flush_posted_) return;
    flush_posted_ = true;
    net::post(io_, [this] {
      flush_posted_ = false;
      flush_lines();
    });
  }

  // --- stopping --------------------------------------------------------------

  // Stop at once: a fatal error (exit 1) or the end of the grace period.
  void stop_run(std::string reason) {
    if (report_.fatal_error.empty() && !reason.empty()) report_.fatal_error = std::move(reason);
    hard_stop();
  }

  void hard_stop() {
    stopping_ = true;
    hard_stop_ = true;
    pool_.close_all();
    if (shared_) shared_->close();
    source_.cancel_wait();
    notify();
  }

  // fsync: interval — lines finished in a quiet moment are synced within 100 ms too.
  void schedule_sync() {
    sync_timer_.expires_after(std::chrono::milliseconds(100));
    sync_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec || done_) return;
      if (flush_lines()) schedule_sync();
    });
  }

  void watch_signals() {
    signals_.async_wait([this](boost::system::error_code ec, int signo) {
      // A signal already queued when the run ended must not start anything.
      if (ec || done_) return;
      if (signo == SIGHUP) {
        reopen_outputs();
      } else if (!stopping_) {
        signal_ = signo;
        stopping_ = true;
        report_.summary.stopped_reason = signo == SIGINT ? "SIGINT" : "SIGTERM";
        spdlog::warn("{}: finishing the requests in flight (up to {} s); send it again to stop at once",
                     report_.summary.stopped_reason, cfg_.shutdown_grace_s);
        notify();
        grace_timer_.expires_after(std::chrono::seconds(cfg_.shutdown_grace_s));
        grace_timer_.async_wait([this](boost::system::error_code gec) {
          if (!gec) hard_stop();
        });
      } else {
        if (signal_ == 0) signal_ = signo;
        hard_stop();
      }
      watch_signals();
    });
  }

  // The run is over when the dispatcher has returned and no attempt is running.
  void maybe_all_done() {
    if (!dispatcher_done_ || in_flight_ > 0 || done_) return;
    done_ = true;
    boost::system::error_code ignored;
    signals_.cancel(ignored);
    grace_timer_.cancel();
    sync_timer_.cancel();
    wakeup_.cancel();
    source_.cancel_wait();
    if (shared_) shared_->close();
    if (on_done_) net::post(io_, std::move(on_done_));
  }

  void set_exit_code() {
    if (!report_.fatal_error.empty()) report_.exit_code = 1;
    else if (signal_ == SIGINT) report_.exit_code = 130;
    else if (signal_ == SIGTERM) report_.exit_code = 143;
    else
      report_.exit_code = report_.metrics.jobs() == report_.metrics.ok() && jobs_read_ == report_.metrics.jobs() &&
                                  report_.summary.resumed_not_ok == 0
                              ? 0
                              : 2;
  }

  // Parsed jobs held from a file: enough for every account that may send to
  // have its next job at hand, few enough (about 0.7 MB) that a job is still in
  // the CPU's cache when it is sent (10 000 cost ~1 % more CPU per job).
  static constexpr std::size_t k_look_ahead = 1024;
  static constexpr std::size_t k_stream_look_ahead = 64;
  static constexpr std::size_t k_account_keep = 64;
  static constexpr unsigned k_read_batch = 1024;
  static constexpr unsigned k_failures_logged = 20;
  static constexpr auto k_budget_poll = std::chrono::milliseconds(200);
  static constexpr auto k_shared_poll = std::chrono::milliseconds(20);
  static constexpr auto k_default_retry_after = std::chrono::milliseconds(1000);
  static constexpr auto k_min_retry_after = std::chrono::milliseconds(50);

  const run_options& opt_;
  const results_log* earlier_;  // the resumed run's finished lines, or null
  const config& cfg_;
  run_report& report_;
  job_source& source_;
  results_sink& sink_;
  std::string run_id_;
  net::io_context& io_;
  std::function<void()> on_done_;
  clock_type::time_point started_{};
  endpoint endpoint_;
  std::string common_headers_;
  connection_pool pool_;
  scheduler scheduler_;
  retry_budget budget_;
  response_parser parser_;
  net::signal_set signals_;
  net::steady_timer grace_timer_;
  net::steady_timer sync_timer_;
  steady_timer wakeup_;
  response_info info_;  // the answer being handled (see attempt)
  std::mt19937_64 rng_;
  std::optional<shared_limits> shared_;  // with Redis: the budgets every instance shares
  std::vector<finished_entry> acks_;     // written to the sink, to acknowledge after the flush
  std::uint64_t jobs_read_ = 0;
  unsigned in_flight_ = 0;
  unsigned failures_logged_ = 0;
  int signal_ = 0;
  bool eof_ = false;
  bool waiting_input_ = false;
  bool stopping_ = false;
  bool hard_stop_ = false;
  bool flush_posted_ = false;
  bool dispatcher_done_ = false;
  bool done_ = false;
};

}  // namespace

std::string default_results_path(const std::string& input) {
  return (input == "-" ? std::string("stdin") : strip_jsonl(input)) + ".results.jsonl";
}

std::string default_dead_letter_path(const std::string& input) {
  return (input == "-" ? std::string("stdin") : strip_jsonl(input)) + ".failed.jsonl";
}

namespace {

// Moves an earlier run's file aside (--force): NAME → NAME.YYYYmmddTHHMMSSZ.
void move_aside(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return;
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
  std::string target = path + "." + stamp;
  for (int i = 1; ::access(target.c_str(), F_OK) == 0; ++i) target = path + "." + stamp + "-" + std::to_string(i);
  if (::rename(path.c_str(), target.c_str()) != 0)
    throw std::runtime_error(fmt::format("{}: cannot move it aside: {}", path, std::strerror(errno)));
  spdlog::info("{}: moved aside to {}", path, target);
}

}  // namespace

struct run_session::impl {
  run_options options;
  run_report report;
  std::optional<results_log> earlier;
  std::unique_ptr<job_source> source;  // the file's (a stream's belongs to the caller)
  std::unique_ptr<results_sink> sink;
  std::unique_ptr<batch> b;
  std::optional<std::uint64_t> input_job_lines;  // from the fingerprint's pass
  bool finished = false;
};

run_session::run_session(net::io_context& io, run_options options) : impl_(std::make_unique<impl>()) {
  impl_->options = std::move(options);
  const run_options& o = impl_->options;
  run_report& report = impl_->report;
  auto fail = [&](std::string message) {
    report.exit_code = 1;
    report.fatal_error = std::move(message);
  };
  try {
    validate_config(o.cfg);
    if (auto why = check_token(o.token); !why.empty()) {
      fail(why);
      return;
    }
    const std::string results = o.cfg.output.results.value_or(default_results_path(o.input));
    const std::string dead = o.cfg.output.dead_letter.value_or(default_dead_letter_path(o.input));
    report.summary.results_path = results;
    report.summary.dead_letter_path = dead;
    if (o.input != "-" && (same_file(results, o.input) || same_file(dead, o.input)))
      {
      fail(fmt::format("{}: an output file must not be the input file", o.input));
      return;
    }
    if (same_file(results, dead)) {
      fail("the results file and the dead-letter file must differ");
      return;
    }
    const auto fp = fingerprint(o.input);
    impl_->input_job_lines = fp.job_lines;

    // The results log is the run's journal: the same command again continues
    // the run it holds; a different input, or standard input, needs --force.
    auto& earlier = impl_->earlier;
    if (non_empty_file_exists(results)) {
      if (o.force) {
        move_aside(results);
        move_aside(dead);
      } else if (o.input == "-") {
        fail(fmt::format("{}: results file already exists, and a run from standard input cannot be "
                         "resumed; pass --force to start a new run (the old file is moved aside) or "
                         "--results for another file",
                         results));
        return;
      } else {
        earlier = read_results_log(results, true);
        const auto& h = earlier->header;
        if (!fp.matches(h)) {
          fail(fmt::format(
              "{}: the input changed since the run in {} began (size {} → {}, sha256 {} → {}); pass --force to "
              "start a new run (the old results are moved aside)",
              o.input, results, h.input_size, fp.size, h.input_sha256.empty() ? "none" : h.input_sha256.substr(0, 12),
              fp.sha256.substr(0, 12)));
          return;
        }
        if (earlier->repaired_bytes > 0)
          spdlog::warn("{}: cut off a torn last line ({} bytes) left by a crash", results, earlier->repaired_bytes);
      }
    } else if (o.resume) {
      fail(fmt::format("{}: nothing to resume (no results file)", results));
      return;
    }

    impl_->source = std::make_unique<file_job_source>(
        io, std::make_unique<file_source>(
                o.input, job_parse_options{o.cfg.api.default_integrated_account_id, &o.cfg.api.default_query},
                o.cfg.input.max_line_bytes));
    report.run_id = earlier ? earlier->header.run_id : random_run_id();
    run_header header{ORGPATCH_VERSION, report.run_id, o.input, fp.size, fp.sha256, std::chrono::system_clock::now()};
    impl_->sink = std::make_unique<results_sink>(results, dead, o.cfg.output.fsync, header,
                                                 earlier ? sink_open::resume : sink_open::create);
    if (earlier) {
      report.summary.resumed = earlier->finished;
      report.summary.resumed_not_ok = earlier->finished - earlier->ok;
      spdlog::info("{}: resuming run {}: {} jobs finished before ({} not ok)", results, report.run_id,
                   earlier->finished, report.summary.resumed_not_ok);
    }
    impl_->b = std::make_unique<batch>(io, impl_->options, report, *impl_->source, *impl_->sink, report.run_id,
                                       earlier ? &*earlier : nullptr);
  } catch (const std::exception& e) {
    impl_->b.reset();
    impl_->sink.reset();
    {
      fail(e.what());
      return;
    }
  }
}

run_session::run_session(net::io_context& io, run_options options, job_source& source, std::string identity)
    : impl_(std::make_unique<impl>()) {
  impl_->options = std::move(options);
  const run_options& o = impl_->options;
  run_report& report = impl_->report;
  try {
    validate_config(o.cfg);
    if (auto why = check_token(o.token); !why.empty()) throw std::runtime_error(why);
    if (!o.cfg.output.results || !o.cfg.output.dead_letter)
      throw std::runtime_error(fmt::format("{}: the results and dead-letter files must be given", o.input));
    if (same_file(*o.cfg.output.results, *o.cfg.output.dead_letter))
      throw std::runtime_error("the results file and the dead-letter file must differ");
    report.summary.results_path = *o.cfg.output.results;
    report.summary.dead_letter_path = *o.cfg.output.dead_letter;
    report.run_id = std::move(identity);
    // The stream's pending entries are the journal: the files are only appended to.
    run_header header{ORGPATCH_VERSION, report.run_id, o.input, 0, {}, std::chrono::system_clock::now()};
    impl_->sink = std::make_unique<results_sink>(*o.cfg.output.results, *o.cfg.output.dead_letter, o.cfg.output.fsync,
                                                 header, sink_open::resume);
    impl_->b = std::make_unique<batch>(io, o, report, source, *impl_->sink, report.run_id, nullptr);
  } catch (const std::exception& e) {
    impl_->b.reset();
    impl_->sink.reset();
    report.exit_code = 1;
    report.fatal_error = e.what();
  }
}

run_session::~run_session() = default;

void run_session::start(std::function<void()> on_done) {
  if (!impl_->b) {
    if (on_done) on_done();
    return;
  }
  try {
    impl_->b->start([this, on_done = std::move(on_done)] {
      if (!impl_->finished) {
        impl_->finished = true;
        impl_->b->finish();
      }
      if (on_done) on_done();
    });
  } catch (const std::exception& e) {
    impl_->report.exit_code = 1;
    impl_->report.fatal_error = e.what();
    if (on_done) on_done();
  }
}

void run_session::reopen_outputs() {
  if (impl_->b) impl_->b->reopen_outputs();
}

void run_session::stop(bool hard) {
  if (impl_->b) impl_->b->stop(hard);
}

const run_report& run_session::report() const noexcept { return impl_->report; }

live_stats run_session::live() const { return impl_->b ? impl_->b->live() : live_stats{}; }

std::optional<std::uint64_t> run_session::input_job_lines() const noexcept { return impl_->input_job_lines; }

std::vector<std::string> run_session::throttled_account_ids() const {
  return impl_->b ? impl_->b->throttled_account_ids() : std::vector<std::string>{};
}

run_report run_session::take_report() noexcept { return std::move(impl_->report); }

namespace {

/// Redraws the progress line every 100 ms while the session runs.
class progress_driver {
 public:
  progress_driver(net::io_context& io, const run_session& session) : session_(session), timer_(io) {
    tick();
  }

  /// The run is over: the line goes, the summary takes its place.
  void finish() {
    finished_ = true;
    timer_.cancel();
    progress_terminal::erase();
  }

 private:
  void tick() {
    timer_.expires_after(100ms);
    timer_.async_wait([this](boost::system::error_code ec) {
      if (ec || finished_) return;
      draw();
      tick();
    });
  }

  void draw() {
    const run_report& r = session_.report();
    const live_stats live = session_.live();
    const run_metrics& m = r.metrics;
    rates_.sample(live.elapsed_s, m.jobs(), m.requests());
    progress_snapshot s;
    const std::uint64_t earlier_ok = r.summary.resumed - r.summary.resumed_not_ok;
    s.done = r.summary.resumed + m.jobs();
    s.total = session_.input_job_lines();
    s.ok = earlier_ok + m.ok();
    s.failed = r.summary.resumed_not_ok + m.failed() + m.exhausted() + m.invalid();
    s.retrying = live.retrying;
    s.throttled_accounts = live.throttled_accounts;
    s.requests_per_s = rates_.requests_per_s();
    s.jobs_per_s = rates_.jobs_per_s();
    s.elapsed_s = live.elapsed_s;
    progress_terminal::draw(format_progress(s));
  }

  const run_session& session_;
  progress_rates rates_;
  net::steady_timer timer_;
  bool finished_ = false;
};

}  // namespace

void add_live(metrics_gauges& g, const live_stats& l) {
  g.in_flight += l.in_flight;
  g.queued += l.queued;
  g.retrying += l.retrying;
  g.throttled_accounts += l.throttled_accounts;
  g.connections_open += l.connections_open;
  g.connections_opened += l.connections_opened;
}

run_report run_batch(const run_options& o) {
  net::io_context io{1};
  // --metrics-listen: bound before the run is prepared, so that a port in use
  // stops it before anything is created or sent; closed when the run is over.
  const run_session* running = nullptr;
  std::optional<metrics_server> metrics;
  if (o.metrics_listen) {
    try {
      metrics.emplace(io, metrics_server_params{*o.metrics_listen}, [&running] {
        metrics_gauges g;
        if (!running) return prometheus_text(run_metrics{}, g, ORGPATCH_VERSION);
        add_live(g, running->live());
        return prometheus_text(running->report().metrics, g, ORGPATCH_VERSION);
      });
    } catch (const std::exception& e) {
      run_report r;
      r.exit_code = 1;
      r.fatal_error = fmt::format("--metrics-listen {}", e.what());
      return r;
    }
  }
  run_session session(io, o);
  running = &session;
  std::optional<progress_driver> progress;
  if (o.progress && session.report().exit_code == 0) progress.emplace(io, session);
  session.start([&] {
    if (progress) progress->finish();
    if (metrics) metrics->close();
  });
  io.run();
  return session.take_report();
}

namespace {

// One request of a dry run as a person reads it: method and full URL, the
// headers (the token never reached them: it was replaced before the build),
// a blank line, the body.
std::string show_request(const endpoint& ep, const std::string& built) {
  std::string text;
  std::size_t pos = built.find("\r\n");
  const std::string_view request_line(built.data(), pos);
  const auto target_begin = request_line.find(' ') + 1;
  const auto target_end = request_line.rfind(' ');
  text += fmt::format("PATCH {}{}\n", ep.origin, request_line.substr(target_begin, target_end - target_begin));
  for (pos += 2; pos < built.size();) {
    const std::size_t end = built.find("\r\n", pos);
    if (end == std::string::npos || end == pos) {  // the blank line: the body follows
      text += '\n';
      if (end != std::string::npos) text.append(built, end + 2, std::string::npos);
      break;
    }
    text.append(built, pos, end - pos);
    text += '\n';
    pos = end + 2;
  }
  text += "\n\n";
  return text;
}

}  // namespace

int dry_run(const run_options& o, std::FILE* out, std::size_t show) {
  validate_config(o.cfg);
  const endpoint ep = make_endpoint(o.cfg.api);
  const std::string headers = common_headers(ep, "<redacted>");
  const std::string results = o.cfg.output.results.value_or(default_results_path(o.input));

  // What a real run would skip: the jobs an earlier run of this input finished.
  std::optional<results_log> earlier;
  std::string run_id;
  if (!o.force && o.input != "-" && non_empty_file_exists(results)) {
    earlier = read_results_log(results, false);
    if (!fingerprint(o.input).matches(earlier->header)) {
      std::fprintf(out, "note: %s holds a run of another version of %s: a real run needs --force (or --results)\n\n",
                   results.c_str(), o.input.c_str());
      earlier.reset();
    } else {
      run_id = earlier->header.run_id;
    }
  }

  file_source source(o.input, job_parse_options{o.cfg.api.default_integrated_account_id, &o.cfg.api.default_query},
                     o.cfg.input.max_line_bytes);
  std::uint64_t would_send = 0, invalid = 0, skipped = 0, shown = 0;
  std::unordered_map<std::string, std::uint64_t> accounts;  // jobs per account
  std::string built;
  while (auto item = source.next()) {
    if (earlier && earlier->has(item->line)) {
      ++skipped;
      continue;
    }
    if (auto* err = std::get_if<input_error>(&item->parsed)) {
      ++invalid;
      std::fprintf(out, "%s:%llu: %s\n", o.input.c_str(), static_cast<unsigned long long>(item->line),
                   err->to_string().c_str());
      continue;
    }
    const job& j = std::get<job>(item->parsed);
    ++would_send;
    ++accounts[j.integrated_account_id];
    if (shown >= show) continue;
    ++shown;
    // The key a run would send; a new run's id is drawn when it starts.
    const std::string key = !j.idempotency_key.empty() ? j.idempotency_key
                            : !run_id.empty()          ? derive_idempotency_key(run_id, j.key)
                                                       : "<derived from the new run's id and key \"" + j.key + "\">";
    build_request(built, ep, j, headers, key);
    std::fprintf(out, "--- %s:%llu (key \"%s\")\n%s", o.input.c_str(), static_cast<unsigned long long>(j.line),
                 j.key.c_str(), show_request(ep, built).c_str());
  }
  std::fprintf(out, "dry run of %s: %llu %s would be sent to %zu integrated account%s at %s", o.input.c_str(),
               static_cast<unsigned long long>(would_send), would_send == 1 ? "job" : "jobs", accounts.size(),
               accounts.size() == 1 ? "" : "s", ep.origin.c_str());
  if (invalid > 0) std::fprintf(out, "; %llu invalid (listed above, never sent)", static_cast<unsigned long long>(invalid));
  if (skipped > 0)
    std::fprintf(out, "; %llu finished by the run in %s (not sent again)", static_cast<unsigned long long>(skipped),
                 results.c_str());
  std::fprintf(out, ".\n");
  // The least time the limits allow (bursts aside): the token's budget, or the
  // busiest account's.
  const auto& rl = o.cfg.rate_limit;
  double least_s = rl.requests_per_second > 0 ? static_cast<double>(would_send) / rl.requests_per_second : 0;
  if (rl.per_account_requests_per_second > 0)
    for (const auto& [account, n] : accounts)
      least_s = std::max(least_s, static_cast<double>(n) / rl.per_account_requests_per_second);
  if (would_send > 0 && least_s > 0)
    std::fprintf(out, "At the configured limits (%g requests/s for the token, %g per account) that takes at least %s.\n",
                 rl.requests_per_second, rl.per_account_requests_per_second, format_duration(least_s).c_str());
  std::fprintf(out, "Nothing was sent and no file was written.\n");
  return invalid == 0 ? 0 : 2;
}

}  // namespace orgpatch
