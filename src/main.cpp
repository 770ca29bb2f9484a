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

#include <algorithm>
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
(PATCH /unified/user-directory/organizations/{id}), as fast as the API's rate limits allow,
never over them, with one result line per job and safe resumption after a crash.

usage:
  orgpatchd validate FILE|-            check every line of a job file; sends nothing
  orgpatchd run FILE|- [options]       run a job file (JSON Lines), print a summary
  orgpatchd serve [options]            run as a service: job files from the spool directory
                                       and, when configured, jobs from a Redis stream
  orgpatchd submit FILE [--config F]   queue a job file for the service
  orgpatchd COMMAND --help             that command's options in detail
  orgpatchd --version | --help

first run against the real API:
  install -m 600 /dev/stdin ~/.truto-token       # paste the token, then Ctrl-D
  orgpatchd validate updates.jsonl
  orgpatchd run updates.jsonl --token-file ~/.truto-token --dry-run
  orgpatchd run updates.jsonl --token-file ~/.truto-token
  → updates.results.jsonl (one line per job), updates.failed.jsonl (jobs not ok, to run again)

a job line (JSON Lines, one object per line):
  {"id":"<organization id>","integrated_account_id":"<uuid>","body":{"name":"Acme EMEA"}}
  optional: "query" (truto_response_format, truto_ignore_remote_data, truto_exclude_fields,
  remote_query), "key" (the job's identity), "idempotency_key"

token: --token-file F, api.token_file, the TRUTO_API_TOKEN environment variable or the
systemd credential truto-token — never on the command line.
config: YAML, every key with its default and meaning in config/orgpatchd.yaml
(installed as /etc/orgpatchd/orgpatchd.yaml); flags override it.

exit status of run: 0 every job ok; 2 finished, some jobs not ok; 1 could not run (config,
token, TLS, unreadable input, or the API refused the token with 401/403);
130/143 stopped by SIGINT/SIGTERM (run the same command again to continue)
)";

constexpr const char* k_run_help = R"(usage: orgpatchd run FILE|- [options]

Reads the job file FILE (or standard input for -), one JSON object per line, validates
every line, sends each valid one as a PATCH with a deterministic Idempotency-Key, and writes
one line per job to the results log. Jobs not ok also go to the dead-letter file, as given
(with "key" and "idempotency_key" added when absent), so `orgpatchd run FILE.failed.jsonl`
retries exactly those. Prints a summary on standard output at the end.

options:
  --config F          YAML config (see config/orgpatchd.yaml); these flags override it
  --token-file F      file holding the API token (mode 600); else api.token_file,
                      $TRUTO_API_TOKEN, or the systemd credential truto-token.
                      The token is never taken on the command line.
  --base-url URL      API origin (api.base_url, default https://api.truto.one)
  --ca-file F         trust this PEM CA bundle instead of the system's (tls.ca_file)
  --results F         results log (output.results; default: FILE without its .jsonl,
                      .ndjson or .json, plus .results.jsonl; stdin.results.jsonl for -)
  --dead-letter F     jobs not ok, ready to run again (output.dead_letter; default:
                      the same with .failed.jsonl, e.g. updates.failed.jsonl)
  --connections N     keep-alive connections = requests in flight (http.connections,
                      default 32, 1 to 4096)
  --rate R            requests per second for the API token
                      (rate_limit.requests_per_second, default 45; 0 = unlimited)
  --account-rate R    requests per second per integrated account
                      (rate_limit.per_account_requests_per_second, default 4.5; 0 = unlimited)
  --dry-run           read and validate every line and build every request, but send
                      nothing and write no file; prints the first 3 requests as they
                      would go out (method, URL, headers with the token shown as
                      "Bearer <redacted>", body) and each invalid line, then the jobs that
                      would be sent, to how many accounts, and the least time the limits
                      allow. Jobs an earlier run of the same file finished are left
                      out, as a run would (with --force: none). Needs no token.
                      Exit 0 when every line is valid, else 2.
  --resume            continue the run in the results log (also what happens by default
                      when it exists and the input is unchanged); an error when there is none
  --force             start a new run although a results log exists (it and the dead-letter
                      file are renamed aside with a timestamp); needed when the input changed
  --quiet             no summary on standard output and no progress line
  --summary-json F    also write the summary as JSON to F
  --metrics-listen HOST:PORT
                      serve Prometheus metrics (text format) at http://HOST:PORT/metrics
                      while the run lasts, e.g. 127.0.0.1:9464

progress: when standard error is a terminal (and without --quiet), a line there shows jobs
done/total (the total is counted ahead for a regular file), requests/s, ETA, ok/failed/
retrying and throttled accounts, redrawn at most 10 times a second.

The default limits (45/s with a burst of 50 per token, 4.5/s with a burst of 5 per account)
keep within Truto's 500 requests / 10 s per token and 50 / 10 s per integrated account.
429s pause and slow the account (or everything, for the token's limit) and cost no attempt;
500/502/504, timeouts and transport errors are retried with backoff (retry.*).

Crash, kill or Ctrl-C: run the same command again. Jobs that already have a line are not
sent again; those in flight may be, with the same Idempotency-Key, so the API applies each
at most once. SIGINT/SIGTERM let requests in flight finish (shutdown_grace_s; a second
signal stops at once). SIGHUP reopens the results and dead-letter files (logrotate).

exit status: 0 every job ok; 2 finished, some jobs not ok (see the dead-letter file);
1 could not run (config, token, TLS setup or verification, unreadable input, or the API
answered 401/403 for the token itself — the run stops at once and can be resumed);
130/143 stopped by SIGINT/SIGTERM (resumable)

examples:
  orgpatchd run updates.jsonl --token-file ~/.truto-token --dry-run
  orgpatchd run updates.jsonl --token-file ~/.truto-token
  orgpatchd run updates.failed.jsonl --token-file ~/.truto-token   # retry what was not ok
  scripts/generate-jobs.sh 1000 10 | orgpatchd run - --config my.yaml   # stdin: no resume
)";

constexpr const char* k_validate_help = R"(usage: orgpatchd validate FILE|- [--config F]

Checks every line of a job file by the rules `run` applies, sends nothing and needs no
token. Prints FILE:LINE: field: message for each broken line, then
"N jobs, V valid, I invalid".

options:
  --config F    YAML config: api.default_integrated_account_id, api.default_query and
                input.max_line_bytes change what is valid

exit status: 0 every line valid; 2 some lines invalid; 1 the file or config cannot be read
)";

constexpr const char* k_serve_help = R"(usage: orgpatchd serve [--config F] [--token-file F]

Runs as a service (systemd Type=notify; see systemd/orgpatchd.service). Job files placed in
serve.spool_dir/incoming/ (by `orgpatchd submit` or a copy by anyone in the orgpatchd group)
are claimed into processing/, run, and moved to done/ with NAME.results.jsonl and
NAME.failed.jsonl beside them; files a crash left in processing/ are resumed at start.
With serve.redis.url set, jobs are also read from the Redis stream serve.redis.stream
through the consumer group serve.redis.group, and the rate limits are shared through Redis
by every instance. Prometheus metrics are served at http://<serve.metrics_listen>/metrics.

options:
  --config F        YAML config (the unit passes /etc/orgpatchd/orgpatchd.yaml)
  --token-file F    file holding the API token; else api.token_file, $TRUTO_API_TOKEN,
                    or the systemd credential truto-token (what the unit uses)

signals: SIGTERM/SIGINT drain (shutdown_grace_s) and exit 0; SIGHUP (systemctl reload)
reads the config again for the next files and reopens every results file.
exit status: 0 stopped cleanly; 1 could not start (config, token, spool, TLS setup)
)";

constexpr const char* k_submit_help = R"(usage: orgpatchd submit FILE [--config F]

Queues a job file for `orgpatchd serve`. Without serve.redis.url: copies FILE into
serve.spool_dir/incoming/ under a hidden temporary name and renames it, so the service
never sees half a file; prints "queued PATH". With serve.redis.url: checks every line first
and, when all are valid, adds them to serve.redis.stream (one entry per job, field `job`),
pipelined; prints "added N job(s) to STREAM". Needs no token.

options:
  --config F    the service's config (e.g. /etc/orgpatchd/orgpatchd.yaml), for
                serve.spool_dir and serve.redis.*

exit status: 0 queued; 2 some lines invalid (nothing was added to the stream);
1 could not queue (config, unreadable file, spool or Redis unreachable)
)";

// The detailed help of a command, or nullptr for an unknown one.
const char* command_help(const std::string& cmd) {
  if (cmd == "run") return k_run_help;
  if (cmd == "validate") return k_validate_help;
  if (cmd == "serve") return k_serve_help;
  if (cmd == "submit") return k_submit_help;
  return nullptr;
}

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
  std::optional<std::string> input, config_file, token_file, summary_json, metrics_listen;
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
    else if (a == "--metrics-listen") metrics_listen = value();
    else if (a == "--resume") resume = true;
    else if (a == "--force") force = true;
    else if (a == "--dry-run") dry = true;
    else if (a == "--token" || a.rfind("--token=", 0) == 0)
      throw usage_error("the token is never taken on the command line (other users can read it): use --token-file");
    else if (a.size() > 1 && a[0] == '-' && a != "-")
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
  options.metrics_listen = metrics_listen;
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
    if (args.size() == 2 && args[0] == "help" && command_help(args[1])) {
      std::fputs(command_help(args[1]), stdout);
      return 0;
    }
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
    // `orgpatchd COMMAND --help`: that command's own help, whatever else is given.
    const auto asks_help = [](const std::string& a) { return a == "--help" || a == "-h"; };
    if (const char* help = command_help(cmd); help && std::any_of(args.begin(), args.end(), asks_help)) {
      std::fputs(help, stdout);
      return 0;
    }
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
