/// orgpatchd's own error codes, in their own `boost::system` category.
#pragma once

#include <boost/system/error_code.hpp>
#include <type_traits>

namespace orgpatch {

enum class errc {
  ok = 0,
  response_too_large = 1,   ///< body (or a chunk line) over http.max_response_bytes
  response_malformed,       ///< not HTTP, or framing broken
  response_truncated,       ///< connection closed before the response was complete
  request_timeout,          ///< connect, handshake or request over its time
  tls_verification_failed,  ///< peer certificate or host name rejected
  auth_failed,              ///< Truto 401/403 without truto_is_remote_error
  stopped,                  ///< the run is stopping
  response_header_too_large,  ///< status line and header fields over their limits
};

/// The category of `errc`; thread-safe (a function-local static).
const boost::system::error_category& orgpatch_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), orgpatch_category()};
}

}  // namespace orgpatch

template <>
struct boost::system::is_error_code_enum<orgpatch::errc> : std::true_type {};
