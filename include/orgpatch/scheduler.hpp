/// The scheduler (DESIGN.md §3, §4): per-account queues over a bounded
/// look-ahead, the token's and each account's adaptive limits, retry timers,
/// and input order per organization.
///
/// Which job goes next: among the accounts that may send now, the one whose
/// next job comes first in the file — so the busiest account is served at its
/// full rate from start to end while the others fill the rest of the token's
/// budget, and a throttled account never holds up the others.
///
/// Pure: time is passed in; it never reads files (spilled jobs are handed back
/// to the engine to re-read). O(log accounts) per job. Not thread-safe.
#pragma once

#include "orgpatch/job.hpp"
#include "orgpatch/rate_limiter.hpp"

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

namespace orgpatch {

struct scheduler_account;

/// A job and what the engine keeps about it across attempts.
struct job_state {
  job j;
  std::uint64_t offset = 0;         ///< byte offset of its line in the input, for re-reading
  unsigned attempts = 0;            ///< attempts counted so far (429s excluded)
  clock_type::time_point first_attempt{};  ///< epoch until the first attempt
  std::string idempotency_key;      ///< resolved (given or derived)
  scheduler_account* account = nullptr;  ///< its account's state, set by the scheduler when added
  std::size_t org_hash = 0;         ///< hash of its id (its organization within the account), set likewise
  std::string entry_id;             ///< the stream entry it came from ("" for a file)
};

/// A job kept only as where to re-read it (16 bytes), past the look-ahead.
struct spilled_job {
  std::uint64_t offset = 0;
  std::uint64_t line = 0;
};

struct scheduler_params {
  double rate = 45;             ///< the token's requests/s (0: unlimited)
  double burst = 50;
  double account_rate = 4.5;    ///< each account's requests/s (0: unlimited)
  double account_burst = 5;
  bool adaptive = true;         ///< AIMD on 429s
  std::size_t max_parsed = 10000;  ///< parsed jobs held (the look-ahead)
  std::size_t account_keep = 32;   ///< parsed jobs an account keeps before its later ones spill
  bool can_spill = true;           ///< false for input that cannot be re-read (stdin)
};

class scheduler {
 public:
  explicit scheduler(scheduler_params p);
  ~scheduler();
  scheduler(const scheduler&) = delete;
  scheduler& operator=(const scheduler&) = delete;

  // --- intake --------------------------------------------------------------

  /// True while the engine should read and add more jobs: the look-ahead is not
  /// full, or (when jobs can spill) nothing can be sent now for lack of jobs of
  /// an account that may send.
  bool wants_more(clock_type::time_point now) const;

  /// Adds a job read from the input, in file order. Past the look-ahead, a job of
  /// an account that already holds `account_keep` parsed jobs is kept only as a
  /// spilled_job (when spilling is allowed).
  void add(std::unique_ptr<job_state> s, clock_type::time_point now);

  /// Spilled jobs that should be re-read now (their account's parsed queue ran
  /// low), with their account, in file order per account. The engine re-reads
  /// each and calls `load` (or `load_failed`).
  std::vector<std::pair<std::string, spilled_job>> take_reloads();

  /// A re-read spilled job (from take_reloads), back in its place.
  void load(std::unique_ptr<job_state> s, clock_type::time_point now);
  /// A spilled job that could not be re-read (the input changed): forget it.
  void load_failed(const spilled_job& sj, const std::string& account);

  // --- dispatch ------------------------------------------------------------

  struct pick_result {
    std::unique_ptr<job_state> job;     ///< the job to send now, or null
    clock_type::duration wait{};        ///< when null: how long until one may be ready
                                        ///< (duration::max(): nothing waits on time)
  };

  /// The next job that may be sent at `now`; takes its account's and the token's
  /// budget. Its organization stays busy until `finished`.
  pick_result pick(clock_type::time_point now);

  /// Right before writing: how long the job's account (or the token) is paused;
  /// zero when it may go.
  clock_type::duration pause_left(const std::string& account, clock_type::time_point now) const;
  /// The same for a job the scheduler has seen, without looking its account up.
  clock_type::duration pause_left(const job_state& s, clock_type::time_point now) const;

  /// Puts a picked job back, to be sent again no earlier than `not_before` (a
  /// retry after backoff, a 429, or a pause found at write time). It goes ahead of
  /// its account's later jobs.
  void requeue(std::unique_ptr<job_state> s, clock_type::time_point not_before);

  /// As `requeue`, for a picked job that was not sent after all (its account or
  /// the token was paused by then, or a retry found no retry budget): the
  /// budget `pick` took is given back.
  void requeue_unsent(std::unique_ptr<job_state> s, clock_type::time_point not_before, clock_type::time_point now);

  /// The job reached its final outcome: its organization's next job may go.
  void finished(const job_state& s, clock_type::time_point now);

  /// Drops every queued job (the run is stopping); returns how many were dropped.
  std::size_t drop_all();

  // --- feedback from answers ------------------------------------------------

  void on_success(const std::string& account, clock_type::time_point now);
  /// The same for a job the scheduler has seen, without looking its account up.
  void on_success(const job_state& s, clock_type::time_point now);
  /// A 429. `remote`: the remote API's limit (pauses only its account). Truto's
  /// own 429s for several accounts within a second mean the token's limit: then
  /// everything pauses, and it returns true.
  bool on_rate_limited(const std::string& account, bool remote, clock_type::duration retry_after,
                       clock_type::time_point now);
  /// `ratelimit-remaining: 0`: the account pauses until the window resets.
  void on_remaining_exhausted(const std::string& account, clock_type::duration reset, clock_type::time_point now);

  // --- state ----------------------------------------------------------------

  std::size_t parsed() const noexcept { return parsed_; }    ///< parsed jobs held
  std::size_t spilled() const noexcept { return spilled_; }  ///< spilled jobs held
  std::size_t waiting_retry() const noexcept { return retries_.size(); }
  /// Nothing held: no queued, spilled or retrying job.
  bool empty() const noexcept { return parsed_ == 0 && spilled_ == 0 && retries_.empty(); }
  /// Accounts paused or slowed below their ceiling now.
  std::size_t throttled_accounts(clock_type::time_point now) const;
  /// The same accounts, by id (to count an account once across several runs).
  std::vector<std::string> throttled_account_ids(clock_type::time_point now) const;
  double token_rate() const noexcept { return token_.rate(); }
  double account_rate(const std::string& account) const;

 private:
  using account = scheduler_account;
  struct heap_entry {
    std::uint64_t key;  // line for the ready heap, ticks for the timed heap
    std::uint64_t version;
    account* acct;
    bool operator>(const heap_entry& o) const noexcept { return key > o.key; }
  };
  using min_heap = std::priority_queue<heap_entry, std::vector<heap_entry>, std::greater<>>;

  account& account_of(const std::string& id);
  account& account_of(const job_state& s);
  void evaluate(account& a, clock_type::time_point now);
  void on_success_of(account& a, clock_type::time_point now);
  bool throttled(const account& a, clock_type::time_point now) const noexcept;
  std::size_t candidate(const account& a) const;
  static constexpr std::size_t k_scan = 16;  // jobs of an account looked at for a free organization
  static constexpr std::size_t k_none = static_cast<std::size_t>(-1);
  void release_due_retries(clock_type::time_point now);
  void plan_reload(account& a);
  clock_type::time_point token_ready(clock_type::time_point now) const;
  static std::uint64_t ticks(clock_type::time_point t) noexcept;

  scheduler_params p_;
  gcra token_;
  aimd token_aimd_;
  aimd account_aimd_;
  clock_type::time_point token_paused_until_{};
  std::unordered_map<std::string, std::unique_ptr<account>> accounts_;
  min_heap ready_;
  min_heap timed_;
  std::multimap<clock_type::time_point, std::unique_ptr<job_state>> retries_;  // by not-before, FIFO
  std::vector<account*> reload_wanted_;
  std::deque<std::pair<clock_type::time_point, account*>> recent_limited_;
  std::size_t parsed_ = 0;
  std::size_t spilled_ = 0;
  bool starved_ = false;  // the last pick found nothing sendable though the token had budget
};

/// Org identity used for input order: integrated account + id.
}  // namespace orgpatch
