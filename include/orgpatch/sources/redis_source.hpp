/// The Redis stream as the engine's source (DESIGN.md §6): jobs read through
/// the consumer group, acknowledged once their lines are written, entries of
/// dead consumers taken over, poison entries moved to the dead-letter stream,
/// and `orgpatchd submit` onto the stream.
///
/// - Each entry's field `job` is one job line. Its key is the entry id unless
///   the job has its own `key`; the engine derives its idempotency key from the
///   stream's name and that key, so whichever host takes the entry over sends
///   the same one.
/// - Reads block on a connection of their own; acknowledgements (with the result
///   lines when `results_stream` is set), take-overs and dead letters go over a
///   second one, pipelined.
/// - Entries this process holds are kept from looking idle (XCLAIM JUSTID every
///   third of `claim_idle`), so that only entries of dead (or stuck) consumers
///   are taken over, with XAUTOCLAIM once idle for `claim_idle`.
/// - An entry delivered more than `max_deliveries` times is moved to the
///   dead-letter stream with the reason, and never reaches the engine.
/// - Redis going away: both connections are made again with backoff (0.1 s
///   doubling to 5 s); acknowledgements wait and are sent then (XACK is
///   idempotent, so none is lost or applied twice); entries delivered to this
///   consumer whose reply was lost are read back from its pending list.
///
/// Not thread-safe: everything runs on one io_context thread (the engine's).
/// Destroy it only after shutdown() has called back, and before the io_context.
#pragma once

#include "orgpatch/job.hpp"
#include "orgpatch/redis.hpp"
#include "orgpatch/sources/job_source.hpp"
#include "orgpatch/sources/redis_stream.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace orgpatch {

struct config;

/// Where and how to read (a plain aggregate beside the class).
struct redis_source_params {
  redis_endpoint redis;
  redis_stream_params stream;  ///< stream, group, consumer, dead-letter stream, command timeout
  unsigned max_deliveries = 5;
  std::chrono::milliseconds claim_idle{10000};
  std::string results_stream;  ///< "": result lines are not published
  job_parse_options parse;     ///< the api.* defaults applied to each job
  std::size_t max_job_bytes = std::size_t{1} << 20;  ///< input.max_line_bytes
  unsigned read_count = 128;   ///< entries per XREADGROUP (and most held unread)
  std::chrono::milliseconds block{1000};             ///< XREADGROUP BLOCK
  std::chrono::milliseconds connect_timeout{2000};
};

/// The params of `serve.redis.*`, `api.*` and `input.*`. Throws
/// std::invalid_argument for a bad `serve.redis.url`.
redis_source_params redis_source_params_from(const config& cfg);

/// Counters, for STATUS= and tests.
struct redis_source_stats {
  std::uint64_t read = 0;           ///< entries delivered by XREADGROUP >
  std::uint64_t claimed = 0;        ///< entries taken over from other consumers
  std::uint64_t recovered = 0;      ///< own pending entries read back after a reconnection
  std::uint64_t acked = 0;          ///< entries acknowledged
  std::uint64_t dead_lettered = 0;  ///< entries moved to the dead-letter stream
  std::uint64_t reconnects = 0;     ///< connections made again after a loss
};

class redis_source final : public job_source {
 public:
  redis_source(boost::asio::any_io_executor ex, redis_source_params params);
  ~redis_source() override;
  redis_source(const redis_source&) = delete;
  redis_source& operator=(const redis_source&) = delete;

  /// Starts connecting and reading. Call once.
  void start();

  /// Stops reading; the acknowledgements handed over so far are still sent
  /// (for up to `timeout` if Redis is away); then closes the connections and
  /// calls `on_closed` on the io_context. Entries held but not finished stay
  /// pending for this consumer: another instance takes them over once idle.
  void shutdown(std::chrono::milliseconds timeout, std::function<void()> on_closed);

  /// The engine that took entries from this source ended without finishing
  /// them all. `keep_reading` (a restart for a new config): they are read back
  /// at once from this consumer's pending list for the next engine. Otherwise
  /// (a failed run that starts again later): reading pauses, the unread buffer
  /// is dropped and nothing but acknowledgements is kept fresh, so another
  /// instance takes the entries over once idle; resume() reads back whatever is
  /// still pending for this consumer.
  void release_unfinished(bool keep_reading);

  /// After release_unfinished(false): reading goes on, this consumer's pending
  /// entries first.
  void resume();

  /// The consumer name in use.
  const std::string& consumer() const noexcept;
  /// The stream's name (serve.redis.stream as opened).
  const std::string& stream_name() const noexcept;
  /// "redis://HOST:PORT STREAM", for messages and the results header.
  const std::string& name() const noexcept;
  /// True while both connections are up and the group exists.
  bool ready() const noexcept;
  /// Entries delivered to this process and not acknowledged yet.
  std::size_t held() const noexcept;
  const redis_source_stats& stats() const noexcept;

  // job_source
  std::optional<source_item> next() override;
  bool ended() const noexcept override { return false; }
  void wait_readable(std::function<void()> wake) override;
  void cancel_wait() override;
  bool seekable() const noexcept override { return false; }
  std::variant<job, input_error> reread(std::uint64_t offset, std::uint64_t line) const override;
  bool acknowledges() const noexcept override { return true; }
  bool publishes_results() const noexcept override;
  void acknowledge(std::vector<finished_entry> entries) override;
  std::string where(std::uint64_t line, const std::string& entry_id) const override;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

/// `orgpatchd submit FILE` with `serve.redis.url`: checks every line of `file`
/// first (as `validate` does) and adds nothing when one is broken (each is
/// reported as FILE:LINE: message on `errors`, then std::invalid_argument with
/// the count); then XADDs one entry per non-blank line, pipelined in batches.
/// Returns how many were added. On a Redis failure part way, throws saying how
/// many were added before it (std::runtime_error, as for an unreadable file or
/// a bad `serve.redis.url`).
std::uint64_t submit_to_stream(const config& cfg, const std::string& file, std::FILE* errors);

}  // namespace orgpatch
