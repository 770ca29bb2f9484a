#include "orgpatch/progress.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

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

std::uint64_t tally_of(std::string_view text, std::size_t piece) {
  job_line_tally t;
  for (std::size_t at = 0; at < text.size(); at += piece) t.add(text.substr(at, piece));
  return t.lines();
}

// Lines holding a job, as the reader counts them: blank and white-space lines
// are not, a last line without its newline is; fed whole or in any pieces.
TEST(ProgressTest, CountsTheLinesThatHoldAJobInAnyPieces) {
  const std::string text = "{}\n\n  \n{}\r\n{}\n\t\n \r\n{}";  // the last line has no newline
  for (std::size_t piece : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{7}, text.size()})
    EXPECT_EQ(tally_of(text, piece), 4u) << "pieces of " << piece;
  EXPECT_EQ(tally_of("", 1), 0u);
  EXPECT_EQ(tally_of("\n\n \n", 1), 0u);
  EXPECT_EQ(tally_of("x", 1), 1u);
  EXPECT_EQ(tally_of("x\n", 1), 1u);
  EXPECT_EQ(tally_of("  x  \n\n", 2), 1u);
}

}  // namespace
}  // namespace orgpatch
