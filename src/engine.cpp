#include "orgpatch/engine.hpp"

#include "orgpatch/asio.hpp"
#include "orgpatch/connection_pool.hpp"
#include "orgpatch/error.hpp"
#include "orgpatch/rate_limiter.hpp"
#include "orgpatch/request.hpp"
#include "orgpatch/response.hpp"
#include "orgpatch/results.hpp"
#include "orgpatch/retry.hpp"
#include "orgpatch/sources/file_source.hpp"

#include <boost/asio/detached.hpp>
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
#include <cstring>
#include <deque>
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
};

// The input's size and SHA-256 (a regular file only; standard input cannot be read twice).
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
    fp.size += static_cast<std::uint64_t>(n);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx, digest, &len);
  EVP_MD_CTX_free(ctx);
  ::close(fd);
  for (unsigned i = 0; i < len; ++i) fp.sha256 += fmt::format("{:02x}", digest[i]);
  return fp;
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {}, sb {};
  if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return a == b;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

bool non_empty_file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && st.st_size > 0;
}

/// One batch run: the state its workers share (one thread, no locks).
class batch {
 public:
  batch(const run_options& o, run_report& report, file_source& source, results_sink& sink, std::string run_id)
      : opt_(o),
        cfg_(o.cfg),
        report_(report),
        source_(source),
        sink_(sink),
        run_id_(std::move(run_id)),
        endpoint_(make_endpoint(cfg_.api)),
        common_headers_(common_headers(endpoint_, o.token)),
        pool_(io_.get_executor(), pool_params{endpoint_, cfg_.tls.verify, cfg_.tls.ca_file, cfg_.http.connections,
                                              std::chrono::milliseconds(cfg_.http.connect_timeout_ms),
                                              std::chrono::milliseconds(cfg_.http.request_timeout_ms),
                                              cfg_.http.max_response_bytes}),
        limiter_(cfg_.rate_limit.requests_per_second, cfg_.rate_limit.burst,
                 cfg_.rate_limit.per_account_requests_per_second, cfg_.rate_limit.per_account_burst),
        parser_(cfg_.http.max_response_bytes),
        signals_(io_),
        grace_timer_(io_),
        parked_drained_(io_),
        rng_(std::random_device{}()) {}

  void run() {
    const auto started = clock_type::now();
    if (opt_.handle_signals) {
      signals_.add(SIGINT);
      signals_.add(SIGTERM);
      watch_signals();
    }
    workers_ = cfg_.http.connections;
    for (unsigned i = 0; i < workers_; ++i) {
      net::co_spawn(io_, worker(), [this](std::exception_ptr e) {
        if (e) {
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex) {
            stop_run(fmt::format("internal error in a worker: {}", ex.what()));
          }
        }
        if (--workers_ == 0) all_done();
      });
    }
    io_.run();
    sink_.flush();
    report_.summary.elapsed_s = std::chrono::duration<double>(clock_type::now() - started).count();
    report_.summary.connections_opened = pool_.connections_opened();
    report_.summary.dead_letters = sink_.dead_letters();
  }

 private:
  // --- job intake: file order, at most one job per organization in flight -----

  static std::string org_key(const job& j) { return j.integrated_account_id + '\n' + j.id; }

  net::awaitable<std::optional<job>> next_job() {
    for (;;) {
      if (stopping_) co_return std::nullopt;
      // Too many jobs parked behind busy organizations: wait for them to drain
      // rather than read further (memory stays bounded).
      if (parked_count_ >= k_max_parked) {
        parked_drained_.expires_at(clock_type::time_point::max());
        co_await parked_drained_.async_wait();
        continue;
      }
      std::optional<source_item> item;
      try {
        item = source_.next();
      } catch (const std::exception& e) {
        stop_run(e.what());
        co_return std::nullopt;
      }
      if (!item) co_return std::nullopt;
      if (auto* err = std::get_if<input_error>(&item->parsed)) {
        record_invalid(*item, *err);
        continue;
      }
      job j = std::move(std::get<job>(item->parsed));
      auto key = org_key(j);
      if (auto it = busy_.find(key); it != busy_.end()) {
        it->second.push_back(std::move(j));
        ++parked_count_;
        continue;
      }
      busy_.emplace(std::move(key), std::deque<job>{});
      co_return j;
    }
  }

  // The next job for the same organization, if one was parked behind `j`; else
  // the organization is free again.
  std::optional<job> successor(const job& j) {
    auto it = busy_.find(org_key(j));
    if (it == busy_.end()) return std::nullopt;
    if (it->second.empty() || stopping_) {
      if (!it->second.empty()) parked_count_ -= it->second.size();
      busy_.erase(it);
      parked_drained_.cancel();
      return std::nullopt;
    }
    job next = std::move(it->second.front());
    it->second.pop_front();
    --parked_count_;
    parked_drained_.cancel();
    return next;
  }

  net::awaitable<void> worker() {
    http_response response;
    std::string request;
    while (auto j = co_await next_job()) {
      std::optional<job> current = std::move(j);
      while (current) {
        co_await process(*current, request, response);
        if (hard_stop_) co_return;
        current = successor(*current);
      }
    }
  }

  // --- one job: attempts until a final outcome --------------------------------

  net::awaitable<void> process(const job& j, std::string& request, http_response& response) {
    const std::string derived = j.idempotency_key.empty() ? derive_idempotency_key(run_id_, j.key) : std::string();
    const std::string_view idempotency_key = j.idempotency_key.empty() ? derived : j.idempotency_key;
    build_request(request, request_target(endpoint_, j), common_headers_, idempotency_key, j.body);

    const auto first = clock_type::now();
    const auto deadline = first + std::chrono::seconds(cfg_.retry.job_deadline_s);
    unsigned attempts = 0;
    for (;;) {
      // Wait for the token's and the account's budget.
      for (;;) {
        if (hard_stop_) co_return;
        const auto wait = limiter_.try_acquire(j.integrated_account_id, clock_type::now());
        if (wait == clock_type::duration::zero()) break;
        co_await sleep(wait);
      }
      ++attempts;
      std::optional<lease> conn;
      try {
        conn.emplace(co_await pool_.acquire());
      } catch (const boost::system::system_error&) {
        co_return;  // the pool is closed: the run is stopping
      }
      const auto t0 = clock_type::now();
      auto err = co_await conn->exchange(request, response);
      conn.reset();
      const double latency_ms = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
      if (hard_stop_) co_return;  // aborted: no line, the job stays resumable

      if (err) {
        report_.metrics.request_done(0, latency_ms);
        if (err->tls_verification) {
          stop_run(err->message);
          co_return;
        }
        const bool timeout = err->code == errc::request_timeout;
        if (attempts < cfg_.retry.max_attempts && !stopping_ && co_await backoff(attempts, deadline)) continue;
        finish(j, outcome::exhausted, 0, attempts, latency_ms, timeout ? "timeout" : "transport", err->message,
               false, idempotency_key);
        co_return;
      }

      const unsigned status = response.status;
      report_.metrics.request_done(status, latency_ms);
      const response_info info = parser_.parse(status, response.body);
      switch (classify(status, info.remote)) {
        case verdict::ok:
          finish_ok(j, status, attempts, latency_ms, info);
          co_return;
        case verdict::stop_run:
          stop_run(fmt::format("the API answered {} {} for job {} (line {}): {} — check the API token and its scopes",
                               status, info.error.empty() ? "" : info.error, j.key, j.line,
                               info.message.empty() ? "no message" : info.message));
          co_return;
        case verdict::failed:
          finish(j, outcome::failed, status, attempts, latency_ms, "http", http_message(status, info), info.remote,
                 idempotency_key);
          co_return;
        case verdict::rate_limited: {
          // A 429 costs no attempt: wait as told (or a second) and send again.
          report_.metrics.rate_limited();
          --attempts;
          auto wait = parse_retry_after(response.retry_after, std::chrono::system_clock::now()).value_or(1000ms);
          if (clock_type::now() + wait > deadline || stopping_) {
            finish(j, outcome::exhausted, status, attempts + 1, latency_ms, "http",
                   stopping_ ? "rate limited when the run was stopped" : "rate limited past retry.job_deadline_s",
                   info.remote, idempotency_key);
            co_return;
          }
          co_await sleep(wait);
          continue;
        }
        case verdict::retry:
          if (attempts < cfg_.retry.max_attempts && !stopping_ && co_await backoff(attempts, deadline)) continue;
          finish(j, outcome::exhausted, status, attempts, latency_ms, "http", http_message(status, info), info.remote,
                 idempotency_key);
          co_return;
      }
    }
  }

  // Sleeps the full-jitter backoff; false when it would pass the job's deadline.
  net::awaitable<bool> backoff(unsigned attempts, clock_type::time_point deadline) {
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    const auto delay = backoff_delay(attempts, std::chrono::milliseconds(cfg_.retry.base_delay_ms),
                                     std::chrono::milliseconds(cfg_.retry.max_delay_ms), uniform(rng_));
    if (clock_type::now() + delay > deadline) co_return false;
    report_.metrics.retried();
    co_await sleep(delay);
    co_return !hard_stop_;
  }

  static std::string http_message(unsigned status, const response_info& info) {
    if (!info.message.empty()) return info.message;
    if (!info.error.empty()) return info.error;
    return fmt::format("HTTP {}", status);
  }

  // --- results ---------------------------------------------------------------

  void finish_ok(const job& j, unsigned status, unsigned attempts, double latency_ms, const response_info& info) {
    job_result r;
    r.key = j.key;
    r.line = j.line;
    r.id = j.id;
    r.integrated_account_id = j.integrated_account_id;
    r.result = outcome::ok;
    r.http_status = status;
    r.attempts = attempts;
    r.latency_ms = latency_ms;
    r.finished_at = std::chrono::system_clock::now();
    r.response_id = info.id;
    r.response_name = info.name;
    r.response_updated_at = info.updated_at;
    if (!info.json_valid) r.warning = "the 2xx response body was not valid JSON";
    sink_.add(r, {}, {}, {});
    report_.metrics.job_finished(outcome::ok);
    schedule_flush();
  }

  void finish(const job& j, outcome o, unsigned status, unsigned attempts, double latency_ms, std::string_view kind,
              const std::string& message, bool remote, std::string_view idempotency_key) {
    job_result r;
    r.key = j.key;
    r.line = j.line;
    r.id = j.id;
    r.integrated_account_id = j.integrated_account_id;
    r.result = o;
    r.http_status = status;
    r.attempts = attempts;
    r.latency_ms = latency_ms;
    r.finished_at = std::chrono::system_clock::now();
    r.error_kind = kind;
    r.error_message = message;
    r.error_remote = remote;
    // Dead letter: the job as given, with the identity it ran under, so running
    // the dead-letter file again cannot apply it twice.
    const std::string added_key = j.key_given ? std::string() : fmt::format("line-{}", j.line);
    sink_.add(r, j.source, added_key, j.idempotency_key.empty() ? idempotency_key : std::string_view());
    report_.metrics.job_finished(o);
    note_failure(fmt::format("{}:{}: job {}: {}{}", opt_.input, j.line, j.key, to_string(o),
                             status ? fmt::format(" (HTTP {})", status) : std::string()),
                 message);
    schedule_flush();
  }

  void record_invalid(const source_item& item, const input_error& err) {
    const std::string message = err.to_string();
    job_result r;
    r.key = item.key;
    r.line = item.line;
    r.result = outcome::invalid;
    r.finished_at = std::chrono::system_clock::now();
    r.error_kind = "input";
    r.error_message = message;
    sink_.add(r, item.source, {}, {});
    report_.metrics.job_finished(outcome::invalid);
    note_failure(fmt::format("{}:{}: invalid", opt_.input, item.line), message);
    schedule_flush();
  }

  // The first failures are logged; the rest are in the results file.
  void note_failure(const std::string& where, const std::string& message) {
    if (++failures_logged_ <= k_failures_logged) {
      spdlog::warn("{}: {}", where, message);
      if (failures_logged_ == k_failures_logged)
        spdlog::warn("further failures are only in the results file");
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
      try {
        sink_.flush();
      } catch (const std::exception& e) {
        stop_run(e.what());
      }
    });
  }

  // --- stopping --------------------------------------------------------------

  net::awaitable<void> sleep(clock_type::duration d) {
    auto timer = std::make_shared<steady_timer>(io_);
    timer->expires_after(d);
    sleepers_.insert(timer.get());
    co_await timer->async_wait();
    sleepers_.erase(timer.get());
  }

  // Stop at once: a fatal error (exit 1) or the end of the grace period.
  void stop_run(std::string reason) {
    if (report_.fatal_error.empty() && !reason.empty()) {
      report_.fatal_error = std::move(reason);
    }
    hard_stop();
  }

  void hard_stop() {
    stopping_ = true;
    hard_stop_ = true;
    pool_.close_all();
    for (auto* t : sleepers_) t->cancel();
    parked_drained_.cancel();
  }

  void watch_signals() {
    signals_.async_wait([this](boost::system::error_code ec, int signo) {
      if (ec) return;
      if (!stopping_) {
        signal_ = signo;
        stopping_ = true;
        report_.summary.stopped_reason = signo == SIGINT ? "SIGINT" : "SIGTERM";
        spdlog::warn("{}: finishing the jobs in flight (up to {} s); send it again to stop at once",
                     report_.summary.stopped_reason, cfg_.shutdown_grace_s);
        parked_drained_.cancel();
        grace_timer_.expires_after(std::chrono::seconds(cfg_.shutdown_grace_s));
        grace_timer_.async_wait([this](boost::system::error_code gec) {
          if (!gec) hard_stop();
        });
      } else {
        hard_stop();
      }
      watch_signals();
    });
  }

  void all_done() {
    boost::system::error_code ignored;
    signals_.cancel(ignored);
    grace_timer_.cancel();
    if (!report_.fatal_error.empty()) report_.exit_code = 1;
    else if (signal_ == SIGINT) report_.exit_code = 130;
    else if (signal_ == SIGTERM) report_.exit_code = 143;
    else report_.exit_code = report_.metrics.jobs() == report_.metrics.ok() ? 0 : 2;
  }

  static constexpr std::size_t k_max_parked = 10000;
  static constexpr unsigned k_failures_logged = 20;

  const run_options& opt_;
  const config& cfg_;
  run_report& report_;
  file_source& source_;
  results_sink& sink_;
  std::string run_id_;
  net::io_context io_{1};
  endpoint endpoint_;
  std::string common_headers_;
  connection_pool pool_;
  rate_limiter limiter_;
  response_parser parser_;
  net::signal_set signals_;
  net::steady_timer grace_timer_;
  steady_timer parked_drained_;
  std::mt19937_64 rng_;
  std::unordered_map<std::string, std::deque<job>> busy_;  // org → jobs parked behind it
  std::size_t parked_count_ = 0;
  std::unordered_set<steady_timer*> sleepers_;
  unsigned workers_ = 0;
  unsigned failures_logged_ = 0;
  int signal_ = 0;
  bool stopping_ = false;
  bool hard_stop_ = false;
  bool flush_posted_ = false;
};

}  // namespace

std::string default_results_path(const std::string& input) {
  return (input == "-" ? std::string("stdin") : strip_jsonl(input)) + ".results.jsonl";
}

std::string default_dead_letter_path(const std::string& input) {
  return (input == "-" ? std::string("stdin") : strip_jsonl(input)) + ".failed.jsonl";
}

run_report run_batch(const run_options& o) {
  run_report report;
  auto fail = [&](std::string message) {
    report.exit_code = 1;
    report.fatal_error = std::move(message);
    return std::move(report);
  };
  try {
    validate_config(o.cfg);
    if (auto why = check_token(o.token); !why.empty()) return fail(why);
    const std::string results = o.cfg.output.results.value_or(default_results_path(o.input));
    const std::string dead = o.cfg.output.dead_letter.value_or(default_dead_letter_path(o.input));
    report.summary.results_path = results;
    report.summary.dead_letter_path = dead;
    if (o.input != "-" && (same_file(results, o.input) || same_file(dead, o.input)))
      return fail(fmt::format("{}: an output file must not be the input file", o.input));
    if (same_file(results, dead)) return fail("the results file and the dead-letter file must differ");
    // The results log is the run's journal: never overwrite one silently.
    if (non_empty_file_exists(results))
      return fail(fmt::format(
          "{}: results file already exists (resuming a run is not available yet); remove it or pass --results",
          results));
    const auto fp = fingerprint(o.input);
    file_source source(o.input, job_parse_options{o.cfg.api.default_integrated_account_id, &o.cfg.api.default_query},
                       o.cfg.input.max_line_bytes);
    report.run_id = random_run_id();
    run_header header{ORGPATCH_VERSION, report.run_id, o.input, fp.size, fp.sha256, std::chrono::system_clock::now()};
    results_sink sink(results, dead, o.cfg.output.fsync, header);
    batch b(o, report, source, sink, report.run_id);
    b.run();
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  return report;
}

}  // namespace orgpatch
