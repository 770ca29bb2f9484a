/// A job file (JSON Lines) read as a stream: large block reads, one line at a
/// time out, lines over `max_line_bytes` skipped without being held in memory,
/// explicit keys checked for uniqueness within the file.
///
/// Not thread-safe; used from the engine's one I/O thread. Reads block: a
/// regular file never waits long; standard input may.
#pragma once

#include "orgpatch/job.hpp"
#include "orgpatch/sources/job_source.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>

namespace orgpatch {

class file_source {
 public:
  /// Opens `path` ("-" is standard input). Throws std::runtime_error naming the
  /// path and the system error when it cannot be opened.
  file_source(std::string path, job_parse_options options, std::size_t max_line_bytes);
  ~file_source();
  file_source(const file_source&) = delete;
  file_source& operator=(const file_source&) = delete;

  /// The next non-blank line, or nullopt at end of input. Throws std::runtime_error
  /// (naming the path) on a read error.
  std::optional<source_item> next();

  /// Makes reads of a pipe or terminal non-blocking (restored when destroyed),
  /// so an event loop is never stalled by a quiet producer. False (nothing
  /// changed) for a regular file.
  bool make_nonblocking();

  /// After `next()` returned nullopt: true when that was because a non-blocking
  /// input had nothing yet (wait for `native_handle()` to be readable), false at
  /// the end of input.
  bool would_block() const noexcept;

  /// The file descriptor read from.
  int native_handle() const noexcept;

  /// True when lines can be read again by offset (a regular file).
  bool seekable() const noexcept;

  /// Reads and parses again the line at byte `offset` (from source_item::offset),
  /// numbered `line`, with pread (the stream position is not moved). Key
  /// uniqueness is not checked again. An input_error when the line is no longer
  /// there or no longer a valid job (the file changed). Throws std::runtime_error
  /// on a read error.
  std::variant<job, input_error> reread(std::uint64_t offset, std::uint64_t line) const;

  /// The path as given ("-" for standard input), for messages.
  const std::string& path() const noexcept;

  /// Bytes consumed so far (for progress): the input up to and including the
  /// last line examined (blank lines included); the whole input once `next()`
  /// returned nullopt.
  std::uint64_t bytes_read() const noexcept;

  /// The default block size of each read(2).
  static constexpr std::size_t default_block_size = std::size_t{1} << 20;

  /// As above, reading `block_size` bytes at a time (tests use small blocks to
  /// exercise lines that straddle reads).
  file_source(std::string path, job_parse_options options, std::size_t max_line_bytes,
              std::size_t block_size);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace orgpatch
