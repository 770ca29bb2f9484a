// The id path-segment encoder on arbitrary bytes (DESIGN.md §2): the result is
// only unreserved bytes and %XX, decodes back to the input, and is one path
// segment whatever the id holds ('/', '?', '#', '%', controls, non-ASCII).
#include "orgpatch/query.hpp"

#include "fuzz_check.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

using orgpatch::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  const std::string enc = orgpatch::encode_path_segment(in);
  check(orgpatch::fuzz::is_encoded(enc), "encoded segment has a byte outside unreserved and %XX", enc);
  check(orgpatch::fuzz::pct_decode(enc) == in, "decode(encode(x)) != x", enc);

  std::size_t reserved = 0;
  for (unsigned char c : in) reserved += orgpatch::fuzz::is_unreserved(c) ? 0 : 1;
  check(enc.size() == in.size() + 2 * reserved, "encoded length is not size + 2 per escaped byte", enc);
  if (reserved == 0) check(enc == in, "an unreserved id was changed", enc);

  // The appending form writes the same bytes after whatever is there.
  std::string out = "/unified/user-directory/organizations/";
  const std::size_t prefix = out.size();
  orgpatch::append_path_segment(out, in);
  check(std::string_view(out).substr(prefix) == enc, "append_path_segment differs from encode_path_segment", out);
  return 0;
}
