// Shared by the fuzz targets: invariant checks that abort, so libFuzzer reports
// the input, and the byte classes the encoders promise.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace orgpatch::fuzz {

/// Aborts with `what` (and the offending text, shortened) when `ok` is false.
inline void check(bool ok, const char* what, std::string_view text = {}) {
  if (ok) return;
  std::fprintf(stderr, "fuzz invariant broken: %s\n  in: %.*s\n", what,
               static_cast<int>(text.size() > 300 ? 300 : text.size()), text.data());
  std::abort();
}

/// RFC 3986 unreserved: ALPHA DIGIT - . _ ~
constexpr bool is_unreserved(unsigned char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

constexpr int upper_hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// True when `s` is only unreserved bytes and %XX (upper-case hex) escapes, with
/// no escape of an unreserved byte (the encoding is canonical).
inline bool is_encoded(std::string_view s) noexcept {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (is_unreserved(c)) continue;
    if (c != '%' || s.size() - i < 3) return false;
    const int hi = upper_hex_value(s[i + 1]), lo = upper_hex_value(s[i + 2]);
    if (hi < 0 || lo < 0 || is_unreserved(static_cast<unsigned char>(hi * 16 + lo))) return false;
    i += 2;
  }
  return true;
}

/// Decodes %XX escapes of a string `is_encoded` accepted.
inline std::string pct_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      out += static_cast<char>(upper_hex_value(s[i + 1]) * 16 + upper_hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

/// True when `s` is well-formed UTF-8 (Unicode Table 3-7).
inline bool is_utf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  for (std::size_t i = 0; i < n;) {
    const unsigned char b = p[i];
    if (b < 0x80) { ++i; continue; }
    std::size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) len = 2;
    else if (b >= 0xE0 && b <= 0xEF) { len = 3; if (b == 0xE0) lo = 0xA0; if (b == 0xED) hi = 0x9F; }
    else if (b >= 0xF0 && b <= 0xF4) { len = 4; if (b == 0xF0) lo = 0x90; if (b == 0xF4) hi = 0x8F; }
    else return false;
    if (n - i < len || p[i + 1] < lo || p[i + 1] > hi) return false;
    for (std::size_t k = 2; k < len; ++k)
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return false;
    i += len;
  }
  return true;
}

}  // namespace orgpatch::fuzz
