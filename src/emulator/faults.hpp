/// The emulator's fault injection (DESIGN.md §8): which faults, how likely, and a
/// seeded PRNG that draws them, so that a single-threaded run is repeatable. Pure:
/// the server carries out what a `fault_plan` says.
///
/// Faults apply only to PATCH requests that would otherwise be answered 2xx
/// (applied, or replayed for an Idempotency-Key), never to `/_emulator/*`, GET,
/// validation errors or limit 429s. What each does to the update:
///
/// | fault          | answer                                               | update applied |
/// |----------------|------------------------------------------------------|----------------|
/// | status_429     | 429, Retry-After, Truto body (holds the account)     | no             |
/// | status_500     | 500, Truto body                                      | no             |
/// | status_502     | 502, Truto body                                      | no             |
/// | status_503     | 503, Truto body: the integrated account is blocked   | no             |
/// | status_504     | 504, Truto body                                      | no             |
/// | reset_before   | none: the connection is reset (RST)                  | no             |
/// | reset_mid_body | head (Content-Length) and half the body, then close | yes            |
/// | stall          | none for stall_ms, then the connection closes        | no             |
/// | invalid_json   | 200 whose body is cut in half (not JSON)             | yes            |
/// | latency        | the normal answer, after a delay                     | yes            |
/// | chunked        | the normal answer with Transfer-Encoding: chunked    | yes            |
/// | close_after    | the normal answer with Connection: close             | yes            |
///
/// The first nine exclude each other (one draw, their probabilities add up to at
/// most 1); latency, chunked and close_after are drawn independently and combine
/// with them.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace orgpatch::emulator {

/// How long the latency fault waits.
struct latency_fault {
  enum class distribution { fixed, uniform, log_normal };
  double probability = 0;
  distribution kind = distribution::fixed;
  double fixed_ms = 0;   ///< fixed
  double min_ms = 0;     ///< uniform in [min_ms, max_ms]
  double max_ms = 0;
  double median_ms = 0;  ///< log-normal: median_ms * exp(sigma * N(0, 1)), at most 60 s
  double sigma = 0;
};

/// The fault profile (`faults:` in the config file). Every probability is 0 by default.
struct fault_options {
  std::uint64_t seed = 1;
  double status_429 = 0;
  std::chrono::seconds retry_after_429{1};  ///< Retry-After of the 429 fault
  double status_500 = 0;
  double status_502 = 0;
  double status_503 = 0;
  double status_504 = 0;
  double reset_before = 0;
  double reset_mid_body = 0;
  double stall = 0;
  std::chrono::milliseconds stall_time{65'000};  ///< past orgpatchd's default request timeout
  double invalid_json = 0;
  double chunked = 0;
  latency_fault latency;
  std::uint64_t close_after = 0;  ///< from a connection's Nth request on (0: never) ...
  double close_probability = 1;   ///< ... each PATCH answer closes it with this probability

  /// Any fault may fire.
  bool any() const noexcept;
  /// Throws std::invalid_argument naming the field when a probability is outside
  /// [0, 1], the exclusive ones add up to more than 1, or a latency is negative.
  void validate() const;
};

/// The faults that exclude each other.
enum class fault_kind : std::uint8_t {
  none,
  status_429,
  status_500,
  status_502,
  status_503,
  status_504,
  reset_before,
  reset_mid_body,
  stall,
  invalid_json,
};

/// What the emulator counts, by kind (the stats' `faults` object).
enum class fault_counter : std::uint8_t {
  status_429,
  status_500,
  status_502,
  status_503,
  status_504,
  reset_before,
  reset_mid_body,
  stall,
  invalid_json,
  latency,
  chunked,
  close_after,
};
inline constexpr std::size_t k_fault_counters = 12;

/// The stats name of a counter ("reset_mid_body").
std::string_view fault_name(fault_counter c) noexcept;

/// The faults drawn for one request.
struct fault_plan {
  fault_kind kind = fault_kind::none;
  std::chrono::microseconds latency{0};  ///< wait this long before answering
  bool latency_drawn = false;
  bool chunked = false;
  bool close = false;  ///< Connection: close on this answer
  std::chrono::seconds retry_after{0};   ///< of the status_429 fault (the profile's)
  std::chrono::milliseconds stall{0};    ///< of the stall fault (the profile's)
};

/// A seeded generator of fault plans: splitmix64, so the sequence is the same on
/// every platform. Not thread-safe.
class fault_dice {
 public:
  explicit fault_dice(const fault_options& options);

  /// The plan for the next request; `connection_request` is its 1-based index on its
  /// connection (0: unknown, close_after never fires).
  fault_plan draw(std::uint64_t connection_request);
  /// Starts the sequence again from the seed.
  void reseed() noexcept { state_ = options_.seed; }

 private:
  std::uint64_t next() noexcept;
  double uniform() noexcept;  // [0, 1)

  fault_options options_;
  std::uint64_t state_;
};

}  // namespace orgpatch::emulator
