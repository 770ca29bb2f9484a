// What an operator sees: the progress line on a terminal, the summary (text
// and JSON), `validate` and `run --dry-run`.
#include "support/cli.hpp"
#include "support/process.hpp"
#include "support/test_util.hpp"

#include <gtest/gtest.h>

#include <filesystem>

namespace orgpatch {
namespace {

using test::cli_emulator;
using test::k_cli_token;
using test::run_args;
using test::run_process;
using test::temp_dir;
using test::write_file;

std::string jobs_text(std::size_t n, std::size_t accounts) {
  std::string text;
  for (const auto& j : test::generate_jobs(n, accounts)) text += j.line + "\n";
  return text;
}

// A run long enough to be redrawn a few times: 300 jobs at 400 requests/s
// (after the burst of 50) take about 0.6 s.
std::vector<std::string> slow_run_args(const cli_emulator& emu, const std::string& input) {
  auto args = run_args(emu, input);
  for (std::size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == "--rate") args[i + 1] = "400";
  return args;
}

TEST(OperatorTest, ProgressIsDrawnOnATerminalOnly) {
  temp_dir dir;
  cli_emulator emu(dir);
  write_file(dir.file("u.jsonl"), jobs_text(300, 5));

  const auto tty = test::run_process_on_terminal(ORGPATCHD_BINARY, slow_run_args(emu, dir.file("u.jsonl")));
  EXPECT_EQ(tty.exit_code, 0) << tty.err;
  // Redrawn in place: a carriage return, the line, then the rest of the old one erased.
  EXPECT_NE(tty.err.find("\r"), std::string::npos) << tty.err;
  EXPECT_NE(tty.err.find("\x1b[K"), std::string::npos) << tty.err;
  EXPECT_NE(tty.err.find("/300 jobs"), std::string::npos) << tty.err;  // the total was counted ahead
  EXPECT_NE(tty.err.find("req/s"), std::string::npos) << tty.err;
  EXPECT_NE(tty.err.find("ETA"), std::string::npos) << tty.err;
  // At most 10 redraws a second: far fewer than one per job.
  std::size_t redraws = 0;
  for (std::size_t p = tty.err.find("req/s"); p != std::string::npos; p = tty.err.find("req/s", p + 1)) ++redraws;
  EXPECT_LT(redraws, 100u);
  // The line is gone when the summary comes.
  EXPECT_EQ(tty.err.substr(tty.err.size() - 4), "\r\x1b[K") << tty.err;
  EXPECT_NE(tty.out.find("ok 300"), std::string::npos) << tty.out;
  EXPECT_EQ(tty.out.find("\x1b"), std::string::npos) << tty.out;  // standard output is not the terminal

  // Not a terminal: no line. --quiet on a terminal: no line either.
  auto args = slow_run_args(emu, dir.file("u.jsonl"));
  args.insert(args.end(), {"--force"});
  const auto pipe = run_process(ORGPATCHD_BINARY, args);
  EXPECT_EQ(pipe.exit_code, 0) << pipe.err;
  EXPECT_EQ(pipe.err.find("req/s"), std::string::npos) << pipe.err;
  EXPECT_EQ(pipe.err.find('\r'), std::string::npos) << pipe.err;
  args.insert(args.end(), {"--quiet"});
  const auto quiet = test::run_process_on_terminal(ORGPATCHD_BINARY, args);
  EXPECT_EQ(quiet.exit_code, 0) << quiet.err;
  EXPECT_EQ(quiet.err.find("req/s"), std::string::npos) << quiet.err;
}

TEST(OperatorTest, SummaryJsonHasEveryKeyAndOrderedPercentiles) {
  temp_dir dir;
  cli_emulator emu(dir);
  write_file(dir.file("u.jsonl"), jobs_text(120, 4) + "{\"id\":\"x\"}\n");
  auto args = run_args(emu, dir.file("u.jsonl"));
  args.insert(args.end(), {"--summary-json", dir.file("s.json")});
  const auto r = run_process(ORGPATCHD_BINARY, args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  const auto s = boost::json::parse(test::read_file(dir.file("s.json"))).as_object();
  const auto& jobs = s.at("jobs").as_object();
  EXPECT_EQ(jobs.at("total").as_int64(), 121);
  EXPECT_EQ(jobs.at("ok").as_int64(), 120);
  EXPECT_EQ(jobs.at("failed").as_int64(), 0);
  EXPECT_EQ(jobs.at("exhausted").as_int64(), 0);
  EXPECT_EQ(jobs.at("invalid").as_int64(), 1);
  EXPECT_EQ(s.at("requests").as_int64(), 120);
  EXPECT_EQ(s.at("retries").as_int64(), 0);
  EXPECT_GT(s.at("elapsed_s").to_number<double>(), 0);
  EXPECT_GT(s.at("throughput_rps").to_number<double>(), 0);
  EXPECT_EQ(s.at("status_counts").at("200").as_int64(), 120);
  const auto& l = s.at("latency_ms").as_object();
  const double p50 = l.at("p50").to_number<double>(), p90 = l.at("p90").to_number<double>(),
               p99 = l.at("p99").to_number<double>(), max = l.at("max").to_number<double>();
  EXPECT_GT(p50, 0);
  EXPECT_LE(p50, p90);
  EXPECT_LE(p90, p99);
  EXPECT_LE(p99, max);
  // The text summary says the same.
  EXPECT_NE(r.out.find("ok 120"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("invalid 1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("latency ms: p50"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("HTTP status: 200 ×120"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("u.failed.jsonl"), std::string::npos) << r.out;
}

TEST(OperatorTest, ValidateNamesTheFieldOfEachKindOfBrokenLine) {
  temp_dir dir;
  const std::string a = "05b634ad-405c-4521-ac18-9bf37898bac9";
  auto job_with = [&](const std::string& rest) {
    return "{\"id\":\"x\",\"integrated_account_id\":\"" + a + "\",\"body\":{}" + rest + "}\n";
  };
  // Each broken line and what its message must say (line numbers from 2).
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not json\n", "not valid JSON"},
      {"[]\n", "not a JSON object"},
      {"{\"integrated_account_id\":\"" + a + "\",\"body\":{}}\n", "id: required"},
      {"{\"id\":\"\",\"integrated_account_id\":\"" + a + "\",\"body\":{}}\n", "id: must not be empty"},
      {"{\"id\":\"..\",\"integrated_account_id\":\"" + a + "\",\"body\":{}}\n", "id: must not be only dots"},
      {"{\"id\":5,\"integrated_account_id\":\"" + a + "\",\"body\":{}}\n", "id: must be a string"},
      {"{\"id\":\"x\",\"integrated_account_id\":\"nope\",\"body\":{}}\n", "integrated_account_id: not a UUID"},
      {"{\"id\":\"x\",\"body\":{}}\n", "integrated_account_id: required"},
      {"{\"id\":\"x\",\"integrated_account_id\":\"" + a + "\"}\n", "body: required"},
      {"{\"id\":\"x\",\"integrated_account_id\":\"" + a + "\",\"body\":[1]}\n", "body: must be a JSON object"},
      {job_with(",\"query\":{\"bogus\":1}"), "query.bogus: unknown query parameter"},
      {job_with(",\"query\":{\"truto_response_format\":\"x\"}"), "query.truto_response_format: must be one of"},
      {job_with(",\"key\":\"123\""), "key: not all digits"},
      {job_with(",\"idempotency_key\":\"has space\""), "idempotency_key: must be 1 to 255 visible ASCII"},
      {job_with(",\"extra\":1"), "extra: unknown field"},
      {"{\"id\":\"x\",\"id\":\"y\",\"integrated_account_id\":\"" + a + "\",\"body\":{}}\n", "id: duplicate field"},
      {job_with(",\"key\":\"k1\""), ""},  // valid: the first of two with this key
      {job_with(",\"key\":\"k1\""), "key: duplicate key \"k1\" (first seen on line 18)"},
  };
  std::string text = job_with("");  // line 1 is valid
  for (const auto& [line, message] : cases) text += line;
  text += "\n";  // a blank line is skipped, not broken
  write_file(dir.file("v.jsonl"), text);

  const auto r = run_process(ORGPATCHD_BINARY, {"validate", dir.file("v.jsonl")});
  EXPECT_EQ(r.exit_code, 2);
  std::size_t broken = 0;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    if (cases[i].second.empty()) continue;
    ++broken;
    const std::string expected = dir.file("v.jsonl") + ":" + std::to_string(i + 2) + ": " + cases[i].second;
    EXPECT_NE(r.out.find(expected), std::string::npos) << "missing: " << expected << "\n" << r.out;
  }
  EXPECT_NE(r.out.find(std::to_string(cases.size() + 1) + " jobs, 2 valid, " + std::to_string(broken) + " invalid"),
            std::string::npos)
      << r.out;
  // Nothing but the broken lines and the count.
  std::size_t printed = 0;
  for (char c : r.out) printed += c == '\n';
  EXPECT_EQ(printed, broken + 1) << r.out;

  // Standard input works too, and a clean file exits 0.
  write_file(dir.file("ok.jsonl"), jobs_text(3, 1));
  EXPECT_EQ(run_process(ORGPATCHD_BINARY, {"validate", dir.file("ok.jsonl")}).exit_code, 0);
}

TEST(OperatorTest, DryRunSendsNothingWritesNothingAndNeverShowsTheToken) {
  temp_dir dir;
  cli_emulator emu(dir);
  write_file(dir.file("u.jsonl"), jobs_text(10, 3) + "{\"id\":\"x\"}\n");
  auto args = run_args(emu, dir.file("u.jsonl"));
  args.push_back("--dry-run");
  const auto r = run_process(ORGPATCHD_BINARY, args);
  EXPECT_EQ(r.exit_code, 2) << r.err;  // one line is invalid
  EXPECT_EQ(emu.server->stats_snapshot(false).requests, 0u);
  EXPECT_EQ(emu.server->stats_snapshot(false).connections, 0u);
  EXPECT_FALSE(std::filesystem::exists(dir.file("u.results.jsonl")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("u.failed.jsonl")));
  EXPECT_EQ(r.out.find(k_cli_token), std::string::npos);
  EXPECT_EQ(r.err.find(k_cli_token), std::string::npos);

  // The first three requests as they would go out: method and URL, headers, body.
  const auto first = test::generate_jobs(1, 3)[0];
  EXPECT_NE(r.out.find("PATCH " + emu.server->base_url() + "/unified/user-directory/organizations/"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("?integrated_account_id="), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Authorization: Bearer <redacted>\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Idempotency-Key: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Content-Type: application/json\n"), std::string::npos) << r.out;
  std::size_t shown = 0;
  for (std::size_t p = r.out.find("\nPATCH "); p != std::string::npos; p = r.out.find("\nPATCH ", p + 1)) ++shown;
  EXPECT_EQ(shown, 3u) << r.out;
  EXPECT_NE(r.out.find("u.jsonl:11: integrated_account_id: required"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("10 jobs would be sent to 3 integrated accounts"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 invalid"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Nothing was sent"), std::string::npos) << r.out;
}

TEST(OperatorTest, DryRunAfterAnInterruptedRunShowsOnlyWhatIsLeftWithItsKeys) {
  temp_dir dir;
  cli_emulator emu(dir);
  write_file(dir.file("u.jsonl"), jobs_text(6, 2));
  // A run that finished everything, then a dry run of the same file.
  ASSERT_EQ(run_process(ORGPATCHD_BINARY, run_args(emu, dir.file("u.jsonl"))).exit_code, 0);
  const auto before = emu.server->stats_snapshot(false).requests;
  auto args = run_args(emu, dir.file("u.jsonl"));
  args.push_back("--dry-run");
  const auto r = run_process(ORGPATCHD_BINARY, args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(emu.server->stats_snapshot(false).requests, before);
  EXPECT_NE(r.out.find("0 jobs would be sent"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("6 finished by the run in"), std::string::npos) << r.out;
  // A valid file with no earlier run: exit 0, the would-be keys named.
  write_file(dir.file("w.jsonl"), jobs_text(2, 1));
  args = run_args(emu, dir.file("w.jsonl"));
  args.push_back("--dry-run");
  const auto w = run_process(ORGPATCHD_BINARY, args);
  EXPECT_EQ(w.exit_code, 0) << w.out;
  EXPECT_NE(w.out.find("Idempotency-Key: <derived from the new run's id and key \"1\">"), std::string::npos) << w.out;
}

// Every file orgpatchd wrote in `dir` plus what it printed.
std::string everything_written(const temp_dir& dir, const test::process_result& r) {
  std::string all = r.out + r.err;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path()))
    if (entry.is_regular_file() && entry.path().filename() != "token" && entry.path().filename() != "other")
      all += test::read_file(entry.path().string());
  return all;
}

TEST(OperatorTest, TheTokenIsInNoOutputAtDebugLevel) {
  temp_dir dir;
  cli_emulator emu(dir);
  write_file(dir.file("debug.yaml"), "log: {level: debug}\n");
  write_file(dir.file("u.jsonl"), jobs_text(20, 2) + "{\"id\":\"x\"}\n");

  // Refused (401): the run stops; the wrong token is in nothing it wrote.
  const std::string other = "other-token-also-secret-91";
  write_file(dir.file("other"), other + "\n");
  std::filesystem::permissions(dir.file("other"), std::filesystem::perms::owner_read);
  auto args = run_args(emu, dir.file("u.jsonl"));
  args[7] = dir.file("other");  // the --token-file value
  args.insert(args.end(), {"--config", dir.file("debug.yaml"), "--summary-json", dir.file("s1.json")});
  auto r = run_process(ORGPATCHD_BINARY, args);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("401"), std::string::npos) << r.err;
  // Debug lines were written: the attempt whose 401 stopped the run logged one
  // (which job that is depends on which of the 4 connections answered first).
  EXPECT_NE(r.err.find(") attempt 1: PATCH "), std::string::npos) << r.err;
  EXPECT_EQ(everything_written(dir, r).find(other), std::string::npos);

  // Accepted, with a failed and an invalid job: results, dead letters, summary.
  args = run_args(emu, dir.file("u.jsonl"));
  args.insert(args.end(), {"--config", dir.file("debug.yaml"), "--summary-json", dir.file("s2.json"), "--force"});
  r = run_process(ORGPATCHD_BINARY, args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(std::filesystem::exists(dir.file("u.failed.jsonl")));
  EXPECT_EQ(everything_written(dir, r).find(k_cli_token), std::string::npos);

  // A dry run at debug level, the token from the environment.
  args = run_args(emu, dir.file("u.jsonl"));
  args.erase(args.begin() + 6, args.begin() + 8);  // no --token-file
  args.insert(args.end(), {"--config", dir.file("debug.yaml"), "--dry-run", "--force"});
  r = run_process(ORGPATCHD_BINARY, args, {{"TRUTO_API_TOKEN", k_cli_token}});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.out.find("Bearer <redacted>"), std::string::npos);
  EXPECT_EQ((r.out + r.err).find(k_cli_token), std::string::npos);
}

TEST(OperatorTest, ATokenFileOthersCanReadIsWarnedAbout) {
  temp_dir dir;
  cli_emulator emu(dir);
  write_file(dir.file("u.jsonl"), jobs_text(2, 1));
  std::filesystem::permissions(emu.token_file, std::filesystem::perms::owner_read | std::filesystem::perms::group_read |
                                                   std::filesystem::perms::others_read);
  const auto r = run_process(ORGPATCHD_BINARY, run_args(emu, dir.file("u.jsonl")));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find(emu.token_file + ": the token file is readable by other users; chmod 600 it"), std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find(k_cli_token), std::string::npos);
}

// Verification can be turned off only by its config key, and then every
// start says so; with it on, the emulator's certificate needs its CA file.
TEST(OperatorTest, VerificationOffTakesAConfigKeyAndWarnsAtEveryStart) {
  temp_dir dir;
  cli_emulator emu(dir);
  write_file(dir.file("u.jsonl"), jobs_text(2, 1));
  auto args = run_args(emu, dir.file("u.jsonl"));
  args.erase(args.begin() + 4, args.begin() + 6);  // no --ca-file: the system's CAs do not know it
  auto r = run_process(ORGPATCHD_BINARY, args);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("certificate verif"), std::string::npos) << r.err;

  write_file(dir.file("off.yaml"), "tls: {verify: false}\n");
  args.insert(args.end(), {"--config", dir.file("off.yaml"), "--force"});
  for (int start = 0; start < 2; ++start) {
    r = run_process(ORGPATCHD_BINARY, args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("tls.verify is false: the server's certificate is NOT checked"), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace orgpatch
