#include "orgpatch/scheduler.hpp"

#include <algorithm>

namespace orgpatch {

struct scheduler_account {
  std::string id;
  // A parsed job with what choosing it needs, so that the scan for a free
  // organization reads this queue only, not the jobs (cold by then).
  struct queued {
    std::uint64_t line;
    std::size_t org_hash;
    std::unique_ptr<job_state> job;
  };
  std::deque<queued> queue;  // sorted by line
  std::deque<spilled_job> spill;                 // later than every parsed one
  // Organizations with a job in flight: (hash of the id, line of that job). A
  // handful at most, so a scan beats a map, and a hash collision only makes a
  // job wait for an unrelated one.
  std::vector<std::pair<std::size_t, std::uint64_t>> busy;
  gcra bucket;
  clock_type::time_point paused_until{};
  std::uint64_t version = 0;          // heap entries of older versions are stale
  // Where its live heap entry (of `version`) places it, so that placing it
  // again the same way costs nothing.
  enum class placement : unsigned char { none, ready, timed } placed = placement::none;
  std::uint64_t placed_key = 0;
  bool reload_planned = false;
  std::size_t reload_outstanding = 0;  // handed out by take_reloads, not loaded yet

  bool held_by_another(const queued& q) const noexcept {
    for (const auto& [hash, line] : busy)
      if (hash == q.org_hash && line != q.line) return true;
    return false;
  }
  void insert_sorted(std::unique_ptr<job_state> s);
};

// Reloads arrive in order (usually the end), retries early (usually near the
// front): search from the end, which is right for the first and cheap enough
// for the few jobs an account holds.
void scheduler_account::insert_sorted(std::unique_ptr<job_state> s) {
  const std::uint64_t line = s->j.line;
  const std::size_t org_hash = s->org_hash;
  auto pos = queue.end();
  while (pos != queue.begin() && std::prev(pos)->line > line) --pos;
  queue.insert(pos, queued{line, org_hash, std::move(s)});
}

namespace {

// Binds a job to its account once, so that no later step hashes strings.
void bind(job_state& s, scheduler_account& a) {
  if (s.account) return;
  s.account = &a;
  s.org_hash = std::hash<std::string_view>{}(s.j.id);
}

}  // namespace

scheduler::scheduler(scheduler_params p) : p_(p), token_(p.rate, p.burst) {
  token_aimd_.ceiling = p.rate;
  token_aimd_.increase_share = 0.005;
  account_aimd_.ceiling = p.account_rate;
}

scheduler::~scheduler() = default;

std::uint64_t scheduler::ticks(clock_type::time_point t) noexcept {
  const auto c = t.time_since_epoch().count();
  return c < 0 ? 0 : static_cast<std::uint64_t>(c);
}

scheduler::account& scheduler::account_of(const job_state& s) {
  return s.account ? *s.account : account_of(s.j.integrated_account_id);
}

scheduler::account& scheduler::account_of(const std::string& id) {
  auto it = accounts_.find(id);
  if (it == accounts_.end()) {
    auto a = std::make_unique<account>();
    a->id = id;
    a->bucket.configure(p_.account_rate, p_.account_burst);
    it = accounts_.emplace(id, std::move(a)).first;
  }
  return *it->second;
}

// The account's first job (within the first few) whose organization is free:
// a job waiting for an earlier update of its organization does not hold up the
// account's other organizations.
std::size_t scheduler::candidate(const account& a) const {
  if (a.busy.empty()) return a.queue.empty() ? k_none : 0;  // nothing of its own in flight
  const std::size_t n = std::min<std::size_t>(a.queue.size(), k_scan);
  for (std::size_t i = 0; i < n; ++i) {
    if (!a.held_by_another(a.queue[i])) return i;
  }
  return k_none;
}

// Places the account where its candidate job belongs: the ready heap (by line),
// the timed heap (by the instant its pause or bucket allows it), or nowhere
// (empty, or every job it could send waits for an earlier one of the same
// organization: `finished` places it again).
void scheduler::evaluate(account& a, clock_type::time_point now) {
  using placement = account::placement;
  plan_reload(a);
  placement want = placement::none;
  std::uint64_t key = 0;
  if (const std::size_t c = a.queue.empty() ? k_none : candidate(a); c != k_none) {
    const auto bucket_at = now + a.bucket.wait(now);
    const auto at = std::max(a.paused_until, bucket_at);
    want = at <= now ? placement::ready : placement::timed;
    key = want == placement::ready ? a.queue[c].line : ticks(at);
  }
  // Already placed just so (the common case after a job finishes): no new entry.
  if (want != placement::none && want == a.placed && key == a.placed_key) return;
  ++a.version;
  a.placed = want;
  a.placed_key = key;
  if (want == placement::ready) ready_.push({key, a.version, &a});
  else if (want == placement::timed) timed_.push({key, a.version, &a});
}

void scheduler::plan_reload(account& a) {
  if (a.reload_planned || a.spill.empty()) return;
  if (a.queue.size() + a.reload_outstanding >= std::max<std::size_t>(1, p_.account_keep / 2)) return;
  a.reload_planned = true;
  reload_wanted_.push_back(&a);
}

bool scheduler::wants_more(clock_type::time_point) const {
  return parsed_ < p_.max_parsed || (p_.can_spill && starved_);
}

void scheduler::add(std::unique_ptr<job_state> s, clock_type::time_point now) {
  account& a = account_of(*s);
  const bool spill = !a.spill.empty() || a.reload_outstanding > 0 ||
                     (p_.can_spill && parsed_ >= p_.max_parsed && a.queue.size() >= p_.account_keep);
  if (spill) {
    a.spill.push_back({s->offset, s->j.line});
    ++spilled_;
    plan_reload(a);
    return;
  }
  bind(*s, a);
  const std::uint64_t line = s->j.line;
  const std::size_t org_hash = s->org_hash;
  a.queue.push_back({line, org_hash, std::move(s)});  // the newest line: the end keeps the order
  ++parsed_;
  starved_ = false;
  // Within the jobs looked at for a free organization, it may be the one that
  // can go while the others wait for theirs.
  if (a.queue.size() <= k_scan) evaluate(a, now);
}

std::vector<std::pair<std::string, spilled_job>> scheduler::take_reloads() {
  std::vector<std::pair<std::string, spilled_job>> out;
  for (account* a : reload_wanted_) {
    a->reload_planned = false;
    const std::size_t room = p_.account_keep > a->queue.size() + a->reload_outstanding
                                 ? p_.account_keep - a->queue.size() - a->reload_outstanding
                                 : 0;
    const std::size_t n = std::min(room, a->spill.size());
    for (std::size_t i = 0; i < n; ++i) {
      out.emplace_back(a->id, a->spill.front());
      a->spill.pop_front();
    }
    a->reload_outstanding += n;
    spilled_ -= n;
  }
  reload_wanted_.clear();
  return out;
}

void scheduler::load(std::unique_ptr<job_state> s, clock_type::time_point now) {
  account& a = account_of(*s);
  bind(*s, a);
  if (a.reload_outstanding > 0) --a.reload_outstanding;
  a.insert_sorted(std::move(s));
  ++parsed_;
  evaluate(a, now);
}

void scheduler::load_failed(const spilled_job&, const std::string& account_id) {
  account& a = account_of(account_id);
  if (a.reload_outstanding > 0) --a.reload_outstanding;
  plan_reload(a);
}

clock_type::time_point scheduler::token_ready(clock_type::time_point now) const {
  return std::max(token_paused_until_, now + token_.wait(now));
}

void scheduler::release_due_retries(clock_type::time_point now) {
  while (!retries_.empty() && retries_.begin()->first <= now) {
    auto node = retries_.extract(retries_.begin());
    std::unique_ptr<job_state> s = std::move(node.mapped());
    account& a = account_of(*s);
    // Ahead of the account's later jobs: the queue stays sorted by line.
    a.insert_sorted(std::move(s));
    ++parsed_;
    evaluate(a, now);
  }
}

scheduler::pick_result scheduler::pick(clock_type::time_point now) {
  release_due_retries(now);
  while (!timed_.empty() && timed_.top().key <= ticks(now)) {
    const heap_entry e = timed_.top();
    timed_.pop();
    if (e.version != e.acct->version) continue;  // stale
    e.acct->placed = account::placement::none;  // its live entry is used up
    evaluate(*e.acct, now);
  }
  pick_result r;
  const auto token_at = token_ready(now);
  if (token_at > now) {
    r.wait = token_at - now;
    return r;
  }
  while (!ready_.empty()) {
    const heap_entry e = ready_.top();
    ready_.pop();
    account& a = *e.acct;
    if (e.version != a.version) continue;  // stale
    a.placed = account::placement::none;  // its live entry is used up
    const std::size_t c = a.queue.empty() ? k_none : candidate(a);
    if (c == k_none || a.paused_until > now || a.bucket.wait(now) > clock_type::duration::zero()) {
      evaluate(a, now);
      continue;
    }
    r.job = std::move(a.queue[c].job);
    a.queue.erase(a.queue.begin() + static_cast<std::ptrdiff_t>(c));
    --parsed_;
    a.bucket.take(now);
    token_.take(now);
    // A retry already holds its organization.
    const std::pair<std::size_t, std::uint64_t> held(r.job->org_hash, r.job->j.line);
    if (std::find(a.busy.begin(), a.busy.end(), held) == a.busy.end()) a.busy.push_back(held);
    evaluate(a, now);
    starved_ = false;
    return r;
  }
  // The token could send but no account can: more input may hold jobs of others.
  starved_ = true;
  auto wait = clock_type::duration::max();
  while (!timed_.empty() && timed_.top().version != timed_.top().acct->version) timed_.pop();
  if (!timed_.empty()) wait = std::min(wait, clock_type::time_point(clock_type::duration(timed_.top().key)) - now);
  if (!retries_.empty()) wait = std::min(wait, retries_.begin()->first - now);
  r.wait = std::max(wait, clock_type::duration::zero());
  return r;
}

clock_type::duration scheduler::pause_left(const job_state& s, clock_type::time_point now) const {
  if (!s.account) return pause_left(s.j.integrated_account_id, now);
  const auto until = std::max(token_paused_until_, s.account->paused_until);
  return until > now ? until - now : clock_type::duration::zero();
}

clock_type::duration scheduler::pause_left(const std::string& account_id, clock_type::time_point now) const {
  auto until = token_paused_until_;
  if (auto it = accounts_.find(account_id); it != accounts_.end()) until = std::max(until, it->second->paused_until);
  return until > now ? until - now : clock_type::duration::zero();
}

void scheduler::requeue(std::unique_ptr<job_state> s, clock_type::time_point not_before) {
  retries_.emplace(not_before, std::move(s));
}

void scheduler::requeue_unsent(std::unique_ptr<job_state> s, clock_type::time_point not_before,
                               clock_type::time_point now) {
  // It was picked but not sent: its account's and the token's slot go back.
  account& a = account_of(*s);
  a.bucket.give_back(now);
  token_.give_back(now);
  retries_.emplace(not_before, std::move(s));
}

void scheduler::finished(const job_state& s, clock_type::time_point now) {
  account& a = account_of(s);
  const auto it = std::find(a.busy.begin(), a.busy.end(), std::pair<std::size_t, std::uint64_t>(s.org_hash, s.j.line));
  if (it != a.busy.end()) {
    *it = a.busy.back();
    a.busy.pop_back();
  }
  evaluate(a, now);
}

std::size_t scheduler::drop_all() {
  const std::size_t n = parsed_ + spilled_ + retries_.size();
  for (auto& [id, a] : accounts_) {
    a->queue.clear();
    a->spill.clear();
    ++a->version;
    a->placed = account::placement::none;
  }
  retries_.clear();
  reload_wanted_.clear();
  parsed_ = spilled_ = 0;
  ready_ = {};
  timed_ = {};
  return n;
}

void scheduler::on_success(const std::string& account_id, clock_type::time_point now) {
  if (!p_.adaptive) return;
  on_success_of(account_of(account_id), now);
}

void scheduler::on_success(const job_state& s, clock_type::time_point now) {
  if (!p_.adaptive) return;
  on_success_of(account_of(s), now);
}

void scheduler::on_success_of(account& a, clock_type::time_point now) {
  if (a.bucket.rate() < account_aimd_.ceiling) a.bucket.set_rate(account_aimd_.on_success(a.bucket.rate()), now);
  if (token_.rate() < token_aimd_.ceiling) token_.set_rate(token_aimd_.on_success(token_.rate()), now);
}

bool scheduler::on_rate_limited(const std::string& account_id, bool remote, clock_type::duration retry_after,
                                clock_type::time_point now) {
  account& a = account_of(account_id);
  bool token_wide = false;
  if (!remote) {
    // Truto's body does not say which limit answered: 429s for several accounts
    // within a second mean the token's.
    while (!recent_limited_.empty() && now - recent_limited_.front().first > std::chrono::seconds(1))
      recent_limited_.pop_front();
    recent_limited_.emplace_back(now, &a);
    const bool several = std::any_of(recent_limited_.begin(), recent_limited_.end(),
                                     [&](const auto& e) { return e.second != &a; });
    if (several) {
      token_wide = true;
      token_paused_until_ = std::max(token_paused_until_, now + retry_after);
      if (p_.adaptive) token_.set_rate(token_aimd_.on_limited(token_.rate()), now);
    }
  }
  a.paused_until = std::max(a.paused_until, now + retry_after);
  if (p_.adaptive) a.bucket.set_rate(account_aimd_.on_limited(a.bucket.rate()), now);
  evaluate(a, now);
  return token_wide;
}

void scheduler::on_remaining_exhausted(const std::string& account_id, clock_type::duration reset,
                                       clock_type::time_point now) {
  account& a = account_of(account_id);
  a.paused_until = std::max(a.paused_until, now + reset);
  evaluate(a, now);
}

bool scheduler::throttled(const account& a, clock_type::time_point now) const noexcept {
  return a.paused_until > now || (account_aimd_.ceiling > 0 && a.bucket.rate() < account_aimd_.ceiling);
}

std::size_t scheduler::throttled_accounts(clock_type::time_point now) const {
  std::size_t n = 0;
  for (const auto& [id, a] : accounts_)
    if (throttled(*a, now)) ++n;
  return n;
}

std::vector<std::string> scheduler::throttled_account_ids(clock_type::time_point now) const {
  std::vector<std::string> ids;
  for (const auto& [id, a] : accounts_)
    if (throttled(*a, now)) ids.push_back(id);
  return ids;
}

double scheduler::account_rate(const std::string& account_id) const {
  auto it = accounts_.find(account_id);
  return it == accounts_.end() ? p_.account_rate : it->second->bucket.rate();
}

}  // namespace orgpatch
