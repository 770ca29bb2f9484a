// orgpatchd as a user runs it: the binary, its flags, exit statuses and output.
#include "support/cli.hpp"
#include "support/process.hpp"
#include "support/test_util.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <csignal>
#include <regex>
#include <set>
#include <thread>

namespace orgpatch {
namespace {

using test::run_process;
using test::temp_dir;
using test::write_file;

using test::cli_emulator;
using test::k_cli_token;
using test::run_args;

TEST(CliTest, RunPrintsASummaryAndExitsZeroWhenAllOk) {
  temp_dir dir;
  cli_emulator emu(dir);
  std::string text;
  for (const auto& j : test::generate_jobs(200, 7)) text += j.line + "\n";
  write_file(dir.file("u.jsonl"), text);
  auto args = run_args(emu, dir.file("u.jsonl"));
  args.insert(args.end(), {"--summary-json", dir.file("summary.json")});
  const auto r = run_process(ORGPATCHD_BINARY, args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("ok 200"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("u.results.jsonl"), std::string::npos) << r.out;
  const auto summary = boost::json::parse(test::read_file(dir.file("summary.json"))).as_object();
  EXPECT_EQ(summary.at("jobs").at("ok").as_int64(), 200);
  EXPECT_EQ(summary.at("requests").as_int64(), 200);
  EXPECT_EQ(test::read_lines(dir.file("u.results.jsonl")).size(), 201u);
}

TEST(CliTest, SomeJobsNotOkExitsTwo) {
  temp_dir dir;
  cli_emulator emu(dir);
  write_file(dir.file("u.jsonl"), test::generate_jobs(1, 1)[0].line + "\n{\"id\":\"x\"}\n");
  const auto r = run_process(ORGPATCHD_BINARY, run_args(emu, dir.file("u.jsonl")));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("u.jsonl:2"), std::string::npos) << r.err;  // file:line of the broken job
  EXPECT_NE(r.out.find("invalid 1"), std::string::npos) << r.out;
}

TEST(CliTest, RefusedTokenExitsOneAndNeverPrintsTheToken) {
  temp_dir dir;
  cli_emulator emu(dir);
  write_file(dir.file("u.jsonl"), test::generate_jobs(1, 1)[0].line + "\n");
  const std::string other = "other-token-also-secret-91";
  write_file(dir.file("other"), other);
  auto args = run_args(emu, dir.file("u.jsonl"));
  args[7] = dir.file("other");  // the --token-file value
  const auto r = run_process(ORGPATCHD_BINARY, args);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("401"), std::string::npos) << r.err;
  EXPECT_EQ((r.out + r.err).find(other), std::string::npos);
  EXPECT_EQ(test::read_file(dir.file("u.results.jsonl")).find(other), std::string::npos);
}

TEST(CliTest, TokenFromTheEnvironment) {
  temp_dir dir;
  cli_emulator emu(dir);
  write_file(dir.file("u.jsonl"), test::generate_jobs(3, 1)[0].line + "\n");
  auto args = run_args(emu, dir.file("u.jsonl"));
  args.erase(args.begin() + 6, args.begin() + 8);  // no --token-file
  const auto r = run_process(ORGPATCHD_BINARY, args, {{"TRUTO_API_TOKEN", k_cli_token}});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(CliTest, UsageErrorsAreClearAndExitOne) {
  struct expectation {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<expectation> cases = {
      {{"run"}, "which job file"},
      {{"run", "x.jsonl", "--token", "abc"}, "never taken on the command line"},
      {{"run", "x.jsonl", "--resume", "--force"}, "contradict"},
      {{"run", "x.jsonl", "--summary-json"}, "--summary-json: needs a value"},
      {{"run", "x.jsonl", "--connections", "0"}, "--connections"},
      {{"run", "x.jsonl", "--rate", "fast"}, "--rate"},
      {{"run", "x.jsonl", "--bogus"}, "--bogus: unknown option"},
      {{"frobnicate"}, "unknown command"},
      {{"serve", "--bogus"}, "unknown option"},
  };
  for (const auto& c : cases) {
    const auto r = run_process(ORGPATCHD_BINARY, c.args);
    EXPECT_EQ(r.exit_code, 1) << c.args.back();
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.args.back() << ": " << r.err;
  }
}

TEST(CliTest, MissingTokenAndBadConfigAreNamed) {
  temp_dir dir;
  write_file(dir.file("u.jsonl"), test::generate_jobs(1, 1)[0].line + "\n");
  auto r = run_process(ORGPATCHD_BINARY, {"run", dir.file("u.jsonl")}, {{"TRUTO_API_TOKEN", ""}});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no API token"), std::string::npos) << r.err;
  write_file(dir.file("c.yaml"), "http:\n  conections: 3\n");
  r = run_process(ORGPATCHD_BINARY, {"run", dir.file("u.jsonl"), "--config", dir.file("c.yaml")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("http.conections: unknown key"), std::string::npos) << r.err;
  r = run_process(ORGPATCHD_BINARY, {"run", dir.file("missing.jsonl")}, {{"TRUTO_API_TOKEN", "t"}});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("missing.jsonl"), std::string::npos) << r.err;
}

TEST(CliTest, ValidateReportsEachBrokenLine) {
  temp_dir dir;
  write_file(dir.file("v.jsonl"), test::generate_jobs(1, 1)[0].line + "\n{\"id\":\"a\",\"body\":{}}\n[]\n");
  auto r = run_process(ORGPATCHD_BINARY, {"validate", dir.file("v.jsonl")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("v.jsonl:2: integrated_account_id"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("v.jsonl:3:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("3 jobs, 1 valid, 2 invalid"), std::string::npos) << r.out;
  write_file(dir.file("ok.jsonl"), test::generate_jobs(2, 1)[1].line + "\n");
  r = run_process(ORGPATCHD_BINARY, {"validate", dir.file("ok.jsonl")});
  EXPECT_EQ(r.exit_code, 0) << r.out;
}

}  // namespace
}  // namespace orgpatch

namespace orgpatch {
namespace {

// A producer that pauses must not stall the run: lines of finished jobs reach
// the results file while standard input is quiet, and a signal still stops it.
TEST(CliTest, QuietStandardInputDoesNotStallTheRun) {
  temp_dir dir;
  cli_emulator emu(dir);
  const auto jobs = test::generate_jobs(3, 1);
  auto args = run_args(emu, "-");
  args.insert(args.end(), {"--results", dir.file("stdin.results.jsonl"), "--dead-letter", dir.file("stdin.failed.jsonl")});
  test::child_with_stdin child(ORGPATCHD_BINARY, args, {}, dir.file("out"), dir.file("err"));
  child.write(jobs[0].line + "\n" + jobs[1].line + "\n");
  // Both lines are written although standard input stays open and silent.
  bool written = false;
  for (int i = 0; i < 200 && !written; ++i) {
    written = test::read_lines(dir.file("stdin.results.jsonl")).size() == 3;
    if (!written) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  EXPECT_TRUE(written) << test::read_file(dir.file("err"));
  child.write(jobs[2].line + "\n");
  child.close_stdin();
  EXPECT_EQ(child.wait(), 0) << test::read_file(dir.file("err"));
  EXPECT_EQ(test::read_lines(dir.file("stdin.results.jsonl")).size(), 4u);
}

TEST(CliTest, SignalStopsARunWaitingOnStandardInput) {
  temp_dir dir;
  cli_emulator emu(dir);
  auto args = run_args(emu, "-");
  args.insert(args.end(), {"--results", dir.file("r.jsonl"), "--dead-letter", dir.file("f.jsonl")});
  test::child_with_stdin child(ORGPATCHD_BINARY, args, {}, dir.file("out"), dir.file("err"));
  child.write(test::generate_jobs(1, 1)[0].line + "\n");
  for (int i = 0; i < 200 && test::read_lines(dir.file("r.jsonl")).size() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  child.signal(SIGTERM);
  EXPECT_EQ(child.wait(), 143) << test::read_file(dir.file("err"));
}

}  // namespace
}  // namespace orgpatch

namespace orgpatch {
namespace {

// A Redis URL it cannot use (with shared limits to enforce) stops `run` before
// anything is sent, naming the key and what is wrong.
TEST(CliTest, ABadRedisUrlIsAnErrorNamingTheKey) {
  test::temp_dir dir;
  cli_emulator emu(dir);
  std::string text;
  for (const auto& j : test::generate_jobs(5, 9)) text += j.line + "\n";
  test::write_file(dir.file("u.jsonl"), text);
  test::write_file(dir.file("c.yaml"), "serve: {redis: {url: \"rediss://redis.internal:6380\"}}\n");
  auto args = run_args(emu, dir.file("u.jsonl"));
  args.at(std::find(args.begin(), args.end(), "--rate") - args.begin() + 1) = "10";
  args.insert(args.end(), {"--config", dir.file("c.yaml")});
  const auto r = test::run_process(ORGPATCHD_BINARY, args);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("serve.redis.url"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("TLS (rediss://) is not supported"), std::string::npos) << r.err;
  EXPECT_EQ(emu.server->stats_snapshot(false).requests, 0u);
}

}  // namespace
}  // namespace orgpatch

namespace orgpatch {
namespace {

// The options the parser of `orgpatchd COMMAND` (cmd_COMMAND in src/main.cpp)
// compares its arguments with, read from the source so that a new option
// cannot be added without its help line. --token is there only to be refused.
std::set<std::string> parsed_options(const std::string& command) {
  const std::string src = test::read_file(std::string(ORGPATCH_SOURCE_DIR) + "/src/main.cpp");
  const auto begin = src.find("int cmd_" + command + "(");
  const auto end = src.find("\n}\n", begin);
  if (begin == std::string::npos || end == std::string::npos) return {};
  const std::string body = src.substr(begin, end - begin);
  static const std::regex option(R"re(== "(--[a-z][a-z-]*)")re");
  std::set<std::string> found;
  for (auto it = std::sregex_iterator(body.begin(), body.end(), option); it != std::sregex_iterator(); ++it)
    found.insert((*it)[1].str());
  found.erase("--token");
  found.erase("--help");
  return found;
}

// `option` appears as a whole word (so "--rate" is not taken for "--rate-x").
bool mentions(const std::string& text, const std::string& option) {
  for (auto at = text.find(option); at != std::string::npos; at = text.find(option, at + 1)) {
    const auto next = at + option.size();
    if (next == text.size() || !(std::isalnum(static_cast<unsigned char>(text[next])) || text[next] == '-'))
      return true;
  }
  return false;
}

TEST(CliTest, RunHelpNamesEveryOptionTheParserAccepts) {
  auto options = parsed_options("run");
  EXPECT_GE(options.size(), 14u) << "the scan of cmd_run in src/main.cpp found too few options";
  // The interface of DESIGN.md §7, whatever the scan finds.
  for (const char* o : {"--config", "--results", "--dead-letter", "--base-url", "--token-file", "--ca-file",
                        "--connections", "--rate", "--account-rate", "--resume", "--force", "--dry-run", "--quiet",
                        "--summary-json", "--metrics-listen"})
    options.insert(o);
  const auto r = run_process(ORGPATCHD_BINARY, {"run", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  EXPECT_NE(r.out.find("usage: orgpatchd run"), std::string::npos) << r.out;
  for (const auto& o : options) EXPECT_TRUE(mentions(r.out, o)) << o << " is not in `orgpatchd run --help`";
  EXPECT_EQ(r.out.find("not available yet"), std::string::npos) << r.out;
  // The same text wherever --help stands, and through `orgpatchd help run`.
  EXPECT_EQ(run_process(ORGPATCHD_BINARY, {"run", "updates.jsonl", "--quiet", "--help"}).out, r.out);
  EXPECT_EQ(run_process(ORGPATCHD_BINARY, {"help", "run"}).out, r.out);
}

TEST(CliTest, EveryCommandHasItsOwnHelp) {
  const auto overview = run_process(ORGPATCHD_BINARY, {"--help"});
  EXPECT_EQ(overview.exit_code, 0) << overview.err;
  EXPECT_NE(overview.out.find("COMMAND --help"), std::string::npos) << overview.out;
  for (const std::string command : {"run", "validate", "serve", "submit"}) {
    EXPECT_NE(overview.out.find("orgpatchd " + command), std::string::npos) << command;
    const auto r = run_process(ORGPATCHD_BINARY, {command, "-h"});
    EXPECT_EQ(r.exit_code, 0) << command << ": " << r.err;
    EXPECT_NE(r.out.find("usage: orgpatchd " + command), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("exit status"), std::string::npos) << command;
    const auto options = parsed_options(command);
    EXPECT_FALSE(options.empty()) << "no options found in cmd_" << command;
    for (const auto& o : options) EXPECT_TRUE(mentions(r.out, o)) << o << " is not in `orgpatchd " << command << " --help`";
  }
}

}  // namespace
}  // namespace orgpatch
