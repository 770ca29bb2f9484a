#include "orgpatch/job.hpp"
#include "orgpatch/request.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <cstring>

namespace orgpatch {
namespace {

job example_job() {
  job j;
  j.id = "2818e386-8dec-2562-9ede-5b8a0fbbdc71";
  j.integrated_account_id = "62f44730-dd91-461e-bd6a-aedd9e0ad79d";
  j.query = "&truto_exclude_fields%5B%5D=id&truto_exclude_fields%5B%5D=name&remote_query%5Bfoo%5D=bar"
            "&remote_query%5Bnested%5D%5Ba%5D=1";
  j.body = R"({"name":"Acme"})";
  return j;
}

TEST(RequestTest, EndpointOfDefaultBaseUrl) {
  const endpoint ep = make_endpoint(api_config{});
  EXPECT_TRUE(ep.tls);
  EXPECT_EQ(ep.host, "api.truto.one");
  EXPECT_EQ(ep.port, "443");
  EXPECT_EQ(ep.host_header, "api.truto.one");
  EXPECT_EQ(ep.path_prefix, "/unified/user-directory/organizations/");
}

TEST(RequestTest, EndpointWithPortPathAndIpv6) {
  api_config api;
  api.base_url = "https://127.0.0.1:8443/proxy/";
  endpoint ep = make_endpoint(api);
  EXPECT_EQ(ep.host, "127.0.0.1");
  EXPECT_EQ(ep.port, "8443");
  EXPECT_EQ(ep.host_header, "127.0.0.1:8443");
  EXPECT_EQ(ep.path_prefix, "/proxy/unified/user-directory/organizations/");
  api.base_url = "http://[::1]:8080";
  ep = make_endpoint(api);
  EXPECT_FALSE(ep.tls);
  EXPECT_EQ(ep.host, "::1");
  EXPECT_EQ(ep.host_header, "[::1]:8080");
}

TEST(RequestTest, TargetOfDesignExampleIsExact) {
  const endpoint ep = make_endpoint(api_config{});
  EXPECT_EQ("https://api.truto.one" + request_target(ep, example_job()),
            "https://api.truto.one/unified/user-directory/organizations/2818e386-8dec-2562-9ede-5b8a0fbbdc71"
            "?integrated_account_id=62f44730-dd91-461e-bd6a-aedd9e0ad79d&truto_exclude_fields%5B%5D=id"
            "&truto_exclude_fields%5B%5D=name&remote_query%5Bfoo%5D=bar&remote_query%5Bnested%5D%5Ba%5D=1");
}

TEST(RequestTest, HostileIdStaysInItsSegment) {
  const endpoint ep = make_endpoint(api_config{});
  job j = example_job();
  j.query.clear();
  j.id = "../x?y#z/%";
  EXPECT_EQ(request_target(ep, j),
            "/unified/user-directory/organizations/..%2Fx%3Fy%23z%2F%25"
            "?integrated_account_id=62f44730-dd91-461e-bd6a-aedd9e0ad79d");
}

TEST(RequestTest, ControlNonAsciiAndSpaceAreEncodedInTheSegment) {
  const endpoint ep = make_endpoint(api_config{});
  job j = example_job();
  j.query.clear();
  j.id = "a b\x01\x7f\r\n\xc3\xa9@x.com:443\\~._-";
  const std::string target = request_target(ep, j);
  EXPECT_EQ(target.substr(0, target.find('?')),
            "/unified/user-directory/organizations/a%20b%01%7F%0D%0A%C3%A9%40x.com%3A443%5C~._-");
  // Nothing but unreserved characters and escapes: no second host, no CRLF in the request line.
  for (char c : target.substr(0, target.find('?')))
    EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || std::strchr("/%-._~", c)) << c;
}

TEST(RequestTest, WholeRequestBytes) {
  const endpoint ep = make_endpoint(api_config{});
  std::string out = "stale";
  build_request(out, "/t?x=1", common_headers(ep, "tok"), "key-1", R"({"a":1})");
  EXPECT_EQ(out,
            "PATCH /t?x=1 HTTP/1.1\r\nHost: api.truto.one\r\nAuthorization: Bearer tok\r\n"
            "Content-Type: application/json\r\nAccept: application/json\r\nUser-Agent: orgpatchd/" ORGPATCH_VERSION
            "\r\nIdempotency-Key: key-1\r\nContent-Length: 7\r\n\r\n{\"a\":1}");
}

TEST(RequestTest, TokenCheckRefusesHeaderInjection) {
  EXPECT_EQ(check_token("abc.DEF-123"), "");
  EXPECT_NE(check_token(""), "");
  EXPECT_NE(check_token("abc\r\nX-Evil: 1"), "");
  EXPECT_NE(check_token("a b"), "");
  // The message never contains the token itself.
  EXPECT_EQ(check_token("sekrit token").find("sekrit"), std::string::npos);
}

TEST(RequestTest, DerivedIdempotencyKeyIsDeterministicAndVisibleAscii) {
  const std::string a = derive_idempotency_key("0123456789abcdef0123456789abcdef", "17");
  EXPECT_EQ(a, derive_idempotency_key("0123456789abcdef0123456789abcdef", "17"));
  EXPECT_NE(a, derive_idempotency_key("0123456789abcdef0123456789abcdef", "18"));
  EXPECT_NE(a, derive_idempotency_key("fedcba9876543210fedcba9876543210", "17"));
  EXPECT_EQ(a.rfind("op1-0123456789abcdef0123456789abcdef-", 0), 0u);
  EXPECT_LE(a.size(), 255u);
  for (unsigned char c : derive_idempotency_key("r", std::string(256, '\xff'))) {
    EXPECT_GE(c, 0x21);
    EXPECT_LE(c, 0x7e);
  }
}

}  // namespace
}  // namespace orgpatch
