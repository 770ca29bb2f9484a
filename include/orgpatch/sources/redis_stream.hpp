/// Consumer-group primitives on a Redis stream of jobs (DESIGN.md §6): one
/// entry per job in field `job`; a consumer group created at id 0 with MKSTREAM
/// (so jobs added before it are read); blocking reads on their own connection;
/// XACK once a job's result is durable; XAUTOCLAIM of entries left pending by
/// dead consumers, with their delivery counts; a dead-letter stream.
///
/// These are building blocks: the source that feeds the engine (reconnection
/// with backoff, max_deliveries, when to ack) is built on them.
///
/// Not thread-safe: everything runs on the connections' io_context thread.
/// The connections are not owned and must outlive the object and its pending
/// calls. A cancelled call fails with `operation_aborted` and (see
/// redis_connection::command) closes the connection it was waiting on.
#pragma once

#include "orgpatch/redis.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace orgpatch {

/// One stream entry.
struct stream_entry {
  std::string id;  ///< e.g. "1700000000000-0"
  std::vector<std::pair<std::string, std::string>> fields;
  /// How many times the group has delivered it, this delivery included
  /// (1 for a first read; from XPENDING after a claim; 0 when unknown).
  std::uint64_t deliveries = 0;

  /// The value of field `name`, or nullptr.
  const std::string* field(std::string_view name) const noexcept;
  /// The job (field `job`), or nullptr when the entry has none.
  const std::string* job() const noexcept { return field("job"); }
};

/// What a claim took over.
struct claim_result {
  std::vector<stream_entry> entries;  ///< now pending for this consumer, with delivery counts
  std::string next;                   ///< where the next XAUTOCLAIM scan starts ("0-0": scan complete)
  std::vector<std::string> deleted;   ///< pending ids whose entries were deleted (removed from the PEL)
};

/// Where the stream is and who reads it (a plain aggregate beside the class).
struct redis_stream_params {
  std::string stream = "orgpatch:jobs";
  std::string group = "orgpatchd";
  std::string consumer;  ///< empty: default_consumer_name()
  std::string dead_letter_stream = "orgpatch:dead";
  /// The time every non-blocking command may take (and what a blocking read may
  /// take beyond its block time) before the connection is given up.
  std::chrono::milliseconds command_timeout{5000};
};

/// The host name + "-" + the process id (unique per live process, so a
/// restarted instance never takes over a dead one's name by accident).
std::string default_consumer_name();

/// A stream read through a consumer group.
class redis_stream {
 public:
  /// `reader` carries only the blocking reads (one at a time); `commands`
  /// everything else, pipelined (it may be shared, e.g. with the limiter).
  redis_stream(redis_connection& reader, redis_connection& commands, redis_stream_params params);

  const redis_stream_params& params() const noexcept { return params_; }
  /// The last error's description (what failed and Redis's words), or "".
  const std::string& last_error() const noexcept { return last_error_; }

  /// XGROUP CREATE stream group 0 MKSTREAM; an existing group (BUSYGROUP) is fine.
  boost::asio::awaitable<boost::system::error_code> ensure_group();

  /// XREADGROUP GROUP g consumer COUNT n BLOCK ms STREAMS s >, on the reader
  /// connection: up to `count` entries never delivered before (deliveries 1),
  /// or none after `block` (0 blocks forever: avoid, the timeout then applies).
  boost::asio::awaitable<boost::system::result<std::vector<stream_entry>>> read(unsigned count,
                                                                                std::chrono::milliseconds block);

  /// This consumer's own pending entries after id `after` ("0": from the
  /// start), up to `count`, with their delivery counts, which this does not
  /// raise (XPENDING … consumer, then XRANGE per entry, pipelined): what a
  /// reconnected consumer re-takes. Entries deleted from the stream meanwhile
  /// come back with no fields.
  boost::asio::awaitable<boost::system::result<std::vector<stream_entry>>> read_own_pending(unsigned count,
                                                                                            std::string after = "0");

  /// XACK of `ids`: how many were pending.
  boost::asio::awaitable<boost::system::result<std::uint64_t>> ack(std::vector<std::string> ids);

  /// Publishes result lines (XADD `results_stream` * result <line> each) and
  /// acknowledges `ids`, all in one round trip; the XADDs come first, so a
  /// line is never lost for an entry that is acknowledged. Gives how many ids
  /// were pending. With an empty `results_stream`, only the XACK.
  boost::asio::awaitable<boost::system::result<std::uint64_t>> publish_and_ack(std::string results_stream,
                                                                               std::vector<std::string> lines,
                                                                               std::vector<std::string> ids);

  /// Resets the idle time of entries this consumer is still working on (their
  /// delivery counts unchanged), so no other instance takes them over: one Lua
  /// script (k_touch_script) that XCLAIMs … JUSTID each id still pending *for
  /// this consumer* — one another instance took over meanwhile stays its. Gives
  /// the ids that are still this consumer's.
  boost::asio::awaitable<boost::system::result<std::vector<std::string>>> touch(std::vector<std::string> ids);

  /// Result lines refused by Redis so far (see publish_and_ack).
  std::uint64_t publish_failures() const noexcept { return publish_failures_; }

  /// The results stream is trimmed to about this many entries.
  static constexpr std::uint64_t k_results_stream_max = 1000000;

  /// XAUTOCLAIM s g consumer min-idle start COUNT n: takes over up to `count`
  /// entries pending for at least `min_idle` (whoever holds them), then gives
  /// their delivery counts (XPENDING per entry, pipelined; XAUTOCLAIM itself
  /// does not report them).
  boost::asio::awaitable<boost::system::result<claim_result>> claim_idle(std::chrono::milliseconds min_idle,
                                                                         unsigned count, std::string start = "0-0");

  /// Moves an entry to the dead-letter stream, atomically (MULTI; XADD dead *
  /// job … reason … id … deliveries … consumer …; XACK; EXEC). Gives the new
  /// entry's id.
  boost::asio::awaitable<boost::system::result<std::string>> dead_letter(stream_entry entry, std::string reason);

  /// XADD stream * job <job> for every job, pipelined (one round trip for all):
  /// their entry ids, in order.
  boost::asio::awaitable<boost::system::result<std::vector<std::string>>> add(std::vector<std::string> jobs);

  /// Removes the group's consumers that hold no pending entry and have been
  /// idle for at least `idle` (XINFO CONSUMERS, then XGROUP DELCONSUMER each):
  /// the names of instances long gone. A live consumer removed this way is made
  /// again by its next read. Gives how many were removed.
  boost::asio::awaitable<boost::system::result<std::uint64_t>> forget_idle_consumers(std::chrono::milliseconds idle);

  /// XPENDING s g: how many entries of the group are pending (delivered, not acked).
  boost::asio::awaitable<boost::system::result<std::uint64_t>> pending_count();

 private:
  boost::system::error_code fail(boost::system::error_code ec, std::string_view what);
  boost::system::error_code fail_reply(const redis_reply& reply, std::string_view what);
  boost::asio::awaitable<boost::system::result<std::vector<stream_entry>>> with_deliveries(
      std::vector<stream_entry> entries);

  redis_connection* reader_;
  redis_connection* commands_;
  redis_stream_params params_;
  std::string last_error_;
  std::uint64_t publish_failures_ = 0;
};

/// KEYS[1] the stream; ARGV group, consumer, ids…: XCLAIM … 0 id JUSTID for each
/// id still pending for that consumer (XPENDING says who holds it); returns them.
inline constexpr std::string_view k_touch_script = R"lua(
local kept = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    kept[#kept + 1] = ARGV[i]
  end
end
return kept
)lua";

}  // namespace orgpatch
