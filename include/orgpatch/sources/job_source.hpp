/// Where the engine's jobs come from (DESIGN.md §3): a job file, standard
/// input, or a Redis stream. The engine pulls items without blocking, asks to
/// be woken when a source has nothing yet, and hands back, once their final
/// lines are written (and synced when `output.fsync` is `always`), the entries
/// that a source must acknowledge.
///
/// Not thread-safe: a source and the engine run on one io_context thread.
#pragma once

#include "orgpatch/job.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace orgpatch {

/// One job read from a source: a job, or why it is not one.
struct source_item {
  std::uint64_t line = 0;  ///< the line in its file; for a stream, the order of arrival (from 1)
  std::variant<job, input_error> parsed;
  /// For an input error: the key when the line had a readable one (else the line
  /// number in decimal, or the stream entry id), and the raw text when it was
  /// held (not over-long). For a job, `key` is a copy of its `job.key` and
  /// `source` is empty (the job's own `source` holds the text).
  std::string key;
  std::string source;
  /// Byte offset in the input of the line's first byte (a UTF-8 byte order mark
  /// at the start of the input is skipped: it is not part of line 1).
  std::uint64_t offset = 0;
  /// The stream entry it came from ("" for a file): acknowledged once final.
  std::string entry_id;
};

/// A job whose final line is written: what its source acknowledges.
struct finished_entry {
  std::string entry_id;     ///< the stream entry
  std::string result_line;  ///< its result line (without newline), when the source publishes results
};

class job_source {
 public:
  virtual ~job_source() = default;

  /// The next item ready now, or nullopt (then `ended()` says whether for good).
  /// Throws std::runtime_error on a read error that ends the run.
  virtual std::optional<source_item> next() = 0;
  /// After next() gave nullopt: true at the end of the input, false when more
  /// may come (wait with `wait_readable`).
  virtual bool ended() const noexcept = 0;
  /// Calls `wake` once, on the io_context, when next() may give more (or the
  /// wait was cancelled). A second call before then replaces the first. Throws
  /// std::runtime_error when it cannot wait at all (the run then stops).
  virtual void wait_readable(std::function<void()> wake) = 0;
  /// Ends a wait_readable early (its `wake` is still called).
  virtual void cancel_wait() = 0;

  /// True when items can be read again by offset (a regular file).
  virtual bool seekable() const noexcept = 0;
  /// Reads item `line` again at `offset` (seekable sources only).
  virtual std::variant<job, input_error> reread(std::uint64_t offset, std::uint64_t line) const = 0;

  /// True when finished entries must be handed to `acknowledge` (a stream).
  virtual bool acknowledges() const noexcept { return false; }
  /// True when `finished_entry::result_line` is wanted (a results stream).
  virtual bool publishes_results() const noexcept { return false; }
  /// Entries whose final lines are written, in the order they were written.
  virtual void acknowledge(std::vector<finished_entry> entries) { (void)entries; }

  /// For messages: "FILE:LINE", or the stream and entry id.
  virtual std::string where(std::uint64_t line, const std::string& entry_id) const = 0;
};

}  // namespace orgpatch
