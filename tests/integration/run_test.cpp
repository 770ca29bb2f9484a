// End-to-end runs of the batch engine against the in-process emulator over TLS.
#include "emulator/cert.hpp"
#include "emulator/server.hpp"
#include "orgpatch/engine.hpp"
#include "support/test_util.hpp"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace orgpatch {
namespace {

namespace emu = orgpatch::emulator;
using test::read_lines;
using test::temp_dir;
using test::write_file;

constexpr const char* k_token = "test-token-5ecret";

// An emulator over TLS with a fresh certificate for 127.0.0.1 and localhost.
struct tls_emulator {
  explicit tls_emulator(const temp_dir& dir, std::vector<std::string> dns = {"localhost"},
                        std::vector<std::string> ips = {"127.0.0.1"}) {
    auto paths = emu::write_self_signed_cert(dir.path() / "cert", std::move(dns), std::move(ips));
    ca_file = paths.cert.string();
    emu::server_options o;
    o.port = 0;
    o.cert_file = paths.cert.string();
    o.key_file = paths.key.string();
    o.threads = 1;
    o.api.token = k_token;
    server = std::make_unique<emu::server>(o);
    server->start();
  }
  std::string ca_file;
  std::unique_ptr<emu::server> server;
};

run_options options_for(const std::string& input, const std::string& base_url, const std::string& ca_file,
                        unsigned connections = 8) {
  run_options o;
  o.input = input;
  o.cfg.api.base_url = base_url;
  o.cfg.tls.ca_file = ca_file;
  o.cfg.http.connections = connections;
  o.cfg.rate_limit.requests_per_second = 0;
  o.cfg.rate_limit.per_account_requests_per_second = 0;
  o.cfg.output.fsync = fsync_mode::none;
  o.token = k_token;
  o.handle_signals = false;
  return o;
}

boost::json::object parse_object(const std::string& line) { return boost::json::parse(line).as_object(); }

TEST(RunTest, TenThousandJobsOverVerifiedTlsAllOk) {
  temp_dir dir;
  tls_emulator emulator(dir);
  const auto jobs = test::generate_jobs(10000, 100);
  std::string text;
  for (const auto& j : jobs) text += j.line + "\n";
  const std::string input = dir.file("updates.jsonl");
  write_file(input, text);

  const unsigned connections = 16;
  const run_report report = run_batch(options_for(input, emulator.server->base_url(), emulator.ca_file, connections));
  ASSERT_EQ(report.fatal_error, "");
  EXPECT_EQ(report.exit_code, 0);
  EXPECT_EQ(report.metrics.ok(), 10000u);
  EXPECT_EQ(report.metrics.requests(), 10000u);

  // One results line per job, after the header, every outcome ok.
  const auto lines = read_lines(dir.file("updates.results.jsonl"));
  ASSERT_EQ(lines.size(), 10001u);
  const auto header = parse_object(lines[0]);
  EXPECT_EQ(header.at("run_id").as_string(), report.run_id);
  EXPECT_EQ(header.at("input").at("size").to_number<std::uint64_t>(), text.size());
  std::set<std::string> keys;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const auto r = parse_object(lines[i]);
    ASSERT_EQ(r.at("outcome").as_string(), "ok") << lines[i];
    EXPECT_EQ(r.at("http_status").as_int64(), 200);
    keys.insert(std::string(r.at("key").as_string()));
  }
  EXPECT_EQ(keys.size(), 10000u);
  EXPECT_FALSE(std::filesystem::exists(dir.file("updates.failed.jsonl")));

  // The emulator holds exactly what was sent, each applied once, over no more
  // connections than allowed.
  const auto stats = emulator.server->stats_snapshot(false);
  EXPECT_EQ(stats.applied, 10000u);
  EXPECT_EQ(stats.organizations, 10000u);
  EXPECT_EQ(stats.max_applies_per_org, 1u);
  EXPECT_LE(stats.connections, connections);
  EXPECT_EQ(report.summary.connections_opened, stats.connections);
  for (const auto& j : jobs) {
    const auto stored = emulator.server->organization_json(j.account, j.id);
    ASSERT_TRUE(stored) << j.id;
    const auto org = parse_object(*stored);
    EXPECT_EQ(org.at("name").as_string(), j.name);
    EXPECT_EQ(org.at("remote_data").at("session_expiry").to_number<int>(), j.session_expiry);
  }
}

// The server closes every connection after 5 requests: each reconnection
// resumes the TLS session of an earlier one instead of a full handshake.
TEST(RunTest, ReconnectionsResumeTheTlsSession) {
  temp_dir dir;
  tls_emulator emulator(dir);
  emu::fault_options f;
  f.close_after = 5;
  f.close_probability = 1;
  emulator.server->api().set_faults(f);
  std::string text;
  for (const auto& j : test::generate_jobs(200, 20)) text += j.line + "\n";
  const std::string input = dir.file("updates.jsonl");
  write_file(input, text);

  const run_report report = run_batch(options_for(input, emulator.server->base_url(), emulator.ca_file, 4));
  ASSERT_EQ(report.fatal_error, "");
  EXPECT_EQ(report.metrics.ok(), 200u);
  EXPECT_GE(report.summary.connections_opened, 40u);
  // Every reconnection resumes: only the first handshakes (before any session
  // was kept) are full ones.
  EXPECT_GE(report.summary.tls_resumed, report.summary.connections_opened - 4);
  EXPECT_LE(report.summary.tls_resumed, report.summary.connections_opened);
}

TEST(RunTest, BrokenLinesAreInvalidAndTheRestOk) {
  temp_dir dir;
  tls_emulator emulator(dir);
  const auto jobs = test::generate_jobs(4, 2);
  const std::string text = jobs[0].line + "\n" +                                    // 1 ok
                           "{\"id\":\"x\",\"body\":{}}\n" +                         // 2 no account
                           "\n" +                                                   // 3 blank
                           "not json\n" +                                           // 4
                           jobs[1].line + "\n" +                                    // 5 ok
                           "{\"id\":\"..\",\"integrated_account_id\":\"" + jobs[2].account +
                           "\",\"body\":{}}\n" +                                    // 6 dots
                           jobs[3].line + "\n";                                     // 7 ok
  const std::string input = dir.file("mixed.jsonl");
  write_file(input, text);
  const run_report report = run_batch(options_for(input, emulator.server->base_url(), emulator.ca_file));
  EXPECT_EQ(report.exit_code, 2);
  EXPECT_EQ(report.metrics.ok(), 3u);
  EXPECT_EQ(report.metrics.invalid(), 3u);

  std::map<std::uint64_t, boost::json::object> by_line;
  const auto lines = read_lines(dir.file("mixed.results.jsonl"));
  ASSERT_EQ(lines.size(), 7u);
  for (std::size_t i = 1; i < lines.size(); ++i) {
    auto r = parse_object(lines[i]);
    by_line[r.at("line").to_number<std::uint64_t>()] = r;
  }
  for (std::uint64_t l : {1, 5, 7}) EXPECT_EQ(by_line.at(l).at("outcome").as_string(), "ok");
  for (std::uint64_t l : {2, 4, 6}) {
    EXPECT_EQ(by_line.at(l).at("outcome").as_string(), "invalid");
    EXPECT_EQ(by_line.at(l).at("error").at("kind").as_string(), "input");
  }
  EXPECT_NE(std::string(by_line.at(2).at("error").at("message").as_string()).find("integrated_account_id"),
            std::string::npos);
  EXPECT_NE(std::string(by_line.at(6).at("error").at("message").as_string()).find("id"), std::string::npos);
  // Invalid lines were never sent.
  EXPECT_EQ(emulator.server->stats_snapshot(false).requests, 3u);
  // Each invalid line is in the dead-letter file, to be fixed.
  EXPECT_EQ(read_lines(dir.file("mixed.failed.jsonl")).size(), 3u);
}

TEST(RunTest, RemoteNotFoundFailsWithDeadLetterKeepingIdentity) {
  temp_dir dir;
  tls_emulator emulator(dir);
  const std::string account = test::test_uuid(0xacc0, 1);
  const std::string input = dir.file("nf.jsonl");
  write_file(input, "{\"id\":\"not-a-uuid\",\"integrated_account_id\":\"" + account + "\",\"body\":{\"name\":\"x\"}}\n");
  const run_report report = run_batch(options_for(input, emulator.server->base_url(), emulator.ca_file));
  EXPECT_EQ(report.exit_code, 2);
  EXPECT_EQ(report.metrics.failed(), 1u);
  const auto lines = read_lines(dir.file("nf.results.jsonl"));
  ASSERT_EQ(lines.size(), 2u);
  const auto r = parse_object(lines[1]);
  EXPECT_EQ(r.at("outcome").as_string(), "failed");
  EXPECT_EQ(r.at("http_status").as_int64(), 404);
  EXPECT_EQ(r.at("attempts").as_int64(), 1);
  EXPECT_EQ(r.at("error").at("remote").as_bool(), true);
  const auto dead = read_lines(dir.file("nf.failed.jsonl"));
  ASSERT_EQ(dead.size(), 1u);
  const auto d = parse_object(dead[0]);
  EXPECT_EQ(d.at("id").as_string(), "not-a-uuid");
  EXPECT_EQ(d.at("key").as_string(), "line-1");
  EXPECT_FALSE(d.at("idempotency_key").as_string().empty());
}

std::string run_expecting_fatal(const run_options& o) {
  const run_report report = run_batch(o);
  EXPECT_EQ(report.exit_code, 1);
  return report.fatal_error;
}

TEST(RunTest, WrongCaStopsTheRunSayingSo) {
  temp_dir dir;
  tls_emulator emulator(dir);
  auto other = emu::write_self_signed_cert(dir.path() / "other");
  const std::string input = dir.file("j.jsonl");
  write_file(input, test::generate_jobs(50, 5)[0].line + "\n");
  const std::string err = run_expecting_fatal(options_for(input, emulator.server->base_url(), other.cert.string()));
  EXPECT_NE(err.find("certificate verification"), std::string::npos) << err;
  EXPECT_NE(err.find("self-signed certificate"), std::string::npos) << err;
  EXPECT_EQ(emulator.server->stats_snapshot(false).requests, 0u);
  EXPECT_EQ(read_lines(dir.file("j.results.jsonl")).size(), 1u);  // the header only: resumable
}

TEST(RunTest, WrongHostNameStopsTheRunSayingSo) {
  temp_dir dir;
  // A certificate for another name only: https://127.0.0.1 must be refused.
  tls_emulator emulator(dir, {"api.example.com"}, {});
  const std::string input = dir.file("j.jsonl");
  write_file(input, test::generate_jobs(1, 1)[0].line + "\n");
  std::string err = run_expecting_fatal(options_for(input, emulator.server->base_url(), emulator.ca_file));
  EXPECT_NE(err.find("IP address mismatch"), std::string::npos) << err;
  // And by name: a certificate for 127.0.0.1 only does not cover "localhost".
  temp_dir dir2;
  tls_emulator by_ip(dir2, {}, {"127.0.0.1"});
  const std::string input2 = dir2.file("j.jsonl");
  write_file(input2, test::generate_jobs(1, 1)[0].line + "\n");
  err = run_expecting_fatal(
      options_for(input2, "https://localhost:" + std::to_string(by_ip.server->port()), by_ip.ca_file));
  EXPECT_NE(err.find("hostname mismatch"), std::string::npos) << err;
  EXPECT_EQ(by_ip.server->stats_snapshot(false).requests, 0u);
}

// A server that offers TLS 1.1 at most (and, for that, OpenSSL's security
// level 0): orgpatchd, TLS 1.2 at least, never completes a handshake with it.
TEST(RunTest, AServerBelowTls12IsRefused) {
  temp_dir dir;
  auto cert = emu::write_self_signed_cert(dir.path() / "cert");
  namespace ssl = boost::asio::ssl;
  boost::asio::io_context io;
  ssl::context ctx(ssl::context::tls_server);
  SSL_CTX_set_security_level(ctx.native_handle(), 0);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_VERSION);
  SSL_CTX_set_max_proto_version(ctx.native_handle(), TLS1_1_VERSION);
  ctx.use_certificate_chain_file(cert.cert.string());
  ctx.use_private_key_file(cert.key.string(), ssl::context::pem);
  boost::asio::ip::tcp::acceptor acceptor(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  std::atomic<unsigned> handshakes{0}, completed{0};
  std::thread server([&] {
    // Two attempts, one connection each.
    for (int i = 0; i < 2; ++i) {
      ssl::stream<boost::asio::ip::tcp::socket> stream(io, ctx);
      boost::system::error_code ec;
      acceptor.accept(stream.next_layer(), ec);
      if (ec) return;
      ++handshakes;
      stream.handshake(ssl::stream_base::server, ec);
      if (!ec) ++completed;
    }
  });
  const std::string input = dir.file("j.jsonl");
  write_file(input, test::generate_jobs(1, 1)[0].line + "\n");
  run_options o = options_for(input, "https://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()),
                              cert.cert.string(), 1);
  o.cfg.retry.max_attempts = 2;
  o.cfg.retry.base_delay_ms = 1;
  o.cfg.retry.max_delay_ms = 1;
  const run_report report = run_batch(o);
  server.join();
  EXPECT_EQ(handshakes.load(), 2u);
  EXPECT_EQ(completed.load(), 0u);
  EXPECT_EQ(report.metrics.ok(), 0u);
  const auto lines = read_lines(dir.file("j.results.jsonl"));
  ASSERT_EQ(lines.size(), 2u);
  const auto r = parse_object(lines[1]);
  EXPECT_EQ(r.at("outcome").as_string(), "exhausted");
  const std::string message(r.at("error").at("message").as_string());
  EXPECT_NE(message.find("protocol"), std::string::npos) << message;
}

TEST(RunTest, RefusedTokenStopsTheRunWithoutFailingEveryJob) {
  temp_dir dir;
  tls_emulator emulator(dir);
  std::string text;
  for (const auto& j : test::generate_jobs(500, 10)) text += j.line + "\n";
  const std::string input = dir.file("j.jsonl");
  write_file(input, text);
  run_options o = options_for(input, emulator.server->base_url(), emulator.ca_file, 4);
  o.token = "wrong-token";
  const run_report report = run_batch(o);
  EXPECT_EQ(report.exit_code, 1);
  EXPECT_NE(report.fatal_error.find("401"), std::string::npos) << report.fatal_error;
  EXPECT_EQ(report.fatal_error.find("wrong-token"), std::string::npos);
  EXPECT_LE(emulator.server->stats_snapshot(false).requests, 4u);
  EXPECT_EQ(read_lines(dir.file("j.results.jsonl")).size(), 1u);  // no job got a line
}

// A plain HTTP server that records each request and answers 200.
class capture_server {
 public:
  capture_server() : acceptor_(io_, {boost::asio::ip::make_address("127.0.0.1"), 0}) {
    thread_ = std::thread([this] {
      boost::asio::ip::tcp::socket socket(io_);
      acceptor_.accept(socket);
      boost::beast::flat_buffer buffer;
      for (;;) {
        boost::beast::http::request<boost::beast::http::string_body> req;
        boost::system::error_code ec;
        boost::beast::http::read(socket, buffer, req, ec);
        if (ec) return;
        {
          std::lock_guard lock(mutex_);
          requests_.push_back(req);
        }
        boost::beast::http::response<boost::beast::http::string_body> res{boost::beast::http::status::ok, 11};
        res.set(boost::beast::http::field::content_type, "application/json");
        res.body() = R"({"id":"2818e386-8dec-2562-9ede-5b8a0fbbdc71","name":"Acme"})";
        res.prepare_payload();
        boost::beast::http::write(socket, res, ec);
        if (ec) return;
      }
    });
  }
  ~capture_server() {
    io_.stop();
    boost::system::error_code ec;
    acceptor_.close(ec);
    thread_.join();
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::vector<boost::beast::http::request<boost::beast::http::string_body>> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<boost::beast::http::request<boost::beast::http::string_body>> requests_;
};

TEST(RunTest, SendsTheExactUrlAndHeadersOfTheDesignExample) {
  temp_dir dir;
  capture_server server;
  const std::string input = dir.file("example.jsonl");
  const std::string body = R"({"name":"Acme EMEA",  "remote_data":{"session_expiry":720}})";
  write_file(input,
             R"({"id":"2818e386-8dec-2562-9ede-5b8a0fbbdc71","integrated_account_id":"62f44730-dd91-461e-bd6a-aedd9e0ad79d","body":)" +
                 body +
                 R"(,"query":{"truto_exclude_fields":["id","name"],"remote_query":{"foo":"bar","nested":{"a":1}}},"idempotency_key":"acme-1"})"
                 "\n");
  run_options o = options_for(input, "http://127.0.0.1:" + std::to_string(server.port()), "", 1);
  o.cfg.api.allow_http = true;
  o.cfg.tls.ca_file.reset();
  const run_report report = run_batch(o);
  ASSERT_EQ(report.fatal_error, "");
  EXPECT_EQ(report.exit_code, 0);
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  const auto& req = requests[0];
  EXPECT_EQ(req.method(), boost::beast::http::verb::patch);
  EXPECT_EQ(std::string(req.target()),
            "/unified/user-directory/organizations/2818e386-8dec-2562-9ede-5b8a0fbbdc71"
            "?integrated_account_id=62f44730-dd91-461e-bd6a-aedd9e0ad79d&truto_exclude_fields%5B%5D=id"
            "&truto_exclude_fields%5B%5D=name&remote_query%5Bfoo%5D=bar&remote_query%5Bnested%5D%5Ba%5D=1");
  EXPECT_EQ(req[boost::beast::http::field::authorization], std::string("Bearer ") + k_token);
  EXPECT_EQ(req[boost::beast::http::field::content_type], "application/json");
  EXPECT_EQ(req[boost::beast::http::field::accept], "application/json");
  EXPECT_EQ(req["Idempotency-Key"], "acme-1");
  EXPECT_EQ(req[boost::beast::http::field::user_agent], "orgpatchd/" ORGPATCH_VERSION);
  EXPECT_EQ(req.body(), body);  // byte for byte, odd spacing kept
}

TEST(RunTest, DerivedIdempotencyKeyIsStablePerJobWithinARun) {
  temp_dir dir;
  capture_server server;
  const auto jobs = test::generate_jobs(3, 1);
  const std::string input = dir.file("k.jsonl");
  write_file(input, jobs[0].line + "\n" + jobs[1].line + "\n" + jobs[2].line + "\n");
  run_options o = options_for(input, "http://127.0.0.1:" + std::to_string(server.port()), "", 1);
  o.cfg.api.allow_http = true;
  o.cfg.tls.ca_file.reset();
  const run_report report = run_batch(o);
  ASSERT_EQ(report.exit_code, 0) << report.fatal_error;
  std::set<std::string> keys;
  for (const auto& req : server.requests()) {
    const std::string key(req["Idempotency-Key"]);
    EXPECT_EQ(key.rfind("op1-" + report.run_id + "-", 0), 0u) << key;
    keys.insert(key);
  }
  EXPECT_EQ(keys.size(), 3u);
}

TEST(RunTest, RefusesAResultsFileOfAnotherKindOrTheInputAsOutput) {
  temp_dir dir;
  const std::string input = dir.file("j.jsonl");
  write_file(input, test::generate_jobs(1, 1)[0].line + "\n");
  write_file(dir.file("j.results.jsonl"), "{}\n");
  run_options o = options_for(input, "https://127.0.0.1:1", "");
  o.cfg.tls.ca_file.reset();
  run_report report = run_batch(o);
  EXPECT_EQ(report.exit_code, 1);
  EXPECT_NE(report.fatal_error.find("not an orgpatchd results log"), std::string::npos) << report.fatal_error;
  EXPECT_EQ(test::read_file(dir.file("j.results.jsonl")), "{}\n");
  o.cfg.output.results = input;
  report = run_batch(o);
  EXPECT_EQ(report.exit_code, 1);
  EXPECT_NE(report.fatal_error.find("must not be the input"), std::string::npos);
  // The same file spelled two ways is caught before anything is created.
  o.cfg.output.results = dir.file("out.jsonl");
  o.cfg.output.dead_letter = (dir.path() / "." / "out.jsonl").string();
  report = run_batch(o);
  EXPECT_EQ(report.exit_code, 1);
  EXPECT_NE(report.fatal_error.find("must differ"), std::string::npos) << report.fatal_error;
}

}  // namespace
}  // namespace orgpatch
