/// Byte tests shared by the JSON scanner of job lines (job.cpp) and the JSON
/// writer of result lines (results.cpp). Private to src/.
#pragma once

#include <cstdint>
#include <cstring>

namespace orgpatch::json_bytes {

/// True when one of the 8 bytes of `w` needs more than a copy: a control
/// character, '"', '\\' or a byte >= 0x80 (bit tricks from "Bit Twiddling Hacks").
constexpr bool has_special_byte(std::uint64_t w) noexcept {
  constexpr std::uint64_t ones = 0x0101010101010101ULL;
  constexpr std::uint64_t high = 0x8080808080808080ULL;
  const auto has_zero = [](std::uint64_t v) { return (v - ones) & ~v & high; };
  const std::uint64_t below_space = (w - ones * 0x20) & ~w & high;
  return ((w & high) | below_space | has_zero(w ^ (ones * '"')) | has_zero(w ^ (ones * '\\'))) != 0;
}

/// Plain string content: printable ASCII but '"' and '\\'.
constexpr bool is_plain(unsigned char c) noexcept { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\'; }

/// The first byte at or after `p` (before `end`) that is not plain, 8 bytes per test.
inline const char* skip_plain(const char* p, const char* end) noexcept {
  while (end - p >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, sizeof w);
    if (has_special_byte(w)) break;
    p += 8;
  }
  while (p != end && is_plain(static_cast<unsigned char>(*p))) ++p;
  return p;
}

}  // namespace orgpatch::json_bytes
