/// Rate limits shared by every orgpatchd instance through Redis (DESIGN.md §9):
/// one GCRA per limit, kept in Redis as one key holding the "theoretical
/// arrival time" and advanced by one Lua script that reads the server's clock,
/// so N hosts together admit no more than one bucket of rate r and burst b.
///
/// - `gcra_step()` is the script's arithmetic as a pure function (unit tests).
/// - `redis_limiter` runs the script: `acquire(name, rate, burst, n)` takes up
///   to n tokens at once.
/// - `shared_bucket` is the front an engine uses per limit: it fetches small
///   batches and hands tokens out locally, so that a fast instance does not pay
///   a round trip per request.
///
/// The bound. Redis grants at most b' + r·L tokens in any window of L seconds
/// (server time), where b' is the burst the script is given. A shared_bucket
/// keeps a fetched token at most τ (`hold`, measured from when its request was
/// *sent*, so before the server granted it); a token not used by then is
/// dropped. So every request admitted in a window [t, t + W] used a token
/// granted in [t − τ, t + W], and the admissions of all instances together in
/// any window of W seconds are at most b' + r·(W + τ). The bucket passes
/// b' = b − r·τ, which makes that b + r·W: exactly the bound of the local
/// limiter, whatever the number of instances and however many tokens each holds
/// unused. τ is `min(hold, (b − 1)/(2r))` (so b' ≥ (b + 1)/2: half the
/// spare burst stays in Redis to absorb the instances' lag, which would
/// otherwise be rate lost) and the batch at most
/// max(1, ⌊r·τ⌋) tokens (about r/20 for the default τ = 50 ms). Assumptions: a
/// round trip to Redis shorter than τ (a slower reply adds r·(RTT − τ)), and
/// the server's clock advancing at the rate of real time (no step during the
/// window). The price: tokens dropped unused (counted in `wasted()`); the batch
/// size adapts (halved after a drop, doubled after a batch used up in time) so
/// that an instance with little demand wastes little.
///
/// Keys: "orgpatch:gcra:" + name. Callers pass names that are not secrets:
/// `token_limit_name(token)` (a hash) for the token's limit, the integrated
/// account id for an account's limit. Keys expire once their bucket is full
/// again (an absent key is a full bucket).
///
/// Not thread-safe: everything runs on the connection's io_context thread.
#pragma once

#include "orgpatch/redis.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace orgpatch {

/// The GCRA script. KEYS[1] the limit's key; ARGV rate (per second), burst,
/// tokens wanted. Returns {granted, wait_ms}: how many tokens were taken (up to
/// the number wanted, as many as are available) and how long until the next one
/// is available (0 when some are left). A rate ≤ 0 means unlimited. O(1): one
/// GET, at most one SET.
inline constexpr std::string_view k_gcra_script = R"lua(
if redis.replicate_commands then redis.replicate_commands() end
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
if not rate or not burst or not want then
  return redis.error_reply('ERR orgpatch gcra: rate, burst and want must be numbers')
end
want = math.max(0, math.floor(want))
if rate <= 0 then return {want, 0} end
if burst < 1 then burst = 1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = 1000000 / rate
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local free = math.floor((now - tat) / interval + burst + 1e-6)
local granted = math.max(0, math.min(want, free))
if granted > 0 then
  tat = math.ceil(tat + granted * interval)
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
end
local wait = math.ceil((tat - now - (burst - 1) * interval) / 1000)
if wait < 0 then wait = 0 end
return {granted, wait}
)lua";

/// One step of the script, as a pure function (times in microseconds, as doubles
/// like Lua's numbers).
struct gcra_step_result {
  std::uint64_t granted = 0;
  bool store = false;        ///< the script SETs the key (only when granting)
  double tat_us = 0;         ///< the theoretical arrival time after the step
  std::int64_t ttl_ms = 0;   ///< the key's expiry when stored
  std::int64_t wait_ms = 0;  ///< until the next token
};

/// The script's arithmetic: `stored_tat_us` is the key's value (nullopt when absent).
inline gcra_step_result gcra_step(std::optional<double> stored_tat_us, double now_us, double rate, double burst,
                                  std::uint64_t want) noexcept {
  gcra_step_result r;
  if (rate <= 0) {
    r.granted = want;
    return r;
  }
  if (burst < 1) burst = 1;
  const double interval = 1e6 / rate;
  double tat = stored_tat_us.value_or(now_us);
  if (tat < now_us) tat = now_us;
  const double free = std::floor((now_us - tat) / interval + burst + 1e-6);
  const double granted = std::max(0.0, std::min(static_cast<double>(want), free));
  if (granted > 0) {
    tat = std::ceil(tat + granted * interval);
    r.store = true;
    r.ttl_ms = static_cast<std::int64_t>(std::ceil((tat - now_us) / 1000)) + 1;
  }
  r.granted = static_cast<std::uint64_t>(granted);
  r.tat_us = tat;
  const double wait = std::ceil((tat - now_us - (burst - 1) * interval) / 1000);
  r.wait_ms = wait < 0 ? 0 : static_cast<std::int64_t>(wait);
  return r;
}

/// The name of an API token's limit: "token:" + the first 128 bits of its
/// SHA-256 in hex. The token itself never reaches Redis.
std::string token_limit_name(std::string_view token);

/// What one acquire gave.
struct grant {
  unsigned granted = 0;               ///< tokens taken (0 … want)
  std::chrono::milliseconds wait{0};  ///< until the next token is available
  boost::system::error_code ec;       ///< Redis failed (granted is then 0)
};

/// Runs the GCRA script on a connection it does not own (which must outlive it
/// and its pending calls; it may be shared with other users: commands are
/// pipelined). Not thread-safe.
class redis_limiter {
 public:
  explicit redis_limiter(redis_connection& conn, std::string key_prefix = "orgpatch:gcra:",
                         std::chrono::milliseconds timeout = std::chrono::milliseconds{2000});

  /// Takes up to `want` tokens of the limit `name` (rate per second, burst) in
  /// one round trip: EVALSHA, and SCRIPT LOAD then EVALSHA again when the server
  /// answers NOSCRIPT. A rate ≤ 0 grants everything without Redis. Errors
  /// (connection, timeout, an unexpected reply: `last_error()` says which) come
  /// back in `grant::ec`.
  boost::asio::awaitable<grant> acquire(std::string name, double rate, double burst, unsigned want);

  /// The script's SHA-1, as EVALSHA wants it.
  const std::string& script_sha() const noexcept { return sha_; }
  const std::string& last_error() const noexcept { return last_error_; }

 private:
  redis_connection* conn_;
  std::string prefix_;
  std::chrono::milliseconds timeout_;
  std::string sha_;
  std::string last_error_;
};

/// How a shared_bucket behaves (a plain aggregate beside the class).
struct shared_bucket_params {
  std::string name;   ///< the limit's name (see token_limit_name); never a secret
  double rate = 0;    ///< requests per second; 0: unlimited (take() returns at once, no Redis)
  double burst = 1;   ///< b
  std::chrono::milliseconds hold{50};  ///< τ: the longest a fetched token is kept before it is dropped
};

/// A local front to one shared limit: take() hands out tokens fetched from
/// Redis in small batches (see the bound at the top of this file). One fetch
/// at a time; the other takers wait for it. Not thread-safe; the limiter must
/// outlive the bucket, and the bucket its pending take() calls. Cancellation: a cancelled take() returns
/// `operation_aborted` and takes no token.
class shared_bucket {
 public:
  shared_bucket(redis_limiter& limiter, boost::asio::any_io_executor ex, shared_bucket_params params);

  /// Waits until one request may go. An error means Redis could not be asked
  /// (the caller may fall back to its local limiter); no token is then taken.
  boost::asio::awaitable<boost::system::error_code> take();

  /// Ends every take(), pending and future, with `operation_aborted` (a stop).
  void cancel() noexcept;

  /// True when a take() now would wait for Redis (another taker is already
  /// fetching and no token is held): the caller may do something else first.
  bool would_wait() const noexcept;

  /// Changes the rate (AIMD) and/or burst; the derived τ, b' and batch follow.
  void configure(double rate, double burst);
  void set_rate(double rate) { configure(rate, params_.burst); }

  double rate() const noexcept { return params_.rate; }
  double burst() const noexcept { return params_.burst; }
  /// b' = b − r·τ: the burst given to the script.
  double redis_burst() const noexcept { return redis_burst_; }
  /// τ actually used: min(hold, (b − 1)/(2r)).
  std::chrono::microseconds hold() const noexcept { return hold_; }
  /// The largest batch asked for: max(1, ⌊r·τ⌋).
  unsigned max_batch() const noexcept { return max_batch_; }

  std::uint64_t round_trips() const noexcept { return round_trips_; }  ///< script calls
  std::uint64_t fetched() const noexcept { return fetched_; }          ///< tokens granted by Redis
  std::uint64_t wasted() const noexcept { return wasted_; }            ///< tokens dropped unused

 private:
  using clock = std::chrono::steady_clock;

  redis_limiter* limiter_;
  shared_bucket_params params_;
  double redis_burst_ = 1;
  std::chrono::microseconds hold_{0};
  unsigned max_batch_ = 1;
  unsigned batch_ = 1;          // the current batch size, adapted
  bool dropped_since_fetch_ = false;
  unsigned tokens_ = 0;         // fetched, not yet handed out
  clock::time_point expires_;   // when tokens_ must be dropped
  bool fetching_ = false;
  unsigned waiting_ = 0;        // takers parked on wake_
  boost::asio::steady_timer wake_;  // parked forever; cancelled to wake the takers
  boost::asio::steady_timer sleep_;  // the fetcher's wait for the next token (one fetcher at a time)
  bool cancelled_ = false;
  std::uint64_t round_trips_ = 0;
  std::uint64_t fetched_ = 0;
  std::uint64_t wasted_ = 0;
};

/// What a shared_limits enforces (a plain aggregate beside the class).
struct shared_limits_params {
  redis_endpoint redis;
  std::string token_name;      ///< token_limit_name(token): never the token itself
  double rate = 0;             ///< the token's requests/s (0: not shared)
  double burst = 1;
  double account_rate = 0;     ///< each account's requests/s (0: not shared)
  double account_burst = 1;
  std::chrono::milliseconds connect_timeout{2000};
};

/// The token's limit and every account's limit shared by all instances through
/// one Redis connection of its own: take(account) waits until both budgets
/// allow one request. Redis down: take() returns at once, so only the local
/// limiter applies (each instance at the full rate); a warning is logged once
/// per outage and a reconnection is tried at most once a second. Not
/// thread-safe; destroy before the io_context.
class shared_limits {
 public:
  shared_limits(boost::asio::any_io_executor ex, shared_limits_params params);

  /// Waits for one request's token of the API token's limit and of `account`'s.
  /// Never fails: see above for Redis being down. After close(), returns at once.
  boost::asio::awaitable<void> take(std::string account);

  /// Closes the connection: pending take() calls return.
  void close() noexcept;

  /// True when `account`'s shared budget is being waited for already: a job of
  /// it would hold a connection slot while it waits, so the engine puts it back
  /// for a moment and sends another account's job instead.
  bool would_wait(const std::string& account) const;

  /// Requests that went without the shared budgets (Redis unreachable).
  std::uint64_t unshared() const noexcept { return unshared_; }

 private:
  boost::asio::awaitable<bool> ensure_connected();
  void degrade(const std::string& why);

  shared_limits_params params_;
  redis_connection conn_;
  redis_limiter limiter_;
  shared_bucket token_;
  std::unordered_map<std::string, std::unique_ptr<shared_bucket>> accounts_;
  boost::asio::steady_timer connected_;  // parked forever; cancelled when a connect attempt ends
  std::chrono::steady_clock::time_point next_connect_{};
  std::uint64_t unshared_ = 0;
  bool connecting_ = false;
  bool degraded_ = false;
  bool closed_ = false;
};

}  // namespace orgpatch
