// The emulator's API: routes, Truto's validation and error bodies, the
// organization store with Mist's fields, and Idempotency-Key replays.
#include "emulator/api.hpp"

#include "orgpatch/query.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <deque>
#include <functional>
#include <mutex>
#include <unordered_map>

namespace orgpatch::emulator {
namespace {

namespace json = boost::json;

constexpr std::string_view k_model = "user-directory";
constexpr std::string_view k_resource = "organizations";
constexpr std::string_view k_unified_prefix = "/unified/";

/// One organization as the remote API (Juniper Mist) keeps it, and what it was sent.
/// An entry may only count requests (none applied, no 422 yet): it does not exist
/// for GET, organization_json() or `stats::organizations` until created.
struct organization {
  std::string name;
  std::int64_t created_ms = 0;
  std::int64_t updated_ms = 0;
  std::string remote;  ///< the Mist object as JSON text (compact: the store may hold millions); empty: not created
  std::uint64_t applies = 0;
  std::uint64_t requests = 0;  ///< PATCH requests counted (org_counts in api.hpp)
  /// The distinct Idempotency-Key values seen ("" for none), at most
  /// k_max_idempotency_keys_per_org; later new ones are not kept.
  std::vector<std::string> idempotency_keys;

  bool exists() const noexcept { return !remote.empty(); }
};

/// A 2xx answer kept for Idempotency-Key replays (compact: there may be millions).
struct stored_answer {
  unsigned status = 200;
  bool chunked = false;
  std::string body;
};

enum class response_format { unified, raw, normalized, stream };

/// The validated query parameters of an organization request.
struct org_query {
  std::string account;
  response_format format = response_format::unified;
  bool ignore_remote_data = false;
  std::vector<std::string> exclude_fields;
};

bool is_hex(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/// 8-4-4-4-12 hexadecimal digits, either case.
bool is_uuid_text(std::string_view s) noexcept {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
    } else if (!is_hex(s[i])) {
      return false;
    }
  }
  return true;
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

/// Strict percent-decoding of one path segment; nullopt on a malformed escape.
std::optional<std::string> decode_segment(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size() || !is_hex(in[i + 1]) || !is_hex(in[i + 2])) return std::nullopt;
    out.push_back(static_cast<char>(hex_value(in[i + 1]) * 16 + hex_value(in[i + 2])));
    i += 2;
  }
  return out;
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

std::int64_t to_unix_ms(api::clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string serialize_object(const json::object& o) { return json::serialize(o); }

/// Checks the Authorization header; an error response when it is not acceptable,
/// else the token in `token`.
std::optional<response> check_auth(const request& req, const std::optional<std::string>& required,
                                   std::string_view& token) {
  if (!req.authorization) return truto_error(401, "Missing Authorization header");
  const std::string_view value = trim(*req.authorization);
  constexpr std::string_view scheme = "Bearer ";
  if (value.size() < scheme.size() || !iequals(value.substr(0, scheme.size()), scheme))
    return truto_error(401, "Authorization header must be 'Bearer <token>'");
  token = trim(value.substr(scheme.size()));
  if (token.empty()) return truto_error(401, "Missing API token");
  if (required && token != *required) return truto_error(401, "Invalid API token");
  return std::nullopt;
}

/// Validates the query string of an organization request the way Truto does.
std::optional<response> parse_org_query(std::string_view query, org_query& out) {
  const json::object params = parse_bracket_query(query);
  for (const auto& [key, value] : params) {
    if (key == "integrated_account_id") {
      const auto* s = value.if_string();
      if (s == nullptr || !is_uuid_text(*s))
        return truto_error(400, "integrated_account_id must be a valid UUID");
      out.account.assign(s->data(), s->size());
    } else if (key == "truto_response_format") {
      const auto* s = value.if_string();
      if (s != nullptr && *s == "unified")
        out.format = response_format::unified;
      else if (s != nullptr && *s == "raw")
        out.format = response_format::raw;
      else if (s != nullptr && *s == "normalized")
        out.format = response_format::normalized;
      else if (s != nullptr && *s == "stream")
        out.format = response_format::stream;
      else
        return truto_error(400, "truto_response_format must be one of unified, raw, normalized, stream");
    } else if (key == "truto_ignore_remote_data") {
      const auto* s = value.if_string();
      if (s != nullptr && *s == "true")
        out.ignore_remote_data = true;
      else if (s != nullptr && *s == "false")
        out.ignore_remote_data = false;
      else
        return truto_error(400, "truto_ignore_remote_data must be true or false");
    } else if (key == "truto_exclude_fields") {
      // qs gives a string for a single plain `truto_exclude_fields=x`; take it as one field.
      if (const auto* s = value.if_string()) {
        out.exclude_fields.emplace_back(s->data(), s->size());
      } else if (const auto* arr = value.if_array()) {
        for (const auto& item : *arr) {
          const auto* f = item.if_string();
          if (f == nullptr) return truto_error(400, "truto_exclude_fields must be an array of strings");
          out.exclude_fields.emplace_back(f->data(), f->size());
        }
      } else {
        return truto_error(400, "truto_exclude_fields must be an array of strings");
      }
    } else if (key == "remote_query") {
      // Passed to the remote API untouched; Mist's update ignores it.
    } else if (key.starts_with("truto_")) {
      return truto_error(400, "Unknown query parameter " + std::string(key));
    }
  }
  if (out.account.empty()) return truto_error(400, "integrated_account_id is required");
  return std::nullopt;
}

/// The media type of a Content-Type value is application/json (parameters allowed).
bool is_json_media_type(std::string_view content_type) {
  const std::string_view media = trim(content_type.substr(0, content_type.find(';')));
  return iequals(media, "application/json");
}

/// 1 to 255 visible ASCII characters.
bool valid_idempotency_key(std::string_view key) noexcept {
  if (key.empty() || key.size() > 255) return false;
  return std::all_of(key.begin(), key.end(), [](char c) { return c >= 0x21 && c <= 0x7E; });
}

/// The update the remote API receives: unified `name` mapped to Mist's `name`, then
/// `remote_data` passed as is (its keys win). Validated as Mist would (remote 422).
std::optional<response> build_remote_update(const json::object& body, json::object& update) {
  if (const auto* name = body.if_contains("name")) update["name"] = *name;
  if (const auto* remote = body.if_contains("remote_data")) {
    const auto* obj = remote->if_object();
    if (obj == nullptr) return truto_error(400, "remote_data must be an object");
    for (const auto& [k, v] : *obj) update[k] = v;
  }
  if (const auto* name = update.if_contains("name")) {
    const auto* s = name->if_string();
    if (s == nullptr || s->empty()) return remote_error(422, "name: must be a non-empty string");
  }
  if (const auto* expiry = update.if_contains("session_expiry")) {
    const bool positive = (expiry->is_int64() && expiry->get_int64() > 0) ||
                          (expiry->is_uint64() && expiry->get_uint64() > 0);
    if (!positive) return remote_error(422, "session_expiry: must be a positive integer");
  }
  return std::nullopt;
}

/// Creates the organization in `org` (whose counters are kept) as first touched now.
void create_organization(organization& org, std::string_view id, std::int64_t now_ms) {
  org.name = "Organization " + std::string(id.substr(0, 8));
  org.created_ms = now_ms;
  org.updated_ms = now_ms;
  const std::int64_t now_s = now_ms / 1000;
  json::object remote;
  remote["id"] = id;
  remote["name"] = org.name;
  remote["session_expiry"] = 1440;
  remote["allow_mist"] = false;
  remote["alarmtemplate_id"] = nullptr;
  remote["orggroup_ids"] = json::array();
  remote["msp_id"] = nullptr;
  remote["created_time"] = now_s;
  remote["modified_time"] = now_s;
  org.remote = serialize_object(remote);
}

/// Counts one PATCH request for the organization `key` (an entry that only counts if
/// it was never created) and returns it. Call with the shard's mutex held.
organization& count_request(std::unordered_map<std::string, organization>& orgs, const std::string& key,
                            std::optional<std::string_view> idempotency_key) {
  organization& org = orgs.try_emplace(key).first->second;
  ++org.requests;
  const std::string_view k = idempotency_key.value_or(std::string_view{});
  if (org.idempotency_keys.size() < k_max_idempotency_keys_per_org &&
      std::find(org.idempotency_keys.begin(), org.idempotency_keys.end(), k) == org.idempotency_keys.end())
    org.idempotency_keys.emplace_back(k);
  return org;
}

/// Applies a validated update; Mist's read-only fields are ignored as Mist does.
void apply_update(organization& org, const json::object& update, std::int64_t now_ms) {
  json::object remote = json::parse(org.remote).as_object();
  for (const auto& [k, v] : update) {
    if (k == "id" || k == "created_time" || k == "modified_time") continue;
    remote[k] = v;
  }
  remote["modified_time"] = now_ms / 1000;
  if (const auto* name = remote.if_contains("name"); name != nullptr && name->is_string())
    org.name = std::string(name->get_string());
  org.updated_ms = now_ms;
  org.remote = serialize_object(remote);
  ++org.applies;
}

/// The answer for an organization, shaped by the request's query.
response organization_response(std::string_view id, const organization& org, const org_query& q) {
  response res;
  if (q.format == response_format::raw) {
    res.body = org.remote;
    return res;
  }
  json::object o;
  o["id"] = id;
  o["name"] = org.name;
  o["created_at"] = iso8601_ms(org.created_ms);
  o["updated_at"] = iso8601_ms(org.updated_ms);
  o["licenses"] = json::array();
  o["pricing_plan"] = nullptr;
  o["remote_data"] = json::parse(org.remote);
  for (const auto& field : q.exclude_fields) o.erase(field);
  if (q.ignore_remote_data) o.erase("remote_data");
  res.body = serialize_object(o);
  res.chunked = q.format == response_format::stream;
  return res;
}

std::string org_key(std::string_view account, std::string_view id) {
  std::string key;
  key.reserve(account.size() + 1 + id.size());
  key.append(account).append("/").append(id);
  return key;
}

}  // namespace

struct api::shard {
  mutable std::mutex mutex;
  std::unordered_map<std::string, organization> orgs;  ///< "<account>/<id>"
  std::unordered_map<std::string, stored_answer> answers;  ///< "<account>\n<path>\n<key>"
  std::deque<const std::string*> answer_order;         ///< keys of `answers`, oldest first
};

response truto_error(unsigned status, std::string_view message) {
  json::object o;
  o["statusCode"] = status;
  o["error"] = reason_phrase(status);
  o["message"] = message;
  response res;
  res.status = status;
  res.body = serialize_object(o);
  return res;
}

response remote_error(unsigned status, std::string_view message) {
  json::object o;
  o["statusCode"] = status;
  o["error"] = reason_phrase(status);
  o["message"] = message;
  o["truto_is_remote_error"] = true;
  o["raw_response"] = json::object{{"detail", message}};
  response res;
  res.status = status;
  res.body = serialize_object(o);
  return res;
}

std::string_view reason_phrase(unsigned status) noexcept {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

std::string iso8601_ms(std::int64_t unix_ms) {
  std::int64_t secs = unix_ms / 1000;
  std::int64_t ms = unix_ms % 1000;
  if (ms < 0) {
    ms += 1000;
    --secs;
  }
  const std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

api::api(api_options options)
    : options_(validated(std::move(options))),
      limits_(options_.rate_limit, options_.remote_limit),
      dice_(options_.faults) {
  faults_on_.store(options_.faults.any(), std::memory_order_relaxed);
  for (auto& s : shards_) s = std::make_unique<shard>();
}

api::~api() = default;

api::shard& api::shard_for(std::string_view integrated_account_id) const {
  return *shards_[std::hash<std::string_view>{}(integrated_account_id) % k_shards];
}

void api::count_status(unsigned status) noexcept {
  requests_.fetch_add(1, std::memory_order_relaxed);
  if (status < k_max_status) by_status_[status].fetch_add(1, std::memory_order_relaxed);
}

void api::count_response(unsigned status) noexcept { count_status(status); }

void api::count_connection() noexcept { connections_.fetch_add(1, std::memory_order_relaxed); }

response api::handle(const request& req, clock::time_point now) {
  bool counted = true;
  response res = route(req, now, counted);
  if (res.action == response::transport::reset_before || res.action == response::transport::stall)
    dropped_.fetch_add(1, std::memory_order_relaxed);
  else if (counted)
    count_status(res.status);
  return res;
}

response api::route(const request& req, clock::time_point now, bool& counted) {
  const std::size_t qmark = req.target.find('?');
  const std::string_view path = req.target.substr(0, qmark);
  const std::string_view query =
      qmark == std::string_view::npos ? std::string_view{} : req.target.substr(qmark + 1);

  if (path.starts_with("/_emulator/")) {
    // The emulator's own routes are not counted, so that reading stats does not change them.
    counted = false;
    if (path == "/_emulator/stats") {
      if (req.method != "GET") {
        response res = truto_error(405, "Method " + std::string(req.method) + " not allowed");
        res.headers.emplace_back("Allow", "GET");
        return res;
      }
      const json::object params = parse_bracket_query(query);
      bool summary = false;
      if (const auto* s = params.if_contains("summary"); s != nullptr && s->is_string())
        summary = s->get_string() == "1" || s->get_string() == "true";
      response res;
      res.body = stats_json(!summary);
      return res;
    }
    if (path == "/_emulator/reset") {
      if (req.method != "POST") {
        response res = truto_error(405, "Method " + std::string(req.method) + " not allowed");
        res.headers.emplace_back("Allow", "POST");
        return res;
      }
      reset();
      response res;
      res.body = R"({"reset":true})";
      return res;
    }
    return truto_error(404, "Route not found");
  }
  if (path.starts_with(k_unified_prefix)) return handle_organization(req, path, query, now);
  return truto_error(404, "Route not found");
}

response api::handle_organization(const request& req, std::string_view path, std::string_view query,
                                  clock::time_point now) {
  // /unified/{model}/{resource}/{id}: exactly three non-empty segments.
  std::string_view rest = path.substr(k_unified_prefix.size());
  std::array<std::string_view, 3> raw{};
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const std::size_t slash = rest.find('/');
    if ((slash == std::string_view::npos) != (i == raw.size() - 1)) return truto_error(404, "Route not found");
    raw[i] = rest.substr(0, slash);
    if (raw[i].empty()) return truto_error(404, "Route not found");
    rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
  }
  const bool is_patch = req.method == "PATCH";
  if (!is_patch && req.method != "GET") {
    response res = truto_error(405, "Method " + std::string(req.method) + " not allowed");
    res.headers.emplace_back("Allow", "GET, PATCH");
    return res;
  }
  std::string_view token;
  if (auto err = check_auth(req, options_.token, token)) return std::move(*err);

  const auto model = decode_segment(raw[0]);
  const auto resource = decode_segment(raw[1]);
  const auto id = decode_segment(raw[2]);
  if (!model || !resource || !id) return truto_error(400, "Malformed percent-encoding in the path");
  if (*model != k_model || *resource != k_resource)
    return truto_error(404, "Unified model resource " + *model + "/" + *resource + " not found");

  org_query q;
  if (auto err = parse_org_query(query, q)) return std::move(*err);

  // Truto's own limits, once the token and the account are known.
  if (auto limited = gate(token, q.account, now)) return std::move(*limited);

  json::object body;
  if (is_patch) {
    if (req.idempotency_key && !valid_idempotency_key(*req.idempotency_key))
      return truto_error(400, "Idempotency-Key must be 1 to 255 visible ASCII characters");
    if (!req.content_type || !is_json_media_type(*req.content_type))
      return truto_error(415, "Content-Type must be application/json");
    boost::system::error_code ec;
    json::value parsed = json::parse(req.body, ec);
    if (ec || !parsed.is_object()) return truto_error(400, "Request body must be a JSON object");
    body = std::move(parsed.get_object());
  }

  // From here on the request reaches the remote API, whose limit (when on) every
  // answer reports in its headers.
  header_fields limit_headers;
  const auto with_limit_headers = [&limit_headers](response res) {
    for (const auto& h : limit_headers) res.headers.push_back(h);
    return res;
  };

  if (!is_uuid_text(*id)) {
    if (auto limited = remote_gate(token, q.account, now, limit_headers)) return std::move(*limited);
    return with_limit_headers(remote_error(404, "Organization not found"));
  }

  const std::string key = org_key(q.account, *id);
  shard& s = shard_for(q.account);

  if (!is_patch) {
    if (auto limited = remote_gate(token, q.account, now, limit_headers)) return std::move(*limited);
    std::lock_guard lock(s.mutex);
    const auto it = s.orgs.find(key);
    if (it == s.orgs.end() || !it->second.exists())
      return with_limit_headers(remote_error(404, "Organization not found"));
    return with_limit_headers(organization_response(*id, it->second, q));
  }

  // Validate the remote update before taking the lock; its answer is given after the
  // replay check, as the API answers a repeated key before looking at the body again.
  json::object update;
  std::optional<response> invalid = build_remote_update(body, update);
  if (invalid && invalid->status == 400) return std::move(*invalid);

  // Faults strike only requests that would succeed; some answer before applying.
  fault_plan plan;
  if (!invalid) {
    plan = draw_faults(req.connection_request);
    if (auto faulted = pre_apply_fault(plan, q.account, now)) {
      {
        std::lock_guard lock(s.mutex);
        count_request(s.orgs, key, req.idempotency_key);
      }
      post_apply_faults(plan, *faulted);
      return std::move(*faulted);
    }
  }

  std::string answer_key;
  if (req.idempotency_key) {
    answer_key.reserve(q.account.size() + path.size() + req.idempotency_key->size() + 2);
    answer_key.append(q.account).append("\n").append(*model).append("/").append(*resource).append("/");
    answer_key.append(*id).append("\n").append(*req.idempotency_key);
  }
  const std::int64_t now_ms = to_unix_ms(now);

  std::lock_guard lock(s.mutex);
  organization& org = count_request(s.orgs, key, req.idempotency_key);
  if (!answer_key.empty()) {
    if (const auto it = s.answers.find(answer_key); it != s.answers.end()) {
      // Truto answers a replay itself: the remote API (and its limit) is not involved.
      replays_.fetch_add(1, std::memory_order_relaxed);
      response res;
      res.status = it->second.status;
      res.chunked = it->second.chunked;
      res.body = it->second.body;
      res.headers.emplace_back("Idempotent-Replayed", "true");
      post_apply_faults(plan, res);
      return res;
    }
  }
  // The limiter's mutex nests inside the shard's, never the other way round.
  if (auto limited = remote_gate(token, q.account, now, limit_headers)) return std::move(*limited);
  // Every UUID organization exists: created when first touched.
  if (!org.exists()) create_organization(org, *id, now_ms);
  if (invalid) return with_limit_headers(std::move(*invalid));  // failed answers are not stored

  apply_update(org, update, now_ms);
  applied_.fetch_add(1, std::memory_order_relaxed);
  response res = organization_response(*id, org, q);

  const std::size_t cap = (options_.idempotency_max_keys + k_shards - 1) / k_shards;
  if (!answer_key.empty() && cap > 0) {
    while (s.answers.size() >= cap && !s.answer_order.empty()) {
      s.answers.erase(*s.answer_order.front());
      s.answer_order.pop_front();
    }
    const auto stored = s.answers.emplace(std::move(answer_key), stored_answer{res.status, res.chunked, res.body}).first;
    s.answer_order.push_back(&stored->first);
  }
  res = with_limit_headers(std::move(res));
  post_apply_faults(plan, res);
  return res;
}

stats api::snapshot(bool with_applies) const {
  stats st;
  st.requests = requests_.load(std::memory_order_relaxed);
  for (unsigned code = 0; code < k_max_status; ++code)
    if (const auto n = by_status_[code].load(std::memory_order_relaxed); n != 0) st.by_status[code] = n;
  st.connections = connections_.load(std::memory_order_relaxed);
  st.applied = applied_.load(std::memory_order_relaxed);
  st.replays = replays_.load(std::memory_order_relaxed);
  st.dropped = dropped_.load(std::memory_order_relaxed);
  st.rate_limited.token = limited_token_.load(std::memory_order_relaxed);
  st.rate_limited.account = limited_account_.load(std::memory_order_relaxed);
  st.rate_limited.remote = limited_remote_.load(std::memory_order_relaxed);
  st.rate_limited.fault = limited_fault_.load(std::memory_order_relaxed);
  st.over_limit = st.rate_limited.token + st.rate_limited.account + st.rate_limited.remote;
  st.early_retries = early_.load(std::memory_order_relaxed);
  st.early_retries_token = early_token_.load(std::memory_order_relaxed);
  st.early_retries_account = early_account_.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < k_fault_counters; ++i)
    st.faults[std::string(fault_name(static_cast<fault_counter>(i)))] = faults_[i].load(std::memory_order_relaxed);
  for (const auto& s : shards_) {
    std::lock_guard lock(s->mutex);
    for (const auto& [key, org] : s->orgs) {
      if (org.exists()) ++st.organizations;
      const org_counts counts{org.requests, org.idempotency_keys.size()};
      st.max_applies_per_org = std::max(st.max_applies_per_org, org.applies);
      st.max_requests_per_org = std::max(st.max_requests_per_org, counts.requests);
      st.max_idempotency_keys_per_org = std::max(st.max_idempotency_keys_per_org, counts.idempotency_keys);
      if (!with_applies) continue;
      if (org.applies > 0) st.applies.emplace(key, org.applies);
      if (counts.requests > 0) st.per_org.emplace(key, counts);
    }
  }
  return st;
}

std::string api::stats_json(bool with_applies) const {
  const stats st = snapshot(with_applies);
  json::object o;
  o["requests"] = st.requests;
  json::object by_status;
  for (const auto& [code, n] : st.by_status) by_status[std::to_string(code)] = n;
  o["by_status"] = std::move(by_status);
  o["connections"] = st.connections;
  o["applied"] = st.applied;
  o["replays"] = st.replays;
  o["organizations"] = st.organizations;
  o["max_applies_per_org"] = st.max_applies_per_org;
  o["max_requests_per_org"] = st.max_requests_per_org;
  o["max_idempotency_keys_per_org"] = st.max_idempotency_keys_per_org;
  o["dropped"] = st.dropped;
  o["rate_limited"] = {{"token", st.rate_limited.token},
                       {"account", st.rate_limited.account},
                       {"remote", st.rate_limited.remote},
                       {"fault", st.rate_limited.fault}};
  o["over_limit"] = st.over_limit;
  o["early_retries"] = st.early_retries;
  o["early_retries_by"] = {{"token", st.early_retries_token}, {"account", st.early_retries_account}};
  json::object faults;
  for (const auto& [kind, n] : st.faults) faults[kind] = n;
  o["faults"] = std::move(faults);
  if (with_applies) {
    json::object applies;
    applies.reserve(st.applies.size());
    for (const auto& [key, n] : st.applies) applies[key] = n;
    o["applies"] = std::move(applies);
    json::object per_org;
    per_org.reserve(st.per_org.size());
    for (const auto& [key, counts] : st.per_org)
      per_org[key] = {{"requests", counts.requests}, {"idempotency_keys", counts.idempotency_keys}};
    o["per_org"] = std::move(per_org);
  }
  return serialize_object(o);
}

std::optional<std::string> api::organization_json(std::string_view integrated_account_id,
                                                  std::string_view id) const {
  shard& s = shard_for(integrated_account_id);
  std::lock_guard lock(s.mutex);
  const auto it = s.orgs.find(org_key(integrated_account_id, id));
  if (it == s.orgs.end() || !it->second.exists()) return std::nullopt;
  return organization_response(id, it->second, org_query{}).body;
}

void api::reset() {
  for (auto& s : shards_) {
    std::lock_guard lock(s->mutex);
    s->orgs.clear();
    s->answer_order.clear();
    s->answers.clear();
  }
  requests_.store(0, std::memory_order_relaxed);
  for (auto& n : by_status_) n.store(0, std::memory_order_relaxed);
  connections_.store(0, std::memory_order_relaxed);
  applied_.store(0, std::memory_order_relaxed);
  replays_.store(0, std::memory_order_relaxed);
  dropped_.store(0, std::memory_order_relaxed);
  limits_.reset();
  {
    std::lock_guard lock(dice_mutex_);
    dice_.reseed();
  }
  for (auto* n : {&limited_token_, &limited_account_, &limited_remote_, &limited_fault_, &early_, &early_token_,
                  &early_account_})
    n->store(0, std::memory_order_relaxed);
  for (auto& n : faults_) n.store(0, std::memory_order_relaxed);
}

}  // namespace orgpatch::emulator
