#include "orgpatch/redis_limiter.hpp"

#include "orgpatch/asio.hpp"

#include <boost/asio/this_coro.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <openssl/evp.h>

namespace orgpatch {

using boost::system::error_code;

namespace {

std::string hex_digest(const EVP_MD* md, std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(data.data(), data.size(), digest, &size, md, nullptr);
  std::string out;
  out.reserve(size * 2);
  for (unsigned i = 0; i < size; ++i) out += fmt::format("{:02x}", digest[i]);
  return out;
}

}  // namespace

std::string token_limit_name(std::string_view token) {
  return "token:" + hex_digest(EVP_sha256(), token).substr(0, 32);
}

// --- redis_limiter -----------------------------------------------------------

redis_limiter::redis_limiter(redis_connection& conn, std::string key_prefix, std::chrono::milliseconds timeout)
    : conn_(&conn), prefix_(std::move(key_prefix)), timeout_(timeout), sha_(hex_digest(EVP_sha1(), k_gcra_script)) {}

net::awaitable<grant> redis_limiter::acquire(std::string name, double rate, double burst, unsigned want) {
  grant g;
  if (rate <= 0) {
    g.granted = want;
    co_return g;
  }
  if (want == 0) co_return g;
  const std::string key = prefix_ + name;
  for (int attempt = 0;; ++attempt) {
    // (argv built before the co_await: g++ 12 rejects a braced list of literals inside one.)
    std::vector<std::string> argv{"EVALSHA", sha_, "1", key, fmt::format("{}", rate), fmt::format("{}", burst),
                                  std::to_string(want)};
    auto reply = co_await conn_->command(std::move(argv), timeout_);
    if (!reply) {
      g.ec = reply.error();
      last_error_ = fmt::format("rate limit {}: {}", name, g.ec.message());
      co_return g;
    }
    // A restarted or flushed server has forgotten the script: load it once, again.
    if (reply->is_error("NOSCRIPT") && attempt == 0) {
      std::vector<std::string> load{"SCRIPT", "LOAD", std::string(k_gcra_script)};
      auto loaded = co_await conn_->command(std::move(load), timeout_);
      if (!loaded) {
        g.ec = loaded.error();
        last_error_ = fmt::format("rate limit {}: loading the script: {}", name, g.ec.message());
        co_return g;
      }
      if (!loaded->is_string()) {
        g.ec = redis_errc::unexpected_reply;
        last_error_ = fmt::format("rate limit {}: SCRIPT LOAD answered {}", name, loaded->describe());
        co_return g;
      }
      sha_ = loaded->str;
      continue;
    }
    const auto& r = *reply;
    if (r.is_array() && r.elements.size() == 2 && r.elements[0].is_integer() && r.elements[1].is_integer() &&
        r.elements[0].integer >= 0 && r.elements[1].integer >= 0) {
      g.granted = static_cast<unsigned>(std::min<long long>(r.elements[0].integer, want));
      g.wait = std::chrono::milliseconds(r.elements[1].integer);
      co_return g;
    }
    g.ec = redis_errc::unexpected_reply;
    last_error_ = fmt::format("rate limit {}: the script answered {}", name,
                              r.is_error() ? r.str : r.describe());
    co_return g;
  }
}

// --- shared_bucket -----------------------------------------------------------

shared_bucket::shared_bucket(redis_limiter& limiter, net::any_io_executor ex, shared_bucket_params params)
    : limiter_(&limiter), params_(std::move(params)), wake_(ex), sleep_(ex) {
  wake_.expires_at(net::steady_timer::time_point::max());
  configure(params_.rate, params_.burst);
}

void shared_bucket::configure(double rate, double burst) {
  params_.rate = rate > 0 ? rate : 0;
  params_.burst = burst >= 1 ? burst : 1;
  if (params_.rate <= 0) {
    hold_ = std::chrono::microseconds{0};
    redis_burst_ = params_.burst;
    max_batch_ = 1;
    return;
  }
  // τ ≤ (b − 1)/(2r) keeps b' = b − r·τ ≥ (b + 1)/2: at least half the spare
  // burst stays in Redis, where it absorbs the instances' lag behind the
  // moment each token frees (with b' = 1, every such lag is rate lost).
  const double hold_s = std::min(std::chrono::duration<double>(params_.hold).count(),
                                 (params_.burst - 1) / (2 * params_.rate));
  hold_ = std::chrono::microseconds(static_cast<std::int64_t>(std::max(0.0, hold_s) * 1e6));
  const double tau = std::chrono::duration<double>(hold_).count();
  redis_burst_ = std::max(1.0, params_.burst - params_.rate * tau);
  max_batch_ = static_cast<unsigned>(std::max(1.0, std::floor(params_.rate * tau)));
  batch_ = std::min(std::max(batch_, 1u), max_batch_);
}

void shared_bucket::cancel() noexcept {
  cancelled_ = true;
  wake_.cancel();
  sleep_.cancel();
}

bool shared_bucket::would_wait() const noexcept {
  if (params_.rate <= 0 || cancelled_) return false;
  return (tokens_ == 0 || clock::now() >= expires_) && fetching_;
}

net::awaitable<error_code> shared_bucket::take() {
  if (params_.rate <= 0) co_return error_code{};
  for (;;) {
    if (cancelled_) co_return net::error::operation_aborted;
    const auto now = clock::now();
    if (tokens_ > 0 && now >= expires_) {
      // Held too long: using them now could break b + r·W.
      wasted_ += tokens_;
      tokens_ = 0;
      dropped_since_fetch_ = true;
    }
    if (tokens_ > 0) {
      --tokens_;
      co_return error_code{};
    }
    if (fetching_) {
      // Another taker is asking Redis: wait for its answer.
      ++waiting_;
      co_await wake_.async_wait(use_tuple);
      --waiting_;
      auto cs = co_await net::this_coro::cancellation_state;
      if (cs.cancelled() != net::cancellation_type::none) co_return net::error::operation_aborted;
      continue;
    }

    // This taker asks Redis for everyone, until it gets a token or an error.
    fetching_ = true;
    error_code result;
    if (dropped_since_fetch_) batch_ = std::max(1u, batch_ / 2);
    else batch_ = std::min(max_batch_, batch_ * 2);
    dropped_since_fetch_ = false;
    for (;;) {
      const unsigned want = std::min(max_batch_, std::max(batch_, waiting_ + 1));
      const auto sent = clock::now();
      const grant g = co_await limiter_->acquire(params_.name, params_.rate, redis_burst_, want);
      ++round_trips_;
      if (g.ec) {
        result = g.ec;
        break;
      }
      if (g.granted > 0) {
        fetched_ += g.granted;
        tokens_ = g.granted - 1;  // one is this taker's
        expires_ = sent + hold_;
        break;
      }
      // Nothing free: sleep until the next token is due, then ask again.
      sleep_.expires_after(std::max(g.wait, std::chrono::milliseconds{1}));
      auto [sec] = co_await sleep_.async_wait(use_tuple);
      if (sec || cancelled_) {
        result = net::error::operation_aborted;
        break;
      }
    }
    fetching_ = false;
    wake_.cancel();
    co_return result;
  }
}

shared_limits::shared_limits(net::any_io_executor ex, shared_limits_params params)
    : params_(std::move(params)),
      conn_(ex),
      limiter_(conn_),
      token_(limiter_, ex, shared_bucket_params{params_.token_name, params_.rate, params_.burst}),
      connected_(ex) {
  connected_.expires_at(steady_timer::time_point::max());
}

void shared_limits::close() noexcept {
  closed_ = true;
  conn_.close();
  connected_.cancel();
  token_.cancel();
  for (auto& [account, bucket] : accounts_) bucket->cancel();
}

bool shared_limits::would_wait(const std::string& account) const {
  if (closed_ || degraded_ || params_.account_rate <= 0) return false;
  const auto it = accounts_.find(account);
  return it != accounts_.end() && it->second->would_wait();
}

void shared_limits::degrade(const std::string& why) {
  if (!degraded_) {
    spdlog::warn("shared rate limits: Redis at {}:{} unreachable ({}); each instance keeps to its own limits until it is back",
                 params_.redis.host, params_.redis.port, why);
  }
  degraded_ = true;
}

// Connected, or a connection attempt made now (at most once a second) succeeded;
// takers arriving during an attempt wait for it.
net::awaitable<bool> shared_limits::ensure_connected() {
  while (!closed_ && !conn_.connected()) {
    if (connecting_) {
      co_await connected_.async_wait(use_tuple);
      continue;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now < next_connect_) co_return false;
    next_connect_ = now + std::chrono::seconds(1);
    connecting_ = true;
    const auto ec = co_await conn_.connect(params_.redis.host, params_.redis.port, params_.connect_timeout);
    connecting_ = false;
    connected_.cancel();
    connected_.expires_at(steady_timer::time_point::max());
    if (ec) {
      degrade(conn_.last_error().empty() ? ec.message() : conn_.last_error());
      co_return false;
    }
    if (degraded_) spdlog::info("shared rate limits: Redis at {}:{} is back", params_.redis.host, params_.redis.port);
    degraded_ = false;
  }
  co_return !closed_;
}

net::awaitable<void> shared_limits::take(std::string account) {
  if (closed_) co_return;
  if (!co_await ensure_connected()) {
    if (!closed_) ++unshared_;
    co_return;
  }
  if (params_.rate > 0) {
    if (auto ec = co_await token_.take()) {
      if (!closed_) {
        degrade(limiter_.last_error().empty() ? ec.message() : limiter_.last_error());
        ++unshared_;
      }
      co_return;
    }
  }
  if (params_.account_rate > 0 && !closed_) {
    auto& bucket = accounts_[account];
    if (!bucket)
      bucket = std::make_unique<shared_bucket>(
          limiter_, connected_.get_executor(),
          shared_bucket_params{account, params_.account_rate, params_.account_burst});
    if (auto ec = co_await bucket->take()) {
      if (!closed_) {
        degrade(limiter_.last_error().empty() ? ec.message() : limiter_.last_error());
        ++unshared_;
      }
    }
  }
}

}  // namespace orgpatch
