#include "support/test_util.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace orgpatch::test {

temp_dir::temp_dir() {
  static std::atomic<unsigned> counter{0};
  path_ = std::filesystem::temp_directory_path() /
          fmt::format("orgpatch-test-{}-{}", ::getpid(), counter.fetch_add(1));
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}

temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string test_uuid(std::uint32_t kind, std::uint64_t n) {
  return fmt::format("{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}", kind, (n >> 48) & 0xffff, (n >> 36) & 0xfff,
                     (n >> 24) & 0xfff, n & 0xffffffffffffULL);
}

std::vector<generated_job> generate_jobs(std::size_t count, std::size_t accounts) {
  std::vector<generated_job> jobs;
  jobs.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    generated_job g;
    g.id = test_uuid(0x0a11, i + 1);
    g.account = test_uuid(0xacc0, i % accounts);
    g.name = fmt::format("Org \"{}\" é", i + 1);
    g.session_expiry = 60 + static_cast<int>(i % 1000);
    boost::json::object o;
    o["id"] = g.id;
    o["integrated_account_id"] = g.account;
    o["body"] = boost::json::object{{"name", g.name}, {"remote_data", {{"session_expiry", g.session_expiry}}}};
    g.line = boost::json::serialize(o);
    jobs.push_back(std::move(g));
  }
  return jobs;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream in(path, std::ios::binary);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace orgpatch::test
