/// The configuration of DESIGN.md §7: a plain aggregate with the documented
/// defaults, loaded from YAML (yaml-cpp) and then overridden by flags.
#pragma once

#include "orgpatch/results.hpp"

#include <boost/json/object.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace orgpatch {

struct api_config {
  std::string base_url = "https://api.truto.one";
  std::string unified_model = "user-directory";
  std::string resource = "organizations";
  std::optional<std::string> token_file;
  std::optional<std::string> default_integrated_account_id;
  boost::json::object default_query;
  bool allow_http = false;  ///< plain http:// only when true
};

struct input_config {
  std::size_t max_line_bytes = 1 << 20;
};

struct tls_config {
  bool verify = true;
  std::optional<std::string> ca_file;
};

struct http_config {
  unsigned connections = 32;
  unsigned connect_timeout_ms = 5000;
  unsigned request_timeout_ms = 60000;
  std::size_t max_response_bytes = 1 << 20;
};

struct rate_limit_config {
  double requests_per_second = 45;  ///< 0: unlimited
  double burst = 50;
  double per_account_requests_per_second = 4.5;  ///< 0: unlimited
  double per_account_burst = 5;
  bool adaptive = true;
};

struct retry_config {
  unsigned max_attempts = 6;
  unsigned base_delay_ms = 200;
  unsigned max_delay_ms = 30000;
  unsigned job_deadline_s = 3600;
  double budget_percent = 20;
};

struct output_config {
  std::optional<std::string> results;      ///< null: named after the input
  std::optional<std::string> dead_letter;  ///< null: named after the input
  fsync_mode fsync = fsync_mode::interval;
};

struct log_config {
  std::string level = "info";
};

struct redis_config {
  std::optional<std::string> url;
  std::string stream = "orgpatch:jobs";
  std::string group = "orgpatchd";
  std::optional<std::string> consumer;
  unsigned max_deliveries = 5;
  unsigned claim_idle_ms = 10000;
  std::string dead_letter_stream = "orgpatch:dead";
  std::optional<std::string> results_stream;
};

struct serve_config {
  std::string spool_dir = "/var/lib/orgpatchd/spool";
  std::string metrics_listen = "127.0.0.1:9464";  ///< HOST:PORT of /metrics; empty (null in YAML): none
  redis_config redis;
};

struct config {
  api_config api;
  input_config input;
  tls_config tls;
  http_config http;
  rate_limit_config rate_limit;
  retry_config retry;
  output_config output;
  log_config log;
  unsigned shutdown_grace_s = 30;
  serve_config serve;
};

/// Loads a YAML config file over the defaults. Throws config_error naming the
/// file and the key (e.g. "orgpatchd.yaml: http.conections: unknown key") for an
/// unknown key, a value of the wrong type or out of range, or unreadable YAML.
config load_config(const std::string& path);

/// Checks cross-field rules (base_url scheme and allow_http, ranges). Throws
/// config_error naming the key.
void validate_config(const config& c);

/// Every dotted key load_config reads (e.g. "rate_limit.per_account_burst",
/// "serve.redis.claim_idle_ms"; a mapping read whole, like "api.default_query",
/// is one key), in the order of config/orgpatchd.yaml. Built from the loader's
/// own table, so it cannot drift from what is read; the tests check the example
/// config and the README against it. Thread-safe.
std::vector<std::string> config_keys();

struct config_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace orgpatch
