// The emulator in-process (plain and TLS, on its own threads), driven by a small
// Beast client; and its command line as a subprocess.
#include "emulator/api.hpp"
#include "emulator/cert.hpp"
#include "emulator/config.hpp"
#include "emulator/server.hpp"
#include "integration/emulator_client.hpp"
#include "orgpatch/asio.hpp"
#include "support/test_util.hpp"

#include <boost/asio/ssl.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <future>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace orgpatch::emulator {
namespace {

using namespace test_client;
namespace http = beast::http;
namespace json = boost::json;
using namespace std::chrono_literals;

TEST(EmulatorTest, PatchAnswersTheUnifiedOrganization) {
  server srv(plain_options());
  srv.start();
  ASSERT_NE(srv.port(), 0);
  client c(srv.port());
  const reply r = patch(c, org_target(k_org), R"({"name":"Acme","remote_data":{"session_expiry":720}})");
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  EXPECT_FALSE(r.chunked);
  const json::value v = r.json();
  EXPECT_EQ(keys_of(v), (std::set<std::string>{"id", "name", "created_at", "updated_at", "licenses", "pricing_plan",
                                               "remote_data"}));
  EXPECT_EQ(v.at("id").as_string(), k_org);
  EXPECT_EQ(v.at("name").as_string(), "Acme");
  const std::regex iso(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
  EXPECT_TRUE(std::regex_match(std::string(v.at("created_at").as_string()), iso)) << r.body;
  EXPECT_TRUE(std::regex_match(std::string(v.at("updated_at").as_string()), iso)) << r.body;
  EXPECT_TRUE(v.at("licenses").as_array().empty());
  EXPECT_TRUE(v.at("pricing_plan").is_null());
  const json::value& remote = v.at("remote_data");
  EXPECT_EQ(remote.at("id").as_string(), k_org);
  EXPECT_EQ(remote.at("name").as_string(), "Acme");
  EXPECT_EQ(remote.at("session_expiry").to_number<int>(), 720);
  EXPECT_FALSE(remote.at("allow_mist").as_bool());
  EXPECT_TRUE(remote.at("orggroup_ids").is_array());
  EXPECT_TRUE(remote.at("modified_time").is_int64());
  EXPECT_TRUE(remote.at("created_time").is_int64());

  const stats st = srv.stats_snapshot();
  EXPECT_EQ(st.applied, 1u);
  EXPECT_EQ(st.organizations, 1u);
  EXPECT_EQ(st.applies.at(std::string(k_account) + "/" + std::string(k_org)), 1u);
}

TEST(EmulatorTest, TlsWithAVerifiedCertificate) {
  test::temp_dir dir;
  const cert_paths paths = write_self_signed_cert(dir.path(), {"localhost"}, {"127.0.0.1"});
  EXPECT_EQ(std::filesystem::status(paths.key).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  server_options o = plain_options();
  o.plain = false;
  o.cert_file = paths.cert.string();
  o.key_file = paths.key.string();
  server srv(o);
  srv.start();
  EXPECT_EQ(srv.base_url(), "https://127.0.0.1:" + std::to_string(srv.port()));

  client by_ip(srv.port(), paths.cert.string(), "127.0.0.1");
  ASSERT_FALSE(by_ip.connect()) << "verification against the written certificate";
  EXPECT_EQ(patch(by_ip, org_target(k_org), R"({"name":"Acme"})").status, 200u);
  EXPECT_EQ(patch(by_ip, org_target(k_org), R"({"name":"Acme 2"})").status, 200u);

  client by_name(srv.port(), paths.cert.string(), "localhost");
  ASSERT_FALSE(by_name.connect());
  EXPECT_EQ(get(by_name, org_target(k_org)).json().at("name").as_string(), "Acme 2");
  EXPECT_EQ(srv.stats_snapshot().connections, 2u);
}

TEST(EmulatorTest, TlsCertificateWithoutTheHostNameFailsVerification) {
  test::temp_dir dir;
  const cert_paths paths = write_self_signed_cert(dir.path(), {"example.invalid"}, {});
  server_options o = plain_options();
  o.plain = false;
  o.cert_file = paths.cert.string();
  o.key_file = paths.key.string();
  server srv(o);
  srv.start();
  client c(srv.port(), paths.cert.string(), "127.0.0.1");
  const beast::error_code ec = c.connect();
  ASSERT_TRUE(ec);
  EXPECT_EQ(ec.category(), net::error::get_ssl_category()) << ec.message();

  // The same certificate is trusted for its own name.
  client named(srv.port(), paths.cert.string(), "example.invalid");
  EXPECT_FALSE(named.connect());
}

TEST(EmulatorTest, TlsFromMemoryPem) {
  server_options o = plain_options();
  o.plain = false;
  pem_pair pem = make_self_signed_cert({"localhost"}, {"127.0.0.1"});
  o.cert_pem = pem.cert_pem;
  o.key_pem = pem.key_pem;
  server srv(o);
  srv.start();
  test::temp_dir dir;
  test::write_file(dir.file("ca.pem"), pem.cert_pem);
  client c(srv.port(), dir.file("ca.pem"), "127.0.0.1");
  ASSERT_FALSE(c.connect());
  EXPECT_EQ(patch(c, org_target(k_org), "{}").status, 200u);
}

TEST(EmulatorTest, MissingOrWrongTokenIs401) {
  server_options o = plain_options();
  o.api.token = "secret";
  server srv(o);
  srv.start();
  client c(srv.port());
  const std::string body = R"({"name":"Acme"})";

  reply r = c.send(http::verb::patch, org_target(k_org), body, {{"Content-Type", "application/json"}});
  EXPECT_EQ(r.status, 401u);
  error_message(r, false);
  for (const std::string& auth : std::vector<std::string>{"Bearer wrong", "Bearer ", "Basic secret", "secret"}) {
    r = c.send(http::verb::patch, org_target(k_org), body,
               {{"Authorization", auth}, {"Content-Type", "application/json"}});
    EXPECT_EQ(r.status, 401u) << auth;
    EXPECT_EQ(r.json().at("error").as_string(), "Unauthorized");
    EXPECT_EQ(r.body.find("secret"), std::string::npos) << "no token in error bodies";
  }
  r = c.send(http::verb::patch, org_target(k_org), body,
             {{"Authorization", "Bearer secret"}, {"Content-Type", "application/json"}});
  EXPECT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(get(c, org_target(k_org)).status, 401u);
  EXPECT_EQ(srv.stats_snapshot().applied, 1u);
}

TEST(EmulatorTest, AnyNonEmptyTokenWithoutATokenFile) {
  server srv(plain_options());
  srv.start();
  client c(srv.port());
  EXPECT_EQ(c.send(http::verb::patch, org_target(k_org), "{}",
                   {{"Authorization", "bearer anything"}, {"Content-Type", "application/json"}})
                .status,
            200u);
  EXPECT_EQ(c.send(http::verb::patch, org_target(k_org), "{}",
                   {{"Authorization", "Bearer "}, {"Content-Type", "application/json"}})
                .status,
            401u);
}

TEST(EmulatorTest, BadIntegratedAccountIs400) {
  server srv(plain_options());
  srv.start();
  client c(srv.port());
  const std::string base = "/unified/user-directory/organizations/" + std::string(k_org);
  for (const std::string& target : std::vector<std::string>{base, base + "?integrated_account_id=", base + "?integrated_account_id=nope",
                                   base + "?integrated_account_id=62f44730-dd91-461e-bd6a-aedd9e0ad79",
                                   base + "?integrated_account_id[]=62f44730-dd91-461e-bd6a-aedd9e0ad79d"}) {
    const reply r = patch(c, target, "{}");
    EXPECT_EQ(r.status, 400u) << target;
    EXPECT_NE(error_message(r, false).find("integrated_account_id"), std::string::npos) << r.body;
  }
  EXPECT_EQ(srv.stats_snapshot().organizations, 0u);
}

TEST(EmulatorTest, NonUuidOrganizationIsARemote404) {
  server srv(plain_options());
  srv.start();
  client c(srv.port());
  for (const std::string& id : std::vector<std::string>{"acme", "acme%2Fother", "..", "2818e386-8dec-2562-9ede-5b8a0fbbdc7"}) {
    const reply r = patch(c, org_target(id), R"({"name":"Acme"})");
    EXPECT_EQ(r.status, 404u) << id;
    EXPECT_EQ(error_message(r, true), "Organization not found");
    EXPECT_EQ(r.json().at("raw_response"), json::parse(R"({"detail":"Organization not found"})"));
  }
  // A percent-encoded UUID is the same organization.
  EXPECT_EQ(patch(c, org_target("2818e386%2D8dec-2562-9ede-5b8a0fbbdc71"), "{}").status, 200u);
  EXPECT_TRUE(srv.organization_json(k_account, k_org).has_value());
  // Untouched UUID organizations are not there to GET.
  EXPECT_EQ(get(c, org_target(k_org2)).status, 404u);
}

TEST(EmulatorTest, RemoteValidationIs422) {
  server srv(plain_options());
  srv.start();
  client c(srv.port());
  const std::pair<std::string, std::string> cases[] = {
      {R"({"name":""})", "name: "},
      {R"({"name":42})", "name: "},
      {R"({"remote_data":{"name":""}})", "name: "},
      {R"({"remote_data":{"session_expiry":-5}})", "session_expiry: "},
      {R"({"remote_data":{"session_expiry":0}})", "session_expiry: "},
      {R"({"remote_data":{"session_expiry":12.5}})", "session_expiry: "},
      {R"({"remote_data":{"session_expiry":"720"}})", "session_expiry: "},
  };
  for (const auto& [body, prefix] : cases) {
    const reply r = patch(c, org_target(k_org), body);
    EXPECT_EQ(r.status, 422u) << body;
    EXPECT_EQ(error_message(r, true).rfind(prefix, 0), 0u) << r.body;
  }
  EXPECT_EQ(srv.stats_snapshot().applied, 0u);
  EXPECT_EQ(srv.stats_snapshot().by_status.at(422), std::size(cases));
}

TEST(EmulatorTest, RequestValidationIs400Or415) {
  server srv(plain_options());
  srv.start();
  client c(srv.port());
  const auto bad_query = [&](std::string query, std::string_view expect) {
    const reply r = patch(c, org_target(k_org, query), "{}");
    EXPECT_EQ(r.status, 400u) << query;
    EXPECT_NE(error_message(r, false).find(expect), std::string::npos) << r.body;
  };
  bad_query("&truto_response_format=xml", "truto_response_format");
  bad_query("&truto_ignore_remote_data=maybe", "truto_ignore_remote_data");
  bad_query("&truto_exclude_fields[a]=b", "truto_exclude_fields");
  bad_query("&truto_bogus=1", "truto_bogus");

  // Accepted: remote_query in any shape, known formats, indexed arrays.
  for (const std::string& ok : std::vector<std::string>{"&remote_query[foo]=bar&remote_query%5Bnested%5D%5Ba%5D=1", "&other=1",
                               "&truto_response_format=normalized", "&truto_exclude_fields[0]=licenses",
                               "&truto_ignore_remote_data=false"}) {
    EXPECT_EQ(patch(c, org_target(k_org, ok), "{}").status, 200u) << ok;
  }

  reply r = c.send(http::verb::patch, org_target(k_org), "{}", {{"Authorization", "Bearer t"}});
  EXPECT_EQ(r.status, 415u);
  error_message(r, false);
  r = c.send(http::verb::patch, org_target(k_org), "{}", {{"Authorization", "Bearer t"}, {"Content-Type", "text/plain"}});
  EXPECT_EQ(r.status, 415u);
  r = c.send(http::verb::patch, org_target(k_org), "{}",
             {{"Authorization", "Bearer t"}, {"Content-Type", "Application/JSON; charset=utf-8"}});
  EXPECT_EQ(r.status, 200u);

  for (const std::string& body : std::vector<std::string>{"", "[]", "\"x\"", "{", "{\"a\":1}x", "null"}) {
    r = patch(c, org_target(k_org), body);
    EXPECT_EQ(r.status, 400u) << body;
    EXPECT_EQ(error_message(r, false), "Request body must be a JSON object") << body;
  }
  r = patch(c, org_target(k_org), R"({"remote_data":[1]})");
  EXPECT_EQ(r.status, 400u);

  for (const std::string& key : std::vector<std::string>{"", "has space", std::string(256, 'k'), "tab\there"}) {
    r = patch(c, org_target(k_org), "{}", {{"Idempotency-Key", key}});
    EXPECT_EQ(r.status, 400u) << key;
    EXPECT_NE(error_message(r, false).find("Idempotency-Key"), std::string::npos);
  }
  EXPECT_EQ(patch(c, org_target(k_org), "{}", {{"Idempotency-Key", std::string(255, '~')}}).status, 200u);
}

TEST(EmulatorTest, ExcludeFieldsAndIgnoreRemoteDataShapeTheAnswer) {
  server srv(plain_options());
  srv.start();
  client c(srv.port());
  const std::string body = R"({"name":"Acme","remote_data":{"session_expiry":30}})";

  reply r = patch(c, org_target(k_org, "&truto_exclude_fields%5B%5D=licenses&truto_exclude_fields%5B%5D=pricing_plan"), body);
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(keys_of(r.json()), (std::set<std::string>{"id", "name", "created_at", "updated_at", "remote_data"}));

  r = patch(c, org_target(k_org, "&truto_exclude_fields[]=name&truto_exclude_fields[]=id"), body);
  EXPECT_EQ(keys_of(r.json()),
            (std::set<std::string>{"created_at", "updated_at", "licenses", "pricing_plan", "remote_data"}));

  r = patch(c, org_target(k_org, "&truto_ignore_remote_data=true"), body);
  EXPECT_EQ(keys_of(r.json()),
            (std::set<std::string>{"id", "name", "created_at", "updated_at", "licenses", "pricing_plan"}));

  // raw: the remote API's (Mist's) own object.
  r = patch(c, org_target(k_org, "&truto_response_format=raw"), body);
  ASSERT_EQ(r.status, 200u);
  const json::value raw = r.json();
  EXPECT_EQ(raw.at("id").as_string(), k_org);
  EXPECT_EQ(raw.at("session_expiry").to_number<int>(), 30);
  EXPECT_FALSE(raw.as_object().contains("remote_data"));
  EXPECT_FALSE(raw.as_object().contains("created_at"));
  EXPECT_EQ(srv.stats_snapshot().applied, 4u);
}

TEST(EmulatorTest, StreamFormatIsChunked) {
  server srv(plain_options());
  srv.start();
  client c(srv.port());
  const reply unified = patch(c, org_target(k_org), R"({"name":"Acme"})");
  EXPECT_FALSE(unified.chunked);
  const reply streamed = patch(c, org_target(k_org, "&truto_response_format=stream"), R"({"name":"Acme"})");
  ASSERT_EQ(streamed.status, 200u);
  EXPECT_TRUE(streamed.chunked);
  EXPECT_EQ(streamed.header("Content-Length"), "");
  EXPECT_EQ(keys_of(streamed.json()), keys_of(unified.json()));
  EXPECT_EQ(streamed.json().at("name").as_string(), "Acme");
  // The connection stays usable after a chunked answer.
  EXPECT_EQ(get(c, org_target(k_org)).status, 200u);
  EXPECT_EQ(srv.stats_snapshot().connections, 1u);
}

TEST(EmulatorTest, IdempotencyKeyReplaysWithoutApplyingAgain) {
  server srv(plain_options());
  srv.start();
  client c(srv.port());
  const reply first = patch(c, org_target(k_org), R"({"name":"First"})", {{"Idempotency-Key", "job-1"}});
  ASSERT_EQ(first.status, 200u);
  EXPECT_EQ(first.header("Idempotent-Replayed"), "");
  std::this_thread::sleep_for(5ms);  // a second apply would move updated_at
  const reply again = patch(c, org_target(k_org), R"({"name":"Second"})", {{"Idempotency-Key", "job-1"}});
  EXPECT_EQ(again.status, 200u);
  EXPECT_EQ(again.body, first.body);
  EXPECT_EQ(again.header("Idempotent-Replayed"), "true");

  stats st = srv.stats_snapshot();
  EXPECT_EQ(st.applied, 1u);
  EXPECT_EQ(st.replays, 1u);
  EXPECT_EQ(st.max_applies_per_org, 1u);
  EXPECT_EQ(get(c, org_target(k_org)).json().at("name").as_string(), "First");

  // The key is scoped by account and path: elsewhere it applies.
  EXPECT_EQ(patch(c, org_target(k_org2), R"({"name":"Other"})", {{"Idempotency-Key", "job-1"}}).header("Idempotent-Replayed"), "");
  const std::string other_account = "/unified/user-directory/organizations/" + std::string(k_org) +
                                    "?integrated_account_id=00000000-0000-4000-8000-000000000001";
  EXPECT_EQ(patch(c, other_account, R"({"name":"Other"})", {{"Idempotency-Key", "job-1"}}).header("Idempotent-Replayed"), "");
  st = srv.stats_snapshot();
  EXPECT_EQ(st.applied, 3u);
  EXPECT_EQ(st.replays, 1u);
}

TEST(EmulatorTest, PerOrganizationRequestAndKeyCounts) {
  server srv(plain_options());
  srv.start();
  client c(srv.port());
  const std::string org = std::string(k_account) + "/" + std::string(k_org);
  const std::string org2 = std::string(k_account) + "/" + std::string(k_org2);
  EXPECT_EQ(patch(c, org_target(k_org), R"({"name":"A"})", {{"Idempotency-Key", "job-1"}}).status, 200u);
  EXPECT_EQ(patch(c, org_target(k_org), R"({"name":"A"})", {{"Idempotency-Key", "job-1"}}).header("Idempotent-Replayed"),
            "true");
  stats st = srv.stats_snapshot();
  EXPECT_EQ(st.per_org.at(org), (org_counts{.requests = 2, .idempotency_keys = 1}));
  EXPECT_EQ(st.replays, 1u);
  EXPECT_EQ(st.applies.at(org), 1u);

  EXPECT_EQ(patch(c, org_target(k_org), R"({"name":"B"})", {{"Idempotency-Key", "job-2"}}).status, 200u);
  st = srv.stats_snapshot();
  EXPECT_EQ(st.per_org.at(org), (org_counts{.requests = 3, .idempotency_keys = 2}));
  EXPECT_EQ(st.max_requests_per_org, 3u);
  EXPECT_EQ(st.max_idempotency_keys_per_org, 2u);

  // Without the header the key is "": one more distinct key, however often sent.
  // A remote 422 is counted; a 400 (remote_data not an object), a GET and a
  // non-UUID id are not.
  EXPECT_EQ(patch(c, org_target(k_org2), R"({"name":"C"})").status, 200u);
  EXPECT_EQ(patch(c, org_target(k_org2), R"({"name":""})").status, 422u);
  EXPECT_EQ(patch(c, org_target(k_org2), R"({"remote_data":1})").status, 400u);
  EXPECT_EQ(get(c, org_target(k_org2)).status, 200u);
  EXPECT_EQ(patch(c, org_target("not-a-uuid"), "{}").status, 404u);
  st = srv.stats_snapshot();
  EXPECT_EQ(st.per_org.at(org2), (org_counts{.requests = 2, .idempotency_keys = 1}));
  EXPECT_EQ(st.per_org.size(), 2u);

  const json::value v = c.send(http::verb::get, "/_emulator/stats").json();
  json::object per_org;
  per_org[org] = {{"requests", 3}, {"idempotency_keys", 2}};
  per_org[org2] = {{"requests", 2}, {"idempotency_keys", 1}};
  EXPECT_EQ(v.at("per_org"), json::value(per_org));
  EXPECT_EQ(v.at("max_requests_per_org").to_number<int>(), 3);
  EXPECT_EQ(v.at("max_idempotency_keys_per_org").to_number<int>(), 2);
  EXPECT_TRUE(srv.stats_snapshot(false).per_org.empty());

  // The distinct count is exact up to the cap, then stays at it.
  for (int i = 0; i < 12; ++i)
    patch(c, org_target(k_org), R"({"name":"D"})", {{"Idempotency-Key", "many-" + std::to_string(i)}});
  st = srv.stats_snapshot();
  EXPECT_EQ(st.per_org.at(org), (org_counts{.requests = 15, .idempotency_keys = k_max_idempotency_keys_per_org}));
}

TEST(EmulatorTest, PerOrganizationCountsIncludeFaultedRequests) {
  api_options o;
  o.faults.status_500 = 1;
  api a(o);
  const auto now = api::clock::now();
  const std::string target = org_target(k_org);
  request req;
  req.method = "PATCH";
  req.target = target;
  req.authorization = "Bearer t";
  req.content_type = "application/json";
  req.idempotency_key = "k";
  req.body = "{}";
  EXPECT_EQ(a.handle(req, now).status, 500u);
  EXPECT_EQ(a.handle(req, now).status, 500u);
  const stats st = a.snapshot();
  EXPECT_EQ(st.per_org.at(std::string(k_account) + "/" + std::string(k_org)),
            (org_counts{.requests = 2, .idempotency_keys = 1}));
  // Counted, yet the organization was never created.
  EXPECT_EQ(st.organizations, 0u);
  EXPECT_TRUE(st.applies.empty());
  EXPECT_FALSE(a.organization_json(k_account, k_org).has_value());
  req.method = "GET";
  EXPECT_EQ(a.handle(req, now).status, 404u);
}

TEST(EmulatorTest, FailedAnswerIsNotStored) {
  server srv(plain_options());
  srv.start();
  client c(srv.port());
  EXPECT_EQ(patch(c, org_target(k_org), R"({"name":""})", {{"Idempotency-Key", "k"}}).status, 422u);
  const reply ok = patch(c, org_target(k_org), R"({"name":"Fixed"})", {{"Idempotency-Key", "k"}});
  EXPECT_EQ(ok.status, 200u);
  EXPECT_EQ(ok.header("Idempotent-Replayed"), "");
  EXPECT_EQ(ok.json().at("name").as_string(), "Fixed");
  const stats st = srv.stats_snapshot();
  EXPECT_EQ(st.applied, 1u);
  EXPECT_EQ(st.replays, 0u);
}

TEST(EmulatorTest, GetReturnsTheStoredState) {
  server srv(plain_options());
  srv.start();
  client c(srv.port());
  const reply patched = patch(c, org_target(k_org),
                              R"({"name":"Acme EMEA","remote_data":{"session_expiry":30,"allow_mist":true,
                                  "orggroup_ids":["g1","g2"],"msp_id":"m-1","custom":{"x":1}}})");
  ASSERT_EQ(patched.status, 200u);
  const reply got = get(c, org_target(k_org));
  ASSERT_EQ(got.status, 200u);
  EXPECT_EQ(got.json(), patched.json());
  const json::value remote = got.json().at("remote_data");
  EXPECT_EQ(remote.at("name").as_string(), "Acme EMEA");
  EXPECT_EQ(remote.at("session_expiry").to_number<int>(), 30);
  EXPECT_TRUE(remote.at("allow_mist").as_bool());
  EXPECT_EQ(remote.at("orggroup_ids"), json::parse(R"(["g1","g2"])"));
  EXPECT_EQ(remote.at("msp_id").as_string(), "m-1");
  EXPECT_EQ(remote.at("custom"), json::parse(R"({"x":1})"));
  EXPECT_EQ(json::parse(*srv.organization_json(k_account, k_org)), got.json());

  // A later update merges into remote_data; read-only Mist fields stay.
  const reply second = patch(c, org_target(k_org), R"({"remote_data":{"allow_mist":false,"id":"forged"}})");
  const json::value after = get(c, org_target(k_org)).json();
  EXPECT_EQ(after, second.json());
  EXPECT_EQ(after.at("name").as_string(), "Acme EMEA");
  EXPECT_EQ(after.at("remote_data").at("session_expiry").to_number<int>(), 30);
  EXPECT_FALSE(after.at("remote_data").at("allow_mist").as_bool());
  EXPECT_EQ(after.at("remote_data").at("id").as_string(), k_org);
  EXPECT_EQ(after.at("created_at"), patched.json().at("created_at"));

  // GET shapes like PATCH, and needs the account.
  EXPECT_FALSE(get(c, org_target(k_org, "&truto_ignore_remote_data=true")).json().as_object().contains("remote_data"));
  EXPECT_EQ(get(c, "/unified/user-directory/organizations/" + std::string(k_org)).status, 400u);
  EXPECT_FALSE(srv.organization_json(k_account, k_org2).has_value());
}

TEST(EmulatorTest, StatsAndReset) {
  server srv(plain_options());
  srv.start();
  client c(srv.port());
  patch(c, org_target(k_org), R"({"name":"A"})");
  patch(c, org_target(k_org), R"({"name":"B"})");
  patch(c, org_target(k_org2), R"({"name":"C"})");
  patch(c, org_target("not-a-uuid"), "{}");

  reply r = c.send(http::verb::get, "/_emulator/stats");
  ASSERT_EQ(r.status, 200u);
  const json::value st = r.json();
  EXPECT_EQ(keys_of(st), (std::set<std::string>{"requests", "by_status", "connections", "applied", "replays",
                                                "organizations", "max_applies_per_org", "max_requests_per_org",
                                                "max_idempotency_keys_per_org", "applies", "per_org", "dropped",
                                                "rate_limited", "over_limit", "early_retries", "early_retries_by",
                                                "faults"}));
  EXPECT_EQ(st.at("requests").to_number<int>(), 4);
  EXPECT_EQ(st.at("by_status"), json::parse(R"({"200":3,"404":1})"));
  EXPECT_EQ(st.at("connections").to_number<int>(), 1);
  EXPECT_EQ(st.at("applied").to_number<int>(), 3);
  EXPECT_EQ(st.at("replays").to_number<int>(), 0);
  EXPECT_EQ(st.at("organizations").to_number<int>(), 2);
  EXPECT_EQ(st.at("max_applies_per_org").to_number<int>(), 2);
  json::object applies;
  applies[std::string(k_account) + "/" + std::string(k_org)] = 2;
  applies[std::string(k_account) + "/" + std::string(k_org2)] = 1;
  EXPECT_EQ(st.at("applies"), json::value(applies));

  r = c.send(http::verb::get, "/_emulator/stats?summary=1");
  EXPECT_FALSE(r.json().as_object().contains("applies"));
  EXPECT_FALSE(r.json().as_object().contains("per_org"));
  EXPECT_EQ(r.json().at("max_requests_per_org").to_number<int>(), 2);
  EXPECT_EQ(r.json().at("max_idempotency_keys_per_org").to_number<int>(), 1);
  EXPECT_EQ(r.json().at("requests").to_number<int>(), 4) << "stats requests are not counted";

  EXPECT_EQ(c.send(http::verb::get, "/_emulator/reset").status, 405u);
  r = c.send(http::verb::post, "/_emulator/reset");
  ASSERT_EQ(r.status, 200u);
  EXPECT_EQ(r.json(), json::parse(R"({"reset":true})"));
  EXPECT_EQ(c.send(http::verb::get, "/_emulator/stats").json(),
            json::parse(R"({"requests":0,"by_status":{},"connections":0,"applied":0,"replays":0,
                            "organizations":0,"max_applies_per_org":0,"max_requests_per_org":0,
                            "max_idempotency_keys_per_org":0,"applies":{},"per_org":{},"dropped":0,
                            "rate_limited":{"token":0,"account":0,"remote":0,"fault":0},"over_limit":0,
                            "early_retries":0,"early_retries_by":{"token":0,"account":0},
                            "faults":{"chunked":0,"close_after":0,"invalid_json":0,"latency":0,
                                      "reset_before":0,"reset_mid_body":0,"stall":0,"status_429":0,
                                      "status_500":0,"status_502":0,"status_503":0,"status_504":0}})"));
  EXPECT_EQ(get(c, org_target(k_org)).status, 404u);
  EXPECT_EQ(srv.stats_snapshot().requests, 1u);
}

TEST(EmulatorTest, KeepAliveCountsOneConnection) {
  server srv(plain_options());
  srv.start();
  {
    client c(srv.port());
    for (int i = 0; i < 5; ++i) {
      const reply r = patch(c, org_target(k_org), R"({"name":"N)" + std::to_string(i) + R"("})");
      EXPECT_EQ(r.status, 200u);
      EXPECT_TRUE(r.keep_alive);
    }
    EXPECT_EQ(srv.stats_snapshot().connections, 1u);
  }
  client closing(srv.port());
  header_list h = auth_json();
  h.emplace_back("Connection", "close");
  const reply r = closing.send(http::verb::patch, org_target(k_org), "{}", h);
  EXPECT_EQ(r.status, 200u);
  EXPECT_FALSE(r.keep_alive);
  EXPECT_EQ(closing.read_error(), http::error::end_of_stream);
  const stats st = srv.stats_snapshot();
  EXPECT_EQ(st.connections, 2u);
  EXPECT_EQ(st.applied, 6u);
}

TEST(EmulatorTest, UnknownRoutesAndMethods) {
  server srv(plain_options());
  srv.start();
  client c(srv.port());
  reply r = c.send(http::verb::get, "/nope");
  EXPECT_EQ(r.status, 404u);
  error_message(r, false);
  r = c.send(http::verb::delete_, org_target(k_org), {}, {{"Authorization", "Bearer t"}});
  EXPECT_EQ(r.status, 405u);
  EXPECT_EQ(r.header("Allow"), "GET, PATCH");
  error_message(r, false);
  r = patch(c, "/unified/crm/contacts/" + std::string(k_org) + "?integrated_account_id=" + std::string(k_account), "{}");
  EXPECT_EQ(r.status, 404u);
  error_message(r, false);
  r = patch(c, "/unified/user-directory/organizations/" + std::string(k_org) + "/extra?integrated_account_id=" +
                   std::string(k_account),
            "{}");
  EXPECT_EQ(r.status, 404u);
  r = patch(c, "/unified/user-directory/organizations/?integrated_account_id=" + std::string(k_account), "{}");
  EXPECT_EQ(r.status, 404u);
  EXPECT_EQ(c.send(http::verb::get, "/_emulator/nope").status, 404u);
}

TEST(EmulatorTest, BodyOverTheLimitIs413) {
  server_options o = plain_options();
  o.body_limit = 1024;
  server srv(o);
  srv.start();
  client c(srv.port());
  const reply r = patch(c, org_target(k_org), R"({"name":")" + std::string(2000, 'x') + R"("})");
  EXPECT_EQ(r.status, 413u);
  EXPECT_FALSE(r.keep_alive);
  error_message(r, false);
  client c2(srv.port());
  EXPECT_EQ(patch(c2, org_target(k_org), R"({"name":")" + std::string(900, 'x') + R"("})").status, 200u);
}

TEST(EmulatorTest, MalformedHttpIs400AndOversizedHeaderIs431) {
  server srv(plain_options());
  srv.start();
  std::string out = raw_exchange(srv.port(), "NOT HTTP AT ALL\r\n\r\n");
  EXPECT_EQ(out.rfind("HTTP/1.1 400 ", 0), 0u) << out;
  EXPECT_NE(out.find(R"("statusCode":400)"), std::string::npos) << out;
  EXPECT_NE(out.find("Connection: close"), std::string::npos) << out;

  out = raw_exchange(srv.port(), "GET /_emulator/stats HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') +
                                     "\r\n\r\n");
  EXPECT_EQ(out.rfind("HTTP/1.1 431 ", 0), 0u) << out;

  // Two pipelined requests on one connection, the second closing it.
  out = raw_exchange(srv.port(),
                     "GET /_emulator/stats?summary=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                     "GET /_emulator/stats?summary=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::size_t answers = 0;
  for (std::size_t at = out.find("HTTP/1.1 200 "); at != std::string::npos; at = out.find("HTTP/1.1 200 ", at + 1))
    ++answers;
  EXPECT_EQ(answers, 2u) << out;
  const stats st = srv.stats_snapshot();
  EXPECT_EQ(st.by_status.at(400), 1u);
  EXPECT_EQ(st.by_status.at(431), 1u);
}

TEST(EmulatorTest, IdleConnectionIsClosed) {
  server_options o = plain_options();
  o.idle_timeout = 200ms;
  server srv(o);
  srv.start();
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(raw_exchange(srv.port(), ""), "");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(EmulatorTest, ManyConnectionsOnSeveralThreads) {
  server_options o = plain_options();
  o.threads = 4;
  server srv(o);
  srv.start();
  constexpr int k_clients = 8;
  constexpr int k_requests = 25;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < k_clients; ++t) {
    threads.emplace_back([&, t] {
      client c(srv.port());
      for (int i = 0; i < k_requests; ++i) {
        const std::string id = test::test_uuid(static_cast<std::uint32_t>(t), static_cast<std::uint64_t>(i));
        if (patch(c, org_target(id), R"({"name":"x"})", {{"Idempotency-Key", "k" + std::to_string(i)}}).status == 200)
          ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), k_clients * k_requests);
  const stats st = srv.stats_snapshot();
  EXPECT_EQ(st.connections, static_cast<std::uint64_t>(k_clients));
  EXPECT_EQ(st.applied, static_cast<std::uint64_t>(k_clients * k_requests));
  EXPECT_EQ(st.organizations, static_cast<std::uint64_t>(k_clients * k_requests));
  EXPECT_EQ(st.max_applies_per_org, 1u);
  srv.stop();
  srv.stop();  // idempotent
  EXPECT_EQ(srv.stats_snapshot().applied, st.applied);
}

TEST(EmulatorTest, ApiWithoutSockets) {
  api a;
  const auto t = api::clock::time_point(std::chrono::milliseconds(1795725667123));
  request req;
  req.method = "PATCH";
  const std::string target = org_target(k_org);
  req.target = target;
  req.authorization = "Bearer t";
  req.content_type = "application/json";
  req.body = R"({"name":"Acme"})";
  const response res = a.handle(req, t);
  ASSERT_EQ(res.status, 200u);
  const json::value v = json::parse(res.body);
  EXPECT_EQ(v.at("created_at").as_string(), "2026-11-26T20:41:07.123Z");
  EXPECT_EQ(v.at("updated_at").as_string(), "2026-11-26T20:41:07.123Z");
  EXPECT_EQ(v.at("remote_data").at("created_time").to_number<std::int64_t>(), 1795725667);

  const response later = a.handle(req, t + std::chrono::seconds(61));
  EXPECT_EQ(json::parse(later.body).at("updated_at").as_string(), "2026-11-26T20:42:08.123Z");
  EXPECT_EQ(json::parse(later.body).at("created_at").as_string(), "2026-11-26T20:41:07.123Z");
  EXPECT_EQ(iso8601_ms(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(iso8601_ms(-1), "1969-12-31T23:59:59.999Z");
}

TEST(EmulatorTest, IdempotencyStoreIsBounded) {
  api_options o;
  o.idempotency_max_keys = 16;  // one per shard
  api a(o);
  const auto now = api::clock::now();
  const std::string target = org_target(k_org);
  const auto send = [&](std::string key) {
    request req;
    req.method = "PATCH";
    req.target = target;
    req.authorization = "Bearer t";
    req.content_type = "application/json";
    req.idempotency_key = key;
    req.body = "{}";
    return a.handle(req, now);
  };
  send("a");
  send("a");
  EXPECT_EQ(a.snapshot().replays, 1u);
  send("b");  // evicts "a" (same account, so same shard)
  send("a");
  EXPECT_EQ(a.snapshot().replays, 1u);
  EXPECT_EQ(a.snapshot().applied, 3u);
}

TEST(EmulatorTest, ConfigFile) {
  test::temp_dir dir;
  test::write_file(dir.file("ok.yaml"),
                   "listen: 127.0.0.1:0\nthreads: 3\ntoken_file: token.txt\n"
                   "limits: {body_bytes: 2048, idle_timeout_ms: 500}\nidempotency: {max_keys: 10}\n"
                   "tls: {cert: c.pem, key: k.pem}\n");
  emulator_config cfg;
  load_config_file(dir.file("ok.yaml"), cfg);
  EXPECT_EQ(cfg.server.host, "127.0.0.1");
  EXPECT_EQ(cfg.server.port, 0);
  EXPECT_EQ(cfg.server.threads, 3u);
  EXPECT_EQ(cfg.server.body_limit, 2048u);
  EXPECT_EQ(cfg.server.idle_timeout, std::chrono::milliseconds(500));
  EXPECT_EQ(cfg.server.api.idempotency_max_keys, 10u);
  EXPECT_EQ(cfg.token_file, dir.file("token.txt"));
  EXPECT_EQ(cfg.mode, tls_mode::files);
  EXPECT_EQ(cfg.server.cert_file, dir.file("c.pem"));

  test::write_file(dir.file("empty.yaml"), "");
  emulator_config defaults;
  EXPECT_NO_THROW(load_config_file(dir.file("empty.yaml"), defaults));

  const auto error_of = [&](const std::string& text) {
    test::write_file(dir.file("bad.yaml"), text);
    emulator_config c;
    try {
      load_config_file(dir.file("bad.yaml"), c);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of("listen: 127.0.0.1:0\nbogus: 1\n").find("bogus: unknown key"), std::string::npos);
  EXPECT_NE(error_of("limits: {body_bytes: 1, nope: 2}\n").find("limits.nope"), std::string::npos);
  EXPECT_NE(error_of("threads: many\n").find("threads"), std::string::npos);
  EXPECT_NE(error_of("threads: 0\n").find("threads"), std::string::npos);
  EXPECT_NE(error_of("listen: nowhere\n").find("listen"), std::string::npos);
  EXPECT_NE(error_of("plain: true\nwrite_cert: d\n").find("choose one"), std::string::npos);
  EXPECT_NE(error_of("listen: [unclosed\n").find("bad.yaml"), std::string::npos);

  EXPECT_EQ(parse_listen("[::1]:8443"), (std::pair<std::string, std::uint16_t>{"::1", 8443}));
  EXPECT_EQ(parse_listen("localhost:0"), (std::pair<std::string, std::uint16_t>{"localhost", 0}));
  EXPECT_THROW(parse_listen("127.0.0.1:65536"), std::invalid_argument);
  EXPECT_THROW(parse_listen("127.0.0.1"), std::invalid_argument);
  EXPECT_THROW(parse_listen(":80"), std::invalid_argument);

  test::write_file(dir.file("token.txt"), "  tok-123\n");
  EXPECT_EQ(read_token_file(dir.file("token.txt")), "tok-123");
  test::write_file(dir.file("blank.txt"), " \n");
  EXPECT_THROW(read_token_file(dir.file("blank.txt")), std::runtime_error);
}

TEST(EmulatorTest, BinaryPrintsItsPortAndStopsOnSigterm) {
  test::temp_dir dir;
  child_process p({"--write-cert", dir.file("cert"), "--listen", "127.0.0.1:0", "--threads", "2", "--no-rate-limit"});
  const std::string line = p.read_line(20s);
  std::smatch m;
  ASSERT_TRUE(std::regex_match(line, m, std::regex(R"(listening on https://127\.0\.0\.1:(\d+))"))) << line;
  const auto port = static_cast<std::uint16_t>(std::stoi(m[1].str()));
  client c(port, dir.file("cert/cert.pem"), "127.0.0.1");
  ASSERT_FALSE(c.connect());
  EXPECT_EQ(patch(c, org_target(k_org), R"({"name":"Acme"})").status, 200u);
  EXPECT_EQ(p.stop(SIGTERM), 0);
}

TEST(EmulatorTest, BinaryPlainWithTokenFileAndSigint) {
  test::temp_dir dir;
  test::write_file(dir.file("token"), "s3cret\n");
  child_process p({"--plain", "--listen=127.0.0.1:0", "--token-file", dir.file("token")});
  const std::string line = p.read_line(20s);
  std::smatch m;
  ASSERT_TRUE(std::regex_match(line, m, std::regex(R"(listening on http://127\.0\.0\.1:(\d+))"))) << line;
  client c(static_cast<std::uint16_t>(std::stoi(m[1].str())));
  EXPECT_EQ(patch(c, org_target(k_org), "{}").status, 401u);
  header_list h{{"Authorization", "Bearer s3cret"}, {"Content-Type", "application/json"}};
  EXPECT_EQ(c.send(http::verb::patch, org_target(k_org), "{}", h).status, 200u);
  EXPECT_EQ(p.stop(SIGINT), 0);
}

TEST(EmulatorTest, BinaryRejectsBadFlagsWithStatus2) {
  test::temp_dir dir;
  test::write_file(dir.file("bad.yaml"), "bogus: 1\n");
  const std::vector<std::vector<std::string>> cases = {
      {"--bogus"},
      {"--listen"},
      {"--listen", "nowhere"},
      {"--threads", "0"},
      {"--plain", "--write-cert", dir.file("c")},
      {"--tls-cert", dir.file("c.pem")},
      {"--config", dir.file("bad.yaml")},
      {"--token-file", dir.file("missing")},
  };
  for (const auto& args : cases) {
    child_process p(args);
    EXPECT_EQ(p.stop(0), 2) << args.front();
  }
}

}  // namespace
}  // namespace orgpatch::emulator
