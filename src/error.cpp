#include "orgpatch/error.hpp"

#include <string>

namespace orgpatch {
namespace {

class category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "orgpatch"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::ok: return "success";
      case errc::response_too_large: return "response larger than http.max_response_bytes";
      case errc::response_malformed: return "malformed HTTP response";
      case errc::response_truncated: return "connection closed before the response was complete";
      case errc::request_timeout: return "timed out";
      case errc::tls_verification_failed: return "TLS certificate verification failed";
      case errc::auth_failed: return "the API token was refused";
      case errc::stopped: return "stopped";
      case errc::response_header_too_large: return "response header too large (over 64 KiB or 200 fields)";
    }
    return "unknown orgpatch error";
  }
};

}  // namespace

const boost::system::error_category& orgpatch_category() noexcept {
  static const category instance;
  return instance;
}

}  // namespace orgpatch
