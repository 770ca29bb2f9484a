// results_sink and its line formats: exact text, files on disk, flush behaviour.
#include "orgpatch/results.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace std::string_literals;
using orgpatch::job_result;
using orgpatch::outcome;
using orgpatch::results_sink;
using orgpatch::run_header;

const std::chrono::system_clock::time_point k_finished =
    std::chrono::sys_days{std::chrono::year{2026} / 11 / 26} + 20h + 41min + 7s + 123ms;

std::string json(std::string_view s) {
  std::string out;
  orgpatch::append_json_string(out, s);
  return out;
}

std::string line_of(const job_result& r) {
  std::string out;
  orgpatch::append_result_line(out, r);
  return out;
}

std::string dead_letter(std::string_view source, std::string_view key, std::string_view idem) {
  std::string out;
  const bool added = orgpatch::append_dead_letter_line(out, source, key, idem);
  EXPECT_EQ(added, !out.empty());
  return out;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

run_header header() {
  run_header h;
  h.version = "0.1.0";
  h.run_id = "r-1";
  h.input_path = "/data/updates.jsonl";
  h.input_size = 1234;
  h.input_sha256 = "ab12";
  h.started_at = std::chrono::sys_days{std::chrono::year{2026} / 11 / 26} + 20h + 40min;
  return h;
}

const std::string k_header_line =
    R"({"orgpatchd":"0.1.0","run_id":"r-1","input":{"path":"/data/updates.jsonl","size":1234,"sha256":"ab12"},"started_at":"2026-11-26T20:40:00.000Z"})"
    "\n";

job_result ok_result() {
  job_result r;
  r.key = "17";
  r.line = 17;
  r.id = "2818e386-8dec-2562-9ede-5b8a0fbbdc71";
  r.integrated_account_id = "62f44730-dd91-461e-bd6a-aedd9e0ad79d";
  r.result = outcome::ok;
  r.http_status = 200;
  r.attempts = 1;
  r.latency_ms = 12.44;
  r.finished_at = k_finished;
  r.response_id = "2818e386-8dec-2562-9ede-5b8a0fbbdc71";
  r.response_name = "Acme EMEA";
  r.response_updated_at = "2026-11-26T20:41:07.000Z";
  return r;
}

job_result failed_result() {
  job_result r;
  r.key = "18";
  r.line = 18;
  r.id = "org-18";
  r.integrated_account_id = "62f44730-dd91-461e-bd6a-aedd9e0ad79d";
  r.result = outcome::failed;
  r.http_status = 422;
  r.attempts = 1;
  r.latency_ms = 3.05;
  r.finished_at = k_finished;
  r.error_kind = "http";
  r.error_message = "Email is invalid";
  r.error_remote = true;
  return r;
}

job_result invalid_result() {
  job_result r;
  r.key = "19";
  r.line = 19;
  r.result = outcome::invalid;
  r.error_kind = "input";
  r.error_message = "integrated_account_id: not a UUID";
  return r;
}

class ResultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "orgpatch-results-XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    results_ = dir_ / "updates.results.jsonl";
    dead_ = dir_ / "updates.failed.jsonl";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  fs::path dir_;
  fs::path results_;
  fs::path dead_;
};

// ---------------------------------------------------------------- formats

TEST_F(ResultsTest, OutcomeNames) {
  EXPECT_EQ(orgpatch::to_string(outcome::ok), "ok");
  EXPECT_EQ(orgpatch::to_string(outcome::failed), "failed");
  EXPECT_EQ(orgpatch::to_string(outcome::exhausted), "exhausted");
  EXPECT_EQ(orgpatch::to_string(outcome::invalid), "invalid");
}

TEST_F(ResultsTest, OkLine) {
  EXPECT_EQ(line_of(ok_result()),
            R"({"key":"17","line":17,"id":"2818e386-8dec-2562-9ede-5b8a0fbbdc71","integrated_account_id":"62f44730-dd91-461e-bd6a-aedd9e0ad79d","outcome":"ok","http_status":200,"attempts":1,"latency_ms":12.4,"finished_at":"2026-11-26T20:41:07.123Z","response":{"id":"2818e386-8dec-2562-9ede-5b8a0fbbdc71","name":"Acme EMEA","updated_at":"2026-11-26T20:41:07.000Z"}})"
            "\n");
}

TEST_F(ResultsTest, OkLineWithWarningAndNoResponse) {
  job_result r = ok_result();
  r.response_id = r.response_name = r.response_updated_at = {};
  r.warning = "response body is not valid JSON";
  r.latency_ms = 0;
  r.error_kind = "http";  // ignored for ok
  EXPECT_EQ(line_of(r),
            R"({"key":"17","line":17,"id":"2818e386-8dec-2562-9ede-5b8a0fbbdc71","integrated_account_id":"62f44730-dd91-461e-bd6a-aedd9e0ad79d","outcome":"ok","http_status":200,"attempts":1,"latency_ms":0.0,"finished_at":"2026-11-26T20:41:07.123Z","warning":"response body is not valid JSON"})"
            "\n");
}

TEST_F(ResultsTest, OkLineWithPartialResponse) {
  job_result r = ok_result();
  r.response_id = {};
  r.response_updated_at = {};
  r.finished_at = {};
  r.latency_ms = -1;
  EXPECT_EQ(line_of(r),
            R"({"key":"17","line":17,"id":"2818e386-8dec-2562-9ede-5b8a0fbbdc71","integrated_account_id":"62f44730-dd91-461e-bd6a-aedd9e0ad79d","outcome":"ok","http_status":200,"attempts":1,"response":{"name":"Acme EMEA"}})"
            "\n");
}

TEST_F(ResultsTest, FailedLine) {
  EXPECT_EQ(line_of(failed_result()),
            R"({"key":"18","line":18,"id":"org-18","integrated_account_id":"62f44730-dd91-461e-bd6a-aedd9e0ad79d","outcome":"failed","http_status":422,"attempts":1,"latency_ms":3.0,"finished_at":"2026-11-26T20:41:07.123Z","error":{"kind":"http","message":"Email is invalid","remote":true}})"
            "\n");
}

TEST_F(ResultsTest, ExhaustedLine) {
  job_result r = failed_result();
  r.result = outcome::exhausted;
  r.http_status = 0;  // the last attempt got no response
  r.attempts = 6;
  r.latency_ms = 60000.04;
  r.error_kind = "timeout";
  r.error_message = "no response within 60000 ms";
  r.error_remote = false;
  r.response_name = "ignored";
  EXPECT_EQ(line_of(r),
            R"({"key":"18","line":18,"id":"org-18","integrated_account_id":"62f44730-dd91-461e-bd6a-aedd9e0ad79d","outcome":"exhausted","attempts":6,"latency_ms":60000.0,"finished_at":"2026-11-26T20:41:07.123Z","error":{"kind":"timeout","message":"no response within 60000 ms"}})"
            "\n");
}

TEST_F(ResultsTest, InvalidLine) {
  EXPECT_EQ(line_of(invalid_result()),
            R"({"key":"19","line":19,"outcome":"invalid","error":{"kind":"input","message":"integrated_account_id: not a UUID"}})"
            "\n");
}

TEST_F(ResultsTest, NonFiniteLatencyIsOmitted) {
  job_result r = invalid_result();
  r.latency_ms = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(line_of(r).find("latency"), std::string::npos);
  r.latency_ms = std::numeric_limits<double>::infinity();
  EXPECT_EQ(line_of(r).find("latency"), std::string::npos);
}

TEST_F(ResultsTest, LinesEscapeTheirStrings) {
  job_result r = invalid_result();
  r.key = "k\"1";
  r.error_message = "bad \xFF byte\n";
  EXPECT_EQ(line_of(r),
            "{\"key\":\"k\\\"1\",\"line\":19,\"outcome\":\"invalid\",\"error\":{\"kind\":\"input\","
            "\"message\":\"bad \xEF\xBF\xBD byte\\n\"}}\n");
  // Every line is one JSON object.
  const boost::json::value v = boost::json::parse(line_of(r));
  EXPECT_EQ(v.at("key").as_string(), "k\"1");
}

TEST_F(ResultsTest, Timestamps) {
  std::string out;
  orgpatch::append_utc_timestamp(out, k_finished);
  EXPECT_EQ(out, "2026-11-26T20:41:07.123Z");
  out.clear();
  orgpatch::append_utc_timestamp(out, std::chrono::system_clock::time_point{});
  EXPECT_EQ(out, "1970-01-01T00:00:00.000Z");
  out.clear();
  // Sub-millisecond parts are cut, not rounded; a leap day.
  orgpatch::append_utc_timestamp(
      out, std::chrono::sys_days{std::chrono::year{2024} / 2 / 29} + 23h + 59min + 59s + 999999us);
  EXPECT_EQ(out, "2024-02-29T23:59:59.999Z");
}

TEST_F(ResultsTest, HeaderLine) {
  std::string out;
  orgpatch::append_header_line(out, header());
  EXPECT_EQ(out, k_header_line);

  run_header h = header();
  h.input_path = "-";
  h.input_size = 0;
  h.input_sha256.clear();
  out.clear();
  orgpatch::append_header_line(out, h);
  EXPECT_EQ(out,
            R"({"orgpatchd":"0.1.0","run_id":"r-1","input":{"path":"-","size":0,"sha256":null},"started_at":"2026-11-26T20:40:00.000Z"})"
            "\n");
}

TEST_F(ResultsTest, DeadLetterAddsMissingFields) {
  EXPECT_EQ(dead_letter(R"({"id":"a","body":{}})", "acme-1", "idem-1"),
            R"({"id":"a","body":{},"key":"acme-1","idempotency_key":"idem-1"})"
            "\n");
  EXPECT_EQ(dead_letter(R"({"id":"a","key":"mine"})", "", "idem-1"),
            R"({"id":"a","key":"mine","idempotency_key":"idem-1"})"
            "\n");
  EXPECT_EQ(dead_letter(R"({"id":"a","idempotency_key":"i"})", "k", ""),
            R"({"id":"a","idempotency_key":"i","key":"k"})"
            "\n");
  EXPECT_EQ(dead_letter(R"({"id":"a","key":"k","idempotency_key":"i"})", "", ""),
            R"({"id":"a","key":"k","idempotency_key":"i"})"
            "\n");
  // The object may end in a nested one; the keys go into the outer object.
  EXPECT_EQ(dead_letter(R"({"id":"}","body":{"a":{"b":"}"}}})", "k", ""),
            R"({"id":"}","body":{"a":{"b":"}"}},"key":"k"})"
            "\n");
  // Values are escaped.
  EXPECT_EQ(dead_letter(R"({"id":"a"})", "k\"", ""),
            R"({"id":"a","key":"k\""})"
            "\n");
}

TEST_F(ResultsTest, DeadLetterOfAnEmptyObject) {
  EXPECT_EQ(dead_letter("{}", "k", "i"), R"({"key":"k","idempotency_key":"i"})" "\n");
  EXPECT_EQ(dead_letter("{ \t}", "", "i"), R"({ 	"idempotency_key":"i"})" "\n");
  EXPECT_EQ(dead_letter("{}", "", ""), "{}\n");
}

TEST_F(ResultsTest, DeadLetterTrimsAroundAnObject) {
  EXPECT_EQ(dead_letter("  {\"id\":\"a\"} \r", "k", ""), R"({"id":"a","key":"k"})" "\n");
  EXPECT_EQ(dead_letter("{\"id\":\"a\" }", "k", ""), R"({"id":"a" ,"key":"k"})" "\n");
}

TEST_F(ResultsTest, DeadLetterOfANonObjectIsUnchanged) {
  for (std::string_view source :
       {"not json", "[1,2]", "\"{}\"", "{\"id\":\"a\"", "{\"id\":\"}", "{}{}", "{\"a\":1}]",
        "{\"a\":[1}", " 42 ", "{\"a\":\"\\\"}"}) {
    EXPECT_EQ(dead_letter(source, "k", "i"), std::string(source) + "\n") << source;
  }
}

TEST_F(ResultsTest, DeadLetterOfAnEmptySourceIsNothing) {
  EXPECT_EQ(dead_letter("", "k", "i"), "");
  EXPECT_EQ(dead_letter(" \t\r", "k", "i"), "");
}

// ---------------------------------------------------------------- JSON strings

TEST_F(ResultsTest, JsonEscapesControlCharactersQuotesAndBackslashes) {
  EXPECT_EQ(json(""), R"("")");
  EXPECT_EQ(json("plain text"), R"("plain text")");
  EXPECT_EQ(json("a\"b\\c/d"), R"("a\"b\\c/d")");
  EXPECT_EQ(json("\b\f\n\r\t"), R"("\b\f\n\r\t")");
  EXPECT_EQ(json("\x01\x1f"), R"("\u0001\u001f")");
  EXPECT_EQ(json(std::string("a\0b", 3)), R"("a\u0000b")");
  EXPECT_EQ(json("\x7f"), "\"\x7f\"");
  std::string all;
  for (int c = 0; c < 0x20; ++c) all.push_back(static_cast<char>(c));
  EXPECT_EQ(json(all),
            R"("\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\b\t\n\u000b\f\r\u000e\u000f)"
            R"(\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001a\u001b\u001c\u001d\u001e\u001f")");
}

TEST_F(ResultsTest, JsonPassesValidUtf8) {
  const std::string s = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xEF\xBF\xBF \xF4\x8F\xBF\xBF \xED\x9F\xBF";
  EXPECT_EQ(json(s), "\"" + s + "\"");
}

TEST_F(ResultsTest, JsonReplacesInvalidUtf8) {
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(json("\x80"), "\"" + r + "\"");                        // lone continuation
  EXPECT_EQ(json("a\xFF" "b"), "\"a" + r + "b\"");                   // never valid
  EXPECT_EQ(json("\xC0\x80"), "\"" + r + r + "\"");                // overlong NUL
  EXPECT_EQ(json("\xC1\xBF"), "\"" + r + r + "\"");                // overlong
  EXPECT_EQ(json("\xE0\x80\xAF"), "\"" + r + r + r + "\"");        // overlong '/'
  EXPECT_EQ(json("\xF0\x80\x80\xAF"), "\"" + r + r + r + r + "\"");  // overlong '/'
  EXPECT_EQ(json("\xED\xA0\x80"), "\"" + r + r + r + "\"");        // surrogate U+D800
  EXPECT_EQ(json("\xED\xBF\xBF"), "\"" + r + r + r + "\"");        // surrogate U+DFFF
  EXPECT_EQ(json("\xF4\x90\x80\x80"), "\"" + r + r + r + r + "\"");  // past U+10FFFF
  EXPECT_EQ(json("\xF5\x80"), "\"" + r + r + "\"");
  EXPECT_EQ(json("\xE2\x82"), "\"" + r + "\"");                    // truncated at the end
  EXPECT_EQ(json("\xE2\x82" "A"), "\"" + r + "A\"");               // truncated in the middle
  EXPECT_EQ(json("\xF0\x9F\x98"), "\"" + r + "\"");
  EXPECT_EQ(json("\xF0\x9F\x98\xC3\xA9"), "\"" + r + "\xC3\xA9\"");
  EXPECT_EQ(json("\xC3"), "\"" + r + "\"");
  EXPECT_EQ(json("\xC3\""), "\"" + r + "\\\"\"");
}

/// A byte-at-a-time encoder, to check the 8-byte fast path against.
std::string reference_json(std::string_view s) {
  std::string out = "\"";
  std::size_t i = 0;
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  while (i < s.size()) {
    const unsigned char c = byte(i);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (c < 0x20) {
      const char* named[] = {nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                             "\\b",   "\\t",   "\\n",   nullptr, "\\f",   "\\r"};
      if (c < 14 && named[c] != nullptr) {
        out += named[c];
      } else {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      }
      ++i;
    } else if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
    } else {
      // Decode and check the code point; on failure, the maximal subpart.
      std::size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
      std::uint32_t cp = len == 4 ? (c & 0x07U) : len == 3 ? (c & 0x0FU) : (c & 0x1FU);
      std::size_t k = 1;
      bool good = len > 1 && c <= 0xF4;
      for (; good && k < len; ++k) {
        if (i + k >= s.size() || (byte(i + k) & 0xC0) != 0x80) {
          good = false;
          break;
        }
        cp = (cp << 6) | (byte(i + k) & 0x3FU);
        // Reject as early as the second byte shows an overlong/surrogate/too big.
        if (k == 1) {
          const std::uint32_t min_top[] = {0, 0, 0x80, 0x800, 0x10000};
          const std::uint32_t shift = static_cast<std::uint32_t>(6 * (len - 2));
          const std::uint32_t lo = min_top[len] >> shift;
          const std::uint32_t hi = (len == 4 ? 0x10FFFFU : len == 3 ? 0xFFFFU : 0x7FFU) >> shift;
          const bool surrogate = len == 3 && cp >= (0xD800U >> 6) && cp <= (0xDFFFU >> 6);
          if (cp < lo || cp > hi || surrogate) {
            good = false;
            break;
          }
        }
      }
      if (good) {
        out.append(s.substr(i, len));
        i += len;
      } else {
        out += "\xEF\xBF\xBD";
        i += std::max<std::size_t>(k, 1);
      }
    }
  }
  return out + "\"";
}

TEST_F(ResultsTest, JsonFastPathMatchesReference) {
  // Every special byte at every offset of a string longer than two 8-byte words.
  const std::string specials = "\"\\\x01\x1f\x7f\x80\xC3\xA9\xFF";
  for (char sp : specials) {
    for (std::size_t at = 0; at < 24; ++at) {
      std::string s(24, 'x');
      s[at] = sp;
      EXPECT_EQ(json(s), reference_json(s)) << "byte " << static_cast<int>(sp) << " at " << at;
    }
  }
  std::mt19937_64 rng(7);
  const std::string alphabet = "abc \"\\\n\x01\x80\xBF\xC2\xC3\xE0\xE2\xED\xEF\xF0\xF4\xF5\xA0\x9F\x8F\x90";
  for (int n = 0; n < 5000; ++n) {
    std::string s;
    const std::size_t len = rng() % 40;
    for (std::size_t k = 0; k < len; ++k) {
      s.push_back(rng() % 3 == 0 ? static_cast<char>(rng() & 0xFF) : alphabet[rng() % alphabet.size()]);
    }
    const std::string out = json(s);
    ASSERT_EQ(out, reference_json(s)) << "case " << n;
    // Whatever went in, what comes out is a JSON string.
    boost::json::error_code ec;
    const boost::json::value v = boost::json::parse(out, ec);
    ASSERT_FALSE(ec) << "case " << n << ": " << out;
    ASSERT_TRUE(v.is_string());
  }
}

TEST_F(ResultsTest, JsonRoundTripsValidText) {
  const std::string s = "Acme \"EMEA\" \\ caf\xC3\xA9 \xF0\x9F\x98\x80\n\ttab \x01 end of a long enough line";
  const boost::json::value v = boost::json::parse(json(s));
  EXPECT_EQ(std::string(v.as_string()), s);
}

// ---------------------------------------------------------------- the sink on disk

TEST_F(ResultsTest, ConstructionWritesTheHeaderAndNoDeadLetterFile) {
  results_sink sink(results_.string(), dead_.string(), orgpatch::fsync_mode::none, header());
  EXPECT_EQ(read_file(results_), k_header_line);
  EXPECT_FALSE(fs::exists(dead_));
  EXPECT_FALSE(sink.pending());
  EXPECT_EQ(sink.results_path(), results_.string());
  EXPECT_EQ(sink.dead_letter_path(), dead_.string());
  EXPECT_EQ(sink.dead_letters(), 0U);
}

TEST_F(ResultsTest, TruncatesAnExistingResultsLog) {
  std::ofstream(results_) << "old line\nanother\n";
  results_sink sink(results_.string(), dead_.string(), orgpatch::fsync_mode::none, header());
  EXPECT_EQ(read_file(results_), k_header_line);
}

TEST_F(ResultsTest, RemovesAStaleDeadLetterFile) {
  std::ofstream(dead_) << R"({"id":"stale"})" << "\n";
  ASSERT_TRUE(fs::exists(dead_));
  {
    results_sink sink(results_.string(), dead_.string(), orgpatch::fsync_mode::none, header());
    EXPECT_FALSE(fs::exists(dead_));
    sink.add(ok_result(), R"({"id":"x"})", "", "");
    sink.flush();
  }
  EXPECT_FALSE(fs::exists(dead_));  // a run without failures leaves none
}

TEST_F(ResultsTest, OkLinesReachTheFileOnFlush) {
  results_sink sink(results_.string(), dead_.string(), orgpatch::fsync_mode::none, header());
  sink.add(ok_result(), R"({"id":"x"})", "k", "i");
  EXPECT_TRUE(sink.pending());
  EXPECT_EQ(read_file(results_), k_header_line);  // nothing before flush
  sink.flush();
  EXPECT_FALSE(sink.pending());
  EXPECT_EQ(read_file(results_), k_header_line + line_of(ok_result()));
  EXPECT_FALSE(fs::exists(dead_));
  EXPECT_EQ(sink.dead_letters(), 0U);
}

TEST_F(ResultsTest, DeadLetterFileIsCreatedOnItsFirstFlush) {
  results_sink sink(results_.string(), dead_.string(), orgpatch::fsync_mode::none, header());
  const std::string source = R"({"id":"org-18","integrated_account_id":"62f44730-dd91-461e-bd6a-aedd9e0ad79d","body":{}})";
  sink.add(failed_result(), source, "", "run-1:18");
  sink.add(invalid_result(), "{oops", "", "");
  sink.add(invalid_result(), "", "", "");  // a line too long to hold: no dead letter
  EXPECT_EQ(sink.dead_letters(), 2U);
  EXPECT_FALSE(fs::exists(dead_));
  sink.flush();
  ASSERT_TRUE(fs::exists(dead_));
  EXPECT_EQ(read_file(dead_),
            R"({"id":"org-18","integrated_account_id":"62f44730-dd91-461e-bd6a-aedd9e0ad79d","body":{},"idempotency_key":"run-1:18"})"
            "\n{oops\n");
  EXPECT_EQ(read_file(results_), k_header_line + line_of(failed_result()) +
                                     line_of(invalid_result()) + line_of(invalid_result()));
  const fs::perms perms = fs::status(dead_).permissions();
  const fs::perms rw_r_r = fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                           fs::perms::others_read;
  EXPECT_EQ(perms & fs::perms::owner_all, fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(perms & ~rw_r_r, fs::perms::none) << "0644 less the umask";

  // Later dead letters are appended to the same file.
  job_result exhausted = failed_result();
  exhausted.result = outcome::exhausted;
  sink.add(exhausted, R"({"id":"e"})", "k", "");
  sink.flush();
  EXPECT_EQ(read_file(dead_),
            R"({"id":"org-18","integrated_account_id":"62f44730-dd91-461e-bd6a-aedd9e0ad79d","body":{},"idempotency_key":"run-1:18"})"
            "\n{oops\n"
            R"({"id":"e","key":"k"})"
            "\n");
  EXPECT_EQ(sink.dead_letters(), 3U);
}

TEST_F(ResultsTest, OneWritePerFilePerFlush) {
  results_sink sink(results_.string(), dead_.string(), orgpatch::fsync_mode::none, header());
  const std::uint64_t after_header = sink.write_calls();
  EXPECT_EQ(after_header, 1U);
  sink.flush();  // nothing pending: no write
  EXPECT_EQ(sink.write_calls(), after_header);
  for (int i = 0; i < 500; ++i) sink.add(ok_result(), "", "", "");
  sink.flush();
  EXPECT_EQ(sink.write_calls(), after_header + 1);  // results only
  for (int i = 0; i < 500; ++i) sink.add(i % 2 ? ok_result() : failed_result(), R"({"id":"x"})", "", "");
  sink.flush();
  EXPECT_EQ(sink.write_calls(), after_header + 3);  // results and dead letters
  sink.flush();
  sink.flush();
  EXPECT_EQ(sink.write_calls(), after_header + 3);
  EXPECT_EQ(sink.sync_calls(), 0U);  // fsync none
}

TEST_F(ResultsTest, FlushWithNothingPendingWritesNothing) {
  results_sink sink(results_.string(), dead_.string(), orgpatch::fsync_mode::always, header());
  // Bytes written to the file now would show up after truncating it.
  fs::resize_file(results_, 0);
  const auto writes = sink.write_calls();
  sink.flush();
  EXPECT_EQ(sink.write_calls(), writes);
  EXPECT_EQ(fs::file_size(results_), 0U);
  EXPECT_FALSE(fs::exists(dead_));
}

TEST_F(ResultsTest, FsyncAlwaysSyncsEveryFlush) {
  results_sink sink(results_.string(), dead_.string(), orgpatch::fsync_mode::always, header());
  EXPECT_EQ(sink.sync_calls(), 1U);  // the header
  sink.add(ok_result(), "", "", "");
  sink.flush();
  EXPECT_EQ(sink.sync_calls(), 2U);
  sink.add(failed_result(), R"({"id":"x"})", "", "");
  sink.flush();
  EXPECT_EQ(sink.sync_calls(), 4U);  // both files
}

TEST_F(ResultsTest, FsyncIntervalSyncsOnceTheIntervalPassed) {
  results_sink sink(results_.string(), dead_.string(), orgpatch::fsync_mode::interval, header());
  const auto synced = sink.sync_calls();
  EXPECT_EQ(synced, 1U);  // the header
  std::this_thread::sleep_for(120ms);
  sink.add(ok_result(), "", "", "");
  sink.flush();
  EXPECT_EQ(sink.sync_calls(), synced + 1);
}

TEST_F(ResultsTest, DestructorFlushes) {
  {
    results_sink sink(results_.string(), dead_.string(), orgpatch::fsync_mode::interval, header());
    sink.add(failed_result(), "{}", "k", "");
  }
  EXPECT_EQ(read_file(results_), k_header_line + line_of(failed_result()));
  EXPECT_EQ(read_file(dead_), R"({"key":"k"})" "\n");
}

TEST_F(ResultsTest, ErrorsNameThePath) {
  const std::string missing = (dir_ / "no-such-dir" / "r.jsonl").string();
  try {
    results_sink sink(missing, dead_.string(), orgpatch::fsync_mode::none, header());
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << e.what();
  }
  EXPECT_THROW(results_sink(results_.string(), results_.string(), orgpatch::fsync_mode::none, header()),
               std::runtime_error);
  EXPECT_THROW(results_sink("", dead_.string(), orgpatch::fsync_mode::none, header()),
               std::runtime_error);
}

TEST_F(ResultsTest, WriteErrorKeepsLinesPending) {
  const std::string missing = (dir_ / "no-such-dir" / "failed.jsonl").string();
  results_sink sink(results_.string(), missing, orgpatch::fsync_mode::none, header());
  sink.add(failed_result(), R"({"id":"x"})", "", "");
  try {
    sink.flush();
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  EXPECT_TRUE(sink.pending());
  // Once the directory exists the same lines go out (the destructor would try too).
  fs::create_directory(dir_ / "no-such-dir");
  sink.flush();
  EXPECT_FALSE(sink.pending());
  EXPECT_EQ(read_file(missing), R"({"id":"x"})" "\n");
  EXPECT_EQ(read_file(results_), k_header_line + line_of(failed_result()));
}

TEST_F(ResultsTest, DiskFullIsAnError) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  try {
    results_sink sink("/dev/full", dead_.string(), orgpatch::fsync_mode::none, header());
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/dev/full"), std::string::npos) << e.what();
  }
}

}  // namespace
