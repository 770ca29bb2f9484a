// The HTTP response reader fed arbitrary byte streams, as a connection feeds it:
// in pieces, what it did not use offered again with the next piece, then the
// end of the stream. Byte 0 picks the body and header limits, byte 1 how the
// stream is cut into pieces; the rest is the stream. Checks: it never keeps
// more body than the limit nor uses bytes it was not given, a finished body has
// the padding simdjson needs, and the outcome (state, error, every field, the
// bytes left over) is the same whatever the pieces: framing does not depend on
// how reads happen to split the stream (for a failure: failed too). The bytes left over are then read as a
// second response with the same reader (reuse).
#include "orgpatch/http_reader.hpp"

#include "fuzz_check.hpp"

#include <cstddef>
#include <cstdio>
#include <cstdint>
#include <string>
#include <string_view>

using orgpatch::fuzz::check;
using orgpatch::http_reader;

namespace {

constexpr std::size_t k_padding = 64;
constexpr std::size_t k_body_limits[8] = {0, 1, 7, 16, 100, 1000, 4096, 1 << 20};
constexpr std::size_t k_header_limits[8] = {1, 16, 32, 64, 200, 1024, 8192, 65536};

struct outcome {
  http_reader::state state{};
  boost::system::error_code error;
  orgpatch::http_response response;
  std::string left_over;
  bool got_some = false;
};

/// The fields and the bytes left over are compared only for a finished response:
/// after a failure the connection is closed and nothing of the response is used.
/// Nor is the error compared: Beast parses a start line it has whole at once,
/// but once it has waited for more it waits for the whole header, so a broken
/// header that never ends is `bad_reason` in one piece and `partial_message` at
/// the end of the stream in several (both a failed read, retried alike).
bool same(const outcome& a, const outcome& b) {
  if (a.state != b.state || a.got_some != b.got_some) return false;
  if (a.state != http_reader::state::done) return true;
  return a.response.status == b.response.status &&
         a.response.body == b.response.body && a.response.retry_after == b.response.retry_after &&
         a.response.ratelimit_remaining == b.response.ratelimit_remaining &&
         a.response.ratelimit_reset == b.response.ratelimit_reset && a.response.location == b.response.location &&
         a.response.chunked == b.response.chunked &&
         a.response.keep_alive == b.response.keep_alive && a.left_over == b.left_over;
}

/// Both outcomes on stderr, for a report that says what differed.
bool same_or_show(const outcome& a, const outcome& b) {
  if (same(a, b)) return true;
  for (const outcome* o : {&a, &b})
    std::fprintf(stderr, "state %d error '%s' status %u body %zu bytes chunked %d keep_alive %d got_some %d left over %zu\n",
                 static_cast<int>(o->state), o->error.message().c_str(), o->response.status, o->response.body.size(),
                 o->response.chunked, o->response.keep_alive, o->got_some, o->left_over.size());
  return false;
}

/// The next piece size: all at once, byte by byte, or sizes from a small
/// generator seeded by the input.
class cutter {
 public:
  explicit cutter(unsigned char seed) : mode_(seed & 3), max_(1 + (seed >> 2)), x_(seed * 2654435761u + 1) {}
  std::size_t next(std::size_t left) {
    if (mode_ == 0) return left;
    if (mode_ == 1) return 1;
    x_ = x_ * 1103515245u + 12345u;
    return 1 + (x_ >> 16) % max_;
  }

 private:
  unsigned mode_;
  unsigned max_;
  std::uint32_t x_;
};

void check_done(const outcome& o, std::size_t max_body, std::string_view stream) {
  if (o.state == http_reader::state::failed) check(static_cast<bool>(o.error), "failed without an error", stream);
  check(o.state != http_reader::state::need_more, "still needs more after the end of the stream", stream);
  if (o.state != http_reader::state::done) return;
  check(!o.error, "done with an error", stream);
  check(o.response.body.size() <= max_body, "a body over the limit", stream);
  check(o.response.body.capacity() >= o.response.body.size() + k_padding, "a body without its padding", stream);
  const unsigned s = o.response.status;
  check(s >= 100 && s <= 599 && (s >= 200 || s == 101), "done on a status that is not a final answer", stream);
}

/// Reads one response from `stream` cut by `cut`, then the rest as a second one.
outcome read(http_reader& reader, std::string_view stream, cutter cut, std::size_t max_body) {
  outcome o;
  reader.start(o.response);
  std::string pending;
  std::size_t at = 0;
  while (reader.status() == http_reader::state::need_more && at < stream.size()) {
    const std::size_t n = std::min(cut.next(stream.size() - at), stream.size() - at);
    pending.append(stream.substr(at, n));
    at += n;
    const std::size_t used = reader.put(pending);
    check(used <= pending.size(), "used more bytes than offered", stream);
    pending.erase(0, used);
  }
  if (reader.status() == http_reader::state::need_more) reader.put_eof();
  o.state = reader.status();
  o.error = reader.error();
  o.got_some = reader.got_some();
  o.left_over = pending;
  o.left_over.append(stream.substr(at));
  check_done(o, max_body, stream);
  if (at > 0 && o.state == http_reader::state::done) check(o.got_some, "done without having used a byte", stream);
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t max_body = k_body_limits[data[0] & 7];
  const std::size_t max_header = k_header_limits[(data[0] >> 3) & 7];
  const std::string_view stream(reinterpret_cast<const char*>(data + 2), size - 2);

  http_reader whole_reader(max_body, max_header, k_padding);
  const outcome whole = read(whole_reader, stream, cutter(0), max_body);
  http_reader cut_reader(max_body, max_header, k_padding);
  const outcome cut = read(cut_reader, stream, cutter(data[1]), max_body);
  check(same_or_show(whole, cut), "the outcome depends on how the stream was cut", stream);

  // The same readers again, on what followed the first response.
  if (whole.state == http_reader::state::done && !whole.left_over.empty()) {
    const outcome second_whole = read(whole_reader, whole.left_over, cutter(0), max_body);
    const outcome second_cut = read(cut_reader, cut.left_over, cutter(data[1]), max_body);
    check(same_or_show(second_whole, second_cut), "a reused reader's outcome depends on the cut", whole.left_over);
  }
  return 0;
}
