// orgpatch-emulator's YAML config file and the small parsers the command line shares.
#include "emulator/config.hpp"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <vector>
#include <stdexcept>

namespace orgpatch::emulator {
namespace {

/// Reads one config file, with the file name and key path in every error.
class config_reader {
 public:
  explicit config_reader(std::string path)
      : path_(std::move(path)), dir_(std::filesystem::path(path_).parent_path()) {}

  [[noreturn]] void fail(const YAML::Node& node, const std::string& key, const std::string& what) const {
    std::string msg = path_;
    if (const auto mark = node.Mark(); mark.line >= 0) msg += ":" + std::to_string(mark.line + 1);
    msg += ": " + key + ": " + what;
    throw std::runtime_error(msg);
  }

  /// Every key of `map` must be one of `allowed`.
  void check_keys(const YAML::Node& map, const std::string& where, const std::vector<std::string_view>& allowed) const {
    if (!map.IsMap()) fail(map, where.empty() ? "(top level)" : where, "expected a mapping");
    for (const auto& kv : map) {
      const std::string key = kv.first.as<std::string>();
      bool known = false;
      for (auto a : allowed) known = known || key == a;
      if (!known) fail(kv.first, where.empty() ? key : where + "." + key, "unknown key");
    }
  }

  template <class T>
  std::optional<T> get(const YAML::Node& map, const std::string& where, const char* key, const char* expected) const {
    const YAML::Node node = map[key];
    if (!node || node.IsNull()) return std::nullopt;
    const std::string name = where.empty() ? key : where + "." + key;
    if (!node.IsScalar()) fail(node, name, std::string("expected ") + expected);
    try {
      return node.as<T>();
    } catch (const YAML::Exception&) {
      fail(node, name, std::string("expected ") + expected);
    }
  }

  std::optional<std::string> get_path(const YAML::Node& map, const std::string& where, const char* key) const {
    auto s = get<std::string>(map, where, key, "a path");
    if (s && !s->empty() && std::filesystem::path(*s).is_relative() && !dir_.empty()) *s = (dir_ / *s).string();
    return s;
  }

  template <class T>
  std::optional<T> get_positive(const YAML::Node& map, const std::string& where, const char* key) const {
    auto v = get<long long>(map, where, key, "a positive integer");
    if (!v) return std::nullopt;
    if (*v <= 0 || static_cast<unsigned long long>(*v) > std::numeric_limits<T>::max())
      fail(map[key], where.empty() ? key : where + "." + key, "expected a positive integer");
    return static_cast<T>(*v);
  }

  void apply(const YAML::Node& root, emulator_config& cfg) const {
    if (!root || root.IsNull()) return;  // an empty file
    check_keys(root, "", {"listen", "plain", "tls", "write_cert", "token_file", "threads", "limits", "idempotency",
                          "rate_limit", "remote_limit", "faults"});

    if (auto listen = get<std::string>(root, "", "listen", "HOST:PORT")) {
      try {
        auto [host, port] = parse_listen(*listen);
        cfg.server.host = std::move(host);
        cfg.server.port = port;
      } catch (const std::invalid_argument& e) {
        fail(root["listen"], "listen", e.what());
      }
    }
    int modes = 0;
    if (auto plain = get<bool>(root, "", "plain", "true or false"); plain && *plain) {
      cfg.mode = tls_mode::plain;
      ++modes;
    }
    if (const YAML::Node tls = root["tls"]; tls && !tls.IsNull()) {
      check_keys(tls, "tls", {"cert", "key"});
      auto cert = get_path(tls, "tls", "cert");
      auto key = get_path(tls, "tls", "key");
      if (!cert || !key) fail(tls, "tls", "needs both cert and key");
      cfg.server.cert_file = *cert;
      cfg.server.key_file = *key;
      cfg.mode = tls_mode::files;
      ++modes;
    }
    if (auto dir = get_path(root, "", "write_cert")) {
      cfg.write_cert_dir = *dir;
      cfg.mode = tls_mode::write_cert;
      ++modes;
    }
    if (modes > 1) fail(root, "plain/tls/write_cert", "choose one");
    if (auto token = get_path(root, "", "token_file")) cfg.token_file = *token;
    if (auto threads = get_positive<unsigned>(root, "", "threads")) cfg.server.threads = *threads;

    if (const YAML::Node limits = root["limits"]; limits && !limits.IsNull()) {
      check_keys(limits, "limits", {"body_bytes", "header_bytes", "idle_timeout_ms", "request_timeout_ms"});
      if (auto v = get_positive<std::size_t>(limits, "limits", "body_bytes")) cfg.server.body_limit = *v;
      if (auto v = get_positive<std::size_t>(limits, "limits", "header_bytes")) cfg.server.header_limit = *v;
      if (auto v = get_positive<std::int64_t>(limits, "limits", "idle_timeout_ms"))
        cfg.server.idle_timeout = std::chrono::milliseconds(*v);
      if (auto v = get_positive<std::int64_t>(limits, "limits", "request_timeout_ms"))
        cfg.server.request_timeout = std::chrono::milliseconds(*v);
    }
    if (const YAML::Node idem = root["idempotency"]; idem && !idem.IsNull()) {
      check_keys(idem, "idempotency", {"max_keys"});
      if (auto v = get<long long>(idem, "idempotency", "max_keys", "an integer >= 0")) {
        if (*v < 0) fail(idem["max_keys"], "idempotency.max_keys", "expected an integer >= 0");
        cfg.server.api.idempotency_max_keys = static_cast<std::size_t>(*v);
      }
    }
    if (const YAML::Node rl = root["rate_limit"]; rl && !rl.IsNull()) {
      check_keys(rl, "rate_limit", {"enabled", "token", "account", "retry_after_s", "early_retry_grace_ms"});
      rate_limit_options& o = cfg.server.api.rate_limit;
      if (auto v = get<bool>(rl, "rate_limit", "enabled", "true or false")) o.enabled = *v;
      read_window(rl["token"], "rate_limit.token", o.token);
      read_window(rl["account"], "rate_limit.account", o.account);
      if (auto v = get_non_negative(rl, "rate_limit", "retry_after_s")) o.retry_after = std::chrono::seconds(*v);
      if (auto v = get_non_negative(rl, "rate_limit", "early_retry_grace_ms"))
        o.early_retry_grace = std::chrono::milliseconds(*v);
    }
    if (const YAML::Node rl = root["remote_limit"]; rl && !rl.IsNull()) {
      check_keys(rl, "remote_limit", {"enabled", "requests", "window_ms"});
      remote_limit_options& o = cfg.server.api.remote_limit;
      o.enabled = true;
      if (auto v = get<bool>(rl, "remote_limit", "enabled", "true or false")) o.enabled = *v;
      if (auto v = get_positive<std::uint64_t>(rl, "remote_limit", "requests")) o.limit.requests = *v;
      if (auto v = get_positive<std::int64_t>(rl, "remote_limit", "window_ms")) o.limit.window = std::chrono::milliseconds(*v);
    }
    if (const YAML::Node f = root["faults"]; f && !f.IsNull()) read_faults(f, cfg.server.api.faults);
  }

 private:
  /// `requests` and `window_ms` of a limit, both positive when given.
  void read_window(const YAML::Node& node, const std::string& where, window_limit& out) const {
    if (!node || node.IsNull()) return;
    check_keys(node, where, {"requests", "window_ms"});
    if (auto v = get_positive<std::uint64_t>(node, where, "requests")) out.requests = *v;
    if (auto v = get_positive<std::int64_t>(node, where, "window_ms")) out.window = std::chrono::milliseconds(*v);
  }

  std::optional<std::int64_t> get_non_negative(const YAML::Node& map, const std::string& where, const char* key) const {
    auto v = get<long long>(map, where, key, "an integer >= 0");
    if (v && *v < 0) fail(map[key], where + "." + key, "expected an integer >= 0");
    return v;
  }

  double probability(const YAML::Node& node, const std::string& name) const {
    double p = -1;
    if (node.IsScalar()) {
      try {
        p = node.as<double>();
      } catch (const YAML::Exception&) {
        p = -1;
      }
    }
    if (!(p >= 0 && p <= 1)) fail(node, name, "expected a probability from 0 to 1");
    return p;
  }

  /// A fault given as its probability, or as a mapping of `probability` and the
  /// keys in `extra`; the mapping (or a null node) for the caller to read the extras.
  std::optional<YAML::Node> fault_entry(const YAML::Node& faults, const char* key, double& p, std::vector<std::string_view> extra) const {
    const YAML::Node node = faults[key];
    const std::string name = std::string("faults.") + key;
    if (!node || node.IsNull()) return std::nullopt;
    if (node.IsScalar()) {
      p = probability(node, name);
      return std::nullopt;
    }
    extra.push_back("probability");
    check_keys(node, name, extra);
    if (const YAML::Node v = node["probability"]; v && !v.IsNull()) p = probability(v, name + ".probability");
    return node;
  }

  void read_faults(const YAML::Node& f, fault_options& o) const {
    check_keys(f, "faults", {"seed", "status_429", "status_500", "status_502", "status_503", "status_504", "reset_before",
                             "reset_mid_body", "stall", "invalid_json", "chunked", "latency", "close_after"});
    if (auto v = get_non_negative(f, "faults", "seed")) o.seed = static_cast<std::uint64_t>(*v);
    if (const auto n = fault_entry(f, "status_429", o.status_429, {"retry_after_s"}))
      if (auto v = get_non_negative(*n, "faults.status_429", "retry_after_s")) o.retry_after_429 = std::chrono::seconds(*v);
    fault_entry(f, "status_500", o.status_500, {});
    fault_entry(f, "status_502", o.status_502, {});
    fault_entry(f, "status_503", o.status_503, {});
    fault_entry(f, "status_504", o.status_504, {});
    fault_entry(f, "reset_before", o.reset_before, {});
    fault_entry(f, "reset_mid_body", o.reset_mid_body, {});
    if (const auto n = fault_entry(f, "stall", o.stall, {"stall_ms"}))
      if (auto v = get_non_negative(*n, "faults.stall", "stall_ms")) o.stall_time = std::chrono::milliseconds(*v);
    fault_entry(f, "invalid_json", o.invalid_json, {});
    fault_entry(f, "chunked", o.chunked, {});

    if (const YAML::Node l = f["latency"]; l && !l.IsNull()) {
      const std::string name = "faults.latency";
      check_keys(l, name, {"probability", "fixed_ms", "min_ms", "max_ms", "median_ms", "sigma"});
      latency_fault& lat = o.latency;
      lat.probability = 1;
      if (const YAML::Node v = l["probability"]; v && !v.IsNull()) lat.probability = probability(v, name + ".probability");
      const auto number = [&](const char* key) {
        auto v = get<double>(l, name, key, "a number >= 0");
        if (v && !(*v >= 0)) fail(l[key], name + "." + key, "expected a number >= 0");
        return v;
      };
      const auto fixed = number("fixed_ms");
      const auto min = number("min_ms");
      const auto max = number("max_ms");
      const auto median = number("median_ms");
      const auto sigma = number("sigma");
      const int groups = int(fixed.has_value()) + int(min || max) + int(median || sigma);
      if (groups != 1) fail(l, name, "give one of fixed_ms, min_ms and max_ms, or median_ms and sigma");
      if (fixed) {
        lat.kind = latency_fault::distribution::fixed;
        lat.fixed_ms = *fixed;
      } else if (min || max) {
        if (!min || !max || *min > *max) fail(l, name, "needs min_ms <= max_ms, both given");
        lat.kind = latency_fault::distribution::uniform;
        lat.min_ms = *min;
        lat.max_ms = *max;
      } else {
        if (!median || !sigma) fail(l, name, "needs both median_ms and sigma");
        lat.kind = latency_fault::distribution::log_normal;
        lat.median_ms = *median;
        lat.sigma = *sigma;
      }
    }

    if (const YAML::Node c = f["close_after"]; c && !c.IsNull()) {
      const std::string name = "faults.close_after";
      o.close_probability = 1;
      if (c.IsScalar()) {
        auto v = get_positive<std::uint64_t>(f, "faults", "close_after");
        o.close_after = *v;
      } else {
        check_keys(c, name, {"requests", "probability"});
        auto v = get_positive<std::uint64_t>(c, name, "requests");
        if (!v) fail(c, name, "needs requests");
        o.close_after = *v;
        if (const YAML::Node p = c["probability"]; p && !p.IsNull()) o.close_probability = probability(p, name + ".probability");
      }
    }

    try {
      o.validate();
    } catch (const std::invalid_argument& e) {
      std::string msg = path_;
      if (const auto mark = f.Mark(); mark.line >= 0) msg += ":" + std::to_string(mark.line + 1);
      throw std::runtime_error(msg + ": " + e.what());
    }
  }

  std::string path_;
  std::filesystem::path dir_;
};

}  // namespace

std::pair<std::string, std::uint16_t> parse_listen(std::string_view text) {
  std::string host;
  std::string_view port_text;
  if (text.starts_with("[")) {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      throw std::invalid_argument("expected [IPv6]:PORT, got '" + std::string(text) + "'");
    host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) throw std::invalid_argument("expected HOST:PORT, got '" + std::string(text) + "'");
    host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    if (host.find(':') != std::string::npos)
      throw std::invalid_argument("an IPv6 address goes in brackets: [ADDR]:PORT, got '" + std::string(text) + "'");
  }
  if (host.empty()) throw std::invalid_argument("missing host in '" + std::string(text) + "'");
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc{} || end != port_text.data() + port_text.size() || port > 65535)
    throw std::invalid_argument("port must be 0 to 65535, got '" + std::string(port_text) + "'");
  return {std::move(host), static_cast<std::uint16_t>(port)};
}

std::string read_token_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read token file " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string token = ss.str();
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; };
  while (!token.empty() && is_space(token.back())) token.pop_back();
  std::size_t start = 0;
  while (start < token.size() && is_space(token[start])) ++start;
  token.erase(0, start);
  if (token.empty()) throw std::runtime_error("token file " + path + " is empty");
  return token;
}

void load_config_file(const std::string& path, emulator_config& cfg) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw std::runtime_error("cannot read config file " + path);
  } catch (const YAML::Exception& e) {
    throw std::runtime_error(path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  config_reader(path).apply(root, cfg);
}

}  // namespace orgpatch::emulator
