// The systemd unit: it verifies, and its hardening rates 2.0 or lower.
#include "support/process.hpp"
#include "support/test_util.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

namespace orgpatch {
namespace {

const std::string k_analyze = "/usr/bin/systemd-analyze";

// The unit with ExecStart pointing at the binary just built.
std::string unit_for_test(const test::temp_dir& dir) {
  std::string unit = test::read_file(std::string(ORGPATCH_SOURCE_DIR) + "/systemd/orgpatchd.service");
  const std::string from = "/usr/bin/orgpatchd";
  for (auto at = unit.find(from); at != std::string::npos; at = unit.find(from, at + 1))
    unit.replace(at, from.size(), ORGPATCHD_BINARY);
  const std::string path = dir.file("orgpatchd.service");
  test::write_file(path, unit);
  return path;
}

TEST(SystemdTest, UnitVerifies) {
  if (!std::filesystem::exists(k_analyze)) GTEST_SKIP() << "no systemd-analyze";
  test::temp_dir dir;
  const auto r = test::run_process(k_analyze, {"verify", unit_for_test(dir)});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

TEST(SystemdTest, HardeningRatesTwoOrLower) {
  if (!std::filesystem::exists(k_analyze)) GTEST_SKIP() << "no systemd-analyze";
  test::temp_dir dir;
  const auto r = test::run_process(k_analyze, {"security", "--offline=true", "--no-pager", unit_for_test(dir)});
  std::smatch m;
  const std::string text = r.out + r.err;
  ASSERT_TRUE(std::regex_search(text, m, std::regex(R"(Overall exposure level for orgpatchd\.service: ([0-9.]+))")))
      << text;
  EXPECT_LE(std::stod(m[1]), 2.0) << text;
}

}  // namespace
}  // namespace orgpatch
