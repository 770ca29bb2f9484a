#include "orgpatch/results.hpp"

#include "support/test_util.hpp"

#include <gtest/gtest.h>

#include <filesystem>

namespace orgpatch {
namespace {

using test::read_file;
using test::temp_dir;
using test::write_file;

const std::string k_header =
    R"({"orgpatchd":"0.1.0","run_id":"abc123","input":{"path":"u.jsonl","size":42,"sha256":"ff00"},"started_at":"2026-11-26T20:40:00.000Z"})";

TEST(ResultsLogTest, ReadsTheHeaderAndWhichLinesFinished) {
  temp_dir dir;
  const std::string path = dir.file("r.jsonl");
  write_file(path, k_header + "\n" +
                       R"({"key":"3","line":3,"id":"a","outcome":"ok","http_status":200})" "\n" +
                       R"({"key":"k\",\"line\":99","line":70,"outcome":"failed"})" "\n" +  // a key that looks like a line
                       R"({"key":"9","line":9,"outcome":"invalid"})" "\n");
  const results_log log = read_results_log(path, false);
  EXPECT_EQ(log.header.run_id, "abc123");
  EXPECT_EQ(log.header.input_size, 42u);
  EXPECT_EQ(log.header.input_sha256, "ff00");
  EXPECT_EQ(log.finished, 3u);
  EXPECT_EQ(log.ok, 1u);
  EXPECT_EQ(log.failed, 1u);
  EXPECT_EQ(log.invalid, 1u);
  EXPECT_TRUE(log.has(3));
  EXPECT_TRUE(log.has(70));
  EXPECT_TRUE(log.has(9));
  EXPECT_FALSE(log.has(99));
  EXPECT_FALSE(log.has(4));
  EXPECT_FALSE(log.has(1000000));
}

TEST(ResultsLogTest, ATornLastLineIsCutOff) {
  temp_dir dir;
  const std::string path = dir.file("r.jsonl");
  const std::string whole = k_header + "\n" + R"({"key":"1","line":1,"outcome":"ok"})" "\n";
  write_file(path, whole + R"({"key":"2","line":2,"outc)");
  const results_log log = read_results_log(path, true);
  EXPECT_EQ(log.finished, 1u);
  EXPECT_FALSE(log.has(2));
  EXPECT_EQ(log.repaired_bytes, 25u);
  EXPECT_EQ(read_file(path), whole);
  // Without repair the file is left alone.
  write_file(path, whole + "{\"key\"");
  EXPECT_EQ(read_results_log(path, false).repaired_bytes, 6u);
  EXPECT_EQ(read_file(path), whole + "{\"key\"");
}

TEST(ResultsLogTest, ContinuationHeadersAreSkipped) {
  temp_dir dir;
  const std::string path = dir.file("r.jsonl");
  write_file(path, k_header + "\n" + k_header + "\n" + R"({"key":"5","line":5,"outcome":"exhausted"})" "\n");
  const results_log log = read_results_log(path, false);
  EXPECT_EQ(log.finished, 1u);
  EXPECT_EQ(log.exhausted, 1u);
}

TEST(ResultsLogTest, NotAResultsLogIsNamed) {
  temp_dir dir;
  const std::string path = dir.file("r.jsonl");
  write_file(path, "{\"id\":\"x\"}\n");
  try {
    (void)read_results_log(path, false);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("r.jsonl:1: not an orgpatchd results log"), std::string::npos) << e.what();
  }
  write_file(path, k_header + "\nnonsense\n");
  try {
    (void)read_results_log(path, false);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("r.jsonl:2: not a result line"), std::string::npos) << e.what();
  }
}

TEST(ResultsLogTest, ResumedSinkAppendsAndReopenWritesAContinuationHeader) {
  temp_dir dir;
  const std::string results = dir.file("r.jsonl"), dead = dir.file("f.jsonl");
  run_header h{"0.1.0", "run-1", "u.jsonl", 10, "aa", std::chrono::system_clock::now()};
  job_result r;
  r.key = "1";
  r.line = 1;
  r.result = outcome::failed;
  r.error_kind = "http";
  r.error_message = "no";
  {
    results_sink sink(results, dead, fsync_mode::none, h);
    sink.add(r, R"({"id":"x"})", "line-1", "k1");
  }
  r.key = "2";
  r.line = 2;
  {
    results_sink sink(results, dead, fsync_mode::none, h, sink_open::resume);
    sink.add(r, R"({"id":"y"})", "line-2", "k2");
    sink.flush();
    std::filesystem::rename(results, dir.file("r.jsonl.1"));
    sink.reopen();
    r.key = "3";
    r.line = 3;
    sink.add(r, R"({"id":"z"})", "line-3", "k3");
  }
  EXPECT_EQ(test::read_lines(dir.file("r.jsonl.1")).size(), 3u);  // header + lines 1, 2
  const auto fresh = test::read_lines(results);
  ASSERT_EQ(fresh.size(), 2u);  // continuation header + line 3
  EXPECT_NE(fresh[0].find("\"run_id\":\"run-1\""), std::string::npos);
  EXPECT_EQ(read_results_log(results, false).finished, 1u);
  EXPECT_EQ(test::read_lines(dead).size(), 3u);  // dead letters kept across resume and reopen
}

}  // namespace
}  // namespace orgpatch
