#include "orgpatch/config.hpp"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

namespace orgpatch {
namespace {

std::string write_temp(const std::string& text) {
  static int n = 0;
  const std::string path = ::testing::TempDir() + "orgpatch_config_" + std::to_string(::getpid()) + "_" +
                           std::to_string(++n) + ".yaml";
  std::ofstream(path) << text;
  return path;
}

std::string error_of(const std::string& yaml) {
  try {
    (void)load_config(write_temp(yaml));
  } catch (const config_error& e) {
    return e.what();
  }
  return "";
}

TEST(ConfigTest, DefaultsAreTheDocumentedOnes) {
  const config c;
  EXPECT_EQ(c.api.base_url, "https://api.truto.one");
  EXPECT_EQ(c.http.connections, 32u);
  EXPECT_DOUBLE_EQ(c.rate_limit.requests_per_second, 45);
  EXPECT_DOUBLE_EQ(c.rate_limit.burst, 50);
  EXPECT_DOUBLE_EQ(c.rate_limit.per_account_requests_per_second, 4.5);
  EXPECT_DOUBLE_EQ(c.rate_limit.per_account_burst, 5);
  EXPECT_EQ(c.retry.max_attempts, 6u);
  EXPECT_EQ(c.output.fsync, fsync_mode::interval);
  EXPECT_TRUE(c.tls.verify);
}

TEST(ConfigTest, LoadsNestedKeys) {
  const config c = load_config(write_temp(R"(
api:
  base_url: https://127.0.0.1:8443
  default_query: {truto_ignore_remote_data: true, remote_query: {a: "1"}}
http: {connections: 8, max_response_bytes: 65536}
rate_limit: {requests_per_second: 0}
output: {fsync: always, results: /tmp/r.jsonl}
serve: {redis: {url: "redis://127.0.0.1:6379", max_deliveries: 3}}
shutdown_grace_s: 5
)"));
  EXPECT_EQ(c.api.base_url, "https://127.0.0.1:8443");
  EXPECT_EQ(c.http.connections, 8u);
  EXPECT_EQ(c.http.max_response_bytes, 65536u);
  EXPECT_DOUBLE_EQ(c.rate_limit.requests_per_second, 0);
  EXPECT_EQ(c.output.fsync, fsync_mode::always);
  EXPECT_EQ(c.output.results, "/tmp/r.jsonl");
  EXPECT_EQ(c.serve.redis.url, "redis://127.0.0.1:6379");
  EXPECT_EQ(c.serve.redis.max_deliveries, 3u);
  EXPECT_EQ(c.shutdown_grace_s, 5u);
  EXPECT_EQ(c.api.default_query.at("truto_ignore_remote_data"), true);
  EXPECT_EQ(c.api.default_query.at("remote_query").at("a"), "1");
}

TEST(ConfigTest, MetricsListenNullOrEmptyTurnsMetricsOff) {
  EXPECT_EQ(config{}.serve.metrics_listen, "127.0.0.1:9464");
  EXPECT_EQ(load_config(write_temp("serve: {metrics_listen: null}\n")).serve.metrics_listen, "");
  EXPECT_EQ(load_config(write_temp("serve: {metrics_listen: \"\"}\n")).serve.metrics_listen, "");
  EXPECT_EQ(load_config(write_temp("serve: {metrics_listen: \"[::1]:0\"}\n")).serve.metrics_listen, "[::1]:0");
}

TEST(ConfigTest, UnknownKeyIsNamed) {
  EXPECT_NE(error_of("http:\n  conections: 3\n").find("http.conections: unknown key"), std::string::npos);
  EXPECT_NE(error_of("colour: red\n").find("colour: unknown key"), std::string::npos);
  EXPECT_NE(error_of("serve: {redis: {urll: x}}\n").find("serve.redis.urll: unknown key"), std::string::npos);
}

TEST(ConfigTest, BadValuesAreNamedWithLine) {
  const std::string e = error_of("http:\n  connections: lots\n");
  EXPECT_NE(e.find(":2: http.connections:"), std::string::npos) << e;
  EXPECT_NE(error_of("http: {connections: 0}").find("out of range"), std::string::npos);
  EXPECT_NE(error_of("output: {fsync: sometimes}").find("output.fsync"), std::string::npos);
  EXPECT_NE(error_of("tls: {verify: maybe}").find("tls.verify"), std::string::npos);
  EXPECT_NE(error_of("api: [1, 2]").find("api: expected a mapping"), std::string::npos);
  EXPECT_NE(error_of("api: {base_url: [a]}").find("api.base_url"), std::string::npos);
  EXPECT_NE(error_of("a: [unclosed").find("not valid YAML"), std::string::npos);
}

TEST(ConfigTest, ValidationRefusesPlainHttpUnlessAllowed) {
  config c;
  c.api.base_url = "http://127.0.0.1:1";
  EXPECT_THROW(validate_config(c), config_error);
  c.api.allow_http = true;
  EXPECT_NO_THROW(validate_config(c));
  c.api.base_url = "ftp://x";
  EXPECT_THROW(validate_config(c), config_error);
  c.api.base_url = "https://x/?q=1";
  EXPECT_THROW(validate_config(c), config_error);
  c = config{};
  c.api.default_integrated_account_id = "not-a-uuid";
  EXPECT_THROW(validate_config(c), config_error);
}

TEST(ConfigTest, MissingFileIsNamed) {
  try {
    (void)load_config("/nonexistent/orgpatchd.yaml");
    FAIL();
  } catch (const config_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/orgpatchd.yaml"), std::string::npos);
  }
}

}  // namespace
}  // namespace orgpatch

namespace orgpatch {
namespace {

TEST(ConfigTest, ExampleConfigLoadsAndHoldsEveryKeyWithItsDefault) {
  const std::string path = (std::filesystem::path(ORGPATCH_SOURCE_DIR) / "config" / "orgpatchd.yaml").string();
  const config c = load_config(path);
  const config d;
  EXPECT_EQ(c.api.base_url, d.api.base_url);
  EXPECT_EQ(c.api.unified_model, d.api.unified_model);
  EXPECT_EQ(c.api.resource, d.api.resource);
  EXPECT_EQ(c.api.token_file, d.api.token_file);
  EXPECT_EQ(c.api.default_integrated_account_id, d.api.default_integrated_account_id);
  EXPECT_EQ(c.api.default_query, d.api.default_query);
  EXPECT_EQ(c.api.allow_http, d.api.allow_http);
  EXPECT_EQ(c.input.max_line_bytes, d.input.max_line_bytes);
  EXPECT_EQ(c.tls.verify, d.tls.verify);
  EXPECT_EQ(c.tls.ca_file, d.tls.ca_file);
  EXPECT_EQ(c.http.connections, d.http.connections);
  EXPECT_EQ(c.http.connect_timeout_ms, d.http.connect_timeout_ms);
  EXPECT_EQ(c.http.request_timeout_ms, d.http.request_timeout_ms);
  EXPECT_EQ(c.http.max_response_bytes, d.http.max_response_bytes);
  EXPECT_DOUBLE_EQ(c.rate_limit.requests_per_second, d.rate_limit.requests_per_second);
  EXPECT_DOUBLE_EQ(c.rate_limit.burst, d.rate_limit.burst);
  EXPECT_DOUBLE_EQ(c.rate_limit.per_account_requests_per_second, d.rate_limit.per_account_requests_per_second);
  EXPECT_DOUBLE_EQ(c.rate_limit.per_account_burst, d.rate_limit.per_account_burst);
  EXPECT_EQ(c.rate_limit.adaptive, d.rate_limit.adaptive);
  EXPECT_EQ(c.retry.max_attempts, d.retry.max_attempts);
  EXPECT_EQ(c.retry.base_delay_ms, d.retry.base_delay_ms);
  EXPECT_EQ(c.retry.max_delay_ms, d.retry.max_delay_ms);
  EXPECT_EQ(c.retry.job_deadline_s, d.retry.job_deadline_s);
  EXPECT_DOUBLE_EQ(c.retry.budget_percent, d.retry.budget_percent);
  EXPECT_EQ(c.output.results, d.output.results);
  EXPECT_EQ(c.output.dead_letter, d.output.dead_letter);
  EXPECT_EQ(c.output.fsync, d.output.fsync);
  EXPECT_EQ(c.log.level, d.log.level);
  EXPECT_EQ(c.shutdown_grace_s, d.shutdown_grace_s);
  EXPECT_EQ(c.serve.spool_dir, d.serve.spool_dir);
  EXPECT_EQ(c.serve.metrics_listen, d.serve.metrics_listen);
  EXPECT_EQ(c.serve.redis.url, d.serve.redis.url);
  EXPECT_EQ(c.serve.redis.stream, d.serve.redis.stream);
  EXPECT_EQ(c.serve.redis.group, d.serve.redis.group);
  EXPECT_EQ(c.serve.redis.consumer, d.serve.redis.consumer);
  EXPECT_EQ(c.serve.redis.max_deliveries, d.serve.redis.max_deliveries);
  EXPECT_EQ(c.serve.redis.claim_idle_ms, d.serve.redis.claim_idle_ms);
  EXPECT_EQ(c.serve.redis.dead_letter_stream, d.serve.redis.dead_letter_stream);
  EXPECT_EQ(c.serve.redis.results_stream, d.serve.redis.results_stream);
}

// The dotted keys of a YAML file: a scalar, a sequence, a null or an empty
// mapping is a leaf, and so is a mapping at a key the loader reads whole
// (api.default_query); any other mapping is a section to descend into.
void flatten(const YAML::Node& map, const std::string& prefix, const std::set<std::string>& whole,
             std::vector<std::string>& out) {
  for (const auto& kv : map) {
    const std::string name = prefix + kv.first.Scalar();
    if (kv.second.IsMap() && kv.second.size() > 0 && !whole.count(name)) flatten(kv.second, name + ".", whole, out);
    else out.push_back(name);
  }
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Every key the loader reads is written out in the example config, and the
// example holds no other: it cannot drift from the code either way.
TEST(ConfigTest, ExampleConfigHoldsExactlyTheKeysTheLoaderReads) {
  const auto path = std::filesystem::path(ORGPATCH_SOURCE_DIR) / "config" / "orgpatchd.yaml";
  const auto keys = config_keys();
  ASSERT_GT(keys.size(), 30u);  // the table, not an empty list
  const std::set<std::string> known(keys.begin(), keys.end());
  EXPECT_EQ(known.size(), keys.size()) << "config_keys() repeats a key";
  std::vector<std::string> found;
  flatten(YAML::LoadFile(path.string()), "", known, found);
  const std::set<std::string> in_example(found.begin(), found.end());
  EXPECT_EQ(in_example.size(), found.size()) << path << " repeats a key";
  for (const auto& key : keys) EXPECT_TRUE(in_example.count(key)) << key << ": missing from " << path;
  for (const auto& key : found) EXPECT_TRUE(known.count(key)) << key << ": in " << path << " but not read by the loader";
}

// The README's configuration reference names every key, dotted, in backquotes.
TEST(ConfigTest, ReadmeNamesEveryKey) {
  const auto path = std::filesystem::path(ORGPATCH_SOURCE_DIR) / "README.md";
  const std::string text = read_text(path);
  ASSERT_FALSE(text.empty()) << path;
  for (const auto& key : config_keys())
    EXPECT_NE(text.find("`" + key + "`"), std::string::npos) << key << ": not in " << path;
}

}  // namespace
}  // namespace orgpatch
