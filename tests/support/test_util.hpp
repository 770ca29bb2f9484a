// Helpers shared by the tests: temporary directories, job files, reading lines.
#pragma once

#include <boost/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace orgpatch::test {

/// A fresh directory under the test temp dir, removed when destroyed.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::filesystem::path& path() const noexcept { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

/// A deterministic UUID for (kind, n).
std::string test_uuid(std::uint32_t kind, std::uint64_t n);

/// One generated job: its line and what it asks for.
struct generated_job {
  std::string line;
  std::string id;
  std::string account;
  std::string name;
  int session_expiry = 0;
};

/// `count` jobs over `accounts` integrated accounts, each for its own organization.
std::vector<generated_job> generate_jobs(std::size_t count, std::size_t accounts);

void write_file(const std::string& path, const std::string& text);
std::string read_file(const std::string& path);
std::vector<std::string> read_lines(const std::string& path);

}  // namespace orgpatch::test
