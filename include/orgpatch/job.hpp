/// A job: one line of a job file, validated (DESIGN.md §5), with its request
/// target laid out once.
///
/// Pure: no I/O, no clock. Thread-compatible (each thread its own parser state).
#pragma once

#include <boost/json/object.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace orgpatch {

/// One validated job.
struct job {
  std::string key;                    ///< explicit `key`, or the line number in decimal
  bool key_given = false;             ///< `key` came from the line
  std::uint64_t line = 0;             ///< 1-based line number in its file (blank lines counted)
  std::string id;                     ///< organization id, as given (not encoded)
  std::string integrated_account_id;  ///< from the line or the configured default
  std::string body;                   ///< the raw JSON text of `body`, byte for byte
  std::string query;                  ///< encoded query parameters that follow
                                      ///< `integrated_account_id=…`, each starting with '&'
                                      ///< (job keys in order given, then default_query keys
                                      ///< the job did not give); empty when none
  std::string idempotency_key;        ///< as given; empty when absent (the engine derives one)
  std::string source;                 ///< the original line (no line terminator), for dead letters
};

/// Why a line is not a job: the field (empty when the line itself is broken)
/// and a message that does not repeat the field.
struct input_error {
  std::string field;
  std::string message;
  /// "field: message", or just the message when there is no field.
  std::string to_string() const;
};

/// What a job line is checked against besides its own text.
struct job_parse_options {
  std::optional<std::string> default_integrated_account_id;  ///< api.default_integrated_account_id
  const boost::json::object* default_query = nullptr;        ///< api.default_query (may be null)
};

/// Validates one line (without its terminator) against every rule of DESIGN.md §5
/// except key uniqueness, which needs the whole file (see sources/file_source.hpp).
/// `line_no` is 1-based. Never throws on bad input.
std::variant<job, input_error> parse_job(std::string_view line, std::uint64_t line_no,
                                         const job_parse_options& options);

/// True when `s` is a UUID in its 8-4-4-4-12 hexadecimal form (either case).
bool is_uuid(std::string_view s) noexcept;

/// The explicit `key` of a line, for reporting a line that `parse_job` rejected
/// under its own key: the value of its `key` member when the line is a
/// well-formed JSON object with exactly one `key` member that is itself valid
/// (a string of 1 to 256 bytes, not all digits); nullopt otherwise.
/// Never throws on bad input (only std::bad_alloc).
std::optional<std::string> find_job_key(std::string_view line);

}  // namespace orgpatch
