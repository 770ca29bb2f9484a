// Response bodies of the Unified API, parsed with simdjson On-Demand.
//
// On-Demand is lazy: a value that is never asked for is skipped, not checked.
// To decide `json_valid` honestly we walk every value once (keys matched as
// they come, unknown values validated as they are skipped), then require the
// end of the input.
#include "orgpatch/response.hpp"

#include <simdjson.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>
#include <utility>

namespace orgpatch {

namespace {

namespace od = simdjson::ondemand;

/// Deeper bodies are not valid (no API response nests anywhere near this, and
/// the walk below recurses once per level).
constexpr int k_max_depth = 256;

/// The smallest allocation the parser grows to, so small bodies do not
/// reallocate one after the other.
constexpr std::size_t k_min_capacity = 64 * 1024;

bool is_json_whitespace(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/// A raw token as On-Demand gives it includes the whitespace that follows.
std::string_view trim_token(std::string_view s) noexcept {
  while (!s.empty() && is_json_whitespace(s.back())) s.remove_suffix(1);
  return s;
}

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

/// RFC 8259 §6: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool is_json_number(std::string_view s) noexcept {
  std::size_t i = 0;
  const std::size_t n = s.size();
  if (i < n && s[i] == '-') ++i;
  if (i >= n) return false;
  if (s[i] == '0') {
    ++i;
  } else if (s[i] >= '1' && s[i] <= '9') {
    while (i < n && is_digit(s[i])) ++i;
  } else {
    return false;
  }
  if (i < n && s[i] == '.') {
    ++i;
    if (i >= n || !is_digit(s[i])) return false;
    while (i < n && is_digit(s[i])) ++i;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    if (i >= n || !is_digit(s[i])) return false;
    while (i < n && is_digit(s[i])) ++i;
  }
  return i == n;
}

/// Copies `s`, cut to at most max_string_bytes on a UTF-8 character boundary.
void copy_capped(std::string& out, std::string_view s) {
  constexpr std::size_t cap = response_parser::max_string_bytes;
  if (s.size() > cap) {
    std::size_t n = cap;
    // s[n] is the first byte left out: never cut before a continuation byte.
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0U) == 0x80U) --n;
    s = s.substr(0, n);
  }
  out.assign(s);
}

/// Checks `v` and everything inside it; consumes it (or leaves it to be skipped).
bool valid_value(od::value& v, int depth);

bool valid_object(od::object& obj, int depth) {
  for (auto field_result : obj) {
    od::field field;
    if (std::move(field_result).get(field) != simdjson::SUCCESS) return false;
    std::string_view key;
    if (field.unescaped_key().get(key) != simdjson::SUCCESS) return false;
    if (!valid_value(field.value(), depth + 1)) return false;
  }
  return true;
}

bool valid_value(od::value& v, int depth) {
  od::json_type type;
  if (v.type().get(type) != simdjson::SUCCESS) return false;
  switch (type) {
    case od::json_type::object: {
      if (depth >= k_max_depth) return false;
      od::object obj;
      if (v.get_object().get(obj) != simdjson::SUCCESS) return false;
      return valid_object(obj, depth);
    }
    case od::json_type::array: {
      if (depth >= k_max_depth) return false;
      od::array arr;
      if (v.get_array().get(arr) != simdjson::SUCCESS) return false;
      for (auto element_result : arr) {
        od::value element;
        if (std::move(element_result).get(element) != simdjson::SUCCESS) return false;
        if (!valid_value(element, depth + 1)) return false;
      }
      return true;
    }
    case od::json_type::string: {
      std::string_view s;
      return v.get_string().get(s) == simdjson::SUCCESS;
    }
    case od::json_type::number:
      // Checked as text: no float conversion, and big integers stay valid.
      return is_json_number(trim_token(v.raw_json_token()));
    case od::json_type::boolean: {
      const std::string_view t = trim_token(v.raw_json_token());
      return t == "true" || t == "false";
    }
    case od::json_type::null:
      return trim_token(v.raw_json_token()) == "null";
  }
  return false;
}

/// A string member: copied when it is a string, left empty otherwise.
bool take_string(od::value& v, int depth, std::string& out) {
  od::json_type type;
  if (v.type().get(type) != simdjson::SUCCESS) return false;
  if (type != od::json_type::string) return valid_value(v, depth);
  std::string_view s;
  if (v.get_string().get(s) != simdjson::SUCCESS) return false;
  copy_capped(out, s);
  return true;
}

/// `id`: a string, or a number taken as its text.
bool take_id(od::value& v, int depth, std::string& out) {
  od::json_type type;
  if (v.type().get(type) != simdjson::SUCCESS) return false;
  if (type != od::json_type::number) return take_string(v, depth, out);
  const std::string_view token = trim_token(v.raw_json_token());
  if (!is_json_number(token)) return false;
  copy_capped(out, token);
  return true;
}

bool take_int(od::value& v, int depth, int& out) {
  od::json_type type;
  if (v.type().get(type) != simdjson::SUCCESS) return false;
  if (type != od::json_type::number) return valid_value(v, depth);
  const std::string_view token = trim_token(v.raw_json_token());
  if (!is_json_number(token)) return false;
  std::int64_t n = 0;
  // get_int64 advances only on success; otherwise (422.0, 1e3, huge) keep 0.
  if (v.get_int64().get(n) == simdjson::SUCCESS && n >= std::numeric_limits<int>::min() &&
      n <= std::numeric_limits<int>::max()) {
    out = static_cast<int>(n);
  }
  return true;
}

bool take_bool(od::value& v, int depth, bool& out) {
  od::json_type type;
  if (v.type().get(type) != simdjson::SUCCESS) return false;
  if (type != od::json_type::boolean) return valid_value(v, depth);
  const std::string_view t = trim_token(v.raw_json_token());
  if (t != "true" && t != "false") return false;
  out = t == "true";
  return true;
}

/// `raw_response`: the remote API's own body; its `detail` when it is an object.
bool take_raw_response(od::value& v, int depth, std::string& detail, bool& has_detail) {
  od::json_type type;
  if (v.type().get(type) != simdjson::SUCCESS) return false;
  if (type != od::json_type::object) return valid_value(v, depth);
  if (depth >= k_max_depth) return false;
  od::object obj;
  if (v.get_object().get(obj) != simdjson::SUCCESS) return false;
  for (auto field_result : obj) {
    od::field field;
    if (std::move(field_result).get(field) != simdjson::SUCCESS) return false;
    std::string_view key;
    if (field.unescaped_key().get(key) != simdjson::SUCCESS) return false;
    od::value& value = field.value();
    if (key == "detail") {
      od::json_type vt;
      if (value.type().get(vt) != simdjson::SUCCESS) return false;
      detail.clear();
      has_detail = false;
      if (vt == od::json_type::string) {
        if (!take_string(value, depth + 1, detail)) return false;
        has_detail = true;
        continue;
      }
    }
    if (!valid_value(value, depth + 1)) return false;
  }
  return true;
}

/// Walks the top-level object once, in whatever order its members come.
bool read_document(od::document& doc, bool success, response_info& info) {
  od::json_type type;
  if (doc.type().get(type) != simdjson::SUCCESS || type != od::json_type::object) return false;
  od::object obj;
  if (doc.get_object().get(obj) != simdjson::SUCCESS) return false;
  constexpr int depth = 1;  // members of the top-level object
  std::string detail;
  bool has_detail = false;
  for (auto field_result : obj) {
    od::field field;
    if (std::move(field_result).get(field) != simdjson::SUCCESS) return false;
    std::string_view key;
    if (field.unescaped_key().get(key) != simdjson::SUCCESS) return false;
    od::value& value = field.value();
    bool ok = true;
    if (success) {
      if (key == "id") {
        info.id.clear();
        ok = take_id(value, depth, info.id);
      } else if (key == "name") {
        info.name.clear();
        ok = take_string(value, depth, info.name);
      } else if (key == "updated_at") {
        info.updated_at.clear();
        ok = take_string(value, depth, info.updated_at);
      } else {
        ok = valid_value(value, depth);
      }
    } else {
      if (key == "statusCode") {
        info.status_code = 0;
        ok = take_int(value, depth, info.status_code);
      } else if (key == "error") {
        info.error.clear();
        ok = take_string(value, depth, info.error);
      } else if (key == "message") {
        info.message.clear();
        ok = take_string(value, depth, info.message);
      } else if (key == "truto_is_remote_error") {
        info.remote = false;
        ok = take_bool(value, depth, info.remote);
      } else if (key == "raw_response") {
        ok = take_raw_response(value, depth, detail, has_detail);
      } else {
        ok = valid_value(value, depth);
      }
    }
    if (!ok) return false;
  }
  // Only whitespace may follow the object: the iterator must be at the end.
  const char* location = nullptr;
  if (doc.current_location().get(location) != simdjson::OUT_OF_BOUNDS) return false;
  if (!success && info.remote && info.message.empty() && has_detail) {
    info.message = std::move(detail);
  }
  return true;
}

std::size_t round_up(std::size_t n, std::size_t to) noexcept {
  if (n > std::numeric_limits<std::size_t>::max() - to) return n;
  return (n + to - 1) / to * to;
}

}  // namespace

struct response_parser::impl {
  explicit impl(std::size_t max) noexcept
      : max_bytes(std::min<std::size_t>(max, simdjson::SIMDJSON_MAXSIZE_BYTES)),
        parser(std::min<std::size_t>(round_up(max_bytes, 4096), simdjson::SIMDJSON_MAXSIZE_BYTES)) {}

  /// Grows the parser's buffers in powers of two up to its maximum, so a run
  /// of growing bodies does not reallocate each time.
  bool reserve_for(std::size_t size) noexcept {
    if (parser.capacity() >= size) return true;
    std::size_t want = std::max(size, k_min_capacity);
    if (want <= (std::size_t{1} << 62)) want = std::bit_ceil(want);
    want = std::min(want, parser.max_capacity());
    return parser.allocate(want) == simdjson::SUCCESS;
  }

  std::size_t max_bytes;
  od::parser parser;
};

response_parser::response_parser(std::size_t max_bytes)
    : impl_(std::make_unique<impl>(max_bytes)) {}

response_parser::~response_parser() = default;

std::size_t response_parser::padding() noexcept { return simdjson::SIMDJSON_PADDING; }

namespace {

// Back to the defaults, keeping each string's capacity.
void reset(response_info& info) noexcept {
  info.json_valid = false;
  info.id.clear();
  info.name.clear();
  info.updated_at.clear();
  info.status_code = 0;
  info.error.clear();
  info.message.clear();
  info.remote = false;
}

}  // namespace

response_info response_parser::parse(unsigned http_status, std::string& body) {
  response_info info;
  parse(http_status, body, info);
  return info;
}

void response_parser::parse(unsigned http_status, std::string& body, response_info& info) {
  reset(info);
  if (body.empty() || body.size() > impl_->max_bytes) return;
  // The caller's spare capacity is the padding; grow it rather than read past it.
  if (body.capacity() - body.size() < padding()) body.reserve(body.size() + padding());
  if (!impl_->reserve_for(body.size())) return;

  od::document doc;
  const simdjson::padded_string_view view(body.data(), body.size(), body.capacity());
  if (impl_->parser.iterate(view).get(doc) != simdjson::SUCCESS) return;

  const bool success = http_status >= 200 && http_status < 300;
  if (!read_document(doc, success, info)) {
    reset(info);
    return;
  }
  info.json_valid = true;
}

}  // namespace orgpatch
