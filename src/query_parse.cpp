// parse_bracket_query: the reading side of Truto's bracket query syntax, with the
// semantics of the `qs` library Truto's parser uses (default options: depth 5,
// arrayLimit 20, `&` delimiter, `+` as space, percent-decoding that falls back to
// the raw text on a malformed escape). Used by the emulator; pure.
//
// qs works in two passes, and so does this: first a flat map of decoded keys to
// their values (a repeated key collects its values into an array), then each key
// is split into its bracket chain ("a[b][]" -> a, [b], []) and the nested value it
// describes is merged into the result. Arrays may be sparse while they are being
// built (`a[1]=y&a[0]=x`), so they are kept as (index, value) pairs until the end,
// when they are compacted into JSON arrays in index order, as qs's compact() does.
#include "orgpatch/query.hpp"

#include <boost/json/array.hpp>
#include <boost/json/string.hpp>

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace orgpatch {
namespace {

namespace json = boost::json;

constexpr std::size_t k_depth = 5;         // qs `depth`
constexpr std::size_t k_array_limit = 20;  // qs `arrayLimit`: larger indices make object keys

struct qentry;

/// A value while it is being built: a string, `true` (qs sets a key to true when a
/// plain value is merged into an object), a sparse array, or an ordered object.
struct qnode {
  enum class kind : unsigned char { string, flag, array, object };
  kind k = kind::string;
  std::string str;
  std::vector<qentry> items;  ///< object: in insertion order; array: sorted by index
  std::size_t length = 0;     ///< array: JavaScript length (last index + 1)

  bool is_container() const noexcept { return k == kind::array || k == kind::object; }
};

struct qentry {
  std::string key;        ///< object key
  std::size_t index = 0;  ///< array index
  qnode value;
};

qnode make_string(std::string s) {
  qnode n;
  n.str = std::move(s);
  return n;
}

qnode make_array() {
  qnode n;
  n.k = qnode::kind::array;
  return n;
}

qnode make_object() {
  qnode n;
  n.k = qnode::kind::object;
  return n;
}

qnode* find_key(qnode& obj, std::string_view key) {
  for (auto& e : obj.items)
    if (e.key == key) return &e.value;
  return nullptr;
}

qnode* find_index(qnode& arr, std::size_t index) {
  auto it = std::lower_bound(arr.items.begin(), arr.items.end(), index,
                             [](const qentry& e, std::size_t i) { return e.index < i; });
  return it != arr.items.end() && it->index == index ? &it->value : nullptr;
}

void set_index(qnode& arr, std::size_t index, qnode value) {
  auto it = std::lower_bound(arr.items.begin(), arr.items.end(), index,
                             [](const qentry& e, std::size_t i) { return e.index < i; });
  if (it != arr.items.end() && it->index == index) {
    it->value = std::move(value);
  } else {
    qentry e;
    e.index = index;
    e.value = std::move(value);
    arr.items.insert(it, std::move(e));
  }
  arr.length = std::max(arr.length, index + 1);
}

void push(qnode& arr, qnode value) { set_index(arr, arr.length, std::move(value)); }

void set_key(qnode& obj, std::string key, qnode value) {
  if (auto* existing = find_key(obj, key)) {
    *existing = std::move(value);
    return;
  }
  qentry e;
  e.key = std::move(key);
  e.value = std::move(value);
  obj.items.push_back(std::move(e));
}

/// qs arrayToObject: the present indices become decimal keys.
qnode array_to_object(qnode arr) {
  qnode obj = make_object();
  for (auto& e : arr.items) set_key(obj, std::to_string(e.index), std::move(e.value));
  return obj;
}

/// qs utils.merge(target, source).
qnode merge(qnode target, qnode source) {
  if (!source.is_container()) {
    if (target.k == qnode::kind::array) {
      push(target, std::move(source));
    } else if (target.k == qnode::kind::object) {
      qnode flag;
      flag.k = qnode::kind::flag;
      set_key(target, source.str, std::move(flag));
    } else {
      qnode arr = make_array();
      push(arr, std::move(target));
      push(arr, std::move(source));
      return arr;
    }
    return target;
  }
  if (!target.is_container()) {
    // [target].concat(source): an array source is spread (holes kept), an object is one item.
    qnode arr = make_array();
    push(arr, std::move(target));
    if (source.k == qnode::kind::array) {
      const std::size_t base = arr.length;
      for (auto& e : source.items) set_index(arr, base + e.index, std::move(e.value));
      arr.length = base + source.length;
    } else {
      push(arr, std::move(source));
    }
    return arr;
  }
  if (target.k == qnode::kind::array && source.k == qnode::kind::array) {
    for (auto& e : source.items) {
      if (qnode* t = find_index(target, e.index)) {
        if (t->is_container() && e.value.is_container())
          *t = merge(std::move(*t), std::move(e.value));
        else
          push(target, std::move(e.value));
      } else {
        set_index(target, e.index, std::move(e.value));
      }
    }
    return target;
  }
  qnode acc = target.k == qnode::kind::array ? array_to_object(std::move(target)) : std::move(target);
  for (auto& e : source.items) {
    std::string key = source.k == qnode::kind::array ? std::to_string(e.index) : std::move(e.key);
    if (qnode* existing = find_key(acc, key))
      *existing = merge(std::move(*existing), std::move(e.value));
    else
      set_key(acc, std::move(key), std::move(e.value));
  }
  return acc;
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// qs's decoder: `+` is a space, then decodeURIComponent; a malformed escape leaves
/// the text as it was (with `+` already replaced), as qs's try/catch does.
std::string decode_component(std::string_view in) {
  std::string plus_replaced(in);
  std::replace(plus_replaced.begin(), plus_replaced.end(), '+', ' ');
  if (plus_replaced.find('%') == std::string::npos) return plus_replaced;
  std::string out;
  out.reserve(plus_replaced.size());
  for (std::size_t i = 0; i < plus_replaced.size(); ++i) {
    const char c = plus_replaced[i];
    if (c != '%') {
      out.push_back(c);
      continue;
    }
    if (i + 2 >= plus_replaced.size()) return plus_replaced;
    const int hi = hex_value(plus_replaced[i + 1]);
    const int lo = hex_value(plus_replaced[i + 2]);
    if (hi < 0 || lo < 0) return plus_replaced;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

/// A `[...]` group in a key: [begin, end), or none.
struct bracket_group {
  std::size_t begin = std::string_view::npos;
  std::size_t end = 0;
  bool found() const noexcept { return begin != std::string_view::npos; }
};

/// The next `[...]` (no brackets inside) at or after `from`.
bracket_group next_bracket(std::string_view key, std::size_t from) {
  for (std::size_t open = key.find('[', from); open != std::string_view::npos;
       open = key.find('[', open + 1)) {
    const std::size_t close = key.find_first_of("[]", open + 1);
    if (close == std::string_view::npos) return {};
    if (key[close] == ']') return {open, close + 1};
    // Another '[' first: the bracket group starts there instead.
  }
  return {};
}

/// qs parseKeys: "a[b][c]" -> {"a", "[b]", "[c]"}; beyond the depth the rest is one
/// key wrapped in brackets.
std::vector<std::string> split_key(std::string_view key) {
  std::vector<std::string> chain;
  bracket_group segment = next_bracket(key, 0);
  const std::string_view parent = segment.found() ? key.substr(0, segment.begin) : key;
  if (!parent.empty()) chain.emplace_back(parent);
  std::size_t depth = 0;
  while (segment.found() && depth < k_depth) {
    ++depth;
    chain.emplace_back(key.substr(segment.begin, segment.end - segment.begin));
    segment = next_bracket(key, segment.end);
  }
  if (segment.found()) chain.push_back("[" + std::string(key.substr(segment.begin)) + "]");
  return chain;
}

/// A decimal index as qs accepts it: String(parseInt(s)) === s, 0..arrayLimit.
std::optional<std::size_t> array_index(std::string_view s) {
  if (s.empty() || s.size() > 2) return std::nullopt;  // arrayLimit 20 has at most 2 digits
  if (s.size() > 1 && s[0] == '0') return std::nullopt;
  std::size_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::size_t>(c - '0');
  }
  if (v > k_array_limit) return std::nullopt;
  return v;
}

/// qs parseObject: the nested value a bracket chain describes, built from the leaf out.
std::optional<qnode> build_chain(const std::vector<std::string>& chain, qnode leaf) {
  for (std::size_t i = chain.size(); i-- > 0;) {
    const std::string& root = chain[i];
    if (root == "[]") {
      qnode arr = make_array();
      if (leaf.k == qnode::kind::array)
        arr = std::move(leaf);
      else
        push(arr, std::move(leaf));
      leaf = std::move(arr);
      continue;
    }
    const bool bracketed = root.size() >= 2 && root.front() == '[' && root.back() == ']';
    const std::string clean = bracketed ? root.substr(1, root.size() - 2) : root;
    if (bracketed) {
      if (auto index = array_index(clean)) {
        qnode arr = make_array();
        set_index(arr, *index, std::move(leaf));
        leaf = std::move(arr);
        continue;
      }
    }
    qnode obj = make_object();
    if (clean != "__proto__") set_key(obj, clean, std::move(leaf));
    leaf = std::move(obj);
  }
  return leaf;
}

json::value to_json(qnode&& n) {
  switch (n.k) {
    case qnode::kind::string:
      return json::string(n.str);
    case qnode::kind::flag:
      return true;
    case qnode::kind::array: {
      json::array arr;
      arr.reserve(n.items.size());
      for (auto& e : n.items) arr.push_back(to_json(std::move(e.value)));
      return arr;
    }
    case qnode::kind::object: {
      json::object obj;
      for (auto& e : n.items) obj[e.key] = to_json(std::move(e.value));
      return obj;
    }
  }
  return nullptr;
}

}  // namespace

json::object parse_bracket_query(std::string_view query) {
  if (!query.empty() && query.front() == '?') query.remove_prefix(1);

  // Pass 1: decoded keys in first-seen order, each with its values.
  std::vector<std::pair<std::string, std::vector<std::string>>> flat;
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (part.empty()) continue;
    // qs splits at "]=" when present, so that '=' inside a bracket stays in the key.
    const std::size_t bracket_equals = part.find("]=");
    const std::size_t eq = bracket_equals == std::string_view::npos ? part.find('=') : bracket_equals + 1;
    std::string key = decode_component(part.substr(0, eq));
    std::string value = eq == std::string_view::npos ? std::string{} : decode_component(part.substr(eq + 1));
    if (key.empty()) continue;
    auto it = std::find_if(flat.begin(), flat.end(), [&](const auto& p) { return p.first == key; });
    if (it == flat.end())
      flat.emplace_back(std::move(key), std::vector<std::string>{std::move(value)});
    else
      it->second.push_back(std::move(value));
  }

  // Pass 2: each key's bracket chain, merged into one object.
  qnode result = make_object();
  for (auto& [key, values] : flat) {
    qnode leaf;
    if (values.size() == 1) {
      leaf = make_string(std::move(values.front()));
    } else {
      leaf = make_array();
      for (auto& v : values) push(leaf, make_string(std::move(v)));
    }
    const auto chain = split_key(key);
    if (chain.empty()) continue;
    if (auto built = build_chain(chain, std::move(leaf)))
      result = merge(std::move(result), std::move(*built));
  }
  json::value out = to_json(std::move(result));
  if (auto* obj = out.if_object()) return std::move(*obj);
  return {};
}

}  // namespace orgpatch
