// `orgpatchd serve` over a spool directory, as systemd runs it: READY=1,
// STATUS=, STOPPING=1 on a notify socket; files dropped in while it runs, one
// left in processing/ across a restart, all completed.
#include "emulator/cert.hpp"
#include "emulator/server.hpp"
#include "support/notify_socket.hpp"
#include "support/process.hpp"
#include "support/test_util.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <thread>

namespace orgpatch {
namespace {

namespace emu = orgpatch::emulator;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::notify_socket;
using test::temp_dir;
using test::write_file;

constexpr const char* k_token = "serve-token";

struct serve_setup {
  serve_setup() {
    auto paths = emu::write_self_signed_cert(dir.path() / "cert");
    emu::server_options o;
    o.port = 0;
    o.cert_file = paths.cert.string();
    o.key_file = paths.key.string();
    o.api.token = k_token;
    server = std::make_unique<emu::server>(o);
    server->start();
    spool = dir.path() / "spool";
    write_file(dir.file("token"), k_token);
    fs::permissions(dir.file("token"), fs::perms::owner_read);
    write_file(dir.file("orgpatchd.yaml"),
               "api: {base_url: \"" + server->base_url() + "\"}\n"
               "tls: {ca_file: \"" + paths.cert.string() + "\"}\n"
               "rate_limit: {requests_per_second: 0, per_account_requests_per_second: 0}\n"
               "http: {connections: 4}\n"
               "output: {fsync: none}\n"
               "shutdown_grace_s: 5\n"
               "serve: {spool_dir: \"" + spool.string() + "\", metrics_listen: \"127.0.0.1:0\"}\n");
  }
  std::vector<std::string> args() const {
    return {"serve", "--config", dir.file("orgpatchd.yaml"), "--token-file", dir.file("token")};
  }
  std::string jobs_text(std::size_t count, std::uint32_t kind) const {
    std::string text;
    for (std::size_t i = 0; i < count; ++i) {
      boost::json::object o;
      o["id"] = test::test_uuid(kind, i + 1);
      o["integrated_account_id"] = test::test_uuid(0xacc5, i % 5);
      o["body"] = boost::json::object{{"name", "n" + std::to_string(i)}};
      text += boost::json::serialize(o) + "\n";
    }
    return text;
  }
  // done/NAME.results.jsonl holds `count` ok lines.
  bool done_with(const std::string& name, std::size_t count) const {
    const auto lines = test::read_lines((spool / "done" / (name + ".results.jsonl")).string());
    if (lines.size() != count + 1 || !fs::exists(spool / "done" / name)) return false;
    for (std::size_t i = 1; i < lines.size(); ++i)
      if (lines[i].find("\"outcome\":\"ok\"") == std::string::npos) return false;
    return true;
  }
  bool wait_done(const std::string& name, std::size_t count, std::chrono::milliseconds limit) const {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done_with(name, count)) {
      if (std::chrono::steady_clock::now() > end) return false;
      std::this_thread::sleep_for(50ms);
    }
    return true;
  }

  temp_dir dir;
  std::unique_ptr<emu::server> server;
  fs::path spool;
};

TEST(ServeTest, SpoolFilesFromStartAndWhileRunningAreAllCompleted) {
  serve_setup s;
  fs::create_directories(s.spool / "incoming");
  fs::create_directories(s.spool / "processing");
  write_file((s.spool / "processing" / "left.jsonl").string(), s.jobs_text(50, 0xa1));  // left by a crash
  write_file((s.spool / "incoming" / "early.jsonl").string(), s.jobs_text(60, 0xa2));   // waiting at start
  notify_socket notify(s.dir.file("notify.sock"));
  test::child_with_stdin child(ORGPATCHD_BINARY, s.args(), {{"NOTIFY_SOCKET", notify.path()}}, s.dir.file("out"),
                               s.dir.file("err"));
  ASSERT_TRUE(notify.wait_for("READY=1", 10s)) << test::read_file(s.dir.file("err"));
  // Dropped in while it runs: through `orgpatchd submit`, and by hand.
  write_file(s.dir.file("submitted.jsonl"), s.jobs_text(70, 0xa3));
  const auto r = test::run_process(ORGPATCHD_BINARY, {"submit", s.dir.file("submitted.jsonl"), "--config", s.dir.file("orgpatchd.yaml")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("incoming/submitted.jsonl"), std::string::npos) << r.out;
  write_file((s.spool / "incoming" / ".by-hand.tmp").string(), s.jobs_text(40, 0xa4));
  fs::rename(s.spool / "incoming" / ".by-hand.tmp", s.spool / "incoming" / "by-hand.jsonl");

  EXPECT_TRUE(s.wait_done("left.jsonl", 50, 20s)) << test::read_file(s.dir.file("err"));
  EXPECT_TRUE(s.wait_done("early.jsonl", 60, 20s));
  EXPECT_TRUE(s.wait_done("submitted.jsonl", 70, 20s));
  EXPECT_TRUE(s.wait_done("by-hand.jsonl", 40, 20s));
  EXPECT_TRUE(fs::is_empty(s.spool / "processing"));
  EXPECT_EQ(s.server->stats_snapshot(false).applied, 220u);

  child.signal(SIGTERM);
  EXPECT_EQ(child.wait(), 0) << test::read_file(s.dir.file("err"));
  EXPECT_TRUE(notify.wait_for("STOPPING=1", 1s)) << notify.received();
}

TEST(ServeTest, AFileStoppedMidwayIsResumedAfterARestart) {
  serve_setup s;
  // Paced so that SIGTERM lands in the middle of the file.
  std::string cfg = test::read_file(s.dir.file("orgpatchd.yaml"));
  cfg.replace(cfg.find("requests_per_second: 0,"), std::string("requests_per_second: 0,").size(),
              "requests_per_second: 400, burst: 5,");
  write_file(s.dir.file("orgpatchd.yaml"), cfg);
  fs::create_directories(s.spool / "incoming");
  write_file((s.spool / "incoming" / "big.jsonl").string(), s.jobs_text(2000, 0xb1));
  {
    notify_socket notify(s.dir.file("notify1.sock"));
    test::child_with_stdin child(ORGPATCHD_BINARY, s.args(), {{"NOTIFY_SOCKET", notify.path()}}, s.dir.file("out"),
                                 s.dir.file("err"));
    ASSERT_TRUE(notify.wait_for("READY=1", 10s)) << test::read_file(s.dir.file("err"));
    std::this_thread::sleep_for(1500ms);
    child.signal(SIGTERM);
    EXPECT_EQ(child.wait(), 0) << test::read_file(s.dir.file("err"));
  }
  ASSERT_TRUE(fs::exists(s.spool / "processing" / "big.jsonl"));
  const auto partial = test::read_lines((s.spool / "processing" / "big.jsonl.results.jsonl").string()).size();
  EXPECT_GT(partial, 1u);
  EXPECT_LT(partial, 2001u);
  {
    notify_socket notify(s.dir.file("notify2.sock"));
    test::child_with_stdin child(ORGPATCHD_BINARY, s.args(), {{"NOTIFY_SOCKET", notify.path()}}, s.dir.file("out2"),
                                 s.dir.file("err2"));
    EXPECT_TRUE(s.wait_done("big.jsonl", 2000, 30s)) << test::read_file(s.dir.file("err2"));
    child.signal(SIGTERM);
    EXPECT_EQ(child.wait(), 0);
  }
  const auto st = s.server->stats_snapshot(false);
  EXPECT_EQ(st.applied, 2000u);
  EXPECT_EQ(st.max_applies_per_org, 1u);
}

}  // namespace
}  // namespace orgpatch

namespace orgpatch {
namespace {

TEST(ServeTest, AFileThatCannotRunIsSetAsideAndLinksAreIgnored) {
  serve_setup s;
  fs::create_directories(s.spool / "incoming");
  fs::create_directories(s.spool / "processing");
  // A results log beside it that belongs to another input: it cannot be resumed.
  write_file((s.spool / "processing" / "stale.jsonl").string(), s.jobs_text(5, 0xc1));
  write_file((s.spool / "processing" / "stale.jsonl.results.jsonl").string(),
             R"({"orgpatchd":"0.1.0","run_id":"r","input":{"path":"x","size":1,"sha256":"00"},"started_at":"2026-11-26T00:00:00.000Z"})"
             "\n");
  // A symbolic link to a secret: never followed.
  write_file(s.dir.file("secret"), "TOP-SECRET-CREDENTIAL\n");
  fs::create_symlink(s.dir.file("secret"), s.spool / "incoming" / "link.jsonl");
  write_file((s.spool / "incoming" / "good.jsonl").string(), s.jobs_text(10, 0xc2));
  notify_socket notify(s.dir.file("notify.sock"));
  test::child_with_stdin child(ORGPATCHD_BINARY, s.args(), {{"NOTIFY_SOCKET", notify.path()}}, s.dir.file("out"),
                               s.dir.file("err"));
  EXPECT_TRUE(s.wait_done("good.jsonl", 10, 20s)) << test::read_file(s.dir.file("err"));
  EXPECT_TRUE(fs::exists(s.spool / "failed" / "stale.jsonl"));
  EXPECT_NE(test::read_file((s.spool / "failed" / "stale.jsonl.error").string()).find("input changed"),
            std::string::npos);
  EXPECT_TRUE(fs::is_symlink(s.spool / "incoming" / "link.jsonl"));  // left where it was
  for (const auto& e : fs::recursive_directory_iterator(s.spool)) {
    if (fs::is_regular_file(fs::symlink_status(e.path()))) {
      EXPECT_EQ(test::read_file(e.path().string()).find("TOP-SECRET"), std::string::npos) << e.path();
    }
  }
  child.signal(SIGTERM);
  EXPECT_EQ(child.wait(), 0);
}

}  // namespace
}  // namespace orgpatch
