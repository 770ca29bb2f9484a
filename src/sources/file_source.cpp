// A job file read as a stream of lines (DESIGN.md §3, §5).
//
// The buffer holds at most one partial line (never more than max_line_bytes + 1
// bytes of it) plus one block; a longer line is skipped block by block without
// being held. Explicit keys are remembered as 64-bit hashes with the line that
// first used them (16 bytes each in a flat table).
#include "orgpatch/sources/file_source.hpp"

#include <boost/unordered/unordered_flat_map.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string_view>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace orgpatch {
namespace {

constexpr std::string_view k_bom = "\xEF\xBB\xBF";

std::string display_name(const std::string& path) {
  return path == "-" ? std::string("standard input") : "\"" + path + "\"";
}

[[noreturn]] void throw_system(const char* what, const std::string& path, int err) {
  std::string m = what;
  m += ' ';
  m += display_name(path);
  m += ": ";
  m += std::strerror(err);
  throw std::runtime_error(m);
}

bool blank(std::string_view s) noexcept {
  for (char c : s)
    if (c != ' ' && c != '\t' && c != '\r') return false;
  return true;
}

}  // namespace

struct file_source::impl {
  std::string path;
  job_parse_options options;
  std::size_t max_line = 0;
  std::size_t block = 0;
  std::size_t limit = 0;  // largest buffer: max_line + 2 + block

  int fd = -1;
  bool own_fd = false;
  bool eof = false;
  bool would_block = false;  // the last read found a non-blocking pipe empty
  bool skipping = false;     // inside an over-long line
  int restore_flags = -1;    // the fd's flags before make_nonblocking

  std::unique_ptr<char[]> buf;
  std::size_t cap = 0;
  std::size_t pos = 0;      // start of the unconsumed data
  std::size_t end = 0;      // end of the data read
  std::size_t scanned = 0;  // bytes past pos known to hold no '\n'

  std::uint64_t line_no = 0;
  std::uint64_t consumed = 0;  // input offset of buf[pos]

  boost::unordered_flat_map<std::uint64_t, std::uint64_t> keys;  // hash -> first line

  ~impl() {
    if (restore_flags >= 0) ::fcntl(fd, F_SETFL, restore_flags);
    if (own_fd && fd >= 0) ::close(fd);
  }

  void open() {
    if (path == "-") {
      fd = STDIN_FILENO;
      return;
    }
    do {
      fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) throw_system("cannot open job file", path, errno);
    own_fd = true;
    struct stat st {};
    if (::fstat(fd, &st) == 0) {
      if (S_ISDIR(st.st_mode)) throw_system("cannot read job file", path, EISDIR);
      if (S_ISREG(st.st_mode)) ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    }
  }

  /// Reads into [end, cap); returns the byte count (0 at end of input).
  std::size_t read_some() {
    for (;;) {
      const ssize_t n = ::read(fd, buf.get() + end, cap - end);
      if (n >= 0) {
        if (n == 0) eof = true;
        end += static_cast<std::size_t>(n);
        return static_cast<std::size_t>(n);
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        would_block = true;
        return 0;
      }
      if (errno != EINTR) throw_system("cannot read job file", path, errno);
    }
  }

  /// Moves the partial line to the front, grows the buffer when less than half
  /// a block is free, and reads once.
  void fill() {
    if (pos > 0) {
      std::memmove(buf.get(), buf.get() + pos, end - pos);
      end -= pos;
      pos = 0;
    }
    if (cap - end < block / 2 + 1 && cap < limit) {
      std::size_t new_cap = cap * 2;
      while (new_cap - end < block / 2 + 1 && new_cap < limit) new_cap *= 2;
      if (new_cap > limit) new_cap = limit;
      std::unique_ptr<char[]> bigger(new char[new_cap]);
      if (end > 0) std::memcpy(bigger.get(), buf.get(), end);
      buf = std::move(bigger);
      cap = new_cap;
    }
    read_some();
  }

  source_item too_long(std::uint64_t offset) const {
    source_item item;
    item.line = line_no;
    item.offset = offset;
    item.key = std::to_string(line_no);
    item.parsed = input_error{"", "line longer than " + std::to_string(max_line) + " bytes"};
    return item;
  }

  /// The item for one line's text (terminator excluded), or nullopt when blank.
  std::optional<source_item> handle(std::string_view text, std::uint64_t offset) {
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    if (line_no == 1 && text.substr(0, k_bom.size()) == k_bom) {
      text.remove_prefix(k_bom.size());
      offset += k_bom.size();
    }
    if (blank(text)) return std::nullopt;
    if (text.size() > max_line) return too_long(offset);

    source_item item;
    item.line = line_no;
    item.offset = offset;
    item.parsed = parse_job(text, line_no, options);
    if (auto* j = std::get_if<job>(&item.parsed)) {
      if (j->key_given) {
        if (auto first = remember_key(j->key)) {
          std::string message = "duplicate key \"" + j->key + "\" (first seen on line " +
                                std::to_string(*first) + ")";
          item.parsed = input_error{"key", std::move(message)};
          item.key = std::to_string(line_no);
          item.source.assign(text);
          return item;
        }
      }
      item.key = j->key;
      return item;
    }
    // Invalid: report it under its own key when that key is readable and new.
    if (auto key = find_job_key(text); key && !remember_key(*key)) {
      item.key = std::move(*key);
    } else {
      item.key = std::to_string(line_no);
    }
    item.source.assign(text);
    return item;
  }

  /// Records an explicit key; returns the line that used it first when it is
  /// not new.
  std::optional<std::uint64_t> remember_key(std::string_view key) {
    const std::uint64_t h = std::hash<std::string_view>{}(key);
    const auto [it, inserted] = keys.try_emplace(h, line_no);
    if (inserted) return std::nullopt;
    return it->second;
  }

  std::optional<source_item> next() {
    would_block = false;
    for (;;) {
      if (skipping) {
        // The rest of an over-long line, dropped block by block, never held.
        if (const void* nl = std::memchr(buf.get() + pos, '\n', end - pos)) {
          const std::size_t n = static_cast<std::size_t>(static_cast<const char*>(nl) - (buf.get() + pos)) + 1;
          pos += n;
          consumed += n;
          scanned = 0;
          skipping = false;
          continue;
        }
        consumed += end - pos;
        pos = end = scanned = 0;
        if (eof) {
          skipping = false;
          continue;
        }
        read_some();
        if (would_block) return std::nullopt;
        continue;
      }
      const std::size_t from = pos + scanned;
      if (const void* nl = std::memchr(buf.get() + from, '\n', end - from)) {
        const char* line_begin = buf.get() + pos;
        const std::size_t size = static_cast<std::size_t>(static_cast<const char*>(nl) - line_begin);
        const std::uint64_t offset = consumed;
        pos += size + 1;
        consumed += size + 1;
        scanned = 0;
        ++line_no;
        if (auto item = handle(std::string_view(line_begin, size), offset)) return item;
        continue;
      }
      scanned = end - pos;
      if (eof) {
        if (pos == end) return std::nullopt;
        // The last line, without a newline.
        const std::string_view text(buf.get() + pos, end - pos);
        const std::uint64_t offset = consumed;
        consumed += end - pos;
        pos = end;
        scanned = 0;
        ++line_no;
        if (auto item = handle(text, offset)) return item;
        continue;
      }
      if (end - pos > max_line + 1) {
        // Longer than allowed even if its last byte were a '\r': skip it unheld.
        const std::uint64_t offset = consumed;
        ++line_no;
        skipping = true;
        return too_long(offset);
      }
      fill();
      if (would_block) return std::nullopt;
    }
  }
};

file_source::file_source(std::string path, job_parse_options options, std::size_t max_line_bytes)
    : file_source(std::move(path), std::move(options), max_line_bytes, default_block_size) {}

file_source::file_source(std::string path, job_parse_options options, std::size_t max_line_bytes,
                         std::size_t block_size)
    : impl_(std::make_unique<impl>()) {
  impl_->path = std::move(path);
  impl_->options = std::move(options);
  impl_->max_line = max_line_bytes;
  impl_->block = block_size < 16 ? 16 : block_size;
  impl_->limit = max_line_bytes + 2 + impl_->block;
  impl_->cap = impl_->block;
  impl_->buf.reset(new char[impl_->cap]);
  impl_->open();
}

file_source::~file_source() = default;

std::optional<source_item> file_source::next() { return impl_->next(); }

bool file_source::make_nonblocking() {
  struct stat st {};
  if (::fstat(impl_->fd, &st) != 0 || S_ISREG(st.st_mode)) return false;
  const int flags = ::fcntl(impl_->fd, F_GETFL);
  if (flags < 0) return false;
  if (::fcntl(impl_->fd, F_SETFL, flags | O_NONBLOCK) != 0) return false;
  if (impl_->restore_flags < 0) impl_->restore_flags = flags;
  return true;
}

bool file_source::would_block() const noexcept { return impl_->would_block; }

int file_source::native_handle() const noexcept { return impl_->fd; }

bool file_source::seekable() const noexcept {
  struct stat st {};
  return impl_->path != "-" && ::fstat(impl_->fd, &st) == 0 && S_ISREG(st.st_mode);
}

std::variant<job, input_error> file_source::reread(std::uint64_t offset, std::uint64_t line) const {
  // Read up to max_line_bytes + 1, in growing steps from 4 KiB (most lines are
  // short), and cut at the first newline.
  const std::size_t limit = impl_->max_line + 2;
  std::string text(std::min<std::size_t>(4096, limit), '\0');
  std::size_t got = 0;
  for (;;) {
    if (got == text.size()) {
      if (text.size() >= limit) break;
      text.resize(std::min(limit, text.size() * 4));
    }
    const ssize_t n = ::pread(impl_->fd, text.data() + got, text.size() - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_system("cannot read", impl_->path, errno);
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
    if (std::memchr(text.data() + got - static_cast<std::size_t>(n), '\n', static_cast<std::size_t>(n))) break;
  }
  text.resize(got);
  const auto nl = text.find('\n');
  if (nl == std::string::npos && got > impl_->max_line)
    return input_error{"", "the input changed while it was being read (line too long on re-reading)"};
  if (nl != std::string::npos) text.resize(nl);
  if (!text.empty() && text.back() == '\r') text.pop_back();
  if (blank(text)) return input_error{"", "the input changed while it was being read (line now blank)"};
  return parse_job(text, line, impl_->options);
}

const std::string& file_source::path() const noexcept { return impl_->path; }

std::uint64_t file_source::bytes_read() const noexcept { return impl_->consumed; }

}  // namespace orgpatch
