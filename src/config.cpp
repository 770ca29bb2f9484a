#include "orgpatch/config.hpp"

#include "orgpatch/job.hpp"

#include <boost/json/parse.hpp>
#include <boost/url/parse.hpp>
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <functional>
#include <limits>
#include <algorithm>
#include <map>

namespace orgpatch {
namespace {

// One loader per key: reads a scalar (or mapping) into the config, or throws
// a message without the key (the caller adds "file: key: ").
using setter = std::function<void(config&, const YAML::Node&)>;

std::string scalar(const YAML::Node& n) {
  if (!n.IsScalar()) throw std::runtime_error("expected a single value");
  return n.Scalar();
}

bool is_null(const YAML::Node& n) { return n.IsNull(); }

template <class T>
T number(const YAML::Node& n, T lo, T hi) {
  const std::string s = scalar(n);
  T v{};
  try {
    v = n.as<T>();
  } catch (const YAML::Exception&) {
    throw std::runtime_error(fmt::format("\"{}\" is not a number", s));
  }
  if constexpr (std::is_floating_point_v<T>) {
    if (!std::isfinite(v)) throw std::runtime_error(fmt::format("\"{}\" is not a finite number", s));
  }
  if (v < lo || v > hi) throw std::runtime_error(fmt::format("{} is out of range [{}, {}]", s, lo, hi));
  return v;
}

bool boolean(const YAML::Node& n) {
  const std::string s = scalar(n);
  try {
    return n.as<bool>();
  } catch (const YAML::Exception&) {
    throw std::runtime_error(fmt::format("\"{}\" is not true or false", s));
  }
}

std::optional<std::string> optional_string(const YAML::Node& n) {
  if (is_null(n)) return std::nullopt;
  return scalar(n);
}

// YAML → JSON for api.default_query (mappings, sequences, scalars as strings,
// except true/false which stay booleans).
boost::json::value to_json(const YAML::Node& n) {
  if (n.IsMap()) {
    boost::json::object o;
    for (const auto& kv : n) o[kv.first.Scalar()] = to_json(kv.second);
    return o;
  }
  if (n.IsSequence()) {
    boost::json::array a;
    for (const auto& v : n) a.push_back(to_json(v));
    return a;
  }
  if (n.IsNull()) return nullptr;
  const std::string& s = n.Scalar();
  if (n.Tag() != "!" && (s == "true" || s == "false")) return s == "true";
  return boost::json::string(s);
}

const std::vector<std::pair<std::string, setter>>& setters() {
  static const std::vector<std::pair<std::string, setter>> table = {
      {"api.base_url", [](config& c, const YAML::Node& n) { c.api.base_url = scalar(n); }},
      {"api.unified_model", [](config& c, const YAML::Node& n) { c.api.unified_model = scalar(n); }},
      {"api.resource", [](config& c, const YAML::Node& n) { c.api.resource = scalar(n); }},
      {"api.token_file", [](config& c, const YAML::Node& n) { c.api.token_file = optional_string(n); }},
      {"api.default_integrated_account_id",
       [](config& c, const YAML::Node& n) { c.api.default_integrated_account_id = optional_string(n); }},
      {"api.default_query",
       [](config& c, const YAML::Node& n) {
         if (is_null(n)) {
           c.api.default_query.clear();
           return;
         }
         if (!n.IsMap()) throw std::runtime_error("expected a mapping");
         c.api.default_query = to_json(n).as_object();
       }},
      {"api.allow_http", [](config& c, const YAML::Node& n) { c.api.allow_http = boolean(n); }},
      {"input.max_line_bytes",
       [](config& c, const YAML::Node& n) {
         c.input.max_line_bytes = number<std::size_t>(n, 2, std::size_t{1} << 30);
       }},
      {"tls.verify", [](config& c, const YAML::Node& n) { c.tls.verify = boolean(n); }},
      {"tls.ca_file", [](config& c, const YAML::Node& n) { c.tls.ca_file = optional_string(n); }},
      {"http.connections",
       [](config& c, const YAML::Node& n) { c.http.connections = number<unsigned>(n, 1, 4096); }},
      {"http.connect_timeout_ms",
       [](config& c, const YAML::Node& n) { c.http.connect_timeout_ms = number<unsigned>(n, 1, 3600000); }},
      {"http.request_timeout_ms",
       [](config& c, const YAML::Node& n) { c.http.request_timeout_ms = number<unsigned>(n, 1, 3600000); }},
      {"http.max_response_bytes",
       [](config& c, const YAML::Node& n) {
         c.http.max_response_bytes = number<std::size_t>(n, 1024, std::size_t{1} << 30);
       }},
      {"rate_limit.requests_per_second",
       [](config& c, const YAML::Node& n) { c.rate_limit.requests_per_second = number<double>(n, 0, 1e9); }},
      {"rate_limit.burst", [](config& c, const YAML::Node& n) { c.rate_limit.burst = number<double>(n, 1, 1e9); }},
      {"rate_limit.per_account_requests_per_second",
       [](config& c, const YAML::Node& n) {
         c.rate_limit.per_account_requests_per_second = number<double>(n, 0, 1e9);
       }},
      {"rate_limit.per_account_burst",
       [](config& c, const YAML::Node& n) { c.rate_limit.per_account_burst = number<double>(n, 1, 1e9); }},
      {"rate_limit.adaptive", [](config& c, const YAML::Node& n) { c.rate_limit.adaptive = boolean(n); }},
      {"retry.max_attempts",
       [](config& c, const YAML::Node& n) { c.retry.max_attempts = number<unsigned>(n, 1, 1000); }},
      {"retry.base_delay_ms",
       [](config& c, const YAML::Node& n) { c.retry.base_delay_ms = number<unsigned>(n, 0, 3600000); }},
      {"retry.max_delay_ms",
       [](config& c, const YAML::Node& n) { c.retry.max_delay_ms = number<unsigned>(n, 0, 3600000); }},
      {"retry.job_deadline_s",
       [](config& c, const YAML::Node& n) { c.retry.job_deadline_s = number<unsigned>(n, 1, 30 * 86400); }},
      {"retry.budget_percent",
       [](config& c, const YAML::Node& n) { c.retry.budget_percent = number<double>(n, 0, 100); }},
      {"output.results", [](config& c, const YAML::Node& n) { c.output.results = optional_string(n); }},
      {"output.dead_letter", [](config& c, const YAML::Node& n) { c.output.dead_letter = optional_string(n); }},
      {"output.fsync",
       [](config& c, const YAML::Node& n) {
         const std::string s = scalar(n);
         if (s == "none") c.output.fsync = fsync_mode::none;
         else if (s == "interval") c.output.fsync = fsync_mode::interval;
         else if (s == "always") c.output.fsync = fsync_mode::always;
         else throw std::runtime_error(fmt::format("\"{}\" is not one of none, interval, always", s));
       }},
      {"log.level",
       [](config& c, const YAML::Node& n) {
         const std::string s = scalar(n);
         static const std::vector<std::string> levels = {"trace", "debug", "info", "warn", "error", "critical", "off"};
         if (std::find(levels.begin(), levels.end(), s) == levels.end())
           throw std::runtime_error(fmt::format("\"{}\" is not one of trace, debug, info, warn, error, critical, off", s));
         c.log.level = s;
       }},
      {"shutdown_grace_s",
       [](config& c, const YAML::Node& n) { c.shutdown_grace_s = number<unsigned>(n, 0, 86400); }},
      {"serve.spool_dir", [](config& c, const YAML::Node& n) { c.serve.spool_dir = scalar(n); }},
      // null or "": no /metrics.
      {"serve.metrics_listen",
       [](config& c, const YAML::Node& n) { c.serve.metrics_listen = optional_string(n).value_or(""); }},
      {"serve.redis.url", [](config& c, const YAML::Node& n) { c.serve.redis.url = optional_string(n); }},
      {"serve.redis.stream", [](config& c, const YAML::Node& n) { c.serve.redis.stream = scalar(n); }},
      {"serve.redis.group", [](config& c, const YAML::Node& n) { c.serve.redis.group = scalar(n); }},
      {"serve.redis.consumer",
       [](config& c, const YAML::Node& n) { c.serve.redis.consumer = optional_string(n); }},
      {"serve.redis.max_deliveries",
       [](config& c, const YAML::Node& n) { c.serve.redis.max_deliveries = number<unsigned>(n, 1, 1000000); }},
      {"serve.redis.claim_idle_ms",
       [](config& c, const YAML::Node& n) { c.serve.redis.claim_idle_ms = number<unsigned>(n, 1, 86400000); }},
      {"serve.redis.dead_letter_stream",
       [](config& c, const YAML::Node& n) { c.serve.redis.dead_letter_stream = scalar(n); }},
      {"serve.redis.results_stream",
       [](config& c, const YAML::Node& n) { c.serve.redis.results_stream = optional_string(n); }},
  };
  return table;
}

// Walks a mapping: a key is either a leaf in the table or a section (a prefix of
// table keys) to descend into; anything else is unknown.
void apply(config& c, const YAML::Node& map, const std::string& prefix, const std::string& file) {
  const auto& table = setters();
  for (const auto& kv : map) {
    const std::string name = prefix + kv.first.Scalar();
    const auto leaf = std::find_if(table.begin(), table.end(), [&](const auto& e) { return e.first == name; });
    if (leaf != table.end()) {
      try {
        leaf->second(c, kv.second);
      } catch (const std::exception& e) {
        throw config_error(fmt::format("{}:{}: {}: {}", file, kv.second.Mark().line + 1, name, e.what()));
      }
      continue;
    }
    const std::string section = name + ".";
    const bool is_section = std::any_of(table.begin(), table.end(),
                                        [&](const auto& e) { return e.first.rfind(section, 0) == 0; });
    if (!is_section)
      throw config_error(fmt::format("{}:{}: {}: unknown key", file, kv.first.Mark().line + 1, name));
    if (kv.second.IsNull()) continue;
    if (!kv.second.IsMap())
      throw config_error(fmt::format("{}:{}: {}: expected a mapping", file, kv.second.Mark().line + 1, name));
    apply(c, kv.second, section, file);
  }
}

}  // namespace

config load_config(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw config_error(fmt::format("{}: cannot read the config file", path));
  } catch (const YAML::Exception& e) {
    throw config_error(fmt::format("{}:{}: not valid YAML: {}", path, e.mark.line + 1, e.msg));
  }
  config c;
  if (root.IsNull()) return c;
  if (!root.IsMap()) throw config_error(fmt::format("{}: expected a mapping at the top level", path));
  apply(c, root, "", path);
  return c;
}

void validate_config(const config& c) {
  auto url = boost::urls::parse_absolute_uri(c.api.base_url);
  if (!url) throw config_error(fmt::format("api.base_url: \"{}\" is not an absolute URL", c.api.base_url));
  const auto scheme = url->scheme();
  if (scheme != "https" && scheme != "http")
    throw config_error(fmt::format("api.base_url: scheme \"{}\" is not https", scheme));
  if (scheme == "http" && !c.api.allow_http)
    throw config_error("api.base_url: plain http:// is refused unless api.allow_http is true");
  if (url->host().empty()) throw config_error("api.base_url: no host");
  if (url->has_query() || url->has_fragment())
    throw config_error("api.base_url: must not have a query or fragment");
  if (c.api.unified_model.empty() || c.api.unified_model.find('/') != std::string::npos)
    throw config_error("api.unified_model: must be one non-empty path segment");
  if (c.api.resource.empty() || c.api.resource.find('/') != std::string::npos)
    throw config_error("api.resource: must be one non-empty path segment");
  if (c.api.default_integrated_account_id && !is_uuid(*c.api.default_integrated_account_id))
    throw config_error("api.default_integrated_account_id: not a UUID");
}

std::vector<std::string> config_keys() {
  std::vector<std::string> keys;
  for (const auto& e : setters()) keys.push_back(e.first);
  return keys;
}

}  // namespace orgpatch
