// Durability (DESIGN.md §6): kill -9 and rerun, SIGTERM and resume, SIGHUP
// reopening, a changed input. orgpatchd runs as a separate process; the
// emulator runs in this one and counts what each organization was sent.
#include "emulator/cert.hpp"
#include "emulator/server.hpp"
#include "support/process.hpp"
#include "support/test_util.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <thread>

namespace orgpatch {
namespace {

namespace emu = orgpatch::emulator;
using namespace std::chrono_literals;
using test::read_lines;
using test::temp_dir;
using test::write_file;

constexpr const char* k_token = "durability-token";
constexpr unsigned k_connections = 8;

struct setup {
  explicit setup(std::size_t jobs, std::size_t accounts = 50) {
    auto paths = emu::write_self_signed_cert(dir.path() / "cert");
    ca_file = paths.cert.string();
    emu::server_options o;
    o.port = 0;
    o.cert_file = paths.cert.string();
    o.key_file = paths.key.string();
    o.threads = 1;
    o.api.token = k_token;
    server = std::make_unique<emu::server>(o);
    server->start();
    write_file(dir.file("token"), k_token);
    std::filesystem::permissions(dir.file("token"), std::filesystem::perms::owner_read);
    generated = test::generate_jobs(jobs, accounts);
    std::string text;
    for (const auto& j : generated) text += j.line + "\n";
    write_file(input(), text);
  }
  std::string input() const { return dir.file("updates.jsonl"); }
  std::string results() const { return dir.file("updates.results.jsonl"); }
  std::vector<std::string> args(std::vector<std::string> extra = {}) const {
    std::vector<std::string> a = {"run", input(), "--base-url", server->base_url(), "--ca-file", ca_file,
                                  "--token-file", dir.file("token"), "--rate", "0", "--account-rate", "0",
                                  "--connections", std::to_string(k_connections), "--quiet"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  std::string org(std::size_t i) const { return generated[i].account + "/" + generated[i].id; }

  temp_dir dir;
  std::string ca_file;
  std::unique_ptr<emu::server> server;
  std::vector<test::generated_job> generated;
};

// Result lines (header and torn tail excluded) by job line.
std::map<std::uint64_t, std::string> result_lines(const std::string& path) {
  std::map<std::uint64_t, std::string> out;
  const std::string text = test::read_file(path);
  std::size_t start = 0;
  for (std::size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
    const std::string line = text.substr(start, nl - start);
    if (line.rfind("{\"orgpatchd\":", 0) == 0) continue;
    const auto o = boost::json::parse(line).as_object();  // every line whole
    const auto n = o.at("line").to_number<std::uint64_t>();
    EXPECT_TRUE(out.emplace(n, line).second) << "two lines for job line " << n;
  }
  return out;
}

TEST(DurabilityTest, KillNineAtRandomMomentsThenRerunUntilDone) {
  const std::size_t jobs = 20000;
  std::mt19937 rng(20261126);
  std::vector<std::size_t> resent_per_crash;
  for (int trial = 0; trial < 10; ++trial) {
    setup s(jobs);
    // Kill -9 at a random moment of the first run.
    const auto delay = std::chrono::milliseconds(std::uniform_int_distribution<int>(50, 700)(rng));
    int runs = 0;
    {
      test::child_with_stdin child(ORGPATCHD_BINARY, s.args(), {}, s.dir.file("out"), s.dir.file("err"));
      std::this_thread::sleep_for(delay);
      child.signal(SIGKILL);
      child.wait();
      ++runs;
    }
    // What was on disk and what the emulator had been sent at the moment of the crash.
    const auto written = result_lines(s.results());
    const auto at_crash = s.server->stats_snapshot(true).per_org;
    // Rerun the same command until it exits.
    int exit_code = -1;
    for (; runs < 5 && exit_code != 0; ++runs) {
      const auto r = test::run_process(ORGPATCHD_BINARY, s.args());
      exit_code = r.exit_code;
      EXPECT_TRUE(exit_code == 0) << "trial " << trial << ": " << r.err;
    }
    ASSERT_EQ(exit_code, 0) << "trial " << trial;

    // Exactly one line per job, every job ok.
    const auto final_lines = result_lines(s.results());
    ASSERT_EQ(final_lines.size(), jobs) << "trial " << trial;
    for (const auto& [line, text] : final_lines)
      ASSERT_NE(text.find("\"outcome\":\"ok\""), std::string::npos) << "trial " << trial << ": " << text;

    const auto st = s.server->stats_snapshot(true);
    EXPECT_EQ(st.applied, jobs) << "trial " << trial;
    EXPECT_EQ(st.max_applies_per_org, 1u) << "trial " << trial << ": an organization applied twice";
    EXPECT_EQ(st.max_idempotency_keys_per_org, 1u) << "trial " << trial << ": a job changed its Idempotency-Key";
    std::size_t resent = 0;
    for (std::size_t i = 0; i < jobs; ++i) {
      const auto now_it = st.per_org.find(s.org(i));
      ASSERT_NE(now_it, st.per_org.end());
      const auto before = at_crash.find(s.org(i));
      const std::uint64_t before_requests = before == at_crash.end() ? 0 : before->second.requests;
      if (written.count(i + 1)) {
        // Its line was written before the crash: never sent again.
        EXPECT_EQ(now_it->second.requests, before_requests) << "trial " << trial << ": job " << i + 1;
      }
      if (now_it->second.requests > 1) ++resent;
    }
    resent_per_crash.push_back(resent);
    EXPECT_LE(resent, 2 * k_connections) << "trial " << trial;
  }
  std::string summary;
  for (auto n : resent_per_crash) summary += std::to_string(n) + " ";
  std::printf("[ kill -9 ] jobs re-sent per crash: %s(limit %u)\n", summary.c_str(), 2 * k_connections);
}

TEST(DurabilityTest, SigtermStopsWithinTheGraceAndTheResumeFinishes) {
  setup s(3000, 30);
  {
    // Paced (300 requests/s) so the run is still going when the signal arrives.
    auto args = s.args();
    args[9] = "300";  // --rate
    test::child_with_stdin child(ORGPATCHD_BINARY, args, {}, s.dir.file("out"), s.dir.file("err"));
    std::this_thread::sleep_for(1500ms);
    const auto t0 = std::chrono::steady_clock::now();
    child.signal(SIGTERM);
    EXPECT_EQ(child.wait(), 143) << test::read_file(s.dir.file("err"));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  }
  const auto partial = result_lines(s.results());  // every line whole (parsed)
  EXPECT_GT(partial.size(), 0u);
  EXPECT_LT(partial.size(), 3000u);
  const auto r = test::run_process(ORGPATCHD_BINARY, s.args());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(result_lines(s.results()).size(), 3000u);
  const auto st = s.server->stats_snapshot(false);
  EXPECT_EQ(st.applied, 3000u);
  EXPECT_EQ(st.max_applies_per_org, 1u);
}

TEST(DurabilityTest, SighupAfterMovingTheResultsFileContinuesInANewOne) {
  setup s(1500, 30);
  auto args = s.args();
  args[9] = "500";  // --rate: about 3 s
  test::child_with_stdin child(ORGPATCHD_BINARY, args, {}, s.dir.file("out"), s.dir.file("err"));
  std::this_thread::sleep_for(1000ms);
  std::filesystem::rename(s.results(), s.results() + ".1");
  child.signal(SIGHUP);
  EXPECT_EQ(child.wait(), 0) << test::read_file(s.dir.file("err"));
  const auto old_lines = result_lines(s.results() + ".1");
  const auto new_lines = result_lines(s.results());
  EXPECT_GT(old_lines.size(), 0u);
  EXPECT_GT(new_lines.size(), 0u);
  EXPECT_EQ(old_lines.size() + new_lines.size(), 1500u);
  for (const auto& [line, text] : new_lines) EXPECT_EQ(old_lines.count(line), 0u) << line;
  // The new file starts with a continuation header of the same run.
  const auto first_old = read_lines(s.results() + ".1").front();
  const auto first_new = read_lines(s.results()).front();
  EXPECT_EQ(boost::json::parse(first_old).at("run_id"), boost::json::parse(first_new).at("run_id"));
}

TEST(DurabilityTest, AChangedInputIsRefusedUnlessForced) {
  setup s(20, 2);
  auto r = test::run_process(ORGPATCHD_BINARY, s.args());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The same command again: nothing left to send.
  r = test::run_process(ORGPATCHD_BINARY, s.args());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(s.server->stats_snapshot(false).max_requests_per_org, 1u);
  // The input changes: refused, the results untouched.
  write_file(s.input(), test::read_file(s.input()) + test::generate_jobs(21, 2)[20].line + "\n");
  r = test::run_process(ORGPATCHD_BINARY, s.args());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("input changed"), std::string::npos) << r.err;
  EXPECT_EQ(result_lines(s.results()).size(), 20u);
  // --force starts a new run and moves the old results aside.
  r = test::run_process(ORGPATCHD_BINARY, s.args({"--force"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(result_lines(s.results()).size(), 21u);
  std::size_t aside = 0;
  for (const auto& e : std::filesystem::directory_iterator(s.dir.path()))
    if (e.path().filename().string().rfind("updates.results.jsonl.", 0) == 0) ++aside;
  EXPECT_EQ(aside, 1u);
  // --resume with no results file is an error.
  std::filesystem::remove(s.results());
  r = test::run_process(ORGPATCHD_BINARY, s.args({"--resume"}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("nothing to resume"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace orgpatch
