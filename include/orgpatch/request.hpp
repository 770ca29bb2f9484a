/// The request builder: a job becomes the exact bytes of one HTTP/1.1 PATCH
/// (request line, headers, body), laid out into a reused buffer. Pure.
#pragma once

#include "orgpatch/config.hpp"
#include "orgpatch/job.hpp"

#include <string>
#include <string_view>

namespace orgpatch {

/// Where requests go, taken apart once from api.base_url.
struct endpoint {
  bool tls = true;
  std::string host;         ///< as in the URL, without brackets for IPv6
  std::string port;         ///< explicit or the scheme's default
  std::string host_header;  ///< the Host header value (host[:port])
  std::string path_prefix;  ///< "{base path}/unified/{model}/{resource}/"
  std::string origin;       ///< scheme://host[:port], for messages
};

/// Takes apart api.base_url (already checked by validate_config). Throws
/// config_error on a URL it cannot use.
endpoint make_endpoint(const api_config& api);

/// The request target of a job: path prefix, the encoded id, then
/// `?integrated_account_id=…` and the job's query.
std::string request_target(const endpoint& ep, const job& j);

/// Fixed headers shared by every request of a run: Host, Authorization,
/// Content-Type, Accept, User-Agent, each ending in CRLF. The token must have
/// been checked by `check_token`.
std::string common_headers(const endpoint& ep, std::string_view token);

/// Lays out the whole request into `out` (cleared first, capacity kept).
void build_request(std::string& out, std::string_view target, std::string_view common_headers,
                   std::string_view idempotency_key, std::string_view body);

/// The same for job `j`, its target written in place: with a reused `out`, no
/// allocation at all.
void build_request(std::string& out, const endpoint& ep, const job& j, std::string_view common_headers,
                   std::string_view idempotency_key);

/// Empty when the token can be sent in a header; else what is wrong with it
/// (never the token itself).
std::string check_token(std::string_view token);

/// The Idempotency-Key derived from the run id and the job key (DESIGN.md §5):
/// "op1-" + run id + "-" + 32 hex digits of SHA-256(run id, key). Deterministic,
/// at most 255 visible ASCII characters.
std::string derive_idempotency_key(std::string_view run_id, std::string_view key);

}  // namespace orgpatch
