// The emulator in-process (plain and TLS, on its own threads), driven by a small
// Beast client; and its command line as a subprocess.
#include "emulator/api.hpp"
#include "emulator/cert.hpp"
#include "emulator/config.hpp"
#include "emulator/server.hpp"
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

extern char** environ;

namespace orgpatch::emulator {
namespace {

namespace http = beast::http;
namespace json = boost::json;
using namespace std::chrono_literals;

constexpr std::string_view k_account = "62f44730-dd91-461e-bd6a-aedd9e0ad79d";
constexpr std::string_view k_org = "2818e386-8dec-2562-9ede-5b8a0fbbdc71";
constexpr std::string_view k_org2 = "9a3c1b52-0d7e-4f4a-8c55-7b1f0e2d9c11";

using header_list = std::vector<std::pair<std::string, std::string>>;

/// One response as the client read it.
struct reply {
  unsigned status = 0;
  std::string body;
  bool chunked = false;
  bool keep_alive = true;
  http::fields headers;

  json::value json() const { return json::parse(body); }
  std::string header(std::string_view name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? std::string{} : std::string(it->value());
  }
};

/// A keep-alive HTTP/1.1 client on one connection (plain, or TLS verifying the peer
/// against a CA file and a host name). Every step runs on the client's own
/// io_context with a wall-clock deadline.
class client {
 public:
  explicit client(std::uint16_t port) : port_(port) {}
  client(std::uint16_t port, const std::string& ca_file, std::string host) : port_(port), host_(std::move(host)) {
    tls_ctx_.emplace(ssl::context::tls_client);
    tls_ctx_->load_verify_file(ca_file);
    tls_ctx_->set_verify_mode(ssl::verify_peer);
  }

  /// Connects (and handshakes) if not connected yet; the error, if any.
  beast::error_code connect() {
    if (plain_ || tls_) return {};
    return run(do_connect());
  }

  reply send(http::verb method, std::string target, std::string body = {}, header_list headers = {}) {
    if (const auto ec = connect()) throw beast::system_error(ec, "connect");
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, host_);
    for (const auto& [name, value] : headers) req.set(name, value);
    req.body() = std::move(body);
    req.prepare_payload();
    if (tls_) return run(do_send(tls_.get(), std::move(req)));
    return run(do_send(plain_.get(), std::move(req)));
  }

  /// Reads once more on a plain connection: the error the server's close gives.
  beast::error_code read_error() { return run(do_read_error()); }

 private:
  template <class T>
  T run(net::awaitable<T> work) {
    std::future<T> result = net::co_spawn(ioc_, std::move(work), net::use_future);
    ioc_.restart();
    ioc_.run_for(20s);
    if (result.wait_for(0s) != std::future_status::ready) throw std::runtime_error("client step timed out");
    return result.get();
  }

  net::awaitable<beast::error_code> do_connect() {
    const tcp::endpoint endpoint{net::ip::make_address("127.0.0.1"), port_};
    if (!tls_ctx_) {
      plain_ = std::make_unique<tcp_stream>(ioc_);
      plain_->expires_after(10s);
      auto [ec] = co_await plain_->async_connect(endpoint, use_tuple);
      co_return ec;
    }
    tls_ = std::make_unique<tls_stream>(ioc_, *tls_ctx_);
    tls_->set_verify_callback(ssl::host_name_verification(host_));
    beast::get_lowest_layer(*tls_).expires_after(10s);
    auto [ec] = co_await beast::get_lowest_layer(*tls_).async_connect(endpoint, use_tuple);
    if (ec) co_return ec;
    std::tie(ec) = co_await tls_->async_handshake(ssl::stream_base::client, use_tuple);
    co_return ec;
  }

  template <class Stream>
  net::awaitable<reply> do_send(Stream* stream, http::request<http::string_body> req) {
    beast::get_lowest_layer(*stream).expires_after(10s);
    co_await http::async_write(*stream, req, net::use_awaitable);
    http::response_parser<http::string_body> parser;
    parser.body_limit(16 * 1024 * 1024);
    co_await http::async_read(*stream, buffer_, parser, net::use_awaitable);
    const auto& msg = parser.get();
    reply r;
    r.status = msg.result_int();
    r.body = msg.body();
    r.chunked = msg.chunked();
    r.keep_alive = msg.keep_alive();
    r.headers = msg;
    co_return r;
  }

  net::awaitable<beast::error_code> do_read_error() {
    plain_->expires_after(5s);
    http::response_parser<http::string_body> parser;
    auto [ec, n] = co_await http::async_read(*plain_, buffer_, parser, use_tuple);
    co_return ec;
  }

  net::io_context ioc_;
  std::uint16_t port_;
  std::string host_ = "127.0.0.1";
  std::optional<ssl::context> tls_ctx_;
  std::unique_ptr<tcp_stream> plain_;
  std::unique_ptr<tls_stream> tls_;
  beast::flat_buffer buffer_;
};

/// Writes `text` on a fresh plain connection, then reads until the server closes it.
std::string raw_exchange(std::uint16_t port, std::string text) {
  net::io_context ioc;
  auto exchange = [](std::uint16_t port, std::string text) -> net::awaitable<std::string> {
    tcp_stream s{co_await net::this_coro::executor};
    s.expires_after(10s);
    co_await s.async_connect(tcp::endpoint{net::ip::make_address("127.0.0.1"), port}, net::use_awaitable);
    if (!text.empty()) co_await net::async_write(s, net::buffer(text), net::use_awaitable);
    std::string out;
    std::array<char, 4096> buf;
    for (;;) {
      auto [ec, n] = co_await s.async_read_some(net::buffer(buf), use_tuple);
      out.append(buf.data(), n);
      if (ec) break;
    }
    co_return out;
  };
  std::future<std::string> result = net::co_spawn(ioc, exchange(port, std::move(text)), net::use_future);
  ioc.run_for(20s);
  if (result.wait_for(0s) != std::future_status::ready) throw std::runtime_error("raw exchange timed out");
  return result.get();
}

server_options plain_options() {
  server_options o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.plain = true;
  o.threads = 2;
  return o;
}

std::string org_target(std::string_view id, std::string_view query = {}) {
  return "/unified/user-directory/organizations/" + std::string(id) +
         "?integrated_account_id=" + std::string(k_account) + std::string(query);
}

header_list auth_json(std::string token = "t") {
  return {{"Authorization", "Bearer " + token}, {"Content-Type", "application/json"}};
}

reply patch(client& c, std::string target, std::string body, header_list extra = {}) {
  header_list h = auth_json();
  for (auto& kv : extra) h.push_back(std::move(kv));
  return c.send(http::verb::patch, std::move(target), std::move(body), std::move(h));
}

reply get(client& c, std::string target, header_list headers = {{"Authorization", "Bearer t"}}) {
  return c.send(http::verb::get, std::move(target), {}, std::move(headers));
}

std::set<std::string> keys_of(const json::value& v) {
  std::set<std::string> keys;
  for (const auto& kv : v.as_object()) keys.emplace(kv.key());
  return keys;
}

/// The message of a Truto error body, checking its shape on the way.
std::string error_message(const reply& r, bool remote) {
  const json::object o = r.json().as_object();
  EXPECT_EQ(o.at("statusCode").to_number<unsigned>(), r.status) << r.body;
  EXPECT_EQ(std::string(o.at("error").as_string()), std::string(reason_phrase(r.status))) << r.body;
  EXPECT_EQ(o.contains("truto_is_remote_error"), remote) << r.body;
  if (remote) {
    EXPECT_TRUE(o.at("truto_is_remote_error").as_bool());
    EXPECT_EQ(o.at("raw_response").at("detail"), o.at("message")) << r.body;
  }
  return std::string(o.at("message").as_string());
}

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
                                                "organizations", "max_applies_per_org", "applies"}));
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
  EXPECT_EQ(r.json().at("requests").to_number<int>(), 4) << "stats requests are not counted";

  EXPECT_EQ(c.send(http::verb::get, "/_emulator/reset").status, 405u);
  r = c.send(http::verb::post, "/_emulator/reset");
  ASSERT_EQ(r.status, 200u);
  EXPECT_EQ(r.json(), json::parse(R"({"reset":true})"));
  EXPECT_EQ(c.send(http::verb::get, "/_emulator/stats").json(),
            json::parse(R"({"requests":0,"by_status":{},"connections":0,"applied":0,"replays":0,
                            "organizations":0,"max_applies_per_org":0,"applies":{}})"));
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

/// The emulator binary as a child process with its stdout on a pipe.
class child_process {
 public:
  explicit child_process(std::vector<std::string> args) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    args.insert(args.begin(), ORGPATCH_EMULATOR_BINARY);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, ORGPATCH_EMULATOR_BINARY, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    out_ = fds[0];
    if (rc != 0) throw std::runtime_error("posix_spawn failed");
  }
  ~child_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(out_);
  }

  /// The first line on stdout (without '\n'), within `timeout`; empty on EOF or timeout.
  std::string read_line(std::chrono::milliseconds timeout) {
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return {};
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char ch;
      if (::read(out_, &ch, 1) != 1) return {};
      if (ch == '\n') return line;
      line.push_back(ch);
    }
  }

  /// Sends `sig` (0: none) and waits; the exit status, or -1 if it did not exit normally in time.
  int stop(int sig, std::chrono::milliseconds timeout = 10s) {
    if (sig != 0) ::kill(pid_, sig);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) return -1;
      std::this_thread::sleep_for(10ms);
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
};

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
