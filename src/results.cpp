// The results log and the dead-letter file (DESIGN.md §5, §6).
#include "orgpatch/results.hpp"

#include "json_bytes.hpp"

#include <boost/json/parse.hpp>
#include <fmt/format.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <stdexcept>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace orgpatch {

namespace {

constexpr std::string_view k_replacement = "\xEF\xBF\xBD";  // U+FFFD
constexpr auto k_sync_interval = std::chrono::milliseconds(100);

using json_bytes::is_plain;

void append_escape(std::string& out, unsigned char c) {
  switch (c) {
    case '"': out += "\\\""; return;
    case '\\': out += "\\\\"; return;
    case '\b': out += "\\b"; return;
    case '\f': out += "\\f"; return;
    case '\n': out += "\\n"; return;
    case '\r': out += "\\r"; return;
    case '\t': out += "\\t"; return;
    default: {
      constexpr char hex[] = "0123456789abcdef";
      const char esc[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
      out.append(esc, sizeof esc);
    }
  }
}

bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

/// True when `s` (trimmed) is one bracketed object: it starts with '{', and its
/// last byte is the '}' that closes that first '{' (outside any string). Not a
/// full validation; it finds where keys can be inserted without changing the
/// meaning of what is already there.
bool is_one_object(std::string_view s) noexcept {
  if (s.size() < 2 || s.front() != '{' || s.back() != '}') return false;
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) return i + 1 == s.size() && c == '}';
      if (depth < 0) return false;
    }
  }
  return false;
}

template <class... Args>
void append_fmt(std::string& out, fmt::format_string<Args...> f, Args&&... args) {
  fmt::format_to(std::back_inserter(out), f, std::forward<Args>(args)...);
}

[[noreturn]] void throw_errno(std::string_view what, const std::string& path, int err) {
  throw std::runtime_error(fmt::format("{} {}: {}", what, path, std::strerror(err)));
}

/// One output file and the bytes waiting for it.
struct output_file {
  std::string path;
  int fd = -1;
  std::string buffer;
  bool unsynced = false;  ///< written since its last fdatasync

  explicit output_file(std::string p) : path(std::move(p)) {}
  output_file(const output_file&) = delete;
  output_file& operator=(const output_file&) = delete;
  ~output_file() {
    if (fd >= 0) ::close(fd);
  }

  /// Truncating (a new run) or appending (a resumed run, a reopen after SIGHUP).
  void open(bool append = false) {
    // O_NOFOLLOW: a link planted where an output goes never redirects (or truncates) another file.
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (append ? O_APPEND : O_TRUNC), 0644);
    if (fd < 0) throw_errno(append ? "cannot open" : "cannot create", path, errno);
  }

  void close() noexcept {
    if (fd >= 0) ::close(fd);
    fd = -1;
    unsynced = false;
  }

  /// The file's size now (0 when it cannot tell).
  std::uint64_t size() const noexcept {
    struct stat st {};
    return fd >= 0 && ::fstat(fd, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  }

  /// One write(2) loop over the whole buffer: partial writes and EINTR resume.
  void write_all(std::uint64_t& write_calls) {
    std::size_t done = 0;
    while (done < buffer.size()) {
      const ssize_t n = ::write(fd, buffer.data() + done, buffer.size() - done);
      ++write_calls;
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const int err = n < 0 ? errno : EIO;
        buffer.erase(0, done);  // what reached the kernel is not written twice
        unsynced = unsynced || done > 0;
        throw_errno("cannot write", path, err);
      }
      done += static_cast<std::size_t>(n);
    }
    buffer.clear();
    unsynced = true;
  }

  void sync(std::uint64_t& sync_calls) {
    if (fd < 0 || !unsynced) return;
    ++sync_calls;
    if (::fdatasync(fd) != 0) throw_errno("cannot sync", path, errno);
    unsynced = false;
  }
};

}  // namespace

std::string_view to_string(outcome o) noexcept {
  switch (o) {
    case outcome::ok: return "ok";
    case outcome::failed: return "failed";
    case outcome::exhausted: return "exhausted";
    case outcome::invalid: return "invalid";
  }
  return "unknown";
}

void append_json_string(std::string& out, std::string_view s) {
  out.reserve(out.size() + s.size() + 2);
  out.push_back('"');
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* const end = p + s.size();
  while (p < end) {
    // Fast path: copy a run of plain ASCII at once, 8 bytes per test.
    const auto* run = p;
    p = reinterpret_cast<const unsigned char*>(
        json_bytes::skip_plain(reinterpret_cast<const char*>(p), reinterpret_cast<const char*>(end)));
    if (p != run) out.append(reinterpret_cast<const char*>(run), static_cast<std::size_t>(p - run));
    if (p == end) break;

    const unsigned char c = *p;
    if (c < 0x80) {
      append_escape(out, c);
      ++p;
      continue;
    }
    // A UTF-8 sequence: its length and the range of its second byte (RFC 3629 §4),
    // which rules out overlongs, surrogates and code points past U+10FFFF.
    std::size_t len = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c == 0xE0) {
      len = 3;
      lo = 0xA0;
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
      len = 3;
    } else if (c == 0xED) {
      len = 3;
      hi = 0x9F;
    } else if (c == 0xF0) {
      len = 4;
      lo = 0x90;
    } else if (c >= 0xF1 && c <= 0xF3) {
      len = 4;
    } else if (c == 0xF4) {
      len = 4;
      hi = 0x8F;
    }
    std::size_t taken = 1;  // bytes of the (maximal) subsequence looked at
    if (len != 0 && end - p > 1 && p[1] >= lo && p[1] <= hi) {
      taken = 2;
      while (taken < len && static_cast<std::size_t>(end - p) > taken &&
             (p[taken] & 0xC0U) == 0x80U) {
        ++taken;
      }
    }
    if (len != 0 && taken == len) {
      out.append(reinterpret_cast<const char*>(p), len);
    } else {
      out += k_replacement;
    }
    p += taken;
  }
  out.push_back('"');
}

namespace {

void append_digits(std::string& out, std::uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// `v` as exactly `width` decimal digits (v < 10^width).
void put_fixed(char* at, unsigned v, int width) {
  for (int i = width - 1; i >= 0; --i) {
    at[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
}

}  // namespace

void append_utc_timestamp(std::string& out, std::chrono::system_clock::time_point tp) {
  using namespace std::chrono;
  // Lines finished within one second share their date and time: laid out once.
  thread_local sys_seconds cached_second{seconds::min()};
  thread_local char cached[19];  // YYYY-MM-DDTHH:MM:SS
  const auto ms = floor<milliseconds>(tp);
  const auto second = floor<seconds>(ms);
  if (second != cached_second) {
    const auto day = floor<days>(second);
    const year_month_day ymd{day};
    const hh_mm_ss hms{second - day};
    const int year = std::clamp(static_cast<int>(ymd.year()), 0, 9999);
    put_fixed(cached, static_cast<unsigned>(year), 4);
    cached[4] = '-';
    put_fixed(cached + 5, static_cast<unsigned>(ymd.month()), 2);
    cached[7] = '-';
    put_fixed(cached + 8, static_cast<unsigned>(ymd.day()), 2);
    cached[10] = 'T';
    put_fixed(cached + 11, static_cast<unsigned>(hms.hours().count()), 2);
    cached[13] = ':';
    put_fixed(cached + 14, static_cast<unsigned>(hms.minutes().count()), 2);
    cached[16] = ':';
    put_fixed(cached + 17, static_cast<unsigned>(hms.seconds().count()), 2);
    cached_second = second;
  }
  char tail[5] = {'.', '0', '0', '0', 'Z'};
  put_fixed(tail + 1, static_cast<unsigned>((ms - second).count()), 3);
  out.append(cached, sizeof cached);
  out.append(tail, sizeof tail);
}

void append_result_line(std::string& out, const job_result& r) {
  // Literals with their length: no strlen per piece.
  using namespace std::string_view_literals;
  out += "{\"key\":"sv;
  append_json_string(out, r.key);
  if (r.line != 0) {
    out += ",\"line\":"sv;
    append_digits(out, r.line);
  }
  if (!r.entry.empty()) {
    out += ",\"entry\":"sv;
    append_json_string(out, r.entry);
  }
  if (!r.id.empty()) {
    out += ",\"id\":"sv;
    append_json_string(out, r.id);
  }
  if (!r.integrated_account_id.empty()) {
    out += ",\"integrated_account_id\":"sv;
    append_json_string(out, r.integrated_account_id);
  }
  out += ",\"outcome\":\""sv;
  out += to_string(r.result);
  out += '"';
  if (r.http_status != 0) {
    out += ",\"http_status\":"sv;
    append_digits(out, r.http_status);
  }
  if (r.attempts != 0) {
    out += ",\"attempts\":"sv;
    append_digits(out, r.attempts);
  }
  // NaN and infinities are not JSON numbers: omitted like a negative latency.
  if (r.latency_ms >= 0 && std::isfinite(r.latency_ms) && r.latency_ms < 1e15) {
    char buf[32];
    const auto res = std::to_chars(buf, buf + sizeof buf, r.latency_ms, std::chars_format::fixed, 1);
    out += ",\"latency_ms\":"sv;
    out.append(buf, res.ptr);
  }
  if (r.finished_at != std::chrono::system_clock::time_point{}) {
    out += ",\"finished_at\":\""sv;
    append_utc_timestamp(out, r.finished_at);
    out += '"';
  }
  if (r.result == outcome::ok) {
    if (!r.response_id.empty() || !r.response_name.empty() || !r.response_updated_at.empty()) {
      out += ",\"response\":{"sv;
      bool first = true;
      const auto member = [&](std::string_view name, std::string_view value) {
        if (value.empty()) return;
        if (!first) out += ',';
        first = false;
        out += '"';
        out += name;
        out += "\":"sv;
        append_json_string(out, value);
      };
      member("id", r.response_id);
      member("name", r.response_name);
      member("updated_at", r.response_updated_at);
      out += '}';
    }
    if (!r.warning.empty()) {
      out += ",\"warning\":"sv;
      append_json_string(out, r.warning);
    }
  } else {
    out += ",\"error\":{\"kind\":"sv;
    append_json_string(out, r.error_kind);
    out += ",\"message\":"sv;
    append_json_string(out, r.error_message);
    if (r.error_remote) out += ",\"remote\":true"sv;
    out += '}';
  }
  out += "}\n"sv;
}

void append_header_line(std::string& out, const run_header& h) {
  out += "{\"orgpatchd\":";
  append_json_string(out, h.version);
  out += ",\"run_id\":";
  append_json_string(out, h.run_id);
  out += ",\"input\":{\"path\":";
  append_json_string(out, h.input_path);
  append_fmt(out, ",\"size\":{},\"sha256\":", h.input_size);
  if (h.input_sha256.empty()) {
    out += "null";
  } else {
    append_json_string(out, h.input_sha256);
  }
  out += "},\"started_at\":\"";
  append_utc_timestamp(out, h.started_at);
  out += "\"}\n";
}

bool append_dead_letter_line(std::string& out, std::string_view source, std::string_view add_key,
                             std::string_view add_idempotency_key) {
  const std::string_view object = trim(source);
  if (object.empty()) return false;
  if (!is_one_object(object)) {
    // Not an object (an invalid line): kept as it was, for the operator to fix.
    out += source;
    out += '\n';
    return true;
  }
  const std::string_view head = object.substr(0, object.size() - 1);  // without the '}'
  bool first = trim(head.substr(1)).empty();                          // `{}`: no comma
  out += head;
  const auto member = [&](std::string_view name, std::string_view value) {
    if (value.empty()) return;
    if (!first) out += ',';
    first = false;
    out += '"';
    out += name;
    out += "\":";
    append_json_string(out, value);
  };
  member("key", add_key);
  member("idempotency_key", add_idempotency_key);
  out += "}\n";
  return true;
}

struct results_sink::impl {
  impl(std::string results_path, std::string dead_letter_path, fsync_mode m)
      : results(std::move(results_path)), dead(std::move(dead_letter_path)), mode(m) {}

  /// Dead letters first: a crash in between may repeat one on resume, not lose one.
  void flush() {
    if (!dead.buffer.empty()) {
      if (dead.fd < 0) dead.open(append_dead);
      dead.write_all(write_calls);
    }
    if (!results.buffer.empty()) results.write_all(write_calls);
    switch (mode) {
      case fsync_mode::none:
        break;
      case fsync_mode::always:
        sync();
        break;
      case fsync_mode::interval:
        if (std::chrono::steady_clock::now() - last_sync >= k_sync_interval) sync();
        break;
    }
  }

  void sync() {
    if (!dead.unsynced && !results.unsynced) return;
    dead.sync(sync_calls);
    results.sync(sync_calls);
    last_sync = std::chrono::steady_clock::now();
  }

  output_file results;
  output_file dead;
  fsync_mode mode;
  run_header header;
  bool append_dead = false;  // the dead-letter file is appended to, not replaced
  std::chrono::steady_clock::time_point last_sync{};
  std::uint64_t dead_letters = 0;
  std::uint64_t write_calls = 0;
  std::uint64_t sync_calls = 0;
};

results_sink::results_sink(std::string results_path, std::string dead_letter_path,
                           fsync_mode mode, const run_header& header)
    : results_sink(std::move(results_path), std::move(dead_letter_path), mode, header, sink_open::create) {}

results_sink::results_sink(std::string results_path, std::string dead_letter_path,
                           fsync_mode mode, const run_header& header, sink_open how) {
  if (results_path.empty()) throw std::runtime_error("results log: empty path");
  if (dead_letter_path.empty()) throw std::runtime_error("dead-letter file: empty path");
  if (results_path == dead_letter_path) {
    throw std::runtime_error(
        fmt::format("results log and dead-letter file are the same path: {}", results_path));
  }
  impl_ = std::make_unique<impl>(std::move(results_path), std::move(dead_letter_path), mode);
  impl_->header = header;
  if (how == sink_open::resume) {
    // The same run goes on: both files grow; the header is already there.
    impl_->append_dead = true;
    impl_->results.open(true);
    if (impl_->results.size() == 0) append_header_line(impl_->results.buffer, header);
  } else {
    impl_->results.open();
    // A dead-letter file left by an earlier run would mix its failures with ours.
    if (::unlink(impl_->dead.path.c_str()) != 0 && errno != ENOENT) {
      throw_errno("cannot remove stale dead-letter file", impl_->dead.path, errno);
    }
    append_header_line(impl_->results.buffer, header);
  }
  impl_->flush();
  if (mode != fsync_mode::none) impl_->sync();
}

void results_sink::reopen() {
  impl_->flush();
  impl_->sync();
  impl_->results.close();
  impl_->dead.close();
  impl_->append_dead = true;
  impl_->results.open(true);
  // A new file (the old one was moved away): a continuation header first, with
  // the same run id and input fingerprint, so a resume keeps the same keys.
  if (impl_->results.size() == 0) append_header_line(impl_->results.buffer, impl_->header);
  impl_->flush();
}

results_sink::~results_sink() {
  try {
    impl_->flush();
    if (impl_->mode != fsync_mode::none) impl_->sync();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "orgpatchd: results lost at exit: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "orgpatchd: results lost at exit\n");
  }
  for (output_file* f : {&impl_->dead, &impl_->results}) {
    if (f->fd >= 0 && ::close(f->fd) != 0) {
      std::fprintf(stderr, "orgpatchd: cannot close %s: %s\n", f->path.c_str(),
                   std::strerror(errno));
    }
    f->fd = -1;
  }
}

void results_sink::add(const job_result& r, std::string_view dead_letter_source,
                       std::string_view add_key, std::string_view add_idempotency_key) {
  append_result_line(impl_->results.buffer, r);
  if (r.result != outcome::ok &&
      append_dead_letter_line(impl_->dead.buffer, dead_letter_source, add_key,
                              add_idempotency_key)) {
    ++impl_->dead_letters;
  }
}

void results_sink::flush() { impl_->flush(); }

bool results_sink::pending() const noexcept {
  return !impl_->results.buffer.empty() || !impl_->dead.buffer.empty();
}

const std::string& results_sink::results_path() const noexcept { return impl_->results.path; }

const std::string& results_sink::dead_letter_path() const noexcept { return impl_->dead.path; }

std::uint64_t results_sink::dead_letters() const noexcept { return impl_->dead_letters; }

std::uint64_t results_sink::write_calls() const noexcept { return impl_->write_calls; }

std::uint64_t results_sink::sync_calls() const noexcept { return impl_->sync_calls; }

namespace {

// The run header of a results log's first line.
run_header parse_header(std::string_view line, const std::string& path) {
  boost::system::error_code ec;
  const auto value = boost::json::parse(line, ec);
  const auto* o = ec ? nullptr : value.if_object();
  const auto* input = o && o->contains("input") ? o->at("input").if_object() : nullptr;
  if (!o || !o->contains("orgpatchd") || !o->contains("run_id") || !input || !o->at("run_id").is_string())
    throw std::runtime_error(fmt::format("{}:1: not an orgpatchd results log (no header line)", path));
  run_header h;
  if (const auto* v = o->at("orgpatchd").if_string()) h.version = std::string(*v);
  h.run_id = std::string(o->at("run_id").as_string());
  if (const auto* p = input->if_contains("path"); p && p->is_string()) h.input_path = std::string(p->as_string());
  if (const auto* z = input->if_contains("size"); z && z->is_number()) h.input_size = z->to_number<std::uint64_t>();
  if (const auto* d = input->if_contains("sha256"); d && d->is_string()) h.input_sha256 = std::string(d->as_string());
  h.started_at = std::chrono::system_clock::now();
  return h;
}

}  // namespace

results_log read_results_log(const std::string& path, bool repair) {
  const int fd = ::open(path.c_str(), (repair ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) throw_errno("cannot open", path, errno);
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } close_fd{fd};

  results_log log;
  std::string carry;  // a line split across blocks
  std::vector<char> block(std::size_t{4} << 20);
  std::uint64_t offset = 0;        // bytes read so far
  std::uint64_t complete_end = 0;  // end of the last whole line
  std::uint64_t line_no = 0;
  const auto handle = [&](std::string_view line) {
    ++line_no;
    if (line_no == 1) {
      log.header = parse_header(line, path);
      return;
    }
    if (line.empty()) return;
    if (line.substr(0, 13) == R"({"orgpatchd":)") return;  // a continuation header (SIGHUP)
    // `key` comes first and is a JSON string: `,"line":` cannot occur before its end.
    static constexpr std::string_view k_line = R"(,"line":)";
    const auto at = line.find(k_line);
    std::uint64_t job_line = 0;
    if (at == std::string_view::npos ||
        std::from_chars(line.data() + at + k_line.size(), line.data() + line.size(), job_line).ec != std::errc{})
      throw std::runtime_error(fmt::format("{}:{}: not a result line", path, line_no));
    const std::uint64_t word = job_line / 64;
    if (word >= log.finished_lines.size()) log.finished_lines.resize(std::max<std::size_t>(word + 1, log.finished_lines.size() * 2));
    log.finished_lines[word] |= std::uint64_t{1} << (job_line % 64);
    ++log.finished;
    static constexpr std::string_view k_outcome = R"(,"outcome":")";
    const auto o = line.find(k_outcome, at);
    const std::string_view rest = o == std::string_view::npos ? std::string_view() : line.substr(o + k_outcome.size());
    if (rest.substr(0, 3) == "ok\"") ++log.ok;
    else if (rest.substr(0, 7) == "failed\"") ++log.failed;
    else if (rest.substr(0, 10) == "exhausted\"") ++log.exhausted;
    else if (rest.substr(0, 8) == "invalid\"") ++log.invalid;
  };
  for (;;) {
    const ssize_t n = ::read(fd, block.data(), block.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("cannot read", path, errno);
    if (n == 0) break;
    std::string_view data(block.data(), static_cast<std::size_t>(n));
    while (!data.empty()) {
      const auto nl = data.find('\n');
      if (nl == std::string_view::npos) {
        carry.append(data);
        break;
      }
      if (carry.empty()) {
        handle(data.substr(0, nl));
      } else {
        carry.append(data.substr(0, nl));
        handle(carry);
        carry.clear();
      }
      data.remove_prefix(nl + 1);
      complete_end = offset + static_cast<std::uint64_t>(n) - data.size();
    }
    offset += static_cast<std::uint64_t>(n);
  }
  if (line_no == 0) throw std::runtime_error(fmt::format("{}: empty results log (no header line)", path));
  if (!carry.empty()) {
    // A line cut off by a crash in the middle of a write: not a result.
    log.repaired_bytes = carry.size();
    if (repair && ::ftruncate(fd, static_cast<off_t>(complete_end)) != 0)
      throw_errno("cannot repair (truncate) the torn last line of", path, errno);
  }
  return log;
}

}  // namespace orgpatch
