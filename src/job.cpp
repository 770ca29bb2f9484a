// Job line validation (DESIGN.md §5).
//
// One pass of a small validating scanner (RFC 8259, UTF-8 included) over the
// line records the span of each top-level member; the members are then checked
// field by field. `body` is kept as the exact bytes of its span; `query` (small)
// is turned into a boost::json::value from its already validated span and
// serialised with append_query_param.
#include "orgpatch/job.hpp"

#include "orgpatch/query.hpp"

#include "json_bytes.hpp"

#include <boost/json/array.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/object.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>

#include <array>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

namespace orgpatch {
namespace {

constexpr int k_max_depth = 64;  // containers, the line's own object included
constexpr std::size_t k_max_id_bytes = 1024;
constexpr std::size_t k_max_key_bytes = 256;
constexpr std::size_t k_max_idempotency_key_bytes = 255;
constexpr std::size_t k_max_name_in_message = 100;

bool is_ws(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

constexpr int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

enum class kind : unsigned char { string, number, object, array, boolean, null };

/// Validates JSON text (RFC 8259, with well-formed UTF-8 and paired \u
/// surrogates) without building anything. Remembers the first error and where.
class scanner {
 public:
  explicit scanner(std::string_view text) noexcept
      : begin_(text.data()), p_(text.data()), end_(text.data() + text.size()) {}

  const char* pos() const noexcept { return p_; }
  bool at_end() const noexcept { return p_ == end_; }
  char peek() const noexcept { return *p_; }
  void advance() noexcept { ++p_; }

  void skip_ws() noexcept {
    while (p_ != end_ && is_ws(*p_)) ++p_;
  }

  /// Fails unless the current character is `c`, which it then consumes.
  bool expect(char c, const char* what) noexcept {
    if (p_ == end_ || *p_ != c) return fail(what);
    ++p_;
    return true;
  }

  /// A value at nesting level `depth` (the number of containers around it).
  bool value(int depth, kind& k) noexcept {
    if (p_ == end_) return fail("unexpected end of line");
    switch (*p_) {
      case '{': k = kind::object; return object(depth + 1);
      case '[': k = kind::array; return array(depth + 1);
      case '"': k = kind::string; return string();
      case 't': k = kind::boolean; return literal("true");
      case 'f': k = kind::boolean; return literal("false");
      case 'n': k = kind::null; return literal("null");
      default:
        if (*p_ == '-' || is_digit(*p_)) {
          k = kind::number;
          return number();
        }
        return fail("unexpected character");
    }
  }

  /// A string, the current character being its opening quote.
  bool string() noexcept {
    ++p_;
    for (;;) {
      // The common case: a run of plain ASCII, 8 bytes per test.
      p_ = json_bytes::skip_plain(p_, end_);
      if (p_ == end_) return fail("unterminated string");
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c == '\\') {
        if (!escape()) return false;
      } else if (c < 0x20) {
        return fail("control character in a string (must be escaped)");
      } else if (!utf8_sequence()) {
        return false;
      }
    }
  }

  /// "not valid JSON: … at byte N" or "not valid UTF-8 at byte N" (1-based).
  std::string message() const {
    std::string m = utf8_error_ ? "not valid UTF-8" : "not valid JSON: ";
    if (!utf8_error_) m += what_ ? what_ : "syntax error";
    m += " at byte ";
    m += std::to_string(at_ + 1);
    return m;
  }

  /// Records the first error. Unexpected non-ASCII that is not even UTF-8 is
  /// reported as an encoding error, so the user looks at the encoding first.
  bool fail(const char* what) noexcept {
    if (what_ != nullptr || utf8_error_) return false;
    if (p_ != end_ && static_cast<unsigned char>(*p_) >= 0x80) {
      const char* save = p_;
      const bool valid = utf8_sequence();
      p_ = save;
      if (!valid) return false;  // utf8_sequence recorded it
    }
    what_ = what;
    at_ = static_cast<std::size_t>(p_ - begin_);
    return false;
  }

 private:
  bool fail_utf8() noexcept {
    if (what_ == nullptr && !utf8_error_) {
      utf8_error_ = true;
      at_ = static_cast<std::size_t>(p_ - begin_);
    }
    return false;
  }

  bool object(int depth) noexcept {
    if (depth > k_max_depth) return fail("nested deeper than 64 levels");
    ++p_;
    skip_ws();
    if (p_ != end_ && *p_ == '}') {
      ++p_;
      return true;
    }
    for (;;) {
      if (p_ == end_ || *p_ != '"') return fail("expected a string key");
      if (!string()) return false;
      skip_ws();
      if (!expect(':', "expected ':'")) return false;
      skip_ws();
      kind k{};
      if (!value(depth, k)) return false;
      skip_ws();
      if (p_ == end_) return fail("unexpected end of line");
      if (*p_ == '}') {
        ++p_;
        return true;
      }
      if (*p_ != ',') return fail("expected ',' or '}'");
      ++p_;
      skip_ws();
    }
  }

  bool array(int depth) noexcept {
    if (depth > k_max_depth) return fail("nested deeper than 64 levels");
    ++p_;
    skip_ws();
    if (p_ != end_ && *p_ == ']') {
      ++p_;
      return true;
    }
    for (;;) {
      kind k{};
      if (!value(depth, k)) return false;
      skip_ws();
      if (p_ == end_) return fail("unexpected end of line");
      if (*p_ == ']') {
        ++p_;
        return true;
      }
      if (*p_ != ',') return fail("expected ',' or ']'");
      ++p_;
      skip_ws();
    }
  }

  bool literal(std::string_view word) noexcept {
    if (static_cast<std::size_t>(end_ - p_) < word.size() ||
        std::memcmp(p_, word.data(), word.size()) != 0)
      return fail("invalid literal");
    p_ += word.size();
    return true;
  }

  bool digits() noexcept {
    if (p_ == end_ || !is_digit(*p_)) return fail("invalid number");
    while (p_ != end_ && is_digit(*p_)) ++p_;
    return true;
  }

  bool number() noexcept {
    if (*p_ == '-') ++p_;
    if (p_ == end_) return fail("invalid number");
    if (*p_ == '0') {
      ++p_;
    } else if (!digits()) {
      return false;
    }
    if (p_ != end_ && *p_ == '.') {
      ++p_;
      if (!digits()) return false;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (!digits()) return false;
    }
    return true;
  }

  // Four hex digits after "\u"; p_ is on the 'u'.
  bool hex4(unsigned& cp) noexcept {
    if (end_ - p_ < 5) return fail("invalid \\u escape");
    cp = 0;
    for (int i = 1; i <= 4; ++i) {
      const int h = hex_value(p_[i]);
      if (h < 0) return fail("invalid \\u escape");
      cp = cp * 16 + static_cast<unsigned>(h);
    }
    p_ += 5;
    return true;
  }

  bool escape() noexcept {
    ++p_;  // the backslash
    if (p_ == end_) return fail("unterminated string");
    switch (*p_) {
      case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        ++p_;
        return true;
      case 'u': {
        const char* at = p_;
        unsigned cp = 0;
        if (!hex4(cp)) return false;
        if (cp >= 0xDC00 && cp <= 0xDFFF) {
          p_ = at;
          return fail("unpaired surrogate in \\u escape");
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          unsigned low = 0;
          if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') {
            p_ = at;
            return fail("unpaired surrogate in \\u escape");
          }
          ++p_;
          if (!hex4(low)) return false;
          if (low < 0xDC00 || low > 0xDFFF) {
            p_ = at;
            return fail("unpaired surrogate in \\u escape");
          }
        }
        return true;
      }
      default:
        return fail("invalid escape");
    }
  }

  // One multi-byte UTF-8 sequence (Unicode Table 3-7: no overlong forms, no
  // surrogates, nothing past U+10FFFF).
  bool utf8_sequence() noexcept {
    const auto* s = reinterpret_cast<const unsigned char*>(p_);
    const auto avail = static_cast<std::size_t>(end_ - p_);
    const unsigned char b0 = s[0];
    std::size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      n = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      n = 3;
      if (b0 == 0xE0) lo = 0xA0;
      if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      n = 4;
      if (b0 == 0xF0) lo = 0x90;
      if (b0 == 0xF4) hi = 0x8F;
    } else {
      return fail_utf8();
    }
    if (avail < n || s[1] < lo || s[1] > hi) return fail_utf8();
    for (std::size_t i = 2; i < n; ++i)
      if (s[i] < 0x80 || s[i] > 0xBF) return fail_utf8();
    p_ += n;
    return true;
  }

  const char* begin_;
  const char* p_;
  const char* end_;
  const char* what_ = nullptr;
  bool utf8_error_ = false;
  std::size_t at_ = 0;
};

template <class String>
void append_utf8(String& out, unsigned cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

unsigned read_hex4(const char* p) noexcept {
  unsigned cp = 0;
  for (int i = 0; i < 4; ++i) cp = cp * 16 + static_cast<unsigned>(hex_value(p[i]));
  return cp;
}

/// Decodes a string the scanner has validated; `p` is on its opening quote and
/// ends past its closing one. `String`: std::string or boost::json::string.
template <class String>
void decode_string(const char*& p, String& out) {
  ++p;
  const char* run = p;
  for (;;) {
    while (*p != '"' && *p != '\\') ++p;
    out.append(std::string_view(run, static_cast<std::size_t>(p - run)));
    if (*p == '"') {
      ++p;
      return;
    }
    ++p;  // the backslash
    switch (*p++) {
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        unsigned cp = read_hex4(p);
        p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          const unsigned low = read_hex4(p + 2);
          p += 6;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        append_utf8(out, cp);
        break;
      }
      default: out += p[-1]; break;  // " \ /
    }
    run = p;
  }
}

/// The decoded value of a validated string token.
std::string decode(std::string_view token) {
  std::string out;
  if (token.find('\\') == std::string_view::npos) {
    out.assign(token.data() + 1, token.size() - 2);
  } else {
    const char* p = token.data();
    decode_string(p, out);
  }
  return out;
}

/// A field name fit for a message: at most ~100 bytes, cut on a character boundary.
std::string shorten(std::string name) {
  if (name.size() <= k_max_name_in_message) return name;
  std::size_t n = k_max_name_in_message;
  while (n > 0 && (static_cast<unsigned char>(name[n]) & 0xC0) == 0x80) --n;
  name.resize(n);
  name += "...";
  return name;
}

void skip_ws(const char*& p) noexcept {
  while (is_ws(*p)) ++p;
}

/// Builds a boost::json::value from validated JSON text at `p` (a query value).
/// Numbers are kept as strings holding their JSON text, so they are serialised
/// exactly as written. A key repeated within an object sets `err` (its field
/// is the path of keys below `p`'s value, e.g. "a.b"); the value is then incomplete.
boost::json::value build_value(const char*& p, const boost::json::storage_ptr& sp, input_error& err) {
  skip_ws(p);
  switch (*p) {
    case '{': {
      boost::json::object obj(sp);
      ++p;
      skip_ws(p);
      if (*p == '}') {
        ++p;
        return obj;
      }
      boost::json::string key(sp);
      for (;;) {
        key.clear();
        decode_string(p, key);
        skip_ws(p);
        ++p;  // ':'
        boost::json::value v = build_value(p, sp, err);
        if (!err.message.empty()) {
          err.field = err.field.empty() ? std::string(key) : std::string(key) + "." + err.field;
          return obj;
        }
        if (obj.contains(key)) {
          err = {std::string(key), "duplicate key"};
          return obj;
        }
        obj.emplace(key, std::move(v));
        skip_ws(p);
        if (*p++ == '}') return obj;
        skip_ws(p);
      }
    }
    case '[': {
      boost::json::array arr(sp);
      ++p;
      skip_ws(p);
      if (*p == ']') {
        ++p;
        return arr;
      }
      for (;;) {
        arr.push_back(build_value(p, sp, err));
        if (!err.message.empty()) return arr;
        skip_ws(p);
        if (*p++ == ']') return arr;
      }
    }
    case '"': {
      boost::json::string s(sp);
      decode_string(p, s);
      return s;
    }
    case 't': p += 4; return boost::json::value(true, sp);
    case 'f': p += 5; return boost::json::value(false, sp);
    case 'n': p += 4; return boost::json::value(nullptr, sp);
    default: {
      const char* start = p;
      while (*p == '-' || *p == '+' || *p == '.' || *p == 'e' || *p == 'E' || is_digit(*p)) ++p;
      return boost::json::string(std::string_view(start, static_cast<std::size_t>(p - start)), sp);
    }
  }
}

/// One top-level member seen in the line.
struct member {
  bool present = false;
  bool repeated = false;
  kind type{};
  std::string_view text;  // the value's exact text
};

enum field_index : std::size_t { f_id, f_account, f_body, f_query, f_key, f_idem, f_count };

constexpr std::array<std::string_view, f_count> k_field_names = {
    "id", "integrated_account_id", "body", "query", "key", "idempotency_key"};

constexpr std::array<std::string_view, 4> k_query_names = {
    "truto_response_format", "truto_ignore_remote_data", "truto_exclude_fields", "remote_query"};

/// The members of a line that is a syntactically valid JSON object.
struct scanned_line {
  std::array<member, f_count> fields{};
  input_error field_error;  ///< first unknown or duplicated member, if any
};

/// Scans `line`; on a syntax or encoding error returns it (field empty).
bool scan_line(std::string_view line, scanned_line& out, input_error& err) {
  scanner s(line);
  s.skip_ws();
  if (s.at_end()) {
    err = {"", "empty line (expected a JSON object)"};
    return false;
  }
  if (s.peek() != '{') {
    kind k{};
    if (s.value(0, k)) {
      s.skip_ws();
      if (s.at_end()) {
        err = {"", "not a JSON object"};
        return false;
      }
      s.fail("unexpected text after the value");
    }
    err = {"", s.message()};
    return false;
  }
  s.advance();
  s.skip_ws();
  bool done = false;
  if (!s.at_end() && s.peek() == '}') {
    s.advance();
    done = true;
  }
  std::string name;
  while (!done) {
    if (s.at_end() || s.peek() != '"') {
      s.fail("expected a string key");
      break;
    }
    const char* key_start = s.pos();
    if (!s.string()) break;
    const std::string_view key_token(key_start, static_cast<std::size_t>(s.pos() - key_start));
    s.skip_ws();
    if (!s.expect(':', "expected ':'")) break;
    s.skip_ws();
    const char* value_start = s.pos();
    kind k{};
    if (!s.value(1, k)) break;
    const std::string_view value_text(value_start, static_cast<std::size_t>(s.pos() - value_start));

    // Field names are plain ASCII; decode only when escaped.
    std::string_view key_name = key_token.substr(1, key_token.size() - 2);
    if (key_name.find('\\') != std::string_view::npos) {
      name = decode(key_token);
      key_name = name;
    }
    std::size_t i = 0;
    while (i < f_count && k_field_names[i] != key_name) ++i;
    if (i == f_count) {
      if (out.field_error.message.empty()) out.field_error = {shorten(std::string(key_name)), "unknown field"};
    } else if (out.fields[i].present) {
      out.fields[i].repeated = true;
      if (out.field_error.message.empty()) out.field_error = {std::string(key_name), "duplicate field"};
    } else {
      out.fields[i] = {true, false, k, value_text};
    }

    s.skip_ws();
    if (s.at_end()) {
      s.fail("unexpected end of line");
      break;
    }
    if (s.peek() == '}') {
      s.advance();
      done = true;
    } else if (s.peek() == ',') {
      s.advance();
      s.skip_ws();
    } else {
      s.fail("expected ',' or '}'");
      break;
    }
  }
  if (done) {
    s.skip_ws();
    if (s.at_end()) return true;
    s.fail("unexpected text after the object");
  }
  err = {"", s.message()};
  return false;
}

const char* type_name(kind k) noexcept {
  switch (k) {
    case kind::string: return "a string";
    case kind::number: return "a number";
    case kind::object: return "an object";
    case kind::array: return "an array";
    case kind::boolean: return "a boolean";
    case kind::null: return "null";
  }
  return "?";
}

std::string must_be(const char* what, kind got) {
  std::string m = "must be ";
  m += what;
  m += " (got ";
  m += type_name(got);
  m += ')';
  return m;
}

/// Why `key` is not a valid explicit key; empty when it is one.
std::string check_key(std::string_view key) {
  if (key.empty()) return "must not be empty";
  if (key.size() > k_max_key_bytes) return "longer than 256 bytes";
  bool all_digits = true;
  for (char c : key) all_digits = all_digits && is_digit(c);
  if (all_digits) return "not all digits (line numbers are the default keys)";
  return {};
}

/// True when every element of the (validated) array `text` is a string.
bool array_of_strings(std::string_view text) {
  scanner s(text);
  s.advance();  // '['
  s.skip_ws();
  if (s.peek() == ']') return true;
  for (;;) {
    kind k{};
    if (!s.value(1, k) || k != kind::string) return false;
    s.skip_ws();
    if (s.peek() == ']') return true;
    s.advance();  // ','
    s.skip_ws();
  }
}

/// Validates `query` and appends its parameters (in the order given) to `out`;
/// `given` records which of the four names the job set.
bool serialise_query(std::string_view text, std::string& out, std::array<bool, 4>& given,
                     input_error& err) {
  unsigned char buffer[2048];
  boost::json::monotonic_resource mr(buffer, sizeof buffer);
  const boost::json::storage_ptr sp(&mr);

  const char* p = text.data();
  ++p;  // '{'
  skip_ws(p);
  if (*p == '}') return true;
  out.reserve(out.size() + text.size() * 2);
  std::string name;
  const auto fail = [&](std::string message) {
    err = {"query." + shorten(name), std::move(message)};
    return false;
  };
  for (;;) {
    name.clear();
    decode_string(p, name);
    skip_ws(p);
    ++p;  // ':'
    skip_ws(p);
    const char first = *p;
    const kind k = first == '{' ? kind::object
                   : first == '[' ? kind::array
                   : first == '"' ? kind::string
                   : (first == 't' || first == 'f') ? kind::boolean
                   : first == 'n' ? kind::null
                                  : kind::number;
    std::size_t i = 0;
    while (i < k_query_names.size() && k_query_names[i] != name) ++i;
    if (i == k_query_names.size())
      return fail(
          "unknown query parameter (allowed: truto_response_format, truto_ignore_remote_data, "
          "truto_exclude_fields, remote_query)");
    if (given[i]) return fail("duplicate field");
    given[i] = true;
    const char* value_start = p;
    const boost::json::value v = build_value(p, sp, err);
    if (!err.message.empty()) {
      err.field = shorten("query." + name + "." + err.field);
      return false;
    }
    switch (i) {
      case 0: {  // truto_response_format
        if (k != kind::string) return fail(must_be("a string", k));
        const auto& s = v.get_string();
        if (s != "unified" && s != "raw" && s != "normalized" && s != "stream")
          return fail("must be one of unified, raw, normalized, stream");
        break;
      }
      case 1:  // truto_ignore_remote_data
        if (k != kind::boolean) return fail(must_be("a boolean", k));
        break;
      case 2:  // truto_exclude_fields
        // Numbers were built as strings: look at the element text itself.
        if (k != kind::array ||
            !array_of_strings(std::string_view(value_start, static_cast<std::size_t>(p - value_start))))
          return fail("must be an array of strings");
        break;
      default:  // remote_query
        if (k != kind::object) return fail(must_be("an object", k));
        break;
    }
    append_query_param(out, name, v);
    skip_ws(p);
    if (*p++ == '}') return true;
    skip_ws(p);
  }
}

bool only_dots(std::string_view s) noexcept {
  return s.find_first_not_of('.') == std::string_view::npos;
}

bool visible_ascii(std::string_view s) noexcept {
  for (char c : s)
    if (c < 0x21 || c > 0x7E) return false;
  return true;
}

}  // namespace

std::string input_error::to_string() const {
  if (field.empty()) return message;
  std::string s = field;
  s += ": ";
  s += message;
  return s;
}

bool is_uuid(std::string_view s) noexcept {
  static constexpr auto hex = [] {
    std::array<bool, 256> t{};
    for (int c = 0; c < 256; ++c) t[c] = hex_value(static_cast<char>(c)) >= 0;
    return t;
  }();
  if (s.size() != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-') return false;
  bool ok = true;
  for (std::size_t i = 0; i < s.size(); ++i)
    ok &= hex[static_cast<unsigned char>(s[i])] || i == 8 || i == 13 || i == 18 || i == 23;
  return ok;
}

std::variant<job, input_error> parse_job(std::string_view line, std::uint64_t line_no,
                                         const job_parse_options& options) {
  scanned_line sc;
  input_error err;
  if (!scan_line(line, sc, err)) return err;
  if (!sc.field_error.message.empty()) return std::move(sc.field_error);

  job j;
  j.line = line_no;

  // id: one path segment once encoded; only dots would be a path step.
  const member& id = sc.fields[f_id];
  if (!id.present) return input_error{"id", "required"};
  if (id.type != kind::string) return input_error{"id", must_be("a string", id.type)};
  j.id = decode(id.text);
  if (j.id.empty()) return input_error{"id", "must not be empty"};
  if (j.id.size() > k_max_id_bytes) return input_error{"id", "longer than 1024 bytes"};
  if (only_dots(j.id))
    return input_error{"id", "must not be only dots (\".\" and \"..\" are path steps)"};

  const member& account = sc.fields[f_account];
  if (account.present) {
    if (account.type != kind::string)
      return input_error{"integrated_account_id", must_be("a string", account.type)};
    j.integrated_account_id = decode(account.text);
    if (!is_uuid(j.integrated_account_id))
      return input_error{"integrated_account_id", "not a UUID"};
  } else if (options.default_integrated_account_id) {
    j.integrated_account_id = *options.default_integrated_account_id;
    if (!is_uuid(j.integrated_account_id))
      return input_error{"integrated_account_id", "not a UUID (api.default_integrated_account_id)"};
  } else {
    return input_error{"integrated_account_id", "required (no api.default_integrated_account_id)"};
  }
  // One account, one spelling: its rate limit and its organizations' order are
  // kept per account, so "ABC…" and "abc…" must not count as two.
  for (char& c : j.integrated_account_id)
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');

  const member& body = sc.fields[f_body];
  if (!body.present) return input_error{"body", "required"};
  if (body.type != kind::object) return input_error{"body", must_be("a JSON object", body.type)};
  j.body.assign(body.text);

  std::array<bool, 4> given{};
  const member& query = sc.fields[f_query];
  if (query.present) {
    if (query.type != kind::object) return input_error{"query", must_be("an object", query.type)};
    if (!serialise_query(query.text, j.query, given, err)) return err;
  }
  if (options.default_query != nullptr) {
    for (const auto& kv : *options.default_query) {
      const std::string_view name = kv.key();
      bool job_gave = false;
      for (std::size_t i = 0; i < k_query_names.size(); ++i)
        job_gave = job_gave || (given[i] && k_query_names[i] == name);
      if (!job_gave) append_query_param(j.query, name, kv.value());
    }
  }

  const member& key = sc.fields[f_key];
  if (key.present) {
    if (key.type != kind::string) return input_error{"key", must_be("a string", key.type)};
    j.key = decode(key.text);
    if (std::string why = check_key(j.key); !why.empty()) return input_error{"key", std::move(why)};
    j.key_given = true;
  } else {
    j.key = std::to_string(line_no);
  }

  const member& idem = sc.fields[f_idem];
  if (idem.present) {
    if (idem.type != kind::string)
      return input_error{"idempotency_key", must_be("a string", idem.type)};
    j.idempotency_key = decode(idem.text);
    if (j.idempotency_key.empty() || j.idempotency_key.size() > k_max_idempotency_key_bytes ||
        !visible_ascii(j.idempotency_key))
      return input_error{"idempotency_key", "must be 1 to 255 visible ASCII characters (0x21-0x7E)"};
  }

  j.source.assign(line);
  return j;
}

std::optional<std::string> find_job_key(std::string_view line) {
  scanned_line sc;
  input_error err;
  if (!scan_line(line, sc, err)) return std::nullopt;
  const member& key = sc.fields[f_key];
  if (!key.present || key.repeated || key.type != kind::string) return std::nullopt;
  std::string k = decode(key.text);
  if (!check_key(k).empty()) return std::nullopt;
  return k;
}

}  // namespace orgpatch
