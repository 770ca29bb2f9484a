// orgpatchd: parses the command line and dispatches; the work is in the engine.
#include "orgpatch/config.hpp"
#include "orgpatch/daemon.hpp"
#include "orgpatch/sources/redis_source.hpp"
#include "orgpatch/engine.hpp"
#include "orgpatch/progress.hpp"
#include "orgpatch/request.hpp"
#include "orgpatch/sources/file_source.hpp"

#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/systemd_sink.h>
#include <spdlog/spdlog.h>

#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

namespace {

using namespace orgpatch;

constexpr const char* k_usage = R"(orgpatchd — apply bulk updates to organizations through Truto's Unified API

usage:
  orgpatchd run FILE|- [options]   run a job file (JSON Lines), print a summary
  orgpatchd validate FILE|-        check every line of a job file without sending
  orgpatchd serve [--config F]     run as a service: job files dropped into the spool
                                   directory (serve.spool_dir) are run, then moved to done/
  orgpatchd submit FILE [--config F]   queue a job file into the service's spool
  orgpatchd --version | --help

run options:
  --config F          YAML config (see config/orgpatchd.yaml); flags override it
  --results F         results log (default: FILE named .results.jsonl)
  --dead-letter F     jobs not ok, ready to run again (default: FILE named .failed.jsonl)
  --base-url URL      API origin (default https://api.truto.one)
  --token-file F      file holding the API token (else api.token_file, $TRUTO_API_TOKEN,
                      or the systemd credential truto-token); never on the command line
  --ca-file F         trust this CA bundle instead of the system's
  --connections N     keep-alive connections and concurrent requests (default 32)
  --rate R            requests per second for the token (default 45; 0 = unlimited)
  --account-rate R    requests per second per integrated account (default 4.5; 0 = unlimited)
  --quiet             no summary on standard output
  --summary-json F    write the summary as JSON to F
  --resume            continue the run in the results file (also the default when it
                      exists and the input has not changed); an error when there is none
  --force             start a new run even though a results file exists (it and the
                      dead-letter file are renamed aside with a timestamp)
  --dry-run, --metrics-listen HOST:PORT   not available yet

Run the same command again after a crash or Ctrl-C: finished jobs are not sent again,
and every request of a job carries the same Idempotency-Key. SIGHUP reopens the output
files (logrotate).

exit status: 0 every job ok; 2 some jobs not ok; 1 could not run; 130/143 stopped by a signal
)";

struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <class T>
T parse_number(std::string_view flag, const std::string& text, T lo, T hi) {
  T value{};
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || p != text.data() + text.size() || value < lo || value > hi)
    throw usage_error(fmt::format("{}: \"{}\" is not a number from {} to {}", flag, text, lo, hi));
  return value;
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

std::string read_token_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0)
    spdlog::warn("{}: the token file is readable by other users; chmod 600 it", path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot read the token file", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  return trim(ss.str());
}

// The token, from the first of: --token-file, api.token_file, $TRUTO_API_TOKEN,
// the systemd credential truto-token.
std::string load_token(const std::optional<std::string>& flag_file, const config& cfg) {
  if (flag_file) return read_token_file(*flag_file);
  if (cfg.api.token_file) return read_token_file(*cfg.api.token_file);
  if (const char* env = std::getenv("TRUTO_API_TOKEN"); env && *env) return trim(env);
  if (const char* dir = std::getenv("CREDENTIALS_DIRECTORY"); dir && *dir) {
    const std::string path = std::string(dir) + "/truto-token";
    if (::access(path.c_str(), R_OK) == 0) return read_token_file(path);
  }
  throw std::runtime_error(
      "no API token: give --token-file F, api.token_file, the TRUTO_API_TOKEN environment variable, or the "
      "systemd credential truto-token");
}

void setup_logging(const std::string& level, bool service = false) {
  std::shared_ptr<spdlog::logger> logger;
  if (service && std::getenv("INVOCATION_ID")) {
    // Under systemd: straight to the journal, with priorities.
    logger = std::make_shared<spdlog::logger>("orgpatchd", std::make_shared<spdlog::sinks::systemd_sink_st>());
    logger->set_pattern("%v");
  } else {
    // Log lines first take a progress line off the terminal (run on a terminal).
    logger = std::make_shared<spdlog::logger>(
        "orgpatchd", progress_terminal::wrap_log_sink(std::make_shared<spdlog::sinks::stderr_color_sink_mt>()));
    logger->set_pattern(service ? "[%Y-%m-%d %H:%M:%S.%e] %^%l%$: %v" : "%^%l%$: %v");
  }
  logger->set_level(spdlog::level::from_str(level));
  spdlog::set_default_logger(logger);
}

int cmd_run(std::vector<std::string> args) {
  std::optional<std::string> input, config_file, token_file, summary_json;
  bool quiet = false, resume = false, force = false, dry = false;
  struct overrides {
    std::optional<std::string> results, dead_letter, base_url, ca_file;
    std::optional<unsigned> connections;
    std::optional<double> rate, account_rate;
  } ov;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) throw usage_error(fmt::format("{}: needs a value", a));
      return args[++i];
    };
    if (a == "--config") config_file = value();
    else if (a == "--results") ov.results = value();
    else if (a == "--dead-letter") ov.dead_letter = value();
    else if (a == "--base-url") ov.base_url = value();
    else if (a == "--token-file") token_file = value();
    else if (a == "--ca-file") ov.ca_file = value();
    else if (a == "--connections") ov.connections = parse_number<unsigned>(a, value(), 1, 4096);
    else if (a == "--rate") ov.rate = parse_number<double>(a, value(), 0, 1e9);
    else if (a == "--account-rate") ov.account_rate = parse_number<double>(a, value(), 0, 1e9);
    else if (a == "--summary-json") summary_json = value();
    else if (a == "--quiet") quiet = true;
    else if (a == "--metrics-listen") {
      (void)value();
      throw usage_error("--metrics-listen: not available yet (metrics come in a later release)");
    } else if (a == "--resume") resume = true;
    else if (a == "--force") force = true;
    else if (a == "--dry-run") dry = true;
    else if (a == "--token" || a.rfind("--token=", 0) == 0)
      throw usage_error("the token is never taken on the command line (other users can read it): use --token-file");
    else if (a == "--help" || a == "-h") {
      std::fputs(k_usage, stdout);
      return 0;
    } else if (a.size() > 1 && a[0] == '-' && a != "-")
      throw usage_error(fmt::format("{}: unknown option (see orgpatchd --help)", a));
    else if (!input) input = a;
    else throw usage_error(fmt::format("{}: only one job file per run", a));
  }
  if (!input) throw usage_error("run: which job file? (orgpatchd run FILE, or - for standard input)");

  config cfg = config_file ? load_config(*config_file) : config{};
  setup_logging(cfg.log.level);
  if (ov.results) cfg.output.results = ov.results;
  if (ov.dead_letter) cfg.output.dead_letter = ov.dead_letter;
  if (ov.base_url) cfg.api.base_url = *ov.base_url;
  if (ov.ca_file) cfg.tls.ca_file = ov.ca_file;
  if (ov.connections) cfg.http.connections = *ov.connections;
  if (ov.rate) cfg.rate_limit.requests_per_second = *ov.rate;
  if (ov.account_rate) cfg.rate_limit.per_account_requests_per_second = *ov.account_rate;
  validate_config(cfg);
  if (!cfg.tls.verify) spdlog::warn("tls.verify is false: the server's certificate is NOT checked");

  if (resume && force) throw usage_error("--resume and --force contradict each other");
  if (dry) {
    // The token is not needed to show what would go out, but a real run needs one.
    try {
      if (auto why = check_token(load_token(token_file, cfg)); !why.empty())
        std::printf("note: a real run could not start: %s\n\n", why.c_str());
    } catch (const std::exception& e) {
      std::printf("note: a real run could not start: %s\n\n", e.what());
    }
    std::fflush(stdout);
    return dry_run(run_options{*input, cfg, {}, false, resume, force}, stdout);
  }
  run_options options{*input, cfg, load_token(token_file, cfg), true, resume, force};
  options.progress = !quiet && progress_terminal::usable(STDERR_FILENO);
  run_report report = run_batch(options);
  if (!report.fatal_error.empty()) {
    spdlog::error("{}", report.fatal_error);
    if (report.run_id.empty()) return 1;  // nothing ran
  }
  if (!quiet) std::fputs(format_summary(report.metrics, report.summary).c_str(), stdout);
  if (summary_json) {
    std::ofstream out(*summary_json, std::ios::trunc);
    out << orgpatch::summary_json(report.metrics, report.summary);
    if (!out) spdlog::error("{}: cannot write the summary", *summary_json);
  }
  return report.exit_code;
}

int cmd_validate(const std::vector<std::string>& args) {
  std::optional<std::string> input, config_file;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size()) config_file = args[++i];
    else if (args[i].size() > 1 && args[i][0] == '-') throw usage_error(fmt::format("{}: unknown option", args[i]));
    else if (!input) input = args[i];
    else throw usage_error(fmt::format("{}: only one file", args[i]));
  }
  if (!input) throw usage_error("validate: which job file?");
  config cfg = config_file ? load_config(*config_file) : config{};
  setup_logging(cfg.log.level);
  file_source source(*input, job_parse_options{cfg.api.default_integrated_account_id, &cfg.api.default_query},
                     cfg.input.max_line_bytes);
  std::uint64_t lines = 0, broken = 0;
  while (auto item = source.next()) {
    ++lines;
    if (auto* err = std::get_if<input_error>(&item->parsed)) {
      ++broken;
      std::printf("%s:%llu: %s\n", input->c_str(), static_cast<unsigned long long>(item->line), err->to_string().c_str());
    }
  }
  std::printf("%llu jobs, %llu valid, %llu invalid\n", static_cast<unsigned long long>(lines),
              static_cast<unsigned long long>(lines - broken), static_cast<unsigned long long>(broken));
  return broken == 0 ? 0 : 2;
}

int cmd_serve(const std::vector<std::string>& args) {
  std::optional<std::string> config_file, token_file;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size()) config_file = args[++i];
    else if (args[i] == "--token-file" && i + 1 < args.size()) token_file = args[++i];
    else throw usage_error(fmt::format("serve: {}: unknown option (serve [--config F] [--token-file F])", args[i]));
  }
  config cfg = config_file ? load_config(*config_file) : config{};
  setup_logging(cfg.log.level, true);
  validate_config(cfg);
  if (!cfg.tls.verify) spdlog::warn("tls.verify is false: the server's certificate is NOT checked");
  return serve(serve_options{cfg, config_file, load_token(token_file, cfg)});
}

int cmd_submit(const std::vector<std::string>& args) {
  std::optional<std::string> config_file, file;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size()) config_file = args[++i];
    else if (args[i].size() > 1 && args[i][0] == '-') throw usage_error(fmt::format("submit: {}: unknown option", args[i]));
    else if (!file) file = args[i];
    else throw usage_error("submit: one file at a time");
  }
  if (!file) throw usage_error("submit: which job file?");
  config cfg = config_file ? load_config(*config_file) : config{};
  if (cfg.serve.redis.url) {
    // Onto the stream: every line checked first, then all added, pipelined.
    try {
      const auto added = submit_to_stream(cfg, *file, stderr);
      std::printf("added %llu job(s) to %s\n", static_cast<unsigned long long>(added), cfg.serve.redis.stream.c_str());
      return 0;
    } catch (const std::invalid_argument& e) {  // broken lines: nothing was added
      std::fprintf(stderr, "orgpatchd: %s\n", e.what());
      return 2;
    }
  }
  const std::string queued = submit_to_spool(cfg.serve.spool_dir, *file);
  std::printf("queued %s\n", queued.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // A peer that closed its end is an error code on the write, never a signal
  // (hiredis writes with write(2), without MSG_NOSIGNAL).
  std::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
      std::fputs(k_usage, args.empty() ? stderr : stdout);
      return args.empty() ? 1 : 0;
    }
    if (args[0] == "--version") {
      std::printf("orgpatchd %s\n", ORGPATCH_VERSION);
      return 0;
    }
    const std::string cmd = args[0];
    args.erase(args.begin());
    if (cmd == "run") return cmd_run(args);
    if (cmd == "validate") return cmd_validate(args);
    if (cmd == "serve") return cmd_serve(args);
    if (cmd == "submit") return cmd_submit(args);
    throw usage_error(fmt::format("{}: unknown command (see orgpatchd --help)", cmd));
  } catch (const usage_error& e) {
    std::fprintf(stderr, "orgpatchd: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "orgpatchd: %s\n", e.what());
    return 1;
  }
}
