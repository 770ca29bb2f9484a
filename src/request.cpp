#include "orgpatch/request.hpp"

#include "orgpatch/query.hpp"

#include <boost/url/parse.hpp>
#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <stdexcept>

namespace orgpatch {

endpoint make_endpoint(const api_config& api) {
  auto parsed = boost::urls::parse_absolute_uri(api.base_url);
  if (!parsed) throw config_error(fmt::format("api.base_url: \"{}\" is not an absolute URL", api.base_url));
  const auto& url = *parsed;
  endpoint ep;
  ep.tls = url.scheme() != "http";
  ep.host = std::string(url.host_address());  // decoded; IPv6 without brackets
  ep.port = url.has_port() ? std::string(url.port()) : (ep.tls ? "443" : "80");
  const std::string bracketed =
      url.host_type() == boost::urls::host_type::ipv6 ? "[" + ep.host + "]" : ep.host;
  const bool default_port = !url.has_port() || (ep.tls ? ep.port == "443" : ep.port == "80");
  ep.host_header = default_port ? bracketed : bracketed + ":" + ep.port;
  ep.origin = fmt::format("{}://{}", ep.tls ? "https" : "http", ep.host_header);
  std::string base(url.encoded_path());
  while (!base.empty() && base.back() == '/') base.pop_back();
  ep.path_prefix = base + "/unified/" + encode_path_segment(api.unified_model) + "/" +
                   encode_path_segment(api.resource) + "/";
  return ep;
}

namespace {

void append_target(std::string& out, const endpoint& ep, const job& j) {
  out += ep.path_prefix;
  append_path_segment(out, j.id);
  out += "?integrated_account_id=";
  out += j.integrated_account_id;  // a validated UUID: nothing to encode
  out += j.query;
}

void append_tail(std::string& out, std::string_view common, std::string_view idempotency_key, std::string_view body) {
  out += " HTTP/1.1\r\n";
  out += common;
  out += "Idempotency-Key: ";
  out += idempotency_key;
  out += "\r\nContent-Length: ";
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, body.size());
  (void)ec;
  out.append(digits, end);
  out += "\r\n\r\n";
  out += body;
}

}  // namespace

std::string request_target(const endpoint& ep, const job& j) {
  std::string t;
  t.reserve(ep.path_prefix.size() + j.id.size() * 3 + 60 + j.query.size());
  append_target(t, ep, j);
  return t;
}

std::string common_headers(const endpoint& ep, std::string_view token) {
  return fmt::format(
      "Host: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n"
      "Accept: application/json\r\nUser-Agent: orgpatchd/{}\r\n",
      ep.host_header, token, ORGPATCH_VERSION);
}

void build_request(std::string& out, std::string_view target, std::string_view common,
                   std::string_view idempotency_key, std::string_view body) {
  out.clear();
  out += "PATCH ";
  out += target;
  append_tail(out, common, idempotency_key, body);
}

void build_request(std::string& out, const endpoint& ep, const job& j, std::string_view common,
                   std::string_view idempotency_key) {
  out.clear();
  out += "PATCH ";
  append_target(out, ep, j);
  append_tail(out, common, idempotency_key, j.body);
}

std::string check_token(std::string_view token) {
  if (token.empty()) return "the API token is empty";
  if (token.size() > 8192) return "the API token is longer than 8192 bytes";
  for (unsigned char c : token)
    if (c < 0x21 || c > 0x7e) return "the API token contains a space, control or non-ASCII character";
  return {};
}

std::string derive_idempotency_key(std::string_view run_id, std::string_view key) {
  // SHA-256 fetched once, and one context per thread reused: OpenSSL 3's
  // implicit fetch in every EVP_sha256() digest costs more than the hashing.
  struct sha256_context {
    EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~sha256_context() {
      EVP_MD_CTX_free(ctx);
      EVP_MD_free(md);
    }
  };
  thread_local sha256_context sha;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!sha.md || !sha.ctx || EVP_DigestInit_ex2(sha.ctx, sha.md, nullptr) != 1 ||
      EVP_DigestUpdate(sha.ctx, run_id.data(), run_id.size()) != 1 || EVP_DigestUpdate(sha.ctx, "\0", 1) != 1 ||
      EVP_DigestUpdate(sha.ctx, key.data(), key.size()) != 1 || EVP_DigestFinal_ex(sha.ctx, digest, &len) != 1 ||
      len < 16)
    throw std::runtime_error("SHA-256 is not available from OpenSSL");
  // "op1-" run id "-" and 32 hex digits, laid out in one allocation.
  static constexpr std::string_view prefix = "op1-";
  static constexpr char hex[] = "0123456789abcdef";
  std::string out(prefix.size() + run_id.size() + 1 + 32, '-');
  char* p = std::copy(prefix.begin(), prefix.end(), out.data());
  p = std::copy(run_id.begin(), run_id.end(), p) + 1;  // past the '-'
  for (unsigned i = 0; i < 16; ++i) {
    *p++ = hex[digest[i] >> 4];
    *p++ = hex[digest[i] & 15];
  }
  return out;
}

}  // namespace orgpatch
