#include "orgpatch/sources/redis_stream.hpp"

#include "orgpatch/asio.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <climits>
#include <cstdio>

namespace orgpatch {

using boost::system::error_code;
using boost::system::result;

const std::string* stream_entry::field(std::string_view name) const noexcept {
  for (const auto& [k, v] : fields)
    if (k == name) return &v;
  return nullptr;
}

std::string default_consumer_name() {
  char host[HOST_NAME_MAX + 1] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::snprintf(host, sizeof host, "localhost");
  return fmt::format("{}-{}", host, ::getpid());
}

namespace {

/// [id, [field, value, …]] (the fields nil for an entry deleted since).
// The reply's strings are moved out (an entry's job is its largest part).
bool parse_entry(redis_reply& r, stream_entry& out) {
  if (!r.is_array() || r.elements.size() != 2 || !r.elements[0].is_string()) return false;
  out.id = std::move(r.elements[0].str);
  auto& f = r.elements[1];
  if (f.is_nil()) return true;
  if (!f.is_array() || f.elements.size() % 2 != 0) return false;
  out.fields.reserve(f.elements.size() / 2);
  for (std::size_t i = 0; i + 1 < f.elements.size(); i += 2) {
    if (!f.elements[i].is_string() || !f.elements[i + 1].is_string()) return false;
    out.fields.emplace_back(std::move(f.elements[i].str), std::move(f.elements[i + 1].str));
  }
  return true;
}

bool parse_entries(redis_reply& r, std::vector<stream_entry>& out) {
  if (!r.is_array()) return false;
  out.reserve(out.size() + r.elements.size());
  for (auto& e : r.elements) {
    if (e.is_nil()) continue;  // Redis 6.2's XAUTOCLAIM: an entry deleted meanwhile
    stream_entry entry;
    if (!parse_entry(e, entry)) return false;
    out.push_back(std::move(entry));
  }
  return true;
}

/// An XREADGROUP reply: nil (nothing before the block time) or [[stream, entries]].
bool parse_read(redis_reply& r, std::vector<stream_entry>& out) {
  if (r.is_nil()) return true;
  if (!r.is_array()) return false;
  for (auto& s : r.elements) {
    if (!s.is_array() || s.elements.size() != 2) return false;
    if (!parse_entries(s.elements[1], out)) return false;
  }
  return true;
}

}  // namespace

redis_stream::redis_stream(redis_connection& reader, redis_connection& commands, redis_stream_params params)
    : reader_(&reader), commands_(&commands), params_(std::move(params)) {
  if (params_.consumer.empty()) params_.consumer = default_consumer_name();
}

error_code redis_stream::fail(error_code ec, std::string_view what) {
  last_error_ = fmt::format("Redis stream {}: {}: {}", params_.stream, what, ec.message());
  return ec;
}

error_code redis_stream::fail_reply(const redis_reply& reply, std::string_view what) {
  last_error_ = fmt::format("Redis stream {}: {}: {}", params_.stream, what,
                            reply.is_error() ? reply.str : "unexpected " + reply.describe());
  return redis_errc::unexpected_reply;
}

net::awaitable<error_code> redis_stream::ensure_group() {
  // (Every argv is built before its co_await: g++ 12 rejects a braced list of
  // literals inside the awaited expression, "array used as initializer".)
  std::vector<std::string> argv{"XGROUP", "CREATE", params_.stream, params_.group, "0", "MKSTREAM"};
  auto r = co_await commands_->command(std::move(argv), params_.command_timeout);
  if (!r) co_return fail(r.error(), "XGROUP CREATE");
  if (r->is_status() || r->is_error("BUSYGROUP")) co_return error_code{};
  co_return fail_reply(*r, "XGROUP CREATE");
}

net::awaitable<result<std::vector<stream_entry>>> redis_stream::read(unsigned count, std::chrono::milliseconds block) {
  // The reply may take the whole block time: the timeout comes on top of it.
  std::vector<std::string> argv{"XREADGROUP", "GROUP", params_.group, params_.consumer, "COUNT",
                                std::to_string(std::max(count, 1u)), "BLOCK", std::to_string(block.count()),
                                "STREAMS", params_.stream, ">"};
  auto r = co_await reader_->command(std::move(argv), block + params_.command_timeout);
  if (!r) co_return fail(r.error(), "XREADGROUP");
  std::vector<stream_entry> entries;
  if (!parse_read(*r, entries)) co_return fail_reply(*r, "XREADGROUP");
  for (auto& e : entries) e.deliveries = 1;
  co_return entries;
}

net::awaitable<result<std::vector<stream_entry>>> redis_stream::read_own_pending(unsigned count, std::string after) {
  // XPENDING lists them (XREADGROUP from id 0 would count one more delivery of
  // each), then XRANGE fetches each entry, all in one more round trip.
  std::vector<std::string> argv{"XPENDING", params_.stream, params_.group, after == "0" ? "-" : "(" + after, "+",
                                std::to_string(std::max(count, 1u)), params_.consumer};
  auto r = co_await commands_->command(std::move(argv), params_.command_timeout);
  if (!r) co_return fail(r.error(), "XPENDING (own pending)");
  if (!r->is_array()) co_return fail_reply(*r, "XPENDING (own pending)");
  std::vector<stream_entry> entries;
  std::vector<std::vector<std::string>> ranges;
  for (const auto& p : r->elements) {
    // [id, consumer, idle ms, deliveries]
    if (!p.is_array() || p.elements.size() != 4 || !p.elements[0].is_string() || !p.elements[3].is_integer())
      co_return fail_reply(*r, "XPENDING (own pending)");
    stream_entry e;
    e.id = p.elements[0].str;
    e.deliveries = static_cast<std::uint64_t>(p.elements[3].integer);
    ranges.push_back({"XRANGE", params_.stream, e.id, e.id});
    entries.push_back(std::move(e));
  }
  if (entries.empty()) co_return entries;
  auto replies = co_await commands_->pipeline(std::move(ranges), params_.command_timeout);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    auto& rr = replies[i];
    if (!rr) co_return fail(rr.error(), "XRANGE (own pending)");
    std::vector<stream_entry> found;
    if (!parse_entries(*rr, found)) co_return fail_reply(*rr, "XRANGE (own pending)");
    // Deleted from the stream meanwhile: it comes back with no fields.
    if (!found.empty()) entries[i].fields = std::move(found.front().fields);
  }
  co_return entries;
}

net::awaitable<result<std::uint64_t>> redis_stream::ack(std::vector<std::string> ids) {
  if (ids.empty()) co_return std::uint64_t{0};
  std::vector<std::string> argv{"XACK", params_.stream, params_.group};
  argv.insert(argv.end(), std::make_move_iterator(ids.begin()), std::make_move_iterator(ids.end()));
  auto r = co_await commands_->command(std::move(argv), params_.command_timeout);
  if (!r) co_return fail(r.error(), "XACK");
  if (!r->is_integer()) co_return fail_reply(*r, "XACK");
  co_return static_cast<std::uint64_t>(r->integer);
}

net::awaitable<result<std::uint64_t>> redis_stream::publish_and_ack(std::string results_stream,
                                                                    std::vector<std::string> lines,
                                                                    std::vector<std::string> ids) {
  std::vector<std::vector<std::string>> commands;
  std::size_t published = 0;
  if (!results_stream.empty())
    for (auto& line : lines) {
      if (line.empty()) continue;
      // Capped (approximately, so trimming stays cheap): a results stream nobody reads must not fill Redis.
      commands.push_back({"XADD", results_stream, "MAXLEN", "~", std::to_string(k_results_stream_max), "*", "result",
                          std::move(line)});
      ++published;
    }
  if (!ids.empty()) {
    std::vector<std::string> xack{"XACK", params_.stream, params_.group};
    xack.insert(xack.end(), std::make_move_iterator(ids.begin()), std::make_move_iterator(ids.end()));
    commands.push_back(std::move(xack));
  }
  if (commands.empty()) co_return std::uint64_t{0};
  auto replies = co_await commands_->pipeline(std::move(commands), params_.command_timeout);
  for (const auto& r : replies)
    if (!r) co_return fail(r.error(), "XADD results / XACK");
  // A line Redis refused (its stream of another type, out of memory) is in the
  // results file all the same: it is counted, and the acknowledgement stands.
  for (std::size_t i = 0; i < published; ++i)
    if (replies[i]->is_error()) {
      ++publish_failures_;
      fail_reply(*replies[i], "XADD " + results_stream);
    }
  if (ids.empty()) co_return std::uint64_t{0};
  const auto& last = *replies.back();
  if (!last.is_integer()) co_return fail_reply(last, "XACK");
  co_return static_cast<std::uint64_t>(last.integer);
}

net::awaitable<result<std::vector<std::string>>> redis_stream::touch(std::vector<std::string> ids) {
  std::vector<std::string> kept;
  if (ids.empty()) co_return kept;
  std::vector<std::string> argv{"EVAL", std::string(k_touch_script), "1", params_.stream, params_.group,
                                params_.consumer};
  argv.insert(argv.end(), std::make_move_iterator(ids.begin()), std::make_move_iterator(ids.end()));
  auto r = co_await commands_->command(std::move(argv), params_.command_timeout);
  if (!r) co_return fail(r.error(), "touching held entries");
  if (!r->is_array()) co_return fail_reply(*r, "touching held entries");
  for (auto& e : r->elements)
    if (e.is_string()) kept.push_back(std::move(e.str));
  co_return kept;
}

net::awaitable<result<claim_result>> redis_stream::claim_idle(std::chrono::milliseconds min_idle, unsigned count,
                                                              std::string start) {
  std::vector<std::string> argv{"XAUTOCLAIM", params_.stream, params_.group, params_.consumer,
                                std::to_string(min_idle.count()), start, "COUNT", std::to_string(std::max(count, 1u))};
  auto r = co_await commands_->command(std::move(argv), params_.command_timeout);
  if (!r) co_return fail(r.error(), "XAUTOCLAIM");
  // [next start, entries] (6.2) or [next start, entries, deleted ids] (7.0).
  claim_result out;
  if (!r->is_array() || r->elements.size() < 2 || !r->elements[0].is_string() ||
      !parse_entries(r->elements[1], out.entries))
    co_return fail_reply(*r, "XAUTOCLAIM");
  out.next = r->elements[0].str;
  if (r->elements.size() >= 3 && r->elements[2].is_array())
    for (const auto& d : r->elements[2].elements)
      if (d.is_string()) out.deleted.push_back(d.str);
  auto filled = co_await with_deliveries(std::move(out.entries));
  if (!filled) co_return filled.error();
  out.entries = std::move(*filled);
  co_return out;
}

net::awaitable<result<std::vector<stream_entry>>> redis_stream::with_deliveries(std::vector<stream_entry> entries) {
  if (entries.empty()) co_return entries;
  // XPENDING s g id id 1 per entry, all in one round trip.
  std::vector<std::vector<std::string>> queries;
  queries.reserve(entries.size());
  for (const auto& e : entries) queries.push_back({"XPENDING", params_.stream, params_.group, e.id, e.id, "1"});
  auto replies = co_await commands_->pipeline(std::move(queries), params_.command_timeout);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto& r = replies[i];
    if (!r) co_return fail(r.error(), "XPENDING");
    // [[id, consumer, idle ms, deliveries]], or [] when no longer pending.
    if (!r->is_array()) co_return fail_reply(*r, "XPENDING");
    if (r->elements.empty()) continue;
    const auto& p = r->elements[0];
    if (!p.is_array() || p.elements.size() != 4 || !p.elements[3].is_integer()) co_return fail_reply(*r, "XPENDING");
    entries[i].deliveries = static_cast<std::uint64_t>(p.elements[3].integer);
  }
  co_return entries;
}

net::awaitable<result<std::string>> redis_stream::dead_letter(stream_entry entry, std::string reason) {
  std::vector<std::string> xadd{"XADD", params_.dead_letter_stream, "*"};
  if (const std::string* job = entry.job()) {
    xadd.push_back("job");
    xadd.push_back(*job);
  }
  xadd.insert(xadd.end(), {"reason", std::move(reason), "id", entry.id, "stream", params_.stream, "deliveries",
                           std::to_string(entry.deliveries), "consumer", params_.consumer});
  // MULTI … EXEC: the dead-letter entry and the ack happen together or not at all.
  std::vector<std::vector<std::string>> commands;
  commands.push_back({"MULTI"});
  commands.push_back(std::move(xadd));
  commands.push_back({"XACK", params_.stream, params_.group, entry.id});
  commands.push_back({"EXEC"});
  auto replies = co_await commands_->pipeline(std::move(commands), params_.command_timeout);
  for (const auto& r : replies)
    if (!r) co_return fail(r.error(), "dead-lettering " + entry.id);
  for (std::size_t i = 0; i < 3; ++i)
    if (replies[i]->is_error()) co_return fail_reply(*replies[i], "dead-lettering " + entry.id);
  const auto& exec = *replies[3];
  if (!exec.is_array() || exec.elements.size() != 2 || !exec.elements[0].is_string())
    co_return fail_reply(exec.is_array() && !exec.elements.empty() ? exec.elements[0] : exec,
                         "dead-lettering " + entry.id);
  co_return exec.elements[0].str;
}

net::awaitable<result<std::vector<std::string>>> redis_stream::add(std::vector<std::string> jobs) {
  std::vector<std::vector<std::string>> commands;
  commands.reserve(jobs.size());
  for (auto& job : jobs) commands.push_back({"XADD", params_.stream, "*", "job", std::move(job)});
  auto replies = co_await commands_->pipeline(std::move(commands), params_.command_timeout);
  std::vector<std::string> ids;
  ids.reserve(replies.size());
  for (auto& r : replies) {
    if (!r) co_return fail(r.error(), "XADD");
    if (!r->is_string()) co_return fail_reply(*r, "XADD");
    ids.push_back(std::move(r->str));
  }
  co_return ids;
}

net::awaitable<result<std::uint64_t>> redis_stream::forget_idle_consumers(std::chrono::milliseconds idle) {
  std::vector<std::string> argv{"XINFO", "CONSUMERS", params_.stream, params_.group};
  auto r = co_await commands_->command(std::move(argv), params_.command_timeout);
  if (!r) co_return fail(r.error(), "XINFO CONSUMERS");
  if (!r->is_array()) co_return fail_reply(*r, "XINFO CONSUMERS");
  // Each consumer: [name, n, pending, n, idle, ms, …] as field/value pairs.
  std::vector<std::vector<std::string>> deletes;
  for (const auto& c : r->elements) {
    if (!c.is_array()) continue;
    std::string name;
    long long pending = -1, idle_ms = -1;
    for (std::size_t i = 0; i + 1 < c.elements.size(); i += 2) {
      const auto& k = c.elements[i].str;
      const auto& v = c.elements[i + 1];
      if (k == "name" && v.is_string()) name = v.str;
      else if (k == "pending" && v.is_integer()) pending = v.integer;
      else if (k == "idle" && v.is_integer()) idle_ms = v.integer;
    }
    if (!name.empty() && name != params_.consumer && pending == 0 && idle_ms >= idle.count())
      deletes.push_back({"XGROUP", "DELCONSUMER", params_.stream, params_.group, name});
  }
  if (deletes.empty()) co_return std::uint64_t{0};
  const std::uint64_t n = deletes.size();
  auto replies = co_await commands_->pipeline(std::move(deletes), params_.command_timeout);
  for (const auto& rr : replies) {
    if (!rr) co_return fail(rr.error(), "XGROUP DELCONSUMER");
    if (rr->is_error()) co_return fail_reply(*rr, "XGROUP DELCONSUMER");
  }
  co_return n;
}

net::awaitable<result<std::uint64_t>> redis_stream::pending_count() {
  std::vector<std::string> argv{"XPENDING", params_.stream, params_.group};
  auto r = co_await commands_->command(std::move(argv), params_.command_timeout);
  if (!r) co_return fail(r.error(), "XPENDING");
  // [count, smallest id, greatest id, [[consumer, count], …]]
  if (!r->is_array() || r->elements.empty() || !r->elements[0].is_integer()) co_return fail_reply(*r, "XPENDING");
  co_return static_cast<std::uint64_t>(r->elements[0].integer);
}

}  // namespace orgpatch
