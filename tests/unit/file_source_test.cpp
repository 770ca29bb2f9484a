#include "orgpatch/sources/file_source.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace orgpatch {
namespace {

const std::string k_account = "62f44730-dd91-461e-bd6a-aedd9e0ad79d";

std::string job_line(const std::string& id, const std::string& extra = "") {
  return R"({"id":")" + id + R"(","integrated_account_id":")" + k_account + R"(","body":{})" +
         (extra.empty() ? "" : "," + extra) + "}";
}

class FileSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "orgpatch_file_source_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    for (const auto& f : files_) std::remove(f.c_str());
    ::rmdir(dir_.c_str());
  }

  std::string write(const std::string& content, const std::string& name = "jobs.jsonl") {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
    files_.push_back(path);
    return path;
  }

  static std::vector<source_item> read_all(const std::string& path, std::size_t max_line = 1 << 20,
                                           std::size_t block = file_source::default_block_size,
                                           job_parse_options options = {}) {
    file_source src(path, std::move(options), max_line, block);
    std::vector<source_item> items;
    while (auto item = src.next()) items.push_back(std::move(*item));
    EXPECT_FALSE(src.next().has_value());  // stays at the end
    return items;
  }

  static const job& job_of(const source_item& item) {
    static const job none;
    if (const auto* e = std::get_if<input_error>(&item.parsed)) {
      ADD_FAILURE() << "line " << item.line << ": unexpected error " << e->to_string();
      return none;
    }
    return std::get<job>(item.parsed);
  }

  static input_error error_of(const source_item& item) {
    if (std::holds_alternative<job>(item.parsed)) {
      ADD_FAILURE() << "line " << item.line << ": expected an error";
      return {};
    }
    return std::get<input_error>(item.parsed);
  }

  std::string dir_;
  std::vector<std::string> files_;
};

TEST_F(FileSourceTest, LinesBlankLinesAndNumbers) {
  const std::string content =
      job_line("a") + "\n\n   \n\t \r\n" + job_line("b") + "\n\n" + job_line("c") + "\n";
  const std::string path = write(content);
  const auto items = read_all(path);
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].line, 1u);
  EXPECT_EQ(items[1].line, 5u);
  EXPECT_EQ(items[2].line, 7u);
  EXPECT_EQ(job_of(items[0]).id, "a");
  EXPECT_EQ(job_of(items[1]).id, "b");
  EXPECT_EQ(job_of(items[2]).id, "c");
  EXPECT_EQ(job_of(items[1]).key, "5");
  EXPECT_EQ(job_of(items[1]).line, 5u);
  EXPECT_EQ(items[1].key, "5");
  EXPECT_EQ(job_of(items[2]).source, job_line("c"));
  EXPECT_EQ(items[0].offset, 0u);
  EXPECT_EQ(items[1].offset, content.find(job_line("b")));
  EXPECT_EQ(items[2].offset, content.find(job_line("c")));
}

TEST_F(FileSourceTest, CrlfAndMissingFinalNewline) {
  const std::string path = write(job_line("a") + "\r\n\r\n" + job_line("b"));
  const auto items = read_all(path);
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(job_of(items[0]).source, job_line("a"));  // no '\r'
  EXPECT_EQ(items[1].line, 3u);
  EXPECT_EQ(job_of(items[1]).id, "b");
  EXPECT_EQ(job_of(items[1]).source, job_line("b"));
}

TEST_F(FileSourceTest, EmptyAndBlankFiles) {
  EXPECT_TRUE(read_all(write("", "empty.jsonl")).empty());
  EXPECT_TRUE(read_all(write("\n\n  \r\n\t", "blank.jsonl")).empty());
}

TEST_F(FileSourceTest, ByteOrderMarkIsSkipped) {
  const auto items = read_all(write("\xEF\xBB\xBF" + job_line("a") + "\n"));
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(job_of(items[0]).id, "a");
  EXPECT_EQ(items[0].offset, 3u);
}

TEST_F(FileSourceTest, BytesReadReachesFileSize) {
  const std::string content = job_line("a") + "\n" + job_line("b") + "\n\n";
  file_source src(write(content), {}, 1 << 20);
  EXPECT_EQ(src.bytes_read(), 0u);
  ASSERT_TRUE(src.next().has_value());
  EXPECT_EQ(src.bytes_read(), job_line("a").size() + 1);
  ASSERT_TRUE(src.next().has_value());
  EXPECT_FALSE(src.next().has_value());
  EXPECT_EQ(src.bytes_read(), content.size());
}

TEST_F(FileSourceTest, InvalidLinesCarryKeyAndSource) {
  const std::string bad_uuid = R"({"id":"x","integrated_account_id":"nope","body":{},"key":"k-1"})";
  const std::string broken = R"({"id":"y",)";
  const std::string path = write(bad_uuid + "\n" + broken + "\n" + job_line("z") + "\n");
  const auto items = read_all(path);
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(error_of(items[0]).field, "integrated_account_id");
  EXPECT_EQ(items[0].key, "k-1");
  EXPECT_EQ(items[0].source, bad_uuid);
  EXPECT_EQ(error_of(items[1]).field, "");
  EXPECT_EQ(items[1].key, "2");
  EXPECT_EQ(items[1].source, broken);
  EXPECT_EQ(job_of(items[2]).id, "z");
}

TEST_F(FileSourceTest, DuplicateKeys) {
  const std::string path = write(job_line("a", R"("key":"k1")") + "\n" +                     // 1
                                 job_line("b", R"("key":"k2")") + "\n\n" +                   // 2
                                 job_line("c", R"("key":"k1")") + "\n" +                     // 4: dup of 1
                                 R"({"id":"..","body":{},"key":"k3"})" + "\n" +              // 5: invalid, k3
                                 job_line("d", R"("key":"k3")") + "\n" +                     // 6: dup of 5
                                 job_line("e", R"("key":"k4")") + "\n" +                     // 7
                                 R"({"id":"..","body":{},"key":"k4"})" + "\n" +              // 8: invalid, dup
                                 job_line("f") + "\n");                                      // 9
  const auto items = read_all(path);
  ASSERT_EQ(items.size(), 8u);
  EXPECT_EQ(job_of(items[0]).key, "k1");
  EXPECT_EQ(job_of(items[1]).key, "k2");

  const input_error dup = error_of(items[2]);
  EXPECT_EQ(items[2].line, 4u);
  EXPECT_EQ(dup.field, "key");
  EXPECT_EQ(dup.message, "duplicate key \"k1\" (first seen on line 1)");
  EXPECT_EQ(items[2].key, "4");
  EXPECT_EQ(items[2].source, job_line("c", R"("key":"k1")"));

  EXPECT_EQ(error_of(items[3]).field, "id");
  EXPECT_EQ(items[3].key, "k3");
  EXPECT_EQ(error_of(items[4]).message, "duplicate key \"k3\" (first seen on line 5)");
  EXPECT_EQ(items[4].key, "6");

  EXPECT_EQ(job_of(items[5]).key, "k4");
  EXPECT_EQ(error_of(items[6]).field, "id");  // its own error, reported under its line number
  EXPECT_EQ(items[6].key, "8");
  EXPECT_EQ(job_of(items[7]).key, "9");
}

TEST_F(FileSourceTest, OverLongLineIsSkippedUnheld) {
  const std::string huge = R"({"id":"big","integrated_account_id":")" + k_account +
                           R"(","body":{"pad":")" + std::string(2 * 1024 * 1024, 'x') + "\"}}";
  const std::string content = job_line("a") + "\n" + huge + "\n\n" + job_line("b") + "\n";
  const auto items = read_all(write(content));
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(job_of(items[0]).id, "a");
  EXPECT_EQ(items[1].line, 2u);
  const input_error e = error_of(items[1]);
  EXPECT_EQ(e.field, "");
  EXPECT_EQ(e.message, "line longer than 1048576 bytes");
  EXPECT_EQ(items[1].key, "2");
  EXPECT_TRUE(items[1].source.empty());
  EXPECT_EQ(items[1].offset, job_line("a").size() + 1);
  EXPECT_EQ(items[2].line, 4u);
  EXPECT_EQ(job_of(items[2]).id, "b");
}

TEST_F(FileSourceTest, OverLongLastLineWithoutNewline) {
  const std::string content = job_line("a") + "\n" + std::string(3 * 1024 * 1024 + 17, ' ') + "x";
  const auto items = read_all(write(content), 1 << 20, 64 * 1024);
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[1].line, 2u);
  EXPECT_EQ(error_of(items[1]).message, "line longer than 1048576 bytes");
}

TEST_F(FileSourceTest, LineLengthLimitIsExact) {
  // A line of exactly max bytes (CRLF or not) is read; one byte more is not.
  const std::string line = job_line("a");
  const std::size_t max = line.size();
  const std::string path = write(line + "\r\n" + line + "\n" + job_line("ab") + "\n" + line);
  for (std::size_t block : {std::size_t{16}, std::size_t{64}, file_source::default_block_size}) {
    const auto items = read_all(path, max, block);
    ASSERT_EQ(items.size(), 4u) << block;
    EXPECT_EQ(job_of(items[0]).id, "a");
    EXPECT_EQ(job_of(items[1]).id, "a");
    EXPECT_EQ(error_of(items[2]).message, "line longer than " + std::to_string(max) + " bytes");
    EXPECT_TRUE(items[2].source.empty());
    EXPECT_EQ(items[2].line, 3u);
    EXPECT_EQ(job_of(items[3]).id, "a");
    EXPECT_EQ(items[3].line, 4u);
  }
}

TEST_F(FileSourceTest, SameResultWhateverTheBlockSize) {
  std::string content;
  for (int i = 0; i < 300; ++i) {
    content += job_line("org-" + std::to_string(i), i % 7 == 0 ? R"("key":"k)" + std::to_string(i) + "\"" : "");
    content += (i % 5 == 0) ? "\r\n" : "\n";
    if (i % 11 == 0) content += "\n";
    if (i % 50 == 0) {
      content.append(700, 'y');  // over the 600-byte limit below
      content += '\n';
    }
  }
  const std::string path = write(content);
  const auto reference = read_all(path, 600);
  ASSERT_GT(reference.size(), 300u);
  for (std::size_t block : {std::size_t{16}, std::size_t{17}, std::size_t{100}, std::size_t{4096}}) {
    const auto items = read_all(path, 600, block);
    ASSERT_EQ(items.size(), reference.size()) << block;
    for (std::size_t i = 0; i < items.size(); ++i) {
      EXPECT_EQ(items[i].line, reference[i].line);
      EXPECT_EQ(items[i].offset, reference[i].offset);
      EXPECT_EQ(items[i].key, reference[i].key);
      EXPECT_EQ(items[i].parsed.index(), reference[i].parsed.index());
      if (const auto* j = std::get_if<job>(&items[i].parsed)) {
        EXPECT_EQ(j->source, std::get<job>(reference[i].parsed).source);
      }
    }
  }
}

TEST_F(FileSourceTest, OptionsReachTheParser) {
  job_parse_options options;
  options.default_integrated_account_id = k_account;
  const auto items = read_all(write(R"({"id":"a","body":{}})"), 1 << 20, 4096, options);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(job_of(items[0]).integrated_account_id, k_account);
}

TEST_F(FileSourceTest, StandardInput) {
  const std::string path = write(job_line("a") + "\n" + job_line("b"));
  const int saved = ::dup(STDIN_FILENO);
  ASSERT_GE(saved, 0);
  const int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::dup2(fd, STDIN_FILENO), STDIN_FILENO);
  ::close(fd);
  std::vector<source_item> items;
  {
    file_source src("-", {}, 1 << 20);
    EXPECT_EQ(src.path(), "-");
    while (auto item = src.next()) items.push_back(std::move(*item));
  }
  // Standard input is not closed by the source.
  EXPECT_EQ(::lseek(STDIN_FILENO, 0, SEEK_CUR), static_cast<off_t>(2 * job_line("a").size() + 1));
  ::dup2(saved, STDIN_FILENO);
  ::close(saved);
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(job_of(items[1]).id, "b");
  EXPECT_EQ(items[1].line, 2u);
}

TEST_F(FileSourceTest, OpenErrorsNameThePath) {
  const std::string missing = dir_ + "/does-not-exist.jsonl";
  try {
    file_source src(missing, {}, 1 << 20);
    FAIL() << "expected std::runtime_error";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(missing), std::string::npos) << what;
    EXPECT_NE(what.find("No such file or directory"), std::string::npos) << what;
  }
  try {
    file_source src(dir_, {}, 1 << 20);
    FAIL() << "expected std::runtime_error";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(dir_), std::string::npos) << what;
    EXPECT_NE(what.find("Is a directory"), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace orgpatch
