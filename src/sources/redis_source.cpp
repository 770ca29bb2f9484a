#include "orgpatch/sources/redis_source.hpp"

#include "orgpatch/asio.hpp"
#include "orgpatch/config.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/json/object.hpp>
#include <boost/unordered/unordered_flat_set.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <deque>
#include <fstream>
#include <stdexcept>
#include <unordered_set>

namespace orgpatch {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t k_submit_batch = 1000;  // XADDs per round trip

/// Entry ids ("<ms>-<seq>") held by this process, packed into 16 bytes in a
/// flat set: nothing allocated per entry (one is added and removed per job).
class id_set {
 public:
  bool contains(std::string_view id) const {
    const auto k = pack(id);
    return k ? packed_.contains(*k) : other_.count(std::string(id)) > 0;
  }
  bool insert(std::string_view id) {
    const auto k = pack(id);
    return k ? packed_.insert(*k).second : other_.insert(std::string(id)).second;
  }
  void erase(std::string_view id) {
    if (const auto k = pack(id)) packed_.erase(*k);
    else other_.erase(std::string(id));
  }
  std::size_t size() const noexcept { return packed_.size() + other_.size(); }
  bool empty() const noexcept { return size() == 0; }
  std::vector<std::string> ids() const {
    std::vector<std::string> out(other_.begin(), other_.end());
    out.reserve(size());
    for (const auto& [ms, seq] : packed_) out.push_back(fmt::format("{}-{}", ms, seq));
    return out;
  }

 private:
  using key = std::pair<std::uint64_t, std::uint64_t>;
  static std::optional<key> pack(std::string_view id) {
    const auto dash = id.find('-');
    if (dash == std::string_view::npos) return std::nullopt;
    key k;
    const char* end = id.data() + id.size();
    auto [p1, e1] = std::from_chars(id.data(), id.data() + dash, k.first);
    auto [p2, e2] = std::from_chars(id.data() + dash + 1, end, k.second);
    if (e1 != std::errc{} || p1 != id.data() + dash || e2 != std::errc{} || p2 != end) return std::nullopt;
    // Only the canonical spelling packs (no leading zeros), so unpacking gives the id back.
    if ((dash > 1 && id[0] == '0') || (id.size() - dash > 2 && id[dash + 1] == '0')) return std::nullopt;
    return k;
  }
  boost::unordered_flat_set<key> packed_;
  std::unordered_set<std::string> other_;  // any other spelling (not made by Redis)
};

}  // namespace

redis_source_params redis_source_params_from(const config& cfg) {
  redis_source_params p;
  if (!cfg.serve.redis.url) throw std::invalid_argument("serve.redis.url: not set");
  try {
    p.redis = parse_redis_url(*cfg.serve.redis.url);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(fmt::format("serve.redis.url: {}", e.what()));
  }
  p.stream.stream = cfg.serve.redis.stream;
  p.stream.group = cfg.serve.redis.group;
  p.stream.consumer = cfg.serve.redis.consumer.value_or("");
  p.stream.dead_letter_stream = cfg.serve.redis.dead_letter_stream;
  p.max_deliveries = cfg.serve.redis.max_deliveries;
  p.claim_idle = std::chrono::milliseconds(cfg.serve.redis.claim_idle_ms);
  p.results_stream = cfg.serve.redis.results_stream.value_or("");
  p.parse = job_parse_options{cfg.api.default_integrated_account_id, &cfg.api.default_query};
  p.max_job_bytes = cfg.input.max_line_bytes;
  return p;
}

struct redis_source::impl : std::enable_shared_from_this<impl> {
  impl(net::any_io_executor executor, redis_source_params params)
      : ex(executor),
        p(std::move(params)),
        default_query(p.parse.default_query ? *p.parse.default_query : boost::json::object{}),
        reader(ex),
        commands(ex),
        stream(reader, commands, p.stream),
        room(ex),
        kick(ex),
        backoff_timer(ex),
        shutdown_timer(ex) {
    p.parse.default_query = &default_query;
    name = fmt::format("redis://{}:{} {}", p.redis.host, p.redis.port, p.stream.stream);
  }

  net::any_io_executor ex;
  redis_source_params p;
  boost::json::object default_query;  // p.parse points here
  redis_connection reader;
  redis_connection commands;
  redis_stream stream;
  std::string name;
  net::steady_timer room;           // the reader parks here while the buffer is full
  net::steady_timer kick;           // the housekeeper parks here
  net::steady_timer backoff_timer;  // between connection attempts
  net::steady_timer shutdown_timer;
  std::deque<stream_entry> buffer;         // read, not yet taken by the engine (parsed when taken)
  id_set held;                             // delivered to this process, not acknowledged
  std::vector<finished_entry> to_ack;
  std::deque<stream_entry> to_dead;        // delivered too often: for the dead-letter stream
  std::function<void()> wake;
  std::function<void()> on_closed;
  redis_source_stats stats;
  std::uint64_t seq = 0;
  unsigned generation = 0;  // one per connection made
  unsigned running = 0;     // coroutines still running
  bool ready = false;
  bool ever_ready = false;
  bool recover = false;
  bool outage_logged = false;
  bool stopping = false;
  clock::time_point next_touch{};
  clock::time_point next_claim{};
  std::string claim_cursor = "0-0";

  // --- the engine's side ------------------------------------------------------

  void woken() {
    if (auto w = std::exchange(wake, {})) net::post(ex, std::move(w));
  }

  source_item to_item(const stream_entry& e) {
    source_item it;
    it.line = ++seq;
    it.entry_id = e.id;
    const std::string* text = e.job();
    if (!text) {
      it.key = e.id;
      it.parsed = input_error{"job", "the stream entry has no field \"job\""};
      return it;
    }
    if (text->size() > p.max_job_bytes) {
      it.key = e.id;
      it.parsed = input_error{"", fmt::format("the job is {} bytes, over input.max_line_bytes ({})", text->size(),
                                              p.max_job_bytes)};
      return it;
    }
    auto parsed = parse_job(*text, it.line, p.parse);
    if (auto* j = std::get_if<job>(&parsed)) {
      if (!j->key_given) j->key = e.id;
      it.key = j->key;
    } else {
      it.key = find_job_key(*text).value_or(e.id);
      it.source = *text;
    }
    it.parsed = std::move(parsed);
    return it;
  }

  // An entry delivered to this process: to the engine, or to the dead-letter
  // stream when delivered too often.
  void admit(stream_entry e) {
    if (held.contains(e.id)) return;  // already ours (in the engine, or waiting for the dead-letter stream)
    held.insert(e.id);
    if (e.deliveries > p.max_deliveries) {
      to_dead.push_back(std::move(e));
      kick.cancel();
      return;
    }
    buffer.push_back(std::move(e));
    woken();
  }

  // --- connections --------------------------------------------------------------

  void lost(unsigned gen, const std::string& why) {
    if (gen != generation || !ready) return;
    ready = false;
    spdlog::warn("{}: connection lost ({}); reconnecting", name, why);
    reader.close();
    commands.close();
    room.cancel();
    kick.cancel();
  }

  // A failed step: a Redis error reply (a wrong type, out of memory…) is said
  // and tried again a second later on the same connection; anything else means
  // the connection is gone.
  net::awaitable<void> trouble(unsigned gen, boost::system::error_code ec) {
    if (ec != redis_errc::unexpected_reply) {
      lost(gen, stream.last_error());
      co_return;
    }
    const auto now = clock::now();
    if (now >= next_error_log) {
      spdlog::error("{}: {}; trying again", name, stream.last_error());
      next_error_log = now + 60s;
    }
    kick.expires_after(1s);
    co_await kick.async_wait(use_tuple);
  }

  net::awaitable<bool> connect_all() {
    reader.close();
    commands.close();
    std::string why;
    if (auto ec = co_await reader.connect(p.redis.host, p.redis.port, p.connect_timeout)) {
      why = reader.last_error().empty() ? ec.message() : reader.last_error();
    } else if (auto ec2 = co_await commands.connect(p.redis.host, p.redis.port, p.connect_timeout)) {
      why = commands.last_error().empty() ? ec2.message() : commands.last_error();
    } else if (co_await stream.ensure_group()) {
      why = stream.last_error();
    }
    if (stopping) co_return false;
    if (!why.empty()) {
      if (!outage_logged) spdlog::warn("{}: cannot connect: {}; retrying with backoff", name, why);
      outage_logged = true;
      reader.close();
      commands.close();
      co_return false;
    }
    if (outage_logged || ever_ready) spdlog::info("{}: connected again", name);
    if (ever_ready) ++stats.reconnects;
    // Entries delivered to this consumer whose reply was lost come back from
    // its pending list (those still held are skipped).
    recover = ever_ready;
    ever_ready = true;
    outage_logged = false;
    ready = true;
    ++generation;
    kick.cancel();
    co_return true;
  }

  // --- the two loops ------------------------------------------------------------

  net::awaitable<void> read_loop() {
    auto backoff = 100ms;
    while (!stopping) {
      if (!ready) {
        if (co_await connect_all()) {
          backoff = 100ms;
        } else if (!stopping) {
          backoff_timer.expires_after(backoff);
          co_await backoff_timer.async_wait(use_tuple);
          backoff = std::min<std::chrono::milliseconds>(backoff * 2, 5s);
        }
        continue;
      }
      if (buffer.size() >= p.read_count || paused) {
        // The engine has enough (or there is no engine): wait until it takes some (next() wakes us).
        room.expires_at(net::steady_timer::time_point::max());
        co_await room.async_wait(use_tuple);
        continue;
      }
      const unsigned gen = generation;
      auto r = co_await stream.read(p.read_count, p.block);
      if (stopping) break;
      if (!r) {
        co_await trouble(gen, r.error());
        continue;
      }
      stats.read += r->size();
      for (auto& e : *r) admit(std::move(e));
    }
  }

  net::awaitable<void> housekeeping_loop() {
    for (;;) {
      if (stopping && (to_ack.empty() || abandon_acks)) break;
      if (!ready && !stopping) {
        kick.expires_after(1s);
        co_await kick.async_wait(use_tuple);
        continue;
      }
      if (!ready && !commands.connected()) {
        // Stopping with acknowledgements left and the reader gone: the commands
        // connection alone is made again for them (until shutdown's time is up).
        const auto ec = co_await commands.connect(p.redis.host, p.redis.port, p.connect_timeout);
        if (ec) {
          kick.expires_after(200ms);
          co_await kick.async_wait(use_tuple);
        }
        continue;
      }
      const unsigned gen = generation;
      const auto now = clock::now();
      if (recover && !paused && !stopping) {
        recover = false;
        co_await recover_own(gen);
        continue;
      }
      if (!to_ack.empty() && !stopping && to_ack.size() < k_ack_batch && now < first_ack + k_ack_delay) {
        // Gather a few milliseconds of acknowledgements into one round trip:
        // under load that is hundreds of entries per XACK instead of a handful.
        gathering = true;
        kick.expires_at(first_ack + k_ack_delay);
        co_await kick.async_wait(use_tuple);
        gathering = false;
        continue;
      }
      if (!to_ack.empty()) {
        // One round trip: the result lines (when published) and the XACK.
        std::vector<std::string> lines, ids;
        const bool publish = !p.results_stream.empty();
        for (const auto& f : to_ack) {
          ids.push_back(f.entry_id);
          if (publish) lines.push_back(f.result_line);
        }
        const std::size_t n = to_ack.size();
        auto r = co_await stream.publish_and_ack(p.results_stream, std::move(lines), ids);
        if (abandon_acks) break;  // shutdown's time ran out meanwhile: to_ack is no longer ours to touch
        if (!r) {
          if (!ready) commands.close();  // stopping: made again above
          co_await trouble(gen, r.error());
          continue;
        }
        if (stream.publish_failures() > publish_failures_logged) {
          publish_failures_logged = stream.publish_failures();
          spdlog::error("{}: {} result line(s) not added to {} so far: {}", name, publish_failures_logged,
                        p.results_stream, stream.last_error());
        }
        to_ack.erase(to_ack.begin(), to_ack.begin() + static_cast<std::ptrdiff_t>(std::min(n, to_ack.size())));
        first_ack = clock::now();
        for (const auto& id : ids) held.erase(id);
        stats.acked += ids.size();
        continue;
      }
      if (stopping) continue;
      if (!to_dead.empty()) {
        stream_entry e = to_dead.front();
        const auto deliveries = e.deliveries;
        auto r = co_await stream.dead_letter(
            e, fmt::format("delivered {} times (serve.redis.max_deliveries is {})", deliveries, p.max_deliveries));
        if (!r) {
          co_await trouble(gen, r.error());
          continue;
        }
        to_dead.pop_front();
        held.erase(e.id);
        ++stats.dead_lettered;
        spdlog::warn("{}: entry {} delivered {} times: moved to {} as {}", name, e.id, deliveries,
                     p.stream.dead_letter_stream, *r);
        continue;
      }
      if (now >= next_touch && !held.empty()) {
        // Keep what this process works on from looking abandoned.
        next_touch = now + p.claim_idle / 3;
        co_await touch_held(gen);
        continue;
      }
      if (now >= next_claim && buffer.size() < p.read_count && !paused) {
        auto r = co_await stream.claim_idle(p.claim_idle, p.read_count, claim_cursor);
        if (!r) {
          co_await trouble(gen, r.error());
          continue;
        }
        claim_cursor = r->next;
        std::size_t taken = 0;
        for (auto& e : r->entries) {
          if (held.contains(e.id)) continue;
          ++taken;
          spdlog::info("{}: took over entry {} (delivery {})", name, e.id, e.deliveries);
          admit(std::move(e));
        }
        stats.claimed += taken;
        // A scan that is not complete goes on at once; otherwise again later.
        next_claim = claim_cursor != "0-0" ? now : now + p.claim_idle / 2;
        continue;
      }
      if (now >= next_forget) {
        // Names of instances long gone (a consumer per process) do not pile up.
        next_forget = now + k_forget_every;
        auto r = co_await stream.forget_idle_consumers(k_forget_idle);
        if (!r) {
          co_await trouble(gen, r.error());
          continue;
        }
        if (*r > 0) spdlog::info("{}: removed {} consumer(s) idle for an hour with nothing pending", name, *r);
        continue;
      }
      // Sleep until the next touch or scan is due, or an acknowledgement comes.
      auto until = now + 1s;
      if (!held.empty()) until = std::min(until, next_touch);
      if (buffer.size() < p.read_count && !paused) until = std::min(until, next_claim);
      kick.expires_at(until);
      co_await kick.async_wait(use_tuple);
    }
  }

  // Resets the idle time of every held entry still ours; forgets those another
  // instance took over meanwhile (this one looked dead to it).
  net::awaitable<void> touch_held(unsigned gen) {
    const std::vector<std::string> ids = held.ids();
    for (std::size_t i = 0; i < ids.size(); i += k_touch_batch) {
      std::vector<std::string> part(ids.begin() + static_cast<std::ptrdiff_t>(i),
                                    ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), i + k_touch_batch)));
      auto r = co_await stream.touch(part);
      if (!r) {
        co_await trouble(gen, r.error());
        co_return;
      }
      if (r->size() == part.size()) continue;
      id_set kept;
      for (const auto& id : *r) kept.insert(id);
      for (const auto& id : part)
        if (!kept.contains(id)) held.erase(id);
    }
  }

  net::awaitable<void> recover_own(unsigned gen) {
    std::string after = "0";
    for (;;) {
      auto r = co_await stream.read_own_pending(p.read_count, after);
      if (!r) {
        recover = true;  // again, once connected or the error has passed
        co_await trouble(gen, r.error());
        co_return;
      }
      if (r->empty()) co_return;
      for (auto& e : *r) {
        after = e.id;
        if (held.contains(e.id)) continue;
        if (e.fields.empty()) {
          // Deleted from the stream meanwhile: nothing to run; drop it from the pending list.
          to_ack.push_back(finished_entry{e.id, {}});
          continue;
        }
        ++stats.recovered;
        admit(std::move(e));
      }
    }
  }

  void spawn(net::awaitable<void> (impl::*loop)()) {
    ++running;
    net::co_spawn(ex, (this->*loop)(), [self = shared_from_this()](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          spdlog::error("{}: internal error: {}", self->name, ex.what());
        }
      }
      if (--self->running == 0) self->closed();
    });
  }

  void closed() {
    reader.close();
    commands.close();
    shutdown_timer.cancel();
    if (auto f = std::exchange(on_closed, {})) net::post(ex, std::move(f));
  }

  static constexpr std::size_t k_touch_batch = 1000;
  static constexpr auto k_forget_every = std::chrono::minutes(10);
  static constexpr auto k_forget_idle = std::chrono::hours(1);
  clock::time_point next_forget = clock::now() + std::chrono::seconds(30);
  clock::time_point next_error_log{};
  std::uint64_t publish_failures_logged = 0;
  bool paused = false;        // no engine to feed (a failed run waits to start again)
  bool abandon_acks = false;  // shutdown's time ran out
  static constexpr std::size_t k_ack_batch = 1024; // acknowledgements sent at once without waiting
  static constexpr auto k_ack_delay = 10ms;        // the longest one waits for others to join it
  clock::time_point first_ack{};                   // when the oldest waiting one was handed over
  bool gathering = false;  // the housekeeper waits for more acknowledgements to join (no need to wake it)
};

redis_source::redis_source(net::any_io_executor ex, redis_source_params params)
    : impl_(std::make_shared<impl>(ex, std::move(params))) {}

redis_source::~redis_source() {
  // Whatever still runs ends at its next step; the coroutines keep impl alive.
  impl_->stopping = true;
  impl_->on_closed = {};
  impl_->wake = {};
  impl_->reader.close();
  impl_->commands.close();
  impl_->room.cancel();
  impl_->kick.cancel();
  impl_->backoff_timer.cancel();
}

void redis_source::start() {
  impl_->spawn(&impl::read_loop);
  impl_->spawn(&impl::housekeeping_loop);
}

void redis_source::shutdown(std::chrono::milliseconds timeout, std::function<void()> on_closed) {
  auto& d = *impl_;
  d.on_closed = std::move(on_closed);
  if (d.running == 0) {
    d.closed();
    return;
  }
  d.stopping = true;
  // A blocking read in progress ends now; what it may still deliver stays
  // pending for this consumer and is taken over by another instance.
  d.reader.close();
  d.room.cancel();
  d.kick.cancel();
  d.backoff_timer.cancel();
  d.shutdown_timer.expires_after(timeout);
  d.shutdown_timer.async_wait([self = impl_](boost::system::error_code ec) {
    if (ec) return;
    if (!self->to_ack.empty())
      spdlog::warn("{}: {} acknowledgement(s) not sent (Redis unreachable); those entries will run again elsewhere",
                   self->name, self->to_ack.size());
    // The housekeeper drops them itself (it may be awaiting a reply that uses them).
    self->abandon_acks = true;
    self->ready = false;
    self->commands.close();
    self->kick.cancel();
  });
}

const std::string& redis_source::consumer() const noexcept { return impl_->stream.params().consumer; }
const std::string& redis_source::name() const noexcept { return impl_->name; }
const std::string& redis_source::stream_name() const noexcept { return impl_->p.stream.stream; }
bool redis_source::ready() const noexcept { return impl_->ready; }
std::size_t redis_source::held() const noexcept { return impl_->held.size(); }
const redis_source_stats& redis_source::stats() const noexcept { return impl_->stats; }

std::optional<source_item> redis_source::next() {
  auto& d = *impl_;
  if (d.buffer.empty()) return std::nullopt;
  // Parsed here, at the engine's pace, not all of a read's entries at once.
  source_item it = d.to_item(d.buffer.front());
  d.buffer.pop_front();
  if (d.buffer.size() <= d.p.read_count / 2) d.room.cancel();
  return it;
}

void redis_source::release_unfinished(bool keep_reading) {
  auto& d = *impl_;
  id_set keep;
  for (const auto& f : d.to_ack) keep.insert(f.entry_id);
  for (const auto& e : d.to_dead) keep.insert(e.id);
  if (keep_reading) {
    for (const auto& e : d.buffer) keep.insert(e.id);
    // Read back at once from this consumer's pending list, for the next run.
    d.recover = true;
  } else {
    // Nobody here to run them for a while: no longer kept fresh, they are
    // taken over by another instance once idle (or read back by resume()).
    d.buffer.clear();
    d.paused = true;
    spdlog::info("{}: {} unfinished entr(y/ies) released; reading paused", d.name, d.held.size() - keep.size());
  }
  d.held = std::move(keep);
  d.kick.cancel();
}

void redis_source::resume() {
  auto& d = *impl_;
  if (!d.paused) return;
  d.paused = false;
  d.recover = true;  // what is still pending for this consumer first
  d.room.cancel();
  d.kick.cancel();
}

void redis_source::wait_readable(std::function<void()> wake) {
  impl_->wake = std::move(wake);
  if (!impl_->buffer.empty()) impl_->woken();
}

void redis_source::cancel_wait() { impl_->woken(); }

std::variant<job, input_error> redis_source::reread(std::uint64_t, std::uint64_t) const {
  throw std::logic_error("a Redis stream's jobs cannot be read again by offset");
}

bool redis_source::publishes_results() const noexcept { return !impl_->p.results_stream.empty(); }

void redis_source::acknowledge(std::vector<finished_entry> entries) {
  auto& d = *impl_;
  if (entries.empty()) return;
  if (d.to_ack.empty()) d.first_ack = clock::now();
  if (d.to_ack.empty()) d.to_ack = std::move(entries);
  else d.to_ack.insert(d.to_ack.end(), std::make_move_iterator(entries.begin()), std::make_move_iterator(entries.end()));
  // Waking the housekeeper every turn would re-arm its timer every turn (a
  // timerfd_settime each): while it gathers, it is woken only for a full batch.
  if (!d.gathering || d.to_ack.size() >= impl::k_ack_batch) d.kick.cancel();
}

std::string redis_source::where(std::uint64_t, const std::string& entry_id) const {
  return fmt::format("{} entry {}", impl_->name, entry_id);
}

// --- submit ----------------------------------------------------------------------

std::uint64_t submit_to_stream(const config& cfg, const std::string& file, std::FILE* errors) {
  redis_source_params p;
  try {
    p = redis_source_params_from(cfg);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(e.what());
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open", file));
  // Every line checked before anything is added: a file goes on whole or not at all.
  std::vector<std::string> jobs;
  std::string line;
  std::uint64_t line_no = 0, broken = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_no == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::string why;
    if (line.size() > p.max_job_bytes) why = fmt::format("longer than input.max_line_bytes ({})", p.max_job_bytes);
    else if (auto parsed = parse_job(line, line_no, p.parse); auto* err = std::get_if<input_error>(&parsed))
      why = err->to_string();
    if (!why.empty()) {
      ++broken;
      if (errors) std::fprintf(errors, "%s:%llu: %s\n", file.c_str(), static_cast<unsigned long long>(line_no), why.c_str());
      continue;
    }
    jobs.push_back(std::move(line));
  }
  if (in.bad()) throw std::runtime_error(fmt::format("{}: cannot read", file));
  if (broken > 0)
    throw std::invalid_argument(
        fmt::format("{}: {} broken line(s); nothing was added to {}", file, broken, p.stream.stream));

  net::io_context io{1};
  redis_connection conn(io.get_executor());
  redis_stream stream(conn, conn, p.stream);
  std::uint64_t added = 0;
  std::string failure;
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        if (auto ec = co_await conn.connect(p.redis.host, p.redis.port, p.connect_timeout)) {
          failure = fmt::format("redis://{}:{}: {}", p.redis.host, p.redis.port,
                                conn.last_error().empty() ? ec.message() : conn.last_error());
          co_return;
        }
        for (std::size_t i = 0; i < jobs.size(); i += k_submit_batch) {
          const auto end = std::min(jobs.size(), i + k_submit_batch);
          std::vector<std::string> part(std::make_move_iterator(jobs.begin() + static_cast<std::ptrdiff_t>(i)),
                                        std::make_move_iterator(jobs.begin() + static_cast<std::ptrdiff_t>(end)));
          auto r = co_await stream.add(std::move(part));
          if (!r) {
            failure = stream.last_error();
            co_return;
          }
          added += r->size();
        }
      },
      [&](std::exception_ptr e) {
        if (e) {
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex) {
            failure = ex.what();
          }
        }
        conn.close();
      });
  io.run();
  if (!failure.empty())
    throw std::runtime_error(fmt::format("{}: {} of {} job(s) added before: {}", file, added, jobs.size(), failure));
  return added;
}

}  // namespace orgpatch
