/// The results log and the dead-letter file (DESIGN.md §5, §6).
///
/// Lines are gathered in memory and reach the kernel with one `write` per file
/// per `flush()`; the engine flushes once per event-loop turn that finished jobs.
/// Not thread-safe; used from the engine's one I/O thread.
#pragma once

#include "orgpatch/job.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace orgpatch {

enum class outcome { ok, failed, exhausted, invalid };

/// "ok", "failed", "exhausted", "invalid".
std::string_view to_string(outcome o) noexcept;

/// One job's final result. String views must stay valid until `add` returns.
struct job_result {
  std::string_view key;
  std::uint64_t line = 0;                  ///< 0 for a stream's job (omitted; `entry` says where it came from)
  std::string_view entry;                  ///< the stream entry id ("entry"), or empty
  std::string_view id;                     ///< empty for an invalid line
  std::string_view integrated_account_id;  ///< empty for an invalid line
  outcome result = outcome::ok;
  unsigned http_status = 0;                ///< 0: no HTTP response (omitted)
  unsigned attempts = 0;                   ///< 0 for invalid (omitted)
  double latency_ms = -1;                  ///< of the last attempt; < 0: omitted
  std::chrono::system_clock::time_point finished_at{};
  // outcome ok: the organization as answered ("response":{…}), and a warning
  // when the 2xx body was not valid JSON.
  std::string_view response_id;
  std::string_view response_name;
  std::string_view response_updated_at;
  std::string_view warning;
  // any other outcome: "error":{"kind":…,"message":…,"remote":…}
  std::string_view error_kind;     ///< "http", "transport", "tls", "timeout", "input", "response"
  std::string_view error_message;
  bool error_remote = false;
};

enum class fsync_mode { none, interval, always };

/// How a results_sink opens its files: a new run, or the same run resumed.
enum class sink_open { create, resume };

/// Identity of a run, written as the first line of the results log.
struct run_header {
  std::string version;
  std::string run_id;
  std::string input_path;
  std::uint64_t input_size = 0;
  std::string input_sha256;  ///< empty when unknown (standard input)
  std::chrono::system_clock::time_point started_at{};
};

class results_sink {
 public:
  /// Creates (truncating) the results log and the dead-letter file and writes the
  /// header line to the results log. The dead-letter file is created lazily, on
  /// its first line. Throws std::runtime_error naming the path on failure.
  ///
  /// A dead-letter file already at `dead_letter_path` (a stale one from an
  /// earlier run) is removed here, so that after the run the file exists if and
  /// only if this run had a job that was not ok. The header is flushed (and,
  /// unless `mode` is none, synced) before the constructor returns. Both paths
  /// must be non-empty and different.
  results_sink(std::string results_path, std::string dead_letter_path, fsync_mode mode,
               const run_header& header);
  ~results_sink();  ///< flushes
  /// `sink_open::resume`: both files are appended to (a header is written only
  /// when the results log is empty) and no dead-letter file is removed.
  results_sink(std::string results_path, std::string dead_letter_path, fsync_mode mode,
               const run_header& header, sink_open how);
  results_sink(const results_sink&) = delete;
  results_sink& operator=(const results_sink&) = delete;

  /// Appends the result line and, for any outcome but ok, a dead-letter line:
  /// `dead_letter_source` (the job's original object text) with `"key"` and
  /// `"idempotency_key"` added when the job lacked them (`add_key`,
  /// `add_idempotency_key` empty: nothing to add). Invalid lines that are not a
  /// JSON object go to the dead-letter file unchanged; an empty source adds no
  /// dead-letter line (a line too long to hold).
  void add(const job_result& r, std::string_view dead_letter_source, std::string_view add_key,
           std::string_view add_idempotency_key);

  /// Writes what was gathered: one `write` per file; `fdatasync` per the mode
  /// (`interval`: at most every 100 ms). Throws std::runtime_error on a write error.
  ///
  /// The dead-letter file is written before the results log, so a crash between
  /// the two can duplicate a dead letter on resume but never lose one. Nothing
  /// pending: no write (an `interval` sync may still be due). After a failed
  /// write the bytes not yet written stay pending.
  void flush();

  /// Flushes, closes and opens both files again by path (appending), for
  /// logrotate on SIGHUP: a results log that is new starts with a continuation
  /// header (the same run id and input fingerprint). Throws std::runtime_error.
  void reopen();

  /// True when lines are waiting for `flush`.
  bool pending() const noexcept;

  const std::string& results_path() const noexcept;
  const std::string& dead_letter_path() const noexcept;
  std::uint64_t dead_letters() const noexcept;  ///< dead-letter lines written so far

  /// `write(2)` calls made so far (each flush makes one per file unless the
  /// kernel takes a buffer in parts), for metrics and tests.
  std::uint64_t write_calls() const noexcept;
  /// `fdatasync(2)` calls made so far.
  std::uint64_t sync_calls() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// What a results log says of a run, read back to resume it.
struct results_log {
  run_header header;                   ///< from its first line
  std::uint64_t finished = 0;          ///< result lines (one per finished job)
  std::uint64_t ok = 0, failed = 0, exhausted = 0, invalid = 0;
  std::uint64_t repaired_bytes = 0;    ///< a torn last line cut off
  std::vector<std::uint64_t> finished_lines;  ///< bitmap: bit L set when input line L has a result

  bool has(std::uint64_t line) const noexcept {
    const std::uint64_t word = line / 64;
    return word < finished_lines.size() && (finished_lines[word] >> (line % 64) & 1) != 0;
  }
};

/// Reads a results log to resume its run: the header line, then which input
/// lines already have their result (a bitmap: 1 bit per input line, so 10 M
/// finished jobs take 1.25 MB). A last line without its newline (a crash in the
/// middle of a write) is cut off the file when `repair` is true. Throws
/// std::runtime_error naming the file and line for an unreadable log or a first
/// line that is not a header.
results_log read_results_log(const std::string& path, bool repair);

/// Appends `s` to `out` as a JSON string literal (quotes included), escaping per
/// RFC 8259; invalid UTF-8 bytes become U+FFFD.
///
/// Control characters are written as \b \f \n \r \t or \u00xx (lower-case hex);
/// `"` and `\` are escaped; everything else, DEL and non-ASCII included, passes
/// through. Each maximal ill-formed subsequence (Unicode §3.9: a lone
/// continuation byte, a truncated sequence, an overlong or surrogate lead)
/// becomes one U+FFFD.
void append_json_string(std::string& out, std::string_view s);

/// Appends `tp` as ISO 8601 UTC with milliseconds, e.g. 2026-11-26T20:41:07.123Z
/// (no quotes).
void append_utc_timestamp(std::string& out, std::chrono::system_clock::time_point tp);

/// Appends the results-log line of `r` (DESIGN.md §5), '\n' included; what
/// `results_sink::add` writes (also usable for a results stream).
void append_result_line(std::string& out, const job_result& r);

/// Appends the header line of a results log, '\n' included.
void append_header_line(std::string& out, const run_header& h);

/// Appends the dead-letter line for `source` as `results_sink::add` does;
/// returns false (appending nothing) when `source` is empty.
bool append_dead_letter_line(std::string& out, std::string_view source,
                             std::string_view add_key, std::string_view add_idempotency_key);

}  // namespace orgpatch
