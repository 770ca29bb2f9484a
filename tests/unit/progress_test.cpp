#include "orgpatch/progress.hpp"

#include "support/test_util.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <chrono>
#include <thread>

namespace orgpatch {
namespace {

TEST(ProgressTest, TheLineSaysDoneTotalRateEtaAndOutcomes) {
  progress_snapshot s;
  s.done = 41200;
  s.total = 100000;
  s.ok = 41190;
  s.failed = 10;
  s.retrying = 2;
  s.throttled_accounts = 3;
  s.requests_per_s = 9870.4;
  s.jobs_per_s = 9800;
  s.elapsed_s = 4.2;
  // 58 800 jobs left at 9 800/s: 6 s.
  EXPECT_EQ(format_progress(s),
            "41 200/100 000 jobs 41% · 9 870 req/s · ETA 0:06 · ok 41 190 · failed 10 · retrying 2 · "
            "throttled accounts 3 · 0:04");
}

TEST(ProgressTest, UnknownTotalNoEtaAndQuietCountsLeftOut) {
  progress_snapshot s;
  s.done = 7;
  s.ok = 7;
  s.requests_per_s = 12;
  s.elapsed_s = 3725;
  EXPECT_EQ(format_progress(s), "7 jobs · 12 req/s · ok 7 · failed 0 · 1:02:05");
  s.total = 10;
  s.jobs_per_s = 0;  // nothing finished lately: no estimate rather than infinity
  EXPECT_EQ(format_progress(s), "7/10 jobs 70% · 12 req/s · ETA – · ok 7 · failed 0 · 1:02:05");
  s.done = 12;  // a total counted low (the file grew) never shows more than 100 %
  EXPECT_EQ(format_progress(s).substr(0, 16), "12/12 jobs 100% ");
}

TEST(ProgressTest, DurationsReadAsClockTimes) {
  EXPECT_EQ(format_duration(0), "0:00");
  EXPECT_EQ(format_duration(59.4), "0:59");
  EXPECT_EQ(format_duration(61), "1:01");
  EXPECT_EQ(format_duration(3600), "1:00:00");
  EXPECT_EQ(format_duration(-1), "–");
  EXPECT_EQ(format_duration(444444), "123:27:24");  // 20 M jobs at 45/s: still a number
  EXPECT_EQ(format_duration(1e12), "–");
}

TEST(ProgressTest, RatesFollowTheLastSecondsNotTheWholeRun) {
  progress_rates r;
  EXPECT_EQ(r.jobs_per_s(), 0);
  // 10 s at 100 jobs/s, then 10 s at 1 000 jobs/s, sampled every 0.1 s.
  std::uint64_t jobs = 0;
  double t = 0;
  for (int i = 0; i <= 100; ++i, t += 0.1) {
    if (i > 0) jobs += 10;
    r.sample(t, jobs, jobs * 2);
  }
  EXPECT_NEAR(r.jobs_per_s(), 100, 1);
  for (int i = 0; i < 100; ++i, t += 0.1) {
    jobs += 100;
    r.sample(t, jobs, jobs * 2);
  }
  EXPECT_NEAR(r.jobs_per_s(), 1000, 25);
  EXPECT_NEAR(r.requests_per_s(), 2000, 50);
}

TEST(ProgressTest, CountsNonBlankLinesOfARegularFileOnly) {
  test::temp_dir dir;
  test::write_file(dir.file("a.jsonl"), "{}\n\n  \n{}\r\n{}\n\t\n{}");  // the last line has no newline
  line_counter a(dir.file("a.jsonl"));
  EXPECT_EQ(a.wait(), std::optional<std::uint64_t>(4));
  test::write_file(dir.file("empty.jsonl"), "");
  line_counter e(dir.file("empty.jsonl"));
  EXPECT_EQ(e.wait(), std::optional<std::uint64_t>(0));
  line_counter missing(dir.file("missing.jsonl"));
  EXPECT_EQ(missing.wait(), std::nullopt);
  line_counter in("-");
  EXPECT_EQ(in.wait(), std::nullopt);
  line_counter directory(dir.path().string());
  EXPECT_EQ(directory.wait(), std::nullopt);
  // A named pipe without a writer: not counted, and not waited on either.
  ASSERT_EQ(::mkfifo(dir.file("pipe").c_str(), 0600), 0);
  line_counter pipe(dir.file("pipe"));
  EXPECT_EQ(pipe.wait(), std::nullopt);
}

// Read while it counts, as the progress line does (TSan checks this in CI).
TEST(ProgressTest, TheCountIsReadWhileItIsMade) {
  test::temp_dir dir;
  std::string text;
  for (int i = 0; i < 200000; ++i) text += "{\"id\":\"x\"}\n";
  test::write_file(dir.file("big.jsonl"), text);
  line_counter c(dir.file("big.jsonl"));
  std::optional<std::uint64_t> n;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!(n = c.count()) && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  EXPECT_EQ(n, std::optional<std::uint64_t>(200000));
}

}  // namespace
}  // namespace orgpatch
